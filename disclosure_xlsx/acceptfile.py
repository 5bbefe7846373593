"""The county's acceptance file: one entry per accepted warning, as CSV or TOML, read and written.

A CSV file (UTF-8 with or without BOM, or GB18030, as Excel saves it) has a header of the column words
of data/words/accept.toml (office, credit code, year, rule, cell, reason, by, date, until, fingerprint) in
either language; a TOML file is a list of [[accepted]] entries with the same columns as keys. A file that cannot be used
is refused as a whole, with one message per line that is wrong; nothing is half-read. Writing is atomic.
The reviewer's column of 校验汇总.xlsx (是否认可 / 理由) is read back into entries here as well.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ._xlsx import atomic_output
from .catalog import LANGS, DisclosureError, Finding, catalog, number_text, phrase, text, text_list
from .clean import clean_year
from .formats import all_formats, current_format
from .locate import fold

__all__ = ["COLUMNS", "Acceptance", "AcceptanceFile", "Accepted", "acceptances_from_overview", "add_acceptances",
           "cell_text", "code_key", "column_word", "known_rules", "office_key", "parse_date", "place", "read_acceptances",
           "rule_problem", "words", "write_acceptances"]

COLUMNS = ("office", "credit_code", "year", "rule", "cell", "reason", "by", "date", "until", "fingerprint")
_REQUIRED = ("year", "rule", "reason", "by", "date")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
_RULING = re.compile(r"[RX]\d{1,2}")  # the rulings (R2 blanks, R5 money, R6 counts) and cross-year rules (X1…)
_A1 = re.compile(r"(?:(?:'[^']+'|[^!']+)!)?\$?[A-Za-z]{1,3}\$?\d{1,7}")
# 2025-03-01, 2025/3/1, 2025.3.1 and 2025年3月1日 (the three characters written as escapes)
_DATE = re.compile(r"(\d{4})\s*[-/.\u5e74]\s*(\d{1,2})\s*[-/.\u6708]\s*(\d{1,2})\s*\u65e5?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what Excel would run as a formula when it opens a CSV


# ------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an accepted finding carries: why, who accepted it, when, and until when (None: no end)."""

    reason: str
    by: str
    date: dt.date
    until: dt.date | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "by": self.by, "date": self.date.isoformat(),
                "until": self.until.isoformat() if self.until else None}


@dataclass(frozen=True, slots=True)
class Acceptance:
    """One entry of an acceptance file; `at` is its line (CSV), entry (TOML) or row (overview)."""

    office: str | None
    credit_code: str | None
    year: int
    rule: str
    cell: str | None
    reason: str
    by: str
    date: dt.date
    until: dt.date | None = None
    fingerprint: str | None = None
    at: int = 0

    @property
    def record(self) -> Accepted:
        return Accepted(self.reason, self.by, self.date, self.until)

    @property
    def key(self) -> tuple[str, int, str, str]:
        """Entries with the same key name the same finding: a newer one replaces an older one."""
        who = f"code:{code_key(self.credit_code)}" if code_key(self.credit_code) else f"name:{office_key(self.office)}"
        return who, self.year, self.rule, cell_text(self.cell or "").upper()

    @property
    def who(self) -> str:
        return self.office or self.credit_code or ""

    def values(self) -> dict[str, str]:
        """Column → text as written to a file."""
        return {"office": self.office or "", "credit_code": self.credit_code or "", "year": str(self.year),
                "rule": self.rule, "cell": self.cell or "", "reason": self.reason, "by": self.by,
                "date": self.date.isoformat(), "until": self.until.isoformat() if self.until else "",
                "fingerprint": self.fingerprint or ""}


@dataclass
class AcceptanceFile:
    """An acceptance file as read: its entries in file order (a later entry wins over an earlier one)."""

    path: Path
    entries: list[Acceptance]
    kind: str = "csv"  # csv | toml


# ------------------------------------------------------------------------------------------------
# Offices, rules and cells as compared


