"""The office's own workbook, marked up: every cell a finding names filled and commented, the cells the
cleaner had to interpret noted, and a first sheet 「校验结果」 listing every finding with a link to its cell.

The copy is made by patching the office's .xlsx/.xlsm package (`xlsxpatch`), so pictures, charts,
macros and everything else in it survive untouched. A .xls or .ods cannot be patched: it comes back as
the standard template filled with the values reading found, patched the same way, and the first sheet
says so. The office reads plain words only: each rule is described from the format data, never by its
id, and no finding code or cell id appears in a comment or on the first sheet.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ._xlsx import OUTPUT_PROPERTY, atomic_output, output_property
from .accept import severity_word
from .catalog import LANGS, CellRef, Cleaning, Finding, cleaning_text, text, text_list
from .clean import CleanReport
from .formats import Format, get_format
from .layout import standard_where, text_lines
from .template import write_template
from .xlsxpatch import MAX_TEXT, Cell, Link, Mark, NewSheet, PatchError, Style, patch_workbook

__all__ = ["EDITABLE", "MARK_FILLS", "AnnotationJob", "AnnotationOutcome", "Suspect", "annotate", "copy_name",
           "copy_suffix", "rule_text"]

EDITABLE = (".xlsx", ".xlsm")
# Mark colours, chosen to differ from the template's input shading (#FFF2CC) and from one another in
# greyscale print (Rec. 601 luma, tested): involved cells ≈ 209, interpreted ≈ 188, a finding's own cell
# ≈ 160–164, the suspect ≈ 131 (the input shading is ≈ 242, white 255).
MARK_FILLS = {"error": "FF7C80", "error_involved": "FFBDC4", "warning": "F08C2E", "warning_involved": "FFD34D",
              "suspect": "8E6FC8", "cleaned": "9DC3E6"}
# A note (severity info) is no problem either: it prints like an interpreted value, in blue.
MARK_FILLS.update({"info": MARK_FILLS["cleaned"], "info_involved": MARK_FILLS["cleaned"]})
PRIORITY = ("suspect", "error", "error_involved", "warning", "warning_involved", "cleaned", "info", "info_involved")
HEADER_FILL = "D9E1F2"
LINK_COLOR = "0563C1"
WIDTHS = (6, 8, 16, 11, 64, 10, 10, 36)
SHOWN = 300  # characters of a workbook's own text shown in a message; longer text is shortened and counted
LINE = 16.0  # points per wrapped line on the first sheet (11 pt text, CJK glyphs are taller than Latin)

_HEAD = Style(fill=HEADER_FILL, bold=True, wrap=True, border=True, top=True)
_BODY = Style(wrap=True, border=True, top=True)
_LINK = Style(wrap=True, border=True, top=True, color=LINK_COLOR, underline=True)
_NOTE = Style(wrap=True, top=True)
_BOLD = Style(bold=True, wrap=True, top=True)


@dataclass(frozen=True, slots=True)
class Suspect:
    """A cell a suggested fix names: the one most likely wrong, with the value that would fix it."""

    cell: CellRef
    suggested: int | float | None = None
    note: str | None = None  # a plain sentence for the office (e.g. the suggestion in words)


@dataclass(frozen=True)
class AnnotationJob:
    """What annotating one workbook needs: what reading found, every finding, and where the copy goes."""

    report: CleanReport  # the file, its format, values, positions and cleaning records
    findings: tuple[Finding, ...]  # the reader's and the validator's, in report order
    target: Path  # .xlsx, or .xlsm for a macro workbook (see `copy_suffix`)
    suspects: tuple[Suspect, ...] = ()
    lang: str = "zh"


@dataclass(frozen=True)
class AnnotationOutcome:
    """What became of one job: the copy written, or why it could not be made (never an exception)."""

    file: str
    target: Path | None
    rebuilt: bool = False
    marked: int = 0  # cells filled
    kind: str | None = None  # None when written; damaged | unexpected | no_report
    problem: str | None = None  # the technical reason, for report.json and the county

    @property
    def ok(self) -> bool:
        return self.kind is None

    def reason(self, lang: str = "zh") -> str:
        """Why there is no annotated copy, in words for the office and the county ("" when there is one)."""
        if self.kind is None:
            return ""
        return text("annotate.unmade.reason", lang, why=text(f"annotate.unmade.{self.kind}", lang))


def copy_suffix(file: str | Path) -> str:
    """The annotated copy's suffix: .xlsm keeps its macros; everything else comes back as .xlsx."""
    return ".xlsm" if Path(file).suffix.lower() == ".xlsm" else ".xlsx"


