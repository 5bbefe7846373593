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
import dataclasses
import functools
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
from .marks import write_marker
from .outputs import (OutputLock, Written, clean_stale, clean_temporaries, csv_text, disk_full_as_finding,
                      input_problem, is_own, writable_problem, written_in_workers)
from .pipeline import BatchResult, Progress, Stage, WorkbookResult, validate_paths
from .suggest import Change
from .stencil import RENDERED_AT, Stencil, token
from .template import add_report_sheet, check_results, fill_workbook, mark_cover

__all__ = ["DATA_CSV", "Converted", "MappingNote", "convert_paths", "data_rows", "map_values", "output_folder_problem",
           "output_lock"]

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
    problem: Finding | None = None  # `output-not-made`: the workbook could be read but its output not written
    applied: tuple[Change, ...] = ()  # the suggested fix written into it (`apply_suggestions`, unique ones only)

    @property
    def to_fill(self) -> list[MappingNote]:
        """The cells the office must still fill: mapped to nothing."""
        return [n for n in self.notes if not n.filled]

    @property
    def fixed(self) -> bool:
        """Whether the applied fix leaves the cleaned workbook without an error (its source had some)."""
        return bool(self.applied) and not _errors_left(self.source, self.applied, self.format_id)


def output_folder_problem(out: str | Path, *, force: bool = False,
                          inputs: Iterable[str | Path] = ()) -> Finding | None:
    """Why `out` cannot take a convert's output: an input lies inside it or is it (`output-is-input`: the
    folder is replaced whole, even with `force`); it is a file (`output-not-writable`); it holds an
    earlier convert's output and `force` is not given; or it holds files the tool did not write (which it
    never deletes). None when it can."""
    out = Path(out)
    problem = input_problem(out, inputs)
    if problem is not None:
        return problem
    if out.exists() and not out.is_dir():
        return Finding("output-not-writable", params={"folder": str(out), "reason": {
            lang: text("outputs.reason.file", lang) for lang in ("zh", "en")}})
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if out.is_dir() and is_own(out, "convert"):
        return None if force else Finding("output-exists", params={"folder": str(out)})
    return Finding("output-not-empty", params={"folder": str(out),
                                               "suggestion": str(out / text("convert.default_folder"))})


def output_lock(out: str | Path) -> OutputLock:
    """The lock of a convert's output folder. It lies beside the folder (`.<name>.lock`), like the staging
    folder, because the folder itself is replaced whole."""
    out = Path(out)
    return OutputLock(out.parent / f".{out.name}.lock", out)


@dataclass(frozen=True)
class _CleanedJob:
    path: Path
    workbook: WorkbookResult
    format_id: str
    values: dict[str, Any]
    notes: list[MappingNote]
    applied: tuple[Change, ...] = ()


