"""The command line, run in-process with Typer's runner and once as a real subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
import typer
from typer.testing import CliRunner

from disclosure_xlsx.cli import app, paragraphs
from disclosure_xlsx.formats import current_format, format_for_year
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.wrapping import display_width

from .conftest import SAMPLES, defined_cells

runner = CliRunner()


def _format_of(path: Path) -> str:
    wb = openpyxl.load_workbook(path)
    sheet, ref = defined_cells(wb)["meta_format"]
    return str(wb[sheet][ref].value)


def test_template_defaults_to_the_current_format(tmp_path: Path) -> None:
    out = tmp_path / "模板.xlsx"
    result = runner.invoke(app, ["template", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _format_of(out) == current_format().id


def test_template_follows_the_year_and_prefills_the_cover(tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    result = runner.invoke(app, ["template", "-o", str(out), "--year", "2020", "--office", "某某镇人民政府"])
    assert result.exit_code == 0, result.output
    assert _format_of(out) == format_for_year(2020).id  # type: ignore[union-attr]
    wb = openpyxl.load_workbook(out)
    names = defined_cells(wb)
    assert wb[names["meta_office"][0]][names["meta_office"][1]].value == "某某镇人民政府"
    assert wb[names["meta_year"][0]][names["meta_year"][1]].value == 2020


def test_explicit_format_wins_over_the_year_with_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    old = format_for_year(2020).id  # type: ignore[union-attr]
    result = runner.invoke(app, ["template", "-o", str(out), "--format", old, "--year", "2023"])
    assert result.exit_code == 0
    assert _format_of(out) == old
    assert "2023" in result.stderr


def test_template_never_overwrites_without_force(tmp_path: Path) -> None:
    out = tmp_path / "filled.xlsx"
    out.write_bytes(b"an office's filled workbook")
    result = runner.invoke(app, ["template", "-o", str(out)])
    assert result.exit_code == 2
    assert out.read_bytes() == b"an office's filled workbook"
    assert runner.invoke(app, ["template", "-o", str(out), "--force"]).exit_code == 0
    assert _format_of(out) == current_format().id


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["template", "-o", str(tmp_path / "x.xlsx"), "--format", "2020"]).exit_code == 2
    assert runner.invoke(app, ["template"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_help_is_complete() -> None:
    result = runner.invoke(app, ["template", "--help"])
    for option in ("--output", "--format", "--office", "--year", "--force", "Example:"):
        assert option in result.output
    assert "--version" in runner.invoke(app, ["--help"]).output


@pytest.mark.parametrize("width", [50, 60, 80])  # click lays help out in at most 80 columns
def test_help_fits_the_terminal_and_keeps_every_word(width: int) -> None:
    """Chinese help wraps at the terminal's width (a Chinese character takes two columns) and loses no word:
    each paragraph of a command's help and each option's help is in the output, spaces aside."""
    group = typer.main.get_command(app)
    for name, command in [("", group), *group.commands.items()]:  # type: ignore[attr-defined]
        result = runner.invoke(app, [name, "--help"] if name else ["--help"], terminal_width=width)
        assert result.exit_code == 0, result.output
        too_wide = [line for line in result.output.splitlines() if display_width(line) > width]
        assert not too_wide, (name, too_wide)
        shown = re.sub(r"\s+", "", result.output)
        helps = [*paragraphs(command.help or ""), *(getattr(p, "help", None) or "" for p in command.params)]
        for words in helps:
            assert re.sub(r"\s+", "", words) in shown, (name, words)
    listed = re.sub(r"\s+", "", runner.invoke(app, ["--help"], terminal_width=width).output)
    for command in group.commands.values():  # type: ignore[attr-defined]
        assert re.sub(r"\s+", "", paragraphs(command.help)[0]) in listed  # each command's first paragraph, whole


def test_python_dash_m_runs_the_same_app() -> None:
    out = subprocess.run([sys.executable, "-m", "disclosure_xlsx", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("disclosure-xlsx ")


# ------------------------------------------------------------------------------------------------
# validate: exit codes, the JSON contract, and parity with the library

FINDING_KEYS = {"code", "severity", "rule", "cells", "expected", "actual", "message"}
WORKBOOK_KEYS = {"file", "office", "credit_code", "year", "format", "status", "located_by", "findings", "cleaning",
                 "suggestion"}


def _json(args: list[str]) -> tuple[int, dict]:
    result = runner.invoke(app, ["validate", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_validate_json_follows_the_contract() -> None:
    code, report = _json([str(SAMPLES)])
    assert code == 1
    assert report["version"] == 1
    assert set(report["summary"]) == {"workbooks", "ok", "with_warnings", "with_errors", "unreadable"}
    assert report["summary"]["workbooks"] == len(report["workbooks"]) == len(list(SAMPLES.glob("*.xlsx")))
    for workbook in report["workbooks"]:
        assert set(workbook) == WORKBOOK_KEYS
        assert workbook["status"] in ("ok", "warnings", "errors", "unreadable")
        assert workbook["located_by"] in ("names", "labels")
        assert isinstance(workbook["year"], int) and workbook["format"] in ("2019", "2021")
        for finding in workbook["findings"]:
            assert FINDING_KEYS <= set(finding) <= FINDING_KEYS | {"explained_by_suggestion"}
            assert finding["severity"] in ("error", "warning")
            assert finding["message"]["zh"] and finding["message"]["en"]
            assert all(set(c) == {"id", "sheet", "ref"} for c in finding["cells"])
        for record in workbook["cleaning"]:
            assert set(record) == {"id", "sheet", "ref", "raw", "value", "rule"}
    i2 = next(w for w in report["workbooks"] if w["file"].endswith("2021格式_I2错误.xlsx"))
    (finding,) = i2["findings"]
    assert (finding["code"], finding["rule"], finding["cells"][0]["id"]) == ("identity-mismatch", "I2[granted]",
                                                                            "s3.granted.total")
    assert finding["actual"] == finding["expected"] + 1


def test_validate_json_equals_the_library_report() -> None:
    _, report = _json([str(SAMPLES)])
    assert report == json.loads(json.dumps(validate_paths([SAMPLES]).to_dict(), ensure_ascii=False))


class _Note:
    """A review record (as accept.py and rounds.py add to a batch) whose text is the streaming slot itself."""

    def to_dict(self) -> dict:
        return {"reason": "\x00workbooks\x00", "n": 1}


def test_the_report_written_workbook_by_workbook_is_the_report_as_one_text() -> None:
    """`write_json` streams what `json.dumps(to_dict())` gives: byte for byte for the compact line of
    `--json`, and the same data with each workbook's entry on a line of its own for report.json; with
    per-workbook keys added, with last year's pairing and the county's review, for an empty batch, and when
    a reviewer's text holds the very slot it writes into."""
    import io

    batch = validate_paths([SAMPLES], previous=[SAMPLES], workers=1)
    empty = validate_paths([], workers=1)
    for case in (batch, empty):
        for lines in (False, True):
            extra = [{"feedback_dir": f"反馈/{i}"} for i in range(len(case.workbooks))]
            whole = case.to_dict()
            for entry, added in zip(whole["workbooks"], extra, strict=True):
                entry.update(added)
            for review in ({}, {"note": _Note()}):
                case.review = review
                whole = {**{k: v for k, v in whole.items() if k not in ("workbooks", "previous_unreadable", "note")},
                         **{key: record.to_dict() for key, record in review.items()},
                         "workbooks": whole["workbooks"],
                         **({"previous_unreadable": case.previous_unreadable} if case.previous_unreadable else {})}
                for added, expected in ((extra, whole), (None, case.to_dict())):
                    stream = io.StringIO()
                    case.write_json(stream, lines=lines, extra=added)
                    written = stream.getvalue()
                    if not lines:
                        assert written == json.dumps(expected, ensure_ascii=False, separators=(",", ":"))
                        continue
                    assert json.loads(written) == expected
                    if review:  # the slot's words in the review: written whole, indented
                        assert written == json.dumps(expected, ensure_ascii=False, indent=1)
                        continue
                    entries = [line.rstrip(",") for line in written.splitlines() if line.startswith("  {")]
                    assert [json.loads(e) for e in entries] == expected["workbooks"]
    assert batch.workbooks and batch.workbooks[0].previous is not None


