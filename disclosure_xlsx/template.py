"""Write the standard workbook an office fills in, optionally pre-filled, from the format's layout.

The same writer makes the blank template, the sample workbooks, and (later) the cleaned workbook and
the county total, so every workbook the project writes is laid out and named identically.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from xlsxwriter.format import Format as CellFormat
from xlsxwriter.utility import quote_sheetname
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from ._xlsx import atomic_output, new_workbook, put
from .catalog import text
from .formats import CrossYearRule, Format, Identity, ValueType, get_format
from .layout import (CheckSlot, CrossCheckSlot, LastYearSlot, Layout, SheetLayout, Slot, a1, last_year_layout,
                     layout_for, report_layout)
from .stencil import RENDERED_AT, Stencil, token

__all__ = ["PROPERTY_FORMAT", "PROPERTY_VERSION", "LastYear", "add_report_sheet", "check_formula", "check_results",
           "check_value", "cross_check_formula", "cross_check_value", "fill_workbook", "mark_cover", "write_template"]

# Document properties that repeat what the cover's locked cells say, for tools that read those.
PROPERTY_FORMAT = "disclosure_xlsx.format"
PROPERTY_VERSION = "disclosure_xlsx.template_version"

FONT = text("template.fonts.body")
TITLE_FONT = text("template.fonts.title")
INPUT_FILL = "#FFF2CC"
LAST_YEAR_FILL = "#EDEDED"
_BASE = {"font_name": FONT, "font_size": 10, "valign": "vcenter"}
_STYLES: dict[str, dict[str, object]] = {
    "title": {"font_name": TITLE_FONT, "font_size": 15, "bold": True, "align": "center"},
    "header": {"bold": True, "align": "center", "text_wrap": True, "border": 1},
    "label": {"align": "left", "text_wrap": True, "border": 1},
    "note": {"font_size": 9, "align": "center", "text_wrap": True, "border": 1},
    "caption": {"bold": True, "align": "center", "border": 1, "bg_color": "#F2F2F2"},
    "unit": {"font_size": 9, "font_color": "#595959"},
    "check_label": {"font_size": 9, "align": "center", "text_wrap": True, "font_color": "#1F4E79"},
    "field": {"font_size": 11, "bold": True, "align": "right"},
    "hint": {"font_size": 9, "font_color": "#595959", "text_wrap": True},
    "heading": {"font_name": TITLE_FONT, "font_size": 12, "bold": True},
    "text": {"text_wrap": True},
    "meta": {"font_size": 11, "bold": True, "align": "left"},
    "check": {"bold": True, "align": "center", "font_size": 11},
    "source": {"font_size": 10, "text_wrap": True, "font_color": "#1F4E79"},
    "value": {"align": "right", "border": 1},
}
# The report sheet, as printed in a published report: 宋体 tables, 仿宋 section headings, thin borders.
REPORT_HEADING_FONT = text("template.fonts.report_heading")
_REPORT_BASE = {"font_name": FONT, "font_size": 10, "valign": "vcenter", "text_wrap": True}
_REPORT_STYLES: dict[str, dict[str, object]] = {
    "title": {"font_size": 16, "bold": True, "align": "center"},
    "mark": {"font_size": 16, "bold": True, "font_color": "#C00000"},
    "section": {"font_name": REPORT_HEADING_FONT, "font_size": 13, "bold": True, "align": "left"},
    "header": {"align": "center", "border": 1},
    "label": {"align": "left", "border": 1},
    "note": {"font_size": 9, "align": "center", "border": 1},
    "caption": {"align": "center", "border": 1},
    "value": {"align": "right", "border": 1},
}


@dataclass(frozen=True)
class LastYear:
    """Last year's report, as a template made from it needs it (`template --from`, issue 14)."""

    file: str  # its file name, shown on the 上年数据 sheet
    office: str | None
    year: int | None
    format_id: str
    values: Mapping[str, int | float | None]  # last year's cells the rules need; None = blank there
    rules: tuple[str, ...]  # the cross-year rule instances to check live


