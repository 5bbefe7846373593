"""The output side of issue 21: every writer isolated per workbook, inputs never touched, nothing live in any
output, one run at a time, a kill or a full disk leaving the previous outputs whole.

Every test writes real workbooks (and, for a 40,000-character text, a published report as .txt: a workbook
cell holds at most 32,767 characters), runs the commands as users do (the CLI, or a real subprocess where a
signal or a second process is the point), and opens every output again with openpyxl, the csv module,
lxml and zipfile.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest
from lxml import etree
from python_calamine import CalamineWorkbook
from lxml import html as lxml_html
from typer.testing import CliRunner

from disclosure_xlsx import convert as convert_module
from disclosure_xlsx import feedback as feedback_module
from disclosure_xlsx import publish as publish_module
from disclosure_xlsx._sheetml import TextTooLong
from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.cli import app
from disclosure_xlsx.convert import DATA_CSV, convert_paths
from disclosure_xlsx.feedback import FEEDBACK_DIR, OVERVIEW, REPORT, safe_name, write_outputs
from disclosure_xlsx.formats import get_format
from disclosure_xlsx.marks import MARKER
from disclosure_xlsx.outputs import LOCK, PREFIX, OutputLock, csv_text
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.publish import publish_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .test_documents import TEXTS, printed_values, title_of, write_txt

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# What a hostile office types: a DDE payload, formula starts, markup, control characters.
HOSTILE_OFFICES = ["=cmd|' /C calc'!A0 某镇", "+1", "@SUM(A1)", "<script>alert(1)</script>某镇",
                   "-2+3某镇人民政府", "\t=1+2某镇", "某\x01镇\x07人民政府", '<img src=x onerror="alert(1)">某镇']
HOSTILE_TEXTS = {"text_problems": '=HYPERLINK("http://evil.example/x","点击")', "text_other": "@SUM(A1)+cmd|' /C calc'!A0"}
# Substrings found only in hostile text: a formula, a link or an element carrying one would be live.
MARKERS = ("calc", "SUM(A1)", "alert(1)", "onerror", "evil.example", "1+2")


def _workbook(path: Path, office: str, *, seed: int = 1, error: bool = False, format_id: str = "2021",
              **extra: object) -> Path:
    fmt = get_format(format_id)
    year = 2024 if format_id == "2021" else fmt.first_year
    values: dict[str, object] = {**balanced_report(format_id, random.Random(seed)), fmt.field("office").name: office,
                                 fmt.field("year").name: year, **extra}
    if error:
        values["s3.granted.total"] = 999  # breaks I2: the office gets an annotated copy
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_template(path, format_id, values=values)


def _good(folder: Path, n: int, start: int = 0) -> list[Path]:
    return [_workbook(folder / f"good{i:02d}.xlsx", f"第{i}镇人民政府", seed=i, error=i % 2 == 0)
            for i in range(start, start + n)]


def _long_text(path: Path, office: str = "长文镇人民政府") -> Path:
    """A published report whose 一 holds 40,000 characters: more than a spreadsheet cell can take."""
    fmt = get_format("2021")
    printed = printed_values(fmt, balanced_report("2021", random.Random(7)))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_txt(path, fmt, printed, title=title_of(fmt, 2024, office),
                     texts={**TEXTS, "text_overview": "长" * 40_000})


def _tree(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones too) with its digest."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(*folders: Path) -> list[str]:
    """Hidden entries a run leaves besides the marker file: staging, moved-aside folders, locks, temporaries."""
    return sorted(p.name for f in folders if f.exists() for p in f.iterdir()
                  if p.name.startswith(".") and p.name != MARKER)


# ------------------------------------------------------------------------------------------------
# Nothing live in any output


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _check_xlsx(path: Path) -> None:
    book = openpyxl.load_workbook(path)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                value = str(cell.value) if cell.value is not None else ""
                if any(m in value for m in MARKERS):
                    assert cell.data_type in ("s", "inlineStr"), (path.name, sheet.title, cell.coordinate)
                if cell.data_type == "f":
                    assert not any(m in value for m in MARKERS), (path.name, cell.coordinate, value)
                if cell.hyperlink is not None:  # only the tool's own links to its own cells
                    assert not cell.hyperlink.target and not any(m in str(cell.hyperlink.location) for m in MARKERS)
        for link in sheet._hyperlinks:
            assert not link.target, (path.name, link.target)
    for name in book.defined_names.values():
        assert not any(m in str(name.attr_text) for m in MARKERS)


def _check_csv(path: Path) -> None:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        for row in csv.reader(stream):
            for field in row:
                if field[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    assert _is_number(field), (path.name, field)


def _check_html(path: Path) -> None:
    page = lxml_html.fromstring(path.read_bytes())
    assert not list(page.iter("script", "iframe", "object", "embed", "img", "a", "link"))
    for element in page.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (path.name, element.tag, name)
            assert not any(m in value for m in MARKERS), (path.name, element.tag, name, value)


W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _check_docx(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not name.endswith(".xml"):
                continue
            root = etree.fromstring(archive.read(name))
            for element in root.iter():
                if not isinstance(element.tag, str):
                    continue
                assert element.tag not in (f"{W}hyperlink", f"{W}object"), (path.name, name)
                if element.text and any(m in element.text for m in MARKERS) and name.startswith("word/"):
                    assert element.tag == f"{W}t", (path.name, name, element.tag)  # (docProps: the title, as text)
                assert not any(m in v for v in element.attrib.values() for m in MARKERS), (path.name, element.tag)
            if name == "word/_rels/document.xml.rels":
                assert b"External" not in archive.read(name)


def _check_everything(root: Path) -> dict[str, int]:
    """Open every output below `root`; the count of files checked by kind."""
    seen: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(root)
        for part in relative.parts:  # names made from office names start with no formula character
            assert not part.startswith(("=", "+", "-", "@", "\t")), relative
        suffix = path.suffix.lower()
        check = {".xlsx": _check_xlsx, ".xlsm": _check_xlsx, ".csv": _check_csv, ".html": _check_html,
                 ".docx": _check_docx, ".json": lambda p: json.loads(p.read_text("utf-8"))}.get(suffix)
        if check is not None:
            check(path)
            seen[suffix] = seen.get(suffix, 0) + 1
    return seen


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A hostile batch through validate --out, convert and publish --draft (the CLI, two workers)."""
    root = tmp_path_factory.mktemp("hostile")
    inputs = root / "in"
    for i, office in enumerate(HOSTILE_OFFICES):
        _workbook(inputs / f"h{i}.xlsx", office, seed=i, error=i % 2 == 0, **HOSTILE_TEXTS)
    _workbook(inputs / "negative.xlsx", "=负数镇", format_id="2019", seed=3, **{"s2.licensing.delta_items": -3})
    _long_text(inputs / "long.txt", "=长文镇人民政府")  # a .txt is read only when named
    before = _tree(inputs)
    results = {
        "validate": runner.invoke(app, ["validate", str(inputs), str(inputs / "long.txt"), "--out", str(root / "v"),
                                        "--workers", "2"]),
        "convert": runner.invoke(app, ["convert", str(inputs), str(inputs / "long.txt"), "--out", str(root / "c"),
                                       "--workers", "2"]),
        "publish": runner.invoke(app, ["publish", str(inputs), str(inputs / "long.txt"), "--out", str(root / "p"),
                                       "--draft", "--workers", "2"]),
    }
    assert _tree(inputs) == before  # inputs are only ever read
    return {"root": root, "results": results, "count": len(HOSTILE_OFFICES) + 2}


