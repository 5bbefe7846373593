"""What the county sends back: per office a folder with its annotated workbook and a plain summary,
and one overview workbook for the county, all written under the output folder.

Every file is written to a temporary name and moved into place; the whole `feedback/` tree is built
beside the old one and swapped in, so an interrupted run never leaves a half-written output and a
rerun replaces the earlier outputs cleanly. Input files are only ever read. What an office reads names
cells by sheet and address and rules in plain words; codes and rule ids stay in report.json and in one
county-side column of the overview.
"""

from __future__ import annotations

import errno
import html
import itertools
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._xlsx import atomic_output, new_workbook, put
from .accept import add_overview_columns, severity_word
from .annotate import AnnotationJob, AnnotationOutcome, Suspect, annotate, copy_name
from .catalog import Cleaning, DisclosureError, Finding, cleaning_text, number_text, status_text, text
from .clean import CleanReport
from .formats import current_format
from .layout import LINE_HEIGHT, text_lines
from .limits import CELL_TEXT_MAX, WORKER_MEMORY_BYTES, WRITE_TIMEOUT_SECONDS
from .marks import write_marker
from .outputs import (LOCK, PREFIX, STAGING, OutputLock, Written, clean_stale, clean_temporaries, commit, disk_full_as_finding,
                      disk_full_finding, folder_problem, input_problem, is_own, name_text, writable_problem)
from .pipeline import BatchResult, Progress, WorkbookResult
from .rounds import HISTORY, add_round_columns, begin_round, review_header
from .refill import Refill, refill_for, write_refill
from .validate import cell_blocks
from .workers import run_isolated

__all__ = ["FEEDBACK_DIR", "OVERVIEW", "REPORT", "CopyNote", "feedback_text", "output_lock", "output_name",
           "output_problem", "safe_name", "unique_name", "write_outputs"]

REPORT = text("feedback.report_file")
OVERVIEW = text("feedback.overview_file")
FEEDBACK_DIR = text("feedback.feedback_dir")
TEXT, PAGE = text("feedback.text_file"), text("feedback.page_file")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_STATUS_ORDER = {"unreadable": 0, "errors": 1, "warnings": 2, "ok": 3}
_CURRENT = current_format()
# What an output folder of a version that wrote no marker file holds (besides hidden entries).
_OWN_NAMES = (REPORT, OVERVIEW, FEEDBACK_DIR, HISTORY, text("mail.drafts_dir"), text("mail.log_file"))


def write_outputs(batch: BatchResult, out: str | Path, *, workers: int | None = None,
                  progress: Progress | None = None) -> Path:
    """Write report.json, feedback/<office>_<year>/… and 校验汇总.xlsx under `out`.

    Everything is built in a staging folder inside `out` and moved in at the end (the feedback tree by two
    renames, the files by one each), holding `out`'s lock file: a run that fails, is interrupted or finds
    the disk full leaves the previous outputs as they were. Each office's workbooks (annotated copy,
    pre-filled template) are written in worker processes; one that cannot be made is a note in that
    office's 反馈, in the overview and in report.json (`annotation`, `new_template`), never the end of the
    run. `progress(done, total)` is called as the offices' folders are written.

    Raises:
        DisclosureError: `out` cannot take the outputs (`output_problem`, `output-not-writable`), another
            run holds its lock (`output-locked`), or the disk is full (`output-disk-full`).
    """
    out = Path(out)
    problem = output_problem(out, _inputs(batch)) or writable_problem(out)
    if problem is not None:
        raise DisclosureError(problem)
    with output_lock(out), disk_full_as_finding(out):
        clean_stale(out, (FEEDBACK_DIR,), prefixes=(PREFIX, f".{FEEDBACK_DIR}."))  # left by a run killed outright
        write_marker(out, "validate")  # a later search of a folder above leaves these outputs out
        staging = out / f"{STAGING}{os.getpid()}"
        staging.mkdir()
        try:
            round_ = begin_round(batch, out)  # the round of resubmission, compared with the previous one (rounds.py)
            folders = _write_feedback_tree(batch, staging / FEEDBACK_DIR, out, workers, progress)
            _write_overview(batch.workbooks, staging / OVERVIEW)
            folders_of = [{"feedback_dir": f"{FEEDBACK_DIR}/{folder}"} for folder in folders]  # "/" on every system
            with atomic_output(staging / REPORT) as tmp, tmp.open("w", encoding="utf-8") as stream:
                batch.write_json(stream, lines=True, extra=folders_of)  # a workbook a line, written as it goes
            commit(staging, out, (FEEDBACK_DIR, OVERVIEW, REPORT), own=_own_tree)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        round_.finish()
    return out


