"""The publishable annual report of each workbook: a Word document (.docx) and a standalone HTML page.

Both are rendered (`render.py`) from one document model built here from the format data: the title, the
standard preamble, the six parts in the official order, the office's narratives, and the three tables
laid out exactly as the converter lays out its report sheet (`layout.report_layout`: merged multi-level
headers, the printed note, labels verbatim). Office text is untrusted: it is cleaned of characters XML
cannot hold and only ever written as text, never as markup, a field or a link.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import string
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from .aggregate import ROLLUP_PROPERTY
from .catalog import DisclosureError, Finding, number_text, text, text_list
from .clean import CleanReport
from .feedback import safe_name, unique_name
from .formats import Cell, Format, get_format
from .layout import report_layout
from .marks import write_marker
from .outputs import (LOCK, STAGING, OutputLock, Written, clean_stale, clean_temporaries, commit,
                      disk_full_as_finding, folder_problem, input_problem, writable_problem, written_in_workers)
from .pipeline import BatchResult, Progress, Stage, WorkbookResult, validate_paths
from .render import Para, ReportDocument, Table, TableCell, write_docx, write_html

__all__ = ["Published", "Rollup", "build_document", "clean_text", "narrative_paragraphs", "output_problem",
           "propose_overview", "publish_paths", "publish_workbook", "read_rollup", "report_tables", "value_text"]

MAX_PROPERTIES = 1 << 20  # docProps/custom.xml larger than this is not ours: not parsed


@dataclass(frozen=True, slots=True)
class Rollup:
    """What a roll-up total adds up, as `aggregate` recorded it in the workbook's document properties."""

    added: int
    left_out: int = 0
    missing: int = 0
    invalid_included: int = 0


@dataclass
class Published:
    """What `publish` did with one workbook."""

    source: WorkbookResult
    docx: Path | None = None
    html: Path | None = None
    draft: bool = False
    refused: str | None = None  # errors | unreadable | no_cover: nothing was written
    missing_cover: tuple[str, ...] = ()  # cover labels the title needs and the workbook lacks
    overview: str | None = None  # inserted | prepended | kept (with --fill-overview)
    overview_heading: str | None = None  # the heading of part 一
    proposal: str | None = None  # the paragraph proposed for 一 from the tables
    unstated: tuple[str, ...] = ()  # cells the proposal could not state: blank in the workbook
    empty: tuple[str, ...] = ()  # headings of narrative parts left blank
    rollup: Rollup | None = None
    problem: Finding | None = None  # `output-not-made`: the report was to be written but could not be


# ------------------------------------------------------------------------------------------------
# Publishing a batch


def output_problem(out: str | Path, inputs: Iterable[str | Path]) -> Finding | None:
    """Why `publish --out` cannot write into `out`, or None: an input inside it (`output-is-input`), a
    file, or a folder holding files the tool did not write (`output-not-empty`; the reports of an earlier
    publish, in a folder it marked, are replaced by name)."""
    out = Path(out)
    return input_problem(out, inputs) or folder_problem(out, kind="publish")


def publish_paths(paths: Iterable[str | Path], out: str | Path, *, draft: bool = False,
                  fill_overview: bool = False, prepend_overview: bool = False, lang: str = "zh",
                  workers: int | None = None, progress: Progress | None = None, stage: Stage | None = None
                  ) -> tuple[BatchResult, list[Published]]:
    """Validate every workbook under `paths`, then write its annual report (.docx and .html) under `out`.

    The reports are written in worker processes (workers.py) into a staging folder inside `out` and
    moved in at the end, holding `out`'s lock: a report that cannot be made is that workbook's `problem`
    (the others are written all the same), and a full disk leaves `out` as it was.

    Args:
        draft: also write workbooks with errors (or without office or year), stamped as drafts.
        fill_overview: propose a paragraph for 一 from the tables; insert it where the office wrote none.
        prepend_overview: insert the proposed paragraph before the office's own text of 一 as well.
        lang: language of the tool's own words (the official labels stay as the format prints them).
        progress, stage: tick the reading; told when the writing begins, and tick it.

    Raises:
        DisclosureError: `out` cannot take the reports (`output_problem`, `output-not-writable`), another
            run holds its lock (`output-locked`), or the disk is full (`output-disk-full`).
    """
    out = Path(out)
    paths = list(paths)
    created = not out.exists()
    problem = output_problem(out, paths) or writable_problem(out)
    if problem is not None:
        raise DisclosureError(problem)
    try:
        return _publish_batch(paths, out, workers, progress, stage, draft=draft, fill_overview=fill_overview,
                              prepend_overview=prepend_overview, lang=lang)
    finally:
        if created:  # made for the lock, and nothing was written: not left behind
            with contextlib.suppress(OSError):
                out.rmdir()


