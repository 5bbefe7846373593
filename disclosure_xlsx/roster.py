"""The roster (名单) of the offices a county expects to hear from: read as clerks keep it, checked, matched.

A roster comes as a CSV saved by Excel or a text editor (UTF-8 with or without BOM, GBK/GB18030 from
Excel on Chinese Windows, UTF-16 "Unicode text") or as a workbook. It is read and checked before any
report is read, so a bad roster stops the run with one message that lists every line to correct.

Offices are matched by credit code (the cover's code field), then by name: as written, then after
normalising what people type differently (spaces, full and half width, brackets), then without a
standard ending (青石乡 / 青石乡人民政府) — each only when exactly one roster office fits. Anything
closer than chance but not certain is a suggestion, never a silent match (precision before recall).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .catalog import DisclosureError, Finding, bilingual, text, text_list
from .formats import current_format

__all__ = ["CODE_CHARS", "MAX_ROSTER_BYTES", "Pair", "Roster", "RosterEntry", "RosterMatch", "Suggestion",
           "check_character", "match_roster", "normalise_office", "read_roster", "roster_lists"]

CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100-2015: 31 characters, no I, O, S, V, Z
_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
MAX_ROSTER_BYTES = 20 * 1024 * 1024  # a roster of every office of a province is a few MB
HEADER_ROWS = 20  # a title line or two may sit above the header
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
_DELIMITERS = (",", "\t", ";", "\uff0c")  # the last is a full-width comma typed in a text editor
SIMILAR = 0.85  # difflib ratio from which two names are suggested as one office
_MARGIN = 0.05  # ... and only when no other roster office comes as close
_OPEN = "\uff08([\u3014\uff3b\u3010\u3016\uff5b{"  # （ ( 〔 ［ 【 〖 ｛ {
_CLOSE = "\uff09)]\u3015\uff3d\u3011\u3017\uff5d}"
_BRACKETS = str.maketrans({**{c: "(" for c in _OPEN}, **{c: ")" for c in _CLOSE}})


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One office the county expects a report from, with the line of the roster it is on."""

    office: str
    credit_code: str | None = None
    parent: str | None = None
    email: str | None = None
    line: int | None = None  # the line (CSV) or row (workbook) number as the clerk sees it


@dataclass(frozen=True)
class Roster:
    """A roster that was read and checked; iterating it gives its entries."""

    file: str
    entries: tuple[RosterEntry, ...]
    source: str  # "utf-8", "utf-8-sig", "gb18030", "utf-16" or "workbook"
    sheet: str | None = None  # the sheet read, for a workbook
    has_email: bool = False
    findings: tuple[Finding, ...] = ()  # warnings only: an error stops the reading

    def __iter__(self) -> Iterator[RosterEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, lang: str = "zh") -> str:
        """One line for the clerk: which file, how many offices, and how it was read (the encoding)."""
        source = text(f"roster.source.{self.source}", lang, **({"sheet": self.sheet} if self.sheet else {}))
        return text("roster.describe", lang, file=Path(self.file).name, count=len(self.entries), source=source,
                    email=text("roster.with_email", lang) if self.has_email else "")


class Named(Protocol):
    """What matching needs of a submitted office (a cleaned report, or an entry of report.json)."""

    @property
    def office(self) -> str | None: ...

    @property
    def credit_code(self) -> str | None: ...


T = TypeVar("T", bound=Named)


@dataclass(frozen=True)
class Pair(Generic[T]):
    """A submitted office and the roster entry it was matched to; `how` is credit_code, name,
    normalised or suffix."""

    entry: RosterEntry
    office: T
    how: str


@dataclass(frozen=True)
class Suggestion(Generic[T]):
    """A submitted office that may be a roster entry but was not matched; `why` is similar, contains,
    ambiguous or code_differs."""

    office: T
    entry: RosterEntry
    why: str


