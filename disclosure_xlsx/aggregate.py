"""Add up the offices' workbooks into one report of the same format, which can be added up again.

Only what belongs is added: workbooks of the roll-up's year, in the format for that year, one per office,
without errors (each of these can be relaxed by an option); everything else is left out and listed with
its reason. Cells are summed one by one (every printed cell, totals included: each identity is linear,
so the sum of balanced reports is balanced); blanks count as 0 and are listed. The total is written as a
standard template workbook, so it validates like any office's workbook and can be the input of a
higher-level roll-up (township → county → city); it is validated again after writing. It records what
was added, left out and missing on its cover, in 汇总明细 and in a document property, and a roll-up of
totals carries those counts forward, so exclusions one level down stay visible.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import pairwise
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlsxwriter.utility import quote_sheetname, xl_col_to_name

from ._xlsx import atomic_output, new_workbook, put
from .accept import AcceptanceFile, Review, apply_acceptances
from .catalog import LANGS, DisclosureError, Finding, phrase, text
from .formats import Format, current_format, format_for_year
from .layout import LINE_HEIGHT, a1, detail_layout, layout_for, text_lines
from .marks import ROLLUP_PROPERTY, rollup_counts
from .pipeline import BatchResult, Progress, Stage, WorkbookResult, duplicate_groups, file_labels, modified_time, validate_paths
from .roster import Roster, RosterEntry, RosterMatch, match_roster, read_roster, roster_lists
from .template import fill_workbook, mark_cover

__all__ = ["REASONS", "ROLLUP_PROPERTY", "LeftOut", "RollUp", "RosterEntry", "aggregate_paths", "provenance",
           "read_roster", "roll_up", "summary", "write_total"]

# Why a workbook was left out, in the order the checks run (each has its words in aggregate.reasons).
REASONS = ("unreadable", "other_year", "wrong_format", "duplicate", "superseded", "errors")
COUNTS_VERSION = 1

@dataclass(frozen=True)
class LeftOut:
    """A workbook the roll-up did not add, and why (`why`: the roll-up's own reason; None: its first error)."""

    workbook: WorkbookResult
    reason: str  # one of REASONS
    why: Finding | None = None

    def message(self, lang: str = "zh") -> str:
        if self.why is not None:
            return self.why.message(lang)
        return next((f.message(lang) for f in self.workbook.findings if f.severity == "error"), "")


@dataclass
class RollUp:
    """What a roll-up added, left out and found."""

    format: Format
    office: str
    year: int
    included: list[WorkbookResult]
    excluded: list[LeftOut]
    totals: dict[str, Any]
    blanks: list[tuple[WorkbookResult, str]] = field(default_factory=list)  # (workbook, cell id) counted as 0
    other_years: list[WorkbookResult] = field(default_factory=list)  # added although of another year
    missing: list[RosterEntry] = field(default_factory=list)  # on the roster, not submitted
    unexpected: list[WorkbookResult] = field(default_factory=list)  # submitted, not on the roster
    carried: list[tuple[WorkbookResult, dict[str, Any]]] = field(default_factory=list)  # added totals and their counts
    roster_given: bool = False
    check: WorkbookResult | None = None  # the written total, validated again
    roster_match: RosterMatch[Any] | None = None  # how the roster was matched (near misses, suggestions)
    acceptances: Review | None = None  # what the county's acceptance file did (accept.py)

    @property
    def format_id(self) -> str:
        return self.format.id

    @property
    def left_out(self) -> list[WorkbookResult]:
        return [e.workbook for e in self.excluded]

    @property
    def invalid_included(self) -> list[WorkbookResult]:
        return [w for w in self.included if w.status == "errors"]

    @property
    def below(self) -> dict[str, int] | None:
        """What the added totals record about the levels beneath them, summed over every level."""
        if not self.carried:
            return None
        out = Counter[str]()
        for _, counts in self.carried:
            deeper = counts.get("below") or {}
            for key in ("added", "left_out", "missing"):
                out[key] += int(counts.get(key) or 0) + int(deeper.get(key) or 0)
        return {key: out[key] for key in ("added", "left_out", "missing")}

    def counts(self) -> dict[str, Any]:
        """How many workbooks were added and left out (by reason), how many roster offices are missing, and
        what the added totals carry from below: the document property `disclosure_xlsx.rollup` of the total."""
        reasons = Counter(e.reason for e in self.excluded)
        out: dict[str, Any] = {"version": COUNTS_VERSION, "added": len(self.included), "left_out": len(self.excluded),
                               "missing": len(self.missing), "invalid_included": len(self.invalid_included),
                               "roster": self.roster_given,
                               "reasons": {r: reasons[r] for r in REASONS if reasons[r]}}
        if self.below is not None:
            out["below"] = self.below
        return out

    def to_dict(self) -> dict[str, Any]:
        """The roll-up as `aggregate --json` prints it (README: "The roll-up as JSON")."""
        def brief(w: WorkbookResult) -> dict[str, Any]:
            r = w.report
            return {"file": w.file, "office": r.office if r else None, "year": r.year if r else None,
                    "status": w.status, "first_error": w.first_error or None}

        return {"version": 1, "format": self.format.id, "office": self.office, "year": self.year,
                "counts": self.counts(),
                "included": [brief(w) for w in self.included],
                "left_out": [{**brief(e.workbook), "reason": e.reason, "why": e.message()} for e in self.excluded],
                "blanks": [{"file": w.file, "id": cid} for w, cid in self.blanks],
                "other_years": [brief(w) for w in self.other_years],
                "missing": [{"office": e.office, "credit_code": e.credit_code} for e in self.missing],
                "unexpected": [brief(w) for w in self.unexpected],
                "carried": [{**brief(w), "counts": c} for w, c in self.carried],
                "totals": self.totals, "check": self.check.to_dict() if self.check else None,
                **({"acceptances": self.acceptances.to_dict()} if self.acceptances else {})}


def aggregate_paths(paths: Iterable[str | Path], output: str | Path, *, office: str, year: int,
                    roster: str | Path | Roster | None = None, include_invalid: bool = False,
                    include_other_years: bool = False, prefer: str | None = None, workers: int | None = None,
                    progress: Progress | None = None, previous: Iterable[str | Path] | None = None,
                    aliases: str | Path | None = None, accepted: AcceptanceFile | None = None,
                    stage: Stage | None = None) -> RollUp:
    """Validate every workbook under `paths`, add up those that belong and write the total to `output`.

    `accepted`: the county's acceptance file; the warnings it accepts do not count (accept.py).
    `progress` ticks the reading; `stage` is told when writing the total and checking it again begin.

    Raises:
        DisclosureError: the workbooks cannot be added up (no workbook of `year`, none left to add, mixed
            formats) or the roster cannot be used (it is read before any workbook); nothing is written.
    """
    roster = read_roster(roster) if isinstance(roster, str | Path) else roster
    batch = validate_paths(paths, workers=workers, progress=progress, exclude=[output], previous=previous,
                           aliases=aliases)  # cross-year findings are warnings: they never leave an office out
    if accepted is not None:
        apply_acceptances(batch, accepted)
    result = roll_up(batch, office=office, year=year, include_invalid=include_invalid,
                     include_other_years=include_other_years, prefer=prefer, roster=roster)
    if stage:
        stage("totalling", None)
    write_total(result, output)
    check = validate_paths([output], workers=1, progress=stage("checking_total", 1) if stage else None)
    if accepted is not None:  # once more with the total: the roll-up's own warnings may be accepted too
        both = BatchResult([*batch.workbooks, *check.workbooks])
        apply_acceptances(both, accepted)
        result.acceptances = both.review["acceptances"]
    (result.check,) = check.workbooks
    return result


def roll_up(batch: BatchResult, *, office: str, year: int, include_invalid: bool = False,
            include_other_years: bool = False, prefer: str | None = None,
            roster: Roster | Sequence[RosterEntry] | None = None) -> RollUp:
    """Choose the workbooks to add (the rest is left out with its reason), check they can be added
    together, and sum them cell by cell.

    Args:
        include_invalid: also add workbooks with errors.
        include_other_years: also add workbooks whose report year is not `year`.
        prefer: "newest" adds the most recently modified of an office's duplicates; by default none is added.
    """
    _year_present(batch, year)
    excluded: list[LeftOut] = []
    candidates: list[WorkbookResult] = []
    for w in batch.workbooks:
        reason = _left_out(w, year, include_other_years)
        if reason is None:
            candidates.append(w)
        else:
            excluded.append(reason)
    for group in duplicate_groups(candidates):
        excluded += _duplicates(group, prefer)
    gone = {id(e.workbook) for e in excluded}
    for w in candidates:
        if id(w) not in gone and w.status == "errors" and not include_invalid:
            excluded.append(LeftOut(w, "errors"))
            gone.add(id(w))
    included = [w for w in candidates if id(w) not in gone]
    position = {id(w): i for i, w in enumerate(batch.workbooks)}
    excluded.sort(key=lambda e: position[id(e.workbook)])
    if not included:
        reasons = Counter(e.reason for e in excluded)
        summary = {lang: text("catalog.enumeration", lang).join(
            text("aggregate.reason_count", lang, reason=text(f"aggregate.reasons.{r}", lang), n=reasons[r])
            for r in REASONS if reasons[r]) for lang in LANGS}
        raise DisclosureError(Finding("rollup-nothing-to-add", params={"reasons": summary}))
    _one_format(included)
    fmt = included[0].report.format  # type: ignore[union-attr]
    chosen = [position[id(w)] for w in included]
    frame = batch.frame(fmt).loc[chosen]  # stacked from the packed values (clean.CellValues): one block
    blanks = [(batch.workbooks[i], cid) for cid in fmt.cells for i in frame.index[frame[cid].isna()]]
    sums = frame.fillna(0).sum()
    totals = {cid: (int(sums[cid]) if fmt.cells[cid].type.integer else round(float(sums[cid]), 6))
              for cid in fmt.cells}
    carried = [(w, counts) for w in included
               if (counts := rollup_counts(w.report.file if w.report else w.file)) is not None]
    result = RollUp(fmt, office, year, included, excluded, totals, blanks,
                    other_years=[w for w in included if w.report and w.report.year != year], carried=carried,
                    roster_given=roster is not None)
    if roster is not None:
        result.missing, result.unexpected, result.roster_match = _compare_roster(roster, [*included, *result.left_out])
    return result


def _year_present(batch: BatchResult, year: int) -> None:
    """A `--year` that no readable workbook has is a usage error naming the years found (when there are
    readable workbooks at all)."""
    years = [w.report.year for w in batch.workbooks if w.report is not None]
    if year in years or not years:  # nothing readable at all: nothing to add (the files are listed)
        return
    counts = Counter(years)
    found = {lang: text("catalog.enumeration", lang).join(
        text("aggregate.year_found", lang, year=y if y is not None else text("aggregate.year_blank", lang), n=n)
        for y, n in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))) or text("aggregate.none", lang)
        for lang in LANGS}
    raise DisclosureError(Finding("rollup-year-not-found", params={"year": year, "found": found}))


