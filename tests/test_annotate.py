"""Annotated copies made by patching the office's package: fidelity, marks, plain words, print, hostile text.

Inputs are made with xlsxwriter (pictures, charts, a VBA project, comments, merges, names, validations);
openpyxl and LibreOffice only read the copies. `pytest --update-golden` rewrites tests/golden/.
"""

from __future__ import annotations

import random
import re
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure_xlsx.annotate import (
    MARK_FILLS,
    PRIORITY,
    AnnotationJob,
    AnnotationOutcome,
    Suspect,
    annotate,
    rule_text,
)
from disclosure_xlsx.catalog import CellRef, Cleaning, Finding, catalog, text, text_list
from disclosure_xlsx.clean import cell_where
from disclosure_xlsx.formats import get_format
from disclosure_xlsx.layout import layout_for, standard_where
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import INPUT_FILL, write_template
from disclosure_xlsx.xlsxpatch import Cell, Link, Mark, NewSheet, Style, patch_workbook

from .conftest import DATA, SAMPLES
from .golden import check_golden

GOLDEN_SAMPLE = "2024_2021格式_I2错误.xlsx"
VBA = DATA / "vbaProject.bin"
SHEET = text("annotate.sheet_name")
HOSTILE = ["=cmd|' /C calc'!A0", "<script>alert(1)</script>&amp;", "ctl\x01\x07\x1b\x7fend", "x" * 40_000,
           "_x0041_ literal", '=HYPERLINK("http://evil.example","y")']


# ------------------------------------------------------------------------------------------------
# Inputs made with xlsxwriter


def _png(path: Path) -> Path:
    """A small real PNG (8×8, red), written by hand so no imaging library is needed."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def _rich(path: Path, image: Path, vba: bool = False) -> Path:
    """A workbook carrying what openpyxl-style round trips lose or mangle."""
    wb = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False})
    data = wb.add_worksheet("Data")
    other = wb.add_worksheet("It's a sheet")
    head = wb.add_format({"bold": True, "bg_color": "#FFF2CC", "num_format": "0.00", "border": 1})
    data.write_row(0, 0, ["Name", "Q1", "Q2", "Total"], head)
    for r in range(1, 6):
        data.write_string(r, 0, f"row {r}")
        data.write_number(r, 1, r * 10)
        data.write_number(r, 2, r * 3)
        data.write_formula(r, 3, f"=B{r + 1}+C{r + 1}", None, r * 13)
    data.merge_range("F2:G3", "merged", head)
    data.data_validation("B2:C6", {"validate": "integer", "criteria": ">=", "value": 0})
    data.write_comment("B2", "office's own note")
    data.insert_image("I2", str(image))
    chart = wb.add_chart({"type": "column"})
    chart.add_series({"values": "=Data!$B$2:$B$6"})
    data.insert_chart("I10", chart)
    sheet_chart = wb.add_chart({"type": "line"})
    sheet_chart.add_series({"values": "=Data!$C$2:$C$6"})
    wb.add_chartsheet("Chart").set_chart(sheet_chart)
    wb.define_name("total_q1", "=Data!$B$2:$B$6")
    wb.define_name("Data!local_one", "=Data!$B$3")
    other.write_string("A1", "label")
    other.write_number("B2", 5)
    other.insert_button("D2", {"caption": "Run", "macro": "DisclosureTestMacro"})  # VML, but no comments
    other.activate()  # the office left its second sheet selected
    if vba:
        wb.add_vba_project(str(VBA))
    wb.close()
    return path


RICH_MARKS = [Mark("Data", "B2", "FF7C80", "ours on a commented cell"), Mark("Data", "G3", "FFBDC4", "merged interior"),
              Mark("Data", "Z99", "9DC3E6", "far away, no such cell yet"), Mark("Data", "D3", "FFD34D", None),
              Mark("It's a sheet", "B2", "8E6FC8", "on a sheet with a quote"), Mark("Chart", "A1", "FF7C80", "x"),
              Mark("Nope", "A1", "FF7C80", "x")]
RICH_SHEET = NewSheet("Data", [[Cell("Where", Style(bold=True)), Cell("Note", Style(bold=True))],
                               [Cell("B2", Style(color="0563C1", underline=True), Link("It's a sheet", "B2")),
                                Cell(HOSTILE[0])]], widths=[10, 40], header_row=1)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def _cells(path: Path, data_only: bool = False, skip: str | None = None) -> dict[tuple[str, str], tuple]:
    """Every non-empty cell's value, type, number format, font and protection (not fill or comment)."""
    wb = openpyxl.load_workbook(path, data_only=data_only)
    out = {}
    for ws in wb.worksheets:
        if ws.title == skip:
            continue
        for row in ws.iter_rows():
            for c in row:
                if c.value is not None:
                    out[(ws.title, c.coordinate)] = (c.value, c.data_type, c.number_format, c.font.b,
                                                     c.protection.locked)
    return out


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rich")
    image = _png(folder / "dot.png")
    out = {"xlsx": _rich(folder / "rich.xlsx", image), "xlsm": _rich(folder / "macro.xlsm", image, vba=True)}
    for kind in ("xlsx", "xlsm"):
        target = folder / f"patched-{kind}.{kind}"  # distinct stems: LibreOffice names its output by stem
        result = patch_workbook(out[kind], target, RICH_MARKS, RICH_SHEET, author="checker")
        assert result.missing == tuple(RICH_MARKS[-2:]) and result.sheet_name == "Data_"  # a chart sheet: no cells
        out[f"patched.{kind}"] = target
    return out


