"""The way forward for an office that filled the wrong format's template for its year (the old format for
a report of a year the current one applies to): the template it must use, pre-filled with all that maps.

The values come over cell by cell (`mapping.map_values`: sections 三 and 四, the cells of 二 whose ids
both formats share), with the cover fields and the narratives; every cell still to fill is highlighted
while it is blank (a conditional format, so the colour goes once the office types) and listed in the
office's feedback. The workbook is a template, not an output: when the office sends it back it is read
as its submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._xlsx import atomic_output, new_workbook
from .catalog import CellRef, phrase, text
from .clean import CleanReport
from .formats import Format, format_for_year
from .layout import layout_for
from .mapping import MappingNote, map_values
from .template import fill_workbook, mark_cover

__all__ = ["TO_FILL", "Refill", "refill_for", "write_refill"]

TO_FILL = "#F8CBAD"  # the fill of a cell the office must still fill, while it is blank


@dataclass(frozen=True)
class Refill:
    """What the office must refill: the format for its year, the values that map, the cells still to fill."""

    format: Format
    source: Format
    year: int
    values: dict[str, Any]
    notes: tuple[MappingNote, ...]

    @property
    def to_fill(self) -> tuple[str, ...]:
        """Cell ids of the new template that the old workbook gives no value for, in the format's order."""
        return tuple(n.id for n in self.notes if not n.filled)

    def places(self) -> list[tuple[CellRef, str]]:
        """Where each cell still to fill is in the new template, and how it is labelled."""
        layout = layout_for(self.format.id)
        return [(layout.where(cid), self.format.cells[cid].label) for cid in self.to_fill]


def refill_for(report: CleanReport) -> Refill | None:
    """The refill an office needs, or None when its workbook's format is the one for its year."""
    if report.year is None:
        return None
    expected = format_for_year(report.year)
    if expected is None or expected is report.format:
        return None
    values, notes = map_values(report, expected)
    noted = {n.id for n in notes}
    unreadable = [MappingNote(cid, phrase("refill.unreadable")) for cid in expected.cells
                  if cid in report.unusable and cid not in noted]  # typed, but not as a number: refill it too
    order = list(expected.cells)
    return Refill(expected, report.format, report.year, values,
                  tuple(sorted([*notes, *unreadable], key=lambda n: order.index(n.id))))


def write_refill(refill: Refill, report: CleanReport, path: str | Path, source_name: str) -> Path:
    """Write the pre-filled template to `path` (atomically); `source_name` is the office's file name."""
    fmt = refill.format
    cover = {fmt.field("office").name: report.office, fmt.field("credit_code").name: report.credit_code,
             fmt.field("year").name: report.year, **{k: v for k, v in report.texts.items() if k in fmt.names}}
    with atomic_output(path) as tmp:
        book = new_workbook(tmp, title=fmt.words.title, kind="template")
        fill_workbook(book, fmt.id, {**refill.values, **cover})
        mark_cover(book, fmt.id, text("refill.cover_note", file=source_name, old=refill.source.title,
                                      new=fmt.title, n=len(refill.to_fill)))
        look = book.add_format({"bg_color": TO_FILL})
        layout = layout_for(fmt.id)
        for cid in refill.to_fill:
            sheet_layout, slot = layout.slot(cid)
            sheet = book.get_worksheet_by_name(sheet_layout.name)
            sheet.conditional_format(slot.row, slot.col, slot.row, slot.last_col, {"type": "blanks", "format": look})
        book.close()
    return Path(path)