def write_template(path: str | os.PathLike[str], format_id: str, *,
                   values: Mapping[str, object] | None = None, created: datetime | None = None,
                   last_year: LastYear | None = None, stamped: bool = True) -> Path:
    """Write the standard workbook of `format_id` to `path`, atomically.

    Args:
        path: where to write the .xlsx file.
        format_id: the id of a format in the data.
        values: optional contents keyed by cell id (`s3.new.total`) or cover/narrative name
            (`meta_office`, `text_overview`); numbers are written as numbers, anything else as text.
        created: a fixed creation time, for byte-stable output.
        last_year: last year's report: adds the locked 上年数据 sheet and live cross-year checks.
        stamped: stamp it from the format's stencil, rendered once per process (a few milliseconds
            instead of tens: a county's pre-filled templates and the annotated copies of its .xls and
            .ods workbooks are written by the hundred); False writes it through xlsxwriter, the
            reference the stencil is tested against. A template with last year's sheet is always written
            through xlsxwriter (its sheet and checks depend on last year's format).
    Returns:
        The path written.
    """
    fmt = layout_for(format_id).format
    values = {key.replace(".", "_"): value for key, value in (values or {}).items()}
    unknown = set(values) - set(fmt.names)
    if unknown:
        raise KeyError(f"not cells or fields of format {fmt.id}: {sorted(unknown)[:5]}")
    with atomic_output(path) as tmp:
        if stamped and last_year is None:
            tmp.write_bytes(_stencil(fmt.id).stamp({**dict.fromkeys(fmt.names), **values},
                                                   results=check_results(fmt.id, values), written=created))
        else:
            workbook = new_workbook(tmp, created=created, title=fmt.words.title, kind="template")
            fill_workbook(workbook, format_id, values, last_year=last_year)
            workbook.close()
    return Path(path)


@functools.cache  # one per format and process
def _stencil(format_id: str) -> Stencil:
    """The format's template rendered once with a token in every input cell, cut into a stencil."""
    fmt = get_format(format_id)
    tokens = {name: token(name) for name in fmt.names}
    buffer = io.BytesIO()
    workbook = new_workbook(buffer, created=RENDERED_AT, title=fmt.words.title, kind="template")
    fill_workbook(workbook, format_id, tokens)
    workbook.close()
    return Stencil.from_package(buffer.getvalue(), results=check_results(format_id, tokens))


def fill_workbook(workbook: Workbook, format_id: str, values: Mapping[str, object], *,
                  last_year: LastYear | None = None) -> None:
    """Add the standard template's sheets to an open workbook (for writers that add sheets of their own)."""
    layout = (last_year_layout(format_id, last_year.format_id, last_year.rules) if last_year
              else layout_for(format_id))
    values = {key.replace(".", "_"): value for key, value in values.items()}
    workbook.set_custom_property(PROPERTY_FORMAT, layout.format.id)
    workbook.set_custom_property(PROPERTY_VERSION, layout.format.template_version)
    _Writer(workbook, layout, values, last_year).write()


def mark_cover(workbook: Workbook, format_id: str, text: str) -> None:
    """A red warning across the cover's free row under the title (a failed validation, invalid parts)."""
    cover = layout_for(format_id).sheet("cover")
    row = min(s.row for s in cover.slots) - 1
    style = workbook.add_format({**_BASE, "bold": True, "font_color": "#C00000", "font_size": 12, "text_wrap": True})
    sheet = workbook.get_worksheet_by_name(cover.name)
    sheet.merge_range(row, 0, row, len(cover.widths) - 1, text, style)
    sheet.set_row(row, 34)