# ------------------------------------------------------------------------------------------------
# Fidelity of the patched package


@pytest.mark.parametrize("kind", ["xlsx", "xlsm"])
def test_every_part_not_touched_is_byte_identical(rich, kind: str) -> None:
    before, after = _members(rich[kind]), _members(rich[f"patched.{kind}"])
    changed = {n for n in before if before[n] != after.get(n)}
    assert set(before) <= set(after)
    # Data had comments (and their VML); the second sheet had a button (VML) but no comments yet
    assert changed == {"[Content_Types].xml", "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/styles.xml",
                       "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml", "xl/comments1.xml",
                       "xl/drawings/vmlDrawing1.vml", "xl/drawings/vmlDrawing2.vml",
                       "xl/worksheets/_rels/sheet2.xml.rels"}
    assert set(after) - set(before) == {"xl/worksheets/sheet3.xml", "xl/comments2.xml"}
    assert after["xl/drawings/vmlDrawing2.vml"].startswith(before["xl/drawings/vmlDrawing2.vml"][:200])
    kept = {"xl/media/image1.png", "xl/charts/chart1.xml", "xl/drawings/drawing1.xml", "xl/sharedStrings.xml",
            "xl/theme/theme1.xml", "xl/chartsheets/sheet1.xml", "xl/charts/chart2.xml"}
    kept |= {"xl/vbaProject.bin"} if kind == "xlsm" else set()
    assert kept <= set(before) - changed
    if kind == "xlsm":
        assert after["xl/vbaProject.bin"] == VBA.read_bytes()
        assert b"macroEnabled" in after["[Content_Types].xml"]


@pytest.mark.parametrize("kind", ["xlsx", "xlsm"])
def test_values_formulas_merges_names_validations_pictures_and_charts_survive(rich, kind: str) -> None:
    source, copy = rich[kind], rich[f"patched.{kind}"]
    assert _cells(copy, skip="Data_") == _cells(source)
    assert _cells(copy, data_only=True, skip="Data_") == _cells(source, data_only=True)  # cached results kept
    old = openpyxl.load_workbook(source, keep_vba=kind == "xlsm")
    new = openpyxl.load_workbook(copy, keep_vba=kind == "xlsm")
    assert new.sheetnames == ["Data_", *old.sheetnames]
    assert new.active.title == "Data_" and [ws.sheet_view.tabSelected for ws in new.worksheets] == [
        True, None, None]  # one selected tab: two would group the sheets
    assert new.chartsheets[0].title == "Chart"
    for a in old.worksheets:
        b = new[a.title]
        assert sorted(map(str, b.merged_cells.ranges)) == sorted(map(str, a.merged_cells.ranges))
        assert [(str(v.sqref), v.formula1, v.type) for v in b.data_validations.dataValidation] == [
            (str(v.sqref), v.formula1, v.type) for v in a.data_validations.dataValidation]
        assert len(b._images) == len(a._images) and len(b._charts) == len(a._charts)
        assert {n: d.attr_text for n, d in b.defined_names.items()} == {
            n: d.attr_text for n, d in a.defined_names.items()}  # a sheet's own names stay on that sheet
    assert {n: d.attr_text for n, d in new.defined_names.items()} == {
        n: d.attr_text for n, d in old.defined_names.items()}
    assert new["Data"].defined_names["local_one"].attr_text == "Data!$B$3"
    assert len(old["Data"]._images) == 1 and len(old["Data"]._charts) == 1


def test_marks_fill_and_comment_the_right_cells(rich) -> None:
    wb = openpyxl.load_workbook(rich["patched.xlsx"])
    data, other = wb["Data"], wb["It's a sheet"]
    assert data["B2"].comment.text.startswith("office's own note") and "ours on a commented cell" in \
        data["B2"].comment.text  # the office's own comment is kept, ours follows it
    assert data["F2"].fill.fgColor.rgb == "FFFFBDC4" and data["F2"].comment.text == "merged interior"
    assert data["G3"].comment is None  # a merged range is marked on its top-left cell
    assert data["Z99"].fill.fgColor.rgb == "FF9DC3E6" and data["Z99"].comment.text.startswith("far away")
    assert data["D3"].fill.fgColor.rgb == "FFFFD34D" and data["D3"].comment is None
    assert data["D3"].value == "=B3+C3" and data["D3"].number_format == "General"
    assert data["A1"].fill.fgColor.rgb == "FFFFF2CC"  # unmarked cells keep their own look
    assert data["B2"].number_format == "General" and not data["B2"].font.b
    assert other["B2"].fill.fgColor.rgb == "FF8E6FC8"
    first = wb["Data_"]
    assert first["A2"].hyperlink.location == "'It''s a sheet'!B2" and first["A2"].hyperlink.target is None
    assert first["B2"].value == HOSTILE[0] and first["B2"].data_type == "s"


