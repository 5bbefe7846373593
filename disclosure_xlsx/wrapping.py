"""Wrap mixed Chinese and Latin text for a terminal without splitting a number, a cell address or a word.

rich and textwrap break Chinese text between any two characters, and so they split "1,234", "J8" or
"D8:I8" across lines as readily as two ideographs. Here a line may break between two wide characters
(CJK), at a space, or between a wide character and a run of narrow ones; never inside a run of narrow
characters or a file name (校验汇总.xlsx), never before closing punctuation (，。、）… and the "!" of
Sheet!A1) and never after opening punctuation (（“…). Widths are terminal columns: 2 for East Asian wide
and full-width characters, else 1.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

__all__ = ["display_width", "wrap"]

NO_BREAK_BEFORE = frozenset("，。、；：？！）》」』〕】”’…·%!,.;:?)]}")
NO_BREAK_AFTER = frozenset("（《「『〔【“‘([{")


def _width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def display_width(text: str) -> int:
    """Terminal columns `text` takes (what rich calls its cell length)."""
    return sum(_width(c) for c in text)


def _atoms(text: str) -> Iterator[str]:
    """Spaces, single wide characters, and runs of narrow non-space characters."""
    run = ""
    for char in text:
        if char.isspace():
            if run:
                yield run
                run = ""
            yield " "
        elif _width(char) == 2:
            if run:
                yield run
                run = ""
            yield char
        else:
            run += char
    if run:
        yield run


def _units(text: str) -> list[str]:
    """The pieces a line may break between: atoms glued across the punctuation that must not start or end
    a line; a space is a unit of its own (a break that is dropped at the end of a line)."""
    units: list[str] = []
    glue_next = False
    for atom in _atoms(text):
        if atom == " ":
            units.append(atom)
            glue_next = False
            continue
        if units and units[-1] != " " and (glue_next or atom[0] in NO_BREAK_BEFORE):
            units[-1] += atom
            if _EXTENSION.match(atom):  # a file name: its Chinese part stays with its extension (校验汇总.xlsx)
                for _ in range(_NAME_CHARS - 1):
                    before = units[-2] if len(units) > 1 else ""
                    if not (before and _ideograph(before[-1]) and _ideograph(units[-1][0])):
                        break
                    units[-2:] = [before + units[-1]]
                    if len(before) > 1:  # a unit glued already (（校): the name began in it
                        break
        else:
            units.append(atom)
        glue_next = atom[-1] in NO_BREAK_AFTER
    return units


_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{1,4}\b")
_NAME_CHARS = 6  # Chinese characters kept with an extension, at most (校验汇总, 反馈, 数据, 名单)


def _ideograph(char: str) -> bool:
    """A wide letter (a Chinese character), not punctuation: part of a name."""
    return _width(char) == 2 and unicodedata.category(char).startswith("L")


def _head(unit: str, room: int) -> str:
    """The start of an over-long unit that fills `room`: its first atoms that fit whole (the punctuation
    glued to a number gives way before the number does), else as many characters as fit (at least one)."""
    taken = ""
    for atom in _atoms(unit):
        if display_width(taken + atom) > room:
            break
        taken += atom
    if taken:
        return taken
    for char in unit:
        if display_width(taken + char) > room:
            break
        taken += char
    return taken or unit[0]


def wrap(text: str, width: int, *, indent: str = "", first: str = "") -> list[str]:
    """`text` as lines of at most `width` columns: the first begins with `first`, the others with `indent`.

    A unit wider than a whole line (a long path, a very long number) is the one thing cut: between its
    atoms if it was glued from several (（（ before a number), else where the line is full."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, used = first if not lines else indent, display_width(first if not lines else indent)
        start = used
        for unit in _units(paragraph):
            size = display_width(unit)
            if unit == " ":
                if used > start and used + 1 <= width:
                    line, used = line + " ", used + 1
                continue
            if used + size > width and used > start:
                lines.append(line.rstrip())
                line, used = indent, display_width(indent)
                start = used
            while used + size > width and used == start and size > width - start > 0:  # longer than a line
                taken = _head(unit, width - used)
                lines.append(line + taken)
                unit = unit[len(taken):]
                size = display_width(unit)
                line, used = indent, display_width(indent)
            line, used = line + unit, used + size
        lines.append(line.rstrip())
    return lines