def _write_job(job: _CleanedJob) -> Written:
    """In a worker: one cleaned workbook; one that cannot be written says why."""
    try:
        write_cleaned(job.path, job.workbook, get_format(job.format_id), job.values, job.notes, job.applied)
    except Exception as exc:  # noqa: BLE001 - one workbook's output must never stop the others'
        return Written.failed(exc)
    return Written()


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

    Each cleaned workbook is written in a worker process (workers.py): one that cannot be made (a text
    too long for a cell, a writer that fails or dies) is that workbook's `problem` and the others are
    written all the same. The folder is built in a staging folder beside `out` and swapped in, holding
    the folder's lock.

    Raises:
        DisclosureError: `out` cannot take the output (`output_folder_problem`, `output-not-writable`), another
            run holds its lock (`output-locked`): nothing is read or written; the disk is full
            (`output-disk-full`): the previous output stays as it was.
    """
    out = Path(out)
    paths = list(paths)
    previous = list(previous) if previous is not None else None
    problem = output_folder_problem(out, force=force, inputs=[*paths, *(previous or [])]) or writable_problem(
        out.parent)
    if problem is not None:
        raise DisclosureError(problem)
    with output_lock(out):
        batch = validate_paths(paths, workers=workers, progress=progress, exclude=[out], previous=previous,
                               aliases=aliases)
        done: list[Converted] = []
        with disk_full_as_finding(out), _staged(out) as staging:
            used: set[str] = set()
            rows: list[list[Any]] = []
            jobs: list[_CleanedJob] = []
            for workbook in batch.workbooks:
                report = workbook.report
                if report is None:
                    done.append(Converted(workbook, None, None))
                    continue
                target = get_format(format_to or report.format_id)
                applied = _applicable(workbook) if apply_suggestions else ()
                if applied:  # into the report's own values, so that a mapped workbook's derived cells follow it
                    fix = {c.id: c.suggested for c in applied}
                    report = dataclasses.replace(report, values={**report.values, **fix})
                values, notes = map_values(report, target)
                name = f"{output_name(workbook, used)}.xlsx"
                jobs.append(_CleanedJob(staging / name, workbook, target.id, values, notes, applied))
                rows += data_rows(report, target, values)
                done.append(Converted(workbook, out / name, target.id, notes, applied=applied))
            written = [c for c in done if c.output is not None]
            for index, result in written_in_workers(_write_job, jobs, out, workers=workers, stage=stage,
                                                    name="converting"):
                if not result.made:
                    item = written[index]
                    item.output, item.problem = None, result.finding("cleaned")
                    jobs[index].path.unlink(missing_ok=True)
            clean_temporaries(staging)  # what a worker that died left
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(_data_headers())
            writer.writerows([[_csv_field(v) for v in row] for row in rows])
            (staging / DATA_CSV).write_text(buffer.getvalue(), "utf-8-sig")  # with a BOM, so Excel opens it as UTF-8
            write_marker(staging, "convert")
    mapped = [c for c in done if c.source.report and c.output is not None and c.format_id != c.source.report.format_id]
    if mapped:  # a mapped workbook is a new workbook: does it pass, or what must the office still fill?
        outputs = [c.output for c in mapped if c.output is not None]
        checking = stage("checking_mapped", len(outputs)) if stage else None
        # only its errors are wanted (what the office must still fill): no suggested fix is worked out
        checks = validate_paths(outputs, workers=1, progress=checking, suggest=False).workbooks
        for item, check in zip(mapped, checks, strict=True):
            item.check = check
    return batch, done


def _csv_field(value: Any) -> Any:
    """A field of 数据.csv: numbers as numbers (a negative one too), text that a spreadsheet would take for
    a formula (an office named =cmd|… or +1) as text (outputs.csv_text)."""
    if isinstance(value, float):
        return number_text(value)
    return csv_text(value)


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A staging folder beside `out`, swapped in for it when the block succeeds and removed otherwise
    (an interruption included): `out` is always either the previous output or the new one, whole.
    Call it holding `output_lock(out)`: what a run killed outright left beside `out` is cleaned first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out.parent, (out.name,), prefixes=(f".{out.name}.",), inside=False)
    staging = out.parent / f".{out.name}.new-{os.getpid()}"
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            if any(out.iterdir()) and not is_own(out, "convert"):  # files put there during the run: never deleted
                raise DisclosureError(Finding("output-not-empty", params={
                    "folder": str(out), "suggestion": str(out / text("convert.default_folder"))}))
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


@dataclass(frozen=True)
class _Shape:
    """What makes two cleaned workbooks of a format differ in more than their values: each shape is
    rendered once per worker process and stamped for every workbook of that shape (stencil.py)."""

    format_id: str
    cover: str | None  # the red line on the cover: "applied" (a suggested fix was written), "failed", None
    failed: bool  # the report sheet's red mark
    notes: bool  # the 格式转换 sheet: cells mapped to nothing


@dataclass(frozen=True)
class _Page:
    """What one cleaned workbook shows, by the names of its values."""

    shape: _Shape
    fields: dict[str, Any]  # the template's cells by id, its cover and narrative fields by name
    title: str
    cover_line: str
    log: list[list[Any]]
    notes: list[list[Any]]


def write_cleaned(path: Path, workbook: WorkbookResult, target: Format, values: dict[str, Any],
                  notes: list[MappingNote], applied: Sequence[Change] = (), *, stamped: bool = True) -> Path:
    """The cleaned standard workbook, its report sheet, cleaning log, long-form data and mapping notes;
    `applied` are the changes of a suggested fix written into it (logged, and said on the cover).

    It is stamped from its shape's stencil; `stamped=False` writes it through xlsxwriter instead, the
    reference the stencil is tested against (the two give the same cells).
    """
    page = _page(workbook, target, values, notes, applied)
    with atomic_output(path) as tmp:
        if stamped:
            fields = {**page.fields, _TITLE: page.title, _COVER_LINE: page.cover_line}
            tmp.write_bytes(_stencil(page.shape).stamp(
                fields, results=check_results(target.id, page.fields),
                tables={target.words.log_sheet: page.log, target.words.mapping_sheet: page.notes}))
        else:
            book = new_workbook(tmp, title=target.words.title, kind="cleaned")
            _render(book, target, page)
            book.close()
    return path


_TITLE, _COVER_LINE = "convert:title", "convert:cover"  # the tokens of the report title and the cover line


def _page(workbook: WorkbookResult, target: Format, values: dict[str, Any], notes: list[MappingNote],
          applied: Sequence[Change]) -> _Page:
    report = workbook.report
    assert report is not None
    failed = _errors_left(workbook, applied, target.id)
    words = target.words
    cover = {**dict.fromkeys(_field_names(target)), target.field("office").name: report.office,
             target.field("credit_code").name: report.credit_code, target.field("year").name: report.year,
             **{k: v for k, v in report.texts.items() if k in target.names}}
    name = Path(workbook.file).name
    if applied:
        line, kind = text("convert.applied_cover", n=len(applied), file=name), "applied"
    elif failed:
        line, kind = text("convert.failed_cover", mark=words.failed_mark, file=name, errors=workbook.errors), "failed"
    else:
        line, kind = "", None
    return _Page(_Shape(target.id, kind, failed, bool(notes)), {**values, **cover},
                 words.report_title.format(office=report.office or "", year=report.year or ""), line,
                 _log_rows(workbook, applied), _note_rows(target, notes))


def _errors_left(workbook: WorkbookResult, applied: Sequence[Change], format_id: str | None) -> bool:
    """Whether the cleaned workbook still fails: its errors, less those of the identities its applied
    fix makes hold (the solver's fix makes every identity of the format hold; `tests/test_suggest.py`
    checks the written workbook again). A workbook written in another format keeps its errors: what the
    office must still fill there is checked after writing (`Converted.check`)."""
    same_format = workbook.report is not None and format_id == workbook.report.format_id
    explained = set(workbook.suggestion.rules) if applied and same_format and workbook.suggestion is not None else set()
    return any(f.severity == "error" and not (f.code == "identity-mismatch" and f.rule in explained)
               for f in workbook.findings)


@functools.cache  # asked for every workbook written
def _field_names(target: Format) -> tuple[str, ...]:
    """The names of the template's values that are not table cells: its cover and narrative fields."""
    cells = {cid.replace(".", "_") for cid in target.cells}
    return tuple(name for name in target.names if name not in cells)