@pytest.fixture(scope="module")
def through_libreoffice(rich, soffice, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The patched copies and the hostile copy saved again by LibreOffice (one conversion per format)."""
    folder = tmp_path_factory.mktemp("lo")
    hostile = annotate(_hostile_job(folder / "hostile"))
    assert hostile.ok, hostile.problem
    xlsx, xlsm, again = soffice([rich["patched.xlsx"], rich["patched.xlsm"], hostile.target], "xlsx", folder / "xlsx")
    (ods,) = soffice([rich["patched.xlsm"]], "ods", folder / "ods")
    return {"xlsx": xlsx, "xlsm": xlsm, "hostile": again, "ods": ods}


def test_rows_and_cells_without_their_address_keep_their_place(tmp_path: Path) -> None:
    """A writer may leave out `r` on rows and cells (each is then "the next one"); inserting must not shift them."""
    plain = tmp_path / "plain.xlsx"
    wb = xlsxwriter.Workbook(str(plain))
    ws = wb.add_worksheet("S")
    for r in (0, 1, 3):
        ws.write_row(r, 0, [f"r{r}c{c}" for c in range(3)])
    wb.close()
    bare = tmp_path / "bare.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bare, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":  # rows 1 and 2 lose their numbers, every cell its address
                data = re.sub(rb'<row r="[12]"', b"<row", re.sub(rb'<c r="[A-Z]+\d+"', b"<c", data))
            dst.writestr(item, data)
    assert _cells(bare) == _cells(plain)  # the reader agrees: the implicit places are the same
    out = tmp_path / "out.xlsx"
    patch_workbook(bare, out, [Mark("S", "A3", "FF7C80", "new row between"), Mark("S", "E2", "FF7C80", None),
                               Mark("S", "B1", "FFBDC4", "existing cell")])
    assert _cells(out) == _cells(plain)
    marked = openpyxl.load_workbook(out)["S"]
    assert marked["A3"].comment.text == "new row between" and marked["E2"].fill.fgColor.rgb == "FFFF7C80"
    assert marked["B1"].value == "r0c1" and marked["B1"].fill.fgColor.rgb == "FFFFBDC4"


@pytest.mark.soffice
def test_libreoffice_opens_the_patched_copies_with_everything_in_them(through_libreoffice) -> None:
    for path in (through_libreoffice["xlsx"], through_libreoffice["xlsm"]):
        members = _members(path)
        assert any(n.startswith("xl/media/") for n in members), "the picture was lost"
        assert any(n.startswith("xl/charts/chart") for n in members), "the chart was lost"
        wb = openpyxl.load_workbook(path)
        assert wb.sheetnames == ["Data_", "Data", "It's a sheet", "Chart"]
        data = wb["Data"]
        assert data["B2"].comment.text.startswith("office's own note") and "ours" in data["B2"].comment.text
        assert data["F2"].comment.text == "merged interior" and "far away" in data["Z99"].comment.text
        assert wb["It's a sheet"]["B2"].comment.text == "on a sheet with a quote"
        assert [data.cell(r, 4).value for r in range(2, 7)] == [f"=B{r}+C{r}" for r in range(2, 7)]
        assert wb["Data_"]["B2"].value == HOSTILE[0] and wb["Data_"]["B2"].data_type == "s"
        assert {n for n in wb.defined_names} >= {"total_q1"}
    with zipfile.ZipFile(through_libreoffice["ods"]) as archive:  # LibreOffice read the VBA project's source
        modules = [archive.read(n).decode() for n in archive.namelist() if n.startswith("Basic/") and "Module" in n]
    assert any("DisclosureTestMacro" in m for m in modules)


# ------------------------------------------------------------------------------------------------
# Annotating the samples


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[object, AnnotationOutcome]]:
    out = tmp_path_factory.mktemp("annotated")
    batch = validate_paths([SAMPLES], workers=1)
    done = []
    for workbook in batch.workbooks:
        if workbook.findings:
            job = AnnotationJob(workbook.report, tuple(workbook.findings), out / f"{Path(workbook.file).stem}.xlsx")
            outcome = annotate(job)
            assert outcome.ok, outcome.problem
            done.append((workbook, outcome))
    assert len(done) == 8
    return done


def _texts(path: Path) -> list[str]:
    """Everything an office reads in a copy: the first sheet's cells and every comment we wrote."""
    wb = openpyxl.load_workbook(path)
    out = [str(c.value) for row in wb[SHEET].iter_rows() for c in row if c.value is not None]
    out += [c.comment.text for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.comment]
    return out


def _snapshot(path: Path) -> dict:
    """Everything of a workbook annotation must keep: values, formulas, formats, merges, names, protection."""
    wb = openpyxl.load_workbook(path)
    cells = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value is not None or c.number_format != "General":
                    cells[(ws.title, c.coordinate)] = (c.value, c.data_type, c.number_format, c.font.name,
                                                       c.protection.locked, c.alignment.wrap_text)
    return {"sheets": wb.sheetnames, "cells": cells,
            "merged": {ws.title: sorted(str(r) for r in ws.merged_cells.ranges) for ws in wb.worksheets},
            "names": {n: d.attr_text for n, d in wb.defined_names.items()},
            "validations": {ws.title: len(ws.data_validations.dataValidation) for ws in wb.worksheets},
            "protected": {ws.title: ws.protection.sheet for ws in wb.worksheets}}


def test_the_samples_keep_everything_but_gain_marks(samples) -> None:
    for workbook, outcome in samples:
        original, marked = _snapshot(Path(workbook.file)), _snapshot(outcome.target)
        assert marked["sheets"] == [SHEET, *original["sheets"]]
        for key in ("merged", "names", "validations", "protected"):
            assert {k: v for k, v in marked[key].items() if k != SHEET} == original[key], key
        assert {k: v for k, v in marked["cells"].items() if k[0] != SHEET} == original["cells"]


def test_the_office_reads_no_code_rule_id_or_cell_id(samples) -> None:
    codes = set(catalog())
    for workbook, outcome in samples:
        fmt = get_format(workbook.report.format_id)
        ids = set(fmt.cells) | set(fmt.names)
        for words in _texts(outcome.target):
            assert not re.search(r"\b(I\d\[|P-\d{4}-\d|R\d\b|X\d\b)", words), words
            assert not any(code in words for code in codes), words
            assert not any(re.search(rf"(?<![\w.]){re.escape(i)}(?![\w.])", words) for i in ids), words


def test_the_first_sheet_lists_and_links_every_finding_with_numbers(samples) -> None:
    for workbook, outcome in samples:
        fmt = get_format(workbook.report.format_id)
        ws = openpyxl.load_workbook(outcome.target)[SHEET]
        header = _header_row(ws)
        rows = list(ws.iter_rows(min_row=header + 1, max_row=header + len(workbook.findings)))
        for row, finding in zip(rows, workbook.findings, strict=True):
            _, _, sheet, cell, message, expected, actual, rule = (c.value for c in row[:8])
            assert message == finding.message("zh") and row[4].alignment.wrap_text
            assert (sheet, cell) == (finding.cells[0].sheet, finding.cells[0].ref)
            assert row[3].hyperlink.location == f"'{finding.cells[0].sheet}'!{finding.cells[0].ref}"
            assert expected == finding.expected and actual == finding.actual
            assert isinstance(expected, int) and row[5].data_type == "n"  # numbers, not text
            assert rule == rule_text(fmt, finding.rule) and rule
            assert ws.row_dimensions[row[0].row].height >= 16  # room for every wrapped line


def _header_row(ws) -> int:
    first = text_list("annotate.headers")[0]
    return next(r for r in range(1, 20) if ws.cell(r, 1).value == first)


def test_every_flagged_cell_is_filled_and_commented_and_nothing_else(samples) -> None:
    for workbook, outcome in samples:
        copy, source = openpyxl.load_workbook(outcome.target), openpyxl.load_workbook(workbook.file)
        kinds: dict[tuple[str, str], list[str]] = {}
        for f in workbook.findings:
            for i, c in enumerate(f.cells):
                kinds.setdefault((c.sheet, c.ref), []).append(f.severity if i == 0 else f"{f.severity}_involved")
        for ws in source.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    new = copy[ws.title][c.coordinate]
                    key = (ws.title, c.coordinate)
                    if key in kinds:
                        best = min(kinds[key], key=PRIORITY.index)
                        assert new.fill.fgColor.rgb == "FF" + MARK_FILLS[best] and new.comment is not None, key
                    else:
                        assert new.fill.fgColor.rgb == c.fill.fgColor.rgb and new.comment is None, key
        for f in workbook.findings:
            anchor = f.cells[0]
            assert f.message("zh") in copy[anchor.sheet][anchor.ref].comment.text


def test_the_copy_speaks_english_too(tmp_path: Path) -> None:
    (workbook,) = validate_paths([SAMPLES / GOLDEN_SAMPLE], workers=1).workbooks
    outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), tmp_path / "en.xlsx", lang="en"))
    wb = openpyxl.load_workbook(outcome.target)
    assert wb.sheetnames[0] == "Check results"
    anchor = workbook.findings[0].cells[0]
    assert wb[anchor.sheet][anchor.ref].comment.text == f"[error] {workbook.findings[0].message('en')}"
    assert not re.search(r"[\u4e00-\u9fff]", str(wb["Check results"]["A1"].value))