def _publish_batch(paths: list[str | Path], out: Path, workers: int | None, progress: Progress | None,
                   stage: Stage | None, **options: Any) -> tuple[BatchResult, list[Published]]:
    with OutputLock(out / LOCK, out):
        batch = validate_paths(paths, workers=workers, progress=progress, exclude=[out])
        with disk_full_as_finding(out):
            clean_stale(out, ())
            staging = out / f"{STAGING}{os.getpid()}"
            staging.mkdir()
            try:
                done = _publish_all(batch, staging, out, workers, stage, **options)
                clean_temporaries(staging)
                names = sorted(p.name for p in staging.iterdir())
                if names:
                    write_marker(out, "publish")
                    commit(staging, out, names)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    for item in done:  # the reports now lie in `out`
        item.docx = out / item.docx.name if item.docx else None
        item.html = out / item.html.name if item.html else None
    return batch, done


@dataclass(frozen=True)
class _Job:
    workbook: WorkbookResult
    folder: Path
    name: str
    options: dict[str, Any]


def _publish_job(job: _Job) -> Published | Written:
    """In a worker: one workbook's report; one that cannot be written says why."""
    try:
        return _publish_one(job.workbook, job.folder, job.name, **job.options)
    except Exception as exc:  # noqa: BLE001 - one workbook's report must never stop the others'
        return Written.failed(exc)


def _publish_all(batch: BatchResult, folder: Path, out: Path, workers: int | None, stage: Stage | None,
                 **options: Any) -> list[Published]:
    used: set[str] = set()
    done: list[Published] = []
    jobs: list[_Job] = []
    owners: list[int] = []
    for workbook in batch.workbooks:
        refused = _refusal(workbook, options["draft"])
        done.append(refused or Published(workbook))
        if refused is None:
            report = workbook.report
            assert report is not None
            owners.append(len(done) - 1)
            jobs.append(_Job(workbook, folder, unique_name(_file_name(report, get_format(report.format_id)), used),
                             options))
    for index, result in written_in_workers(_publish_job, jobs, out, workers=workers, stage=stage,
                                            name="publishing"):
        if isinstance(result, Written):
            job = jobs[index]
            for suffix in (".docx", ".html"):  # a pair or nothing
                (folder / f"{job.name}{suffix}").unlink(missing_ok=True)
            done[owners[index]] = Published(job.workbook, problem=result.finding("report"))
        else:
            done[owners[index]] = result
    return done


def publish_workbook(workbook: WorkbookResult, out: Path, used: set[str], *, draft: bool = False,
                     fill_overview: bool = False, prepend_overview: bool = False, lang: str = "zh") -> Published:
    """Write one workbook's report, or say why not; `used` holds the file names taken in this batch."""
    refused = _refusal(workbook, draft)
    if refused is not None:
        return refused
    report = workbook.report
    assert report is not None
    name = unique_name(_file_name(report, get_format(report.format_id)), used)
    return _publish_one(workbook, out, name, draft=draft, fill_overview=fill_overview,
                        prepend_overview=prepend_overview, lang=lang)


def _refusal(workbook: WorkbookResult, draft: bool) -> Published | None:
    """Why no report is written for this workbook (unreadable; errors or no office or year without
    --draft), or None."""
    report = workbook.report
    if report is None:
        return Published(workbook, refused="unreadable")
    fmt = get_format(report.format_id)
    labels = fmt.cover_labels
    missing = tuple(labels[fmt.field(role).name] for role, v in (("office", report.office), ("year", report.year))
                    if v is None)
    failed = workbook.status == "errors"
    if (failed or missing) and not draft:
        return Published(workbook, refused="errors" if failed else "no_cover", missing_cover=missing)
    return None


