"""What the county sends back: per office a folder with its annotated workbook and a plain summary,
and one overview workbook for the county, all written under the output folder.

Every file is written to a temporary name and moved into place; the whole `feedback/` tree is built
beside the old one and swapped in, so an interrupted run never leaves a half-written output and a
rerun replaces the earlier outputs cleanly. Input files are only ever read.
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

from ._xlsx import atomic_output, new_workbook, put
from .annotate import AnnotationJob, AnnotationOutcome, annotate, copy_name
from .catalog import Finding, number_text, status_text
from .formats import current_format, get_format
from .pipeline import BatchResult, WorkbookResult

__all__ = ["FEEDBACK_DIR", "OVERVIEW", "REPORT", "feedback_text", "output_name", "safe_name", "write_outputs"]

REPORT = "report.json"
OVERVIEW = "校验汇总.xlsx"
FEEDBACK_DIR = "feedback"
TEXT, PAGE = "反馈.txt", "反馈.html"
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_STATUS_ORDER = {"unreadable": 0, "errors": 1, "warnings": 2, "ok": 3}
_WORDS = current_format().words
_LABEL = current_format().cover_labels
FILE_GROUP, COVER_GROUP = "文件", _WORDS.cover_sheet
NEXT_STEP = {
    "ok": "校验通过，无需修改。",
    "warnings": "请逐条核实上面的提示：确有错误的请改正；核实无误的可以不改。处理后即可报送。",
    "errors": "请按上面的说明逐条改正（直接在原来的工作簿中修改，不要另建表格或改动表格标题），改正后重新报送。"
              "随附的“校验标注”工作簿中，出错的单元格已标红并附批注，第一个工作表“校验结果”可直接点击跳转。",
    "unreadable": "文件无法读取，请用 Excel、WPS 或 LibreOffice 打开确认后另存为 .xlsx，最好使用标准模板重新填写后报送。",
}


def write_outputs(batch: BatchResult, out: str | Path, *, workers: int | None = None) -> Path:
    """Write report.json, feedback/<office>_<year>/… and 校验汇总.xlsx under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / REPORT) as tmp:
        tmp.write_text(json.dumps(batch.to_dict(), ensure_ascii=False, indent=1), "utf-8")
    _write_feedback_tree(batch, out, workers)
    _write_overview(batch.workbooks, out / OVERVIEW)
    return out


def safe_name(text: str, fallback: str = "未命名") -> str:
    """A file or folder name safe on Windows and Linux: no separators, `..`, control or reserved names."""
    text = unicodedata.normalize("NFC", text)
    cleaned = "".join("_" if c in '<>:"/\\|?*' or unicodedata.category(c)[0] == "C" else c for c in text)
    cleaned = re.sub(r"_{2,}", "_", re.sub(r"\.{2,}", "_", cleaned)).strip(" ._")[:60].strip(" ._")
    if not cleaned:
        cleaned = fallback
    if cleaned.split(".")[0].upper() in _RESERVED:
        cleaned = f"_{cleaned}"
    return cleaned


def _write_feedback_tree(batch: BatchResult, out: Path, workers: int | None) -> list[AnnotationOutcome]:
    for stale in out.glob(f".{FEEDBACK_DIR}.*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    staging = out / f".{FEEDBACK_DIR}.new-{os.getpid()}"
    staging.mkdir()
    used: set[str] = set()
    jobs = []
    for workbook in batch.workbooks:
        folder = staging / output_name(workbook, used)
        folder.mkdir()
        _write_summaries(workbook, folder)
        if workbook.findings and workbook.report is not None:
            source = Path(workbook.file)
            jobs.append(AnnotationJob(workbook.report, tuple(workbook.findings),
                                      folder / copy_name(safe_name(source.stem), source)))
    outcomes = _annotate_all(jobs, workers)
    final = out / FEEDBACK_DIR
    if final.exists():
        trash = out / f".{FEEDBACK_DIR}.old-{os.getpid()}"
        final.rename(trash)
        staging.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(final)
    return outcomes


def output_name(workbook: WorkbookResult, used: set[str]) -> str:
    """A safe, unique name for an office's outputs: <office>_<year>, else the file's name; `_2` on a clash."""
    report = workbook.report
    if report and report.office:
        base = safe_name(f"{report.office}_{report.year}" if report.year else report.office)
    else:
        base = safe_name(Path(workbook.file).stem)
    name, n = base, 1
    while name.lower() in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name.lower())
    return name


