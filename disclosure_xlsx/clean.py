"""Turn the raw cell values of one workbook into typed numbers, logging every interpretation.

Spec §9 and rulings 2, 5, 6: non-breaking and other spaces, full-width digits and signs, thousands
separators, "4.0", unit suffixes 元/万元/亿元, placeholders for blank. A blank never silently becomes
0: it stays missing (None) and yields a `blank-cell` warning; the identities then count it as 0.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import sys
import unicodedata
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from .catalog import CellRef, Cleaning, Finding, phrase, where
from .formats import Cell, Format, format_for_year, notation
from .layout import standard_where
from .limits import MAX_NUMBER_CHARS
from .read import RawReport

__all__ = ["MAX_ABS", "CellValues", "CleanReport", "Cover", "Parsed", "cell_where", "clean_cover_text", "clean_report",
           "clean_value", "clean_year"]

MAX_ABS = 10**12  # beyond this a value cannot be a count of requests or an amount in 万元
_NOTATION = notation()
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A cleaned value: the number (None when missing or unreadable), the rules applied, a problem code."""

    value: int | float | None
    rules: tuple[str, ...] = ()
    problem: str | None = None  # blank-cell | value-unparseable | number-not-whole | number-too-large | money-unit-assumed

    @property
    def readable(self) -> bool:
        """Whether identities can use the value (a blank counts as 0; an unreadable value does not)."""
        return self.problem not in ("value-unparseable", "number-not-whole", "number-too-large")


_BLANK = Parsed(None, problem="blank-cell")
_ABSENT = object()  # a cell the reader could not locate


def clean_value(raw: object, cell: Cell, *, unit_stated: bool) -> Parsed:
    """Clean one raw value (as python-calamine returns it) for `cell`.

    Args:
        raw: float, int, str, bool, date/time or "" (empty).
        cell: the cell it was read from; its value type decides counts vs money.
        unit_stated: the workbook states the money unit beside the cell (the project's template does),
            so a bare number is 万元 without a warning (ruling 5).
    """
    if type(raw) is float and raw.is_integer() and abs(raw) <= MAX_ABS:  # the common case, kept fast
        if cell.type.integer:
            return Parsed(int(raw))
        return Parsed(raw, problem=None if unit_stated or cell.unit_in_header else "money-unit-assumed")
    if raw is None or raw == "":
        return _BLANK
    if isinstance(raw, bool) or isinstance(raw, dt.date | dt.time | dt.timedelta):
        return Parsed(None, problem="value-unparseable")
    # what cleaning needs of the cell, as the key of the cache of texts (a Cell hashes all its labels)
    integer, stated = cell.type.integer, unit_stated or cell.unit_in_header
    if isinstance(raw, int | float):
        return _typed(Decimal(repr(float(raw))) if isinstance(raw, float) else Decimal(raw), integer, [],
                      bare_money=True, unit_stated=stated)
    text_ = str(raw)
    return _from_text(text_, integer, stated) if len(text_) > MAX_NUMBER_CHARS else _text_cached(text_, integer, stated)


