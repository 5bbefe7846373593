"""From each checked workbook: a cleaned standard workbook with the report sheet in the official layout,
a cleaning log and the data in long form; and one long-form CSV for a whole batch.

A workbook is written in its own format, or mapped onto another (`format_to`) cell by cell through the
cell ids (`mapping.py`); every target cell left without a source is blank and listed, and the mapped
workbooks are validated again. The output folder is the tool's own: it is built complete in a staging
folder beside it and swapped in, so an interrupted run leaves the previous output as it was, and a
rerun (with `force`) replaces every file of the previous one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._xlsx import atomic_output, new_workbook, put
from .catalog import DisclosureError, Finding, cleaning_text, number_text, text, text_list
from .clean import CleanReport
from .feedback import output_name
from .formats import Format, current_format, get_format
from .layout import layout_for
from .mapping import MappingNote, map_values
from .marks import MARKER, write_marker
from .pipeline import BatchResult, Progress, Stage, WorkbookResult, validate_paths
from .suggest import Change
from .template import add_report_sheet, fill_workbook, mark_cover

__all__ = ["DATA_CSV", "Converted", "MappingNote", "convert_paths", "data_rows", "map_values", "output_folder_problem"]

DATA_CSV = text("convert.data_csv")
UNREADABLE = ("value-unparseable", "number-not-whole", "number-too-large")


@dataclass
class Converted:
    """One written cleaned workbook, or why none was written."""

    source: WorkbookResult
    output: Path | None
    format_id: str | None
    notes: list[MappingNote] = field(default_factory=list)
    check: WorkbookResult | None = None  # the written workbook validated again, when it was mapped
    applied: tuple[Change, ...] = ()  # the suggested fix written into it (`apply_suggestions`, unique ones only)

    @property
    def to_fill(self) -> list[MappingNote]:
        """The cells the office must still fill: mapped to nothing."""
        return [n for n in self.notes if not n.filled]


def output_folder_problem(out: str | Path, *, force: bool = False) -> Finding | None:
    """Why `out` cannot take a convert's output: it holds an earlier convert's output and `force` is not
    given, or it holds files the tool did not write (which it never deletes). None when it can."""
    out = Path(out)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if out.is_dir() and (out / MARKER).is_file():
        return None if force else Finding("output-exists", params={"folder": str(out)})
    return Finding("output-not-empty", params={"folder": str(out),
                                               "suggestion": str(out / text("convert.default_folder"))})


def convert_paths(paths: Iterable[str | Path], out: str | Path, *, format_to: str | None = None,
                  workers: int | None = None, progress: Progress | None = None,
                  force: bool = False, previous: Iterable[str | Path] | None = None,
                  aliases: str | Path | None = None, apply_suggestions: bool = False,
                  stage: Stage | None = None) -> tuple[BatchResult, list[Converted]]:
    """Validate every workbook under `paths`, then write its cleaned workbook and DATA_CSV as the folder `out`.

    With `apply_suggestions`, a workbook whose identities fail and whose suggested fix is unique gets that
    fix in its cleaned workbook, each change logged in 清洗记录 and the cover saying so; an ambiguous or
    missing suggestion is never applied. `progress` ticks the reading; `stage` (if given) is told when the
    writing and the checks of mapped workbooks begin, and its ticks follow them.

    Raises:
        DisclosureError: `out` cannot take the output (`output_folder_problem`); nothing is read or written.
    """
    out = Path(out)
    problem = output_folder_problem(out, force=force)
    if problem is not None:
        raise DisclosureError(problem)
    batch = validate_paths(paths, workers=workers, progress=progress, exclude=[out], previous=previous,
                           aliases=aliases)
    done: list[Converted] = []
    tick = stage("converting", len(batch.workbooks)) if stage else None
    with _staged(out) as staging:
        used: set[str] = set()
        rows: list[list[Any]] = []
        for count, workbook in enumerate(batch.workbooks, 1):
            if tick:
                tick(count - 1, len(batch.workbooks))
            report = workbook.report
            if report is None:
                done.append(Converted(workbook, None, None))
                continue
            target = get_format(format_to or report.format_id)
            values, notes = map_values(report, target)
            applied = _applicable(workbook) if apply_suggestions else ()
            values.update({c.id: c.suggested for c in applied if c.id in values})
            name = f"{output_name(workbook, used)}.xlsx"
            write_cleaned(staging / name, workbook, target, values, notes, applied)
            rows += data_rows(report, target, values)
            done.append(Converted(workbook, out / name, target.id, notes, applied=applied))
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(_data_headers())
        writer.writerows([[number_text(v) if isinstance(v, float) else v for v in row] for row in rows])
        (staging / DATA_CSV).write_text(buffer.getvalue(), "utf-8-sig")  # with a BOM, so Excel opens it as UTF-8
        write_marker(staging, "convert")
    mapped = [c for c in done if c.source.report and c.format_id != c.source.report.format_id]
    if mapped:  # a mapped workbook is a new workbook: does it pass, or what must the office still fill?
        outputs = [c.output for c in mapped if c.output is not None]
        checking = stage("checking_mapped", len(outputs)) if stage else None
        for item, check in zip(mapped, validate_paths(outputs, workers=1, progress=checking).workbooks, strict=True):
            item.check = check
    return batch, done


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A staging folder beside `out`, swapped in for it when the block succeeds and removed otherwise
    (an interruption included): `out` is always either the previous output or the new one, whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.new-*"):  # left by a run that was killed outright
        shutil.rmtree(stale, ignore_errors=True)
    staging = out.parent / f".{out.name}.new-{os.getpid()}"
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            trash = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(trash)
            try:
                staging.rename(out)
            except BaseException:
                trash.rename(out)  # put the previous output back
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _applicable(workbook: WorkbookResult) -> tuple[Change, ...]:
    """The changes of a workbook's suggested fix that may be written: only a unique one is ever applied."""
    suggestion = workbook.suggestion
    return suggestion.changes if suggestion is not None and suggestion.unique else ()