def output_problem(out: str | Path, inputs: Iterable[str | Path]) -> Finding | None:
    """Why `validate --out` cannot write `out` for a run over `inputs`, or None (nothing is written).

    An input inside `out` (`output-is-input`: the feedback tree that would replace it may hold it); a
    file, or a folder holding files the tool did not write (`output-not-empty`: the tool writes only into
    an empty folder or its own, marked one); a `feedback/` it did not write.
    """
    out = Path(out)
    return (input_problem(out, inputs)
            or folder_problem(out, own=_OWN_NAMES, suggestion=text("feedback.default_folder"), kind="validate")
            or _tree_problem(out / FEEDBACK_DIR))


def output_lock(out: str | Path) -> OutputLock:
    """The lock of a `validate --out` folder: one run at a time writes into it (`out` must exist)."""
    return OutputLock(Path(out) / LOCK, out)


def _inputs(batch: BatchResult) -> list[str]:
    return [w.report.file if w.report is not None else w.file for w in batch.workbooks]


def _own_tree(tree: Path) -> bool:
    """Whether a feedback tree is the tool's own: marked, or (written by a version without markers) every
    entry an office's folder holding its 反馈.txt."""
    if is_own(tree):
        return True
    try:
        entries = [tree / e for e in os.listdir(tree) if not e.startswith(".")]
    except OSError:
        return False
    return all(e.is_dir() and (e / TEXT).is_file() for e in entries)


def _tree_problem(tree: Path) -> Finding | None:
    if not tree.exists() or (tree.is_dir() and _own_tree(tree)):
        return None
    return Finding("output-not-empty", params={"folder": str(tree), "suggestion": str(tree.parent.parent /
                                                                                       text("feedback.default_folder"))})


def safe_name(name: str, fallback: str | None = None) -> str:
    """A file or folder name safe on Windows and Linux: no separators, `..`, control or reserved names, and
    no leading character that makes a spreadsheet formula (`=`, `+`, `-`, `@`)."""
    name = unicodedata.normalize("NFC", name)
    cleaned = "".join("_" if c in '<>:"/\\|?*' or unicodedata.category(c)[0] == "C" else c for c in name)
    cleaned = name_text(re.sub(r"_{2,}", "_", re.sub(r"\.{2,}", "_", cleaned)).strip(" ._"))  # no leading = + - @
    cleaned = cleaned[:60].strip(" ._")
    if not cleaned:
        cleaned = fallback or text("feedback.unnamed")
    if cleaned.split(".")[0].upper() in _RESERVED:
        cleaned = f"_{cleaned}"
    return cleaned


@dataclass(frozen=True)
class CopyNote:
    """What became of an office's annotated copy, for report.json (`annotation`) and the summaries."""

    outcome: AnnotationOutcome

    def to_dict(self) -> dict[str, Any]:
        made = self.outcome.ok
        return {"made": made, "reason": None if made else {lang: self.outcome.reason(lang) for lang in ("zh", "en")},
                "problem": self.outcome.problem}


@dataclass(frozen=True)
class _OfficeJob:
    """The workbooks written for one office in a worker: its annotated copy, its pre-filled template."""

    report: CleanReport
    findings: tuple[Finding, ...]
    copy: Path | None
    template: Path | None
    source_name: str
    suspects: tuple[Suspect, ...] = ()  # the cells the suggested fix names


@dataclass(frozen=True)
class _OfficeWritten:
    copy: AnnotationOutcome | None = None
    template: Written | None = None


def _write_office(job: _OfficeJob) -> _OfficeWritten:
    """In a worker: one office's workbooks; each that cannot be made is an outcome saying why."""
    template = None
    if job.template is not None:
        try:
            write_refill(refill_for(job.report), job.report, job.template, job.source_name)  # type: ignore[arg-type]
            template = Written()
        except Exception as exc:  # noqa: BLE001 - one office's template must never stop the run
            template = Written.failed(exc)
    copy = annotate(AnnotationJob(job.report, job.findings, job.copy, job.suspects)) if job.copy is not None else None
    return _OfficeWritten(copy, template)