def add_report_sheet(workbook: Workbook, format_id: str, values: Mapping[str, object], *, title: str,
                     mark: str | None = None) -> None:
    """Add the report sheet: sections 二, 三 and 四 as in the published report, ready to print on A4.

    Args:
        values: cleaned values by cell id (None stays blank; 0 shows as 0).
        title: the sheet's title line (the office, the year and the words of `report_title`).
        mark: a warning shown in red after the title, e.g. that the workbook failed validation.
    """
    sheet_layout = report_layout(format_id)
    fmt = get_format(format_id)
    sheet = workbook.add_worksheet(sheet_layout.name)
    styles = {name: workbook.add_format({**_REPORT_BASE, **spec}) for name, spec in _REPORT_STYLES.items()}
    for col, width in enumerate(sheet_layout.widths):
        sheet.set_column(col, col, width)
    for row, height in sheet_layout.heights.items():
        sheet.set_row(row, height)
    for box in sheet_layout.boxes:
        if box.style == "title":
            rich = [styles["title"], title] + ([styles["mark"], text("template.mark", mark=mark)] if mark else [])
            sheet.merge_range(box.row, box.col, box.last_row, box.last_col, "", styles["title"])
            sheet.write_rich_string(box.row, box.col, *rich, styles["title"]) if mark else put(
                sheet, box.row, box.col, title, styles["title"])
            continue
        _box(sheet, box.row, box.col, box.last_row, box.last_col, box.text, styles[box.style])
    numbers: dict[str, CellFormat] = {}
    for slot in sheet_layout.slots:
        cell = fmt.cells[slot.key]
        number_format = cell.type.number_format
        if cell.type.unit and not cell.unit_in_header:  # as published: 1207.5万元 in the cell itself
            number_format = f'General"{cell.type.unit}"'
        if number_format not in numbers:
            numbers[number_format] = workbook.add_format({**_REPORT_BASE, **_REPORT_STYLES["value"],
                                                          "num_format": number_format})
        _box(sheet, slot.row, slot.col, slot.row, slot.last_col, values.get(slot.key), numbers[number_format])
    sheet.set_paper(9)
    sheet.set_portrait()
    sheet.fit_to_pages(1, 0)
    sheet.center_horizontally()
    sheet.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)
    sheet.hide_gridlines(2)
    if sheet_layout.breaks:
        sheet.set_h_pagebreaks(list(sheet_layout.breaks))


def _box(sheet: Worksheet, row: int, col: int, last_row: int, last_col: int, value: object,
         style: CellFormat) -> None:
    if (row, col) == (last_row, last_col):
        put(sheet, row, col, value, style)
    else:
        sheet.merge_range(row, col, last_row, last_col, None, style)
        put(sheet, row, col, value, style)


def check_formula(identity: Identity, layout: Layout) -> str:
    """The self-check formula: 待填 while a cell is blank or not a number, else ✓ or ✗."""
    words = layout.format.words

    def refs(ids: tuple[str, ...]) -> str:
        return ",".join(_local_ref(layout, cid) for cid in ids)

    cells = identity.cells
    return (f'=IF(COUNT({refs(cells)})<{len(cells)},"{words.check_blank}",'
            f'IF(SUM({refs(identity.lhs)})=SUM({refs(identity.rhs)}),"{words.check_ok}","{words.check_fail}"))')


def check_value(identity: Identity, layout: Layout, values: Mapping[str, object]) -> str:
    """What Excel would show in the self-check cell for these values (its cached result)."""
    words = layout.format.words
    numbers = {}
    for cid in identity.cells:
        value = values.get(cid.replace(".", "_"))
        if isinstance(value, int | float) and not isinstance(value, bool):
            numbers[cid] = value
    if len(numbers) < len(identity.cells):
        return words.check_blank
    holds = sum(numbers[c] for c in identity.lhs) == sum(numbers[c] for c in identity.rhs)
    return words.check_ok if holds else words.check_fail


def check_results(format_id: str, values: Mapping[str, object]) -> dict[tuple[str, str], str]:
    """The cached result of every self-check cell of the template for `values` (by cell id or name), by
    (sheet, address): what a writer stamping the template (stencil.py) fills in."""
    layout = layout_for(format_id)
    named = {key.replace(".", "_"): value for key, value in values.items()}
    return {(sheet.name, a1(check.row, check.col)): check_value(check.identity, layout, named)
            for sheet in layout.sheets for check in sheet.checks}


def _last_values(last_year: LastYear | None) -> Mapping[str, object]:
    return last_year.values if last_year else {}


