"""Read one workbook with python-calamine (values only) and find every cell of its format.

Cells are located by their workbook-level defined names when the workbook has them (every workbook
the project writes does; Excel keeps them right when rows are inserted or sheets renamed), else by
their printed labels (`locate.py`). python-calamine does not expose defined names, so they are read
from the file itself: `xl/workbook.xml` for .xlsx/.xlsm, `content.xml` for .ods; a .xls is always
located by labels. Anything that stops a file from being read becomes an `Unreadable` carrying a
finding; nothing here crashes a batch.
"""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from python_calamine import CalamineWorkbook

from .catalog import CellRef, Finding, bilingual
from .formats import Format, all_formats, get_format
from .layout import a1
from .locate import Grid, LabelIndex, Position, detect_format, fold, locate_cells

__all__ = ["MAX_FILE_BYTES", "MAX_UNZIPPED_BYTES", "RawReport", "Unreadable", "read_workbook"]

MAX_FILE_BYTES = 20 * 2**20  # a filled report is ~20 KB; anything this large is not one
MAX_UNZIPPED_BYTES = 100 * 2**20  # refuses zip bombs before any XML is inflated
MAX_SHEET_ROWS = 5_000  # a report sheet has < 60 rows; a sheet with a million rows is refused
_NAME_XML = re.compile(r'<definedName\b([^>]*)>([^<]*)</definedName>')
_ODS_NAME = re.compile(r"<table:named-range\b([^>]*)/?>")
_ATTR = re.compile(r'([\w:.-]+)="([^"]*)"')
_A1 = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d+)")