def _from_text(raw: str, integer: bool, unit_stated: bool) -> Parsed:
    """A text for a count (`integer`) or a money cell; `unit_stated`: the workbook or the column header
    states the money unit."""
    if len(raw) > MAX_NUMBER_CHARS:  # bounded before any cleaning or Decimal (a million digits overflows)
        body = raw.strip().lstrip("+-")
        digits = body.replace(".", "", 1).isdigit()
        whole = body.split(".", 1)[0].lstrip("0")
        too_large = digits and len(whole) > len(str(MAX_ABS))
        return Parsed(None, (), "number-too-large" if too_large else "value-unparseable")
    rules: list[str] = []
    visible = "".join(c for c in raw if not (c.isspace() or c in _INVISIBLE))  # NBSP, U+3000, zero-width
    if visible != raw:
        rules.append("whitespace")
    stripped = unicodedata.normalize("NFKC", visible)
    if stripped != visible:
        rules.append("fullwidth" if any(unicodedata.east_asian_width(c) == "F" for c in visible) else "nfkc")
    if not stripped:
        return Parsed(None, tuple(rules), "blank-cell")
    if stripped in _NOTATION.placeholders:
        return Parsed(None, (*rules, "placeholder"), "blank-cell")
    unit = next((u for u in _NOTATION.money_units if stripped.endswith(u.unit)), None) if not integer else None
    if unit:
        stripped = stripped[: -len(unit.unit)]
        rules.append(unit.rule)
    elif integer and stripped.endswith(_NOTATION.count_units):
        stripped = stripped[:-1]
        rules.append("unit-count")
    if _THOUSANDS.fullmatch(stripped):
        stripped = stripped.replace(",", "")
        rules.append("thousands-separator")
    if stripped.startswith("+"):
        stripped = stripped[1:]
        rules.append("plus-sign")
    if not _NUMBER.fullmatch(stripped):
        return Parsed(None, tuple(rules), "value-unparseable")
    rules.append("text-to-number")
    number = Decimal(stripped) * (unit.factor if unit else 1)
    return _typed(number, integer, rules, bare_money=unit is None, unit_stated=unit_stated)


_text_cached = lru_cache(maxsize=4096)(_from_text)  # a batch's offices type the same few texts


def _typed(number: Decimal, integer: bool, rules: list[str], *, bare_money: bool, unit_stated: bool) -> Parsed:
    if not number.is_finite() or abs(number) > MAX_ABS:
        return Parsed(None, tuple(rules), "number-too-large")
    if integer:
        if number != number.to_integral_value():
            return Parsed(None, tuple(rules), "number-not-whole")
        exponent = number.as_tuple().exponent
        if "text-to-number" in rules and isinstance(exponent, int) and exponent < 0:  # "4.0"
            rules.append("decimal-zero")
        return Parsed(int(number), tuple(rules))
    value = float(number)
    problem = "money-unit-assumed" if bare_money and not unit_stated else None
    return Parsed(value, tuple(rules), problem)


def clean_cover_text(raw: object) -> tuple[str | None, tuple[str, ...]]:
    """A cover field's text, trimmed of spaces (NBSP included); None when blank. Returns text and rules."""
    if raw is None or raw == "":
        return None, ()
    if isinstance(raw, float) and raw.is_integer():  # a postcode or phone typed as a number
        return str(int(raw)), ("number-to-text",)
    text = str(raw)
    cleaned = "".join(c for c in text if c not in _INVISIBLE).strip()  # keeps the office's own characters
    rules = ("whitespace",) if cleaned != text else ()
    return (cleaned or None), rules


def clean_year(raw: object) -> tuple[int | None, tuple[str, ...]]:
    """A report year from 2020, 2020.0, "2020", "2020年", "２０２０年度"; None if there is none."""
    if isinstance(raw, float | int) and not isinstance(raw, bool):
        year = int(raw) if not math.isnan(raw) and float(raw).is_integer() else None
        return (year, ()) if year and 1990 <= year <= 2100 else (None, ())
    text, rules = clean_cover_text(raw)
    found = re.fullmatch(_NOTATION.year_pattern, unicodedata.normalize("NFKC", text or ""))
    if not found:
        return None, rules
    return int(found.group(1)), (*rules, "text-to-number")



@dataclass(frozen=True, slots=True)
class Cover:
    """What the cover says: the office, its credit code, the year, and the other fields and narratives."""

    office: str | None
    credit_code: str | None
    year: int | None
    texts: dict[str, str | None]  # the other cover fields and the narratives, by defined name


Number = int | float

_BLANK_KIND, _INT_KIND, _FLOAT_KIND = 0, 1, 2
_EXACT = 2**53  # a whole number up to this is held exactly by a float64