def test_validate_writes_the_report_to_out(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(SAMPLES), "--json", "--out", str(tmp_path / "out")])
    written = json.loads((tmp_path / "out" / "report.json").read_text("utf-8"))
    folders = [w.pop("feedback_dir") for w in written["workbooks"]]  # only the file says where the feedback is
    assert written == json.loads(result.stdout)
    assert all((tmp_path / "out" / f / "反馈.txt").is_file() for f in folders)


def test_validate_exit_codes(tmp_path: Path) -> None:
    seed = next(SAMPLES.glob("2020_宁海县*.xlsx"))
    assert runner.invoke(app, ["validate", str(seed)]).exit_code == 0
    assert runner.invoke(app, ["validate", str(SAMPLES)]).exit_code == 1
    assert runner.invoke(app, ["validate", str(tmp_path / "nowhere")]).exit_code == 2
    (tmp_path / "empty").mkdir()
    assert runner.invoke(app, ["validate", str(tmp_path / "empty")]).exit_code == 2
    assert runner.invoke(app, ["validate", str(seed), "--lang", "fr"]).exit_code == 2


def test_validate_prints_a_table_and_the_findings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(SAMPLES)], env={"COLUMNS": "240"})
    assert "示例县审计局" in result.stdout and "通过" in result.stdout
    assert "自然人至其他六列之和为" in result.stdout
    english = runner.invoke(app, ["validate", str(SAMPLES), "--lang", "en"], env={"COLUMNS": "240"})
    assert "the sum of the six applicant columns" in english.stdout and "workbooks:" in english.stdout


