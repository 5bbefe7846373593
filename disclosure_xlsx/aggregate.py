"""Add up the offices' workbooks into one report of the same format, which can be added up again.

Only workbooks without errors are added (unless asked otherwise); cells are summed one by one (every
printed cell, totals included: each identity is linear, so the sum of balanced reports is balanced);
blanks count as 0 and are listed. The total is written as a standard template workbook, so it
validates like any office's workbook and can be the input of a higher-level roll-up (township →
county → city); it is validated again after writing.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlsxwriter.utility import xl_col_to_name

from ._xlsx import atomic_output, new_workbook, put
from .formats import Format, get_format
from .pipeline import BatchResult, Progress, WorkbookResult, duplicate_groups, validate_paths
from .template import fill_workbook, mark_cover

__all__ = ["Refused", "RollUp", "RosterEntry", "aggregate_paths", "provenance", "read_roster", "roll_up",
           "write_total"]


class Refused(Exception):
    """The inputs cannot be added up (mixed formats, one office twice, nothing valid); says why."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


@dataclass(frozen=True, slots=True)
class RosterEntry:
    office: str
    credit_code: str | None = None
    parent: str | None = None


@dataclass
class RollUp:
    """What a roll-up added, left out and found."""

    format_id: str
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

    @property
    def invalid_included(self) -> list[WorkbookResult]:
        return [w for w in self.included if w.status == "errors"]


def aggregate_paths(paths: Iterable[str | Path], output: str | Path, *, office: str, year: int,
                    roster: str | Path | None = None, include_invalid: bool = False, workers: int | None = None,
                    progress: Progress | None = None, previous: Iterable[str | Path] | None = None,
                    aliases: str | Path | None = None) -> RollUp:
    """Validate every workbook under `paths`, add up the valid ones and write the total to `output`.

    Raises:
        Refused: the workbooks cannot be added up; nothing is written.
    """
    batch = validate_paths(paths, workers=workers, progress=progress, exclude=[output], previous=previous,
                           aliases=aliases)  # cross-year findings are warnings: they never leave an office out
    result = roll_up(batch, office=office, year=year, include_invalid=include_invalid,
                     roster=read_roster(roster) if roster else None)
    write_total(result, output)
    (result.check,) = validate_paths([output], workers=1).workbooks
    return result


def roll_up(batch: BatchResult, *, office: str, year: int, include_invalid: bool = False,
            roster: Sequence[RosterEntry] | None = None) -> RollUp:
    """Choose the workbooks to add, check they can be added together, and sum them cell by cell."""
    from .validate import report_frame

    allowed = ("ok", "warnings", "errors") if include_invalid else ("ok", "warnings")
    included = [w for w in batch.workbooks if w.status in allowed]
    left_out = [w for w in batch.workbooks if w.status not in allowed]
    if not included:
        raise Refused("没有可以汇总的工作簿：所有工作簿都有错误或无法读取。", "No workbook can be added: all have errors.")
    _one_format(included)
    _no_duplicates(included)
    fmt = get_format(included[0].report.format_id)  # type: ignore[union-attr]
    frame = report_frame([w.report for w in included], fmt)  # type: ignore[misc]
    blanks = [(included[i], cid) for cid in fmt.cells for i in frame.index[frame[cid].isna()]]
    sums = frame.fillna(0).sum()
    totals = {cid: (int(sums[cid]) if fmt.cells[cid].type.integer else round(float(sums[cid]), 6))
              for cid in fmt.cells}
    result = RollUp(fmt.id, office, year, included, left_out, totals, blanks,
                    other_years=[w for w in included if w.report and w.report.year != year])
    if roster is not None:
        result.missing, result.unexpected = _compare_roster(roster, [*included, *left_out])
    return result


def _one_format(workbooks: Sequence[WorkbookResult]) -> None:
    by_format: dict[str, list[str]] = defaultdict(list)
    for w in workbooks:
        by_format[w.report.format_id].append(Path(w.file).name)  # type: ignore[union-attr]
    if len(by_format) > 1:
        lines = "；".join(f"{get_format(f).title}：{'、'.join(files)}" for f, files in sorted(by_format.items()))
        lines_en = "; ".join(f"{f} format: {', '.join(files)}" for f, files in sorted(by_format.items()))
        raise Refused(f"不同格式的报表不能相加。{lines}。请统一为同一格式（可用 convert --format-to）后再汇总。",
                      f"Workbooks of different formats cannot be added. {lines_en}.")


def _no_duplicates(workbooks: Sequence[WorkbookResult]) -> None:
    for group in duplicate_groups(workbooks):
        report = group[0].report
        files = "、".join(Path(w.file).name for w in group)
        raise Refused(f"“{report.office}”{report.year} 年度的报表交了不止一份（{files}），不能重复相加；请只保留一份。",  # type: ignore[union-attr]
                      f"“{report.office}” {report.year} was submitted more than once ({files}); keep one.")  # type: ignore[union-attr]