def _left_out(w: WorkbookResult, year: int, include_other_years: bool) -> LeftOut | None:
    """Why a workbook does not belong in the roll-up of `year`, before duplicates and errors are looked at."""
    report = w.report
    if report is None:
        return LeftOut(w, "unreadable")
    if report.year != year and not include_other_years:
        shown = phrase("aggregate.year_is", year=report.year) if report.year is not None else phrase(
            "aggregate.year_not_filled")
        return LeftOut(w, "other_year", Finding("rollup-other-year", params={"year_text": shown, "target": year}))
    expected = format_for_year(report.year) if report.year is not None else None
    if expected is not None and expected is not report.format:
        return LeftOut(w, "wrong_format", Finding("rollup-wrong-format", params={
            "year": report.year, "format_title": phrase("catalog.format_title", title=report.format.title,
                                                        id=report.format.id),
            "expected_title": phrase("catalog.format_title", title=expected.title, id=expected.id)}))
    return None


def _duplicates(group: list[WorkbookResult], prefer: str | None) -> list[LeftOut]:
    """One office's workbooks of one year: all left out, or (prefer newest) all but the newest."""
    labels = {lang: file_labels(group, lang) for lang in LANGS}
    report = group[0].report
    assert report is not None
    if prefer == "newest":
        newest = max(group, key=modified_time)
        chosen = {lang: labels[lang][id(newest)] for lang in LANGS}
        return [LeftOut(w, "superseded", Finding("rollup-superseded", params={
            "office": report.office, "year": report.year, "chosen": chosen})) for w in group if w is not newest]
    files = {lang: text("catalog.enumeration", lang).join(labels[lang][id(w)] for w in group) for lang in LANGS}
    return [LeftOut(w, "duplicate", Finding("rollup-duplicate", params={
        "office": report.office, "year": report.year, "files": files})) for w in group]


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
        book = new_workbook(tmp, title=fmt.words.title, kind="total")
        fill_workbook(book, fmt.id, {**result.totals, fmt.field("office").name: result.office,
                                     fmt.field("year").name: result.year})
        if result.invalid_included:
            names = text("catalog.enumeration").join(w.name for w in result.invalid_included)
            mark_cover(book, fmt.id, text("aggregate.invalid_cover", n=len(result.invalid_included),
                                          mark=fmt.words.failed_mark, names=names))
        _cover_counts(book, fmt, result)
        book.set_custom_property(ROLLUP_PROPERTY, json.dumps(result.counts(), ensure_ascii=False))
        _detail_sheet(book, fmt, result)
        _compare_sheet(book, fmt, result)
        book.close()
    return Path(path)


