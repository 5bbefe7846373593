"""Add up the offices' workbooks into one report of the same format, which can be added up again.

Only workbooks without errors are added (unless asked otherwise); cells are summed one by one (every
printed cell, totals included: each identity is linear, so the sum of balanced reports is balanced);
blanks count as 0 and are listed. The total is written as a standard template workbook, so it
validates like any office's workbook and can be the input of a higher-level roll-up (township →
county → city); it is validated again after writing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlsxwriter.utility import xl_col_to_name

from ._xlsx import atomic_output, new_workbook, put
from .accept import AcceptanceFile, Review, apply_acceptances
from .catalog import LANGS, DisclosureError, Finding, phrase, text
from .formats import Format, current_format
from .pipeline import BatchResult, Progress, WorkbookResult, duplicate_groups, validate_paths
from .roster import Roster, RosterEntry, RosterMatch, match_roster, read_roster, roster_lists
from .template import fill_workbook, mark_cover

__all__ = ["ROLLUP_PROPERTY", "RollUp", "RosterEntry", "aggregate_paths", "provenance", "read_roster", "roll_up",
           "rollup_property", "write_total"]

# A custom document property of the total workbook: what it adds up, as JSON (read back by publish).
ROLLUP_PROPERTY = "disclosure_xlsx.rollup"


@dataclass
class RollUp:
    """What a roll-up added, left out and found."""

    format: Format
    office: str
    year: int
    included: list[WorkbookResult]
    left_out: list[WorkbookResult]
    totals: dict[str, Any]
    blanks: list[tuple[WorkbookResult, str]] = field(default_factory=list)  # (workbook, cell id) counted as 0
    other_years: list[WorkbookResult] = field(default_factory=list)
    missing: list[RosterEntry] = field(default_factory=list)  # on the roster, not submitted
    unexpected: list[WorkbookResult] = field(default_factory=list)  # submitted, not on the roster
    check: WorkbookResult | None = None  # the written total, validated again
    roster_match: RosterMatch[Any] | None = None  # how the roster was matched (near misses, suggestions)
    acceptances: Review | None = None  # what the county's acceptance file did (accept.py)

    @property
    def format_id(self) -> str:
        return self.format.id

    @property
    def invalid_included(self) -> list[WorkbookResult]:
        return [w for w in self.included if w.status == "errors"]

    def to_dict(self) -> dict[str, Any]:
        """The roll-up as `aggregate --json` prints it (README: "The roll-up as JSON")."""
        def brief(w: WorkbookResult) -> dict[str, Any]:
            r = w.report
            return {"file": w.file, "office": r.office if r else None, "year": r.year if r else None,
                    "status": w.status, "first_error": w.first_error or None}

        return {"version": 1, "format": self.format.id, "office": self.office, "year": self.year,
                "included": [brief(w) for w in self.included], "left_out": [brief(w) for w in self.left_out],
                "blanks": [{"file": w.file, "id": cid} for w, cid in self.blanks],
                "other_years": [brief(w) for w in self.other_years],
                "missing": [{"office": e.office, "credit_code": e.credit_code} for e in self.missing],
                "unexpected": [brief(w) for w in self.unexpected],
                "totals": self.totals, "check": self.check.to_dict() if self.check else None,
                **({"acceptances": self.acceptances.to_dict()} if self.acceptances else {})}


def aggregate_paths(paths: Iterable[str | Path], output: str | Path, *, office: str, year: int,
                    roster: str | Path | Roster | None = None, include_invalid: bool = False,
                    workers: int | None = None, progress: Progress | None = None,
                    previous: Iterable[str | Path] | None = None, aliases: str | Path | None = None,
                    accepted: AcceptanceFile | None = None) -> RollUp:
    """Validate every workbook under `paths`, add up the valid ones and write the total to `output`.

    `accepted`: the county's acceptance file; the warnings it accepts do not count (accept.py).

    Raises:
        DisclosureError: the workbooks cannot be added up, or the roster cannot be used (it is read before any
            workbook); nothing is written.
    """
    roster = read_roster(roster) if isinstance(roster, str | Path) else roster
    batch = validate_paths(paths, workers=workers, progress=progress, exclude=[output], previous=previous,
                           aliases=aliases)  # cross-year findings are warnings: they never leave an office out
    if accepted is not None:
        apply_acceptances(batch, accepted)
    result = roll_up(batch, office=office, year=year, include_invalid=include_invalid, roster=roster)
    write_total(result, output)
    check = validate_paths([output], workers=1)
    if accepted is not None:  # once more with the total: the roll-up's own warnings may be accepted too
        both = BatchResult([*batch.workbooks, *check.workbooks])
        apply_acceptances(both, accepted)
        result.acceptances = both.review["acceptances"]
    (result.check,) = check.workbooks
    return result


def roll_up(batch: BatchResult, *, office: str, year: int, include_invalid: bool = False,
            roster: Roster | Sequence[RosterEntry] | None = None) -> RollUp:
    """Choose the workbooks to add, check they can be added together, and sum them cell by cell."""
    allowed = ("ok", "warnings", "errors") if include_invalid else ("ok", "warnings")
    chosen = [i for i, w in enumerate(batch.workbooks) if w.status in allowed]
    included = [batch.workbooks[i] for i in chosen]
    left_out = [w for w in batch.workbooks if w.status not in allowed]
    if not included:
        raise DisclosureError(Finding("rollup-nothing-to-add"))
    _one_format(included)
    _no_duplicates(included)
    fmt = included[0].report.format  # type: ignore[union-attr]
    frame = batch.frame(fmt).loc[chosen]  # the frame validation checked: nothing is built twice
    blanks = [(batch.workbooks[i], cid) for cid in fmt.cells for i in frame.index[frame[cid].isna()]]
    sums = frame.fillna(0).sum()
    totals = {cid: (int(sums[cid]) if fmt.cells[cid].type.integer else round(float(sums[cid]), 6))
              for cid in fmt.cells}
    result = RollUp(fmt, office, year, included, left_out, totals, blanks,
                    other_years=[w for w in included if w.report and w.report.year != year])
    if roster is not None:
        result.missing, result.unexpected, result.roster_match = _compare_roster(roster, [*included, *left_out])
    return result


def _one_format(workbooks: Sequence[WorkbookResult]) -> None:
    by_format: dict[Format, list[str]] = defaultdict(list)
    for w in workbooks:
        by_format[w.report.format].append(Path(w.file).name)  # type: ignore[union-attr]
    if len(by_format) > 1:
        ordered = sorted(by_format.items(), key=lambda kv: kv[0].id)
        groups = {lang: text("catalog.list_separator", lang).join(
            text("aggregate.format_group", lang, title=text("catalog.format_title", lang, title=f.title, id=f.id),
                 files=text("catalog.enumeration", lang).join(files)) for f, files in ordered) for lang in LANGS}
        raise DisclosureError(Finding("rollup-mixed-formats", params={"groups": groups}))


def _no_duplicates(workbooks: Sequence[WorkbookResult]) -> None:
    for group in duplicate_groups(workbooks):
        report = group[0].report
        files = [Path(w.file).name for w in group]
        raise DisclosureError(Finding("rollup-duplicate", params={
            "office": report.office, "year": report.year,  # type: ignore[union-attr]
            "files": {lang: text("catalog.enumeration", lang).join(files) for lang in LANGS}}))


def _roster_headers() -> tuple[str, str, str]:
    fmt = current_format()
    labels = fmt.cover_labels
    return labels[fmt.field("office").name], labels[fmt.field("credit_code").name], text("roster.columns.parent")


def _compare_roster(roster: Roster | Sequence[RosterEntry], submitted: Sequence[WorkbookResult]
                    ) -> tuple[list[RosterEntry], list[WorkbookResult], RosterMatch[Any]]:
    """Who is on the roster but sent nothing, and who sent a workbook but is not on it (roster.py matches)."""
    workbook_of = {id(w.report): w for w in submitted if w.report is not None}
    match = match_roster(roster, [w.report for w in submitted if w.report is not None])
    return list(match.missing), [workbook_of[id(r)] for r in match.unexpected], match


# ------------------------------------------------------------------------------------------------
# The total workbook


def write_total(result: RollUp, path: str | Path) -> Path:
    """The standard template filled with the sums and the roll-up's own cover, plus 汇总明细 and 各单位对比."""
    fmt = result.format
    with atomic_output(path) as tmp:
        book = new_workbook(tmp, title=fmt.words.title)
        fill_workbook(book, fmt.id, {**result.totals, fmt.field("office").name: result.office,
                                     fmt.field("year").name: result.year})
        book.set_custom_property(ROLLUP_PROPERTY, rollup_property(result))
        if result.invalid_included:
            names = text("catalog.enumeration").join(w.name for w in result.invalid_included)
            mark_cover(book, fmt.id, text("aggregate.invalid_cover", n=len(result.invalid_included),
                                          mark=fmt.words.failed_mark, names=names))
        _detail_sheet(book, fmt, result)
        _compare_sheet(book, fmt, result)
        book.close()
    return Path(path)