def read_roster(path: str | Path) -> list[RosterEntry]:
    """The offices expected to submit: a CSV in UTF-8 (BOM or not) headed by the cover labels of name and code."""
    text = Path(path).read_text("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    office_label, code_label, parent_label = _roster_headers()
    if not rows or office_label not in rows[0]:
        raise Refused(f"名单文件“{Path(path).name}”的第一行必须包含“{office_label}”。",
                      f"The roster “{Path(path).name}” needs a header row with “{office_label}”.")
    return [RosterEntry(r[office_label].strip(), (r.get(code_label) or "").strip() or None,
                        (r.get(parent_label) or "").strip() or None) for r in rows if (r.get(office_label) or "").strip()]


def _roster_headers() -> tuple[str, str, str]:
    from .formats import current_format

    labels = current_format().cover_labels
    return labels["meta_office"], labels["meta_credit_code"], "上级单位"


def _compare_roster(roster: Sequence[RosterEntry], submitted: Sequence[WorkbookResult]
                    ) -> tuple[list[RosterEntry], list[WorkbookResult]]:
    """Who is on the roster but sent nothing, and who sent a workbook but is not on the roster."""
    def matches(entry: RosterEntry, w: WorkbookResult) -> bool:
        r = w.report
        if r is None:
            return False
        if entry.credit_code and r.credit_code:
            return entry.credit_code == r.credit_code
        return entry.office == (r.office or "").strip()

    missing = [e for e in roster if not any(matches(e, w) for w in submitted)]
    unexpected = [w for w in submitted if w.report and not any(matches(e, w) for e in roster)]
    return missing, unexpected


# ------------------------------------------------------------------------------------------------
# The total workbook


def write_total(result: RollUp, path: str | Path) -> Path:
    """The standard template filled with the sums and the roll-up's own cover, plus 汇总明细 and 各单位对比."""
    fmt = get_format(result.format_id)
    with atomic_output(path) as tmp:
        book = new_workbook(tmp, title=fmt.words.title)
        fill_workbook(book, fmt.id, {**result.totals, "meta_office": result.office, "meta_year": result.year})
        if result.invalid_included:
            names = "、".join(w.name for w in result.invalid_included)
            mark_cover(book, fmt.id, f"注意：本汇总包含{len(result.invalid_included)}个{fmt.words.failed_mark}的单位：{names}。")
        _detail_sheet(book, fmt, result)
        _compare_sheet(book, fmt, result)
        book.close()
    return Path(path)


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
    put(sheet, 0, 2, "文件", head)
    put(sheet, 1, 0, "（单元格位置）", head)
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
    for title, lines in _lists(fmt, result):
        put(sheet, row, 0, title, bold)
        for line in lines or ["（无）"]:
            row += 1
            put(sheet, row, 0, line)
        row += 2


def _lists(fmt: Format, result: RollUp) -> list[tuple[str, list[str]]]:
    """The roll-up's provenance notes, as (title, lines); also printed by the command."""
    out = [
        (f"未汇总的工作簿（有错误或无法读取）：{len(result.left_out)} 个",
         [f"{w.name}（{Path(w.file).name}）：{w.first_error}" for w in result.left_out]),
        (f"按 0 计入的空白单元格：{len(result.blanks)} 个",
         [f"{w.name}：{w.report.where[cid].sheet}!{w.report.where[cid].ref}（{fmt.cells[cid].label}）"  # type: ignore[union-attr]
          if w.report and cid in w.report.where else f"{w.name}：{cid}" for w, cid in result.blanks]),
    ]
    if result.invalid_included:
        out.insert(0, (f"包含的{fmt.words.failed_mark}的单位：{len(result.invalid_included)} 个",
                       [f"{w.name}：{w.first_error}" for w in result.invalid_included]))
    if result.other_years:
        out.append((f"年度与汇总年度（{result.year}）不一致的工作簿：{len(result.other_years)} 个",
                    [f"{w.name}：{w.report.year if w.report else ''}" for w in result.other_years]))
    if result.missing or result.unexpected:
        out.append((f"名单中未报送的单位：{len(result.missing)} 个", [e.office for e in result.missing]))
        out.append((f"报送了但不在名单中的单位：{len(result.unexpected)} 个",
                    [f"{w.name}（{Path(w.file).name}）" for w in result.unexpected]))
    return out


def provenance(result: RollUp) -> list[tuple[str, list[str]]]:
    """The lists of the 汇总明细 sheet, for printing."""
    return _lists(get_format(result.format_id), result)


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
    charted = [(col, f) for col, f in enumerate(fmt.key_figures, 1) if f.chart]
    for col, figure in charted:
        chart = book.add_chart({"type": "bar"})
        offices = len(rows) - 1
        chart.add_series({"name": figure.label, "categories": [sheet.name, 1, 0, offices, 0],
                          "values": [sheet.name, 1, col, offices, col], "data_labels": {"value": True}})
        chart.set_title({"name": f"各单位{figure.label}", "name_font": {"name": "宋体"}})
        chart.set_legend({"none": True})
        chart.set_y_axis({"reverse": True, "num_font": {"name": "宋体"}})
        chart.set_size({"width": 720, "height": max(300, 24 * offices + 80)})
        sheet.insert_chart(len(rows) + 2, 0, chart)