class Unreadable(Exception):
    """The file cannot be read as a report; `finding` says why, for that file alone."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message("en"))
        self.finding = finding


@dataclass
class RawReport:
    """What one workbook holds, before cleaning: raw values by key and where each was found."""

    file: str
    format_id: str
    located_by: str  # names | labels
    raw: dict[str, Any]  # cell id / cover / narrative name → value as read
    where: dict[str, CellRef]
    findings: list[Finding] = field(default_factory=list)


def read_workbook(path: str | Path) -> RawReport:
    """Read `path` (.xlsx, .xlsm, .xls, .ods) and locate its cells.

    Raises:
        Unreadable: the file is not a readable workbook, too large, or holds no report.
    """
    path = Path(path)
    _check_size(path)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        sheets = _sheets(workbook)
    except Unreadable:
        raise
    except Exception as exc:  # calamine raises many kinds (zip, xml, password, io): all mean unreadable
        raise Unreadable(_unreadable(path, exc)) from exc
    names = _defined_names(path, set(sheets))
    fmt = _format_by_names(names, sheets)
    if fmt is not None:
        positions = {key: names[name] for name, key in fmt.names.items() if name in names}
        return _report(path, fmt, "names", positions, sheets, [])
    index = LabelIndex(sheets)
    fmt = _format_by_labels(index)
    if fmt is None:
        example = get_format(next(iter(all_formats()))).sections[-1].heading
        raise Unreadable(Finding("not-a-report", params={"example": example}))
    located = locate_cells(fmt, index)
    findings = _label_findings(fmt, located)
    positions: dict[str, Position] = dict(located.positions)
    positions.update(_labelled_fields(fmt, index))
    return _report(path, fmt, "labels", positions, sheets, findings)


def _report(path: Path, fmt: Format, located_by: str, positions: dict[str, Position],
            sheets: dict[str, Grid], findings: list[Finding]) -> RawReport:
    raw: dict[str, Any] = {}
    where: dict[str, CellRef] = {}
    for key, pos in positions.items():
        raw[key] = _value(sheets, pos)
        where[key] = _cell_ref(key, pos)
    return RawReport(str(path), fmt.id, located_by, raw, where, findings)


@lru_cache(maxsize=8192)
def _cell_ref(key: str, pos: Position) -> CellRef:
    """Shared CellRef objects: the workbooks of a batch mostly put each cell at the same place."""
    return CellRef(key, pos.sheet, a1(pos.row, pos.col))


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise Unreadable(Finding("file-too-large", params={"size": _mib(size), "limit": _mib(MAX_FILE_BYTES)}))
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                unzipped = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise Unreadable(_unreadable(path, exc)) from exc
        if unzipped > MAX_UNZIPPED_BYTES:
            raise Unreadable(Finding("file-too-large", params={
                "size": bilingual(f"解压后 {_mib(unzipped)}", f"{_mib(unzipped)} unzipped"),
                "limit": _mib(MAX_UNZIPPED_BYTES)}))


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _unreadable(path: Path, exc: BaseException) -> Finding:
    kind = type(exc).__name__
    reasons = {"PasswordError": ("文件设置了打开密码", "the file is password-protected"),
               "ZipError": ("文件已损坏或不是工作簿", "the file is damaged or not a workbook"),
               "XmlError": ("文件内容已损坏", "the file's content is damaged"),
               "BadZipFile": ("文件已损坏或不完整", "the file is damaged or incomplete")}
    zh, en = reasons.get(kind, ("不是可以识别的工作簿格式", "not a workbook format that can be read"))
    detail = str(exc).splitlines()[0][:160] if str(exc) else kind
    return Finding("file-unreadable", params={"reason": bilingual(f"{zh}：{detail}", f"{en}: {detail}")})


def _sheets(workbook: CalamineWorkbook) -> dict[str, Grid]:
    out: dict[str, Grid] = {}
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name)
        if sheet.total_height > MAX_SHEET_ROWS:
            raise Unreadable(Finding("file-too-large", params={
                "size": bilingual(f"工作表“{name}”有 {sheet.total_height} 行", f"sheet “{name}” has "
                                  f"{sheet.total_height} rows"),
                "limit": bilingual(f"每表 {MAX_SHEET_ROWS} 行", f"{MAX_SHEET_ROWS} rows per sheet")}))
        out[name] = sheet.to_python(skip_empty_area=False)
    return out


def _defined_names(path: Path, sheets: set[str]) -> dict[str, Position]:
    """Workbook-level defined names that point at one cell of an existing sheet."""
    suffix = path.suffix.lower()
    try:
        with zipfile.ZipFile(path) as archive:
            if suffix in (".xlsx", ".xlsm"):
                xml = archive.read("xl/workbook.xml").decode("utf-8", "replace")
                block = xml[xml.find("<definedNames"):xml.find("</definedNames>")]
            elif suffix == ".ods":
                xml = archive.read("content.xml").decode("utf-8", "replace")
                block = xml[xml.find("<table:named-expressions"):xml.find("</table:named-expressions>")]
            else:
                return {}
    except (zipfile.BadZipFile, KeyError, OSError):
        return {}
    return {name: pos for name, pos in _parse_names(block, suffix == ".ods").items() if pos.sheet in sheets}


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


def _format_by_names(names: dict[str, Position], sheets: dict[str, Grid]) -> Format | None:
    """The format a workbook with defined names says it has; None unless every cell name is present."""
    if not names:
        return None
    formats = all_formats()
    stated = next((f for f in formats.values() if f.words.format_name in names), None)
    if stated is not None:
        pos = names[stated.words.format_name]
        value = _value(sheets, pos)
        fid = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
        if fid in formats and all(c.name in names for c in formats[fid].cells.values()):
            return formats[fid]
    return next((f for f in formats.values() if all(c.name in names for c in f.cells.values())), None)


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
            grid = index.sheets[pos.sheet]
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
        after = (bilingual(f"（应在“{missing.after}”之后）", f" (expected after “{missing.after}”)")
                 if missing.after else "")
        findings.append(Finding("cell-not-found", params={
            "section": _section_name(section), "label": missing.label, "near": after,
            "what": bilingual(f"其中的 {missing.cells} 个数字", f"its {missing.cells} numbers")}))
    return findings


def _section_name(section: Any) -> dict[str, str]:
    return bilingual(section.heading, f"Section {section.number}")