def rollup_property(result: RollUp) -> str:
    """The roll-up's provenance in a few numbers: offices added, left out, missing from the roster."""
    return json.dumps({"version": 1, "added": len(result.included), "left_out": len(result.left_out),
                       "missing": len(result.missing), "invalid_included": len(result.invalid_included)},
                      separators=(",", ":"))


def _detail_sheet(book: Any, fmt: Format, result: RollUp) -> None:
    """One row per office, one column per cell id; a totals row equal to the written total; then the lists."""
    sheet = book.add_worksheet(fmt.words.detail_sheet)
    head = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True, "valign": "top"})
    bold = book.add_format({"bold": True})
    total_style = book.add_format({"bold": True, "top": 1})
    office_label, code_label, _ = _roster_headers()
    ids = list(fmt.cells)
    put(sheet, 0, 0, office_label, head)
    put(sheet, 0, 1, code_label, head)
    put(sheet, 0, 2, text("aggregate.file"), head)
    put(sheet, 1, 0, text("aggregate.positions"), head)
    for col, cid in enumerate(ids, 3):
        put(sheet, 0, col, cid, head)
        put(sheet, 1, col, fmt.cells[cid].label, head)
    for row, workbook in enumerate(result.included, 2):
        report = workbook.report
        put(sheet, row, 0, workbook.name)
        put(sheet, row, 1, report.credit_code if report else None)
        put(sheet, row, 2, Path(workbook.file).name)
        for col, cid in enumerate(ids, 3):
            put(sheet, row, col, report.values[cid] if report else None)
    last = 1 + len(result.included)
    total_row = last + 1
    put(sheet, total_row, 0, fmt.words.total_label, total_style)
    for col, cid in enumerate(ids, 3):
        letter = xl_col_to_name(col)
        sheet.write_formula(total_row, col, f"=SUM({letter}3:{letter}{last + 1})", total_style, result.totals[cid])
    sheet.freeze_panes(2, 3)
    sheet.set_column(0, 0, 24)
    sheet.set_column(1, 2, 18)
    sheet.set_column(3, 2 + len(ids), 10)
    row = total_row + 2
    for title, lines in provenance(result):
        put(sheet, row, 0, title, bold)
        for line in lines or [text("aggregate.none")]:
            row += 1
            put(sheet, row, 0, line)
        row += 2


