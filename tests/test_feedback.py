"""Feedback for offices: annotated copies, plain summaries, the county overview, and output safety."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import openpyxl
import pytest

from disclosure_xlsx.annotate import FILLS, RESULT_SHEET
from disclosure_xlsx.feedback import FEEDBACK_DIR, OVERVIEW, REPORT, safe_name, write_outputs
from disclosure_xlsx.marks import MARKER
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES


def _offices_folders(out: Path) -> list[Path]:
    """The offices' folders of a feedback tree (beside them only the tree's marker file)."""
    return sorted(p for p in (out / FEEDBACK_DIR).iterdir() if p.is_dir())


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _snapshot(path: Path) -> dict:
    """Everything of a workbook that annotation must keep: values, formulas, formats, merges, names."""
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


def test_the_marked_copy_changes_nothing_but_flagged_cells(outputs) -> None:
    inputs, out, batch = outputs
    for workbook in batch.workbooks:
        if not workbook.findings or workbook.report is None:
            continue
        folder = next(f for f in _offices_folders(out)
                      if f"文件：{Path(workbook.file).name}\n" in (f / "反馈.txt").read_text("utf-8"))
        (copy,) = _annotated(folder)
        original, marked = _snapshot(Path(workbook.file)), _snapshot(copy)
        assert marked["sheets"] == [RESULT_SHEET, *original["sheets"]]
        for key in ("merged", "names", "validations", "protected"):
            assert {k: v for k, v in marked[key].items() if k != RESULT_SHEET} == original[key], key
        assert {k: v for k, v in marked["cells"].items() if k[0] != RESULT_SHEET} == original["cells"]
        flagged = {(c.sheet, c.ref) for f in workbook.findings for c in f.cells}
        wb, src = openpyxl.load_workbook(copy), openpyxl.load_workbook(workbook.file)
        for ws in src.worksheets:
            for row in ws.iter_rows():
                for c in row:
                    new = wb[ws.title][c.coordinate]
                    changed = new.fill.fgColor.rgb != c.fill.fgColor.rgb
                    commented = new.comment is not None
                    assert (changed and commented) == ((ws.title, c.coordinate) in flagged), (ws.title, c.coordinate)
        for finding in workbook.findings:
            for i, ref in enumerate(finding.cells):
                on_cell = [(f, f.cells.index(c) == 0) for f in workbook.findings for c in f.cells
                           if (c.sheet, c.ref) == (ref.sheet, ref.ref)]
                worst = "error" if any(f.severity == "error" for f, _ in on_cell) else "warning"
                cell = wb[ref.sheet][ref.ref]
                assert cell.fill.fgColor.rgb.endswith(FILLS[(worst, any(a for _, a in on_cell))])
                if i == 0:
                    assert finding.message("zh") in cell.comment.text


def test_the_result_sheet_lists_and_links_every_finding(outputs) -> None:
    _, out, batch = outputs
    workbook = next(w for w in batch.workbooks if w.file.endswith("2021格式_I3错误.xlsx"))
    (copy,) = _annotated(out / FEEDBACK_DIR / "示例镇（I3 错误）_2024")
    ws = openpyxl.load_workbook(copy)[RESULT_SHEET]
    links = [c.hyperlink.location for row in ws.iter_rows() for c in row if c.hyperlink]
    assert links == [f"'{f.cells[0].sheet}'!{f.cells[0].ref}" for f in workbook.findings]
    texts = [c.value for row in ws.iter_rows() for c in row]
    assert all(f.message("zh") in texts for f in workbook.findings)


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
    result = openpyxl.load_workbook(copy)[RESULT_SHEET]
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
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([FEEDBACK_DIR, OVERVIEW, REPORT, MARKER])
    assert (tmp_path / "out" / FEEDBACK_DIR / MARKER).is_file()  # the tree is marked as the tool's own, too


@pytest.mark.parametrize("text, safe", [
    ("../../etc/passwd", "etc_passwd"), ("a/b\\c", "a_b_c"), ("CON", "_CON"), ("nul.txt", "_nul.txt"),
    ("tab\there\x00", "tab_here"), ("  .. ", "未命名"), ("某镇人民政府_2024", "某镇人民政府_2024")])
def test_safe_names_never_escape_the_folder(text: str, safe: str) -> None:
    assert safe_name(text) == safe


def test_xls_and_ods_come_back_as_annotated_templates(tmp_path: Path, soffice) -> None:
    source = next(SAMPLES.glob("2024_2021格式_I2*.xlsx"))
    copies = [*soffice([source], "xls", tmp_path / "in"), *soffice([source], "ods", tmp_path / "in")]
    batch = validate_paths(copies, workers=1)
    write_outputs(batch, tmp_path / "out")
    for workbook in batch.workbooks:
        folder = next(f for f in _offices_folders(tmp_path / "out")
                      if f"文件：{Path(workbook.file).name}\n" in (f / "反馈.txt").read_text("utf-8"))
        (copy,) = _annotated(folder)
        assert copy.suffix == ".xlsx"
        wb = openpyxl.load_workbook(copy)
        finding = workbook.findings[0]
        assert finding.message("zh") in wb[finding.cells[0].sheet][finding.cells[0].ref].comment.text
        if copy.stem.startswith(Path(workbook.file).stem) and Path(workbook.file).suffix == ".xls":
            note = wb[RESULT_SHEET]["A1"].value
            assert ".xls" in note and "标准模板" in note


def test_a_marked_copy_says_when_pictures_could_not_be_kept(tmp_path: Path) -> None:
    source = tmp_path / "with-chart.xlsx"
    wb = openpyxl.load_workbook(next(SAMPLES.glob("2024_2021格式_I5*.xlsx")))
    from openpyxl.chart import BarChart, Reference

    chart = BarChart()
    sheet = wb.worksheets[3]
    chart.add_data(Reference(sheet, min_col=1, min_row=6, max_col=5, max_row=6))
    sheet.add_chart(chart, "A10")
    wb.save(source)
    write_outputs(validate_paths([source], workers=1), tmp_path / "out")
    (copy,) = [p for p in (tmp_path / "out" / FEEDBACK_DIR).rglob("*.xlsx")]
    assert "图片或图表" in openpyxl.load_workbook(copy)[RESULT_SHEET]["A1"].value