def cross_check_formula(rule: CrossYearRule, layout: Layout, show: str = "check") -> str:
    """A live cross-year cell: the check (待填 while a cell is blank, else ✓ or ✗), what this year's anchor
    should be ("expected", blank until the other cells are filled) or what was filled in ("current").
    This year's cells are referenced on their sheets, last year's on the 上年数据 sheet."""
    words = layout.format.words
    refs = {t.name: layout.last_year_ref(t.cell) if t.previous else layout.ref(t.cell, absolute=True)
            for t in rule.terms}
    anchor = refs[rule.anchor.name]
    if show == "current":
        return f'=IF(COUNT({anchor})=1,{anchor},"")'
    if show == "expected":
        others = [t for t in rule.terms if t != rule.anchor]
        plus = [refs[t.name] for t in (rule.rhs if rule.anchor in rule.lhs else rule.lhs) if t in others]
        minus = [refs[t.name] for t in (rule.lhs if rule.anchor in rule.lhs else rule.rhs) if t in others]
        value = "".join(f"+{r}" for r in plus) + "".join(f"-{r}" for r in minus)
        return f'=IF(COUNT({",".join(refs[t.name] for t in others)})<{len(others)},"",{value.lstrip("+") or "0"})'
    lhs, rhs = (",".join(refs[t.name] for t in side) for side in (rule.lhs, rule.rhs))
    return (f'=IF(COUNT({",".join(refs.values())})<{len(refs)},"{words.check_blank}",'
            f'IF(SUM({lhs})=SUM({rhs}),"{words.check_ok}","{words.check_fail}"))')


def cross_check_value(rule: CrossYearRule, layout: Layout, values: Mapping[str, object],
                      last: Mapping[str, object], show: str = "check") -> object:
    """What Excel shows in a live cross-year cell for these values (its cached result)."""
    words = layout.format.words

    def number(term_cell: str, previous: bool) -> float | None:
        value = last.get(term_cell) if previous else values.get(term_cell.replace(".", "_"))
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    found = {t.name: number(t.cell, t.previous) for t in rule.terms}
    if show == "current":
        return found[rule.anchor.name] if found[rule.anchor.name] is not None else ""
    if show == "expected":
        if any(v is None for k, v in found.items() if k != rule.anchor.name):
            return ""
        filled = {t.cell: found[t.name] for t in rule.terms if not t.previous}
        filled[rule.anchor.cell] = 0
        return rule.expected_anchor(filled, {t.cell: found[t.name] for t in rule.terms if t.previous})
    if any(v is None for v in found.values()):
        return words.check_blank
    holds = sum(found[t.name] for t in rule.lhs) == sum(found[t.name] for t in rule.rhs)  # type: ignore[misc]
    return words.check_ok if holds else words.check_fail


def _local_ref(layout: Layout, cell_id: str) -> str:
    return a1(layout.slot(cell_id)[1].row, layout.slot(cell_id)[1].col)