def copy_name(stem: str, file: str | Path, lang: str = "zh") -> str:
    """The annotated copy's file name for an input `file` whose (safe) stem is `stem`: "<stem>_校验标注.xlsx"."""
    return text("annotate.copy_name", lang, stem=stem) + copy_suffix(file)


def annotate(job: AnnotationJob) -> AnnotationOutcome:
    """Write the annotated copy of `job.report.file` to `job.target` (the input is only read).

    Never raises for a bad workbook: a package that cannot be patched, or anything unexpected, is an
    outcome with `kind` and `problem` set and no file at `job.target`.
    """
    file = job.report.file if job.report is not None else ""
    try:
        if job.report is None:
            return AnnotationOutcome(file, None, kind="no_report", problem="no report")
        return _annotate(job)
    except PatchError as exc:
        return AnnotationOutcome(file, None, kind="damaged", problem=str(exc)[:300])
    except Exception as exc:  # noqa: BLE001 - one workbook must never stop the others' outputs
        return AnnotationOutcome(file, None, kind="unexpected", problem=f"{type(exc).__name__}: {str(exc)[:300]}")


def _annotate(job: AnnotationJob) -> AnnotationOutcome:
    report = job.report
    source = Path(report.file)
    fmt = get_format(report.format_id)
    rebuilt = source.suffix.lower() not in EDITABLE
    place = standard_where(fmt.id) if rebuilt else None
    findings = [_shortened(f) for f in job.findings]
    marks = _marks(fmt, findings, report.cleaning, job.suspects, place, job.lang)
    sheet = _result_sheet(fmt, findings, report.cleaning, job.suspects, place, source if rebuilt else None, job.lang,
                          {mark.fill for mark in marks if mark.fill})
    with atomic_output(job.target) as tmp:
        base = source
        if rebuilt:
            base = tmp.with_name(tmp.name + ".base.xlsx")
            write_template(base, fmt.id, values=_rebuilt_values(fmt, report, job.findings))
        try:
            mark = {OUTPUT_PROPERTY: output_property("annotated", datetime.now())}  # a search leaves it out (marks.py)
            result = patch_workbook(base, tmp, marks, sheet, author=text("annotate.author", job.lang), properties=mark)
        finally:
            if rebuilt:
                base.unlink(missing_ok=True)
    return AnnotationOutcome(report.file, Path(job.target), rebuilt, result.marked)


# ----------------------------------------------------------------------------------------------
# Words


def rule_text(fmt: Format, rule: str | None, lang: str = "zh") -> str:
    """A rule in plain words: an identity or plausibility rule from the format data, a ruling from words."""
    if not rule:
        return ""
    described = _described(fmt.id)
    if rule in described:
        zh, en = described[rule]
        return zh if lang == "zh" else en
    try:
        return text(f"annotate.rulings.{rule}", lang)
    except KeyError:
        return ""


@functools.cache
def _described(format_id: str) -> dict[str, tuple[str, str]]:
    """Rule instance → its plain words (zh, en), from the format data."""
    fmt = get_format(format_id)
    out = {i.rule: (i.zh, i.en) for i in fmt.identities}
    out.update({r.rule: (r.zh, r.en) for r in fmt.rules})
    return out


def _shortened(finding: Finding) -> Finding:
    """The finding with any over-long text from the workbook cut, so that a message stays readable."""
    params = {k: _short_param(v) for k, v in finding.params.items()}
    return finding if params == dict(finding.params) else dataclasses.replace(finding, params=params)


