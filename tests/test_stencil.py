"""A stencil stamps what xlsxwriter would write: the same cells, styles and sheet set-up, for a small
workbook of every kind of hole, for the template of every format (blank and filled) and for convert's
cleaned workbooks of every shape, read back with openpyxl and with calamine."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from disclosure_xlsx._sheetml import TextTooLong
from disclosure_xlsx._xlsx import new_workbook, put
from disclosure_xlsx.convert import _stencil, convert_paths, write_cleaned
from disclosure_xlsx.formats import get_format
from disclosure_xlsx.mapping import map_values
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.stencil import RENDERED_AT, Stencil, StencilError, token
from disclosure_xlsx.template import _stencil as _template_stencil
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES


def dump(data: bytes | Path) -> dict[str, Any]:
    """Everything of a workbook a reader sees: every cell's value, type and style, and each sheet's set-up."""
    book = openpyxl.load_workbook(io.BytesIO(data) if isinstance(data, bytes) else data)
    out: dict[str, Any] = {"names": sorted((n, d.attr_text) for n, d in book.defined_names.items()),
                           "sheets": book.sheetnames}
    for ws in book.worksheets:
        out[ws.title] = {
            "merged": sorted(str(r) for r in ws.merged_cells.ranges), "freeze": ws.freeze_panes,
            "filter": ws.auto_filter.ref, "protected": ws.protection.sheet,
            "setup": (ws.page_setup.orientation, ws.page_setup.paperSize, ws.page_setup.fitToWidth,
                      ws.print_options.horizontalCentered, ws.sheet_view.showGridLines),
            "breaks": [b.id for b in ws.row_breaks.brk],
            "widths": {k: d.width for k, d in ws.column_dimensions.items()},
            "heights": {k: d.height for k, d in ws.row_dimensions.items() if d.height is not None},
            "validations": sorted((str(v.sqref), v.type, v.formula1) for v in ws.data_validations.dataValidation),
            "conditional": sorted(str(r.sqref) for r in ws.conditional_formatting),
            "cells": {c.coordinate: (c.value, c.data_type, c.number_format, c.font.b, c.font.sz, _rgb(c.font.color),
                                     _rgb(c.fill.fgColor) if c.fill.fill_type else None, c.border.left.style,
                                     c.alignment.horizontal, c.alignment.wrap_text, c.protection.locked)
                      for row in ws.iter_rows() for c in row
                      if c.value is not None or c.has_style and c.style_id != 0},
        }
    return out


def _rgb(color: Any) -> str | None:
    return color.rgb if color is not None and isinstance(color.rgb, str) else None


def calamine_values(data: bytes | Path) -> dict[str, list[list[Any]]]:
    book = CalamineWorkbook.from_filelike(io.BytesIO(data)) if isinstance(data, bytes) else \
        CalamineWorkbook.from_path(str(data))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


# ----------------------------------------------------------------------------------------------
# One small workbook with every kind of hole


def _small(values: dict[str, Any], rows: list[list[Any]], result: str) -> bytes:
    """The small workbook written through xlsxwriter: tokens when `values` are tokens."""
    buffer = io.BytesIO()
    book = new_workbook(buffer, created=RENDERED_AT, title="t", kind="cleaned")
    bold = book.add_format({"bold": True, "num_format": "0.00", "border": 1})
    red = book.add_format({"font_color": "#C00000"})
    sheet = book.add_worksheet("表 一")
    put(sheet, 0, 0, "常量")
    put(sheet, 1, 1, values["n"], bold)
    put(sheet, 2, 1, values["t"])
    sheet.merge_range(3, 0, 3, 3, "", bold)
    sheet.write_rich_string(3, 0, bold, f"标题{values['office']}年", red, "（未通过）", bold)
    sheet.write_formula(4, 0, '=IF(B2>0,"✓","✗")', None, result)
    put(sheet, 5, 2, values["blank"])
    table = book.add_worksheet("log")
    for col, header in enumerate(("a", "b", "c")):
        put(table, 0, col, header, bold)
    for r, row in enumerate(rows, 1):
        for col, value in enumerate(row):
            put(table, r, col, value)
    table.autofilter(0, 0, max(len(rows), 1), 2)
    book.close()
    return buffer.getvalue()


def _small_stencil() -> Stencil:
    tokens = {name: token(name) for name in ("n", "t", "office", "blank")}
    return Stencil.from_package(_small(tokens, [[token("r0"), token("r1"), token("r2")]], "✗"),
                                results=[("表 一", "A5")], tables=["log"])


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
cells = st.one_of(st.none(), st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False),
                  texts)
# In a rich string xlsxwriter escapes a control character twice (it reads back as "_x001F_"), where the
# stencil writes it once, so that the rich hole is compared on printable text.
printable = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=40, deadline=None)
@given(n=cells, t=cells, office=printable, blank=cells, rows=st.lists(st.lists(cells, min_size=3, max_size=3), max_size=4),
       result=st.sampled_from(["✓", "✗", "待填"]))
def test_a_stamp_reads_back_as_what_xlsxwriter_writes(n, t, office, blank, rows, result) -> None:  # type: ignore[no-untyped-def]
    """Numbers, blanks and any text (control characters, `_x0001_`, leading spaces, `=cmd|…`) in every
    kind of hole, and a table of 0–4 rows."""
    values = {"n": n, "t": t, "office": office, "blank": blank}
    stamped = _small_stencil().stamp(values, results={("表 一", "A5"): result}, tables={"log": rows},
                                     written=RENDERED_AT)
    direct = _small(values, rows, result)
    assert dump(stamped) == dump(direct)
    assert calamine_values(stamped) == calamine_values(direct)


def test_the_stamp_says_when_it_was_written_and_keeps_no_token() -> None:
    when = datetime(2026, 12, 1, 9, 30, 15)
    stamped = _small_stencil().stamp({"n": 1, "t": "x", "office": "某镇", "blank": None},
                                     results={("表 一", "A5"): "✓"}, tables={"log": [[1, 2, 3]]}, written=when)
    archive = zipfile.ZipFile(io.BytesIO(stamped))
    everything = b"".join(archive.read(name) for name in archive.namelist()).decode("utf-8")
    assert "\u2983" not in everything and RENDERED_AT.isoformat() not in everything
    assert when.isoformat() in archive.read("docProps/custom.xml").decode("utf-8")
    assert f"{when.isoformat()}Z" in archive.read("docProps/core.xml").decode("utf-8")
    assert archive.testzip() is None


def test_a_text_too_long_or_a_missing_value_fails_loudly() -> None:
    stencil = _small_stencil()
    good = {"n": 1, "t": "x", "office": "某镇", "blank": None}
    with pytest.raises(TextTooLong):
        stencil.stamp({**good, "t": "字" * 32768}, results={("表 一", "A5"): "✓"})
    with pytest.raises(StencilError, match="office"):
        stencil.stamp({k: v for k, v in good.items() if k != "office"}, results={("表 一", "A5"): "✓"})
    with pytest.raises(StencilError, match="3 values"):
        stencil.stamp(good, results={("表 一", "A5"): "✓"}, tables={"log": [[1, 2]]})
    with pytest.raises(StencilError, match="no formula cells"):
        Stencil.from_package(_small({k: token(k) for k in good}, [[token("a"), token("b"), token("c")]], "✓"),
                             results=[("表 一", "B9")])


# ----------------------------------------------------------------------------------------------
# The template of every format, blank and filled


def _filled(format_id: str) -> dict[str, Any]:
    """A value in every input cell: whole and decimal numbers (with which a few identities hold and most
    do not), text where a number belongs, a blank, a hostile office name, narratives with line breaks."""
    fmt = get_format(format_id)
    values: dict[str, Any] = {name: f"文字{i}" for i, name in enumerate(fmt.names)}
    values.update({c.id: (i % 7) + (0.5 if i % 11 == 0 else 0) for i, c in enumerate(fmt.cells.values())})
    first, second = list(fmt.cells)[:2]
    values.update({first: "3件", second: None, fmt.field("year").name: fmt.first_year,
                   fmt.field("office").name: "某县<审计局>&\n=HYPERLINK(\"x\")"})
    values.update({n.name: "第一段。\n第二段，" * 40 for n in fmt.narratives})
    return values


@pytest.mark.parametrize("filled", [False, True], ids=["blank", "filled"])
def test_a_stamped_template_is_the_one_xlsxwriter_writes(tmp_path: Path, format_id: str, filled: bool) -> None:
    values = _filled(format_id) if filled else None
    when = datetime(2026, 3, 4, 5, 6, 7)
    stamped = write_template(tmp_path / "stamped.xlsx", format_id, values=values, created=when)
    direct = write_template(tmp_path / "direct.xlsx", format_id, values=values, created=when, stamped=False)
    assert dump(stamped) == dump(direct)
    assert calamine_values(stamped) == calamine_values(direct)
    words = get_format(format_id).words
    results = {v for rows in calamine_values(stamped).values() for row in rows for v in row
               if v in (words.check_ok, words.check_fail)}
    assert results == ({words.check_ok, words.check_fail} if filled else set())  # the self-checks' results


def test_a_template_stencil_is_rendered_once_per_format(tmp_path: Path, format_id: str) -> None:
    _template_stencil.cache_clear()
    for i in range(3):
        write_template(tmp_path / f"{i}.xlsx", format_id, values={get_format(format_id).field("office").name: f"第{i}镇"})
    assert (_template_stencil.cache_info().misses, _template_stencil.cache_info().hits) == (1, 2)


# ----------------------------------------------------------------------------------------------
# Convert's cleaned workbooks, every shape


def _cases() -> list[tuple[str, str, bool]]:
    """(sample, target format, apply the suggested fix) covering every shape: plain, failed, applied,
    mapped onto another format (with cells left to fill)."""
    return [("2020_宁海县力洋镇人民政府.xlsx", "2019", False), ("2024_示例县审计局.xlsx", "2021", False),
            ("2024_2021格式_I2错误.xlsx", "2021", False), ("2024_2021格式_I2错误.xlsx", "2021", True),
            ("2020_宁海县力洋镇人民政府.xlsx", "2021", False)]


@pytest.mark.parametrize(("sample", "target", "apply"), _cases())
def test_a_stamped_cleaned_workbook_is_the_one_xlsxwriter_writes(tmp_path: Path, sample: str, target: str,
                                                                 apply: bool) -> None:
    (workbook,) = validate_paths([SAMPLES / sample], workers=1).workbooks
    assert workbook.report is not None
    fmt = get_format(target)
    values, notes = map_values(workbook.report, fmt)
    applied = workbook.suggestion.changes if apply and workbook.suggestion and workbook.suggestion.unique else ()
    assert bool(applied) == apply
    values.update({c.id: c.suggested for c in applied})
    stamped = write_cleaned(tmp_path / "stamped.xlsx", workbook, fmt, values, notes, applied)
    direct = write_cleaned(tmp_path / "direct.xlsx", workbook, fmt, values, notes, applied, stamped=False)
    assert dump(stamped) == dump(direct)
    assert calamine_values(stamped) == calamine_values(direct)


def test_convert_through_the_pool_gives_the_direct_writers_cells(tmp_path: Path) -> None:
    """Through the process pool users get, every sample's cleaned workbook has the cells the direct
    writer gives it."""
    _, done = convert_paths([SAMPLES], tmp_path / "out", workers=2)
    assert [c.problem for c in done] == [None] * len(done) and len(done) == len(list(SAMPLES.glob("*.xlsx")))
    for item in done:
        assert item.output is not None and item.source.report is not None and item.format_id is not None
        values, notes = map_values(item.source.report, get_format(item.format_id))
        direct = write_cleaned(tmp_path / "direct.xlsx", item.source, get_format(item.format_id), values, notes,
                               stamped=False)
        assert calamine_values(item.output) == calamine_values(direct), item.output.name


def test_a_shape_is_rendered_once(tmp_path: Path) -> None:
    (workbook,) = validate_paths([SAMPLES / "2024_示例县审计局.xlsx"], workers=1).workbooks
    assert workbook.report is not None
    fmt = get_format("2021")
    values, notes = map_values(workbook.report, fmt)
    _stencil.cache_clear()
    for i in range(3):
        write_cleaned(tmp_path / f"{i}.xlsx", workbook, fmt, values, notes)
    assert (_stencil.cache_info().misses, _stencil.cache_info().hits) == (1, 2)