class _Writer:
    """Writes one workbook; holds the formats so each style is created once."""

    def __init__(self, workbook: Workbook, layout: Layout, values: Mapping[str, object],
                 last_year: LastYear | None = None) -> None:
        self.workbook = workbook
        self.layout = layout
        self.fmt: Format = layout.format
        self.values = values
        self.last_year = last_year
        self.styles = {name: workbook.add_format({**_BASE, **spec}) for name, spec in _STYLES.items()}
        self.inputs: dict[str, CellFormat] = {}

    def write(self) -> None:
        for sheet_layout in self.layout.sheets:
            self._sheet(sheet_layout)

    def _sheet(self, sheet_layout: SheetLayout) -> None:
        sheet = self.workbook.add_worksheet(sheet_layout.name)
        for col, width in enumerate(sheet_layout.widths):
            sheet.set_column(col, col, width)
        for row, height in sheet_layout.heights.items():
            sheet.set_row(row, height)
        for box in sheet_layout.boxes:
            style = self.styles[box.style]
            content = self._source_line() if box.style == "source" else box.text
            if (box.row, box.col) == (box.last_row, box.last_col):
                put(sheet, box.row, box.col, content, style)
            else:
                sheet.merge_range(box.row, box.col, box.last_row, box.last_col, content, style)
        for slot in sheet_layout.slots:
            self._slot(sheet, sheet_layout, slot)
        self._validations(sheet, sheet_layout.slots)
        self._checks(sheet, sheet_layout.checks)
        self._last_year_values(sheet, sheet_layout.last_year)
        self._cross_checks(sheet, sheet_layout.cross_checks)
        if sheet_layout.freeze:
            sheet.freeze_panes(*sheet_layout.freeze)
        sheet.protect("", {"format_columns": True, "format_rows": True})
        sheet.set_paper(9)  # A4
        sheet.set_portrait()
        sheet.fit_to_pages(1, 0)
        sheet.center_horizontally()
        sheet.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)
        if sheet_layout.breaks:
            sheet.set_h_pagebreaks(list(sheet_layout.breaks))

    def _slot(self, sheet: Worksheet, sheet_layout: SheetLayout, slot: Slot) -> None:
        style = self._input_style(slot.type)
        value = slot.key if slot.role == "meta" else self.values.get(slot.name)
        if slot.last_col > slot.col:
            sheet.merge_range(slot.row, slot.col, slot.row, slot.last_col, None, style)
        put(sheet, slot.row, slot.col, value, style)
        target = f"={quote_sheetname(sheet_layout.name)}!{a1(slot.row, slot.col, absolute=True)}"
        self.workbook.define_name(slot.name, target)

    def _input_style(self, type_key: str) -> CellFormat:
        if type_key not in self.inputs:
            spec: dict[str, object] = {**_BASE, "locked": False, "bg_color": INPUT_FILL, "border": 1}
            if type_key in self.fmt.types:
                spec.update(align="right", num_format=self.fmt.types[type_key].number_format)
            elif type_key == "narrative":
                spec.update(text_wrap=True, valign="top", font_size=11)
            elif type_key == "meta":
                spec = {**_BASE, **_STYLES["meta"]}
            else:
                spec.update(align="left", font_size=11, num_format="@" if type_key == "text" else "0")
            self.inputs[type_key] = self.workbook.add_format(spec)
        return self.inputs[type_key]

    def _validations(self, sheet: Worksheet, slots: tuple[Slot, ...]) -> None:
        by_type: dict[str, list[Slot]] = {}
        for slot in slots:
            by_type.setdefault(slot.type, []).append(slot)
        for type_key, group in by_type.items():
            if type_key in self.fmt.types:
                rule = _number_rule(self.fmt.types[type_key])
            elif type_key == "year":
                last = self.fmt.last_year or self.fmt.first_year + 80
                field = next(f for f in self.fmt.cover if f.type == "year")
                rule = {"validate": "integer", "criteria": "between", "minimum": self.fmt.first_year,
                        "maximum": last, "error_type": "warning", "input_title": field.label,
                        "input_message": field.hint or "", "error_title": field.label,
                        "error_message": text("template.year_range", format_title=self.fmt.title,
                                              first=self.fmt.first_year, last=last)}
            elif type_key == "choice":  # a drop-down list per field (ruling 7: the body level)
                for slot in group:
                    field = next(f for f in self.fmt.cover if f.name == slot.key)
                    sheet.data_validation(slot.row, slot.col, slot.row, slot.last_col, {
                        "validate": "list", "source": list(field.choices), "error_type": "warning",
                        "input_title": field.label, "input_message": (field.hint or "")[:255],
                        "error_title": field.label, "error_message": " / ".join(field.choices)})
                continue
            else:
                continue
            first, *rest = _rectangles(group)
            sheet.data_validation(*first, {**rule, "multi_range": " ".join(_range(r) for r in (first, *rest))})

    def _checks(self, sheet: Worksheet, checks: tuple[CheckSlot, ...]) -> None:
        if not checks:
            return
        style = self.styles["check"]
        for check in checks:
            formula = check_formula(check.identity, self.layout)
            sheet.write_formula(check.row, check.col, formula, style,
                                check_value(check.identity, self.layout, self.values))
        self._check_colours(sheet, [(c.row, c.col) for c in checks])

    def _source_line(self) -> str:
        last = self.last_year
        if last is None:
            return ""
        unknown = text("crossyear.sheet.unknown")
        return text("crossyear.sheet.source", file=last.file, office=last.office or unknown,
                    year=last.year if last.year is not None else unknown)

    def _last_year_values(self, sheet: Worksheet, slots: tuple[LastYearSlot, ...]) -> None:
        """Last year's values: locked, grey, unnamed (never read as this year's data)."""
        values = _last_values(self.last_year)
        for slot in slots:
            vtype = self.fmt.types.get(self.fmt.cells[slot.key].type.key) if slot.key in self.fmt.cells else None
            key = f"last:{vtype.number_format if vtype else '0'}"
            if key not in self.inputs:
                self.inputs[key] = self.workbook.add_format({**_BASE, "align": "right", "border": 1, "locked": True,
                                                             "bg_color": LAST_YEAR_FILL,
                                                             "num_format": vtype.number_format if vtype else "0"})
            put(sheet, slot.row, slot.col, values.get(slot.key), self.inputs[key])

    def _cross_checks(self, sheet: Worksheet, checks: tuple[CrossCheckSlot, ...]) -> None:
        """Live cross-year cells; a rule whose last-year value was blank says it cannot be checked."""
        if not checks:
            return
        last = _last_values(self.last_year)
        marks = []
        for check in checks:
            rule = check.rule
            style = self.styles["check"] if check.show == "check" else self.styles["value"]
            if any(last.get(c) is None for c in rule.previous_cells):
                put(sheet, check.row, check.col, text("crossyear.sheet.blank_previous") if check.show == "check"
                    else "", self.styles["hint"])
                continue
            cached = cross_check_value(rule, self.layout, self.values, last, check.show)
            sheet.write_formula(check.row, check.col, cross_check_formula(rule, self.layout, check.show), style,
                                cached)
            if check.show == "check":
                marks.append((check.row, check.col))
        if marks:
            self._check_colours(sheet, marks)

    def _check_colours(self, sheet: Worksheet, cells: list[tuple[int, int]]) -> None:
        words = self.fmt.words
        spans = " ".join(_range((row, col, row, col)) for row, col in cells)
        first = cells[0]
        for mark, look in ((words.check_fail, {"bg_color": "#FFC7CE", "font_color": "#9C0006"}),
                           (words.check_ok, {"font_color": "#006100"}),
                           (words.check_blank, {"font_color": "#808080"})):
            sheet.conditional_format(first[0], first[1], first[0], first[1], {
                "type": "cell", "criteria": "==", "value": f'"{mark}"',
                "format": self.workbook.add_format(look), "multi_range": spans})