def test_no_output_of_a_hostile_batch_carries_a_formula_a_link_or_markup(hostile: dict) -> None:
    root = hostile["root"]
    for command, result in hostile["results"].items():
        assert result.exit_code == 1, (command, result.stdout, result.stderr, result.exception)
    count = hostile["count"]
    validated = _check_everything(root / "v")
    assert validated[".html"] == count and validated[".json"] >= 2 and validated[".xlsx"] >= 1 + count // 2
    converted = _check_everything(root / "c")
    assert converted[".csv"] == 1 and converted[".xlsx"] == count - 1  # the 40,000 characters fit no cell
    published = _check_everything(root / "p")
    assert published[".docx"] == count and published[".html"] == count


def test_csv_text_stays_text_and_numbers_stay_numbers(hostile: dict) -> None:
    with (hostile["root"] / "c" / DATA_CSV).open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    offices = {row[0] for row in rows[1:]}
    assert "'=cmd|' /C calc'!A0 某镇" in offices and "'+1" in offices and "'@SUM(A1)" in offices
    assert "'=1+2某镇" in offices and "'-2+3某镇人民政府" in offices
    assert any(row[3] == "s2.licensing.delta_items" and row[7] == "-3" for row in rows)  # a number, unquoted
    assert [csv_text(v) for v in (-3, 2.5, None, "某镇", "-x", " =1")] == [-3, 2.5, None, "某镇", "'-x", "' =1"]