def _cover_counts(book: Any, fmt: Format, result: RollUp) -> None:
    """A locked block under the cover's instructions: what was added, left out and missing (and below)."""
    cover = layout_for(fmt.id).sheet("cover")
    sheet = book.get_worksheet_by_name(cover.name)
    last = len(cover.widths) - 1
    heading = book.add_format({"bold": True, "font_size": 12, "locked": True})
    line = book.add_format({"text_wrap": True, "valign": "top", "locked": True})
    row = max(b.last_row for b in cover.boxes) + 2
    title, lines = summary(result)
    sheet.merge_range(row, 0, row, last, title, heading)
    for text_line in lines:
        row += 1
        sheet.merge_range(row, 0, row, last, text_line, line)


def summary(result: RollUp, lang: str = "zh") -> tuple[str, list[str]]:
    """The roll-up in a few lines (the cover's block, the first list of 汇总明细, the first lines printed)."""
    def say(key: str, **params: Any) -> str:
        return text(f"aggregate.summary.{key}", lang, **params)

    counts = result.counts()
    reasons = text("catalog.enumeration", lang).join(
        text("aggregate.reason_count", lang, reason=text(f"aggregate.reasons.{r}", lang), n=n)
        for r, n in counts["reasons"].items())
    lines = [say("added", n=counts["added"]),
             say("left_out", n=counts["left_out"], reasons=say("reasons", reasons=reasons) if reasons else ""),
             say("missing", n=counts["missing"]) if result.roster_given else say("no_roster")]
    below = result.below
    if below is not None:
        lines.append(say("below", totals=len(result.carried), **below))
    return say("title", year=result.year), lines