def _write_feedback_tree(batch: BatchResult, tree: Path, out: Path, workers: int | None,
                         progress: Progress | None) -> list[str]:
    """Every office's folder in `tree` (a staging folder); the offices' names, in batch order."""
    tree.mkdir()
    used: set[str] = set()
    names: list[str] = []
    jobs: list[_OfficeJob] = []
    owners: list[int] = []
    for i, workbook in enumerate(batch.workbooks):
        names.append(output_name(workbook, used))
        folder = tree / names[-1]
        folder.mkdir()
        workbook.review.pop("annotation", None)
        workbook.review.pop("new_template", None)
        report = workbook.report
        if report is None:
            continue
        source = Path(workbook.file)
        copy = folder / copy_name(safe_name(source.stem), source) if workbook.findings else None
        template = folder / refill_name(workbook) if refill_for(report) is not None else None  # an old template
        if copy is not None or template is not None:
            jobs.append(_OfficeJob(report, tuple(workbook.findings), copy, template, source.name,
                                   _suspects(workbook)))
            owners.append(i)
    total, quick = len(batch.workbooks), len(batch.workbooks) - len(jobs)

    def done(count: int, _: int) -> None:
        if progress:
            progress(quick + count, total)

    def summarize(i: int, result: _OfficeWritten) -> None:
        workbook = batch.workbooks[i]
        if _disk_full(result):
            raise DisclosureError(disk_full_finding(out))
        if result.copy is not None:
            workbook.review["annotation"] = CopyNote(result.copy)
        if result.template is not None and not result.template.made:
            workbook.review["new_template"] = result.template
        try:
            _write_summaries(workbook, tree / names[i])
        except OSError:
            raise  # a full disk, a folder gone: the whole run stops (disk_full_as_finding)
        except Exception as exc:  # noqa: BLE001 - one office's summary must never stop the run
            workbook.review["feedback"] = Written.failed(exc)

    # The offices with nothing for a worker to write are summarised while the workers write the others'
    # workbooks: a share of them after each outcome, the rest at the end.
    alone = iter(sorted(set(range(total)) - set(owners)))
    share = -(-quick // len(jobs)) if jobs else 0
    written: list[tuple[int, _OfficeWritten]] = []
    for outcome in run_isolated(_write_office, jobs, workers=workers, timeout=WRITE_TIMEOUT_SECONDS,
                                memory_limit=WORKER_MEMORY_BYTES, on_done=done):
        job = jobs[outcome.index]
        if outcome.value is not None:
            result = outcome.value
        else:  # the worker died, ran out of memory or hung: neither workbook of this office is trusted
            failed = Written.from_outcome(outcome)
            problem = f"{outcome.failure}: {outcome.detail}"
            for path in (job.copy, job.template):
                if path is not None:
                    path.unlink(missing_ok=True)
                    clean_temporaries(path.parent)
            result = _OfficeWritten(
                AnnotationOutcome(job.report.file, None, kind="unexpected", problem=problem) if job.copy else None,
                failed if job.template else None)
        written.append((owners[outcome.index], result))
        for i in itertools.islice(alone, share):
            summarize(i, _OfficeWritten())
    for i in alone:
        summarize(i, _OfficeWritten())
    for i, result in written:
        summarize(i, result)
    if progress and not jobs:
        progress(total, total)
    write_marker(tree, "feedback")
    return names


def _disk_full(result: _OfficeWritten) -> bool:
    full = f"[Errno {errno.ENOSPC}]", f"[Errno {errno.EDQUOT}]"
    copy = result.copy
    return bool((result.template is not None and result.template.why == "disk_full")
                or (copy is not None and copy.problem and any(f in copy.problem for f in full)))


def _notes(workbook: WorkbookResult, lang: str) -> list[str]:
    """Why an output of this office is missing: its annotated copy, its pre-filled template, its 反馈."""
    notes = []
    copy = workbook.review.get("annotation")
    if isinstance(copy, CopyNote) and not copy.outcome.ok:
        notes.append(copy.outcome.reason(lang))
    for key, what in (("new_template", "template"), ("feedback", "summary")):
        written = workbook.review.get(key)
        if isinstance(written, Written) and not written.made:
            notes.append(written.finding(what).message(lang))
    return notes


def _copy_missing(workbook: WorkbookResult) -> bool:
    copy = workbook.review.get("annotation")
    return isinstance(copy, CopyNote) and not copy.outcome.ok


def refill_name(workbook: WorkbookResult) -> str:
    """`<原文件名>_新模板.xlsx`: the pre-filled current template of an office that used an old one."""
    return f"{safe_name(Path(workbook.file).stem)}{text('refill.suffix')}.xlsx"


def output_name(workbook: WorkbookResult, used: set[str]) -> str:
    """A safe, unique name for an office's outputs: <office>_<year>, else the file's name; `_2` on a clash."""
    report = workbook.report
    if report and report.office:
        base = safe_name(f"{report.office}_{report.year}" if report.year else report.office)
    else:
        base = safe_name(Path(workbook.file).stem)
    return unique_name(base, used)


def unique_name(base: str, used: set[str]) -> str:
    """`base`, or `base_2`, `base_3` … if a name equal to it up to case is in `used` (which it joins)."""
    name, n = base, 1
    while name.lower() in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name.lower())
    return name