class CellValues(Mapping[str, Number | None]):
    """A report's cleaned values as the parent of a batch holds them, in the format's cell order: one
    byte per cell saying blank, whole number or decimal; the whole numbers in the narrowest array that
    holds them all exactly (bytes, 16- or 32-bit integers, float64 beyond); and the decimals (a format's
    amount in 万元) on their own. A township's counts fit 16 bits (the seed's largest, 6,220, counts its
    decisions on other services): ~0.6 KiB a report, against 2 KiB as float64s and about three times that
    as a dict of Python numbers. Most reports' kinds are the same few byte strings, kept once by the
    parent that receives them (`_unpacked`).

    It reads as the dict it was made from (same keys in the same order, ints as ints, floats as floats,
    blanks as None); `packed` builds one, or None when a value is not a number this can hold exactly. It
    crosses process boundaries as its format (an id), an array, a byte string and a tuple."""

    __slots__ = ("decimals", "format", "kinds", "numbers")
    BLANK = _BLANK_KIND  # the kind byte of a blank cell (its number is 0 and means nothing)

    def __init__(self, fmt: Format, numbers: array, kinds: bytes, decimals: tuple[float, ...] = ()) -> None:
        self.format, self.numbers, self.kinds, self.decimals = fmt, numbers, kinds, decimals

    @classmethod
    def packed(cls, fmt: Format, values: Mapping[str, object]) -> CellValues | None:
        row = [values[c] for c in fmt.cells]
        kinds = bytes(_BLANK_KIND if v is None else _INT_KIND if type(v) is int else _FLOAT_KIND for v in row)
        if any(type(v) not in (int, float) or type(v) is int and not -_EXACT <= v <= _EXACT  # type: ignore[operator]
               for v, k in zip(row, kinds, strict=True) if k):
            return None
        whole = [v if k == _INT_KIND else 0 for v, k in zip(row, kinds, strict=True)]
        low, high = min(whole, default=0), max(whole, default=0)  # type: ignore[type-var]
        typecode = next((t for t, bound in _WHOLE if -bound <= low and high < bound), "d")  # type: ignore[operator]
        decimals = tuple(v for v, k in zip(row, kinds, strict=True) if k == _FLOAT_KIND)
        return cls(fmt, array(typecode, whole), kinds, decimals)  # type: ignore[arg-type]

    def float64_bytes(self) -> bytes:
        """Every number as a float64 (0 for a blank), in cell order: the same bytes for the same values."""
        numbers = array("d", self.numbers)
        if self.decimals:
            at = -1
            for value in self.decimals:
                at = self.kinds.index(_FLOAT_KIND, at + 1)
                numbers[at] = value
        return numbers.tobytes()

    def __getitem__(self, cid: str) -> Number | None:
        k = _cell_index(self.format)[cid]
        kind = self.kinds[k]
        if kind == _FLOAT_KIND:
            return self.decimals[self.kinds.count(_FLOAT_KIND, 0, k)]
        return None if kind == _BLANK_KIND else int(self.numbers[k])

    def __iter__(self) -> Iterator[str]:
        return iter(self.format.cells)

    def row(self) -> list[Number | None]:
        """Every value in the format's cell order, as `values()` gives them, in one pass."""
        decimals = iter(self.decimals)
        return [None if kind == _BLANK_KIND else int(number) if kind == _INT_KIND else next(decimals)
                for number, kind in zip(self.numbers.tolist(), self.kinds, strict=True)]

    def __len__(self) -> int:
        return len(self.format.cells)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpacked, (self.format, self.numbers, self.kinds, self.decimals))


_WHOLE = (("b", 2**7), ("h", 2**15), ("i", 2**31))  # signed array types, narrowest first (else float64)
_KINDS: dict[bytes, bytes] = {}  # the kinds of the reports a process received: a batch has few distinct ones


def _unpacked(fmt: Format, numbers: array, kinds: bytes, decimals: tuple[float, ...]) -> CellValues:
    """CellValues come from a worker, their kinds kept once (most reports of a batch have the same)."""
    shared = _KINDS.get(kinds)
    if shared is None:
        if len(_KINDS) > 4096:
            _KINDS.clear()
        shared = _KINDS[kinds] = kinds
    return CellValues(fmt, numbers, shared, decimals)