def test_print_setup_of_the_first_sheet(samples) -> None:
    _, outcome = samples[0]
    ws = openpyxl.load_workbook(outcome.target)[SHEET]
    header = _header_row(ws)
    assert ws.page_setup.orientation == "landscape" and ws.sheet_properties.pageSetUpPr.fitToPage
    assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0)
    assert ws.print_title_rows == f"${header}:${header}" and ws.freeze_panes == f"A{header + 1}"


def test_the_legend_explains_exactly_the_colours_the_copy_shows(samples) -> None:
    """No colour is explained that no cell shows (the samples have no suspect cell: no purple), and every
    colour shown is explained."""
    marks = {"FF" + fill for fill in MARK_FILLS.values()}
    every: set[str] = set()
    for _, outcome in samples:
        wb = openpyxl.load_workbook(outcome.target)
        shown = {cell.fill.fgColor.rgb for ws in wb.worksheets[1:] for row in ws.iter_rows() for cell in row
                 if cell.fill.fill_type == "solid" and cell.fill.fgColor.rgb in marks}
        legend = _legend_fills(wb[SHEET])
        assert len(legend) == len(set(legend)) and set(legend) == shown, (outcome.target.name, legend, shown)
        assert wb[SHEET]["A1"].value == text("annotate.intro")
        every |= shown
    assert "FF" + MARK_FILLS["suspect"] not in every