def _write_summaries(workbook: WorkbookResult, folder: Path) -> None:
    # Written straight into the staging tree: the tree as a whole is swapped in atomically. Notepad on
    # Windows wants a BOM and CRLF line ends.
    # A character no encoding can hold (a lone surrogate) is replaced, so that the summary is still written.
    (folder / TEXT).write_bytes(feedback_text(workbook).replace("\n", "\r\n").encode("utf-8-sig", "replace"))
    (folder / PAGE).write_bytes(_html_page(workbook).encode("utf-8", "replace"))


def _groups(workbook: WorkbookResult, lang: str) -> list[tuple[str, list[Finding]]]:
    """Findings grouped by section heading, in the order of the report (file, cover, 二, 三, 四)."""
    file_group = text("feedback.file_group", lang)
    if workbook.report is None:
        return [(file_group, workbook.findings)] if workbook.findings else []
    fmt = workbook.report.format
    cover_group = text("template.cover_sheet", lang)
    order = [file_group, cover_group, *(s.heading for s in fmt.sections)]
    grouped: dict[str, list[Finding]] = {}
    for finding in workbook.findings:
        cell = fmt.cells.get(finding.cells[0].id) if finding.cells else None
        if cell is not None:
            group = fmt.section(cell.section).heading
        elif finding.category in ("cover", "format"):
            group = cover_group
        elif "section" in finding.params:
            group = finding.params["section"][lang]
        else:
            group = file_group
        grouped.setdefault(group, []).append(finding)
    return sorted(grouped.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))


def _header(workbook: WorkbookResult, lang: str) -> list[tuple[str, str]]:
    report = workbook.report
    missing = text("feedback.not_filled", lang)
    labels = _CURRENT.cover_labels
    return [(labels[_CURRENT.field("office").name], (report.office if report else None) or missing),
            (labels[_CURRENT.field("year").name], str(report.year) if report and report.year else missing),
            (text("template.format_label", lang), report.format.title if report else "—"),
            (text("feedback.file", lang), Path(workbook.file).name),
            (text("feedback.result", lang), text("feedback.result_value", lang, status=status_text(workbook.status, lang),
                                                 errors=workbook.errors, warnings=workbook.warnings)),
            *review_header(workbook, lang),  # round, changes since the last one, accepted warnings
            *((text("feedback.not_written", lang), note) for note in _notes(workbook, lang))]  # outputs not made


def _where(finding: Finding) -> str:
    return f"{finding.cells[0].sheet}!{finding.cells[0].ref}" if finding.cells else ""


def _interpreted(workbook: WorkbookResult, lang: str) -> list[str]:
    """What the cleaner interpreted in the tables ("3件", "1,234", "12500元"): one line per cell, or one
    line for the cells of a sheet read the same way as the same value (a table pasted from a web page:
    '0\u00a0' in 130 cells of the seed), their places as ranges."""
    cells = workbook.report.format.cells if workbook.report else {}
    alike: dict[tuple[str, str, str], list[Cleaning]] = {}
    for record in workbook.cleaning:
        if record.id in cells:
            value = number_text(record.value) if record.value is not None else text("annotate.cleaning.read_blank", lang)
            alike.setdefault((record.sheet, value, record.rule), []).append(record)
    lines = []
    for (sheet, value, rule), records in alike.items():
        how = cleaning_text(rule, lang)
        if len(records) == 1:
            lines.append(text("feedback.interpreted_item", lang, place=f"{sheet}!{records[0].ref}",
                              raw=records[0].raw, value=value, how=how))
            continue
        raws = [text("feedback.interpreted_raw", lang, raw=raw) for raw in dict.fromkeys(r.raw for r in records)]
        shown = text("catalog.enumeration", lang).join(raws[:_RAWS_SHOWN])
        if len(raws) > _RAWS_SHOWN:
            shown = text("feedback.interpreted_more", lang, raws=shown)
        lines.append(text("feedback.interpreted_group", lang, sheet=sheet, count=len(records), raws=shown,
                          cells=text("catalog.enumeration", lang).join(cell_blocks([r.ref for r in records])),
                          value=value, how=how))
    return lines