@cache
def _cell_index(fmt: Format) -> dict[str, int]:
    return {c: k for k, c in enumerate(fmt.cells)}


@dataclass(slots=True)  # a batch holds one per workbook: no __dict__ each
class CleanReport:
    """One workbook after cleaning: every cell id of its format with a number or None (missing)."""

    file: str
    format: Format
    located_by: str
    office: str | None
    credit_code: str | None
    year: int | None
    values: Mapping[str, int | float | None]  # a dict where it was cleaned, CellValues once passed on
    unusable: frozenset[str]  # cells whose value cannot be used (unreadable or not found)
    where: dict[str, CellRef]
    texts: dict[str, str | None]  # the other cover fields and the narratives
    findings: list[Finding]
    cleaning: list[Cleaning]

    @property
    def format_id(self) -> str:
        return self.format.id

    def __getstate__(self) -> dict[str, Any]:
        """A compact form for passing reports between processes: the values as `CellValues` (a dict
        only when one cannot hold them), and the cell positions as None when they are the standard
        workbook's (almost always)."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not isinstance(self.values, CellValues):
            state["values"] = CellValues.packed(self.format, self.values) or dict(self.values)
        state["where"] = None if _is_standard(self.where, self.format.id) else self.where
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A report come from a worker; what every report of a batch spells alike is kept once: the
        names of the cover fields and narratives (a dict's keys, unpickled anew for each report), an
        empty set of unusable cells, the standard positions."""
        for name, value in state.items():
            setattr(self, name, value)
        self.where = standard_where(self.format.id) if state["where"] is None else state["where"]
        self.texts = {sys.intern(name): value for name, value in state["texts"].items()}
        if not self.unusable:
            self.unusable = _NOTHING

    def raw_values(self) -> dict[str, Any]:
        """Each cell's value as the office wrote it, as far as the report knows it: the cleaned value,
        else the text a cleaning record or an unreadable value kept (so nothing is read twice)."""
        raw: dict[str, Any] = dict(self.values)
        raw.update({c.id: c.raw for c in self.cleaning})
        raw.update({f.cells[0].id: f.params["raw"] for f in self.findings
                    if f.cells and "raw" in f.params and f.cells[0].id in self.values})
        return raw


_STANDARD: dict[int, tuple[object, bool]] = {}


def _is_standard(where: dict[str, CellRef], format_id: str) -> bool:
    """Whether a positions mapping equals the standard workbook's, decided once per mapping object
    (the reader shares one mapping among all workbooks with the same defined names)."""
    known = _STANDARD.get(id(where))
    if known is None or known[0] is not where:
        known = (where, where == standard_where(format_id))
        _STANDARD[id(where)] = known
    return known[1]


def clean_report(raw: RawReport) -> CleanReport:
    """Clean every value of a read workbook; blanks and unreadable values become findings."""
    fmt = raw.format
    findings = list(raw.findings)
    cleaning: list[Cleaning] = []
    values: dict[str, int | float | None] = {}
    unusable = set()
    # Ruling 5: the project's template prints 万元 beside money cells; it records its version on the cover
    # (a copy saved as .xls keeps that, though not its defined names).
    unit_stated = str(raw.raw.get(fmt.words.version_name, "")).strip() == fmt.template_version
    source = raw.raw
    for cid, cell, integer in _cells(fmt):
        value = source.get(cid, _ABSENT)
        if integer and value.__class__ is float and value.is_integer() and 0 <= value <= MAX_ABS:
            values[cid] = int(value)  # the common case: a whole number typed as a number; nothing to log
            continue
        if value is _ABSENT:
            values[cid] = None
            unusable.add(cid)
            continue
        parsed = clean_value(value, cell, unit_stated=unit_stated)
        values[cid] = parsed.value
        ref = raw.where[cid]
        if parsed.rules:
            cleaning.append(Cleaning(cid, ref.sheet, ref.ref, raw.raw[cid], parsed.value, "+".join(parsed.rules)))
        if not parsed.readable:
            unusable.add(cid)
        if parsed.problem:
            findings.append(_value_finding(fmt, cell, ref, raw.raw[cid], parsed))
    cover = _cover(fmt, raw, findings, cleaning)
    return CleanReport(raw.file, fmt, raw.located_by, cover.office, cover.credit_code, cover.year, values,
                       frozenset(unusable), raw.where, cover.texts, findings, cleaning)


