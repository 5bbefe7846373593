"""Read one workbook with python-calamine (values only) and find every cell of its format.

Cells are located by their workbook-level defined names when the workbook has them (every workbook
the project writes does; Excel keeps them right when rows are inserted or sheets renamed), else by
their printed labels (`locate.py`). python-calamine does not expose defined names, so they are read
from the file itself: `xl/workbook.xml` for .xlsx/.xlsm, `content.xml` for .ods; a .xls is always
located by labels. Anything that stops a file from being read raises a `DisclosureError` carrying a
finding for that file; nothing here crashes a batch.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from python_calamine import CalamineWorkbook, PasswordError

from .access import access_problem, scrub_paths
from .catalog import CellRef, DisclosureError, Finding, phrase
from .documents import SUFFIXES as DOCUMENT_SUFFIXES
from .documents import read_document, unaligned_tables
from .formats import Format, all_formats, get_format
from .layout import a1
from .limits import MAX_LABEL_CHARS, ZIP_ERRORS, check_archive, check_loaded_sheet, read_regular
from .locate import Grid, LabelIndex, Position, detect_format, fold, locate_cells, matches
from .marks import OWN_SUFFIXES, own_output
from .stray import stray_numbers

__all__ = ["RawReport", "ReadPlan", "read_workbook"]

_NAME_XML = re.compile(r'<definedName\b([^>]*)>([^<]*)</definedName>')
_ODS_NAME = re.compile(r"<table:named-range\b([^>]*)/?>")
_ATTR = re.compile(r'([\w:.-]+)="([^"]*)"')
_A1 = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d+)")
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound-file signature (.xls, encrypted .xlsx)
_ENCRYPTED = "EncryptionInfo".encode("utf-16-le")  # the stream an encrypted OOXML package keeps its key in


@dataclass
class RawReport:
    """What one workbook holds, before cleaning: raw values by key and where each was found."""

    file: str
    format: Format
    located_by: str  # names | labels | document
    raw: dict[str, Any]  # cell id / cover / narrative name → value as read
    where: dict[str, CellRef]
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Where a workbook's defined names put each key of its format; shared by every workbook with the
    same names block, and never changed. Everything a named read does per workbook is worked out here
    once: the keys grouped by sheet, the cells whose labels prove the names still fit, and which sheets
    hold the tables."""

    format: Format
    positions: dict[str, Position]
    where: dict[str, CellRef]  # shared, never changed: the cleaner recognises the standard positions by it
    by_sheet: tuple[tuple[str, tuple[tuple[str, int, int], ...]], ...] = ()  # sheet → (key, row, col)
    label_checks: tuple[_LabelCheck, ...] = ()  # one per section; () when a section's first cell has no name
    tables: frozenset[str] = frozenset()  # the sheets of the format's tables


@dataclass(frozen=True, slots=True)
class _LabelCheck:
    """Where the label of a section's first cell must be: beside it in its row (`cells` left of it) or
    above it in its column; `label` and `aliases` are what it must read."""

    sheet: str
    cells: tuple[tuple[int, int], ...]
    label: str
    aliases: tuple[str, ...]


def _plan(fmt: Format, positions: dict[str, Position], where: dict[str, CellRef]) -> ReadPlan:
    by_sheet: dict[str, list[tuple[str, int, int]]] = {}
    for key, pos in positions.items():
        by_sheet.setdefault(pos.sheet, []).append((key, pos.row, pos.col))
    checks: list[_LabelCheck] = []
    for section in fmt.sections:
        first = _first_cells(fmt)[section.key]
        at = positions.get(first.id)
        if at is None:
            checks = []
            break
        if first.row_path:
            node = section.node("rows", first.row)
            cells = tuple((at.row, c) for c in range(at.col))
        else:
            node = section.node("columns", first.col)
            cells = tuple((r, at.col) for r in range(max(0, at.row - 4), at.row))
        checks.append(_LabelCheck(at.sheet, cells, node.label, node.aliases))
    tables = frozenset(positions[c.id].sheet for c in _first_cells(fmt).values() if c.id in positions)
    return ReadPlan(fmt, positions, where, tuple((k, tuple(v)) for k, v in by_sheet.items()), tuple(checks), tables)


@cache
def _first_cells(fmt: Format) -> dict[str, Any]:
    """Each section's first cell (the one whose label places the table)."""
    return {section.key: fmt.section_cells(section.key)[0] for section in fmt.sections}