def test_a_large_batch_lists_only_workbooks_with_problems_and_says_where_the_rest_are(
        tmp_path: Path, monkeypatch) -> None:
    """A city's or a province's batch is too large to list in a terminal: only the first LISTED workbooks
    with a problem are listed (table and details), and one line counts the others and says where every
    result is; a batch of up to LISTED is listed whole. (LISTED is made 3 here: the samples are 10.)"""
    from disclosure_xlsx import cli

    everything = runner.invoke(app, ["validate", str(SAMPLES), "--workers", "1"])
    assert "力洋镇" in everything.output and "工作簿较多" not in everything.output
    monkeypatch.setattr(cli, "LISTED", 3)
    batch = validate_paths([SAMPLES], workers=1)
    problems = [w for w in batch.workbooks if w.status != "ok"]
    shown = runner.invoke(app, ["validate", str(SAMPLES), "--workers", "1"], env={"COLUMNS": "200"})
    assert shown.exit_code == 1
    names = [Path(w.file).name for w in batch.workbooks]
    listed = [n for n in names if n in shown.output]
    assert listed == [Path(w.file).name for w in problems[:3]]  # the first three with problems, in batch order
    assert "力洋镇" not in shown.output and "示例县审计局" not in shown.output  # passed: not listed
    line = " ".join(shown.output.split())
    assert "工作簿较多，上面只列出了前 3 个有问题的。" in line
    assert f"没有列出的：通过校验 2 个，有问题 {len(problems) - 3} 个。" in line
    assert "要看每个工作簿的结果，请加 --out 文件夹再运行一次" in line
    assert "共 10 个工作簿：通过 2，有警告 0，有错误 8，无法读取 0。" in line  # the whole batch's count
    out = tmp_path / "结果"
    written = runner.invoke(app, ["validate", str(SAMPLES), "--workers", "1", "--out", str(out), "--lang", "en"],
                            env={"COLUMNS": "400"})
    line = " ".join(written.output.split())
    assert "only the first 3 with problems are listed above." in line
    assert f"Not listed: 2 that passed, {len(problems) - 3} with problems." in line
    assert str(out / "校验汇总.xlsx") in line and (out / "校验汇总.xlsx").is_file()
    monkeypatch.setattr(cli, "LISTED", 9)  # room for every workbook with a problem: all 8 listed
    every_problem = " ".join(runner.invoke(app, ["validate", str(SAMPLES), "--workers", "1"],
                                           env={"COLUMNS": "200"}).output.split())
    assert "上面只列出了有问题的 8 个。 没有列出的：通过校验 2 个，有问题 0 个。" in every_problem
    monkeypatch.setattr(cli, "LISTED", 1)  # a large batch that passed whole: no empty table, one line
    passed = tmp_path / "passed"
    passed.mkdir()
    for name in ("2020_宁海县力洋镇人民政府.xlsx", "2024_示例县审计局.xlsx"):
        (passed / name).write_bytes((SAMPLES / name).read_bytes())
    clean = runner.invoke(app, ["validate", str(passed), "--workers", "1"], env={"COLUMNS": "200"})
    assert clean.exit_code == 0 and "┃" not in clean.output and "━" not in clean.output
    assert " ".join(clean.output.split()).startswith("工作簿较多，全部通过校验，没有逐一列出。 要看每个工作簿的结果")


def test_validate_year_warns_of_a_report_of_another_year(tmp_path: Path) -> None:
    """An office that sends last year's report: with --year, the county hears of it when it validates, not
    only when the roll-up leaves it out; the warning names the cover's year cell."""
    import random

    from disclosure_xlsx.synthetic import balanced_report
    from disclosure_xlsx.template import write_template

    fmt = format_for_year(2024)
    for name, year in (("去年", 2023), ("今年", 2024)):
        values = {**balanced_report(fmt.id, random.Random(1)), fmt.field("office").name: f"{name}镇",
                  fmt.field("year").name: year}
        write_template(tmp_path / f"{name}.xlsx", fmt.id, values=values)
    for args, flagged in (([], set()), (["--year", "2024"], {"去年镇"})):
        result = runner.invoke(app, ["validate", str(tmp_path), "--json", *args])
        assert result.exit_code == 0, result.output  # a warning, not an error
        report = json.loads(result.output)
        found = {w["office"]: [f for f in w["findings"] if f["code"] == "year-not-collected"] for w in report["workbooks"]}
        assert {office for office, said in found.items() if said} == flagged
        for (finding,) in (said for said in found.values() if said):
            assert finding["cells"][0]["id"] == fmt.field("year").name and "2023" in finding["message"]["zh"]
    assert runner.invoke(app, ["validate", str(tmp_path), "--year", "20240"]).exit_code == 2