@dataclass(frozen=True)
class RosterMatch(Generic[T]):
    """Who matched whom (and how), who is missing, who is not on the roster, and what may be meant."""

    matched: tuple[Pair[T], ...]
    missing: tuple[RosterEntry, ...]
    unexpected: tuple[T, ...]
    suggestions: tuple[Suggestion[T], ...] = ()

    def entry_for(self, office: T) -> RosterEntry | None:
        return next((p.entry for p in self.matched if p.office is office), None)

    def pair_for(self, office: T) -> Pair[T] | None:
        return next((p for p in self.matched if p.office is office), None)

    def suggestions_for(self, office: T) -> list[Suggestion[T]]:
        return [s for s in self.suggestions if s.office is office]

    @property
    def near(self) -> list[Pair[T]]:
        """The pairs matched by a name that is not spelled exactly as on the roster."""
        return [p for p in self.matched if p.how in ("normalised", "suffix")]

    @property
    def shared(self) -> list[tuple[RosterEntry, list[T]]]:
        """Roster entries that more than one submitted office was matched to."""
        by_entry: dict[int, tuple[RosterEntry, list[T]]] = {}
        for p in self.matched:
            by_entry.setdefault(id(p.entry), (p.entry, []))[1].append(p.office)
        return [(e, offices) for e, offices in by_entry.values() if len(offices) > 1]


# ------------------------------------------------------------------------------------------------
# Names and codes


@lru_cache(maxsize=1 << 16)
def normalise_office(name: str) -> str:
    """An office name as compared: NFKC (full → half width), no whitespace or invisible characters,
    one kind of bracket, Latin letters in lower case. "临溪县 白沙镇（街道）" → "临溪县白沙镇(街道)"."""
    folded = unicodedata.normalize("NFKC", name).translate(_BRACKETS)
    return "".join(c for c in folded if not c.isspace() and unicodedata.category(c) not in ("Cf", "Cc")).casefold()


def normalise_code(code: str | None) -> str:
    """A credit code as compared: NFKC, no whitespace, upper case."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", code or "")).upper()


def check_character(code: str) -> str | None:
    """The check character (18th) a GB 32100 credit code's first 17 characters call for, or None."""
    if len(code) < 17 or any(c not in CODE_CHARS for c in code[:17]):
        return None
    total = sum(CODE_CHARS.index(c) * w for c, w in zip(code[:17], _CODE_WEIGHTS, strict=True))
    return CODE_CHARS[(31 - total % 31) % 31]


@cache
def _suffixes() -> tuple[str, ...]:
    return tuple(sorted((normalise_office(s) for s in text_list("roster.office_suffixes")), key=len, reverse=True))


def _stems(normalised: str) -> set[str]:
    """The name and the name without each standard ending it has (a stem keeps at least 2 characters)."""
    return {normalised} | {normalised[:-len(s)] for s in _suffixes()
                           if normalised.endswith(s) and len(normalised) - len(s) >= 2}


# ------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    office: str
    code: str
    parent: str
    email: str
    code_number: bool  # the code cell holds a number (a workbook that lost the code's text)


def read_roster(path: str | Path, *, need_email: bool = False) -> Roster:
    """Read and check a roster (CSV or workbook), before any report is read.

    The header row (within the first 20 rows) carries the cover's office label and, optionally, its
    credit-code and e-mail labels and 上级单位; other columns are ignored, and so are empty lines.

    Raises:
        DisclosureError: `roster-invalid` when the file cannot be used at all, `roster-lines-invalid`
            listing every line to correct (blank names, malformed codes, conflicting duplicates).
    """
    path = Path(path)
    if not path.is_file():
        _fail(path, "missing")
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES + WORKBOOK_SUFFIXES:
        _fail(path, "kind", suffix=path.suffix or path.name)
    size = path.stat().st_size
    if size > MAX_ROSTER_BYTES:
        _fail(path, "too_large", size=_mib(size), limit=_mib(MAX_ROSTER_BYTES))
    if size == 0:
        _fail(path, "empty")
    sheet = None
    if suffix in WORKBOOK_SUFFIXES:
        sheet, grid = _read_workbook(path)
        source = "workbook"
    else:
        source, text_ = _decode(path)
        grid = _split(text_)
    columns, header_at = _header(path, grid, source, sheet)
    if need_email and "email" not in columns:
        _fail(path, "no_email", label=_labels()["email"])
    rows = [_row(cells, line, columns) for line, cells in grid[header_at + 1:]]
    entries, findings = _check([r for r in rows if r.office or r.code or r.parent or r.email])
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        listed = sorted(findings, key=lambda f: f.severity != "error")  # errors first, each by line
        problems = ["\n".join(f"  [{text(f'roster.severity.{f.severity}', lang)}] {f.message(lang)}" for f in listed)
                    for lang in ("zh", "en")]
        raise DisclosureError(Finding("roster-lines-invalid", params={
            "file": path.name, "count": len(errors), "problems": bilingual(*problems)}))
    if not entries:
        _fail(path, "no_rows")
    return Roster(str(path), tuple(entries), source, sheet, "email" in columns, tuple(findings))


