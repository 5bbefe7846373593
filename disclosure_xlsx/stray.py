"""Numbers typed just outside a table (a row shifted one column right, a stray total beside it): they are
never read, so they are a finding naming the stray cells and, where the pattern fits, the shift.

Cheap by construction: only for workbooks read by their defined names, whose tables sit where the
standard layout puts them (possibly moved as a whole, when an office inserted rows above); only the
free cells that touch a table's right and bottom edges are looked at, in the grids already read.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from .catalog import LANGS, CellRef, Finding, number_text, phrase, text
from .formats import Format, Identity
from .layout import a1, layout_for
from .locate import Grid, Position

__all__ = ["explained_by_shift", "stray_numbers"]


@dataclass(frozen=True, slots=True)
class _Edge:
    """The free cells around one section's table on the standard sheet, and its data rows."""

    section: str
    anchor: str  # a cell id whose position places the table
    cells: tuple[tuple[int, int], ...]  # standard (row, col) of the free cells on the right and bottom edges
    right: int  # the standard column just right of the table
    rows: Mapping[int, tuple[tuple[str, int], ...]]  # standard row → (cell id, column) of a row ending at the edge
    identities: Mapping[int, tuple[Identity, ...]]  # standard row → identities all of whose cells lie in it


@cache
def _edges(format_id: str) -> tuple[_Edge, ...]:
    layout = layout_for(format_id)
    fmt = layout.format
    out = []
    for section in fmt.sections:
        sheet = layout.sheet(section.key)
        slots = [s for s in sheet.slots if s.role == "cell"]
        top, bottom = min(s.row for s in slots), max(s.row for s in slots)
        left, right = min(s.col for s in slots), max(s.last_col for s in slots)
        taken = {(r, c) for b in sheet.boxes for r in range(b.row, b.last_row + 1) for c in range(b.col, b.last_col + 1)}
        taken |= {(s.row, c) for s in sheet.slots for c in range(s.col, s.last_col + 1)}
        taken |= {(c.row, c.col) for c in sheet.checks}
        edge = [(r, right + 1) for r in range(top, bottom + 1)] + [(bottom + 1, c) for c in range(left, right + 2)]
        rows: dict[int, list[tuple[str, int]]] = {}
        for slot in sorted(slots, key=lambda s: s.col):
            rows.setdefault(slot.row, []).append((slot.key, slot.col))
        spanning = {s.row for s in slots if s.last_col > s.col}  # a merged cell cannot be read one column over
        spanning |= {r for r, cells in rows.items() if cells[-1][1] != right}
        where = {s.key: s.row for s in slots}
        identities: dict[int, list[Identity]] = {}
        for identity in fmt.identities:
            lines = {where.get(c) for c in identity.cells}
            if len(lines) == 1 and None not in lines:
                identities.setdefault(lines.pop(), []).append(identity)  # type: ignore[arg-type]
        out.append(_Edge(section.key, slots[0].key, tuple(p for p in edge if p not in taken), right + 1,
                         {r: tuple(ids) for r, ids in rows.items() if r not in spanning},
                         {r: tuple(i) for r, i in identities.items()}))
    return tuple(out)


_OFFSETS: dict[int, tuple[object, dict[str, tuple[str, int, int] | None]]] = {}


def _offsets(fmt: Format, positions: Mapping[str, Position]) -> dict[str, tuple[str, int, int] | None]:
    """Per section: (sheet, rows, columns) the table is moved by from the standard layout, or None when its
    cells are not all moved alike (rows inserted inside it: then its edges are not known). Worked out once
    per positions mapping (the reader shares one among all workbooks with the same defined names)."""
    known = _OFFSETS.get(id(positions))
    if known is not None and known[0] is positions:
        return known[1]
    layout = layout_for(fmt.id)
    out: dict[str, tuple[str, int, int] | None] = {}
    for section in fmt.sections:
        moves: set[tuple[str, int, int] | None] = set()
        for cell in fmt.section_cells(section.key):
            pos = positions.get(cell.id)
            if pos is None:
                moves.add(None)
                break
            _, slot = layout.slot(cell.id)
            moves.add((pos.sheet, pos.row - slot.row, pos.col - slot.col))
        out[section.key] = moves.pop() if len(moves) == 1 else None
    if len(_OFFSETS) > 256:
        _OFFSETS.clear()
    _OFFSETS[id(positions)] = (positions, out)
    return out