def read_workbook(path: str | Path, *, own_outputs: bool = False) -> RawReport:
    """Read `path` (.xlsx, .xlsm, .xls, .ods, or a published report: .docx, .html, .htm, .txt, .pdf)
    and locate its cells. With `own_outputs` (a file a folder search found), an output of the tool that is
    no submission (marks.py) is refused as soon as its bytes are read (the limits on the file itself come
    first), before any other look at it.

    Raises:
        DisclosureError: the file is not a readable workbook, too large, or holds no report
            (`own-output`: one of the tool's outputs, with `own_outputs`).
    """
    path = Path(path)
    data, block, is_zip = _inspect(path, own_outputs)
    if path.suffix.lower() in DOCUMENT_SUFFIXES:  # a published report (documents.py), after the size limits
        return _read_document(path)
    if data.startswith(_OLE) and _ENCRYPTED in data:  # an encrypted .xlsx is an OLE file: calamine
        raise DisclosureError(_unreadable(path, PasswordError("encrypted")))  # sees its content, not its name
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = _sheets(workbook)
    except DisclosureError:
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # calamine raises many kinds (zip, xml, password, io), and panics
        if is_zip and "Cannot detect file format" in str(exc):  # (pyo3's PanicException is no Exception)
            exc = zipfile.BadZipFile(str(exc))  # a zip none of calamine's readers takes: a damaged workbook
        raise DisclosureError(_unreadable(path, exc)) from exc
    findings: list[Finding] = []
    plan = _named_plan(block, path.suffix.lower() == ".ods", frozenset(sheets), sheets) if block else None
    if plan is not None:
        if _plan_agrees(plan, sheets):
            return RawReport(str(path), plan.format, "names", _planned_values(plan, sheets), plan.where,
                             _printed_format(plan.format, plan.tables, sheets)
                             + stray_numbers(plan.format, plan.positions, sheets))
        findings.append(Finding("names-stale"))
    index = LabelIndex(sheets)
    fmt = _format_by_labels(index)
    if fmt is None:
        example = get_format(next(iter(all_formats()))).sections[-1].heading
        raise DisclosureError(Finding("not-a-report", params={"example": example}))
    located = locate_cells(fmt, index)
    findings += _label_findings(fmt, located)
    positions = dict(located.positions)
    positions.update(_labelled_fields(fmt, index))
    report = _report(path, fmt, "labels", positions, sheets, findings)
    _fields_from_title(fmt, index, report)
    return report


def _names_agree_with_labels(fmt: Format, positions: Mapping[str, Position], sheets: Mapping[str, Grid]) -> bool:
    """Whether the names still point where the labels are (a tool that inserts rows without updating
    names leaves them pointing at the wrong cells): the first cell of each section must sit beside its
    row label, or under its column label."""
    for section in fmt.sections:
        first = fmt.section_cells(section.key)[0]
        pos = positions.get(first.id)
        if pos is None:
            return False
        grid = sheets[pos.sheet]
        if first.row_path:
            node = section.node("rows", first.row)
            texts = grid[pos.row][:pos.col] if pos.row < len(grid) else []
        else:
            node = section.node("columns", first.col)
            texts = [grid[r][pos.col] for r in range(max(0, pos.row - 4), min(pos.row, len(grid)))
                     if pos.col < len(grid[r])]
        if not any(isinstance(t, str) and matches(t, node.label, node.aliases) for t in texts):
            return False
    return True


def _plan_agrees(plan: ReadPlan, sheets: Mapping[str, Grid]) -> bool:
    """`_names_agree_with_labels` with the cells to look at worked out once per plan, and each text
    compared with each label once per process (a batch's workbooks print the same labels)."""
    if not plan.label_checks:
        return False
    for check in plan.label_checks:
        grid = sheets[check.sheet]
        found = False
        for row, col in check.cells:
            text_ = grid[row][col] if row < len(grid) and col < len(grid[row]) else ""
            if text_.__class__ is str and _label_matches(text_, check.label, check.aliases):
                found = True
                break
        if not found:
            return False
    return True


@lru_cache(maxsize=8192)
def _label_matches(text_: str, label: str, aliases: tuple[str, ...]) -> bool:
    return bool(matches(text_, label, aliases))


def _planned_values(plan: ReadPlan, sheets: Mapping[str, Grid]) -> dict[str, Any]:
    """The value at every planned position ("" beyond the used area: calamine trims trailing empty rows)."""
    raw: dict[str, Any] = {}
    for name, cells in plan.by_sheet:
        grid = sheets[name]
        height = len(grid)
        for key, row, col in cells:
            if row < height:
                line = grid[row]
                raw[key] = line[col] if col < len(line) else ""
            else:
                raw[key] = ""
    return raw