def _publish_one(workbook: WorkbookResult, out: Path, name: str, *, draft: bool = False,
                 fill_overview: bool = False, prepend_overview: bool = False, lang: str = "zh") -> Published:
    report = workbook.report
    assert report is not None
    fmt = get_format(report.format_id)
    labels = fmt.cover_labels
    missing = tuple(labels[fmt.field(role).name] for role, v in (("office", report.office), ("year", report.year))
                    if v is None)
    failed = workbook.status == "errors"
    result = Published(workbook, draft=failed or bool(missing), missing_cover=missing, rollup=read_rollup(report.file))
    texts = {n.name: _as_text(report.texts.get(n.name)) for n in fmt.narratives}
    if fill_overview or prepend_overview:
        first = _overview_narrative(fmt).name
        result.overview_heading = _overview_narrative(fmt).heading
        result.proposal, result.unstated = propose_overview(report, fmt, lang)
        own = (texts.get(first) or "").strip()
        if result.proposal and not own:
            texts[first], result.overview = result.proposal, "inserted"
        elif result.proposal and prepend_overview:
            texts[first], result.overview = f"{result.proposal}\n{own}", "prepended"
        elif result.proposal:
            result.overview = "kept"
    result.empty = tuple(n.heading for n in fmt.narratives if not (texts.get(n.name) or "").strip())
    document = build_document(report, fmt, lang=lang, texts=texts, rollup=result.rollup,
                              mark=text("publish.draft_mark", lang) if result.draft else None)
    result.docx = write_docx(document, out / f"{name}.docx")
    result.html = write_html(document, out / f"{name}.html")
    return result


def _file_name(report: CleanReport, fmt: Format) -> str:
    """The report title (office, year, report name) made safe as a file name; always in Chinese."""
    office = safe_name(report.office) if report.office else text("publish.no_office")
    year = report.year if report.year is not None else text("publish.no_year")
    return text("publish.title", "zh", office=office, year=year, report_name=fmt.words.report_name)


# ------------------------------------------------------------------------------------------------
# Building the document


def build_document(report: CleanReport, fmt: Format, *, lang: str = "zh", texts: Mapping[str, str | None] | None = None,
                   rollup: Rollup | None = None, mark: str | None = None) -> ReportDocument:
    """The report of one workbook: title, preamble, (roll-up note,) parts 一 to 六 in the official order.

    Args:
        texts: the narrative texts to print, by narrative name (default: the workbook's own).
        mark: a stamp printed under the title and on every page (a draft).
    """
    texts = texts if texts is not None else {n.name: _as_text(report.texts.get(n.name)) for n in fmt.narratives}
    office = clean_text(report.office) if report.office else text("publish.no_office", lang)
    year = str(report.year) if report.year is not None else text("publish.no_year", lang)
    title = text("publish.title", lang, office=office, year=year, report_name=fmt.words.report_name)
    blocks: list[Para | Table] = [Para("title", title)]
    if mark:
        blocks.append(Para("mark", mark))
    blocks += _preamble(report, fmt, office, lang)
    if rollup is not None:
        blocks.append(Para("note", _rollup_note(rollup, lang)))
    tables = {t.section: t for t in report_tables(fmt, report.values)}
    for _number, heading, key in _parts(fmt):
        blocks.append(Para("heading1", heading))
        if key in tables:
            blocks.append(tables[key])
        else:
            blocks += narrative_paragraphs(texts.get(key)) or [Para("body", text("publish.empty_section", lang))]
    return ReportDocument(title, lang, mark, tuple(blocks))


def _parts(fmt: Format) -> list[tuple[str, str, str]]:
    """(number, heading, section key or narrative name) of the six parts, in the order of their numerals."""
    parts = [(n.number, n.heading, n.name) for n in fmt.narratives]
    parts += [(s.number, s.heading, s.key) for s in fmt.sections]
    return sorted(parts, key=lambda p: _numeral(p[0]))


def _numeral(number: str) -> float:
    return sum(unicodedata.numeric(c) for c in number)


def _overview_narrative(fmt: Format) -> Any:
    return min(fmt.narratives, key=lambda n: _numeral(n.number))


