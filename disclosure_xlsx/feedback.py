"""What the county sends back: per office a folder with its annotated workbook and a plain summary,
and one overview workbook for the county, all written under the output folder.

Every file is written to a temporary name and moved into place; the whole `feedback/` tree is built
beside the old one and swapped in, so an interrupted run never leaves a half-written output and a
rerun replaces the earlier outputs cleanly. Input files are only ever read. What an office reads names
cells by sheet and address and rules in plain words; codes and rule ids stay in report.json and in one
county-side column of the overview.
"""

from __future__ import annotations

import html
import json
import multiprocessing
import os
import re
import shutil
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ._xlsx import atomic_output, new_workbook, put
from .accept import add_overview_columns, severity_word
from .annotate import AnnotationJob, AnnotationOutcome, Suspect, annotate, copy_name
from .catalog import Finding, cleaning_text, number_text, severity_text, status_text, text
from .formats import current_format
from .layout import LINE_HEIGHT, text_lines
from .marks import write_marker
from .pipeline import BatchResult, Progress, WorkbookResult
from .rounds import add_round_columns, begin_round, review_header
from .refill import Refill, refill_for, write_refill

__all__ = ["FEEDBACK_DIR", "OVERVIEW", "REPORT", "feedback_text", "output_name", "safe_name", "unique_name",
           "write_outputs"]

REPORT = text("feedback.report_file")
OVERVIEW = text("feedback.overview_file")
FEEDBACK_DIR = text("feedback.feedback_dir")
TEXT, PAGE = text("feedback.text_file"), text("feedback.page_file")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_STATUS_ORDER = {"unreadable": 0, "errors": 1, "warnings": 2, "ok": 3}
_CURRENT = current_format()


def write_outputs(batch: BatchResult, out: str | Path, *, workers: int | None = None,
                  progress: Progress | None = None) -> Path:
    """Write report.json, feedback/<office>_<year>/… and 校验汇总.xlsx under `out`.

    report.json is written last, once the folders it names (`feedback_dir` of each workbook) exist;
    `progress(done, total)` is called as the offices' folders are written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "validate")  # a later search of a folder above leaves these outputs out
    round_ = begin_round(batch, out)  # the round of resubmission, compared with the previous one (rounds.py)
    folders, outcomes = _write_feedback_tree(batch, out, workers, progress)
    _write_overview(batch.workbooks, out / OVERVIEW)
    report = batch.to_dict()
    for entry, folder in zip(report["workbooks"], folders, strict=True):
        entry["feedback_dir"] = f"{FEEDBACK_DIR}/{folder}"  # relative to `out`, "/" on every system
    with atomic_output(out / REPORT) as tmp:
        tmp.write_text(json.dumps(report, ensure_ascii=False, indent=1), "utf-8")
    round_.finish()
    return out


def safe_name(name: str, fallback: str | None = None) -> str:
    """A file or folder name safe on Windows and Linux: no separators, `..`, control or reserved names."""
    name = unicodedata.normalize("NFC", name)
    cleaned = "".join("_" if c in '<>:"/\\|?*' or unicodedata.category(c)[0] == "C" else c for c in name)
    cleaned = re.sub(r"_{2,}", "_", re.sub(r"\.{2,}", "_", cleaned)).strip(" ._")[:60].strip(" ._")
    if not cleaned:
        cleaned = fallback or text("feedback.unnamed")
    if cleaned.split(".")[0].upper() in _RESERVED:
        cleaned = f"_{cleaned}"
    return cleaned


def _write_feedback_tree(batch: BatchResult, out: Path, workers: int | None, progress: Progress | None
                         ) -> tuple[list[str], list[AnnotationOutcome]]:
    for stale in out.glob(f".{FEEDBACK_DIR}.*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    staging = out / f".{FEEDBACK_DIR}.new-{os.getpid()}"
    staging.mkdir()
    used: set[str] = set()
    jobs = []
    names = []
    total = len(batch.workbooks)
    for done, workbook in enumerate(batch.workbooks, 1):
        names.append(output_name(workbook, used))
        folder = staging / names[-1]
        folder.mkdir()
        _write_summaries(workbook, folder)
        refill = refill_for(workbook.report) if workbook.report is not None else None
        if refill is not None:  # an old template: the current one, pre-filled (~40 ms, only for such offices)
            write_refill(refill, workbook.report, folder / refill_name(workbook),  # type: ignore[arg-type]
                         Path(workbook.file).name)
        if progress and not workbook.findings:
            progress(done, total)
        if workbook.findings and workbook.report is not None:
            source = Path(workbook.file)
            jobs.append(AnnotationJob(workbook.report, tuple(workbook.findings),
                                      folder / copy_name(safe_name(source.stem), source), _suspects(workbook)))
    outcomes = _annotate_all(jobs, workers)
    write_marker(staging, "feedback")
    if progress:
        progress(total, total)
    final = out / FEEDBACK_DIR
    if final.exists():
        trash = out / f".{FEEDBACK_DIR}.old-{os.getpid()}"
        final.rename(trash)
        staging.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(final)
    return names, outcomes


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
    (folder / TEXT).write_bytes(feedback_text(workbook).replace("\n", "\r\n").encode("utf-8-sig"))
    (folder / PAGE).write_text(_html_page(workbook), "utf-8")


def _annotate_all(jobs: list[AnnotationJob], workers: int | None) -> list[AnnotationOutcome]:
    """The annotated copies (a few ms each), in a process pool when there are several; one outcome per
    job, in order (a copy that cannot be made is an outcome saying why, never an exception)."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jobs) < 2 * workers:
        return [annotate(job) for job in jobs]
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(annotate, jobs, chunksize=max(1, len(jobs) // (workers * 4))))


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
            *review_header(workbook, lang)]  # round, changes since the last one, accepted warnings


def _where(finding: Finding) -> str:
    return f"{finding.cells[0].sheet}!{finding.cells[0].ref}" if finding.cells else ""


def _interpreted(workbook: WorkbookResult, lang: str) -> list[str]:
    """What the cleaner interpreted in the tables ("3件", "1,234", "12500元"), one line per cell."""
    cells = workbook.report.format.cells if workbook.report else {}
    return [text("feedback.interpreted_item", lang, place=f"{c.sheet}!{c.ref}", raw=c.raw,
                 value=number_text(c.value), how=cleaning_text(c.rule, lang))
            for c in workbook.cleaning if c.id in cells]


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
    return refill_for(workbook.report) if workbook.report is not None else None


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
        top = book.add_format({"valign": "top"})
        red = book.add_format({"font_color": "#9C0006", "bg_color": "#FFC7CE", "valign": "top"})
        amber = book.add_format({"font_color": "#7F6000", "bg_color": "#FFEB9C", "valign": "top"})
        green = book.add_format({"font_color": "#006100", "bg_color": "#C6EFCE", "valign": "top"})
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
        add_round_columns(book, summary, ordered, len(headers), bold)  # round and changes (rounds.py)
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


def _office(workbook: WorkbookResult) -> str:
    return (workbook.report.office if workbook.report else None) or ""


def _sheet(sheet, headers, rows, bold, wrap, top, widths) -> None:  # type: ignore[no-untyped-def]
    for col, (header, width) in enumerate(zip(headers, widths, strict=True)):
        put(sheet, 0, col, header, bold)
        sheet.set_column(col, col, width, wrap if width >= 20 else top)
    for r, row in enumerate(rows, 1):
        for col, value in enumerate(row):
            put(sheet, r, col, value)
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
