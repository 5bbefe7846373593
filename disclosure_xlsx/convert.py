"""From each checked workbook: a cleaned standard workbook with the report sheet in the official layout,
a cleaning log and the data in long form; and one long-form CSV for a whole batch.

A workbook is written in its own format, or mapped onto another (`format_to`) through the cell ids:
ids that mean the same in both formats (ruling 1) carry their value; a section maps only if every one
of its cells has a counterpart; a cell defined as a sum in one format (spec §6.2, s3.other) is summed,
or split when the sum is 0 (counts are never negative); every target cell left without a source is
blank and listed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._xlsx import atomic_output, new_workbook, put
from .catalog import cleaning_text, number_text, phrase, text, text_list
from .clean import CleanReport
from .feedback import output_name
from .formats import Format, current_format, get_format
from .layout import layout_for
from .pipeline import BatchResult, Progress, WorkbookResult, validate_paths
from .template import add_report_sheet, fill_workbook, mark_cover

__all__ = ["DATA_CSV", "Converted", "MappingNote", "convert_paths", "data_rows", "map_values"]

DATA_CSV = text("convert.data_csv")
UNREADABLE = ("value-unparseable", "number-not-whole", "number-too-large")


@dataclass(frozen=True, slots=True)
class MappingNote:
    """A target cell that a format mapping could not fill from the source, and why (in both languages)."""

    id: str
    message: dict[str, str]


@dataclass
class Converted:
    """One written cleaned workbook, or why none was written."""

    source: WorkbookResult
    output: Path | None
    format_id: str | None
    notes: list[MappingNote] = field(default_factory=list)


def convert_paths(paths: Iterable[str | Path], out: str | Path, *, format_to: str | None = None,
                  workers: int | None = None, progress: Progress | None = None,
                  previous: Iterable[str | Path] | None = None,
                  aliases: str | Path | None = None) -> tuple[BatchResult, list[Converted]]:
    """Validate every workbook under `paths`, then write its cleaned workbook and DATA_CSV under `out`."""
    out = Path(out)
    batch = validate_paths(paths, workers=workers, progress=progress, exclude=[out], previous=previous, aliases=aliases)
    out.mkdir(parents=True, exist_ok=True)
    done: list[Converted] = []
    used: set[str] = set()
    rows: list[list[Any]] = []
    for workbook in batch.workbooks:
        report = workbook.report
        if report is None:
            done.append(Converted(workbook, None, None))
            continue
        target = get_format(format_to or report.format_id)
        values, notes = map_values(report, target)
        name = output_name(workbook, used)
        path = write_cleaned(out / f"{name}.xlsx", workbook, target, values, notes)
        rows += data_rows(report, target, values)
        done.append(Converted(workbook, path, target.id, notes))
    with atomic_output(out / DATA_CSV) as tmp:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(_data_headers())
        writer.writerows([[number_text(v) if isinstance(v, float) else v for v in row] for row in rows])
        tmp.write_text(buffer.getvalue(), "utf-8-sig")  # with a BOM, so Excel opens it as UTF-8
    return batch, done


def map_values(report: CleanReport, target: Format) -> tuple[dict[str, Any], list[MappingNote]]:
    """The report's values as cells of `target`, and a note for every target cell not carried over."""
    source = report.format
    if source is target:
        return dict(report.values), []
    known = {**report.values, **{d: _sum(report.values, parts) for d, parts in source.derived.items()}}
    mappable = {s.key for s in source.sections
                if all(c.id in target.cells or c.id in target.derived for c in source.section_cells(s.key))}
    values: dict[str, Any] = {}
    notes: list[MappingNote] = []
    split = {part: derived for derived, parts in target.derived.items() for part in parts}
    title = source.title
    for cid, cell in target.cells.items():
        if cell.section not in mappable:
            values[cid] = None
            notes.append(MappingNote(cid, phrase("convert.mapping.no_source", source=title)))
        elif cid in known:
            values[cid] = known[cid]
        elif cid in split and known.get(split[cid]) == 0:
            values[cid] = 0
            notes.append(MappingNote(cid, phrase("convert.mapping.split_zero", source=title,
                                                 row=_row(source, split[cid]))))
        else:
            values[cid] = None
            total = known.get(split[cid]) if cid in split else None
            notes.append(MappingNote(cid, phrase("convert.mapping.not_split", source=title, total=number_text(total))
                                     if total is not None else phrase("convert.mapping.no_source", source=title)))
    return values, notes