def _render(book: Any, target: Format, page: _Page) -> None:
    """Write a cleaned workbook's sheets into an open xlsxwriter workbook."""
    words = target.words
    fill_workbook(book, target.id, page.fields)
    if page.shape.cover:
        mark_cover(book, target.id, page.cover_line)
    cells = {cid: page.fields.get(cid) for cid in target.cells}
    add_report_sheet(book, target.id, cells, title=page.title, mark=words.failed_mark if page.shape.failed else None)
    _table(book, book.add_worksheet(words.log_sheet), text_list("convert.headers.log"), page.log,
           (28, 16, 8, 22, 12, 40))
    data = _long_rows(page.fields[target.field("office").name], page.fields[target.field("year").name], target,
                      page.fields)
    _table(book, book.add_worksheet(words.data_sheet), _data_headers(), data, (22, 7, 8, 32, 30, 40, 30, 9, 6))
    if page.shape.notes:
        _table(book, book.add_worksheet(words.mapping_sheet), text_list("convert.headers.mapping"), page.notes,
               (34, 16, 8, 40, 60))


@functools.lru_cache(maxsize=32)
def _stencil(shape: _Shape) -> Stencil:
    """The shape rendered once with a token for every value, and cut into a stencil."""
    target = get_format(shape.format_id)
    words = target.words
    fields: dict[str, Any] = {name: token(name) for name in _field_names(target)}
    fields.update({cid: token(cid) for cid in target.cells})
    log = [[token(f"log:{i}") for i in range(len(text_list("convert.headers.log")))]]
    notes = [[token(f"note:{i}") for i in range(len(text_list("convert.headers.mapping")))]] if shape.notes else []
    page = _Page(shape, fields, token(_TITLE), token(_COVER_LINE), log, notes)
    buffer = io.BytesIO()
    book = new_workbook(buffer, created=RENDERED_AT, title=words.title, kind="cleaned")
    _render(book, target, page)
    book.close()
    tables = [words.log_sheet, *([words.mapping_sheet] if shape.notes else [])]
    return Stencil.from_package(buffer.getvalue(), results=check_results(target.id, fields), tables=tables)


