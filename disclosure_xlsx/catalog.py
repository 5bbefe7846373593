"""Findings: stable codes with bilingual templates (`data/catalog.toml`), and the records stages return.

A finding is data, never an exception: every stage returns them, and a broken file becomes a finding
for that file. Messages are rendered late, per language, from the stored parameters.
"""

from __future__ import annotations

import string
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["LANGS", "SEVERITIES", "CellRef", "Cleaning", "DisclosureError", "Finding", "bilingual", "catalog",
           "cleaning_text", "number_text", "phrase", "severity_text", "status_text", "text", "text_list", "where"]

LANGS = ("zh", "en")
SEVERITIES = ("error", "warning", "info")  # info: a note that never changes a workbook's status


@cache
def _data() -> Mapping[str, Any]:
    return tomllib.loads(resources.files("disclosure_xlsx").joinpath("data/catalog.toml").read_text("utf-8"))


@cache
def catalog() -> Mapping[str, Mapping[str, str]]:
    """Code → {category, severity, zh, en}; checked once: both languages use the same placeholders."""
    codes = _data()["codes"]
    for code, entry in codes.items():
        if entry["severity"] not in SEVERITIES or set(entry) != {"category", "severity", *LANGS}:
            raise ValueError(f"catalog entry {code} is malformed")
        fields = [{f for _, f, _, _ in string.Formatter().parse(entry[lang]) if f} for lang in LANGS]
        if fields[0] != fields[1]:
            raise ValueError(f"catalog entry {code}: zh and en use different placeholders")
    return codes


@cache
def _namespace(name: str) -> Mapping[str, Any]:
    path = resources.files("disclosure_xlsx").joinpath(f"data/words/{name}.toml")
    return tomllib.loads(path.read_text("utf-8"))


@cache  # the words are read-only data; an office's summary looks up some sixty of them
def _entry(key: str, lang: str) -> Any:
    namespace, _, rest = key.partition(".")
    entry: Any = _namespace(namespace)
    for part in rest.split("."):
        entry = entry[part]
    return entry if isinstance(entry, str) else entry[lang]  # a plain string reads the same in every language


def text(key: str, lang: str = "zh", /, **params: Any) -> str:
    """One of the tool's own words or sentences, in `lang`.

    `key` is "<file>.<key>…": "feedback.next_step.errors" is the entry `next_step.errors` of
    `data/words/feedback.toml`, a table {zh = "…", en = "…"}; `params` fill its placeholders.
    """
    value = _entry(key, lang)
    return value.format(**params) if params else value


def phrase(key: str, /, **params: Any) -> dict[str, str]:
    """A message parameter in both languages, from words data (see `text`)."""
    return {lang: text(key, lang, **params) for lang in LANGS}


def text_list(key: str, lang: str = "zh") -> list[str]:
    """A list-valued entry (column headers, instructions), in `lang`."""
    return list(_entry(key, lang))


@dataclass(frozen=True, slots=True)
class CellRef:
    """Where a cell of a finding is in the workbook as received."""

    id: str
    sheet: str
    ref: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "sheet": self.sheet, "ref": self.ref}


@dataclass(frozen=True)
class Finding:
    """One problem: its code, the rule it breaks, the cells involved (anchor first) and the numbers."""

    code: str
    cells: tuple[CellRef, ...] = ()
    rule: str | None = None
    expected: Any = None
    actual: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)  # a value may be {"zh": …, "en": …}
    cause: Mapping[str, str] | None = None  # what most likely brought it about, said after the message

    def __post_init__(self) -> None:
        if self.code not in catalog():  # a typo here is a bug, not a data problem
            raise KeyError(f"unknown finding code {self.code!r}")

    @property
    def severity(self) -> str:
        return catalog()[self.code]["severity"]

    @property
    def category(self) -> str:
        return catalog()[self.code]["category"]

    def message(self, lang: str = "zh") -> str:
        values = {k: (v[lang] if isinstance(v, Mapping) else v) for k, v in self.params.items()}
        values.setdefault("actual", number_text(self.actual))
        values.setdefault("expected", number_text(self.expected))
        message = catalog()[self.code][lang].format_map(values).strip()
        return f"{message}{self.cause[lang]}" if self.cause else message

    def to_dict(self) -> dict[str, Any]:
        """The finding as in the JSON report (README: "The JSON report")."""
        return {"code": self.code, "severity": self.severity, "rule": self.rule,
                "cells": [c.to_dict() for c in self.cells], "expected": _json_number(self.expected),
                "actual": _json_number(self.actual), "message": {lang: self.message(lang) for lang in LANGS}}