def _sum(values: dict[str, Any], parts: Sequence[str]) -> Any:
    found = [values.get(p) for p in parts]
    return None if any(v is None for v in found) else sum(found)


def _row(fmt: Format, cid: str) -> str:
    section, row, col = cid.split(".")
    node = fmt.section(section).node("rows", row)
    return f"{node.label} / {fmt.section(section).node('columns', col).label}"


def write_cleaned(path: Path, workbook: WorkbookResult, target: Format, values: dict[str, Any],
                  notes: list[MappingNote]) -> Path:
    """The cleaned standard workbook, its report sheet, cleaning log, long-form data and mapping notes."""
    report = workbook.report
    assert report is not None
    failed = workbook.status == "errors"
    words = target.words
    cover = {target.field("office").name: report.office, target.field("credit_code").name: report.credit_code,
             target.field("year").name: report.year, **{k: v for k, v in report.texts.items() if k in target.names}}
    with atomic_output(path) as tmp:
        book = new_workbook(tmp, title=words.title)
        fill_workbook(book, target.id, {**values, **cover})
        if failed:
            mark_cover(book, target.id, text("convert.failed_cover", mark=words.failed_mark,
                                             file=Path(workbook.file).name, errors=workbook.errors))
        title = words.report_title.format(office=report.office or "", year=report.year or "")
        add_report_sheet(book, target.id, values, title=title, mark=words.failed_mark if failed else None)
        _log_sheet(book, target, workbook)
        _data_sheet(book, target, data_rows(report, target, values))
        if notes:
            _notes_sheet(book, target, notes)
        book.close()
    return path


def _log_sheet(book: Any, fmt: Format, workbook: WorkbookResult) -> None:
    """Every value the cleaner changed or interpreted, and every value it could not read (left blank)."""
    sheet = book.add_worksheet(fmt.words.log_sheet)
    rows = [[c.id, c.sheet, c.ref, _text(c.raw), c.value, cleaning_text(c.rule)] for c in workbook.cleaning]
    rows += [[f.cells[0].id, f.cells[0].sheet, f.cells[0].ref, str(f.params.get("raw", "")), None,
              text("convert.unreadable_note")] for f in workbook.findings if f.code in UNREADABLE]
    _table(book, sheet, text_list("convert.headers.log"), rows, (28, 16, 8, 22, 12, 40))


def _data_headers() -> list[str]:
    fmt = current_format()
    labels = fmt.cover_labels
    names = {"office": labels[fmt.field("office").name], "year": labels[fmt.field("year").name],
             "format": fmt.words.format_label}
    return [h.format(**names) for h in text_list("convert.headers.data")]


def data_rows(report: CleanReport, fmt: Format, values: dict[str, Any]) -> list[list[Any]]:
    """The long form: one row per cell (office, year, format, cell id, section, row, column, value, unit)."""
    return [[report.office, report.year, fmt.id, cid, fmt.section(cell.section).heading, " / ".join(cell.row_path),
             " / ".join(cell.col_path), values.get(cid), cell.unit] for cid, cell in fmt.cells.items()]


def _data_sheet(book: Any, fmt: Format, rows: list[list[Any]]) -> None:
    sheet = book.add_worksheet(fmt.words.data_sheet)
    _table(book, sheet, _data_headers(), rows, (22, 7, 8, 32, 30, 40, 30, 9, 6))


def _notes_sheet(book: Any, fmt: Format, notes: list[MappingNote]) -> None:
    sheet = book.add_worksheet(fmt.words.mapping_sheet)
    layout = layout_for(fmt.id)
    rows = []
    for note in notes:
        where = layout.where(note.id)
        rows.append([note.id, where.sheet, where.ref, fmt.cells[note.id].label, note.message["zh"]])
    _table(book, sheet, text_list("convert.headers.mapping"), rows, (34, 16, 8, 40, 60))


def _table(book: Any, sheet: Any, headers: Sequence[str], rows: Sequence[Sequence[Any]],
           widths: Sequence[float]) -> None:
    bold = book.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1})
    for col, (header, width) in enumerate(zip(headers, widths, strict=True)):
        put(sheet, 0, col, header, bold)
        sheet.set_column(col, col, width)
    for r, row in enumerate(rows, 1):
        for col, value in enumerate(row):
            put(sheet, r, col, value)
    sheet.autofilter(0, 0, max(len(rows), 1), len(headers) - 1)
    sheet.freeze_panes(1, 0)


def _text(raw: Any) -> Any:
    return raw if raw is None or isinstance(raw, str | int | float) else str(raw)