def test_names_made_from_office_names_lose_formula_starts(hostile: dict) -> None:
    folders = sorted(p.name for p in (hostile["root"] / "v" / FEEDBACK_DIR).iterdir() if p.is_dir())
    assert "cmd_' _C calc'!A0 某镇_2024" in folders and "1_2024" in folders and "SUM(A1)_2024" in folders
    assert safe_name("=+-@") == safe_name("") and safe_name("\t=1+2某镇") == "1+2某镇"


def test_what_cannot_be_written_for_one_office_is_told_and_the_rest_written(hostile: dict) -> None:
    out = hostile["root"] / "v"
    report = json.loads((out / REPORT).read_text("utf-8"))
    entry = next(w for w in report["workbooks"] if w["file"].endswith("long.txt"))
    assert entry["annotation"] == {"made": True, "reason": None, "problem": None}  # rebuilt from the template
    converted = "".join(hostile["results"]["convert"].stdout.split())  # lines as the terminal wraps them
    assert "没能写出清洗后的工作簿（其中有一段文字超过电子表格单元格能容纳的32,767个字符）" in converted
    published = hostile["results"]["publish"].stdout
    assert published.count(".docx") == hostile["count"]


def test_the_office_and_the_county_are_told_why_a_copy_is_missing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    files = [*_good(tmp_path / "in", 2), _workbook(tmp_path / "in" / "hostile.xlsx", "恶意镇人民政府", error=True),
             _workbook(tmp_path / "in" / "old.xlsx", "旧模板镇人民政府", format_id="2019", seed=5, error=True,
                       meta_year=2024)]
    monkeypatch.setattr(feedback_module, "annotate", _aborting(feedback_module.annotate, "hostile"))

    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise TextTooLong("xlsxwriter refused to write a text of 40,000 characters at row 3, col 2 (code -2)")

    monkeypatch.setattr(feedback_module, "write_refill", refused)
    out = write_outputs(validate_paths(files, workers=1), tmp_path / "out", workers=2)
    report = json.loads((out / REPORT).read_text("utf-8"))
    entries = {Path(w["file"]).name: w for w in report["workbooks"]}
    assert entries["hostile.xlsx"]["annotation"]["made"] is False
    assert entries["hostile.xlsx"]["annotation"]["problem"].startswith("crashed")
    assert entries["old.xlsx"]["annotation"]["made"] is True  # its copy is made; its new template is not
    assert entries["old.xlsx"]["new_template"]["made"] is False
    assert "32,767" in entries["old.xlsx"]["new_template"]["reason"]["zh"]
    assert entries["good00.xlsx"]["annotation"] == {"made": True, "reason": None, "problem": None}
    assert "annotation" not in entries["good01.xlsx"]  # no findings: no copy was wanted
    hostile_folder = out / entries["hostile.xlsx"]["feedback_dir"]
    said = (hostile_folder / "反馈.txt").read_text("utf-8-sig")
    assert "未能写出：未能生成“校验标注”工作簿（处理时程序出错）" in said and "随附的“校验标注”工作簿" not in said
    page = (hostile_folder / "反馈.html").read_text("utf-8")
    assert "未能生成“校验标注”工作簿" in page
    assert sorted(p.name for p in hostile_folder.iterdir()) == ["反馈.html", "反馈.txt"]  # no half-written copy
    old = (out / entries["old.xlsx"]["feedback_dir"] / "反馈.txt").read_text("utf-8-sig")
    assert "没能写出预填的新模板" in old and "_新模板.xlsx" not in old
    summary = openpyxl.load_workbook(out / OVERVIEW)["汇总"]
    header = [c.value for c in summary[1]]
    column = header.index("未能写出的文件") + 1
    notes = {summary.cell(r, 2).value: summary.cell(r, column).value for r in range(2, summary.max_row + 1)}
    assert "未能生成“校验标注”工作簿" in notes["hostile.xlsx"] and "预填的新模板" in notes["old.xlsx"]
    assert notes["good00.xlsx"] is None and notes["good01.xlsx"] is None
    assert summary.auto_filter.ref.endswith(f"{openpyxl.utils.get_column_letter(column)}{summary.max_row}")