def _fail(path: Path, reason: str, **params: Any) -> None:
    raise DisclosureError(Finding("roster-invalid", params={
        "file": path.name, "reason": bilingual(text(f"roster.reason.{reason}", "zh", **params),
                                               text(f"roster.reason.{reason}", "en", **params))}))


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def _decode(path: Path) -> tuple[str, str]:
    """The text of a CSV and the encoding that read it: a BOM says it, else UTF-8 strictly, else GB18030."""
    data = path.read_bytes()
    attempts = (["utf-16"] if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                else ["utf-8-sig"] if data.startswith(codecs.BOM_UTF8) else ["utf-8", "gb18030"])
    for encoding in attempts:
        try:
            return encoding, data.decode(encoding)
        except UnicodeDecodeError:
            continue
    _fail(path, "encoding")
    raise AssertionError  # unreachable: _fail raises


def _split(content: str) -> list[tuple[int, list[Any]]]:
    """The rows of a CSV with their line numbers, split by the delimiter the header line uses."""
    lines = content.splitlines()[:HEADER_ROWS]
    delimiter = next((d for line in lines for d in _DELIMITERS
                      if d in line and any(_column(cell) == "office" for cell in line.split(d))), ",")
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    return [(reader.line_num, cells) for cells in reader]


def _read_workbook(path: Path) -> tuple[str, list[tuple[int, list[Any]]]]:
    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    try:
        book = CalamineWorkbook.from_path(str(path))
        visible = [m.name for m in book.sheets_metadata
                   if m.visible == SheetVisibleEnum.Visible and m.typ == SheetTypeEnum.WorkSheet]
        if not visible:
            _fail(path, "no_sheet")
        grid = book.get_sheet_by_name(visible[0]).to_python(skip_empty_area=False)
    except DisclosureError:
        raise
    except Exception as exc:  # a damaged or protected file: say so, never a traceback
        _fail(path, "unreadable", detail=type(exc).__name__)
    return visible[0], [(i, list(cells)) for i, cells in enumerate(grid, 1)]


@cache
def _labels() -> dict[str, str]:
    fmt = current_format()
    return {"office": fmt.field("office").label, "code": fmt.field("credit_code").label,
            "parent": text("roster.columns.parent"), "email": fmt.field("email").label}


@cache
def _aliases() -> dict[str, str]:
    """Normalised header text → column (office, code, parent, email)."""
    out = {}
    for column, label in _labels().items():
        words = [label, text(f"roster.columns.{column}", "en") if column == "parent" else label]
        for lang in ("zh", "en"):
            words += text_list(f"roster.columns.{column}_aliases", lang)
        out.update({_header_text(w): column for w in words})
    return out


def _header_text(value: Any) -> str:
    return re.sub(r"[*:]", "", normalise_office(str(value))) if value is not None else ""  # after NFKC


def _column(value: Any) -> str | None:
    return _aliases().get(_header_text(value))


def _header(path: Path, grid: list[tuple[int, list[Any]]], source: str, sheet: str | None
            ) -> tuple[dict[str, int], int]:
    """Column → index, found by the labels of the first row naming the office column; and that row's index."""
    for at, (_, cells) in enumerate(grid[:HEADER_ROWS]):
        found = [(_column(c), i) for i, c in enumerate(cells)]
        if not any(col == "office" for col, _ in found):
            continue
        columns: dict[str, int] = {}
        for col, i in found:
            if col is None:
                continue
            if col in columns:
                _fail(path, "header_twice", label=_labels()[col])
            columns[col] = i
        return columns, at
    labels = _labels()
    shown = text(f"roster.source.{source}", "zh", **({"sheet": sheet} if sheet else {}))
    _fail(path, "no_header", rows=HEADER_ROWS, office=labels["office"], source=shown,
          header=",".join(labels[c] for c in ("office", "code", "parent", "email")))
    raise AssertionError  # unreachable


def _row(cells: list[Any], line: int, columns: dict[str, int]) -> _Row:
    def cell(column: str) -> Any:
        i = columns.get(column)
        return cells[i] if i is not None and i < len(cells) else None

    code = cell("code")
    return _Row(line, _cell_text(cell("office")), _cell_text(code), _cell_text(cell("parent")),
                _cell_text(cell("email")), isinstance(code, float | int) and not isinstance(code, bool))


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFC", str(value)).strip()


