"""The county's review of warnings: an acceptance file applied to a batch, and new entries made.

Ruling 10: only warnings can be accepted; an error must be corrected by the office. An acceptance names
the office (its credit code, else its normalised name), the year, the finding's rule or code and its
anchor cell, and records a fingerprint of the values the finding is about. While those values are the
same and the acceptance has not expired, the finding stays in every output marked 已认可 and does not
count toward the workbook's status; otherwise it counts again and says that an earlier acceptance no
longer fits. Nothing here edits a workbook: the acceptance file (acceptfile.py) is the county's record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ._xlsx import put
from .acceptfile import (Acceptance, AcceptanceFile, Accepted, acceptances_from_overview, add_acceptances, cell_text,
                         code_key, column_word, known_rules, office_key, parse_date, place, read_acceptances,
                         rule_problem, words, write_acceptances)
from .catalog import LANGS, DisclosureError, Finding, number_text, severity_text, text
from .clean import CleanReport
from .pipeline import BatchResult, WorkbookResult

__all__ = ["Acceptance", "AcceptanceFile", "Accepted", "Lapsed", "Review", "ReviewedFinding", "accept_in_batch",
           "acceptances_from_overview", "add_acceptances", "add_overview_columns", "apply_acceptances", "code_key",
           "fingerprint", "is_accepted", "office_key", "parse_date", "read_acceptances", "rule_key", "severity_word",
           "write_acceptances"]

# ------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class Lapsed:
    """An earlier acceptance that no longer fits its finding: the values changed, or it expired."""

    why: str  # changed | expired
    accepted: Accepted

    def to_dict(self) -> dict[str, Any]:
        return {"why": self.why, **self.accepted.to_dict()}


@dataclass(frozen=True)
class ReviewedFinding(Finding):
    """A finding as the county's review left it: accepted (it does not count), or with a lapsed
    acceptance (it counts, and its message says why the acceptance no longer applies)."""

    accepted: Accepted | None = None
    lapsed: Lapsed | None = None

    def message(self, lang: str = "zh") -> str:
        base = super().message(lang)
        if self.accepted is not None:
            a = self.accepted
            return base + text("accept.accepted_note", lang, reason=a.reason, by=a.by, date=a.date.isoformat())
        if self.lapsed is not None:
            a = self.lapsed.accepted
            until = a.until.isoformat() if a.until else ""
            return base + text(f"accept.lapsed.{self.lapsed.why}", lang, by=a.by, date=a.date.isoformat(), until=until)
        return base

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.accepted is not None:
            out["accepted"] = self.accepted.to_dict()
        if self.lapsed is not None:
            out["acceptance_lapsed"] = self.lapsed.to_dict()
        return out


def is_accepted(finding: Finding) -> bool:
    """Whether a county reviewer's acceptance applies to the finding (then it does not count)."""
    return getattr(finding, "accepted", None) is not None


def severity_word(finding: Finding, lang: str = "zh") -> str:
    """错误 / 警告, or 已认可 for an accepted warning: the tag every output shows beside a finding."""
    if is_accepted(finding):
        return text("accept.accepted_tag", lang)
    return severity_text(finding.severity, lang)


@dataclass(frozen=True, slots=True)
class Review:
    """What applying an acceptance file to a batch did (report.json: "acceptances")."""

    file: str
    entries: int
    accepted: int
    lapsed: int
    notices: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "entries": self.entries, "accepted": self.accepted, "lapsed": self.lapsed,
                "notices": [n.to_dict() for n in self.notices]}


# ------------------------------------------------------------------------------------------------
# Matching an entry to a finding


def rule_key(finding: Finding) -> str:
    """How an acceptance written by this tool names a finding's rule: the format rule it breaks when it
    breaks one (an instance such as P-…-3[normative_docs]), else its code (blank-cell, format-year-mismatch)."""
    warnings, errors = known_rules()
    return finding.rule if finding.rule and finding.rule in warnings | errors else finding.code


def _rule_matches(rule: str, finding: Finding) -> bool:
    if rule in (finding.code, finding.rule):
        return True
    return finding.rule is not None and "[" not in rule and finding.rule.startswith(f"{rule}[")


def _cell_matches(cell: str | None, finding: Finding) -> bool:
    """A blank cell matches a finding on the whole file only; else the anchor, by id or A1 address."""
    if cell is None:
        return not finding.cells
    if not finding.cells:
        return False
    anchor = finding.cells[0]
    written = cell_text(cell)
    if written == anchor.id:
        return True
    sheet, _, address = written.rpartition("!")
    sheet = sheet.strip("'")
    return address.replace("$", "").upper() == anchor.ref.replace("$", "").upper() and sheet in ("", anchor.sheet)


def _matches(entry: Acceptance, finding: Finding) -> bool:
    return _rule_matches(entry.rule, finding) and _cell_matches(entry.cell, finding)