def _printed_format(fmt: Format, tables: frozenset[str], sheets: Mapping[str, Grid]) -> list[Finding]:
    """A workbook that states one format but prints another format's labels gets a warning.

    Only the sheets that hold the format's tables (`tables`) are scanned; each distinct text is folded
    once per process (`_fold_signal`), so a batch's workbooks cost a set of their texts each.
    """
    texts: set[Any] = set()
    for name in tables:
        for row in sheets[name]:
            texts.update(row)
    folded = {f for t in texts if t.__class__ is str and len(t) <= MAX_LABEL_CHARS and (f := _fold_signal(t))}
    if not folded:
        return []
    for other in all_formats().values():
        shown = [s for s in other.signals if other.id != fmt.id and fold(s) in folded and s not in fmt.signals]
        if shown:
            return [Finding("format-labels-mismatch", rule="R4", params={
                "format_title": phrase("catalog.format_title", title=fmt.title, id=fmt.id),
                "other_title": phrase("catalog.format_title", title=other.title, id=other.id),
                "example": shown[0]})]
    return []


@lru_cache(maxsize=16384)
def _fold_signal(text_: str) -> str | None:
    """The folded text if it is some format's detection signal, else None."""
    folded = fold(text_)
    return folded if folded in _signals() else None


@cache
def _signals() -> frozenset[str]:
    return frozenset(fold(s) for fmt in all_formats().values() for s in fmt.signals)


def _fields_from_title(fmt: Format, index: LabelIndex, report: RawReport) -> None:
    """A pasted report has no cover: take the office and year from its title line, if it has one."""
    office, year = fmt.field("office").name, fmt.field("year").name
    if report.raw.get(office) not in (None, "") and report.raw.get(year) not in (None, ""):
        return
    report_name = fold(fmt.words.report_name)
    pattern = re.compile(fmt.words.title_pattern)
    for pos, text in index.texts:
        if len(text) > MAX_LABEL_CHARS or report_name not in fold(text):  # a title line is short: bounded work
            continue
        found = _title_match(pattern, "".join(text.split()))
        if found:
            ref = _cell_ref(f"title:{pos.sheet}:{pos.row}:{pos.col}", pos)
            body = found.group("before") or found.group("after") or None
            if report.raw.get(office) in (None, "") and body:
                report.raw[office] = body
                report.where[office] = CellRef(office, ref.sheet, ref.ref)
            if report.raw.get(year) in (None, ""):
                report.raw[year] = found.group("year")
                report.where[year] = CellRef(year, ref.sheet, ref.ref)
            return


def _title_match(pattern: re.Pattern[str], folded: str) -> re.Match[str] | None:
    """The title pattern on a text of at most MAX_LABEL_CHARS characters (its lazy groups make the match
    quadratic in the length, hence the bound)."""
    return pattern.match(folded)


def _report(path: Path, fmt: Format, located_by: str, positions: dict[str, Position],
            sheets: dict[str, Grid], findings: list[Finding]) -> RawReport:
    raw: dict[str, Any] = {}
    where: dict[str, CellRef] = {}
    for key, pos in positions.items():
        raw[key] = _value(sheets, pos)
        where[key] = _cell_ref(key, pos)
    return RawReport(str(path), fmt, located_by, raw, where, findings)


@lru_cache(maxsize=8192)
def _cell_ref(key: str, pos: Position) -> CellRef:
    """Shared CellRef objects: the workbooks of a batch mostly put each cell at the same place."""
    return CellRef(key, pos.sheet, a1(pos.row, pos.col))


def _inspect(path: Path, own_outputs: bool) -> tuple[bytes, str | None, bool]:
    """The file's bytes, once every limit of `limits.py` holds, the defined-names XML block of an
    .xlsx/.xlsm/.ods (None otherwise), and whether it is a zip. Every reader works on these bytes, not on
    the path."""
    try:
        data = read_regular(path)
        if own_outputs and path.suffix.lower() in OWN_SUFFIXES and own_output(data):
            raise DisclosureError(Finding("own-output", params={"what": phrase("marks.own_workbook")}))
        archive = check_archive(data)
        if archive is None:
            return data, None, False  # not a zip: a .xls (OLE), or no workbook at all; calamine will tell
        with archive:
            return data, _names_block(archive, path.suffix.lower()), True
    except ZIP_ERRORS as exc:  # the names part could not be inflated: damage
        raise DisclosureError(_unreadable(path, exc)) from exc