def test_a_copy_with_no_shaded_cell_has_no_legend_and_does_not_point_to_one(tmp_path: Path) -> None:
    """A 2021-format workbook for 2019: its only finding (the format does not fit the year) names no cell."""
    (workbook,) = validate_paths([_filled(tmp_path, "old.xlsx", meta_year=2019)], workers=1).workbooks
    assert [f.code for f in workbook.findings] == ["format-year-mismatch"] and not workbook.findings[0].cells
    outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), tmp_path / "old_x.xlsx"))
    ws = openpyxl.load_workbook(outcome.target)[SHEET]
    assert ws["A1"].value == text("annotate.intro_unshaded") and not _legend_fills(ws)
    assert text("annotate.legend.heading") not in {c.value for row in ws.iter_rows() for c in row}


def _legend_fills(ws) -> list[str]:
    """The colours the legend of a 「校验结果」 sheet explains, in its order."""
    heading = text("annotate.legend.heading")
    start = next((r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == heading), ws.max_row + 1)
    return [ws.cell(r, 3).fill.fgColor.rgb for r in range(start + 1, ws.max_row + 1)
            if ws.cell(r, 3).fill.fill_type == "solid"]


def test_colours_differ_from_the_input_shading_and_from_each_other_in_greyscale() -> None:
    shading = _luma(INPUT_FILL.lstrip("#"))
    levels = {kind: _luma(rgb) for kind, rgb in MARK_FILLS.items()}
    for kind, level in levels.items():
        assert shading - level >= 30, kind  # every mark is clearly darker than the input shading
    assert MARK_FILLS["warning"] != MARK_FILLS["cleaned"] != INPUT_FILL.lstrip("#")
    # an error's and a warning's own cell may print alike (the words say which); every other pair differs
    same = {frozenset(("error", "warning")), frozenset(("error_involved", "warning_involved")),
            *(frozenset((note, other)) for note in ("info", "info_involved")
              for other in ("cleaned", "info", "info_involved"))}  # notes and interpreted values: no problem
    for a, first in levels.items():
        for b, second in levels.items():
            if a < b and frozenset((a, b)) not in same:
                assert abs(first - second) >= 20, (a, b)


# ------------------------------------------------------------------------------------------------
# Cleaning notes, suspects, merged input cells


def _filled(folder: Path, name: str, **extra: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    values = {**balanced_report("2021", random.Random(3)), "meta_office": "某镇人民政府", "meta_year": 2024,
              **extra}
    return write_template(folder / name, "2021", values=values)


def test_interpreted_cells_get_a_note_and_colour_of_their_own(tmp_path: Path) -> None:
    values = balanced_report("2021", random.Random(3))
    path = _filled(tmp_path, "cleaned.xlsx", **{
        "s3.new.natural_person": f"{values['s3.new.natural_person']}件", "s3.new.commercial": "1,234",
        "s3.carried_in.natural_person": "５７", "s2.fees.amount": "12500元"})
    (workbook,) = validate_paths([path], workers=1).workbooks
    assert {c.raw for c in workbook.cleaning} >= {"1,234", "５７", "12500元"}
    outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), tmp_path / "x.xlsx"))
    wb = openpyxl.load_workbook(outcome.target)
    flagged = {(c.sheet, c.ref) for f in workbook.findings for c in f.cells}
    for record in workbook.cleaning:
        cell = wb[record.sheet][record.ref]
        assert f"“{record.raw}”" in cell.comment.text and "阿拉伯数字" in cell.comment.text
        if (record.sheet, record.ref) not in flagged:
            assert cell.fill.fgColor.rgb == "FF" + MARK_FILLS["cleaned"]
    fee = next(c for c in workbook.cleaning if c.raw == "12500元")
    assert "1.25" in wb[fee.sheet][fee.ref].comment.text
    listed = [c.value for row in wb[SHEET].iter_rows() for c in row]
    assert "12500元" in listed and 1.25 in listed