def _check(rows: list[_Row]) -> tuple[list[RosterEntry], list[Finding]]:
    """Per line: a name, a well-formed code; across lines: no office twice, no code twice."""
    findings: list[Finding] = []
    entries: list[RosterEntry] = []
    by_name: dict[str, tuple[_Row, str]] = {}
    by_code: dict[str, _Row] = {}
    for row in rows:
        if not row.office:
            findings.append(Finding("roster-name-missing", params={"line": row.line}))
            continue
        code = normalise_code(row.code)
        problem = _code_problem(row, code)
        if problem is not None:
            findings.append(problem)
            continue
        name = normalise_office(row.office)
        earlier = by_name.get(name)
        if earlier is not None and (earlier[1] == code or not earlier[1] or not code):
            if earlier[1] == code:
                findings.append(Finding("roster-duplicate", params={
                    "line": row.line, "office": row.office, "other": earlier[0].line}))
            else:
                findings.append(_conflict(row, "code_missing", other=earlier[0].line))
            continue
        if code and code in by_code:
            other = by_code[code]
            findings.append(_conflict(row, "same_code", other=other.line, other_office=other.office))
            continue
        by_name.setdefault(name, (row, code))
        if code:
            by_code[code] = row
            if code[17] != check_character(code):
                findings.append(Finding("roster-code-check-digit", params={
                    "line": row.line, "office": row.office, "code": code, "digit": check_character(code)}))
        entries.append(RosterEntry(row.office, code or None, row.parent or None, row.email or None, row.line))
    return entries, findings


def _code_problem(row: _Row, code: str) -> Finding | None:
    reason: tuple[str, dict[str, Any]]
    if row.code_number:
        reason = ("number", {"shown": row.code})
    elif not code:
        return None
    elif len(code) != 18:
        reason = ("length", {"length": len(code)})
    elif bad := "".join(dict.fromkeys(c for c in code if c not in CODE_CHARS)):
        reason = ("chars", {"chars": bad})
    else:
        return None
    key, params = reason
    return Finding("roster-code-invalid", params={
        "line": row.line, "office": row.office, "code": row.code or code,
        "reason": bilingual(text(f"roster.code.{key}", "zh", **params), text(f"roster.code.{key}", "en", **params))})


def _conflict(row: _Row, key: str, **params: Any) -> Finding:
    return Finding("roster-duplicate-conflict", params={
        "line": row.line, "office": row.office,
        "reason": bilingual(text(f"roster.duplicate.{key}", "zh", **params),
                            text(f"roster.duplicate.{key}", "en", **params))})


# ------------------------------------------------------------------------------------------------
# Matching


def match_roster(roster: Roster | Sequence[RosterEntry], offices: Sequence[T]) -> RosterMatch[T]:
    """Match submitted offices to roster entries: by credit code, then by name (as written, normalised,
    without a standard ending), each only when one roster entry fits and no credit codes disagree.

    Several offices may match one entry (a duplicate submission shows in `shared`). Unmatched offices
    get suggestions: a name one contains or closely resembles a missing entry's (difflib ≥ 0.85, the
    best by a clear margin), an ambiguous name, or a same name with a different code.
    """
    entries = list(roster)
    by_code = {normalise_code(e.credit_code): i for i, e in enumerate(entries) if e.credit_code}
    exact: dict[str, list[int]] = {}
    normal: dict[str, list[int]] = {}
    stems: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        exact.setdefault(e.office.strip(), []).append(i)
        normal.setdefault(normalise_office(e.office), []).append(i)
        for stem in _stems(normalise_office(e.office)):
            stems.setdefault(stem, []).append(i)
    matched: list[Pair[T]] = []
    unexpected: list[T] = []
    suggestions: list[Suggestion[T]] = []
    for office in offices:
        code = normalise_code(office.credit_code)
        if code and code in by_code:
            matched.append(Pair(entries[by_code[code]], office, "credit_code"))
            continue
        name = (office.office or "").strip()
        if not name:
            unexpected.append(office)
            continue
        norm = normalise_office(name)
        steps = (("name", exact.get(name, [])), ("normalised", normal.get(norm, [])),
                 ("suffix", sorted({i for s in _stems(norm) for i in stems.get(s, [])})))
        for how, candidates in steps:
            if not candidates:
                continue
            fitting = [i for i in candidates if not (code and entries[i].credit_code)]
            if len(fitting) == 1 and len(candidates) == 1:
                matched.append(Pair(entries[fitting[0]], office, how))
            else:
                unexpected.append(office)
                suggestions += [Suggestion(office, entries[i], "ambiguous" if len(candidates) > 1 else "code_differs")
                                for i in candidates]
            break
        else:
            unexpected.append(office)
    taken = {id(p.entry) for p in matched}
    missing = [e for e in entries if id(e) not in taken]
    suggested = {id(s.office) for s in suggestions}
    pool = [(e, normalise_office(e.office), _stems(normalise_office(e.office))) for e in missing]
    for office in unexpected:
        if id(office) not in suggested and office.office:
            suggestions += _similar(office, pool)
    return RosterMatch(tuple(matched), tuple(missing), tuple(unexpected), tuple(suggestions))