def office_key(name: str | None) -> str | None:
    """An office name as compared: NFKC, no whitespace, brackets or other punctuation, case folded."""
    key = fold(name).casefold() if name else ""
    return key or None


def code_key(code: str | None) -> str | None:
    """An office's credit code as compared: NFKC, upper case, letters and digits only."""
    key = "".join(c for c in unicodedata.normalize("NFKC", code or "").upper() if c.isalnum())
    return key or None


@cache
def known_rules() -> tuple[frozenset[str], frozenset[str]]:
    """(rule ids whose findings are warnings, rule ids whose findings are errors), of every format; an
    instance (I2[granted]) and its family (I2) both count."""
    warnings: set[str] = set()
    errors: set[str] = set()
    for fmt in all_formats().values():
        for identity in fmt.identities:  # identities are errors (spec §8.1)
            errors |= {identity.rule, identity.rule.split("[")[0]}
        for rule in fmt.rules:  # plausibility rules are warnings
            warnings |= {rule.rule, rule.rule.split("[")[0]}
    return frozenset(warnings), frozenset(errors)


@cache
def _cells() -> frozenset[str]:
    """Every cell id, cover field and narrative of every format."""
    return frozenset(key for fmt in all_formats().values() for key in (*fmt.cells, *fmt.names.values()))


def rule_problem(rule: str) -> str | None:
    """None when `rule` can be accepted; else the words key of what is wrong with it."""
    warnings, errors = known_rules()
    if rule in catalog():
        return "accept.bad.error_rule" if catalog()[rule]["severity"] == "error" else None
    if rule in errors:
        return "accept.bad.error_rule"
    return None if rule in warnings or _RULING.fullmatch(rule) else "accept.bad.unknown_rule"


def cell_text(cell: str) -> str:
    return unicodedata.normalize("NFKC", cell).strip()


# ------------------------------------------------------------------------------------------------
# Reading and writing acceptance files


def read_acceptances(path: str | Path) -> AcceptanceFile:
    """Read an acceptance file: CSV (UTF-8 with or without BOM, or GB18030) or TOML (by its suffix).

    Raises:
        DisclosureError: the file cannot be used; the message has one line per problem.
    """
    path = Path(path)
    kind = "toml" if path.suffix.lower() == ".toml" else "csv"
    data = path.read_bytes()
    decoded = _decode(data)
    if decoded is None:
        raise _refused(path, [words("accept.bad.not_text")])
    rows, problems = (_toml_rows if kind == "toml" else _csv_rows)(decoded)
    entries = []
    for at, values in rows:
        entry, wrong = _entry(values, at)
        problems += [words("accept.problem", at=place(kind, at), detail=w) for w in wrong]
        if entry is not None:
            entries.append(entry)
    if problems:
        raise _refused(path, problems)
    return AcceptanceFile(path, entries, kind)