def _preamble(report: CleanReport, fmt: Format, office: str, lang: str) -> list[Para]:
    """本报告依据…编制 (the parts listed), the statistics period, and the contact line from the cover."""
    parts = _parts(fmt)
    names = [heading[len(number) + 1:] if heading.startswith(number) else heading for number, heading, _ in parts]
    count = parts[-1][0] if lang == "zh" else str(len(parts))
    first = text("publish.preamble.basis", lang, notice=fmt.notice, count=count,
                 parts=text("publish.list_separator", lang).join(names))
    if report.year is not None:
        first += _space(lang) + text("publish.preamble.period", lang, year=report.year)
    labels = fmt.cover_labels
    details = [text("publish.detail", lang, label=labels[name], value=clean_text(value))
               for name in (fmt.field(role).name for role in ("address", "postcode", "phone", "fax", "email"))
               if (value := _as_text(report.texts.get(name)))]
    contact = clean_text(_as_text(report.texts.get(fmt.field("contact").name)) or office)
    second = (text("publish.preamble.contact", lang, contact=contact,
                   details=text("publish.detail_separator", lang).join(details)) if details
              else text("publish.preamble.contact_plain", lang, contact=contact))
    return [Para("preamble", first), Para("preamble", second)]


def _rollup_note(rollup: Rollup, lang: str) -> str:
    note = text("publish.rollup.added", lang, added=rollup.added)
    for key, count in (("invalid", rollup.invalid_included), ("left_out", rollup.left_out),
                       ("missing", rollup.missing)):
        if count:
            note += _space(lang) + text(f"publish.rollup.{key}", lang, **{key: count})
    return note


def _space(lang: str) -> str:
    return "" if lang == "zh" else " "


def narrative_paragraphs(value: str | None) -> list[Para]:
    """An office's narrative as paragraphs, one per line; a short numbered line such as （一）主动公开 is a
    level-2 heading (precision first: a line with sentence punctuation stays a paragraph)."""
    out = []
    for line in clean_text(value or "").split("\n"):
        line = line.strip()
        if line:
            out.append(Para("heading2" if _is_subheading(line) else "body", line))
    return out


_SUBHEADING = re.compile(r"\(\s*(\w{1,3})\s*\)\s*(.+)")  # matched after NFKC, so full-width brackets too


def _is_subheading(line: str) -> bool:
    found = _SUBHEADING.fullmatch(unicodedata.normalize("NFKC", line))
    if not found:
        return False
    number, rest = found.groups()
    return (all(unicodedata.numeric(c, None) is not None for c in number) and len(rest) <= 20
            and not any(unicodedata.category(c) == "Po" for c in rest))


def report_tables(fmt: Format, values: Mapping[str, Any]) -> list[Table]:
    """Sections 二, 三 and 四 as tables, cut from the converter's report sheet layout, values filled in."""
    sheet = report_layout(fmt.id)
    heads = sorted((b for b in sheet.boxes if b.style == "section"), key=lambda b: b.row)
    by_heading = {s.heading: s for s in fmt.sections}
    tables = []
    for i, head in enumerate(heads):
        end = heads[i + 1].row if i + 1 < len(heads) else None

        def inside(row: int, top: int = head.row, stop: int | None = end) -> bool:
            return row > top and (stop is None or row < stop)

        cells = [TableCell(b.row, b.col, b.last_row, b.last_col, b.text, b.style)
                 for b in sheet.boxes if b.style not in ("title", "section") and inside(b.row)]
        cells += [TableCell(s.row, s.col, s.row, s.last_col, value_text(fmt.cells[s.key], values.get(s.key)),
                            "value", s.key) for s in sheet.slots if inside(s.row)]
        section = by_heading[head.text]
        tables.append(_compact(section.key, section.layout, cells, sheet.widths))
    return tables