_NAMES_XML = {".xlsx": ("xl/workbook.xml", "<definedNames", "</definedNames>"),
              ".xlsm": ("xl/workbook.xml", "<definedNames", "</definedNames>"),
              ".ods": ("content.xml", "<table:named-expressions", "</table:named-expressions>")}
_BLOCKS: dict[tuple[str, int, int], str] = {}  # (member, CRC-32, size) → names block: inflate each once


def _names_block(archive: zipfile.ZipFile, suffix: str) -> str | None:
    """The part of the workbook XML that holds the defined names (python-calamine does not expose them).

    The workbooks of a batch share their template's workbook.xml; the zip directory's CRC and size
    identify it, so it is inflated only the first time it is seen.
    """
    if suffix not in _NAMES_XML:
        return None
    member, start, end = _NAMES_XML[suffix]
    try:
        info = archive.getinfo(member)
    except KeyError:
        return None
    key = (member, info.CRC, info.file_size)
    if key not in _BLOCKS:
        if len(_BLOCKS) > 256:
            _BLOCKS.clear()
        xml = archive.read(info).decode("utf-8", "replace")
        _BLOCKS[key] = xml[xml.find(start):xml.find(end)]
    return _BLOCKS[key]


def _unreadable(path: Path, exc: BaseException) -> Finding:
    problem = access_problem(exc)  # this machine cannot reach the file: told to the county, not the office
    if problem is not None:
        return problem
    kind = type(exc).__name__
    reason = kind if kind in _REASONS else "other"
    detail = scrub_paths(str(exc).splitlines()[0], path) if str(exc) else kind
    return Finding("file-unreadable", params={"reason": phrase(f"read.unreadable.{reason}", detail=detail)})


_REASONS = ("PasswordError", "ZipError", "XmlError", "BadZipFile")  # exception kinds with their own words


def _sheets(workbook: CalamineWorkbook) -> dict[str, Grid]:
    out: dict[str, Grid] = {}
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name)
        check_loaded_sheet(name, sheet.total_height + 1, sheet.total_width + 1)  # before its cells are converted
        out[name] = sheet.to_python(skip_empty_area=False)
    return out


def _named_plan(block: str, ods: bool, sheet_names: frozenset[str], sheets: Mapping[str, Grid]) -> ReadPlan | None:
    """The format a workbook's defined names give, and where each of its keys is; None without them.

    The workbooks of a batch share their template's names, so all but the stated format's cell are
    worked out once per distinct names block (`_positions_by_names`).
    """
    complete = _complete_formats(block, ods, sheet_names)
    if not complete:
        return None
    first = next(iter(complete.values()))
    pos = first.positions.get(first.format.words.format_name)  # the locked cover cell stating the format
    value = _value(sheets, pos) if pos else ""
    stated = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
    return complete.get(stated, first)


@lru_cache(maxsize=64)
def _complete_formats(block: str, ods: bool, sheet_names: frozenset[str]) -> dict[str, ReadPlan]:
    """The read plan of each format whose every cell has a name in `block`, by format id."""
    names = {name: pos for name, pos in _parse_names(block, ods).items() if pos.sheet in sheet_names}
    out = {}
    for fid, fmt in all_formats().items():
        if all(cell.name in names for cell in fmt.cells.values()):
            positions = {key: names[name] for name, key in fmt.names.items() if name in names}
            out[fid] = _plan(fmt, positions, {key: _cell_ref(key, pos) for key, pos in positions.items()})
    return out


@lru_cache(maxsize=64)
def _parse_names(block: str, ods: bool) -> dict[str, Position]:
    """Parse a workbook's defined-names XML; cached, since a batch's workbooks share their template's."""
    if ods:
        attrs = [dict(_ATTR.findall(a)) for a in _ODS_NAME.findall(block)]
        entries = [(a.get("table:name", ""), html.unescape(a.get("table:cell-range-address", ""))) for a in attrs]
    else:
        pairs = [(dict(_ATTR.findall(attrs)), target) for attrs, target in _NAME_XML.findall(block)]
        entries = [(a.get("name", ""), html.unescape(t)) for a, t in pairs if "localSheetId" not in a]
    out = {}
    for name, target in entries:
        pos = _parse_target(target, ods)
        if pos is not None:
            out[name] = pos
    return out