def _log_rows(workbook: WorkbookResult, applied: Sequence[Change] = ()) -> list[list[Any]]:
    """Every value the cleaner changed or interpreted, every value it could not read (left blank), and every
    change of a suggested fix written into the workbook."""
    rows = [[c.id, c.sheet, c.ref, _text(c.raw), c.value, cleaning_text(c.rule)] for c in workbook.cleaning]
    rows += [[f.cells[0].id, f.cells[0].sheet, f.cells[0].ref, str(f.params.get("raw", "")), None,
              text("convert.unreadable_note")] for f in workbook.findings if f.code in UNREADABLE]
    where = workbook.report.where if workbook.report else {}
    rows += [[c.id, where[c.id].sheet, where[c.id].ref, c.value, c.suggested, text("convert.applied_note")]
             for c in applied if c.id in where]
    return rows


def _data_headers() -> list[str]:
    fmt = current_format()
    labels = fmt.cover_labels
    names = {"office": labels[fmt.field("office").name], "year": labels[fmt.field("year").name],
             "format": fmt.words.format_label}
    return [h.format(**names) for h in text_list("convert.headers.data")]


def data_rows(report: CleanReport, fmt: Format, values: dict[str, Any]) -> list[list[Any]]:
    """The long form: one row per cell (office, year, format, cell id, section, row, column, value, unit)."""
    return _long_rows(report.office, report.year, fmt, values)


def _long_rows(office: Any, year: Any, fmt: Format, values: dict[str, Any]) -> list[list[Any]]:
    return [[office, year, fmt.id, cid, fmt.section(cell.section).heading, " / ".join(cell.row_path),
             " / ".join(cell.col_path), values.get(cid), cell.unit] for cid, cell in fmt.cells.items()]


def _note_rows(fmt: Format, notes: list[MappingNote]) -> list[list[Any]]:
    layout = layout_for(fmt.id)
    rows = []
    for note in notes:
        where = layout.where(note.id)
        rows.append([note.id, where.sheet, where.ref, fmt.cells[note.id].label, note.message["zh"]])
    return rows


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
    sheet.set_landscape()  # printed one page wide, the headers on every page: no column alone on a sheet
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(0)


def _text(raw: Any) -> Any:
    return raw if raw is None or isinstance(raw, str | int | float) else str(raw)