def _compact(key: str, layout: str, cells: list[TableCell], widths: Sequence[float]) -> Table:
    """Renumber rows and columns so that only the boundaries the table itself uses remain (the report
    sheet shares one grid of narrow columns among tables of different shapes)."""
    def bounds(first: Iterable[int], last: Iterable[int]) -> dict[int, int]:
        edges = sorted({*first, *(x + 1 for x in last)})
        return {edge: i for i, edge in enumerate(edges)}

    rows = bounds((c.row for c in cells), (c.last_row for c in cells))
    cols = bounds((c.col for c in cells), (c.last_col for c in cells))
    edges = sorted(cols)
    col_widths = tuple(float(sum(widths[a:b])) for a, b in zip(edges, edges[1:], strict=False))
    out = tuple(sorted((replace(c, row=rows[c.row], last_row=rows[c.last_row + 1] - 1, col=cols[c.col],
                                last_col=cols[c.last_col + 1] - 1) for c in cells), key=lambda c: (c.row, c.col)))
    count = len(rows) - 1
    first_value = min(c.row for c in out if c.style == "value")
    if layout == "blocks":  # captioned blocks: each block (caption, header, rows) stays on one page
        starts = sorted({c.row for c in out if c.style == "caption"}) + [count]
        return Table(key, count, col_widths, out, 0, tuple((a, b - 1) for a, b in zip(starts, starts[1:], strict=False)))
    return Table(key, count, col_widths, out, first_value, ((0, first_value),))


def value_text(cell: Cell, value: Any) -> str:
    """A value as the published table prints it: 6, 0, 1207.5万元 (the unit where the header has none)."""
    if value is None:
        return ""
    shown = number_text(value)
    return f"{shown}{cell.type.unit}" if cell.type.unit and not cell.unit_in_header else shown


def propose_overview(report: CleanReport, fmt: Format, lang: str = "zh") -> tuple[str | None, tuple[str, ...]]:
    """A factual paragraph for part 一 from the tables, and the labels of cells it could not state.

    The sentences are data (`publish.overview`), their placeholders defined names of cells; a sentence
    that names a cell this format lacks is skipped, one whose cells are blank is left out (a blank
    never becomes 0), and one whose numbers are all 0 gives way to its "none" form.
    """
    sentences = text_list("publish.overview.sentences", lang)
    nones = text_list("publish.overview.none", lang)
    said: list[str] = []
    unstated: list[str] = []
    for sentence, none in zip(sentences, nones, strict=True):
        fields = [f for _, f, _, _ in string.Formatter().parse(sentence) if f]
        ids = [fmt.names.get(f) for f in fields]
        if any(cid not in fmt.cells for cid in ids):
            continue
        values = {f: report.values.get(cid) for f, cid in zip(fields, ids, strict=True) if cid}
        blank = [fmt.cells[cid].label for f, cid in zip(fields, ids, strict=True) if cid and values[f] is None]
        if blank:
            unstated += blank
        elif none and all(v == 0 for v in values.values()):
            said.append(none)
        else:
            said.append(sentence.format(**{f: number_text(v) for f, v in values.items()}))
    return (_space(lang).join(said) or None), tuple(dict.fromkeys(unstated))


# ------------------------------------------------------------------------------------------------
# Untrusted text and the roll-up property


_BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def clean_text(value: object) -> str:
    """Text from a workbook, safe to put in XML and HTML as text: no control characters (they are not
    allowed in XML), no bidirectional overrides (they can disguise text), tabs as spaces."""
    raw = _as_text(value) or ""
    raw = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return "".join(c for c in raw if c == "\n" or not (
        unicodedata.category(c) in ("Cc", "Cs") or ord(c) in _BIDI or c in "\ufffe\uffff"))


def _as_text(value: object) -> str | None:
    """A narrative or cover value as text (an office may type a number into a text cell)."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_rollup(path: str | Path) -> Rollup | None:
    """The provenance `aggregate` wrote into a total workbook (docProps/custom.xml); None for any other file."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("docProps/custom.xml")
            if info.file_size > MAX_PROPERTIES:
                return None
            root = ElementTree.fromstring(archive.read(info))
    except (KeyError, OSError, zipfile.BadZipFile, ElementTree.ParseError):
        return None
    found = next(("".join(p.itertext()) for p in root if p.get("name") == ROLLUP_PROPERTY), None)
    try:
        data = json.loads(found) if found else None
    except ValueError:
        return None
    keys = ("added", "left_out", "missing", "invalid_included")
    if not isinstance(data, dict) or not all(isinstance(data.get(k, 0), int) and data.get(k, 0) >= 0 for k in keys):
        return None
    if not isinstance(data.get("added"), int):
        return None
    return Rollup(**{k: int(data.get(k, 0)) for k in keys})