def provenance(result: RollUp, lang: str = "zh") -> list[tuple[str, list[str]]]:
    """The roll-up's provenance notes, as (title, lines): the lists of 汇总明细, also printed by the command."""
    fmt = result.format

    def say(key: str, **params: Any) -> str:
        return text(f"aggregate.lists.{key}", lang, **params)

    def place(w: WorkbookResult, cid: str) -> str:
        ref = w.report.where.get(cid) if w.report else None
        return f"{ref.sheet}!{ref.ref}" if ref else cid

    mark = text("convert.failed_mark", lang)
    out = [
        (say("left_out", n=len(result.left_out)),
         [say("left_out_item", name=w.name, file=Path(w.file).name, reason=_first_error(w, lang))
          for w in result.left_out]),
        (say("blanks", n=len(result.blanks)),
         [say("blank_item", name=w.name, place=place(w, cid), label=fmt.cells[cid].label) for w, cid in result.blanks]),
    ]
    if result.invalid_included:
        out.insert(0, (say("invalid_included", mark=mark, n=len(result.invalid_included)),
                       [say("invalid_item", name=w.name, reason=_first_error(w, lang))
                        for w in result.invalid_included]))
    if result.other_years:
        out.append((say("other_years", year=result.year, n=len(result.other_years)),
                    [say("other_year_item", name=w.name, year=w.report.year if w.report else "")
                     for w in result.other_years]))
    if result.missing or result.unexpected:
        out.append((say("missing", n=len(result.missing)), [e.office for e in result.missing]))
        out.append((say("unexpected", n=len(result.unexpected)),
                    [say("unexpected_item", name=w.name, file=Path(w.file).name) for w in result.unexpected]))
    out += roster_lists(result.roster_match, lang)
    return out


def _first_error(workbook: WorkbookResult, lang: str) -> str:
    return next((f.message(lang) for f in workbook.findings if f.severity == "error"), "")


def _compare_sheet(book: Any, fmt: Format, result: RollUp) -> None:
    """Key figures per office, a totals row, and a native bar chart of new requests per office."""
    sheet = book.add_worksheet(fmt.words.compare_sheet)
    head = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True, "valign": "top"})
    percent = book.add_format({"num_format": "0.0%"})
    total_style = book.add_format({"bold": True, "top": 1})
    office_label, _, _ = _roster_headers()
    put(sheet, 0, 0, office_label, head)
    for col, figure in enumerate(fmt.key_figures, 1):
        put(sheet, 0, col, figure.label, head)
    rows = [(w.name, w.report.values) for w in result.included if w.report]
    rows.append((fmt.words.total_label, result.totals))
    for r, (name, values) in enumerate(rows, 1):
        style = total_style if r == len(rows) else None
        put(sheet, r, 0, name, style)
        for col, figure in enumerate(fmt.key_figures, 1):
            put(sheet, r, col, figure.value(values), percent if figure.is_ratio else style)
    sheet.set_column(0, 0, 26)
    sheet.set_column(1, len(fmt.key_figures), 14)
    sheet.set_row(0, 45)
    sheet.freeze_panes(1, 1)
    font = {"name": text("template.fonts.body")}
    charted = [(col, f) for col, f in enumerate(fmt.key_figures, 1) if f.chart]
    for col, figure in charted:
        chart = book.add_chart({"type": "bar"})
        offices = len(rows) - 1
        chart.add_series({"name": figure.label, "categories": [sheet.name, 1, 0, offices, 0],
                          "values": [sheet.name, 1, col, offices, col], "data_labels": {"value": True}})
        chart.set_title({"name": text("aggregate.compare_chart", figure=figure.label), "name_font": font})
        chart.set_legend({"none": True})
        chart.set_y_axis({"reverse": True, "num_font": font})
        chart.set_size({"width": 720, "height": max(300, 24 * offices + 80)})
        sheet.insert_chart(len(rows) + 2, 0, chart)
