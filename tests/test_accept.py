"""The county's review: accepted warnings that survive re-runs, go stale when the data change, expire,
never cover errors; malformed acceptance files; rounds of resubmission with fixed / open / new."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from disclosure_xlsx.accept import (Acceptance, AcceptanceFile, apply_acceptances, fingerprint, read_acceptances,
                                    write_acceptances)
from disclosure_xlsx.catalog import DisclosureError, text
from disclosure_xlsx.cli import app
from disclosure_xlsx.feedback import FEEDBACK_DIR, OVERVIEW, REPORT, write_outputs
from disclosure_xlsx.formats import Format, format_for_year, get_format
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.rounds import round_folder

RESULT_SHEET = text("annotate.sheet_name")
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import ROOT, SAMPLES

runner = CliRunner()
CODE = "11330200MB0000001X"
TODAY = dt.date.today()


def _rule(fmt: Format):
    """A plausibility rule "a ≤ b + c" of the format: breaking it gives a warning on `a`, and stays broken
    when `a` grows."""
    return next(r for r in fmt.rules if r.kind == "le" and r.lhs and r.rhs)


def _values(format_id: str, seed: int = 1) -> dict[str, object]:
    fmt = get_format(format_id)
    values: dict[str, object] = dict(balanced_report(format_id, random.Random(seed)))
    values[fmt.field("year").name] = next(y for y in range(2019, 2030) if fmt.covers_year(y))
    return values


def _write(folder: Path, name: str, format_id: str, values: dict[str, object], *, office: str,
           code: str | None = CODE) -> Path:
    fmt = get_format(format_id)
    values = {**values, fmt.field("office").name: office}
    if code:
        values[fmt.field("credit_code").name] = code
    folder.mkdir(parents=True, exist_ok=True)
    return write_template(folder / name, format_id, values=values)


def _implausible(format_id: str, excess: int = 3) -> dict[str, object]:
    """A balanced report that breaks one plausibility rule by `excess`."""
    rule = _rule(get_format(format_id))
    values = _values(format_id)
    values[rule.lhs[0]] = sum(values[c] for c in rule.rhs) + excess  # type: ignore[misc]
    return values


def _cli(*args: object):  # -> click's Result
    return runner.invoke(app, [str(a) for a in args])


def _said(text: str) -> str:
    """Printed text without the line breaks and spaces a narrow terminal adds."""
    return "".join(text.split())


# ------------------------------------------------------------------------------------------------
# Accepting, re-running, staleness, expiry, errors


def test_accept_then_rerun_the_warning_is_accepted_and_does_not_count(format_id: str, tmp_path: Path) -> None:
    rule = _rule(get_format(format_id))
    book = _write(tmp_path / "in", "a.xlsx", format_id, _implausible(format_id), office="某镇人民政府")
    before = validate_paths([book], workers=1).workbooks[0]
    warning = next(f for f in before.findings if f.rule and f.rule.startswith(rule.rule))
    counted = before.warnings
    accepted = tmp_path / "认可.csv"
    result = _cli("accept", book, "--accepted", accepted, "--rule", warning.rule, "--cell", warning.cells[0].ref,
                  "--reason", "县里核实：数据属实", "--by", "张三", "--date", "2025-03-01")
    assert result.exit_code == 0, result.output
    entry, = read_acceptances(accepted).entries
    assert (entry.office, entry.credit_code, entry.rule, entry.cell) == ("某镇人民政府", CODE, warning.rule,
                                                                         warning.cells[0].id)
    assert entry.fingerprint == fingerprint(warning, before.report) and entry.date == dt.date(2025, 3, 1)

    batch = validate_paths([book], workers=1)
    apply_acceptances(batch, read_acceptances(accepted))
    after = batch.workbooks[0]
    mine = next(f for f in after.findings if f.rule == warning.rule)
    assert mine.accepted is not None and mine.accepted.reason == "县里核实：数据属实"  # type: ignore[attr-defined]
    assert after.warnings == counted - 1 and after.errors == 0
    assert "已认可：县里核实：数据属实" in mine.message("zh") and "Accepted:" in mine.message("en")
    assert mine.to_dict()["accepted"] == {"reason": "县里核实：数据属实", "by": "张三", "date": "2025-03-01",
                                          "until": None}
    assert after.to_dict()["findings"][after.findings.index(mine)]["accepted"]["by"] == "张三"
    if counted == 1:
        assert after.status == "ok"


def test_a_changed_value_brings_the_warning_back_with_the_stale_note(format_id: str, tmp_path: Path) -> None:
    rule = _rule(get_format(format_id))
    folder = tmp_path / "in"
    book = _write(folder, "a.xlsx", format_id, _implausible(format_id, 3), office="某镇人民政府")
    batch = validate_paths([book], workers=1)
    warning = next(f for f in batch.workbooks[0].findings if f.rule and f.rule.startswith(rule.rule))
    accepted = tmp_path / "认可.csv"
    assert _cli("accept", book, "--accepted", accepted, "--rule", warning.rule, "--cell", warning.cells[0].id,
                "--reason", "属实", "--by", "张三").exit_code == 0
    _write(folder, "a.xlsx", format_id, _implausible(format_id, 4), office="某镇人民政府")  # the office edits it
    batch = validate_paths([book], workers=1)
    apply_acceptances(batch, read_acceptances(accepted))
    again = next(f for f in batch.workbooks[0].findings if f.rule == warning.rule)
    assert again.accepted is None and again.lapsed.why == "changed"  # type: ignore[attr-defined]
    assert "原认可不再适用" in again.message("zh") and "no longer applies" in again.message("en")
    assert batch.workbooks[0].warnings >= 1 and batch.workbooks[0].status == "warnings"
    assert again.to_dict()["acceptance_lapsed"]["why"] == "changed"
    assert batch.review["acceptances"].lapsed == 1


def test_an_expired_acceptance_lapses_and_one_that_ends_today_still_holds(tmp_path: Path) -> None:
    fid = _first_format()
    book = _write(tmp_path / "in", "a.xlsx", fid, _implausible(fid), office="某镇人民政府")
    batch = validate_paths([book], workers=1)
    warning = next(f for f in batch.workbooks[0].findings if f.severity == "warning" and f.cells)
    mark = fingerprint(warning, batch.workbooks[0].report)

    def entry(until: dt.date) -> Acceptance:
        return Acceptance("某镇人民政府", CODE, batch.workbooks[0].report.year, warning.rule or warning.code,  # type: ignore[union-attr]
                          warning.cells[0].id, "属实", "张三", dt.date(2025, 1, 1), until, mark, at=2)

    for until, held in ((TODAY, True), (TODAY - dt.timedelta(days=1), False)):
        apply_acceptances(batch, AcceptanceFile(tmp_path / "x.csv", [entry(until)]), today=TODAY)
        mine = next(f for f in batch.workbooks[0].findings if f.rule == warning.rule and f.cells == warning.cells)
        assert (mine.accepted is not None) is held  # type: ignore[attr-defined]
        if not held:
            assert mine.lapsed.why == "expired"  # type: ignore[attr-defined]
            assert (TODAY - dt.timedelta(days=1)).isoformat() in mine.message("zh") and "到期" in mine.message("zh")


def test_errors_cannot_be_accepted(tmp_path: Path) -> None:
    sample = SAMPLES / "2024_2021格式_I2错误.xlsx"
    accepted = tmp_path / "认可.csv"
    by_code = _cli("accept", sample, "--accepted", accepted, "--rule", "identity-mismatch", "--cell", "J8",
                   "--reason", "x", "--by", "张三")
    by_rule = _cli("accept", sample, "--accepted", accepted, "--rule", "I2[granted]", "--reason", "x", "--by", "张三")
    for result in (by_code, by_rule):
        assert result.exit_code == 2
        assert "错误必须由填报单位改正，不能认可" in _said(result.stderr)
    assert not accepted.exists()
    # a line of a file that names an error is refused as a whole file (exit 2) …
    accepted.write_text("单位名称,年度,规则,单元格,理由,认可人,认可日期\n示例镇（I2 错误）,2024,I2[granted],J8,x,张三,2025-03-01\n",
                        "utf-8")
    with pytest.raises(DisclosureError) as refused:
        read_acceptances(accepted)
    assert "第 2 行" in refused.value.finding.message("zh") and "不能认可" in refused.value.finding.message("zh")
    # … and an entry that reaches an error anyway (made in code, never read from a file) changes nothing
    batch = validate_paths([sample], workers=1)
    entry = Acceptance("示例镇（I2 错误）", None, 2024, "I2", "J8", "x", "张三", dt.date(2025, 3, 1), at=2)
    notices = apply_acceptances(batch, AcceptanceFile(accepted, [entry]))
    assert [n.code for n in notices] == ["acceptance-refused"]
    assert batch.workbooks[0].errors == 1 and batch.workbooks[0].status == "errors"


def test_a_file_level_warning_is_accepted_with_a_blank_cell_and_only_then(tmp_path: Path) -> None:
    fmt = get_format(_first_format())
    wrong_year = next(y for y in range(2019, 2030) if not fmt.covers_year(y) and format_for_year(y))
    values = {**_values(fmt.id), fmt.field("year").name: wrong_year}
    book = _write(tmp_path / "in", "a.xlsx", fmt.id, values, office="某镇人民政府")
    accepted = tmp_path / "认可.toml"
    result = _cli("accept", book, "--accepted", accepted, "--rule", "format-year-mismatch", "--reason",
                  "上级通知本年沿用旧格式", "--by", "张三", "--until", (TODAY + dt.timedelta(days=30)).isoformat())
    assert result.exit_code == 0, result.output
    assert "[[accepted]]" in accepted.read_text("utf-8")
    batch = validate_paths([book], workers=1)
    apply_acceptances(batch, read_acceptances(accepted))
    mismatch = next(f for f in batch.workbooks[0].findings if f.code == "format-year-mismatch")
    assert mismatch.accepted is not None  # type: ignore[attr-defined]
    # a cell-level rule with a blank cell accepts nothing: a blank never means "every cell"
    blank = Acceptance("某镇人民政府", CODE, wrong_year, "blank-cell", None, "x", "张三", TODAY)
    notices = apply_acceptances(batch, AcceptanceFile(accepted, [blank]))
    assert [n.code for n in notices] == ["acceptance-unmatched"]


def test_offices_are_found_by_credit_code_then_by_normalised_name(tmp_path: Path) -> None:
    fid = _first_format()
    book = _write(tmp_path / "in", "a.xlsx", fid, _implausible(fid), office="示例县（某）镇 人民政府", code=None)
    batch = validate_paths([book], workers=1)
    warning = next(f for f in batch.workbooks[0].findings if f.severity == "warning" and f.cells)
    year = batch.workbooks[0].report.year  # type: ignore[union-attr]
    def entry(office: str, code: str | None, year: int = year) -> Acceptance:
        return Acceptance(office, code, year, warning.code, warning.cells[0].ref, "属实", "张三", TODAY)
    cases = [(entry("示例县(某)镇人民政府", None), "accepted"),        # half-width brackets, no space: same office
             (entry("示例县（某）镇人民政府", CODE), "accepted"),       # a code only one side has: the name decides
             (entry("另一个镇", None), "acceptance-unmatched"),
             (entry("示例县（某）镇人民政府", None, year + 1), "acceptance-unmatched")]
    for item, outcome in cases:
        notices = apply_acceptances(batch, AcceptanceFile(tmp_path / "x.csv", [item]))
        if outcome == "accepted":
            assert notices == [] and any(f.accepted for f in batch.workbooks[0].findings  # type: ignore[attr-defined]
                                         if hasattr(f, "accepted"))
        else:
            assert [n.code for n in notices] == [outcome]
    # with a code on both sides, the code decides: same name, another code, another office
    coded = _write(tmp_path / "in2", "b.xlsx", fid, _implausible(fid), office="某镇", code=CODE)
    batch = validate_paths([coded], workers=1)
    other = Acceptance("某镇", "91330200MA0000000X", year, warning.code, warning.cells[0].ref, "x", "张三", TODAY)
    assert [n.code for n in apply_acceptances(batch, AcceptanceFile(tmp_path / "x.csv", [other]))] == [
        "acceptance-unmatched"]


# ------------------------------------------------------------------------------------------------
# The file: formats, encodings, malformed files


def _entry(**changes: object) -> Acceptance:
    base = dict(office="某镇人民政府", credit_code=CODE, year=2024, rule="blank-cell", cell="三、依申请公开!D8",
                reason="属实", by="张三", date=dt.date(2025, 3, 1), until=None, fingerprint="0123456789abcdef")
    base.update(changes)
    return Acceptance(**base)  # type: ignore[arg-type]


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf")), min_size=1, max_size=30).map(str.strip).filter(bool)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(office=_TEXT, reason=_TEXT, by=_TEXT, suffix=st.sampled_from([".csv", ".toml"]))
def test_what_is_written_reads_back_the_same(tmp_path: Path, office: str, reason: str, by: str, suffix: str) -> None:
    entries = [_entry(office=office, reason=reason, by=by), _entry(cell=None, rule="X6", until=dt.date(2026, 1, 1))]
    path = write_acceptances(tmp_path / f"a{suffix}", entries)
    back = read_acceptances(path).entries
    assert [(e.office, e.reason, e.by, e.cell, e.rule, e.until, e.fingerprint) for e in back] == \
        [(e.office, e.reason, e.by, e.cell, e.rule, e.until, e.fingerprint) for e in entries]


def test_csv_in_gb18030_with_english_headers_and_excel_dates_is_read(tmp_path: Path) -> None:
    path = tmp_path / "认可.csv"
    path.write_bytes("office,year,rule,cell,reason,by,date,until\n某镇人民政府,2024年,blank-cell,D8,属实,张三,2025/3/1,"
                     "2026年1月31日\n".encode("gb18030"))
    entry, = read_acceptances(path).entries
    assert (entry.office, entry.year, entry.date, entry.until) == ("某镇人民政府", 2024, dt.date(2025, 3, 1),
                                                                   dt.date(2026, 1, 31))


def test_a_csv_never_hands_excel_a_formula(tmp_path: Path) -> None:
    path = write_acceptances(tmp_path / "a.csv", [_entry(office='=HYPERLINK("http://x","y")', reason="-1 也属实")])
    text = path.read_text("utf-8-sig")
    assert "\n\"'=HYPERLINK" in text and ",'-1 也属实," in text  # Excel shows both as text
    assert read_acceptances(path).entries[0].office == '=HYPERLINK("http://x","y")'


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "disclosure_xlsx", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_a_malformed_file_is_one_message_per_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "认可.csv"
    bad.write_text("\n".join([
        "单位名称,年度,规则,单元格,理由,认可人,认可日期,有效期至",
        "某镇人民政府,2024,blank-cell,D8,属实,张三,2025-13-01,",       # line 2: no such date
        "某镇人民政府,2024,no-such-code,D8,属实,张三,2025-03-01,",      # line 3: unknown rule
        "某镇人民政府,2024,blank-cell,D8,属实,张三,2025-03-01,2024-01-01",  # line 4: ends before it starts
        "某镇人民政府,今年,blank-cell,不是单元格,,张三,2025-03-01,",      # line 5: year, cell, reason
        "某镇人民政府,2024,blank-cell,D8,属实,张三,2025-03-01,",        # line 6: fine
    ]) + "\n", "utf-8")
    result = _run("validate", SAMPLES, "--accepted", bad)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("第 ")]
    assert [line.split("：")[0] for line in lines] == ["第 2 行", "第 3 行", "第 4 行", "第 5 行", "第 5 行", "第 5 行"]
    assert "2025-13-01" in lines[0] and "no-such-code" in lines[1] and "早于" in lines[2]
    assert "认可文件“认可.csv”无法使用" in result.stderr and "Traceback" not in result.stderr

    columns = tmp_path / "columns.csv"
    columns.write_text("单位名称,年度,规则,单元格,说明,认可人,认可日期\n", "utf-8")
    result = _run("validate", SAMPLES, "--accepted", columns, "--lang", "en")
    assert result.returncode == 2
    assert "unknown column “说明”" in result.stderr and "the column “reason” is missing" in result.stderr

    toml = tmp_path / "a.toml"
    toml.write_text("[[accepted]]\noffice = \"某镇\"\nyear = 2024\n", "utf-8")  # missing columns
    result = _run("aggregate", SAMPLES, "-o", tmp_path / "t.xlsx", "--office", "县", "--year", "2024",
                  "--accepted", toml)
    assert result.returncode == 2 and "第 1 条" in result.stderr and not (tmp_path / "t.xlsx").exists()


def test_lines_that_match_nothing_are_warnings_and_the_run_goes_on(tmp_path: Path) -> None:
    accepted = tmp_path / "认可.csv"
    write_acceptances(accepted, [_entry(office="不在这批的单位", credit_code=None)])
    result = _cli("validate", SAMPLES / "2024_示例县审计局.xlsx", "--accepted", accepted, "--workers", 1)
    assert result.exit_code == 0, result.output
    assert _said("认可文件“认可.csv”第 2 行没有对应的警告：这批文件中没有“不在这批的单位”的报表") in _said(result.stderr)


# ------------------------------------------------------------------------------------------------
# The overview's reviewer column, and the outputs


def test_the_reviewer_marks_the_overview_and_accept_from_reads_it(tmp_path: Path) -> None:
    fid = _first_format()
    folder = tmp_path / "in"
    _write(folder, "a.xlsx", fid, _implausible(fid), office="某镇人民政府")
    shutil_copy(SAMPLES / "2024_2021格式_I2错误.xlsx", folder)
    out = tmp_path / "out"
    assert _cli("validate", folder, "--out", out, "--workers", 1).exit_code == 1
    wb = openpyxl.load_workbook(out / OVERVIEW)
    ws = wb["全部问题"]
    header = [c.value for c in ws[1]]
    accept_col, reason_col = header.index("是否认可") + 1, header.index("理由") + 1
    hidden = {i for d in ws.column_dimensions.values() if d.hidden for i in range(d.min, d.max + 1)}
    assert {header.index(k) + 1 for k in ("统一社会信用代码", "规则", "单元格编号", "数据指纹")} <= hidden
    assert accept_col not in hidden and reason_col not in hidden
    rows = {ws.cell(r, 4).value: r for r in range(2, ws.max_row + 1)}
    ws.cell(rows["警告"], accept_col, "是")
    ws.cell(rows["警告"], reason_col, "核实属实")
    wb.save(tmp_path / "reviewed.xlsx")
    accepted = tmp_path / "认可.csv"
    result = _cli("accept", "--from", tmp_path / "reviewed.xlsx", "--accepted", accepted, "--by", "李四")
    assert result.exit_code == 0, result.output
    entry, = read_acceptances(accepted).entries
    assert (entry.by, entry.reason, entry.date) == ("李四", "核实属实", TODAY)

    # an error row marked, or a mark without a reason: refused line by line, nothing written
    ws.cell(rows["错误"], accept_col, "是")
    ws.cell(rows["警告"], reason_col).value = None
    wb.save(tmp_path / "reviewed2.xlsx")
    result = _cli("accept", "--from", tmp_path / "reviewed2.xlsx", "--accepted", accepted, "--by", "李四")
    assert result.exit_code == 2
    said = result.stderr
    assert f"第 {rows['错误']} 行：“I2[granted]”是错误，不是警告" in said and "不能认可" in said
    assert f"第 {rows['警告']} 行：已填“是否认可”，但没有填写“理由”" in said
    assert len(read_acceptances(accepted).entries) == 1

    # the next run shows 已认可 in every output
    assert _cli("validate", folder, "--out", out, "--accepted", accepted, "--workers", 1).exit_code == 1
    office = out / FEEDBACK_DIR / f"某镇人民政府_{entry.year}"
    assert "[已认可]" in (office / "反馈.txt").read_text("utf-8-sig")
    assert ">已认可</span>" in (office / "反馈.html").read_text("utf-8")
    copy = openpyxl.load_workbook(next(office.glob("*.xlsx")))
    assert any("已认可：核实属实" in str(c.value) for row in copy[RESULT_SHEET].iter_rows() for c in row)
    ws = openpyxl.load_workbook(out / OVERVIEW)["全部问题"]
    marked = [r for r in ws.iter_rows(values_only=True) if r[3] == "已认可"]
    assert len(marked) == 1 and marked[0][accept_col - 1] == "是" and marked[0][reason_col - 1] == "核实属实"
    report = json.loads((out / REPORT).read_text("utf-8"))
    assert report["acceptances"]["accepted"] == 1 and report["acceptances"]["notices"] == []


def test_aggregate_takes_the_acceptance_file(tmp_path: Path) -> None:
    fid = _first_format()
    book = _write(tmp_path / "in", "a.xlsx", fid, _implausible(fid), office="某镇人民政府")
    batch = validate_paths([book], workers=1)
    warnings = [f for f in batch.workbooks[0].findings if f.severity == "warning"]
    entries = [Acceptance("某镇人民政府", CODE, batch.workbooks[0].report.year, f.rule or f.code,  # type: ignore[union-attr]
                          f.cells[0].id if f.cells else None, "属实", "张三", TODAY,
                          fingerprint=fingerprint(f, batch.workbooks[0].report)) for f in warnings]
    accepted = write_acceptances(tmp_path / "认可.csv", entries)
    year = batch.workbooks[0].report.year  # type: ignore[union-attr]
    result = _cli("aggregate", tmp_path / "in", "-o", tmp_path / "t.xlsx", "--office", "某县人民政府", "--year", year,
                  "--accepted", accepted, "--json", "--workers", 1)
    data = json.loads(result.stdout)
    assert [w["status"] for w in data["included"]] == ["ok"]
    assert data["acceptances"]["accepted"] == len(warnings) and data["acceptances"]["notices"] == []


# ------------------------------------------------------------------------------------------------
# Rounds


def _blank_cell(values: dict[str, object], format_id: str, skip: int = 0) -> str:
    """A cell whose value is 0 and sits in section 三 (blanking it keeps every identity), the `skip`-th."""
    return [c for c in get_format(format_id).cells if c.startswith("s3.") and values[c] == 0][skip]


def test_three_rounds_count_fixed_open_and_new(tmp_path: Path) -> None:
    fid = _first_format()
    fmt = get_format(fid)
    folder, out = tmp_path / "in", tmp_path / "out"
    base = _values(fid)
    a_blank, b_blank, b_other = (_blank_cell(base, fid, n) for n in (0, 1, 2))
    wrong_total = {**base, "s3.granted.total": base["s3.granted.total"] + 1}  # type: ignore[operator]

    def a(values: dict[str, object]) -> None:
        _write(folder, "甲.xlsx", fid, values, office="甲镇人民政府", code=CODE)

    def b(values: dict[str, object], name: str) -> None:
        _write(folder, "乙.xlsx", fid, values, office=name, code=None)

    def run() -> dict:
        write_outputs(validate_paths([folder], workers=1), out, workers=1)
        return json.loads((out / REPORT).read_text("utf-8"))

    def entry(report: dict, office: str) -> dict:
        return next(w for w in report["workbooks"] if w["office"] == office)

    def changes(report: dict, office: str) -> tuple:
        c = entry(report, office)["changes"]
        return c["matched_by"], c["previous"], c["fixed"], c["open"], c["new"]

    def without(values: dict[str, object], cell: str) -> dict[str, object]:
        return {k: v for k, v in values.items() if k != cell}

    # round 1: 甲 has an I2 error and a blank; 乙 a blank and a plausibility warning; 丙 sends only this once
    a(without(wrong_total, a_blank))
    b(without(_break(base, fid), b_blank), "乙镇（示例）人民政府")
    _write(folder, "丙.xlsx", fid, base, office="丙镇人民政府", code="91330200MA0000009X")
    first = run()
    assert first["round"] == {"number": 1, "previous": None, "repeat": False, "inputs": first["round"]["inputs"],
                              "not_resubmitted": []}
    assert changes(first, "甲镇人民政府") == (None, None, None, None, None)
    codes = {o: sorted(f["code"] for f in entry(first, o)["findings"]) for o in ("甲镇人民政府", "乙镇（示例）人民政府")}
    assert codes["甲镇人民政府"] == ["blank-cell", "identity-mismatch"]
    implausible = codes["乙镇（示例）人民政府"].count("implausible-value")
    assert codes["乙镇（示例）人民政府"] == ["blank-cell", *["implausible-value"] * implausible] and implausible >= 1
    # round 2: 甲 corrects the total; 乙 (its name typed with half-width brackets and spaces) fills its blank
    # but leaves another cell blank; 丙 sends nothing
    a(without(base, a_blank))
    b(without(_break(base, fid), b_other), "乙镇 (示例) 人民政府")
    (folder / "丙.xlsx").unlink()
    second = run()
    assert second["round"]["number"] == 2 and second["round"]["previous"] == 1
    assert changes(second, "甲镇人民政府") == ("credit_code", 2, 1, 1, 0)
    assert changes(second, "乙镇 (示例) 人民政府") == ("office", 1 + implausible, 1, implausible, 1)
    assert [e["office"] for e in second["round"]["not_resubmitted"]] == ["丙镇人民政府"]
    fixed, = entry(second, "甲镇人民政府")["changes"]["fixed_items"]
    assert (fixed["code"], fixed["rule"], fixed["cell"]["id"]) == ("identity-mismatch", "I2[granted]",
                                                                    "s3.granted.total")
    new, = entry(second, "乙镇 (示例) 人民政府")["changes"]["new_items"]
    assert (new["code"], new["cell"]["id"]) == ("blank-cell", b_other)
    feedback = (out / FEEDBACK_DIR / f"甲镇人民政府_{base[fmt.field('year').name]}" / "反馈.txt").read_text("utf-8-sig")
    assert "上一轮的 2 个问题已改正 1 个，仍有 1 个未改正" in feedback and "校验轮次：第 2 轮" in feedback
    # round 3: 甲 fills its blank; 乙 sends the same again
    a(base)
    third = run()
    assert third["round"]["number"] == 3
    assert changes(third, "甲镇人民政府") == ("credit_code", 1, 1, 0, 0)
    assert changes(third, "乙镇 (示例) 人民政府") == ("office", 1 + implausible, 0, 1 + implausible, 0)
    # the same data once more is the same round, still compared with the round before it
    again = run()
    assert again["round"]["number"] == 3 and again["round"]["repeat"] and again["round"]["previous"] == 2
    assert changes(again, "甲镇人民政府") == ("credit_code", 1, 1, 0, 0)
    for n, report in ((1, first), (2, second), (3, again)):
        kept = json.loads((round_folder(out, n) / REPORT).read_text("utf-8"))
        assert kept["round"]["number"] == n and kept["summary"] == report["summary"]
    summary = openpyxl.load_workbook(out / OVERVIEW)["汇总"]
    header = [c.value for c in summary[1]]
    row = next(r for r in summary.iter_rows(min_row=2, values_only=True) if r[0] == "甲镇人民政府")
    assert [row[header.index(k)] for k in ("轮次", "上一轮问题", "已改正", "仍未改正", "新出现")] == [3, 1, 1, 0, 0]


@pytest.mark.parametrize("format_id", ["2019", "2021"])
def test_the_round_digest_follows_the_data_and_nothing_else(format_id: str) -> None:
    """The digest that tells a rerun on the same data (one round) from new data (a new round): the same for
    the same offices in any order, whether a report's values are packed or a dict, 6 or 6.0; another for
    any one value changed by one or left blank."""
    import dataclasses

    from disclosure_xlsx.rounds import _inputs

    from .conftest import batch_of

    fmt = get_format(format_id)
    base: dict = dict(balanced_report(format_id, random.Random(7)))
    digest = _inputs(batch_of(format_id, [(base, "甲镇"), (base, "乙镇")], 2024))

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cell=st.sampled_from(list(fmt.cells)), blank=st.booleans())
    def check(cell: str, blank: bool) -> None:
        batch = batch_of(format_id, [(base, "乙镇"), (base, "甲镇")], 2024)
        assert _inputs(batch) == digest
        first = batch.workbooks[0]
        as_dict = {c: float(v) if isinstance(v, int) else v for c, v in first.report.values.items()}  # type: ignore[union-attr]
        first.report = dataclasses.replace(first.report, values=as_dict)  # type: ignore[type-var]
        assert _inputs(batch) == digest
        changed = {**base, cell: None if blank and base[cell] is not None else (base[cell] or 0) + 1}
        assert _inputs(batch_of(format_id, [(changed, "甲镇"), (base, "乙镇")], 2024)) != digest

    check()


def test_a_rerun_after_an_upgrade_repeats_the_round_an_earlier_version_wrote(tmp_path: Path) -> None:
    """A round written before the digest was versioned holds the digest that version took (every value
    spelled by number_text); the same data again after the upgrade is still the same round, and new data
    is the next one."""
    import hashlib

    from disclosure_xlsx.accept import code_key, office_key
    from disclosure_xlsx.catalog import number_text

    fid = _first_format()
    folder, out = tmp_path / "in", tmp_path / "out"
    base = _values(fid)
    _write(folder, "甲.xlsx", fid, base, office="甲镇人民政府", code=CODE)

    def earlier_digest(batch) -> str:  # as rounds.py computed it before the digest had a version
        items = sorted(json.dumps([office_key(w.report.office), code_key(w.report.credit_code), w.report.year,
                                   w.report.format_id, [number_text(v) for v in w.report.values.values()],
                                   sorted(w.report.texts.items())], ensure_ascii=False, default=str)
                       for w in batch.workbooks)
        return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()[:16]

    batch = validate_paths([folder], workers=1)
    write_outputs(batch, out, workers=1)
    written = json.loads((out / REPORT).read_text("utf-8"))
    assert written["round"]["inputs"] != earlier_digest(batch)  # versioned now
    for path in (out / REPORT, round_folder(out, 1) / REPORT):  # as the earlier version left them
        if path.exists():
            kept = json.loads(path.read_text("utf-8"))
            kept["round"]["inputs"] = earlier_digest(batch)
            path.write_text(json.dumps(kept, ensure_ascii=False), "utf-8")
    write_outputs(validate_paths([folder], workers=1), out, workers=1)
    again = json.loads((out / REPORT).read_text("utf-8"))["round"]
    assert (again["number"], again["repeat"]) == (1, True)
    _write(folder, "甲.xlsx", fid, {**base, "s3.granted.total": base["s3.granted.total"] + 1},  # type: ignore[operator]
           office="甲镇人民政府", code=CODE)
    write_outputs(validate_paths([folder], workers=1), out, workers=1)
    assert json.loads((out / REPORT).read_text("utf-8"))["round"]["number"] == 2


def test_an_accepted_warning_is_neither_open_nor_fixed(tmp_path: Path) -> None:
    fid = _first_format()
    folder, out = tmp_path / "in", tmp_path / "out"
    values = _implausible(fid)
    _write(folder, "a.xlsx", fid, values, office="某镇人民政府")
    write_outputs(validate_paths([folder], workers=1), out, workers=1)
    before = json.loads((out / REPORT).read_text("utf-8"))["workbooks"][0]["findings"]
    # round 2: one more cell left blank, and the county accepts one warning
    _write(folder, "a.xlsx", fid, {k: v for k, v in values.items() if k != _blank_cell(values, fid)},
           office="某镇人民政府")
    batch = validate_paths([folder], workers=1)
    warning = next(f for f in batch.workbooks[0].findings if f.code == "implausible-value")
    entry = Acceptance("某镇人民政府", CODE, batch.workbooks[0].report.year, warning.rule or warning.code,  # type: ignore[union-attr]
                       warning.cells[0].id, "属实", "张三", TODAY, fingerprint=fingerprint(warning, batch.workbooks[0].report))
    apply_acceptances(batch, AcceptanceFile(tmp_path / "a.csv", [entry]))
    write_outputs(batch, out, workers=1)
    report = json.loads((out / REPORT).read_text("utf-8"))
    changes = report["workbooks"][0]["changes"]
    assert (changes["previous"], changes["fixed"], changes["open"], changes["new"], changes["accepted"]) == (
        len(before), 0, len(before) - 1, 1, 1)
    assert "另有 1 个经县里认可" in (out / FEEDBACK_DIR / next(p.name for p in (out / FEEDBACK_DIR).iterdir() if p.is_dir())
                                  / "反馈.txt").read_text("utf-8-sig")
    # run again with the same data (the acceptance file changed, say): the same round, the same changes
    write_outputs(batch, out, workers=1)
    again = json.loads((out / REPORT).read_text("utf-8"))
    assert again["round"]["number"] == 2 and again["round"]["repeat"] and again["workbooks"][0]["changes"] == changes


# ------------------------------------------------------------------------------------------------


def _first_format() -> str:
    return next(iter(sorted(_formats())))


def _formats() -> list[str]:
    from disclosure_xlsx.formats import all_formats

    return list(all_formats())


def _break(values: dict[str, object], format_id: str) -> dict[str, object]:
    rule = _rule(get_format(format_id))
    return {**values, rule.lhs[0]: sum(values[c] for c in rule.rhs) + 2}  # type: ignore[misc]


def shutil_copy(source: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / source.name).write_bytes(source.read_bytes())
