"""Feedback for offices: annotated copies, plain summaries, the county overview, and output safety."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl.utils.cell import get_column_letter, range_boundaries

from disclosure_xlsx.catalog import text
from disclosure_xlsx.feedback import FEEDBACK_DIR, OVERVIEW, REPORT, feedback_text, safe_name, write_outputs
from disclosure_xlsx.marks import MARKER
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.rounds import HISTORY
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template
from disclosure_xlsx.validate import cell_blocks

from .conftest import SAMPLES, SHARED


def _offices_folders(out: Path) -> list[Path]:
    """The offices' folders of a feedback tree (beside them only the tree's marker file)."""
    return sorted(p for p in (out / FEEDBACK_DIR).iterdir() if p.is_dir())


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    inputs = tmp_path_factory.mktemp("in")
    for sample in SAMPLES.glob("*.xlsx"):
        (inputs / sample.name).write_bytes(sample.read_bytes())
    values = {**balanced_report("2021", random.Random(9)), "meta_office": '=HYPERLINK("http://x","y")',
              "meta_year": 2024, "s3.new.natural_person": "三"}
    write_template(inputs / "hostile.xlsx", "2021", values=values)
    before = _digest(inputs)
    out = tmp_path_factory.mktemp("out")
    batch = validate_paths([inputs], workers=1)
    write_outputs(batch, out)
    assert _digest(inputs) == before  # inputs are only ever read
    return inputs, out, batch


def _annotated(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix in (".xlsx", ".xlsm")]


def test_each_office_gets_a_folder_and_only_failures_get_a_marked_copy(outputs) -> None:
    _, out, batch = outputs
    folders = sorted(_offices_folders(out))
    assert len(folders) == len(batch.workbooks)
    for folder in folders:
        assert (folder / "反馈.txt").exists() and (folder / "反馈.html").exists()
    passed = out / FEEDBACK_DIR / "示例县审计局_2024"
    assert _annotated(passed) == []
    assert "校验结果：通过" in (passed / "反馈.txt").read_text("utf-8")
    assert _annotated(out / FEEDBACK_DIR / "示例镇（I2 错误）_2024")


def test_summaries_name_every_finding_cell(outputs) -> None:
    _, out, batch = outputs
    for folder in _offices_folders(out):
        text = (folder / "反馈.txt").read_text("utf-8")
        page = (folder / "反馈.html").read_text("utf-8")
        workbook = next(w for w in batch.workbooks if f"文件：{Path(w.file).name}\n" in text)
        for finding in workbook.findings:
            if finding.cells:
                assert f"{finding.cells[0].sheet}!{finding.cells[0].ref}" in text
                assert f"{finding.cells[0].sheet}!{finding.cells[0].ref}" in page
        assert not re.search(r"(src|href)\s*=|https?://|@import", page.replace("http://x", ""))


def test_workbook_text_stays_text_everywhere(outputs) -> None:
    _, out, _ = outputs
    hostile = '=HYPERLINK("http://x","y")'
    (folder,) = [f for f in _offices_folders(out) if "HYPERLINK" in f.name]
    assert "/" not in folder.name and '"' not in folder.name and folder.parent == out / FEEDBACK_DIR
    assert hostile in (folder / "反馈.txt").read_text("utf-8")
    assert "=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)" in (folder / "反馈.html").read_text("utf-8")
    overview = openpyxl.load_workbook(out / OVERVIEW)
    offices = [(c.value, c.data_type) for c in overview["汇总"]["A"]]
    assert (hostile, "s") in offices
    (copy,) = _annotated(folder)
    result = openpyxl.load_workbook(copy)[text("annotate.sheet_name")]
    assert all(c.data_type != "f" for row in result.iter_rows() for c in row)


def test_the_overview_lists_failures_first_with_filters(outputs) -> None:
    _, out, batch = outputs
    wb = openpyxl.load_workbook(out / OVERVIEW)
    summary, details = wb["汇总"], wb["全部问题"]
    statuses = [c.value for c in summary["E"]][1:]
    order = {"无法读取": 0, "有错误": 1, "有警告": 2, "通过": 3}
    assert statuses == sorted(statuses, key=order.get) and len(statuses) == len(batch.workbooks)
    assert summary.auto_filter.ref and details.auto_filter.ref
    assert details.max_row - 1 == sum(len(w.findings) for w in batch.workbooks)
    assert (out / REPORT).exists()


def test_every_cell_of_an_overview_row_is_top_aligned(outputs) -> None:
    """A printed row's numbers (errors, the round's counts, accepted warnings) stand at the top beside the
    row's first lines of text, not at its foot where they would seem to belong to the next office."""
    _, out, _ = outputs
    summary = openpyxl.load_workbook(out / OVERVIEW)["汇总"]
    bottom = [c.coordinate for row in summary.iter_rows(min_row=2) for c in row
              if c.value is not None and c.alignment.vertical != "top"]
    assert bottom == []


