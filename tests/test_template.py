"""The standard template, written to disk and opened again with openpyxl and python-calamine."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from disclosure_xlsx._xlsx import OUTPUT_PROPERTY
from disclosure_xlsx.formats import get_format, name_for
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import PROPERTY_FORMAT, PROPERTY_VERSION, write_template

from .conftest import A1, defined_cells, labels_around as _labels, rc as _rc
from .test_formats import spec_cells


@pytest.fixture
def template(tmp_path: Path, format_id: str) -> Path:
    fmt = get_format(format_id)
    return write_template(tmp_path / "年报模板.xlsx", format_id,
                          values={"meta_office": "测试镇人民政府", "meta_year": fmt.first_year})


def test_opens_with_openpyxl_and_calamine(template: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    sheets = [fmt.words.cover_sheet, *(s.sheet for s in fmt.sections), fmt.words.narrative_sheet]
    assert openpyxl.load_workbook(template).sheetnames == sheets
    calamine = CalamineWorkbook.from_path(str(template))
    assert calamine.sheet_names == sheets
    cover = calamine.get_sheet_by_name(fmt.words.cover_sheet).to_python(skip_empty_area=False)
    assert ["单位名称", "测试镇人民政府"] == [v for v in cover[2][:2]]


def test_every_cell_id_names_a_cell_under_the_spec_labels(template: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    wb = openpyxl.load_workbook(template)
    names = defined_cells(wb)
    expected = spec_cells(format_id)
    row_headers = {s.sheet: s.row_header for s in fmt.sections}
    for cid in fmt.cells:
        sheet, ref = names[name_for(cid)]
        row, col = _rc(ref)
        got = _labels(wb[sheet], row, col, row_headers[sheet])
        assert got == (expected[cid]["row_path"], expected[cid]["col_path"]), cid


def test_cover_narratives_and_format_are_named(template: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    wb = openpyxl.load_workbook(template)
    names = defined_cells(wb)
    assert set(names) == set(fmt.names)
    for field in fmt.cover:
        sheet, ref = names[field.name]
        row, col = _rc(ref)
        assert wb[sheet].cell(row, col - 1).value == field.label
    for narrative in fmt.narratives:
        sheet, ref = names[narrative.name]
        row, col = _rc(ref)
        assert sheet == fmt.words.narrative_sheet
        assert wb[sheet].cell(row - 2, col).value == narrative.heading
    value = {n: wb[s][ref].value for n, (s, ref) in names.items()}
    assert value["meta_format"] == format_id
    assert value["meta_template_version"] == fmt.template_version
    assert value["meta_office"] == "测试镇人民政府"
    props = {p.name: p.value for p in wb.custom_doc_props.props}
    mark = json.loads(props.pop(OUTPUT_PROPERTY))
    assert props == {PROPERTY_FORMAT: format_id, PROPERTY_VERSION: fmt.template_version}
    assert mark["kind"] == "template"  # the tool's own mark (marks.py): a template is read as a submission


def test_only_inputs_are_unlocked_and_shaded_and_sheets_are_protected(template: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    wb = openpyxl.load_workbook(template)
    names = defined_cells(wb)
    inputs = {(s, ref) for n, (s, ref) in names.items() if n not in ("meta_format", "meta_template_version")}
    unlocked = set()
    for ws in wb.worksheets:
        assert ws.protection.sheet and not ws.protection.password
        merged = {c.coordinate: r.start_cell.coordinate for r in ws.merged_cells.ranges for c in
                  (ws.cell(row, col) for row in range(r.min_row, r.max_row + 1) for col in range(r.min_col, r.max_col + 1))}
        for row in ws.iter_rows(min_row=1, max_row=ws.max_row + 2, max_col=ws.max_column + 2):
            for cell in row:
                if not cell.protection.locked:
                    unlocked.add((ws.title, merged.get(cell.coordinate, cell.coordinate)))
    assert unlocked == inputs
    for sheet, ref in inputs:
        assert wb[sheet][ref].fill.fgColor.rgb.endswith("FFF2CC")
    for sheet, ref in (names["meta_format"], names["meta_template_version"]):
        assert wb[sheet][ref].protection.locked
    assert len(inputs) == len(fmt.cells) + len(fmt.cover) + len(fmt.narratives)


def test_inputs_carry_data_validation_by_value_type(template: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    wb = openpyxl.load_workbook(template)
    names = defined_cells(wb)
    expected = {"count": ("whole", "greaterThanOrEqual"), "signed_count": ("whole", "between"),
                "money": ("decimal", "greaterThanOrEqual")}
    for cid, cell in fmt.cells.items():
        sheet, ref = names[name_for(cid)]
        rules = [dv for dv in wb[sheet].data_validations.dataValidation if ref in dv.sqref]
        assert len(rules) == 1, cid
        dv = rules[0]
        assert (dv.type, dv.operator or "between") == expected[cell.type.key], cid  # "between" is the default
        assert dv.prompt == cell.type.dv_input and dv.error == cell.type.dv_error
        if cell.type.key == "signed_count":
            assert int(dv.formula1) < 0 < int(dv.formula2)
        else:
            assert float(dv.formula1) == 0


def _self_checks(path: Path, format_id: str) -> list[tuple[frozenset[str], str]]:
    """Each self-check formula as (the cell ids it references, its formula)."""
    fmt = get_format(format_id)
    wb = openpyxl.load_workbook(path)
    by_position = {(s, ref): cid for cid in fmt.cells for s, ref in [defined_cells(wb)[name_for(cid)]]}
    out = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    formula = cell.value
                    without_text = "".join(formula.split('"')[::2])
                    refs = {f"{c}{r}" for c, r in A1.findall(without_text)}
                    out.append((frozenset(by_position[(ws.title, ref)] for ref in refs), cell.coordinate))
    return out


def test_self_checks_reference_exactly_the_cells_of_their_identity(template: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    checks = _self_checks(template, format_id)
    assert Counter(cells for cells, _ in checks) == Counter(frozenset(i.cells) for i in fmt.identities)


def test_self_check_cached_results_follow_the_values(tmp_path: Path, format_id: str) -> None:
    """The values Excel shows before recalculating: 待填 when blank, ✓ when balanced, ✗ after a mistake."""
    fmt = get_format(format_id)
    values = balanced_report(format_id, random.Random(7))
    words = fmt.words
    blank = CalamineWorkbook.from_path(str(write_template(tmp_path / "blank.xlsx", format_id)))
    good = CalamineWorkbook.from_path(str(write_template(tmp_path / "good.xlsx", format_id, values=values)))
    bad_values = {**values, "s4.review.total": values["s4.review.total"] + 1}
    bad = CalamineWorkbook.from_path(str(write_template(tmp_path / "bad.xlsx", format_id, values=bad_values)))

    def marks(wb: CalamineWorkbook) -> Counter[str]:
        found: Counter[str] = Counter()
        for name in wb.sheet_names:
            for row in wb.get_sheet_by_name(name).to_python(skip_empty_area=False):
                found.update(v for v in row if v in (words.check_ok, words.check_fail, words.check_blank))
        return found

    n = len(fmt.identities)
    assert marks(blank) == Counter({words.check_blank: n})
    assert marks(good) == Counter({words.check_ok: n})
    assert marks(bad) == Counter({words.check_ok: n - 1, words.check_fail: 1})


def test_prefilled_values_round_trip_through_calamine(tmp_path: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    values = balanced_report(format_id, random.Random(3))
    path = write_template(tmp_path / "filled.xlsx", format_id, values={**values, "text_other": "=HYPERLINK(\"x\")"})
    wb = openpyxl.load_workbook(path)
    names = defined_cells(wb)
    calamine = CalamineWorkbook.from_path(str(path))
    sheets = {n: calamine.get_sheet_by_name(n).to_python(skip_empty_area=False) for n in calamine.sheet_names}
    for cid in fmt.cells:
        sheet, ref = names[name_for(cid)]
        row, col = _rc(ref)
        assert sheets[sheet][row - 1][col - 1] == pytest.approx(values[cid]), cid
    sheet, ref = names["text_other"]
    assert wb[sheet][ref].data_type == "s"  # text that looks like a formula stays text


def test_prints_on_a4_one_page_wide(template: Path) -> None:
    for ws in openpyxl.load_workbook(template).worksheets:
        assert ws.page_setup.paperSize == 9
        assert ws.page_setup.orientation == "portrait"
        setup = ws.page_setup  # fitToWidth is absent from the file when it is the default, 1
        assert ws.sheet_properties.pageSetUpPr.fitToPage and setup.fitToWidth in (None, 1) and setup.fitToHeight == 0


def test_unknown_values_are_refused(tmp_path: Path, format_id: str) -> None:
    with pytest.raises(KeyError):
        write_template(tmp_path / "x.xlsx", format_id, values={"s9.nothing.here": 1})
    assert not (tmp_path / "x.xlsx").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_libreoffice_recalculates_the_self_checks(tmp_path: Path, format_id: str, soffice) -> None:
    """A real office suite evaluates our formula text: ✓ when balanced, ✗ exactly where a total is off."""
    fmt = get_format(format_id)
    values = balanced_report(format_id, random.Random(11))
    path = write_template(tmp_path / "in.xlsx", format_id)  # blank: every cached result is 待填
    wb = openpyxl.load_workbook(path)
    names = defined_cells(wb)
    for cid, value in values.items():
        sheet, ref = names[name_for(cid)]
        wb[sheet][ref] = value + (1 if cid == "s3.granted.total" else 0)
    wb.save(path)  # openpyxl drops every cached formula result
    (ods,) = soffice([path], "ods", tmp_path / "out", recalc=True)
    calamine = CalamineWorkbook.from_path(str(ods))
    found: Counter[str] = Counter()
    for name in calamine.sheet_names:
        for row in calamine.get_sheet_by_name(name).to_python(skip_empty_area=False):
            found.update(v for v in row if v in (fmt.words.check_ok, fmt.words.check_fail, fmt.words.check_blank))
    # granted.total + 1 breaks I2[granted] and I3[total]; every other identity holds
    assert found == Counter({fmt.words.check_ok: len(fmt.identities) - 2, fmt.words.check_fail: 2})