def _write_summaries(workbook: WorkbookResult, folder: Path) -> None:
    # Written straight into the staging tree: the tree as a whole is swapped in atomically.
    (folder / TEXT).write_text(feedback_text(workbook), "utf-8")
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


def _groups(workbook: WorkbookResult) -> list[tuple[str, list[Finding]]]:
    """Findings grouped by section heading, in the order of the report (file, cover, 二, 三, 四)."""
    if workbook.report is None:
        return [(FILE_GROUP, workbook.findings)] if workbook.findings else []
    fmt = get_format(workbook.report.format_id)
    order = [FILE_GROUP, COVER_GROUP, *(s.heading for s in fmt.sections)]
    grouped: dict[str, list[Finding]] = {}
    for finding in workbook.findings:
        cell = fmt.cells.get(finding.cells[0].id) if finding.cells else None
        if cell is not None:
            group = fmt.section(cell.section).heading
        elif finding.category in ("cover", "format"):
            group = COVER_GROUP
        elif "section" in finding.params:
            group = finding.params["section"]["zh"]
        else:
            group = FILE_GROUP
        grouped.setdefault(group, []).append(finding)
    return sorted(grouped.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))


def _header(workbook: WorkbookResult) -> list[tuple[str, str]]:
    report = workbook.report
    fmt = get_format(report.format_id) if report else None
    return [(_LABEL["meta_office"], (report.office if report else None) or "（未填写）"),
            (_LABEL["meta_year"], str(report.year) if report and report.year else "（未填写）"),
            (_WORDS.format_label, fmt.title if fmt else "—"),
            ("文件", Path(workbook.file).name),
            ("校验结果", f"{status_text(workbook.status)}（错误 {workbook.errors} 个，警告 {workbook.warnings} 个）")]


def _where(finding: Finding) -> str:
    return f"{finding.cells[0].sheet}!{finding.cells[0].ref}" if finding.cells else ""


def feedback_text(workbook: WorkbookResult) -> str:
    """The plain-text summary for one office, ready to paste into a message."""
    lines = [f"{k}：{v}" for k, v in _header(workbook)]
    number = 0
    for group, findings in _groups(workbook):
        lines += ["", f"【{group}】"]
        for finding in findings:
            number += 1
            place = f"（{_where(finding)}）" if finding.cells else ""
            lines.append(f"{number}. [{'错误' if finding.severity == 'error' else '警告'}]{place} {finding.message('zh')}")
    lines += ["", f"下一步：{NEXT_STEP[workbook.status]}", ""]
    return "\n".join(lines)