# ------------------------------------------------------------------------------------------------
# One workbook's writer failing costs that workbook's output only


def _aborting(real, marker: str):  # type: ignore[no-untyped-def]
    """`real`, except that for the hostile workbook the worker process aborts outright."""
    def writer(*args, **kwargs):  # type: ignore[no-untyped-def]
        if marker in repr(args):
            os.abort()
        return real(*args, **kwargs)
    return writer


@pytest.fixture(scope="module")
def batch21(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("batch21")
    return folder, _good(folder / "in", 20)


@pytest.mark.parametrize("hostile_kind", ["long_text", "abort", "merged"])
def test_twenty_good_files_keep_their_results_beside_one_hostile(batch21, hostile_kind: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder, good = batch21
    if hostile_kind == "long_text":
        bad = _long_text(tmp_path / "hostile.txt", "恶意镇人民政府")
    else:
        bad = _workbook(tmp_path / "hostile.xlsx", "恶意镇人民政府", seed=99, error=True)
        if hostile_kind == "merged":  # an office merging input cells (B8:C8) and its total
            book = openpyxl.load_workbook(bad)
            name, ref = book.defined_names["s3_granted_total"].attr_text.split("!")
            sheet = book[name.strip("'")]
            cell = sheet[ref.replace("$", "")]
            sheet.merge_cells(start_row=cell.row, start_column=cell.column - 1, end_row=cell.row, end_column=cell.column)
            book.save(bad)
        else:
            monkeypatch.setattr(feedback_module, "annotate", _aborting(feedback_module.annotate, "hostile"))
            monkeypatch.setattr(convert_module, "write_cleaned", _aborting(convert_module.write_cleaned, "hostile"))
    files = [*good, bad]
    batch = validate_paths(files, workers=2)
    out = write_outputs(batch, tmp_path / "v", workers=2)
    report = json.loads((out / REPORT).read_text("utf-8"))
    assert len(report["workbooks"]) == 21
    for entry in report["workbooks"][:20]:
        folder_ = out / entry["feedback_dir"]
        assert (folder_ / "反馈.txt").is_file() and (folder_ / "反馈.html").is_file()
        copies = [p for p in folder_.iterdir() if p.suffix == ".xlsx"]
        assert len(copies) == (1 if entry["findings"] else 0)
        assert entry.get("annotation", {"made": True})["made"] is True
        for copy in copies:
            assert CalamineWorkbook.from_path(str(copy)).sheet_names  # whole and readable
    hostile_entry = report["workbooks"][20]
    assert (out / hostile_entry["feedback_dir"] / "反馈.txt").is_file()
    # a long text still gets its copy (rebuilt from the template); a worker that aborts costs the copy only
    assert hostile_entry["annotation"]["made"] is (hostile_kind != "abort")
    _, done = convert_paths(files, tmp_path / "c", workers=2)
    assert [d.output is not None for d in done] == [True] * 20 + [hostile_kind == "merged"]
    for item in done[:20]:
        assert CalamineWorkbook.from_path(str(item.output)).sheet_names
    if hostile_kind != "merged":
        assert done[20].problem is not None and done[20].problem.code == "output-not-made"
    with (tmp_path / "c" / DATA_CSV).open(encoding="utf-8-sig", newline="") as stream:
        offices = {row[0] for row in list(csv.reader(stream))[1:]}
    assert len(offices) == 21  # the long form keeps every workbook's values
    assert _leftovers(tmp_path / "v", tmp_path / "v" / FEEDBACK_DIR, tmp_path) == []


def test_a_report_that_cannot_be_published_is_a_note_and_the_others_are_written(
        batch21, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, good = batch21
    bad = _workbook(tmp_path / "hostile.xlsx", "恶意镇人民政府", seed=99)
    monkeypatch.setattr(publish_module, "write_docx", _aborting(publish_module.write_docx, "恶意镇"))
    _, done = publish_paths([*good[1::2], bad], tmp_path / "p", workers=2)
    assert [d.docx is not None for d in done] == [True] * 10 + [False]
    assert done[-1].problem is not None and done[-1].problem.code == "output-not-made"
    assert "写出时程序意外中止" in done[-1].problem.message("zh")
    assert sorted(p.suffix for p in (tmp_path / "p").iterdir()) == sorted([".docx", ".html"] * 10 + [".json"])


# ------------------------------------------------------------------------------------------------
# Inputs are sacred


def test_convert_never_blanks_an_input_inside_its_output(tmp_path: Path) -> None:
    source = _workbook(tmp_path / "in" / "x.xlsx", "某镇人民政府", format_id="2019", seed=4)
    out = tmp_path / "OUT"
    assert runner.invoke(app, ["convert", str(source), "--out", str(out)]).exit_code == 0
    inside = out / "x.xlsx"
    inside.write_bytes(source.read_bytes())  # the clerk put the office's file into the output folder
    before = _tree(out)
    for extra in ([], ["--force"]):
        result = runner.invoke(app, ["convert", str(inside), "--out", str(out), "--format-to", "2021", *extra])
        assert result.exit_code == 2, result.stdout
        assert "是这次要读取的输入" in result.stderr and "x.xlsx" in result.stderr
    assert _tree(out) == before
    result = runner.invoke(app, ["convert", str(out), "--out", str(out), "--force"])  # the folder itself
    assert result.exit_code == 2 and _tree(out) == before


def test_an_annotated_copy_named_as_input_is_never_deleted(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _good(inputs, 2)
    out = tmp_path / "校验结果"
    assert runner.invoke(app, ["validate", str(inputs), "--out", str(out)]).exit_code == 1
    copy = next((out / FEEDBACK_DIR).rglob("*_校验标注.xlsx"))
    before = _tree(out)
    result = runner.invoke(app, ["validate", str(copy), str(inputs), "--out", str(out)])
    assert result.exit_code == 2 and "是这次要读取的输入" in result.stderr
    assert _tree(out) == before


def test_validate_out_writes_only_into_an_empty_or_its_own_folder(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _good(inputs, 1, start=1)
    desk = tmp_path / "桌面"
    desk.mkdir()
    (desk / "我的文件.docx").write_bytes(b"mine")
    result = runner.invoke(app, ["validate", str(inputs), "--out", str(desk)])
    assert result.exit_code == 2 and "不是本工具写出的输出文件夹" in result.stderr
    assert sorted(p.name for p in desk.iterdir()) == ["我的文件.docx"]  # no marker: its files stay searchable
    out = tmp_path / "out"
    (out / FEEDBACK_DIR / "笔记").mkdir(parents=True)  # a feedback/ the tool did not write
    (out / FEEDBACK_DIR / "笔记" / "a.txt").write_text("mine", "utf-8")
    result = runner.invoke(app, ["validate", str(inputs), "--out", str(out)])
    assert result.exit_code == 2 and "feedback" in result.stderr
    assert (out / FEEDBACK_DIR / "笔记" / "a.txt").read_text("utf-8") == "mine"
    legacy = tmp_path / "legacy"  # an output folder of a version that wrote no marker: taken as the tool's own
    assert runner.invoke(app, ["validate", str(inputs), "--out", str(legacy)]).exit_code == 0
    for marker in legacy.rglob(MARKER):
        marker.unlink()
    assert runner.invoke(app, ["validate", str(inputs), "--out", str(legacy)]).exit_code == 0
    assert (legacy / MARKER).is_file()


def test_one_command_never_replaces_another_commands_folder(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _good(inputs, 1, start=1)
    assert runner.invoke(app, ["validate", str(inputs), "--out", str(tmp_path / "校验结果")]).exit_code == 0
    before = _tree(tmp_path / "校验结果")
    result = runner.invoke(app, ["convert", str(inputs), "--out", str(tmp_path / "校验结果"), "--force"])
    assert result.exit_code == 2 and "不是本工具写出的输出文件夹" in result.stderr  # its rounds would be lost
    result = runner.invoke(app, ["publish", str(inputs), "--out", str(tmp_path / "校验结果")])
    assert result.exit_code == 2 and _tree(tmp_path / "校验结果") == before
    assert runner.invoke(app, ["convert", str(inputs), "--out", str(tmp_path / "清洗结果")]).exit_code == 0
    result = runner.invoke(app, ["validate", str(inputs), "--out", str(tmp_path / "清洗结果")])
    assert result.exit_code == 2 and not (tmp_path / "清洗结果" / REPORT).exists()


def test_aggregate_and_publish_refuse_to_write_over_an_input(tmp_path: Path) -> None:
    (path,) = _good(tmp_path / "in", 1, start=1)
    before = path.read_bytes()
    result = runner.invoke(app, ["aggregate", str(path), "-o", str(path), "--office", "县", "--year", "2024",
                                 "--force"])
    assert result.exit_code == 2 and "是这次要读取的输入" in result.stderr and path.read_bytes() == before
    result = runner.invoke(app, ["publish", str(path), "--out", str(tmp_path / "in")])
    assert result.exit_code == 2 and path.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [path.name]


# ------------------------------------------------------------------------------------------------
# One run at a time


def _lock_of(pid: int) -> bytes:
    from disclosure_xlsx.outputs import _start_ticks

    return json.dumps({"tool": "disclosure-xlsx", "pid": pid, "started": _start_ticks(pid),
                       "since": "2025-01-01T09:00:00"}).encode()


def test_a_live_lock_refuses_and_a_dead_ones_is_taken_over(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _good(inputs, 1, start=1)
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (out / LOCK).write_bytes(_lock_of(sleeper.pid))
        result = runner.invoke(app, ["validate", str(inputs), "--out", str(out)])
        assert result.exit_code == 2 and f"进程 {sleeper.pid}" in result.stderr and LOCK in result.stderr
        assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing written
    finally:
        sleeper.kill()
        sleeper.wait()
    result = runner.invoke(app, ["validate", str(inputs), "--out", str(out)])  # its process is gone: stale
    assert result.exit_code == 0, result.stderr
    assert not (out / LOCK).exists()
    reused = json.loads(_lock_of(os.getpid()))  # our own pid, but another process's start time: a reused pid
    reused["started"] = (reused["started"] or 0) + 1
    (out / LOCK).write_text(json.dumps(reused), "utf-8")
    assert runner.invoke(app, ["validate", str(inputs), "--out", str(out)]).exit_code == 0
    with OutputLock(out / LOCK, out), OutputLock(out / LOCK, out):  # taken again by its holder: counted
        assert (out / LOCK).is_file()
    assert not (out / LOCK).exists()


def _copies(folder: Path, source: list[Path], n: int) -> Path:
    for i in range(n):
        target = folder / f"copy{i:03d}.xlsx"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source[i % len(source)].read_bytes())
    return folder


def _start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start the CLI with its temporary folder under `cwd`: a run killed with -9 cannot remove its workers'
    folder, and it must not be left in the machine's /tmp."""
    scratch = cwd / "tmp"
    scratch.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "disclosure_xlsx", *args], env={**ENV, "TMPDIR": str(scratch)},
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(proc: subprocess.Popen[bytes], found, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    while not found():
        assert proc.poll() is None and time.monotonic() < deadline, f"the run ended before {what}"
        time.sleep(0.005)


def test_a_second_run_into_the_same_out_is_refused_and_the_first_unharmed(batch21, tmp_path: Path) -> None:
    _, good = batch21
    many = _copies(tmp_path / "many", good, 40)
    out = tmp_path / "out"
    first = _start(["validate", str(many), "--out", str(out), "--workers", "1"], tmp_path)
    _wait_for(first, lambda: (out / LOCK).exists(), "it took the lock")
    second = runner.invoke(app, ["validate", str(good[1]), "--out", str(out)])
    assert second.exit_code == 2 and "另一次运行" in second.stderr and str(first.pid) in second.stderr
    stdout, stderr = first.communicate(timeout=180)
    assert first.returncode == 1, stderr.decode()
    report = json.loads((out / REPORT).read_text("utf-8"))
    assert len(report["workbooks"]) == 40
    assert len([p for p in (out / FEEDBACK_DIR).iterdir() if p.is_dir()]) == 40
    assert _leftovers(out) == []


# ------------------------------------------------------------------------------------------------
# kill -9 mid-write; a full disk


def test_kill_9_mid_write_leaves_the_previous_outputs_and_the_next_run_cleans_up(batch21, tmp_path: Path) -> None:
    _, good = batch21
    out = tmp_path / "out"
    assert runner.invoke(app, ["validate", str(good[0]), str(good[1]), "--out", str(out)]).exit_code == 1
    before = _tree(out)
    many = _copies(tmp_path / "many", good, 40)
    proc = _start(["validate", str(many), "--out", str(out), "--workers", "1"], tmp_path)
    _wait_for(proc, lambda: any(out.glob(f"{PREFIX}new-*/{FEEDBACK_DIR}/*")), "it wrote into its staging folder")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    after = _tree(out)
    assert {k: v for k, v in after.items() if not k.startswith(PREFIX)} == before  # the previous outputs, whole
    assert (out / LOCK).is_file()  # left by the killed run: its pid is gone
    result = runner.invoke(app, ["validate", str(many), "--out", str(out)])
    assert result.exit_code == 1, result.stderr
    assert _leftovers(out, out / FEEDBACK_DIR) == []
    assert len(json.loads((out / REPORT).read_text("utf-8"))["workbooks"]) == 40


def test_kill_9_mid_convert_leaves_the_previous_folder_and_the_next_run_cleans_up(batch21, tmp_path: Path) -> None:
    _, good = batch21
    out = tmp_path / "清洗结果"
    convert_paths(good[:2], out, workers=1)
    before = _tree(out)
    many = _copies(tmp_path / "many", good, 150)  # a second or more of writing, even stamped (~8 ms a workbook)
    proc = _start(["convert", str(many), "--out", str(out), "--force", "--workers", "1"], tmp_path)
    _wait_for(proc, lambda: any(any(s.glob("*.xlsx")) for s in tmp_path.glob(f".{out.name}.new-*")),
              "it wrote into its staging folder")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert _tree(out) == before
    assert (tmp_path / f".{out.name}.lock").is_file() and list(tmp_path.glob(f".{out.name}.new-*"))
    result = runner.invoke(app, ["convert", str(many), "--out", str(out), "--force"])
    assert result.exit_code == 1, result.stdout  # some of the workbooks have errors
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert len(list(out.glob("*.xlsx"))) == 150


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 2 MiB tmpfs (needs root and mount(8); skipped cleanly where the sandbox does not allow it)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill `disk` until only about `leave` bytes are free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / "filler.bin"
    with filler.open("wb") as stream:
        stream.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_is_one_message_and_no_partial_output(small_disk: Path, batch21) -> None:
    _, good = batch21
    good = good[:10]
    out, cleaned = small_disk / "校验结果", small_disk / "清洗结果"
    assert runner.invoke(app, ["validate", str(good[0]), "--out", str(out)]).exit_code == 1
    convert_paths([good[1]], cleaned, workers=1)
    filler = _fill(small_disk, 64 * 1024)
    before = _tree(small_disk)
    result = runner.invoke(app, ["validate", *map(str, good), "--out", str(out)])
    assert result.exit_code == 2 and "磁盘空间不足" in result.stderr, (result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    result = runner.invoke(app, ["convert", *map(str, good), "--out", str(cleaned), "--force"])
    assert result.exit_code == 2 and "磁盘空间不足" in result.stderr, (result.stdout, result.stderr)
    assert _tree(small_disk) == before  # the previous outputs, and nothing new
    filler.unlink()
    assert runner.invoke(app, ["validate", *map(str, good), "--out", str(out)]).exit_code == 1
    assert len(json.loads((out / REPORT).read_text("utf-8"))["workbooks"]) == 10


def test_a_full_disk_in_any_writer_is_the_same_message(batch21, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a small disk to fill: a writer in the parent and one in a worker told ENOSPC."""
    _, good = batch21
    batch = validate_paths(good[:4], workers=1)
    out = write_outputs(batch, tmp_path / "out", workers=1)
    before = _tree(out)

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    for module, name in ((feedback_module, "_write_overview"), (feedback_module, "write_refill"),
                         (feedback_module, "annotate")):
        with monkeypatch.context() as patch:
            patch.setattr(module, name, full)
            if name == "write_refill":
                patch.setattr(feedback_module, "refill_for", lambda report: object())
            with pytest.raises(DisclosureError) as caught:
                write_outputs(batch, out, workers=1)
        assert caught.value.finding.code == "output-disk-full", name
        assert _tree(out) == before and _leftovers(out) == []
    with monkeypatch.context() as patch:
        patch.setattr(convert_module, "write_cleaned", full)
        with pytest.raises(DisclosureError) as caught:
            convert_paths(good[:2], tmp_path / "c", workers=1)
    assert caught.value.finding.code == "output-disk-full" and not (tmp_path / "c").exists()


# ------------------------------------------------------------------------------------------------
# An --out that is a file, read-only, or inside the input


def test_an_out_that_is_a_file_or_read_only_is_a_message(batch21, tmp_path: Path, small_disk: Path) -> None:
    _, good = batch21
    a_file = tmp_path / "结果.txt"
    a_file.write_text("mine", "utf-8")
    for command in ("validate", "convert", "publish"):
        result = runner.invoke(app, [command, str(good[1]), "--out", str(a_file)])
        assert result.exit_code == 2 and a_file.read_text("utf-8") == "mine", command
    with pytest.raises(DisclosureError) as caught:
        write_outputs(validate_paths([good[1]], workers=1), a_file, workers=1)
    assert caught.value.finding.code == "output-not-writable"
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for command in ("validate", "convert", "publish"):
        result = runner.invoke(app, [command, str(good[1]), "--out", str(small_disk / "out")])
        assert result.exit_code == 2 and "只读" in result.stderr, (command, result.stdout, result.stderr)


def test_an_out_inside_the_input_folder_is_left_out_of_the_search(batch21, tmp_path: Path) -> None:
    _, good = batch21
    inputs = tmp_path / "交回的报表"
    for path in good[:3]:
        (inputs / path.name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / path.name).write_bytes(path.read_bytes())
    for _ in range(2):
        result = runner.invoke(app, ["validate", str(inputs), "--out", str(inputs / "校验结果")])
        assert result.exit_code == 1
        assert len(json.loads((inputs / "校验结果" / REPORT).read_text("utf-8"))["workbooks"]) == 3
    result = runner.invoke(app, ["convert", str(inputs), "--out", str(inputs / "清洗结果")])
    assert result.exit_code == 1 and len(list((inputs / "清洗结果").glob("*.xlsx"))) == 3


def test_the_readme_quotes_the_output_limits_of_the_code() -> None:
    import re

    from disclosure_xlsx import limits

    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("### What the outputs promise"):]
    section = section[:section.index("\n### ", 10)]
    quoted = set(re.findall(r"\*\*[\d,]+ (?:characters|s)\*\*", section))
    assert quoted == {f"**{limits.CELL_TEXT_MAX:,} characters**", f"**{limits.WRITE_TIMEOUT_SECONDS:g} s**"}


def test_an_input_inside_the_output_is_found_through_links_and_only_there(tmp_path: Path) -> None:
    """`output-is-input`: the output itself, a file inside it, and a link elsewhere that leads into it are
    inputs inside the output; a folder whose name merely begins with the output's is not."""
    from disclosure_xlsx.outputs import input_problem

    out, beside = tmp_path / "校验结果", tmp_path / "校验结果-2"
    for folder in (out / "feedback", beside):
        folder.mkdir(parents=True)
    (out / "feedback" / "a.xlsx").write_bytes(b"")
    (beside / "b.xlsx").write_bytes(b"")
    (tmp_path / "link.xlsx").symlink_to(out / "feedback" / "a.xlsx")
    (tmp_path / "folder-link").symlink_to(out)
    inside = [out, out / "feedback" / "a.xlsx", tmp_path / "link.xlsx", tmp_path / "folder-link" / "feedback",
              out / "feedback" / ".." / "feedback" / "a.xlsx"]
    for item in inside:
        problem = input_problem(out, [beside / "b.xlsx", item])
        assert problem is not None and problem.code == "output-is-input", item
    assert input_problem(out, [beside, beside / "b.xlsx", tmp_path]) is None
    assert input_problem(tmp_path / "folder-link", [out / "feedback" / "a.xlsx"]) is not None  # the output a link


def test_commit_never_replaces_a_folder_the_tool_did_not_write(tmp_path: Path) -> None:
    """The last line of defence under every output: even when a check before it was passed (a folder made
    between the check and the swap), `commit` moves nothing over a folder without the tool's marker."""
    from disclosure_xlsx.outputs import commit

    staging, out = tmp_path / "staging", tmp_path / "out"
    (staging / FEEDBACK_DIR).mkdir(parents=True)
    (staging / FEEDBACK_DIR / "新.txt").write_text("新", "utf-8")
    (out / FEEDBACK_DIR).mkdir(parents=True)
    (out / FEEDBACK_DIR / "别人的.txt").write_text("不是本工具写的", "utf-8")
    with pytest.raises(DisclosureError) as refused:
        commit(staging, out, (FEEDBACK_DIR,))
    assert refused.value.finding.code == "output-not-empty"
    assert sorted(p.name for p in (out / FEEDBACK_DIR).iterdir()) == ["别人的.txt"]  # nothing moved, nothing lost
    (out / FEEDBACK_DIR / MARKER).write_text("{}", "utf-8")  # the tool's own folder: replaced
    commit(staging, out, (FEEDBACK_DIR,))
    assert sorted(p.name for p in (out / FEEDBACK_DIR).iterdir()) == ["新.txt"]