def write_cleaned(path: Path, workbook: WorkbookResult, target: Format, values: dict[str, Any],
                  notes: list[MappingNote], applied: Sequence[Change] = ()) -> Path:
    """The cleaned standard workbook, its report sheet, cleaning log, long-form data and mapping notes;
    `applied` are the changes of a suggested fix written into it (logged, and said on the cover)."""
    report = workbook.report
    assert report is not None
    failed = workbook.status == "errors"
    words = target.words
    cover = {target.field("office").name: report.office, target.field("credit_code").name: report.credit_code,
             target.field("year").name: report.year, **{k: v for k, v in report.texts.items() if k in target.names}}
    with atomic_output(path) as tmp:
        book = new_workbook(tmp, title=words.title, kind="cleaned")
        fill_workbook(book, target.id, {**values, **cover})
        if applied:
            mark_cover(book, target.id, text("convert.applied_cover", n=len(applied), file=Path(workbook.file).name))
        elif failed:
            mark_cover(book, target.id, text("convert.failed_cover", mark=words.failed_mark,
                                             file=Path(workbook.file).name, errors=workbook.errors))
        title = words.report_title.format(office=report.office or "", year=report.year or "")
        add_report_sheet(book, target.id, values, title=title, mark=words.failed_mark if failed else None)
        _log_sheet(book, target, workbook, applied)
        _data_sheet(book, target, data_rows(report, target, values))
        if notes:
            _notes_sheet(book, target, notes)
        book.close()
    return path


def _log_sheet(book: Any, fmt: Format, workbook: WorkbookResult, applied: Sequence[Change] = ()) -> None:
    """Every value the cleaner changed or interpreted, every value it could not read (left blank), and every
    change of a suggested fix written into the workbook."""
    sheet = book.add_worksheet(fmt.words.log_sheet)
    rows = [[c.id, c.sheet, c.ref, _text(c.raw), c.value, cleaning_text(c.rule)] for c in workbook.cleaning]
    rows += [[f.cells[0].id, f.cells[0].sheet, f.cells[0].ref, str(f.params.get("raw", "")), None,
              text("convert.unreadable_note")] for f in workbook.findings if f.code in UNREADABLE]
    where = workbook.report.where if workbook.report else {}
    rows += [[c.id, where[c.id].sheet, where[c.id].ref, c.value, c.suggested, text("convert.applied_note")]
             for c in applied if c.id in where]
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