def _parse_target(target: str, ods: bool) -> Position | None:
    """'Sheet'!$D$6 (xlsx) or $'Sheet'.$D$6 (ods) → Position; None for #REF! and other broken targets."""
    target = target.lstrip("=")
    sep = "." if ods else "!"
    if sep not in target:
        return None
    sheet, ref = target.rsplit(sep, 1)
    sheet = sheet.lstrip("$")
    if sheet.startswith("'") and sheet.endswith("'"):
        sheet = sheet[1:-1].replace("''", "'")
    found = _A1.fullmatch(ref.split(":")[0])
    if not found:
        return None
    letters, digits = found.groups()
    col = 0
    for ch in letters.upper():
        col = col * 26 + ord(ch) - 64
    return Position(sheet, int(digits) - 1, col - 1)


def _value(sheets: Mapping[str, Grid], pos: Position) -> Any:
    """The value at a position; "" beyond the used area (calamine trims trailing empty rows)."""
    grid = sheets[pos.sheet]
    return grid[pos.row][pos.col] if pos.row < len(grid) and pos.col < len(grid[pos.row]) else ""


def _format_by_labels(index: LabelIndex) -> Format | None:
    """Ruling 4: a workbook that states its format on its cover says so; otherwise the labels decide."""
    formats = all_formats()
    words = next(iter(formats.values())).words
    for pos in index.by_fold.get(fold(words.format_label), []):
        right = _right_of(index, pos)
        if right is not None:
            value = index.sheets[right.sheet][right.row][right.col]
            fid = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
            if fid in formats:
                return formats[fid]
    return detect_format(index, formats.values())


def _right_of(index: LabelIndex, pos: Position, span: int = 4) -> Position | None:
    """The first non-empty cell right of a label, within `span` columns (the value of a cover field)."""
    row = index.sheets[pos.sheet][pos.row]
    for col in range(pos.col + 1, min(pos.col + 1 + span, len(row))):
        if row[col] not in ("", None):
            return Position(pos.sheet, pos.row, col)
    return None


def _labelled_fields(fmt: Format, index: LabelIndex) -> dict[str, Position]:
    """Cover fields (value right of the label) and narratives (text under the heading) by label."""
    out: dict[str, Position] = {}
    fields = [(c.name, c.label) for c in fmt.cover] + [
        (fmt.words.format_name, fmt.words.format_label), (fmt.words.version_name, fmt.words.version_label)]
    for name, label in fields:
        for pos in index.by_fold.get(fold(label), []):
            out[name] = Position(pos.sheet, pos.row, pos.col + 1)  # the value sits right of its label
            break
    hint = fold(fmt.words.narrative_hint_label)
    for narrative in fmt.narratives:
        for pos in index.by_fold.get(fold(narrative.heading), []):
            for r in range(pos.row + 1, pos.row + 3):  # skip the template's hint line
                value = _value(index.sheets, Position(pos.sheet, r, pos.col))
                if not (isinstance(value, str) and fold(value).startswith(hint)):
                    out[narrative.name] = Position(pos.sheet, r, pos.col)
                    break
            break
    return out


def _label_findings(fmt: Format, located: Any) -> list[Finding]:
    findings = []
    for variant in located.variants:
        section = fmt.section(variant.section)
        findings.append(Finding("label-variant", params={
            "section": _section_name(section), "found": variant.found.replace("\n", ""), "label": variant.label,
            "ref": f"{variant.position.sheet}!{a1(variant.position.row, variant.position.col)}"}))
    for missing in located.missing:
        section = fmt.section(missing.section)
        after = phrase("read.not_found.after", label=missing.after) if missing.after else ""
        findings.append(Finding("cell-not-found", params={
            "section": _section_name(section), "label": missing.label, "near": after,
            "what": phrase("read.not_found.numbers", n=missing.cells)}))
    findings.extend(located.findings)  # made while locating (a group printed as one row)
    return findings


def _section_name(section: Any) -> dict[str, str]:
    return phrase("catalog.section_name", heading=section.heading, number=section.number)


# ----------------------------------------------------------------------------------------------
# Published reports (documents.py)


def _read_document(path: Path) -> RawReport:
    """A published report: documents.py turns it into pseudo-sheets (one per table, one for the text),
    read by labels as a pasted workbook is; a table that does not fit the format is a finding too."""
    document = read_document(path)
    index = LabelIndex(document.sheets)
    fmt = _format_by_labels(index)
    if fmt is None:
        example = get_format(next(iter(all_formats()))).sections[-1].heading
        raise DisclosureError(Finding("not-a-report", params={"example": example}))
    located = locate_cells(fmt, index)
    findings = _label_findings(fmt, located) + unaligned_tables(document, fmt, located)
    positions = dict(located.positions)
    positions.update(_labelled_fields(fmt, index))
    report = _report(path, fmt, "document", positions, document.sheets, findings)
    _fields_from_title(fmt, index, report)
    return report