def test_a_suspect_cell_is_marked_apart_from_the_cells_merely_involved(tmp_path: Path) -> None:
    (workbook,) = validate_paths([SAMPLES / GOLDEN_SAMPLE], workers=1).workbooks
    anchor, involved = workbook.findings[0].cells[0], workbook.findings[0].cells[1]
    outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), tmp_path / "x.xlsx",
                                     (Suspect(anchor, 43, None),)))
    wb = openpyxl.load_workbook(outcome.target)
    assert wb[anchor.sheet][anchor.ref].fill.fgColor.rgb == "FF" + MARK_FILLS["suspect"]
    assert wb[involved.sheet][involved.ref].fill.fgColor.rgb == "FF" + MARK_FILLS["error_involved"]
    comment = wb[anchor.sheet][anchor.ref].comment.text
    assert comment.startswith("【建议首先核对】") and "43" in comment
    assert workbook.findings[0].message() in comment


def _merge_input_cells(path: Path, sheet_part: str, first: str, second: str) -> Path:
    """The same workbook with two input cells merged, as Excel does it: the second cell loses its value."""
    out = path.with_name("merged-" + path.name)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == sheet_part:
                data = re.sub(rb'<mergeCells count="(\d+)">', lambda m: b'<mergeCells count="%d"><mergeCell ref="%s"/>'
                              % (int(m.group(1)) + 1, f"{first}:{second}".encode()), data)
                data = re.sub(rb'(<c r="%s"[^>]*?)><v>[^<]*</v></c>' % second.encode(), rb"\1/>", data)
            dst.writestr(item, data)
    return out


def test_merged_input_cells_are_marked_on_the_top_left_cell(tmp_path: Path) -> None:
    where = standard_where("2021")
    first, second = where["s3.new.natural_person"], where["s3.new.commercial"]
    merged = _merge_input_cells(_filled(tmp_path, "m.xlsx"), "xl/worksheets/sheet3.xml", first.ref, second.ref)
    (workbook,) = validate_paths([merged], workers=1).workbooks
    assert any(c.ref == second.ref for f in workbook.findings for c in f.cells)  # the merged-over cell is flagged
    outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), tmp_path / "x.xlsx"))
    assert outcome.ok, outcome.problem
    ws = openpyxl.load_workbook(outcome.target)[first.sheet]
    assert ws[second.ref].comment is None
    notes = ws[first.ref].comment.text
    assert all(f.message() in notes for f in workbook.findings if f.cells and f.cells[0].ref == second.ref)


# ------------------------------------------------------------------------------------------------
# Hostile and damaged inputs


def _hostile_job(tmp_path: Path) -> AnnotationJob:
    path = _filled(tmp_path / "in", "hostile.xlsx")
    (workbook,) = validate_paths([path], workers=1).workbooks
    fmt = get_format("2021")
    report = workbook.report
    cells = sorted(fmt.cells)[:len(HOSTILE)]
    findings = [Finding("value-unparseable", cells=(report.where[cid],), rule="R6",
                        params={"where": cell_where(fmt, fmt.cells[cid], report.where[cid]), "raw": raw})
                for cid, raw in zip(cells, HOSTILE, strict=True)]
    report.cleaning = [Cleaning(cid, report.where[cid].sheet, report.where[cid].ref, raw, 1, "text-to-number")
                       for cid, raw in zip(sorted(fmt.cells)[-len(HOSTILE):], HOSTILE, strict=True)]
    return AnnotationJob(report, tuple(findings), tmp_path / "out" / "hostile.xlsx")


def test_hostile_text_is_inert_and_the_copy_valid(tmp_path: Path) -> None:
    job = _hostile_job(tmp_path)
    outcome = annotate(job)
    assert outcome.ok, outcome.problem
    wb = openpyxl.load_workbook(outcome.target)
    first = wb[SHEET]
    assert all(c.data_type != "f" for row in first.iter_rows() for c in row)
    assert all(c.hyperlink.target is None for row in first.iter_rows() for c in row if c.hyperlink)
    values = [str(c.value) for row in first.iter_rows() for c in row if c.value is not None]
    assert any(HOSTILE[0] in v for v in values) and any("<script>alert(1)</script>&amp;" in v for v in values)
    assert all(len(v) < 2000 for v in values)  # 40,000 characters are shortened and counted, not printed
    assert any("40000" in v for v in values)
    comments = [c.comment.text for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.comment]
    assert any("_x005F_x0041_ literal" in c or "_x0041_ literal" in c for c in comments)
    assert all(len(c) <= 32767 for c in comments)