_NOTHING: frozenset[str] = frozenset()


@cache
def _cells(fmt: Format) -> tuple[tuple[str, Cell, bool], ...]:
    return tuple((cid, cell, cell.type.integer) for cid, cell in fmt.cells.items())


def cell_where(fmt: Format, cell: Cell, ref: CellRef) -> dict[str, str]:
    """The message words that name a cell: section heading, A1 address, row / column."""
    section = fmt.section(cell.section)
    return where(section.heading, section.number, ref.ref, cell.label)


def _value_finding(fmt: Format, cell: Cell, ref: CellRef, raw: object, parsed: Parsed) -> Finding:
    params: dict[str, object] = {"where": cell_where(fmt, cell, ref), "raw": _raw_text(raw)}
    if parsed.problem == "blank-cell":
        shown = _raw_text(raw).strip()
        params["blank"] = phrase("clean.holds", raw=shown) if shown else phrase("clean.blank")
    actual = parsed.value if parsed.problem == "money-unit-assumed" else None
    return Finding(parsed.problem or "", cells=(ref,), rule=_VALUE_RULES[parsed.problem or ""],
                   actual=actual, params=params)


# Which ruling a value finding applies (spec rulings 2, 5, 6).
_VALUE_RULES = {"blank-cell": "R2", "money-unit-assumed": "R5", "value-unparseable": "R6",
                "number-not-whole": "R6", "number-too-large": "R6"}


def _raw_text(raw: object) -> str:
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, dt.date | dt.time):
        return raw.isoformat()
    text = str(raw)
    return text if len(text) <= MAX_NUMBER_CHARS else text[:MAX_NUMBER_CHARS] + "\u2026"  # a message stays short


def _cover(fmt: Format, raw: RawReport, findings: list[Finding], cleaning: list[Cleaning]) -> Cover:
    labels = fmt.cover_labels
    office_name, year_name, code_name = (fmt.field(role).name for role in ("office", "year", "credit_code"))
    texts: dict[str, str | None] = {}
    year: int | None = None
    for name in [*labels, *(n.name for n in fmt.narratives)]:
        value = raw.raw.get(name)
        ref = raw.where.get(name)
        if name == year_name:
            year, rules = clean_year(value)
            if year is None and value not in (None, ""):
                findings.append(Finding("year-invalid", cells=(ref,) if ref else (), rule="X6",
                                        params={"label": labels[name], "raw": _raw_text(value)}))
            elif year is None:
                findings.append(Finding("year-missing", cells=(ref,) if ref else (), rule="X6",
                                        params={"label": labels[name]}))
            cleaned: object = year
        else:
            cleaned, rules = clean_cover_text(value) if name in labels else (value or None, ())
            texts[name] = cleaned  # type: ignore[assignment]
        if rules and ref:
            cleaning.append(Cleaning(name, ref.sheet, ref.ref, value, cleaned, "+".join(rules)))
    office = texts.pop(office_name, None)
    if office is None:
        findings.append(Finding("office-missing", params={"label": labels[office_name]}))
    if year is not None and not fmt.covers_year(year):
        expected = format_for_year(year)
        if expected is not None:
            findings.append(Finding("format-year-mismatch", rule="X6", params={
                "year": year, "format_title": phrase("catalog.format_title", title=fmt.title, id=fmt.id),
                "expected_title": phrase("catalog.format_title", title=expected.title, id=expected.id)}))
    return Cover(office, texts.pop(code_name, None), year, texts)
