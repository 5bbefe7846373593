"""The converter: cleaned workbooks, the report sheet in the official layout, long-form data, mapping."""

from __future__ import annotations

import csv
import random
import re
import subprocess
from pathlib import Path

import openpyxl
import pytest

from disclosure_xlsx.convert import DATA_CSV, convert_paths
from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.layout import report_layout
from disclosure_xlsx.locate import fold
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES, labels_around, merged_text
from .test_formats import spec_cells


def _one(folder: Path) -> Path:
    (path,) = [p for p in folder.glob("*.xlsx")]
    return path


@pytest.fixture
def filled(tmp_path: Path, format_id: str) -> tuple[Path, dict]:
    values = {**balanced_report(format_id, random.Random(21), zero_share=0.0), "meta_office": "某镇人民政府",
              "meta_year": get_format(format_id).first_year, "text_other": "无"}
    (tmp_path / "in").mkdir()
    return write_template(tmp_path / "in" / "某镇.xlsx", format_id, values=values), values


def test_converting_twice_changes_nothing(tmp_path: Path) -> None:
    first, _ = convert_paths([SAMPLES], tmp_path / "a", workers=1)
    second, _ = convert_paths([tmp_path / "a"], tmp_path / "b", workers=1)
    values = {(w.report.office, w.report.year): (w.report.values, w.status) for w in first.workbooks}
    again = {(w.report.office, w.report.year): (w.report.values, w.status) for w in second.workbooks}
    assert again == values
    assert all(w.cleaning == [] for w in second.workbooks)  # nothing left to clean


def test_report_sheet_matches_the_format_data(tmp_path: Path, format_id: str, filled) -> None:
    path, values = filled
    convert_paths([path], tmp_path / "out", workers=1)
    fmt = get_format(format_id)
    ws = openpyxl.load_workbook(_one(tmp_path / "out"))[fmt.words.report_sheet]
    layout = report_layout(format_id)
    expected = spec_cells(format_id)
    row_header = next(s.row_header for s in fmt.sections if s.row_header)
    for slot in layout.slots:
        cell = ws.cell(slot.row + 1, slot.col + 1)
        assert cell.value == pytest.approx(values[slot.key]), slot.key
        assert labels_around(ws, slot.row + 1, slot.col + 1, row_header) == (
            expected[slot.key]["row_path"], expected[slot.key]["col_path"]), slot.key
    merges = {str(r) for r in ws.merged_cells.ranges}
    for box in layout.boxes:
        if (box.row, box.col) != (box.last_row, box.last_col):
            first = ws.cell(box.row + 1, box.col + 1).coordinate
            last = ws.cell(box.last_row + 1, box.last_col + 1).coordinate
            assert f"{first}:{last}" in merges, box.text
    texts = {merged_text(ws, r, c) for r in range(1, ws.max_row + 1) for c in range(1, ws.max_column + 1)}
    for section in fmt.sections:
        assert section.heading in texts
        assert all(n.label in texts for n in (*section.rows, *section.columns))
        assert all(b.caption in texts for b in section.blocks)
        assert section.note is None or section.note in texts
    assert ws["A1"].value == "某镇人民政府" + f"{fmt.first_year}年政府信息公开工作年度报告（表格部分）"
    assert ws.page_setup.paperSize == 9 and ws.page_setup.orientation == "portrait"
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToHeight == 0


def test_zero_shows_as_0_and_blank_stays_blank(tmp_path: Path) -> None:
    values = {**balanced_report("2021", random.Random(3)), "meta_office": "甲", "meta_year": 2024,
              "s4.review.upheld": None, "s4.review.total": 0, "s4.review.corrected": 0, "s4.review.other": 0,
              "s4.review.pending": 0}
    (tmp_path / "in").mkdir()
    write_template(tmp_path / "in" / "x.xlsx", "2021", values=values)
    convert_paths([tmp_path / "in"], tmp_path / "out", workers=1)
    wb = openpyxl.load_workbook(_one(tmp_path / "out"))
    layout = report_layout("2021")
    place = {s.key: (s.row + 1, s.col + 1) for s in layout.slots}
    ws = wb[layout.name]
    assert ws.cell(*place["s4.review.upheld"]).value is None
    assert ws.cell(*place["s4.review.total"]).value == 0
    assert ws.cell(*place["s4.review.total"]).number_format == "0"


def test_money_without_a_printed_unit_shows_it_like_the_published_report(tmp_path: Path) -> None:
    convert_paths([next(SAMPLES.glob("2020_宁海县*.xlsx"))], tmp_path / "out", workers=1)
    ws = openpyxl.load_workbook(_one(tmp_path / "out"))[report_layout("2019").name]
    slot = next(s for s in report_layout("2019").slots if s.key == "s2.procurement.amount")
    cell = ws.cell(slot.row + 1, slot.col + 1)
    assert cell.value == 1207.5 and cell.number_format == 'General"万元"'


def test_the_cleaned_workbook_logs_every_cleaning_and_holds_long_form_data(tmp_path: Path) -> None:
    batch, done = convert_paths([next(SAMPLES.glob("2020_宁海县*.xlsx"))], tmp_path / "out", workers=1)
    fmt = get_format("2019")
    wb = openpyxl.load_workbook(done[0].output)
    log = list(wb[fmt.words.log_sheet].iter_rows(min_row=2, values_only=True))
    assert len(log) == len(batch.workbooks[0].cleaning) == 131
    assert ("s2.procurement.amount", "二、主动公开", "C20", "1207.5万元", 1207.5) == log[0][:5]
    data = list(wb[fmt.words.data_sheet].iter_rows(min_row=2, values_only=True))
    assert len(data) == len(fmt.cells)
    assert ("宁海县力洋镇人民政府", 2020, "2019", "s2.procurement.amount") == data[21][:4]
    assert data[21][7:] == (1207.5, "万元")
    with (tmp_path / "out" / DATA_CSV).open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert (tmp_path / "out" / DATA_CSV).read_bytes().startswith(b"\xef\xbb\xbf")
    assert rows[0][:4] == ["单位名称", "年度", "报告格式", "单元格编号"] and len(rows) == len(fmt.cells) + 1
    assert rows[22][3] == "s2.procurement.amount" and rows[22][7] == "1207.5"