class DisclosureError(Exception):
    """The one exception of the package: work cannot go on, and `finding` says why in both languages.

    Raised for a file that cannot be read, a roll-up that cannot be made, a bad roster or option;
    the command line prints the finding's message and sets the exit code.
    """

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message("en"))
        self.finding = finding


@dataclass(frozen=True, slots=True)
class Cleaning:
    """One value the cleaner changed or interpreted: where, what was written, what it became, why."""

    id: str
    sheet: str
    ref: str
    raw: Any
    value: Any
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sheet": self.sheet, "ref": self.ref, "raw": _json_raw(self.raw),
                "value": _json_number(self.value), "rule": self.rule}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_cleaning, (self.id, self.sheet, self.ref, self.raw, self.value, self.rule))


_RECEIVED: dict[tuple[Any, ...], Cleaning] = {}  # the distinct records a process received, at most:
_RECEIVED_KEPT = 1 << 16  # then forgotten (and kept afresh), so that a long-lived process stays bounded


def _cleaning(cid: str, sheet: str, ref: str, raw: Any, value: Any, rule: str) -> Cleaning:
    """A cleaning record come from a worker, kept once by the parent that holds a whole batch's: offices
    write the same cell the same way (a table pasted from a web page: '0\u00a0' in most cells; the seed
    has 131 such records), so the same record arrives from many workbooks. Its cell id, sheet, reference
    and rule are interned. Only records of a text that became a whole number or a text are shared: for
    them == is exact (it is not between 0, 0.0 and False, or 0.0 and -0.0). Looked up by its fields, so
    that a record received again is not built first (~1 µs instead of ~8: this runs in the parent, once
    per record of every workbook)."""
    if type(raw) is not str or type(value) not in (int, str):
        return Cleaning(sys.intern(cid), sys.intern(sheet), sys.intern(ref), raw, value, sys.intern(rule))
    key = (cid, sheet, ref, raw, value, rule)
    known = _RECEIVED.get(key)
    if known is None:
        if len(_RECEIVED) >= _RECEIVED_KEPT:
            _RECEIVED.clear()
        known = Cleaning(sys.intern(cid), sys.intern(sheet), sys.intern(ref), raw, value, sys.intern(rule))
        _RECEIVED[(known.id, known.sheet, known.ref, raw, value, known.rule)] = known
    return known


@cache  # a batch has a few dozen distinct rules and every office's summary spells its own
def cleaning_text(rule: str, lang: str = "zh") -> str:
    """What a cleaning record's rule ("whitespace+text-to-number") did, in words."""
    steps = _data()["cleaning"]
    return text("catalog.list_separator", lang).join(steps[step][lang] for step in rule.split("+"))


def severity_text(severity: str, lang: str = "zh") -> str:
    """error | warning | info, in words."""
    return _data()["severity"][severity][lang]


def status_text(status: str, lang: str = "zh") -> str:
    """ok | warnings | errors | unreadable, in words."""
    return _data()["status"][status][lang]


def bilingual(zh: str, en: str) -> dict[str, str]:
    """A message parameter that reads differently per language."""
    return {"zh": zh, "en": en}


def where(section: str, number: str, ref: str, label: str) -> dict[str, str]:
    """How a message names a cell: section heading, A1 address, then "row / column" in brackets."""
    return phrase("catalog.where", section=section, number=number, ref=ref, label=label)


def number_text(value: Any) -> str:
    """A number as a clerk would write it: 6, not 6.0; 1207.5; blank for none."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json_raw(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