def _short_param(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHOWN:
        return {lang: _short(value, lang) for lang in LANGS}
    if isinstance(value, Mapping):
        return {k: _short(v, k) if isinstance(v, str) and k in LANGS else v for k, v in value.items()}
    return value


def _short(value: str, lang: str = "zh") -> str:
    if len(value) <= SHOWN:
        return value
    return text("annotate.comment.shortened", lang, text=value[:SHOWN], count=len(value))


def _severity(finding: Finding, lang: str) -> str:
    return severity_word(finding, lang)  # 错误 / 警告 / 提示, or 已认可 for an accepted warning


def _anchor_text(finding: Finding, lang: str) -> str:
    return text("annotate.comment.anchor", lang, severity=_severity(finding, lang), message=finding.message(lang))


def _involved_text(fmt: Format, finding: Finding, lang: str) -> str:
    rule = rule_text(fmt, finding.rule, lang)
    key = "annotate.comment.involved" if rule else "annotate.comment.involved_plain"
    params = {"rule": rule} if rule else {}
    return text(key, lang, severity=_severity(finding, lang), message=finding.message(lang), **params)


def _cleaned_text(cleaning: Cleaning, lang: str) -> str:
    return text("annotate.comment.cleaned", lang, raw=_raw(cleaning.raw, lang), value=_read_as(cleaning.value, lang),
                how=cleaning_text(cleaning.rule, lang))


def _suspect_text(suspect: Suspect, lang: str) -> str:
    note = suspect.note or ""
    if suspect.suggested is not None:
        note = (note + " " if note else "") + text("annotate.comment.suspect_value", lang,
                                                   value=_number_words(suspect.suggested))
    return text("annotate.comment.suspect", lang, note=note).strip()


def _raw(raw: object, lang: str) -> str:
    if raw is None or raw == "":
        return text("annotate.cleaning.blank", lang)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return _short(str(raw), lang)


def _read_as(value: object, lang: str) -> str:
    if value is None:
        return text("annotate.cleaning.read_blank", lang)
    if isinstance(value, str):
        return text("annotate.comment.cleaned_text", lang, value=_short(value, lang))
    return text("annotate.comment.cleaned_value", lang, value=_number_words(value))


def _number_words(value: object) -> str:
    number = _number(value)
    if isinstance(number, int | float):
        return str(number) if isinstance(number, int) else f"{number:.6f}".rstrip("0").rstrip(".")
    return "" if number is None else str(number)


def _number(value: object) -> int | float | str | None:
    """A value for a numeric cell: a whole float becomes an int; anything that is not a number is text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Real):
        as_float = float(value)
        if not math.isfinite(as_float):
            return None
        return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float
    return str(value)


# ----------------------------------------------------------------------------------------------
# Marks


def _at(ref: CellRef, place: Mapping[str, CellRef] | None) -> CellRef | None:
    """Where a cell of the workbook as read sits in the copy (the template's place for a rebuilt copy)."""
    if place is None:
        return ref
    return place.get(ref.id)


def _marks(fmt: Format, findings: Sequence[Finding], cleaning: Sequence[Cleaning], suspects: Sequence[Suspect],
           place: Mapping[str, CellRef] | None, lang: str) -> list[Mark]:
    notes: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def add(ref: CellRef, kind: str, note: str) -> None:
        target = _at(ref, place)
        if target is not None:
            entries = notes.setdefault((target.sheet, target.ref), [])
            if (kind, note) not in entries:
                entries.append((kind, note))

    for suspect in suspects:
        add(suspect.cell, "suspect", _suspect_text(suspect, lang))
    for finding in findings:
        if not finding.cells:
            continue
        add(finding.cells[0], finding.severity, _anchor_text(finding, lang))
        involved = _involved_text(fmt, finding, lang) if len(finding.cells) > 1 else ""
        for cell in finding.cells[1:]:
            add(cell, f"{finding.severity}_involved", involved)
    for record in cleaning:
        add(CellRef(record.id, record.sheet, record.ref), "cleaned", _cleaned_text(record, lang))
    marks = []
    for entries in notes.values():
        entries.sort(key=lambda e: PRIORITY.index(e[0]))
    # most important first: the cells of one merged range share its top-left cell, which takes the first fill
    for (sheet, a1), entries in sorted(notes.items(), key=lambda item: PRIORITY.index(item[1][0][0])):
        marks.append(Mark(sheet, a1, MARK_FILLS[entries[0][0]], "\n".join(note for _, note in entries)))
    return marks


# ----------------------------------------------------------------------------------------------
# The first sheet


class _Rows:
    """The first sheet's rows as they are built, with the height each needs so that nothing is cut off."""

    def __init__(self) -> None:
        self.rows: list[list[Cell]] = []
        self.heights: dict[int, float] = {}
        self.merges: list[str] = []

    def add(self, cells: Sequence[Cell], texts: Sequence[tuple[str, float]] = ()) -> int:
        self.rows.append(list(cells))
        number = len(self.rows)
        lines = max((text_lines(t, w) for t, w in texts if t), default=1)
        self.heights[number] = lines * LINE + 4
        return number

    def note(self, words: str, style: Style = _NOTE) -> None:
        number = self.add([Cell(words, style)] + [Cell(None, style)] * (len(WIDTHS) - 1), [(words, sum(WIDTHS))])
        self.merges.append(f"A{number}:H{number}")

    def blank(self) -> None:
        self.rows.append([])


def _result_sheet(fmt: Format, findings: Sequence[Finding], cleaning: Sequence[Cleaning],
                  suspects: Sequence[Suspect], place: Mapping[str, CellRef] | None, rebuilt_from: Path | None,
                  lang: str, fills: Collection[str]) -> NewSheet:
    """The 「校验结果」 sheet. Its colour legend explains the `fills` of the marks and no other colour: an
    office is not told of a colour no cell of its copy shows (without fills, there is no legend, and the
    introduction does not point to one). A mark whose fill loses to another's on the same merged range
    still counts."""
    rows = _Rows()
    rows.note(text("annotate.intro" if fills else "annotate.intro_unshaded", lang))
    if rebuilt_from is not None:
        rows.note(text("annotate.rebuilt", lang, name=_short(rebuilt_from.name, lang), suffix=rebuilt_from.suffix))
    rows.blank()
    header = rows.add([Cell(h, _HEAD) for h in text_list("annotate.headers", lang)])
    for number, finding in enumerate(findings, 1):
        rows.add(*_finding_row(fmt, number, finding, place, lang))
    if not findings:
        rows.add([Cell(None, _BODY), Cell(None, _BODY), Cell(None, _BODY), Cell(None, _BODY),
                  Cell(text("annotate.no_findings", lang), _BODY), Cell(None, _BODY), Cell(None, _BODY),
                  Cell(None, _BODY)])
    if suspects:
        rows.blank()
        rows.note(text("annotate.suspects.heading", lang), _BOLD)
        rows.add([Cell(h or None, _HEAD) for h in text_list("annotate.suspects.headers", lang)])
        for number, suspect in enumerate(suspects, 1):
            target = _at(suspect.cell, place)
            note = _suspect_text(suspect, lang)
            rows.add([Cell(number, _BODY), Cell(text("annotate.suspects.kind", lang), _BODY),
                      *_where_cells(suspect.cell, target, place, lang), Cell(note, _BODY),
                      Cell(_number(suspect.suggested), _BODY), Cell(None, _BODY), Cell(None, _BODY)],
                     [(note, WIDTHS[4])])
    if cleaning:
        rows.blank()
        rows.note(text("annotate.cleaning.heading", lang), _BOLD)
        rows.add([Cell(h or None, _HEAD) for h in text_list("annotate.cleaning.headers", lang)])
        for number, record in enumerate(cleaning, 1):
            ref = CellRef(record.id, record.sheet, record.ref)
            raw, how = _raw(record.raw, lang), cleaning_text(record.rule, lang)
            value = _number(record.value) if not isinstance(record.value, str) else _short(record.value, lang)
            rows.add([Cell(number, _BODY), Cell(text("annotate.cleaning.kind", lang), _BODY),
                      *_where_cells(ref, _at(ref, place), place, lang), Cell(raw, _BODY), Cell(value, _BODY),
                      Cell(None, _BODY), Cell(how, _BODY)], [(raw, WIDTHS[4]), (how, WIDTHS[7])])
    first_of_colour = {MARK_FILLS[kind]: kind for kind in reversed(PRIORITY)}  # a note prints like an
    legend = [kind for kind in PRIORITY if first_of_colour[MARK_FILLS[kind]] == kind  # interpreted value:
              and MARK_FILLS[kind] in fills]  # a colour is explained once
    if legend:
        rows.blank()
        rows.note(text("annotate.legend.heading", lang), _BOLD)
    for kind in legend:
        words = text(f"annotate.legend.{kind}", lang)
        rows.add([Cell(None), Cell(None), Cell(None, Style(fill=MARK_FILLS[kind], border=True)), Cell(None),
                  Cell(words, _NOTE)], [(words, WIDTHS[4])])
    return NewSheet(text("annotate.sheet_name", lang), rows.rows, WIDTHS, rows.heights, rows.merges, header)


def _where_cells(ref: CellRef | None, target: CellRef | None, place: Mapping[str, CellRef] | None,
                 lang: str) -> list[Cell]:
    """The sheet and the cell (a link to it) of a listed item; a rebuilt copy shows the original place too."""
    if ref is None or target is None:
        return [Cell(ref.sheet if ref else None, _BODY), Cell(ref.ref if ref else None, _BODY)]
    shown = target.ref
    if place is not None and ref.ref != target.ref:
        shown = text("annotate.original_place", lang, ref=target.ref, original=ref.ref)
    return [Cell(target.sheet, _BODY), Cell(shown, _LINK, Link(target.sheet, target.ref))]


def _finding_row(fmt: Format, number: int, finding: Finding, place: Mapping[str, CellRef] | None,
                 lang: str) -> tuple[list[Cell], list[tuple[str, float]]]:
    ref = finding.cells[0] if finding.cells else None
    message, rule = finding.message(lang), rule_text(fmt, finding.rule, lang)
    where = _where_cells(ref, _at(ref, place) if ref else None, place, lang)
    cells = [Cell(number, _BODY), Cell(_severity(finding, lang), _BODY), *where, Cell(message, _BODY),
             Cell(_number(finding.expected), _BODY), Cell(_number(finding.actual), _BODY), Cell(rule or None, _BODY)]
    return cells, [(message, WIDTHS[4]), (rule, WIDTHS[7]), (str(where[0].value or ""), WIDTHS[2])]


# ----------------------------------------------------------------------------------------------
# A .xls or .ods: the standard template filled with what reading found


def _rebuilt_values(fmt: Format, report: CleanReport, findings: Sequence[Finding]) -> dict[str, object]:
    """Values for the template: the cleaned numbers, and the text as written wherever the cleaner
    interpreted it or could not read it (so that the copy shows what the office typed)."""
    keep = set(fmt.names.values()) - {fmt.words.format_name, fmt.words.version_name}
    values: dict[str, object] = dict(report.values)
    values.update({fmt.field(role).name: value for role, value in (
        ("office", report.office), ("credit_code", report.credit_code), ("year", report.year))})
    values.update(report.texts)
    for record in report.cleaning:
        values[record.id] = record.raw
    for finding in findings:
        if len(finding.cells) == 1 and "raw" in finding.params and values.get(finding.cells[0].id) is None:
            raw = finding.params["raw"]
            values[finding.cells[0].id] = raw if isinstance(raw, str) else None
    return {k: _writable(v) for k, v in values.items() if k in keep and v not in (None, "")}


def _writable(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value[:MAX_TEXT] if isinstance(value, str) else value