def test_workbooks_with_errors_are_converted_and_marked(tmp_path: Path) -> None:
    sample = next(SAMPLES.glob("2024_2021格式_I2*.xlsx"))
    batch, done = convert_paths([sample], tmp_path / "out", workers=1)
    assert batch.has_errors
    fmt = get_format("2021")
    wb = openpyxl.load_workbook(done[0].output)
    cover_texts = [c.value for row in wb[fmt.words.cover_sheet].iter_rows() for c in row if isinstance(c.value, str)]
    assert any(t.startswith(fmt.words.failed_mark) for t in cover_texts)
    # the title is rich text: its plain value carries the mark
    title = openpyxl.load_workbook(done[0].output, rich_text=True)[fmt.words.report_sheet]["A1"].value
    assert fmt.words.failed_mark in str(title)


def test_a_2019_workbook_maps_onto_2021(tmp_path: Path) -> None:
    seed = next(SAMPLES.glob("2020_宁海县*.xlsx"))
    _, done = convert_paths([seed], tmp_path / "out", format_to="2021", workers=1)
    (converted,) = done
    assert converted.format_id == "2021"
    old, new = get_format("2019"), get_format("2021")
    (result,) = validate_paths([converted.output], workers=1).workbooks
    values = result.report.values
    source = validate_paths([seed], workers=1).workbooks[0].report.values
    for cid in new.cells:
        if cid in old.cells:
            assert values[cid] == source[cid], cid  # every id both formats have carries over, cell by cell
    noted = {note.id for note in converted.notes}
    shared = {c for c in new.cells if new.cells[c].section == "s2" and c in old.cells}
    assert shared == {"s2.licensing.decisions", "s2.penalty.decisions", "s2.coercion.decisions"}
    assert {c for c in new.cells if new.cells[c].section == "s2"} - shared <= noted  # the rest of 二 has no source
    assert not shared & noted
    assert all(values[c] is None for c in new.cells if new.cells[c].section == "s2" and c not in shared)
    for parts in new.derived.values():  # the seed's （六）其他处理 is 0, so each 2021 sub-row is 0
        assert all(values[p] == 0 for p in parts) and set(parts) <= noted
    assert not [f for f in result.findings if f.severity == "error"]


def test_a_nonzero_other_row_cannot_be_split(tmp_path: Path) -> None:
    values = {**balanced_report("2019", random.Random(4), zero_share=0.0), "meta_office": "乙", "meta_year": 2020}
    assert values["s3.other.total"] > 0
    (tmp_path / "in").mkdir()
    write_template(tmp_path / "in" / "x.xlsx", "2019", values=values)
    _, (converted,) = convert_paths([tmp_path / "in"], tmp_path / "out", format_to="2021", workers=1)
    notes = {note.id: note.message["zh"] for note in converted.notes}
    assert "无法拆分" in notes["s3.other_misc.total"] and str(values["s3.other.total"]) in notes["s3.other_misc.total"]
    # The mapped workbook is checked for what the office must still fill; no fix is worked out for it (a
    # solve over the unfilled rows took ~5 s a workbook, and its cells are the office's to fill).
    assert converted.check is not None and converted.check.errors and converted.check.suggestion is None


@pytest.mark.parametrize("format_id", list(all_formats()))
def test_the_report_sheet_prints_one_page_wide_with_every_label(tmp_path: Path, format_id: str, soffice) -> None:
    """Rendered by LibreOffice to PDF: A4 portrait, no column cut off, every label in the text."""
    if not subprocess.run(["which", "pdftotext"], capture_output=True).returncode == 0:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    values = {**balanced_report(format_id, random.Random(5)), "meta_office": "某镇", "meta_year": 2024}
    (tmp_path / "in").mkdir()
    write_template(tmp_path / "in" / "x.xlsx", format_id, values=values)
    _, (converted,) = convert_paths([tmp_path / "in"], tmp_path / "out", workers=1)
    only = tmp_path / "report.xlsx"  # just the report sheet, as an office would print it
    wb = openpyxl.load_workbook(converted.output)
    for name in wb.sheetnames:
        if name != get_format(format_id).words.report_sheet:
            del wb[name]
    wb.save(only)
    (pdf,) = soffice([only], "pdf", tmp_path / "pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+", info)  # A4 portrait
    pages = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True).stdout.split("\f")
    fmt = get_format(format_id)
    flat = [fold(page) for page in pages]  # glyphs from a fallback font (“ ”) come out as separate text runs
    assert any(fold(fmt.sections[0].heading) in page for page in flat), "no Chinese text: is a CJK font installed?"
    for section in fmt.sections:
        labels = [n.label for n in (*section.rows, *section.columns)] + [b.caption for b in section.blocks]
        for label in labels + [section.heading]:
            assert any(fold(label) in page for page in flat), label
        # one page width: the page that shows a section's heading shows all of its column labels
        page = next(p for p in flat if fold(section.heading) in p)
        assert all(fold(n.label) in page for n in section.leaves("columns")), section.key