_RAWS_SHOWN = 3  # distinct texts quoted for cells read alike; more are "等"


def feedback_text(workbook: WorkbookResult, lang: str = "zh") -> str:
    """The plain-text summary for one office, ready to paste into a message."""
    lines = [text("feedback.field", lang, label=k, value=v) for k, v in _header(workbook, lang)]
    number = 0
    for group, findings in _groups(workbook, lang):
        lines += ["", text("feedback.group", lang, group=group)]
        for finding in findings:
            number += 1
            place = text("feedback.place", lang, place=_where(finding)) if finding.cells else ""
            lines.append(text("feedback.item", lang, number=number, severity=severity_word(finding, lang),
                              place=place, message=finding.message(lang)))
    suggestion = suggestion_words(workbook, lang)
    if suggestion:
        lines += ["", text("feedback.group", lang, group=text("feedback.suggestion_heading", lang)), suggestion]
    interpreted = _interpreted(workbook, lang)
    if interpreted:
        lines += ["", text("feedback.group", lang, group=text("feedback.interpreted_heading", lang)), *interpreted,
                  text("feedback.interpreted_advice", lang)]
    refill = _refill(workbook)
    if refill is not None:
        explain, places = _refill_lines(workbook, refill, lang)
        lines += ["", text("feedback.group", lang, group=text("refill.heading", lang)), explain, *places]
    lines += ["", text("feedback.next_label", lang) + _next_step(workbook, lang), ""]
    return "\n".join(lines)


def suggestion_words(workbook: WorkbookResult, lang: str = "zh") -> str:
    """The suggested fix in one plain sentence ("最可能填错的是 J8：把 44 改为 43…"), or "" without one."""
    if workbook.suggestion is None or workbook.report is None:
        return ""
    from .suggest import suggestion_text

    return suggestion_text(workbook.suggestion, workbook.report.where, lang)


def _suspects(workbook: WorkbookResult) -> tuple[Suspect, ...]:
    """The cells the suggested fix names, for the annotated copy (marked apart from the cells involved)."""
    suggestion, report = workbook.suggestion, workbook.report
    if suggestion is None or report is None or not suggestion.found:
        return ()
    note = suggestion_words(workbook)
    return tuple(Suspect(report.where[c.id], c.suggested if suggestion.unique else None, note)
                 for c in suggestion.changes if c.id in report.where)


def _refill(workbook: WorkbookResult) -> Refill | None:
    """The pre-filled template the office is sent (None when it needs none, or it could not be made)."""
    missing = isinstance(workbook.review.get("new_template"), Written)
    return refill_for(workbook.report) if workbook.report is not None and not missing else None


def _refill_lines(workbook: WorkbookResult, refill: Refill, lang: str) -> tuple[str, list[str]]:
    """What an office that used an old template must do, and each cell of the new one it must fill."""
    places = [text("refill.item", lang, place=f"{ref.sheet}!{ref.ref}", label=label) for ref, label in refill.places()]
    explain = text("refill.explain", lang, old=refill.source.title, new=refill.format.title, year=refill.year,
                   file=refill_name(workbook), n=len(places))
    return explain, places or [text("refill.nothing", lang)]


def _next_step(workbook: WorkbookResult, lang: str) -> str:
    """What the office does next: by status; refill the current template when it used an old one; and
    nothing at all when only this machine could not read the file (the county's problem)."""
    if any(f.code == "file-inaccessible" for f in workbook.findings):
        return text("feedback.next_step.inaccessible", lang)
    if _refill(workbook) is not None:
        return text("refill.next_step", lang, file=refill_name(workbook))
    if workbook.status == "errors" and _copy_missing(workbook):  # no marked copy to point to
        return text("feedback.next_step.errors_no_copy", lang)
    return text(f"feedback.next_step.{workbook.status}", lang)


