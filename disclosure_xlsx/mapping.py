"""A report's values as cells of another format, cell by cell through the cell ids.

Ruling 1: a cell id means the same in every format that has it, so each target cell whose id the source
has (or defines as a sum, spec §6.2) carries its value — all of sections 三 and 四, the decision counts of
licensing, penalties and coercion in 二, whatever else the formats share. A target row that the source
sums into one (the current format's three sub-rows of "other handling") is 0 when that sum is 0 (counts
are never negative), and is otherwise left for the office to split. Every target cell left without a value gets a note.
Used by `convert --format-to` and by the pre-filled new template of an office that used an old one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import number_text, phrase
from .clean import CleanReport
from .formats import Format

__all__ = ["MappingNote", "map_values"]


@dataclass(frozen=True, slots=True)
class MappingNote:
    """A target cell that a format mapping could not fill from the source, and why (in both languages)."""

    id: str
    message: dict[str, str]
    filled: bool = False  # True when the note explains a value it did fill (a split of 0)


def map_values(report: CleanReport, target: Format) -> tuple[dict[str, Any], list[MappingNote]]:
    """The report's values as cells of `target`, and a note for every target cell not carried over."""
    source = report.format
    if source is target:
        return dict(report.values), []
    known = {**report.values, **{d: _sum(report.values, parts) for d, parts in source.derived.items()}}
    values: dict[str, Any] = {}
    notes: list[MappingNote] = []
    split = {part: derived for derived, parts in target.derived.items() for part in parts}
    title = source.title
    for cid in target.cells:
        if cid in known:
            values[cid] = known[cid]
        elif cid in split and known.get(split[cid]) == 0:
            values[cid] = 0
            notes.append(MappingNote(cid, phrase("convert.mapping.split_zero", source=title,
                                                 row=_row(source, split[cid])), filled=True))
        else:
            values[cid] = None
            total = known.get(split[cid]) if cid in split else None
            notes.append(MappingNote(cid, phrase("convert.mapping.not_split", source=title, total=number_text(total))
                                     if total is not None else phrase("convert.mapping.no_source", source=title)))
    return values, notes


def _sum(values: Mapping[str, Any], parts: Sequence[str]) -> Any:
    found = [values.get(p) for p in parts]
    return None if any(v is None for v in found) else sum(found)


def _row(fmt: Format, cid: str) -> str:
    section, row, col = cid.split(".")
    node = fmt.section(section).node("rows", row)
    return f"{node.label} / {fmt.section(section).node('columns', col).label}"