def _number_rule(vtype: ValueType) -> dict[str, object]:
    rule: dict[str, object] = {"validate": "integer" if vtype.integer else "decimal",
                               "input_title": vtype.dv_title, "input_message": vtype.dv_input,
                               "error_title": vtype.dv_title, "error_message": vtype.dv_error}
    if vtype.dv_min is None:
        rule.update(criteria="between", minimum=-10**9, maximum=10**9)
    else:
        rule.update(criteria=">=", value=vtype.dv_min)
    return rule


def _rectangles(slots: list[Slot]) -> list[tuple[int, int, int, int]]:
    """Cover the slots with few rectangles: runs along a row, stacked while consecutive rows match."""
    runs: dict[int, list[list[int]]] = {}
    for slot in sorted(slots, key=lambda s: (s.row, s.col)):
        row_runs = runs.setdefault(slot.row, [])
        if row_runs and row_runs[-1][1] == slot.col - 1:
            row_runs[-1][1] = slot.last_col
        else:
            row_runs.append([slot.col, slot.last_col])
    rects: list[tuple[int, int, int, int]] = []
    for row in sorted(runs):
        for first_col, last_col in runs[row]:
            prev = next((i for i, r in enumerate(rects)
                         if r[2] == row - 1 and (r[1], r[3]) == (first_col, last_col)), None)
            if prev is None:
                rects.append((row, first_col, row, last_col))
            else:
                r = rects[prev]
                rects[prev] = (r[0], r[1], row, r[3])
    return rects


def _range(rect: tuple[int, int, int, int]) -> str:
    first, last = a1(rect[0], rect[1]), a1(rect[2], rect[3])
    return first if first == last else f"{first}:{last}"