def _html_page(workbook: WorkbookResult) -> str:
    """The same summary as a self-contained HTML page (no external resources)."""
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _header(workbook))
    body = [f"<table class='head'>{rows}</table>"]
    for group, findings in _groups(workbook):
        items = "".join(
            f"<li class='{f.severity}'><span class='tag'>{'错误' if f.severity == 'error' else '警告'}</span>"
            f"{'<code>' + e(_where(f)) + '</code> ' if f.cells else ''}{e(f.message('zh'))}</li>" for f in findings)
        body.append(f"<h2>{e(group)}</h2><ol>{items}</ol>")
    body.append(f"<p class='next'><b>下一步：</b>{e(NEXT_STEP[workbook.status])}</p>")
    title = e(f"{workbook.name} 校验反馈")
    style = ("body{font-family:'Microsoft YaHei','PingFang SC','Noto Sans CJK SC',sans-serif;max-width:960px;"
             "margin:2em auto;line-height:1.6;color:#222}table.head th{text-align:right;padding-right:1em;"
             "color:#555}h2{font-size:1.1em;border-bottom:1px solid #ccc}li{margin:.4em 0}"
             ".tag{display:inline-block;font-size:.8em;padding:0 .4em;margin-right:.5em;border-radius:3px}"
             ".error .tag{background:#ffc7ce;color:#9c0006}.warning .tag{background:#ffeb9c;color:#7f6000}"
             "code{background:#f2f2f2;padding:0 .3em}.next{margin-top:2em;padding:1em;background:#eef4fb}")
    return (f"<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body><h1>{title}</h1>{''.join(body)}</body></html>\n")


def _write_overview(workbooks: Sequence[WorkbookResult], path: Path) -> None:
    """校验汇总.xlsx: one row per workbook (failures first) and one row per finding, with filters."""
    ordered = sorted(workbooks, key=lambda w: (_STATUS_ORDER[w.status], _office(w), w.file))
    with atomic_output(path) as tmp:
        book = new_workbook(tmp, title="校验汇总")
        bold = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1, "text_wrap": True})
        wrap = book.add_format({"text_wrap": True, "valign": "top"})
        red = book.add_format({"font_color": "#9C0006", "bg_color": "#FFC7CE"})
        amber = book.add_format({"font_color": "#7F6000", "bg_color": "#FFEB9C"})
        green = book.add_format({"font_color": "#006100", "bg_color": "#C6EFCE"})
        look = {"unreadable": red, "errors": red, "warnings": amber, "ok": green}
        summary = book.add_worksheet("汇总")
        headers = [_LABEL["meta_office"], "文件", _LABEL["meta_year"], _WORDS.format_label, "状态", "错误", "警告",
                   "第一个错误"]
        rows = [[_office(w), Path(w.file).name, w.report.year if w.report else None,
                 w.report.format_id if w.report else None, status_text(w.status), w.errors, w.warnings,
                 w.first_error] for w in ordered]
        _sheet(summary, headers, rows, bold, wrap, (24, 32, 7, 9, 10, 7, 7, 90))
        for r, w in enumerate(ordered, 1):
            put(summary, r, 4, status_text(w.status), look[w.status])
        details = book.add_worksheet("全部问题")
        headers = [_LABEL["meta_office"], "文件", _LABEL["meta_year"], "严重程度", "代码", "规则", "工作表", "单元格",
                   "问题说明", "应为", "实为"]
        rows = [[_office(w), Path(w.file).name, w.report.year if w.report else None,
                 "错误" if f.severity == "error" else "警告", f.code, f.rule or "",
                 f.cells[0].sheet if f.cells else "", f.cells[0].ref if f.cells else "", f.message("zh"),
                 number_text(f.expected), number_text(f.actual)] for w in ordered for f in w.findings]
        _sheet(details, headers, rows, bold, wrap, (24, 30, 7, 9, 20, 18, 16, 8, 90, 8, 8))
        book.close()


def _office(workbook: WorkbookResult) -> str:
    return (workbook.report.office if workbook.report else None) or ""


def _sheet(sheet, headers, rows, bold, wrap, widths) -> None:  # type: ignore[no-untyped-def]
    for col, (header, width) in enumerate(zip(headers, widths, strict=True)):
        put(sheet, 0, col, header, bold)
        sheet.set_column(col, col, width, wrap if width >= 30 else None)
    for r, row in enumerate(rows, 1):
        for col, value in enumerate(row):
            put(sheet, r, col, value)
    sheet.autofilter(0, 0, max(len(rows), 1), len(headers) - 1)
    sheet.freeze_panes(1, 0)