def _decode(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


@cache
def _aliases() -> dict[str, str]:
    """A column's words in either language, as compared → the column."""
    return {fold(text(f"accept.columns.{c}", lang)).casefold(): c for c in COLUMNS for lang in LANGS}


def _column(word: str) -> str | None:
    return _aliases().get(fold(str(word)).casefold())


def _known_columns() -> dict[str, str]:
    return {lang: text("catalog.enumeration", lang).join(text(f"accept.columns.{c}", lang) for c in COLUMNS)
            for lang in LANGS}


Rows = list[tuple[int, dict[str, Any]]]


def _csv_rows(decoded: str) -> tuple[Rows, list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(decoded, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        return [], [words("accept.bad.empty")]
    columns, problems = _header([h.strip() for h in header])
    if problems:
        return [], problems
    rows: Rows = []
    line = reader.line_num
    for fields_ in reader:
        at, line = line + 1, reader.line_num
        if not any(f.strip() for f in fields_):
            continue
        extra = [f for f in fields_[len(columns):] if f.strip()]
        if extra:
            problems.append(words("accept.problem", at=place("csv", at), detail=words("accept.bad.extra_fields",
                                                                               n=len(extra))))
            continue
        rows.append((at, {c: _unguard(f) for c, f in zip(columns, fields_, strict=False) if c}))
    return rows, problems


def _header(names: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    columns: list[str] = []
    problems = []
    for word in names:
        column = _column(word) if word else None
        if word and column is None:
            problems.append(words("accept.bad.unknown_column", column=word, known=_known_columns()))
        elif column in columns:
            problems.append(words("accept.bad.duplicate_column", column=word))
        columns.append(column or "")
    problems += [words("accept.bad.missing_column", column=column_word(c)) for c in _REQUIRED if c not in columns]
    if "office" not in columns and "credit_code" not in columns:
        problems.append(words("accept.bad.missing_office", office=column_word("office"), code=column_word("credit_code")))
    return columns, problems


def _toml_rows(decoded: str) -> tuple[Rows, list[dict[str, str]]]:
    try:
        data = tomllib.loads(decoded)
    except tomllib.TOMLDecodeError as exc:
        return [], [words("accept.bad.not_toml", detail=str(exc))]
    tables = {fold(text("accept.toml_table", lang)).casefold() for lang in LANGS}
    entries = [v for k, v in data.items() if fold(k).casefold() in tables]
    if set(data) and (len(entries) != 1 or len(data) != 1 or not isinstance(entries[0], list)
                      or not all(isinstance(e, dict) for e in entries[0])):
        return [], [words("accept.bad.toml_shape", table=text("accept.toml_table", "en"))]
    rows: Rows = []
    problems = []
    for n, entry in enumerate(entries[0] if entries else [], 1):
        columns, wrong = _header(list(entry))
        if wrong:
            problems += [words("accept.problem", at=place("toml", n), detail=w) for w in wrong]
            continue
        rows.append((n, {c: v for c, v in zip(columns, entry.values(), strict=True)}))
    return rows, problems


def _entry(values: Mapping[str, Any], at: int) -> tuple[Acceptance | None, list[dict[str, str]]]:
    """An entry from its column values, or the problems that keep it from being one."""
    shown = {c: _shown(values.get(c)) for c in COLUMNS}
    problems = []
    if not shown["office"] and not shown["credit_code"]:
        problems.append(words("accept.bad.no_office", office=column_word("office"), code=column_word("credit_code")))
    problems += [words("accept.bad.required", column=column_word(c)) for c in _REQUIRED if not shown[c]]
    year, _ = clean_year(values.get("year")) if shown["year"] else (None, ())
    if shown["year"] and year is None:
        problems.append(words("accept.bad.bad_year", column=column_word("year"), value=shown["year"]))
    rule = shown["rule"]
    if rule and (wrong := rule_problem(rule)):
        problems.append(words(wrong, column=column_word("rule"), value=rule))
    cell = cell_text(shown["cell"]) or None
    if cell and cell not in _cells() and not _A1.fullmatch(cell):
        problems.append(words("accept.bad.bad_cell", column=column_word("cell"), value=shown["cell"]))
    dates = {}
    for column in ("date", "until"):
        if shown[column]:
            dates[column] = parse_date(values.get(column))
            if dates[column] is None:
                problems.append(words("accept.bad.bad_date", column=column_word(column), value=shown[column]))
    since, until = dates.get("date"), dates.get("until")
    if since and until and until < since:
        problems.append(words("accept.bad.until_before", until=column_word("until"), to=until.isoformat(), date=column_word("date"),
                             since=since.isoformat()))
    mark = shown["fingerprint"].lower() or None
    if mark and not _FINGERPRINT.fullmatch(mark):
        problems.append(words("accept.bad.bad_fingerprint", column=column_word("fingerprint"), value=shown["fingerprint"]))
    if problems or year is None or since is None:
        return None, problems
    return Acceptance(shown["office"] or None, shown["credit_code"] or None, year, rule, cell, shown["reason"],
                      shown["by"], since, until, mark, at), []


def _shown(value: Any) -> str:
    """A value of a file as text: trimmed, dates as 2025-03-01, 2024.0 as 2024."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return number_text(value)
    return "".join(c for c in str(value) if unicodedata.category(c) not in ("Cf", "Cc")).strip()


def parse_date(value: Any) -> dt.date | None:
    """A date from 2025-03-01, 2025/3/1, 2025.3.1, 2025年3月1日, 20250301 or a date object; None if none."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    written = unicodedata.normalize("NFKC", _shown(value))
    found = _DATE.fullmatch(written) or re.fullmatch(r"(\d{4})(\d{2})(\d{2})", written)
    if not found:
        return None
    try:
        return dt.date(*(int(g) for g in found.groups()))
    except ValueError:
        return None


def _unguard(field_: str) -> str:
    """A CSV field as meant: the quote this tool puts before a formula-like text is removed."""
    return field_[1:] if field_.startswith("'") and field_[1:2].startswith((*_FORMULA_START, "'")) else field_


def _guard(value: str) -> str:
    """Text that Excel would run as a formula when it opens the CSV gets a leading quote (and so does text
    that starts with a quote, so that reading it back gives exactly what was written)."""
    return f"'{value}" if value.startswith((*_FORMULA_START, "'")) else value


def write_acceptances(path: str | Path, entries: Sequence[Acceptance]) -> Path:
    """Write an acceptance file atomically: CSV (UTF-8 with BOM, Chinese headers) or TOML by the suffix."""
    path = Path(path)
    if path.suffix.lower() == ".toml":
        body = _toml(entries)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([text(f"accept.columns.{c}") for c in COLUMNS])
        writer.writerows([[_guard(e.values()[c]) for c in COLUMNS] for e in entries])
        body = buffer.getvalue()
    with atomic_output(path) as tmp:
        tmp.write_text(body, "utf-8-sig" if path.suffix.lower() != ".toml" else "utf-8")
    return path


def _toml(entries: Sequence[Acceptance]) -> str:
    table = text("accept.toml_table", "en")
    out = []
    for entry in entries:
        out.append(f"[[{table}]]")
        values = entry.values()
        for column in COLUMNS:
            if not values[column]:
                continue
            key = text(f"accept.columns.{column}", "en")
            if column == "year":
                out.append(f"{key} = {entry.year}")
            elif column in ("date", "until"):
                out.append(f"{key} = {values[column]}")  # a TOML local date
            else:
                out.append(f"{key} = {_toml_string(values[column])}")
        out.append("")
    return "\n".join(out)


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML wants DEL escaped too.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def add_acceptances(path: str | Path, new: Sequence[Acceptance]) -> tuple[AcceptanceFile, list[str]]:
    """Add entries to the acceptance file at `path` (made if missing) and write it atomically.

    An entry naming the same finding as an existing one replaces it, unless it says the same (same
    reason, fingerprint and end date): then the earlier entry, with its reviewer and date, is kept.
    Returns the file as written and, per new entry, "added", "replaced" or "kept".
    """
    path = Path(path)
    entries = list(read_acceptances(path).entries) if path.exists() else []
    where = {e.key: i for i, e in enumerate(entries)}
    outcome = []
    for entry in new:
        i = where.get(entry.key)
        if i is None:
            where[entry.key] = len(entries)
            entries.append(entry)
            outcome.append("added")
        elif (entries[i].reason, entries[i].fingerprint, entries[i].until) == (entry.reason, entry.fingerprint,
                                                                                entry.until):
            outcome.append("kept")
        else:
            entries[i] = entry
            outcome.append("replaced")
    write_acceptances(path, entries)
    kind = "toml" if path.suffix.lower() == ".toml" else "csv"
    return AcceptanceFile(path, entries, kind), outcome


# ------------------------------------------------------------------------------------------------
# The reviewer's column of 校验汇总.xlsx, read back


def acceptances_from_overview(path: str | Path, *, by: str, date: dt.date | None = None,
                              until: dt.date | None = None) -> list[Acceptance]:
    """The entries a reviewer marked in 校验汇总.xlsx (sheet 全部问题: 是否认可 = 是, with a 理由).

    Raises:
        DisclosureError: the workbook is not an overview, or a marked row cannot be accepted (no reason,
            an error, a mark that is neither yes nor no); one line per problem, nothing accepted.
    """
    from python_calamine import CalamineWorkbook

    path = Path(path)
    sheet_name = text("feedback.overview.details_sheet")
    try:
        rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet_name).to_python(skip_empty_area=False)
    except Exception as exc:  # not a workbook, or no such sheet: the message names the file
        raise _refused(path, [words("accept.bad.overview_unreadable", detail=f"{type(exc).__name__}: {exc}"[:160])]) \
            from exc
    fmt = current_format()
    labels = fmt.cover_labels
    wanted = {"office": labels[fmt.field("office").name], "year": labels[fmt.field("year").name],
              **{k: text(f"accept.overview.{k}") for k in ("accept", "reason", "credit_code", "rule", "cell_id",
                                                            "fingerprint")}}
    header = [str(h).strip() for h in rows[0]] if rows else []
    missing = [w for w in wanted.values() if w not in header]
    if missing:
        raise _refused(path, [words("accept.bad.overview_sheet", sheet=sheet_name, column=missing[0])])
    col = {k: header.index(w) for k, w in wanted.items()}
    yes = {fold(w).casefold() for lang in LANGS for w in text_list("accept.overview.yes_words", lang)}
    no = {fold(w).casefold() for lang in LANGS for w in text_list("accept.overview.no_words", lang)}
    entries, problems = [], []
    for n, row in enumerate(rows[1:], 2):
        mark = fold(_shown(row[col["accept"]])).casefold()
        if not mark or mark in no:
            continue
        values = {k: row[i] for k, i in col.items()}
        if mark not in yes:
            problems.append(words("accept.problem", at=place("xlsx", n), detail=words(
                "accept.bad.bad_choice", column=wanted["accept"], value=_shown(values["accept"]))))
            continue
        entry, wrong = _entry({"office": values["office"], "credit_code": values["credit_code"],
                               "year": values["year"], "rule": values["rule"], "cell": values["cell_id"],
                               "reason": values["reason"], "by": by, "date": date or dt.date.today(),
                               "until": until, "fingerprint": values["fingerprint"]}, n)
        if not _shown(values["reason"]):  # said in the overview's own words
            required = words("accept.bad.required", column=column_word("reason"))
            wrong = [w for w in wrong if w != required]
            wrong.append(words("accept.bad.no_reason", accept=wanted["accept"], reason=wanted["reason"]))
        problems += [words("accept.problem", at=place("xlsx", n), detail=w) for w in wrong]
        if entry is not None and not wrong:
            entries.append(entry)
    if problems:
        raise _refused(path, problems)
    return entries


# ------------------------------------------------------------------------------------------------
# Words


def words(key: str, **params: Any) -> dict[str, str]:
    """A message part in both languages; a parameter may itself be {"zh": …, "en": …}."""
    return {lang: text(key, lang, **{k: (v[lang] if isinstance(v, Mapping) else v) for k, v in params.items()})
            for lang in LANGS}


def column_word(column: str) -> dict[str, str]:
    return phrase(f"accept.columns.{column}")


def place(kind: str, n: int) -> dict[str, str]:
    if n <= 0:
        return phrase("accept.command_line")
    return words(f"accept.at.{kind}", n=n)


def _refused(path: Path, problems: Sequence[Mapping[str, str]]) -> DisclosureError:
    joined = {lang: "\n".join(p[lang] for p in problems) for lang in LANGS}
    return DisclosureError(Finding("acceptance-file-invalid", params={"file": path.name, "problems": joined}))