@pytest.mark.soffice
def test_a_workbook_saved_by_libreoffice_with_comments_is_patched_again(through_libreoffice, tmp_path: Path) -> None:
    from lxml import etree

    saved = through_libreoffice["xlsx"]  # LibreOffice's own VML: no shape layout, shapes named "shape_0"
    again = tmp_path / "again.xlsx"
    patch_workbook(saved, again, [Mark("Data", "B2", "FF7C80", "second note"), Mark("Data", "C5", None, "new")])
    wb = openpyxl.load_workbook(again)
    note = wb["Data"]["B2"].comment.text
    assert "second note" in note and "ours on a commented cell" in note
    assert wb["Data"]["C5"].comment.text == "new"
    for name, data in _members(again).items():
        if name.endswith(".vml"):
            etree.fromstring(data)  # still well-formed, with the id blocks it uses declared
            assert b"o:idmap" in data or b"_x0000_s" not in data


@pytest.mark.soffice
def test_libreoffice_opens_the_hostile_copy_and_keeps_its_text_inert(through_libreoffice) -> None:
    wb = openpyxl.load_workbook(through_libreoffice["hostile"])
    first = wb[SHEET]
    cells = [c for row in first.iter_rows() for c in row if c.value is not None]
    assert all(c.data_type != "f" for c in cells)
    assert any(str(c.value).startswith(HOSTILE[0]) for c in cells)
    assert any("<script>" in str(c.value) for c in cells)
    assert sum(1 for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.comment) >= 2 * len(HOSTILE)


def test_a_copy_that_cannot_be_made_is_an_outcome_not_an_exception(tmp_path: Path) -> None:
    good = SAMPLES / GOLDEN_SAMPLE
    (workbook,) = validate_paths([good], workers=1).workbooks
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-40] if item.filename == "xl/worksheets/sheet3.xml" else data)
    workbook.report.file = str(broken)
    target = tmp_path / "out" / "broken_x.xlsx"
    outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), target))
    assert not outcome.ok and outcome.kind == "damaged" and outcome.target is None
    assert "sheet3" in (outcome.problem or "") or "XML" in (outcome.problem or "")
    assert outcome.reason().startswith("未能生成") and "damaged" not in outcome.reason()
    assert not target.exists() and list(target.parent.iterdir()) == []  # no half-written file is left
    workbook.report.file = str(tmp_path / "gone.xlsx")
    gone = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), target))
    assert not gone.ok and gone.kind == "unexpected" and gone.reason()


# ------------------------------------------------------------------------------------------------
# .xls and .ods come back as the template, from what reading found


@pytest.mark.soffice
def test_xls_and_ods_come_back_as_the_template_with_the_values_read(tmp_path: Path, soffice) -> None:
    values = balanced_report("2021", random.Random(3))  # what _filled writes
    source = _filled(tmp_path / "src", "rebuild.xlsx", **{"s3.new.commercial": "1,234", "s3.new.research": "三"})
    copies = [*soffice([source], "xls", tmp_path / "in"), *soffice([source], "ods", tmp_path / "in")]
    batch = validate_paths(copies, workers=1)
    where = standard_where("2021")
    for workbook in batch.workbooks:
        outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings),
                                         tmp_path / "out" / f"{Path(workbook.file).suffix[1:]}.xlsx"))
        assert outcome.ok and outcome.rebuilt, outcome.problem
        wb = openpyxl.load_workbook(outcome.target)
        assert wb.sheetnames[0] == SHEET
        assert Path(workbook.file).suffix in wb[SHEET]["A2"].value and "标准模板" in wb[SHEET]["A2"].value
        for cid, value in workbook.report.values.items():
            ref = where[cid]
            shown = wb[ref.sheet][ref.ref].value
            if cid == "s3.new.commercial":
                assert shown == "1,234"  # as typed, with its cleaning note
                assert "1234" in wb[ref.sheet][ref.ref].comment.text
            elif cid == "s3.new.research":
                assert shown == "三"  # unreadable: the text as typed
            else:
                assert shown == value, cid
        assert values["s3.new.natural_person"] == wb[where["s3.new.natural_person"].sheet][
            where["s3.new.natural_person"].ref].value
        for finding in workbook.findings:
            if finding.cells and finding.cells[0].id in where:
                ref = where[finding.cells[0].id]
                assert finding.message() in wb[ref.sheet][ref.ref].comment.text


# ------------------------------------------------------------------------------------------------
# Rendered by LibreOffice