def _html_page(workbook: WorkbookResult, lang: str = "zh") -> str:
    """The same summary as a self-contained HTML page (no external resources, system fonts only)."""
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _header(workbook, lang))
    body = [f"<table class='head'>{rows}</table>"]
    for group, findings in _groups(workbook, lang):
        items = "".join(
            f"<li class='{f.severity}'><span class='tag'>{e(severity_word(f, lang))}</span>"
            f"{'<code>' + e(_where(f)) + '</code> ' if f.cells else ''}{e(f.message(lang))}</li>" for f in findings)
        body.append(f"<h2>{e(group)}</h2><ol>{items}</ol>")
    suggestion = suggestion_words(workbook, lang)
    if suggestion:
        body.append(f"<h2>{e(text('feedback.suggestion_heading', lang))}</h2><p class='fix'>{e(suggestion)}</p>")
    interpreted = _interpreted(workbook, lang)
    if interpreted:
        items = "".join(f"<li>{e(line)}</li>" for line in interpreted)
        body.append(f"<h2>{e(text('feedback.interpreted_heading', lang))}</h2><ul class='read'>{items}</ul>"
                    f"<p>{e(text('feedback.interpreted_advice', lang))}</p>")
    refill = _refill(workbook)
    if refill is not None:
        explain, places = _refill_lines(workbook, refill, lang)
        items = "".join(f"<li>{e(line)}</li>" for line in places)
        body.append(f"<h2>{e(text('refill.heading', lang))}</h2><p>{e(explain)}</p><ul class='fill'>{items}</ul>")
    body.append(f"<p class='next'><b>{e(text('feedback.next_label', lang))}</b>{e(_next_step(workbook, lang))}</p>")
    title = e(text("feedback.page_title", lang, name=workbook.name))
    style = ("body{font-family:'Microsoft YaHei','PingFang SC','Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;"
             "max-width:960px;margin:2em auto;line-height:1.6;color:#222}table.head th{text-align:right;"
             "padding-right:1em;color:#555}h2{font-size:1.1em;border-bottom:1px solid #ccc}li{margin:.4em 0}"
             ".tag{display:inline-block;font-size:.8em;padding:0 .4em;margin-right:.5em;border-radius:3px}"
             ".error .tag{background:#ffc7ce;color:#9c0006}.warning .tag{background:#ffeb9c;color:#7f6000}"
             ".info .tag{background:#ddebf7;color:#1f4e79}"
             "code{background:#f2f2f2;padding:0 .3em}.next{margin-top:2em;padding:1em;background:#eef4fb}"
             "@media print{body{margin:0;max-width:none}}")
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (f"<!DOCTYPE html><html lang='{html_lang}'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body><h1>{title}</h1>{''.join(body)}</body></html>\n")