def _similar(office: T, missing: Sequence[tuple[RosterEntry, str, set[str]]]) -> list[Suggestion[T]]:
    """The one missing entry (with its normalised name and stems) an unmatched name plausibly means,
    if exactly one stands out."""
    name = normalise_office(office.office or "")
    if len(name) < 2:
        return []
    stems = _stems(name)
    contains = [e for e, other, other_stems in missing if _contains(name, stems, other, other_stems)]
    if len(contains) == 1:
        return [Suggestion(office, contains[0], "contains")]
    if contains:
        return []
    matcher = difflib.SequenceMatcher(None)
    matcher.set_seq2(name)  # difflib caches what it learns about the second sequence: the same for every pair
    scored = sorted(((_ratio(matcher, other), i) for i, (_, other, _) in enumerate(missing)), reverse=True)
    if scored and scored[0][0] >= SIMILAR and (len(scored) == 1 or scored[0][0] - scored[1][0] >= _MARGIN):
        return [Suggestion(office, missing[scored[0][1]][0], "similar")]
    return []


def _ratio(matcher: difflib.SequenceMatcher[str], other: str) -> float:
    """difflib's ratio, or 0 when its cheap upper bounds already fall short of what could count."""
    matcher.set_seq1(other)
    if matcher.real_quick_ratio() < SIMILAR - _MARGIN or matcher.quick_ratio() < SIMILAR - _MARGIN:
        return 0.0
    return matcher.ratio()


def _contains(a: str, a_stems: set[str], b: str, b_stems: set[str]) -> bool:
    """One name is the other with a place name before it (白沙镇人民政府 / 临溪县白沙镇人民政府)."""
    if len(a) == len(b):
        return False
    short, long_ = (a_stems, b_stems) if len(a) < len(b) else (b_stems, a_stems)
    return any(whole.endswith(part) for whole in long_ for part in short if len(part) >= 3 and whole != part)


def roster_lists(match: RosterMatch[Any] | None, lang: str = "zh") -> list[tuple[str, list[str]]]:
    """The lists a roll-up shows about its roster: near matches, suggestions, shared entries."""
    if match is None:
        return []
    sep = text("roster.lists.separator", lang)

    def line(entry: RosterEntry) -> str:
        return str(entry.line) if entry.line is not None else "—"

    out = []
    if match.near:
        out.append((text("roster.lists.near_title", lang, count=len(match.near)), [
            text("roster.lists.near_line", lang, office=p.office.office, line=line(p.entry), entry=p.entry.office,
                 how=text(f"roster.match.{p.how}", lang)) for p in match.near]))
    if match.suggestions:
        out.append((text("roster.lists.suggest_title", lang, count=len({id(s.office) for s in match.suggestions})), [
            text("roster.lists.suggest_line", lang, office=s.office.office, line=line(s.entry), entry=s.entry.office,
                 why=suggestion_text(s, lang)) for s in match.suggestions]))
    if match.shared:
        out.append((text("roster.lists.shared_title", lang, count=len(match.shared)), [
            text("roster.lists.shared_line", lang, line=line(e), entry=e.office,
                 offices=sep.join(o.office or "" for o in offices)) for e, offices in match.shared]))
    return out


def suggestion_text(suggestion: Suggestion[Any], lang: str = "zh") -> str:
    """Why a suggestion was made, in words."""
    return text(f"roster.match.{suggestion.why}", lang, code=normalise_code(suggestion.office.credit_code),
                roster_code=suggestion.entry.credit_code or "")