@pytest.mark.soffice
def test_the_first_sheet_prints_every_message_whole_on_landscape_pages(soffice, tmp_path: Path) -> None:
    import subprocess

    values = balanced_report("2021", random.Random(3))
    wrong = {cid: values[cid] + 1 for cid in values if cid.startswith("s3.") and cid.endswith(".total")}
    # Every kind of mark: errors and their other cells, a warning of two cells (more issued than in force
    # and repealed) and one of one cell (an amount in 元), an interpreted value, and a suspect cell.
    wrong |= {"s2.normative_docs.issued": values["s2.normative_docs.in_force"] + values["s2.normative_docs.repealed"] + 1,
              "s2.fees.amount": 12500, "s2.licensing.decisions": f"{values['s2.licensing.decisions']}件"}
    # Findings only: no suggested fix (every 总计 one off is ten seconds of solver that ends "not found").
    (workbook,) = validate_paths([_filled(tmp_path, "many.xlsx", **wrong)], workers=1, suggest=False).workbooks
    assert len(workbook.findings) > 20  # several printed pages of findings
    suspect = Suspect(workbook.findings[0].cells[-1], 1)
    outcome = annotate(AnnotationJob(workbook.report, tuple(workbook.findings), tmp_path / "many_x.xlsx", (suspect,)))
    assert set(_legend_fills(openpyxl.load_workbook(outcome.target)[SHEET])) == {
        "FF" + fill for fill in MARK_FILLS.values()}
    (pdf,) = soffice([outcome.target], "pdf", tmp_path / "pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info).groups())
    assert width > height  # the first page is the first sheet, landscape
    printed = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"\s+", "", printed)
    for finding in workbook.findings:
        assert re.sub(r"\s+", "", finding.message()) in flat, finding.message()
    # Printed in greyscale, each mark colour comes out at its own grey (the legend shows every one here).
    subprocess.run(["pdftoppm", "-gray", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    greys = [v for page in sorted(tmp_path.glob("page*.pgm")) for v in _pgm(page)]
    for kind, rgb in MARK_FILLS.items():
        level = round(_luma(rgb))
        assert sum(abs(v - level) <= 2 for v in greys) > 100, (kind, level)


def _pgm(path: Path) -> bytes:
    """The pixels of a binary PGM (pdftoppm -gray): header "P5 width height 255", then one byte each."""
    data = path.read_bytes()
    fields = data.split(maxsplit=4)
    assert fields[0] == b"P5" and fields[3] == b"255"
    width, height = int(fields[1]), int(fields[2])
    return data[len(data) - width * height:]


def _luma(rgb: str) -> float:
    """Grey level of a colour in print (Rec. 601 luma, what greyscale conversion uses)."""
    r, g, b = (int(rgb[i:i + 2], 16) for i in (0, 2, 4))
    return 0.299 * r + 0.587 * g + 0.114 * b


# ------------------------------------------------------------------------------------------------
# Property: annotating changes no cell value


_TEMPLATE: dict[str, Path] = {}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_annotating_changes_no_cell_value(tmp_path_factory, data) -> None:
    folder = tmp_path_factory.getbasetemp() / "property"
    if "base" not in _TEMPLATE:
        _TEMPLATE["base"] = _filled(folder, "base.xlsx")
        (_TEMPLATE["workbook"],) = validate_paths([_TEMPLATE["base"]], workers=1).workbooks  # type: ignore[misc]
        _TEMPLATE["cells"] = _cells(_TEMPLATE["base"])  # type: ignore[assignment]
    workbook = _TEMPLATE["workbook"]
    fmt = get_format("2021")
    layout = layout_for("2021")
    ids = data.draw(st.lists(st.sampled_from(sorted(fmt.cells)), min_size=1, max_size=8, unique=True))
    words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
    refs = [workbook.report.where[i] for i in ids]
    anywhere = [CellRef("x", data.draw(st.sampled_from([s.name for s in layout.sheets])),
                        data.draw(st.from_regex(r"[A-Z]{1,2}[1-9][0-9]?", fullmatch=True))) for _ in range(3)]
    findings = (Finding("value-unparseable", cells=tuple(refs + anywhere),
                        params={"where": data.draw(words), "raw": data.draw(words)}),)
    suspects = tuple(Suspect(r, data.draw(st.integers(0, 10**6))) for r in refs[:2])
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        outcome = annotate(AnnotationJob(workbook.report, findings, Path(tmp) / "x.xlsx", suspects))
        assert outcome.ok, outcome.problem
        assert _cells(outcome.target, skip=SHEET) == _TEMPLATE["cells"]


# ------------------------------------------------------------------------------------------------
# Golden dump of one annotated sample


def test_golden_dump_of_an_annotated_sample(samples, update_golden: bool) -> None:
    _, outcome = next((w, o) for w, o in samples if Path(w.file).name == GOLDEN_SAMPLE)
    check_golden("annotated", outcome.target, update_golden)