def _detail_sheet(book: Any, fmt: Format, result: RollUp) -> None:
    """One row per office, one column per cell, under the cell's labels (section, row, column) and its id;
    a totals row equal to the written total; then the lists. It prints landscape in bands of whole table
    rows (layout.detail_layout), the office column and the header rows repeated on every page."""
    layout = detail_layout(fmt.id)
    sheet = book.add_worksheet(fmt.words.detail_sheet)
    base = {"font_name": text("template.fonts.body"), "valign": "vcenter"}
    head = book.add_format({**base, "bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True,
                            "align": "center", "font_size": 9})
    section = book.add_format({**base, "bold": True, "bg_color": "#B4C6E7", "border": 1, "font_size": 10,
                               "text_wrap": True})
    ident = book.add_format({**base, "font_size": 6, "font_color": "#7F7F7F", "border": 1, "text_wrap": True,
                             "align": "center"})
    office = book.add_format({**base, "text_wrap": True, "border": 1})
    value = book.add_format({**base, "border": 1})
    total_style = book.add_format({**base, "bold": True, "top": 2, "border": 1})
    note = book.add_format({**base, "text_wrap": True, "valign": "top"})
    bold = book.add_format({**base, "bold": True})
    for col, width in enumerate(layout.widths):
        sheet.set_column(col, col, width)
    for row, height in layout.heights.items():
        sheet.set_row(row, height)
    id_row = layout.id_row
    office_label, code_label, _ = _roster_headers()
    for col, label in enumerate((office_label, code_label, text("aggregate.file"))):
        sheet.merge_range(0, col, id_row - 1, col, None, head)
        put(sheet, 0, col, label, head)
        put(sheet, id_row, col, None, ident)
    put(sheet, id_row, 0, text("aggregate.cell_ids"), ident)
    for box in layout.boxes:
        style = section if box.style == "section" else head
        if (box.col, box.row) == (box.last_col, box.last_row):
            put(sheet, box.row, box.col, box.text, style)
        else:
            sheet.merge_range(box.row, box.col, box.last_row, box.last_col, None, style)
            put(sheet, box.row, box.col, box.text, style)
    for col, cid in enumerate(layout.ids, layout.first):
        put(sheet, id_row, col, cid, ident)
    first_row = layout.header_rows
    for row, workbook in enumerate(result.included, first_row):
        report = workbook.report
        put(sheet, row, 0, workbook.name, office)
        put(sheet, row, 1, report.credit_code if report else None, value)
        put(sheet, row, 2, Path(workbook.file).name, office)
        for col, cid in enumerate(layout.ids, layout.first):
            put(sheet, row, col, report.values[cid] if report else None, value)
    total_row = first_row + len(result.included)
    put(sheet, total_row, 0, fmt.words.total_label, total_style)
    put(sheet, total_row, 1, None, total_style)
    put(sheet, total_row, 2, None, total_style)
    for col, cid in enumerate(layout.ids, layout.first):
        letter = xl_col_to_name(col)
        sheet.write_formula(total_row, col, f"=SUM({letter}{first_row + 1}:{letter}{total_row})", total_style,
                            result.totals[cid])
    # The lists under the table belong to the first printed band only (its print area reaches down to them);
    # the other bands stop at the totals row.
    bands = [layout.first, *layout.bands, len(layout.widths)]
    last = bands[1] - 1
    width = sum(layout.widths[:last + 1])
    row = total_row + 2
    for title, lines in provenance(result):
        for line, style in [(title, bold), *((item, note) for item in lines or [text("aggregate.none")])]:
            sheet.merge_range(row, 0, row, last, None, style)
            put(sheet, row, 0, line, style)
            sheet.set_row(row, LINE_HEIGHT * text_lines(line, width) + 2)
            row += 1
        row += 1
    name = quote_sheetname(sheet.name)
    areas = [f"{name}!{a1(0, 0, absolute=True)}:{a1(row - 2, last, absolute=True)}"]
    areas += [f"{name}!{a1(0, a, absolute=True)}:{a1(total_row, b - 1, absolute=True)}"
              for a, b in pairwise(bands[1:])]
    book.define_name(f"{name}!_xlnm.Print_Area", "=" + ",".join(areas))  # one printed band per area
    sheet.freeze_panes(layout.header_rows, 1)
    sheet.set_landscape()
    sheet.set_paper(9)
    sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    sheet.repeat_rows(0, id_row - 1)  # the labels on every page; the ids on each band's first page
    sheet.repeat_columns(0)
    sheet.fit_to_pages(1, 0)  # each band one page wide, whatever the widths of the fonts the printer has
    sheet.set_footer(text("aggregate.detail_footer", sheet=fmt.words.detail_sheet))


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
        summary(result, lang),
        (say("left_out", n=len(result.excluded)),
         [say("left_out_item", name=e.workbook.name, file=Path(e.workbook.file).name, reason=e.message(lang))
          for e in result.excluded]),
        (say("blanks", n=len(result.blanks)),
         [say("blank_item", name=w.name, place=place(w, cid), label=fmt.cells[cid].label) for w, cid in result.blanks]),
    ]
    if result.invalid_included:
        out.insert(1, (say("invalid_included", mark=mark, n=len(result.invalid_included)),
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
    if result.carried:
        out.append((say("carried", n=len(result.carried)),
                    [say("carried_item", name=w.name, file=Path(w.file).name, added=c.get("added", 0),
                         left_out=c.get("left_out", 0), missing=c.get("missing", 0)) for w, c in result.carried]))
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