class _Offices:
    """The readable workbooks of a batch, found by credit code, then by normalised name."""

    def __init__(self, workbooks: Iterable[WorkbookResult]) -> None:
        self.by_code: dict[str, list[WorkbookResult]] = {}
        self.by_name: dict[str, list[WorkbookResult]] = {}
        for w in workbooks:
            if w.report is None:
                continue
            if code := code_key(w.report.credit_code):
                self.by_code.setdefault(code, []).append(w)
            if name := office_key(w.report.office):
                self.by_name.setdefault(name, []).append(w)

    def find(self, office: str | None, credit_code: str | None) -> list[WorkbookResult]:
        code = code_key(credit_code)
        if code and code in self.by_code:
            return self.by_code[code]
        hits = self.by_name.get(office_key(office) or "", [])
        # when both sides have a code, the codes decide: the same name with another code is another office
        return [w for w in hits if not (code and code_key(w.report.credit_code))]  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------
# The fingerprint


def fingerprint(finding: Finding, report: CleanReport | None) -> str:
    """16 hex digits of what a finding is about: the value written in each of its cells, its expected
    and actual numbers, and for a finding on the whole workbook the format and year it was read with.

    Words never enter it, so a new wording of the messages leaves every acceptance standing; a changed
    value in any cell the finding names makes it different.
    """
    parts: list[Any] = [finding.code, finding.rule, number_text(finding.expected), number_text(finding.actual)]
    if finding.cells:
        parts += [[c.id, _written(report, c.id)] for c in finding.cells]
    elif report is not None:
        parts += [report.format_id, report.year]
    data = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


def _written(report: CleanReport | None, key: str) -> str:
    """A cell's value as the report knows it: the cleaned number, else the text as written."""
    if report is None:
        return ""
    if key in report.values:
        number = report.values[key]
        return number_text(number) if number is not None else str(report.raw_values().get(key) or "")
    fmt = report.format
    roles = {fmt.field(role).name: getattr(report, role) for role in ("office", "credit_code", "year")}
    value = roles[key] if key in roles else report.texts.get(key)
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------------------------
# Applying a file to a batch


def apply_acceptances(batch: BatchResult, accepted: AcceptanceFile, *, today: dt.date | None = None
                      ) -> list[Finding]:
    """Mark every finding of `batch` that an entry of `accepted` fits; return the notices about entries
    that fit nothing or name an error (warnings for the county, not findings of any workbook).

    Applying again (another file, another day) first undoes what an earlier call did.
    """
    today = today or dt.date.today()
    for w in batch.workbooks:
        w.findings[:] = [_plain(f) for f in w.findings]
    offices = _Offices(batch.workbooks)
    notices: list[Finding] = []
    for entry in accepted.entries:
        at = words("accept.in_file", file=accepted.path.name, at=place(accepted.kind, entry.at))
        candidates = offices.find(entry.office, entry.credit_code)
        same_year = [w for w in candidates if w.report and w.report.year == entry.year]
        hits = [(w, i) for w in same_year for i, f in enumerate(w.findings) if _matches(entry, f)]
        if not hits:
            why = "office" if not candidates else "year" if not same_year else "finding"
            notices.append(Finding("acceptance-unmatched", params={
                "at": at, "reason": words(f"accept.unmatched.{why}", office=entry.who, year=entry.year)}))
            continue
        for w, i in hits:
            finding = w.findings[i]
            if finding.severity == "error":
                notices.append(Finding("acceptance-refused", params={
                    "at": at, "office": entry.who, "year": entry.year, "what": _short(finding)}))
                continue
            w.findings[i] = _reviewed(finding, entry, w.report, today)
    reviewed = [f for w in batch.workbooks for f in w.findings if isinstance(f, ReviewedFinding)]
    batch.review["acceptances"] = Review(accepted.path.name, len(accepted.entries),
                                         sum(f.accepted is not None for f in reviewed),
                                         sum(f.lapsed is not None for f in reviewed), tuple(notices))
    return notices


def _reviewed(finding: Finding, entry: Acceptance, report: CleanReport | None, today: dt.date) -> ReviewedFinding:
    base = {f.name: getattr(finding, f.name) for f in fields(Finding)}
    if entry.until is not None and today > entry.until:
        return ReviewedFinding(**base, lapsed=Lapsed("expired", entry.record))
    if entry.fingerprint and entry.fingerprint != fingerprint(finding, report):
        return ReviewedFinding(**base, lapsed=Lapsed("changed", entry.record))
    return ReviewedFinding(**base, accepted=entry.record)


def _plain(finding: Finding) -> Finding:
    if not isinstance(finding, ReviewedFinding):
        return finding
    return Finding(**{f.name: getattr(finding, f.name) for f in fields(Finding)})


def _short(finding: Finding) -> dict[str, str]:
    """A finding named for a county clerk: its place and its message, in both languages."""
    place = f"{finding.cells[0].sheet}!{finding.cells[0].ref} " if finding.cells else ""
    return {lang: place + Finding.message(finding, lang) for lang in LANGS}


# ------------------------------------------------------------------------------------------------
# New entries from the command line