def _write_overview(workbooks: Sequence[WorkbookResult], path: Path) -> None:
    """校验汇总.xlsx: one row per workbook (failures first) and one row per finding, with filters; both
    print landscape on A4, one page wide, with the header row on every page."""
    ordered = sorted(workbooks, key=lambda w: (_STATUS_ORDER[w.status], _office(w), w.file))
    labels = _CURRENT.cover_labels
    office, year = labels[_CURRENT.field("office").name], labels[_CURRENT.field("year").name]

    def word(key: str) -> str:
        return text(f"feedback.overview.{key}")

    with atomic_output(path) as tmp:
        book = new_workbook(tmp, title=word("title"), kind="overview")
        bold = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True, "valign": "top"})
        wrap = book.add_format({"text_wrap": True, "valign": "top"})
        # Narrow columns (years, formats, statuses, counts) centred: a right-aligned count printed against
        # the next column's text reads as one word ("0三、收到…").
        top = book.add_format({"valign": "top", "align": "center"})
        red = book.add_format({"font_color": "#9C0006", "bg_color": "#FFC7CE", "valign": "top", "align": "center"})
        amber = book.add_format({"font_color": "#7F6000", "bg_color": "#FFEB9C", "valign": "top", "align": "center"})
        green = book.add_format({"font_color": "#006100", "bg_color": "#C6EFCE", "valign": "top", "align": "center"})
        look = {"unreadable": red, "errors": red, "warnings": amber, "ok": green}
        summary = book.add_worksheet(word("summary_sheet"))
        headers = [office, text("feedback.file"), year, text("template.format_label"), word("status"),
                   word("errors"), word("warnings"), word("first_error"), word("suggestion")]
        rows = [[_office(w), Path(w.file).name, w.report.year if w.report else None,
                 w.report.format_id if w.report else None, status_text(w.status), w.errors, w.warnings,
                 w.first_error, suggestion_words(w)] for w in ordered]
        widths = [24, 30, 7, 8, 9, 6, 6, 60, 40]
        if any(w.previous is not None for w in ordered):  # with last year's reports (crossyear.py)
            from .crossyear import overview_text

            headers.append(text("crossyear.overview.header"))
            for row, w in zip(rows, ordered, strict=True):
                row.append(overview_text(w.previous, w.findings) if w.previous is not None else "")
            widths.append(30)
        _sheet(summary, headers, rows, bold, wrap, top, tuple(widths))
        for r, w in enumerate(ordered, 1):
            put(summary, r, 4, status_text(w.status), look[w.status])
        add_round_columns(book, summary, ordered, len(headers), bold, top)  # round and changes (rounds.py)
        _add_notes_column(summary, ordered, bold, wrap)  # why an office's copy or template is missing
        details = book.add_worksheet(word("details_sheet"))
        headers = [office, text("feedback.file"), year, word("severity"), word("sheet"), word("cell"),
                   word("message"), word("expected"), word("actual"), word("code")]
        rows = [[_office(w), Path(w.file).name, w.report.year if w.report else None,
                 severity_word(f), f.cells[0].sheet if f.cells else "",
                 f.cells[0].ref if f.cells else "", f.message("zh"), _number(f.expected), _number(f.actual),
                 " ".join(filter(None, (f.code, f.rule)))] for w in ordered for f in w.findings]
        _sheet(details, headers, rows, bold, wrap, top, (22, 26, 6, 7, 14, 7, 70, 7, 7, 18))
        # the reviewer's 是否认可 / 理由 and what `accept --from` reads back (accept.py)
        add_overview_columns(book, details, [(w, f) for w in ordered for f in w.findings], len(headers), bold)
        book.close()


def _number(value: Any) -> Any:
    """Expected and actual values are written as numbers (blank when there is none)."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else number_text(value) or None


def _add_notes_column(sheet: Any, workbooks: Sequence[WorkbookResult], head: Any, wrap: Any) -> None:
    """The last column of 汇总: the outputs not written for an office and why (blank when all were)."""
    col = sheet.dim_colmax + 1  # after every column written so far (xlsxwriter's extent of the sheet)
    put(sheet, 0, col, text("feedback.overview.not_written"), head)
    for row, workbook in enumerate(workbooks, 1):
        notes = _notes(workbook, "zh")
        if notes:
            put(sheet, row, col, _cell(text("feedback.overview.separator").join(notes)), wrap)
    sheet.set_column(col, col, 30, wrap)
    sheet.autofilter(0, 0, max(len(workbooks), 1), col)


def _cell(value: Any) -> Any:
    """A value of the overview as a cell can hold it: text beyond a cell's limit is shortened (the whole
    of it stays in report.json), so that one office's text never stops the county's overview."""
    if isinstance(value, str) and len(value) > CELL_TEXT_MAX:
        return value[:CELL_TEXT_MAX - 1] + "\u2026"
    return value


def _office(workbook: WorkbookResult) -> str:
    return (workbook.report.office if workbook.report else None) or ""


def _sheet(sheet, headers, rows, bold, wrap, top, widths) -> None:  # type: ignore[no-untyped-def]
    for col, (header, width) in enumerate(zip(headers, widths, strict=True)):
        put(sheet, 0, col, header, bold)
        sheet.set_column(col, col, width, wrap if width >= 20 else top)
    for r, row in enumerate(rows, 1):
        for col, value in enumerate(row):
            put(sheet, r, col, _cell(value))
        lines = max((text_lines(v, w) for v, w in zip(row, widths, strict=False) if isinstance(v, str) and w >= 20),
                    default=1)
        if lines > 1:  # neither Excel nor LibreOffice grows a row for wrapped text it did not write itself
            sheet.set_row(r, LINE_HEIGHT * lines + 2)
    sheet.autofilter(0, 0, max(len(rows), 1), len(headers) - 1)
    sheet.freeze_panes(1, 1)
    sheet.set_paper(9)
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(0)
    sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    sheet.set_footer(f"&C{text('feedback.overview.footer')}")
