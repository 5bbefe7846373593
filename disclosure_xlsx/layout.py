"""Where everything of a format goes on the standard workbook's sheets, computed from the format data.

The template writer, the readers (to know where a name should point) and the report sheet all use
this one layout, so a cell's position is decided in exactly one place. Rows and columns are 0-based
here; `a1()` turns them into Excel addresses.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise

from xlsxwriter.utility import quote_sheetname, xl_rowcol_to_cell

from .catalog import CellRef, text, text_list
from .formats import CrossYearRule, Format, Identity, Section, get_format

__all__ = ["Box", "CheckSlot", "CrossCheckSlot", "DetailLayout", "LastYearSlot", "Layout", "SheetLayout", "Slot", "a1",
           "column_points", "detail_layout", "last_year_layout", "layout_for", "report_layout", "standard_where",
           "text_lines"]

TABLE_TOP = 2  # row of the first header row: the title is row 0, row 1 stays free
LINE_HEIGHT = 14.5  # points per wrapped line at 10–11 pt


def a1(row: int, col: int, *, absolute: bool = False) -> str:
    """A1 address of a 0-based cell (xlsxwriter's helper, so no hand-written letters)."""
    return xl_rowcol_to_cell(row, col, row_abs=absolute, col_abs=absolute)


def text_lines(text: str, width: float) -> int:
    """How many lines `text` wraps to in a column `width` characters wide (CJK counts double)."""
    lines = 0
    for part in text.split("\n"):
        chars = sum(2.1 if unicodedata.east_asian_width(ch) in "WF" else 1.0 for ch in part)
        lines += max(1, math.ceil(chars / max(width - 1.0, 1.0)))
    return lines


@dataclass(frozen=True, slots=True)
class Box:
    """Fixed text on a sheet, merged when it spans more than one cell."""

    row: int
    col: int
    last_row: int
    last_col: int
    text: str
    style: str  # title | header | label | note | caption | unit | check_label | field | hint | heading | text


@dataclass(frozen=True, slots=True)
class Slot:
    """A cell an office fills in (or that records the format); it carries a defined name."""

    name: str
    row: int
    col: int
    last_col: int
    role: str  # cell | cover | narrative | meta
    key: str  # cell id, cover field name or narrative name
    type: str  # value type key for cells; text | year | narrative | meta otherwise


@dataclass(frozen=True, slots=True)
class CheckSlot:
    """A live self-check cell (a formula showing ✓/✗) for one identity instance."""

    row: int
    col: int
    identity: Identity


@dataclass(frozen=True, slots=True)
class CrossCheckSlot:
    """A live cell of one cross-year rule (a template made from last year's report): the check itself
    (✓/✗), or, on the 上年数据 sheet, what this year's anchor should be or what was filled in."""

    row: int
    col: int
    rule: CrossYearRule
    show: str = "check"  # check | expected | current


@dataclass(frozen=True, slots=True)
class LastYearSlot:
    """A locked cell holding one of last year's values (`key` is last year's cell id). It has no defined
    name and sits on its own sheet after every table, so no reader takes it for this year's data."""

    row: int
    col: int
    key: str


@dataclass(frozen=True)
class SheetLayout:
    key: str  # cover | narrative | a section key
    name: str
    boxes: tuple[Box, ...]
    slots: tuple[Slot, ...]
    checks: tuple[CheckSlot, ...]
    widths: tuple[float, ...]
    heights: Mapping[int, float]
    freeze: tuple[int, int] | None = None  # first scrolling row and column
    breaks: tuple[int, ...] = ()  # rows that start a new printed page
    cross_checks: tuple[CrossCheckSlot, ...] = ()  # only in a template made from last year's report
    last_year: tuple[LastYearSlot, ...] = ()

    @property
    def title(self) -> str:
        return next((b.text for b in self.boxes if b.style == "title"), self.name)


@dataclass(frozen=True)
class Layout:
    format: Format
    sheets: tuple[SheetLayout, ...]
    _by_name: Mapping[str, tuple[SheetLayout, Slot]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {slot.name: (sheet, slot) for sheet in self.sheets for slot in sheet.slots}
        object.__setattr__(self, "_by_name", index)

    def slot(self, key: str) -> tuple[SheetLayout, Slot]:
        """The sheet and slot of a cell id or a cover/narrative/meta name."""
        return self._by_name[key.replace(".", "_")]

    def ref(self, key: str, *, absolute: bool = False) -> str:
        """`'Sheet'!A1` of a cell id or a cover/narrative name."""
        sheet, slot = self.slot(key)
        return f"{quote_sheetname(sheet.name)}!{a1(slot.row, slot.col, absolute=absolute)}"

    def where(self, key: str) -> CellRef:
        """The sheet name and A1 address of a cell id or a cover/narrative name, unquoted."""
        sheet, slot = self.slot(key)
        return CellRef(key, sheet.name, a1(slot.row, slot.col))

    def sheet(self, key: str) -> SheetLayout:
        return next(s for s in self.sheets if s.key == key)

    def last_year_ref(self, key: str) -> str:
        """`'Sheet'!$B$5` of the locked cell holding last year's value of cell id `key`."""
        sheet = self.sheet(LAST_YEAR_KEY)
        slot = next(s for s in sheet.last_year if s.key == key)
        return f"{quote_sheetname(sheet.name)}!{a1(slot.row, slot.col, absolute=True)}"


@cache
def standard_where(format_id: str) -> dict[str, CellRef]:
    """Where every key sits in the standard workbook; one shared mapping per format, never changed."""
    layout = layout_for(format_id)
    return {key: layout.where(key) for key in layout.format.names.values()}


@cache
def layout_for(format_id: str) -> Layout:
    """The standard workbook layout of one format."""
    fmt = get_format(format_id)
    sheets = [_cover(fmt)]
    for section in fmt.sections:
        sheets.append(_blocks(fmt, section) if section.layout == "blocks" else _grid(fmt, section))
    sheets.append(_narratives(fmt))
    return Layout(fmt, tuple(sheets))


# ----------------------------------------------------------------------------------------------
# Sheets


def _cover(fmt: Format) -> SheetLayout:
    words = fmt.words
    widths = (18.0, 40.0, 46.0)
    boxes = [Box(0, 0, 0, 2, text("template.cover_title", title=words.title, format_title=fmt.title), "title")]
    slots: list[Slot] = []
    heights: dict[int, float] = {0: 30.0}
    row = 2
    for cover in fmt.cover:
        boxes.append(Box(row, 0, row, 0, cover.label, "field"))
        slots.append(Slot(cover.name, row, 1, 1, "cover", cover.name, cover.type))
        heights[row] = 21.0
        if cover.hint:
            boxes.append(Box(row, 2, row, 2, cover.hint, "hint"))
            heights[row] = max(21.0, LINE_HEIGHT * text_lines(cover.hint, widths[2]))
        row += 1
    for label, name, value, hint in (
            (words.format_label, words.format_name, fmt.id,
             text("template.format_hint", format_title=fmt.title, notice=fmt.notice)),
            (words.version_label, words.version_name, fmt.template_version, None)):
        boxes.append(Box(row, 0, row, 0, label, "field"))
        slots.append(Slot(name, row, 1, 1, "meta", value, "meta"))
        if hint:
            boxes.append(Box(row, 2, row, 2, hint, "hint"))
        row += 1
    row += 1
    boxes.append(Box(row, 0, row, 2, words.instructions_heading, "heading"))
    for line in words.instructions:
        row += 1
        boxes.append(Box(row, 0, row, 2, line, "text"))
        heights[row] = LINE_HEIGHT * text_lines(line, sum(widths))
    return SheetLayout("cover", words.cover_sheet, tuple(boxes), tuple(slots), (), widths, heights)


def _blocks(fmt: Format, section: Section, top: int = 0) -> SheetLayout:
    """Section 二: captioned blocks, a row-label column and value columns; a short block's last column spans the rest."""
    width = section.value_columns
    widths = (24.0, *([14.0] * width), 2.0, 10.0)
    boxes = [Box(top, 0, top, width, section.heading, "title")]
    slots: list[Slot] = []
    heights: dict[int, float] = {top: 26.0}
    row = top + TABLE_TOP
    for block in section.blocks:
        boxes.append(Box(row, 0, row, width, block.caption, "caption"))
        row += 1
        columns = [c for c in section.columns if block.key in c.blocks]
        spans = _spans(len(columns), width)
        boxes.append(Box(row, 0, row, 0, section.row_header or "", "header"))
        lines = 1
        for col, (first, last) in zip(columns, spans, strict=True):
            boxes.append(Box(row, first, row, last, col.label, "header"))
            lines = max(lines, text_lines(col.label, sum(widths[first:last + 1])))
        heights[row] = LINE_HEIGHT * lines + 4
        row += 1
        for node in (r for r in section.rows if r.block == block.key):
            boxes.append(Box(row, 0, row, 0, node.label, "label"))
            for col, (first, last) in zip(columns, spans, strict=True):
                cell = fmt.cells[section.cell_id.format(row=node.key, col=col.key)]
                slots.append(Slot(cell.name, row, first, last, "cell", cell.id, cell.type.key))
                if cell.type.unit:  # ruling 5: the template states the unit beside money cells
                    boxes.append(Box(row, width + 2, row, width + 2,
                                     fmt.words.unit_note.format(unit=cell.type.unit), "unit"))
            heights[row] = 20.0
            row += 1
    return SheetLayout(section.key, section.sheet, tuple(boxes), tuple(slots), (), widths, heights)


def _spans(count: int, width: int) -> list[tuple[int, int]]:
    """Columns 1..width shared by `count` value columns; the last one takes what is left."""
    return [(1 + i, 1 + i if i < count - 1 else width) for i in range(count)]


def _grid(fmt: Format, section: Section, top: int = 0, checks: bool = True) -> SheetLayout:
    """Sections 三 and 四: tree-shaped row labels on the left, tree-shaped headers on top."""
    label_cols = section.depth("rows")
    header_rows = section.depth("columns")
    col_leaves = section.leaves("columns")
    row_leaves = section.leaves("rows")
    table_top = top + TABLE_TOP
    first_data_row = table_top + header_rows
    col_of = {c.key: label_cols + i for i, c in enumerate(col_leaves)}
    row_of = {r.key: first_data_row + i for i, r in enumerate(row_leaves)} or {"": first_data_row}
    last_col = label_cols + len(col_leaves) - 1
    last_row = max(row_of.values())

    boxes = [Box(top, 0, top, last_col, section.heading, "title")]
    if label_cols and section.note:
        boxes.append(Box(table_top, 0, first_data_row - 1, label_cols - 1, section.note, "note"))
    boxes += _tree_boxes(section, "columns", col_of, table_top, header_rows, "header")
    boxes += _tree_boxes(section, "rows", row_of, 0, label_cols, "label")

    slots = []
    for cell in fmt.section_cells(section.key):
        row, col = row_of[cell.row], col_of[cell.col]
        slots.append(Slot(cell.name, row, col, col, "cell", cell.id, cell.type.key))
    position = {s.key: (s.row, s.col) for s in slots}

    label_widths = [6.0, 10.0, 30.0][-label_cols:] if label_cols else []
    value_width = 7.0 if label_cols else 6.5
    widths = [*label_widths, *([value_width] * len(col_leaves))]
    check_slots, check_boxes = (_checks(fmt, section, position, last_row, last_col, table_top, header_rows, widths)
                                if checks else ([], []))
    boxes += check_boxes
    heights = _grid_heights(boxes, widths, row_of.values())
    heights[top] = 26.0
    return SheetLayout(section.key, section.sheet, tuple(boxes), tuple(slots), tuple(check_slots),
                       tuple(widths), heights, freeze=(first_data_row, label_cols))


def _tree_boxes(section: Section, axis: str, leaf_pos: Mapping[str, int], start: int, depth: int,
                style: str) -> list[Box]:
    """Merged label boxes of one axis: a group spans its leaves; a leaf fills the levels below it."""
    boxes = []
    nodes = section.rows if axis == "rows" else section.columns
    for node in nodes:
        level = len(section.path(axis, node.key)) - 1
        leaves = [leaf_pos[n.key] for n in section.leaves(axis, under=node.key)] if node.group else [leaf_pos[node.key]]
        if not leaves:
            continue
        span = (min(leaves), max(leaves))
        depth_span = (start + level, start + (level if node.group else depth - 1))
        if axis == "columns":  # levels are rows, leaves are columns
            boxes.append(Box(depth_span[0], span[0], depth_span[1], span[1], node.label, style))
        else:  # levels are columns, leaves are rows
            boxes.append(Box(span[0], depth_span[0], span[1], depth_span[1], node.label, style))
    return boxes


def _checks(fmt: Format, section: Section, position: Mapping[str, tuple[int, int]], last_row: int,
            last_col: int, table_top: int, header_rows: int, widths: list[float]
            ) -> tuple[list[CheckSlot], list[Box]]:
    """Self-check cells: a family whose anchors share a column gets a column to the right of the
    table; any other family gets a row below it, each check under its anchor."""
    checks: list[CheckSlot] = []
    boxes: list[Box] = []
    families: dict[str, list[Identity]] = {}
    for identity in fmt.identities:
        if identity.section == section.key:
            families.setdefault(identity.family, []).append(identity)
    right = last_col + 2
    below = last_row + 2
    for family in families.values():
        anchor_cols = {position[i.anchor][1] for i in family}
        if len(anchor_cols) == 1:
            boxes.append(Box(table_top, right, table_top + header_rows - 1, right, family[0].check, "check_label"))
            checks += [CheckSlot(position[i.anchor][0], right, i) for i in family]
            while len(widths) <= right:
                widths.append(2.0)
            widths[right] = 11.0
            right += 1
        else:
            label_last = min(anchor_cols) - 1
            if label_last >= 0:
                boxes.append(Box(below, 0, below, label_last, family[0].check, "check_label"))
            checks += [CheckSlot(below, position[i.anchor][1], i) for i in family]
            below += 1
    return checks, boxes


def _grid_heights(boxes: Iterable[Box], widths: list[float], data_rows: Iterable[int],
                  minimum: float = 18.0, line: float = LINE_HEIGHT, pad: float = 4.0) -> dict[int, float]:
    """Row heights that show every wrapped label (Excel never auto-fits merged cells)."""
    need: dict[int, float] = {r: minimum for r in data_rows}
    for box in boxes:
        width = sum(widths[box.col:box.last_col + 1])
        total = line * text_lines(box.text, width) + pad
        rows = box.last_row - box.row + 1
        per_row = total / rows
        for r in range(box.row, box.last_row + 1):
            need[r] = max(need.get(r, 0.0), per_row)
    return need


NARRATIVE_WIDTHS = (55.0, 55.0)  # two columns, every box merged across both (see _narratives)
NARRATIVE_BOX = 260.0  # points: the height of the cell an office writes one section in


def _narratives(fmt: Format) -> SheetLayout:
    """The narrative sections, each a heading, a hint and one tall input cell, merged across two columns.

    Not one wide column: LibreOffice never scales a sheet whose single column is wider than the page to
    fit its width (it counts one page across and cuts the column off on both sides); with two columns it
    does, as Excel does either way. A page break keeps each section whole on its page.
    """
    widths = NARRATIVE_WIDTHS
    last = len(widths) - 1
    boxes: list[Box] = []
    slots: list[Slot] = []
    heights: dict[int, float] = {}
    row = 0
    for narrative in fmt.narratives:
        boxes.append(Box(row, 0, row, last, narrative.heading, "heading"))
        heights[row] = 24.0
        hint = f"{fmt.words.narrative_hint_label}{narrative.hint}"
        boxes.append(Box(row + 1, 0, row + 1, last, hint, "hint"))
        heights[row + 1] = LINE_HEIGHT * text_lines(hint, sum(widths)) + 2
        slots.append(Slot(narrative.name, row + 2, 0, last, "narrative", narrative.name, "narrative"))
        heights[row + 2] = NARRATIVE_BOX
        row += 4
    starts = [b.row for b in boxes if b.style == "heading"]
    return SheetLayout("narrative", fmt.words.narrative_sheet, tuple(boxes), tuple(slots), (), widths, heights,
                       breaks=_page_breaks(starts, heights, row - 1, widths))


# ----------------------------------------------------------------------------------------------
# A template made from last year's report (issue 14)

LAST_YEAR_KEY = "last_year"


@cache
def last_year_layout(format_id: str, previous_format_id: str, rules: tuple[str, ...]) -> Layout:
    """The standard layout plus what a template made from last year's report adds: a live check beside
    the tables for each cross-year rule instance in `rules`, and the locked 上年数据 sheet (last year's
    values, and per rule what this year's cell should be). Every input cell stays where `layout_for`
    puts it, so the workbook reads exactly like the standard one."""
    base = layout_for(format_id)
    fmt = base.format
    chosen = [r for r in fmt.cross_year if r.rule in rules]
    sheets = [_with_cross_checks(s, [r for r in chosen if fmt.cells[r.anchor.cell].section == s.key])
              for s in base.sheets]
    sheets.append(_last_year_sheet(fmt, get_format(previous_format_id), base, chosen))
    return Layout(fmt, tuple(sheets))


def _with_cross_checks(sheet: SheetLayout, rules: list[CrossYearRule]) -> SheetLayout:
    """Checks placed as the identities' are: a family whose anchors share a column gets a column right of
    everything on the sheet (labelled above each run of anchors), any other family a row below it."""
    if not rules:
        return sheet
    position = {s.key: (s.row, s.col) for s in sheet.slots}
    right = max([b.last_col for b in sheet.boxes] + [c.col for c in sheet.checks] + [s.last_col for s in sheet.slots]) + 2
    below = max([b.last_row for b in sheet.boxes] + [c.row for c in sheet.checks] + [s.row for s in sheet.slots]) + 2
    widths, heights = list(sheet.widths), dict(sheet.heights)
    boxes, checks = list(sheet.boxes), []
    families: dict[str, list[CrossYearRule]] = {}
    for rule in rules:
        families.setdefault(rule.family, []).append(rule)
    for family in families.values():
        label = family[0].check
        cells = [position[r.anchor.cell] for r in family]
        if len({col for _, col in cells}) == 1:
            rows = {row for row, _ in cells}
            for rule, (row, _) in zip(family, cells, strict=True):
                checks.append(CrossCheckSlot(row, right, rule))
                if row - 1 not in rows:
                    boxes.append(Box(row - 1, right, row - 1, right, label, "check_label"))
                    heights[row - 1] = max(heights.get(row - 1, 15.0), LINE_HEIGHT * text_lines(label, 11.0) + 4)
            widths += [2.0] * (right + 1 - len(widths))
            widths[right] = 11.0
            right += 1
        else:
            first = min(col for _, col in cells)
            if first > 0:
                boxes.append(Box(below, 0, below, first - 1, label, "check_label"))
            checks += [CrossCheckSlot(below, col, rule) for rule, (_, col) in zip(family, cells, strict=True)]
            heights[below] = max(18.0, LINE_HEIGHT * text_lines(label, sum(widths[:max(first, 1)])) + 4)
            below += 1
    return dataclasses.replace(sheet, boxes=tuple(boxes), widths=tuple(widths), heights=heights,
                               cross_checks=tuple(checks))


def _last_year_sheet(fmt: Format, previous: Format, base: Layout, rules: list[CrossYearRule]) -> SheetLayout:
    """上年数据: last year's values (locked, unnamed), then per rule this year's cell, what it should be,
    what was filled in and the check. The source line (file, office, year) is filled in when written."""
    widths = (58.0, 12.0, 12.0, 12.0)
    last = len(widths) - 1
    boxes = [Box(0, 0, 0, last, text("crossyear.sheet.title"), "title"), Box(1, 0, 1, last, "", "source")]
    heights: dict[int, float] = {0: 26.0, 1: 34.0}
    row = 3
    boxes.append(Box(row, 0, row, last, text("crossyear.sheet.values_heading"), "heading"))
    row += 1
    for col, header in enumerate(text_list("crossyear.sheet.values_headers")):
        boxes.append(Box(row, col, row, col, header, "header"))
    values: list[LastYearSlot] = []
    for cid in dict.fromkeys(c for r in rules for c in r.previous_cells):
        row += 1
        cell = previous.cells[cid]
        label = text("crossyear.sheet.cell_label", heading=previous.section(cell.section).heading, label=cell.label)
        boxes.append(Box(row, 0, row, 0, label, "label"))
        values.append(LastYearSlot(row, 1, cid))
        heights[row] = max(18.0, LINE_HEIGHT * text_lines(label, widths[0]) + 4)
    row += 2
    boxes.append(Box(row, 0, row, last, text("crossyear.sheet.checks_heading"), "heading"))
    row += 1
    for col, header in enumerate(text_list("crossyear.sheet.checks_headers")):
        boxes.append(Box(row, col, row, col, header, "header"))
    checks: list[CrossCheckSlot] = []
    for rule in rules:
        row += 1
        sheet, slot = base.slot(rule.anchor.cell)
        label = text("crossyear.sheet.current_label", sheet=sheet.name, ref=a1(slot.row, slot.col),
                     label=fmt.cells[rule.anchor.cell].label)
        boxes.append(Box(row, 0, row, 0, label, "label"))
        checks += [CrossCheckSlot(row, 1, rule, "expected"), CrossCheckSlot(row, 2, rule, "current"),
                   CrossCheckSlot(row, 3, rule, "check")]
        heights[row] = max(18.0, LINE_HEIGHT * text_lines(label, widths[0]) + 4)
    return SheetLayout(LAST_YEAR_KEY, text("crossyear.sheet.name"), tuple(boxes), (), (), widths, heights,
                       cross_checks=tuple(checks), last_year=tuple(values))


REPORT_GRID_WIDTH = 6.4  # width of one column of the report sheet's shared grid
REPORT_ROW, REPORT_LINE = 15.0, 12.5  # points: a one-line row of the 10 pt report sheet, and each further line


@cache
def report_layout(format_id: str) -> SheetLayout:
    """All table sections on one print-ready sheet, stacked, each laid out like the official table.

    The sections have different column structures (二: 4 columns, 三: 10, 四: 15), so they share one grid
    of as many narrow columns as the widest needs; each section's columns span grid columns in
    proportion to their widths in the template.
    """
    fmt = get_format(format_id)
    parts = [_blocks(fmt, s, 0) if s.layout == "blocks" else _grid(fmt, s, 0, checks=False) for s in fmt.sections]
    logical = [_table_width(part) for part in parts]
    grid = max(logical)
    boxes: list[Box] = []
    slots: list[Slot] = []
    row = TABLE_TOP
    for part, count in zip(parts, logical, strict=True):
        spans = _allocate(part.widths[:count], grid)
        starts = [sum(spans[:i]) for i in range(count)]

        def first(col: int) -> int:
            return starts[col]

        def last(col: int) -> int:
            return starts[col] + spans[col] - 1

        for box in part.boxes:
            if box.last_col < count:
                style = "section" if box.style == "title" else box.style
                boxes.append(Box(box.row + row, first(box.col), box.last_row + row, last(box.last_col), box.text, style))
        for slot in part.slots:
            slots.append(Slot(slot.name, slot.row + row, first(slot.col), last(slot.last_col), slot.role, slot.key,
                              slot.type))
        row = max([b.last_row for b in boxes] + [s.row for s in slots]) + 2
    widths = tuple([REPORT_GRID_WIDTH] * grid)
    boxes.insert(0, Box(0, 0, 0, grid - 1, "", "title"))  # the title names the office and year when written
    heights = _grid_heights(boxes, list(widths), [s.row for s in slots], minimum=REPORT_ROW, line=REPORT_LINE,
                            pad=REPORT_ROW - REPORT_LINE)
    heights[0] = 36.0
    starts = [b.row for b in boxes if b.style == "section"]
    return SheetLayout("report", fmt.words.report_sheet, tuple(boxes), tuple(slots), (), widths, heights,
                       breaks=_page_breaks(starts, heights, row, widths))


A4_PRINTABLE = (523.0, 700.0)  # points of an A4 portrait page inside 0.5"/0.6" margins, header and footer


def _page_breaks(starts: Sequence[int], heights: Mapping[int, float], end: int,
                 widths: Sequence[float]) -> tuple[int, ...]:
    """Rows before which to break the page so that no section's table is split, where it fits a page.

    Printing fits the sheet to the page width; the scale that takes is estimated with Excel's column
    metric (7 px per character plus 5 px padding, at 96 dpi).
    """
    sheet_width = sum(w * 7 + 5 for w in widths) * 0.75
    capacity = A4_PRINTABLE[1] / min(1.0, A4_PRINTABLE[0] / sheet_width)

    def height(first: int, last: int) -> float:
        return sum(heights.get(r, 15.0) for r in range(first, last))

    breaks: list[int] = []
    page_top = 0
    bounds = [*starts[1:], end]
    for start, stop in zip(starts, bounds, strict=True):
        if start > page_top and height(page_top, stop) > capacity:
            breaks.append(start)
            page_top = start
    return tuple(breaks)


def _table_width(part: SheetLayout) -> int:
    """How many columns the table itself uses (without unit notes or self-checks)."""
    return max(b.last_col for b in part.boxes if b.style in ("title", "header", "caption")) + 1


def _allocate(weights: Sequence[float], total: int) -> list[int]:
    """Share `total` grid columns among columns by weight, each at least one (largest remainder)."""
    spans = [1] * len(weights)
    rest = total - len(weights)
    if rest <= 0:
        return spans
    exact = [w / sum(weights) * total - 1 for w in weights]
    extra = [max(0, int(e)) for e in exact]
    while sum(extra) > rest:
        extra[extra.index(max(extra))] -= 1
    order = sorted(range(len(weights)), key=lambda i: exact[i] - extra[i], reverse=True)
    for i in order[: rest - sum(extra)]:
        extra[i] += 1
    return [s + e for s, e in zip(spans, extra, strict=True)]


# ----------------------------------------------------------------------------------------------
# 汇总明细: one row per office, one column per cell, printed in bands of whole table rows

DETAIL_FIXED = (20.0, 18.0, 16.0)  # widths of the office, credit code and file columns
DETAIL_VALUE_WIDTH = 8.0
DETAIL_LABEL_ROWS = 3  # section / row (or column group) / column, then the row of cell ids
DETAIL_ID_CHARS, DETAIL_ID_LINE = 2.0, 7.5  # cell ids in 6 pt: characters per character of width, points per line
A4_LANDSCAPE_PRINTABLE = (760.0, 480.0)  # points inside 0.4" side and 0.5" top/bottom margins, with room to spare


@dataclass(frozen=True)
class DetailLayout:
    """Where the roll-up's detail sheet puts each cell id and its labels, and where its printed pages break.

    The sheet is as wide as the format has cells (~200 columns), so it prints in bands across: each band
    holds whole groups of columns (a table row of 三, a block row of 二, a column group of 四) and a new
    section starts a new band; the office column is repeated on every band, the header rows on every page.
    """

    ids: tuple[str, ...]  # cell ids, from column `first` on
    first: int  # the first value column (after office, credit code and file)
    boxes: tuple[Box, ...]  # the header labels: section, row, column (style "section" | "group" | "leaf")
    id_row: int  # the row of cell ids, under the labels
    widths: tuple[float, ...]
    heights: Mapping[int, float]
    bands: tuple[int, ...]  # the first column of every printed band after the first

    @property
    def header_rows(self) -> int:
        return self.id_row + 1


def column_points(width: float) -> float:
    """Printed width of a column `width` characters wide: Excel's 7 px per character plus 5 px, at 96 dpi."""
    return (int(width * 7 + 0.5) + 5) * 0.75


@cache
def detail_layout(format_id: str) -> DetailLayout:
    """The header rows and printed bands of 汇总明细 for one format."""
    fmt = get_format(format_id)
    ids = tuple(fmt.cells)
    first = len(DETAIL_FIXED)
    widths = (*DETAIL_FIXED, *([DETAIL_VALUE_WIDTH] * len(ids)))

    def group(cid: str) -> tuple[str, tuple[str, ...]]:
        cell = fmt.cells[cid]
        return cell.section, cell.row_path or cell.col_path[:-1]

    runs: list[tuple[int, int]] = []  # columns of each group, first and last
    for col, cid in enumerate(ids, first):
        if runs and group(ids[runs[-1][0] - first]) == group(cid):
            runs[-1] = (runs[-1][0], col)
        else:
            runs.append((col, col))
    bands = _bands(runs, widths, [fmt.cells[ids[a - first]].section for a, _ in runs])
    boxes: list[Box] = []
    edges = [first, *bands, first + len(ids)]
    for start, stop in pairwise(edges):  # the section label once per band
        col = start
        while col < stop:
            section = fmt.cells[ids[col - first]].section
            end = col
            while end + 1 < stop and fmt.cells[ids[end + 1 - first]].section == section:
                end += 1
            boxes.append(Box(0, col, 0, end, fmt.section(section).heading, "section"))
            col = end + 1
    for a, b in runs:
        boxes.append(Box(1, a, 1, b, "\n".join(group(ids[a - first])[1]), "group"))
    for col, cid in enumerate(ids, first):
        boxes.append(Box(2, col, 2, col, fmt.cells[cid].col_path[-1], "leaf"))
    heights = _grid_heights(boxes, list(widths), [], minimum=15.0, line=11.0, pad=4.0)  # 9 pt labels
    per_line = (DETAIL_VALUE_WIDTH - 1) * DETAIL_ID_CHARS  # characters of a cell id per line, conservatively
    heights[DETAIL_LABEL_ROWS] = DETAIL_ID_LINE * max(math.ceil(len(cid) / per_line) for cid in ids) + 2
    return DetailLayout(ids, first, tuple(boxes), DETAIL_LABEL_ROWS, widths, heights, bands)


def _bands(runs: Sequence[tuple[int, int]], widths: Sequence[float], sections: Sequence[str]) -> tuple[int, ...]:
    """Columns before which a printed band breaks: a band takes whole runs while they fit the landscape
    page beside the office column (the first band also beside credit code and file), and a new section
    starts a new band. A run wider than a page is split where the page is full."""
    fixed = sum(column_points(w) for w in widths[:len(DETAIL_FIXED)])
    repeated = column_points(widths[0])
    room = A4_LANDSCAPE_PRINTABLE[0]
    breaks: list[int] = []
    used, filled = fixed, False
    previous = None
    for (a, b), section in zip(runs, sections, strict=True):
        need = sum(column_points(w) for w in widths[a:b + 1])
        if filled and (section != previous or used + need > room):
            breaks.append(a)
            used, filled = repeated, False
        for col in range(a, b + 1):
            width = column_points(widths[col])
            if filled and used + width > room:
                breaks.append(col)
                used = repeated
            used += width
            filled = True
        previous = section
    return tuple(breaks)