def accept_in_batch(batch: BatchResult, *, rule: str, cell: str | None, reason: str, by: str,
                    office: str | None = None, credit_code: str | None = None, year: int | None = None,
                    date: dt.date | None = None, until: dt.date | None = None) -> list[Acceptance]:
    """The entries that accept the warning(s) `rule` at `cell` of one office's workbook in `batch`,
    each with the fingerprint of the finding as validated now.

    Raises:
        DisclosureError: the rule is unknown or an error, the office or finding is not in the batch,
            or the paths hold several offices and none was named.
    """
    rule = rule.strip()
    cell = cell_text(cell or "") or None
    if wrong := rule_problem(rule):
        raise _invalid(words(wrong, column=column_word("rule"), value=rule))
    if not reason.strip():
        raise _invalid(words("accept.cli.no_reason"))
    since = date or dt.date.today()
    if until is not None and until < since:
        raise _invalid(words("accept.bad.until_before", until=column_word("until"), to=until.isoformat(),
                             date=column_word("date"), since=since.isoformat()))
    readable = [w for w in batch.workbooks if w.report is not None]
    chosen = _Offices(readable).find(office, credit_code) if office or credit_code else readable
    chosen = [w for w in chosen if w.report.year is not None and year in (None, w.report.year)]  # type: ignore[union-attr]
    who = office or credit_code or ""
    if not chosen:
        raise _invalid(words("accept.cli.no_workbook", office=who, year=year or ""))
    offices = {code_key(w.report.credit_code) or office_key(w.report.office) for w in chosen}  # type: ignore[union-attr]
    if len(offices) > 1:
        raise _invalid(words("accept.cli.which_office", n=len(offices)))
    entries = []
    for w in chosen:
        report = w.report
        assert report is not None
        hits = [f for f in w.findings if _rule_matches(rule, f) and _cell_matches(cell, f)]
        if any(f.severity == "error" for f in hits):
            raise _invalid(words("accept.bad.error_rule", value=_short(next(f for f in hits if f.severity == "error"))))
        for finding in hits:
            entries.append(Acceptance(report.office, report.credit_code, report.year, rule_key(finding),  # type: ignore[arg-type]
                                      finding.cells[0].id if finding.cells else None, reason.strip(), by.strip(),
                                      since, until, fingerprint(finding, report)))
    if not entries:
        known = sorted({f"{rule_key(f)} {f.cells[0].ref if f.cells else ''}".strip()
                        for w in chosen for f in w.findings if f.severity == "warning"})
        listed = {lang: text("catalog.enumeration", lang).join(known) or text("accept.cli.none_known", lang)
                  for lang in LANGS}
        raise _invalid(words("accept.cli.no_finding", office=chosen[0].name, year=chosen[0].report.year,  # type: ignore[union-attr]
                            rule=rule, cell=cell or "", known=listed))
    return entries


# ------------------------------------------------------------------------------------------------
# The reviewer's columns of 校验汇总.xlsx


def add_overview_columns(book: Any, sheet: Any, items: Sequence[tuple[WorkbookResult, Finding]], first: int,
                         head: Any) -> None:
    """Columns after `first` on the overview's 全部问题 sheet (one row per item, in order): 是否认可 and
    理由 for the reviewer to fill in on warnings (filled in for accepted ones), then hidden columns that
    `accept --from` reads back — credit code, rule, cell id and the fingerprint of the values seen."""
    keys = ("accept", "reason", "credit_code", "rule", "cell_id", "fingerprint")
    fill = book.add_format({"bg_color": "#FFF2CC", "valign": "top", "text_wrap": True, "border": 1,
                            "border_color": "#BFBFBF"})
    for col, key in enumerate(keys, first):
        put(sheet, 0, col, text(f"accept.overview.{key}"), head)
    yes = text("accept.overview.yes")
    for row, (workbook, finding) in enumerate(items, 1):
        report = workbook.report
        accepted = getattr(finding, "accepted", None)
        if finding.severity == "warning":
            put(sheet, row, first, yes if accepted else None, fill)
            put(sheet, row, first + 1, accepted.reason if accepted else None, fill)
        put(sheet, row, first + 2, report.credit_code if report else None)
        put(sheet, row, first + 3, rule_key(finding))
        put(sheet, row, first + 4, finding.cells[0].id if finding.cells else None)
        put(sheet, row, first + 5, fingerprint(finding, report) if report else None)
    if items:
        sheet.data_validation(1, first, len(items), first, {
            "validate": "list", "source": [yes, text("accept.overview.no")], "error_type": "information",
            "input_title": text("accept.overview.accept"), "input_message": text("accept.overview.accept_prompt")})
    sheet.write_comment(0, first, text("accept.overview.accept_prompt"))
    sheet.set_column(first, first, 8)
    sheet.set_column(first + 1, first + 1, 30)
    sheet.set_column(first + 2, first + 5, 18, None, {"hidden": True})
    sheet.autofilter(0, 0, max(len(items), 1), first + len(keys) - 1)


def _invalid(reason: Mapping[str, str]) -> DisclosureError:
    return DisclosureError(Finding("acceptance-invalid", params={"reason": dict(reason)}))