def _number(value: object) -> float | None:
    """A value that reads as a number (as typed or as text: "12", "１２", "1,234", "0\u00a0"), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    folded = "".join(unicodedata.normalize("NFKC", value).split()).replace(",", "")
    try:
        number = float(folded)
    except ValueError:
        return None
    return number if math.isfinite(number) and folded[-1:].isdigit() else None


def _at(grid: Grid, row: int, col: int) -> object:
    return grid[row][col] if 0 <= row < len(grid) and 0 <= col < len(grid[row]) else ""


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def stray_numbers(fmt: Format, positions: Mapping[str, Position], sheets: Mapping[str, Grid]) -> list[Finding]:
    """A `value-outside-table` warning per section with numbers in the free cells touching its table."""
    findings = []
    offsets = _offsets(fmt, positions)
    for edge in _edges(fmt.id):
        offset = offsets.get(edge.section)
        if offset is None or offset[0] not in sheets:
            continue
        name, dr, dc = offset
        grid = sheets[name]
        height = len(grid)  # `_at` inlined: this runs for every workbook read by names
        found = [(r, c, v) for r, c in edge.cells if 0 <= (at := r + dr) < height and 0 <= (col := c + dc)
                 < len(line := grid[at]) and (v := line[col]) != ""]  # almost all are empty
        strays = [(r, c, n) for r, c, v in found if (n := _number(v)) is not None]
        if not strays:
            continue
        moved = {r: values for r, c, _ in strays if c == edge.right
                 and (values := _shifted(edge, grid, r, dr, dc)) is not None}
        findings.append(_finding(fmt, edge, name, [(r + dr, c + dc, n) for r, c, n in strays],
                                 {r + dr: values for r, values in moved.items()}))
    return findings


def _shifted(edge: _Edge, grid: Grid, row: int, dr: int, dc: int) -> dict[str, float | None] | None:
    """The values of row `row` read one column to the right, if it looks moved one column right: its first
    cell empty, and so read it satisfies every identity that lies in the row (or, where none does, every
    cell is a number); else None."""
    cells = edge.rows.get(row)
    if not cells or not _blank(_at(grid, row + dr, cells[0][1] + dc)):
        return None
    moved = {cid: _number(_at(grid, row + dr, col + dc + 1)) for cid, col in cells}
    identities = edge.identities.get(row, ())
    if not identities:
        return moved if all(v is not None for v in moved.values()) else None
    values = {cid: v or 0.0 for cid, v in moved.items()}
    return moved if all(abs(i.difference(values)) < 1e-9 for i in identities) else None


def _finding(fmt: Format, edge: _Edge, sheet: str, strays: Sequence[tuple[int, int, float]],
             shifted: Mapping[int, Mapping[str, float | None]]) -> Finding:
    section = fmt.section(edge.section)
    refs = [a1(r, c) for r, c, _ in strays]
    rows = [str(r + 1) for r in shifted]
    shift = {lang: text("stray.shift", lang, rows=text("catalog.enumeration", lang).join(rows)) if rows else ""
             for lang in LANGS}
    return Finding("value-outside-table", cells=tuple(CellRef("", sheet, ref) for ref in refs), params={
        "section": phrase("catalog.section_name", heading=section.heading, number=section.number),
        "refs": {lang: text("catalog.enumeration", lang).join(refs) for lang in LANGS},
        "values": {lang: text("catalog.enumeration", lang).join(number_text(n) for _, _, n in strays)
                   for lang in LANGS},
        "shift": shift,
        # (cell id, row, value) of each cell of a shifted row read one column over, empty without a shift
        # (not a mapping: a mapping among the params is a text in each language)
        "moved_back": tuple((cid, row + 1, value) for row, values in shifted.items() for cid, value in values.items())})


def explained_by_shift(fmt: Format, values: Mapping[str, Any], findings: Sequence[Finding]) -> list[Finding]:
    """`findings`, each one that a row looking shifted one column right brings about told so (`cause`): an
    identity that holds once the row is read one column to the right (`moved_back` of
    `value-outside-table`), and a blank cell of the row that then holds a number. The office moves the
    row back once instead of chasing each total the misread row breaks; a failure the shift does not
    explain is left as it is."""
    moved = {cid: (row, value) for f in findings if f.code == "value-outside-table"
             for cid, row, value in f.params.get("moved_back", ())}
    if not moved:
        return list(findings)
    identities = _identities(fmt)
    out = []
    for finding in findings:
        rows = []
        identity = identities.get(finding.rule or "") if finding.code == "identity-mismatch" else None
        if identity is not None and any(c in moved for c in identity.cells):
            fixed = {c: (moved[c][1] if c in moved else values.get(c)) or 0.0 for c in identity.cells}
            rows = [moved[c][0] for c in identity.cells if c in moved] if abs(identity.difference(fixed)) < 1e-9 else []
        elif finding.code == "blank-cell" and finding.cells and finding.cells[0].id in moved:
            row, value = moved[finding.cells[0].id]
            rows = [row] if value is not None else []
        out.append(replace(finding, cause=phrase("stray.shift_cause", row=rows[0])) if rows else finding)
    return out


@cache
def _identities(fmt: Format) -> dict[str, Identity]:
    return {identity.rule: identity for identity in fmt.identities}