def test_rerunning_replaces_the_outputs_cleanly(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    first = next(SAMPLES.glob("2024_2021格式_I5*.xlsx"))
    (inputs / first.name).write_bytes(first.read_bytes())
    write_outputs(validate_paths([inputs], workers=1), tmp_path / "out")
    (inputs / first.name).unlink()
    second = next(SAMPLES.glob("2024_示例县*.xlsx"))
    (inputs / second.name).write_bytes(second.read_bytes())
    write_outputs(validate_paths([inputs], workers=1), tmp_path / "out")
    assert [p.name for p in _offices_folders(tmp_path / "out")] == ["示例县审计局_2024"]
    # history/ keeps each round's report.json (rounds.py); the marker says the folder is the tool's own
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([FEEDBACK_DIR, OVERVIEW, REPORT, HISTORY,
                                                                           MARKER])
    assert (tmp_path / "out" / FEEDBACK_DIR / MARKER).is_file()  # the tree is marked as the tool's own, too


@pytest.mark.parametrize("text, safe", [
    ("../../etc/passwd", "etc_passwd"), ("a/b\\c", "a_b_c"), ("CON", "_CON"), ("nul.txt", "_nul.txt"),
    ("tab\there\x00", "tab_here"), ("  .. ", "未命名"), ("某镇人民政府_2024", "某镇人民政府_2024")])
def test_safe_names_never_escape_the_folder(text: str, safe: str) -> None:
    assert safe_name(text) == safe


def test_the_text_feedback_opens_in_windows_notepad(tmp_path: Path) -> None:
    """反馈.txt is UTF-8 with a BOM and CRLF line endings (issue 13), so Notepad shows it right."""
    batch = validate_paths(sorted(Path(__file__).parent.parent.joinpath("sample_workbooks").glob("*I2*.xlsx")),
                           workers=1)
    out = write_outputs(batch, tmp_path / "out", workers=1)
    texts = sorted((out / FEEDBACK_DIR).glob(f"*/{text('feedback.text_file')}"))
    assert texts
    for path in texts:
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def _cells_of(refs: str, sheet: str) -> list[tuple[str, str]]:
    """The cells named by "E4:I22、H23", expanded with openpyxl's own reading of a range."""
    out = []
    for part in refs.split(text("catalog.enumeration")):
        min_col, min_row, max_col, max_row = range_boundaries(part)
        out += [(sheet, f"{get_column_letter(c)}{r}") for r in range(min_row, max_row + 1)
                for c in range(min_col, max_col + 1)]
    return out


def test_cells_read_alike_are_told_once_with_their_places_as_ranges() -> None:
    """The seed (a table pasted from a web page) has over a hundred cells written "0\\u00a0" or "\\u00a00":
    the office reads one line per sheet for them, which names every such cell exactly once."""
    (workbook,) = validate_paths([next((SHARED / "seed").glob("*.txt"))], workers=1).workbooks
    assert len(workbook.cleaning) > 100
    lines = feedback_text(workbook).splitlines()
    start = lines.index(text("feedback.group", group=text("feedback.interpreted_heading"))) + 1
    section = lines[start:lines.index(text("feedback.interpreted_advice"))]
    assert len(section) <= 4, section
    told: list[tuple[str, str]] = []
    for line in section:
        found = re.match(r"(?P<sheet>[^!]+)!(?P<refs>[A-Z]+\d+(?::[A-Z]+\d+)?(?:、[A-Z]+\d+(?::[A-Z]+\d+)?)*)"
                         r"(?:（共 (?P<count>\d+) 格）)?", line)
        assert found, line
        cells = _cells_of(found["refs"], found["sheet"])
        assert int(found["count"] or 1) == len(cells), line
        told += cells
    tables = workbook.report.format.cells  # the section lists the tables' cells, not the cover's
    assert sorted(told) == sorted((c.sheet, c.ref) for c in workbook.cleaning if c.id in tables)  # each once


@given(st.sets(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=30))
def test_cell_blocks_name_each_cell_once(cells: set[tuple[int, int]]) -> None:
    refs = [f"{get_column_letter(col + 1)}{row + 1}" for row, col in cells]
    told = _cells_of(text("catalog.enumeration").join(cell_blocks(refs)), "") if refs else []
    assert sorted(told) == sorted(("", ref) for ref in refs)


def test_cell_blocks_make_rectangles() -> None:
    assert cell_blocks(["F5", "E4", "F4", "E5", "H7", "E6"]) == ["E4:F5", "E6", "H7"]


def test_cells_read_as_blank_are_told_as_not_filled_in(tmp_path: Path) -> None:
    values = {**balanced_report("2021", random.Random(4)), "meta_office": "某镇人民政府", "meta_year": 2024}
    dashes = [cid for cid in values if cid.startswith("s4.review.")][:3]
    values.update({cid: mark for cid, mark in zip(dashes, ("—", "/", "—"), strict=True)})
    (workbook,) = validate_paths([write_template(tmp_path / "dash.xlsx", "2021", values=values)], workers=1).workbooks
    line = next(line for line in feedback_text(workbook).splitlines() if "（共 3 格）" in line)
    assert "都读取为 未填写" in line and "“—”、“/”" in line, line
