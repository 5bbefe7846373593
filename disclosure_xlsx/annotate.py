"""The office's own workbook, marked up: each flagged cell filled and commented, plus a first sheet
「校验结果」 listing every finding with a link to its cell, and the cleaning notes.

Only fills, comments and that sheet are added; every value, formula, format, merged range, defined
name and sheet of the original stays as it was. openpyxl is used because it round-trips a workbook
faithfully enough for that (xlsxwriter cannot edit); it is slow, so only workbooks with findings are
annotated. A .xls or .ods cannot be edited in place: it comes back as the standard template filled with
the values read from it, and the first sheet says so.
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.cell.cell import Cell as XlCell
from openpyxl.comments import Comment
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet
from xlsxwriter.utility import quote_sheetname

from ._xlsx import OUTPUT_PROPERTY, atomic_output, output_property
from .catalog import CellRef, Cleaning, Finding, cleaning_text, number_text, text, text_list
from .formats import get_format
from .layout import layout_for
from .read import read_workbook
from .template import write_template

__all__ = ["EDITABLE", "FILLS", "RESULT_SHEET", "annotate_workbook"]

EDITABLE = (".xlsx", ".xlsm")
RESULT_SHEET = text("annotate.result_sheet")
AUTHOR = text("annotate.author")
# anchor cell of a finding / another cell it involves, by severity
FILLS = {("error", True): "FFC7CE", ("error", False): "FDE9EC", ("warning", True): "FFEB9C",
         ("warning", False): "FFF6D5"}
HEADERS = tuple(text_list("annotate.headers"))
CLEANING_HEADERS = tuple(text_list("annotate.cleaning_headers"))


def _severity(finding: Finding) -> str:
    return text(f"feedback.severity.{finding.severity}")


def annotate_workbook(file: str | Path, format_id: str, findings: Sequence[Finding],
                      cleaning: Sequence[Cleaning], target: str | Path) -> Path:
    """Write the annotated copy of `file` to `target` (always .xlsx/.xlsm); the input is only read."""
    source = Path(file)
    rebuilt = source.suffix.lower() not in EDITABLE
    with atomic_output(target) as tmp:
        if rebuilt:
            _rebuild(source, format_id, tmp)
            workbook = openpyxl.load_workbook(tmp)
        else:
            workbook = openpyxl.load_workbook(source, keep_vba=source.suffix.lower() == ".xlsm", keep_links=True)
        place = _template_places(format_id) if rebuilt else {}
        _mark_cells(workbook, findings, place)
        _result_sheet(workbook, findings, cleaning, place, source if rebuilt else None, _has_drawings(source))
        workbook.calculation.fullCalcOnLoad = True  # openpyxl drops cached results: recalculate on open
        _mark_annotated(workbook)
        workbook.save(tmp)
    return Path(target)


def _mark_annotated(workbook: openpyxl.Workbook) -> None:
    """Say in the copy's document properties that it is an annotated copy (marks.py), replacing the mark
    of the template it was filled in; the office's other properties stay."""
    props = workbook.custom_doc_props
    props.props = [p for p in props.props if p.name != OUTPUT_PROPERTY]
    props.append(StringProperty(name=OUTPUT_PROPERTY, value=output_property("annotated", datetime.now(UTC))))


def _has_drawings(source: Path) -> bool:
    """Whether the workbook holds pictures or charts, which openpyxl cannot carry into the copy."""
    try:
        with zipfile.ZipFile(source) as archive:
            return any(n.startswith(("xl/drawings/", "xl/charts/", "xl/media/")) for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _rebuild(source: Path, format_id: str, tmp: Path) -> None:
    raw = read_workbook(source).raw
    fmt = get_format(format_id)
    keep = set(fmt.names.values()) - {fmt.words.format_name, fmt.words.version_name}  # the copy's own
    write_template(tmp, format_id, values={k: _writable(v) for k, v in raw.items() if k in keep})


def _writable(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _template_places(format_id: str) -> dict[str, CellRef]:
    """Where each cell id sits in the standard template (for a rebuilt copy)."""
    layout = layout_for(format_id)
    out = {}
    for name, key in layout.format.names.items():
        sheet, slot = layout.slot(name)
        out[key] = CellRef(key, sheet.name, layout.ref(key).split("!")[1])
    return out


def _target(ref: CellRef, place: dict[str, CellRef]) -> CellRef:
    return place.get(ref.id, ref) if place else ref


def _mark_cells(workbook: openpyxl.Workbook, findings: Sequence[Finding], place: dict[str, CellRef]) -> None:
    """Fill each cell a finding names and attach the findings' messages as one comment."""
    notes: dict[tuple[str, str], list[tuple[Finding, bool]]] = defaultdict(list)
    for finding in findings:
        for i, ref in enumerate(finding.cells):
            target = _target(ref, place)
            if target.sheet in workbook.sheetnames:
                notes[(target.sheet, target.ref)].append((finding, i == 0))
    for (sheet, address), entries in notes.items():
        cell = workbook[sheet][address]
        severity = "error" if any(f.severity == "error" for f, _ in entries) else "warning"
        anchor = any(a for _, a in entries)
        cell.fill = PatternFill("solid", fgColor=FILLS[(severity, anchor)])
        lines = [text("annotate.comment", severity=_severity(f), message=f.message("zh") if a else _involved(f, place))
                 for f, a in entries]
        body = "\n".join(lines)
        if cell.comment is not None:  # keep what the office wrote
            body = f"{cell.comment.text}\n——\n{body}"
        comment = Comment(body, AUTHOR)
        comment.width, comment.height = 360, min(60 + 40 * len(lines), 400)
        cell.comment = comment


def _involved(finding: Finding, place: dict[str, CellRef]) -> str:
    anchor = _target(finding.cells[0], place)
    fmt_rule = _rule_words(finding)
    return text("annotate.involved", rule=fmt_rule, place=f"{anchor.sheet}!{anchor.ref}", message=finding.message("zh"))


def _rule_words(finding: Finding) -> str:
    """The rule a finding breaks, in plain words (never its id): an identity's description."""
    from .formats import all_formats

    for fmt in all_formats().values():
        for identity in fmt.identities:
            if identity.rule == finding.rule:
                return identity.zh
        for rule in fmt.rules:
            if rule.rule == finding.rule:
                return rule.zh
    return finding.message("zh")


def _result_sheet(workbook: openpyxl.Workbook, findings: Sequence[Finding], cleaning: Sequence[Cleaning],
                  place: dict[str, CellRef], rebuilt_from: Path | None, drawings: bool) -> None:
    title = RESULT_SHEET
    while title in workbook.sheetnames:
        title += "_"
    ws = workbook.create_sheet(title, 0)
    workbook.active = 0
    for sheet in workbook.worksheets[1:]:
        sheet.sheet_view.tabSelected = False
    row = 1
    notes = [text("annotate.rebuilt_note", name=rebuilt_from.name, suffix=rebuilt_from.suffix)] if rebuilt_from else []
    if drawings:
        notes.append(text("annotate.drawings_note"))
    for note in notes:
        _text(ws.cell(row, 1), note)
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=len(HEADERS))
        ws.cell(row, 1).alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[row].height = 48
        row += 2
    row = _table(ws, row, HEADERS, [_finding_row(i, f, place, rebuilt_from is not None)
                                    for i, f in enumerate(findings, 1)])
    if cleaning:
        _text(ws.cell(row + 1, 1), text("annotate.cleaning_heading"))
        ws.cell(row + 1, 1).font = Font(bold=True)
        _table(ws, row + 2, CLEANING_HEADERS, [
            (_target(CellRef(c.id, c.sheet, c.ref), place).sheet, _target(CellRef(c.id, c.sheet, c.ref), place).ref,
             _shown(c.raw), number_text(c.value) if not isinstance(c.value, str) else c.value, cleaning_text(c.rule))
            for c in cleaning])
    for col, width in zip("ABCDEFG", (6, 8, 16, 9, 90, 10, 10), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = ws.cell(row + 1, 1)
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def _finding_row(number: int, finding: Finding, place: dict[str, CellRef], rebuilt: bool) -> tuple[Any, ...]:
    ref = _target(finding.cells[0], place) if finding.cells else None
    shown = ref.ref if ref else ""
    if rebuilt and ref and finding.cells[0].ref != ref.ref:
        shown = text("annotate.original_place", ref=ref.ref, original=finding.cells[0].ref)
    return (number, _severity(finding), ref.sheet if ref else "", (shown, ref),
            finding.message("zh"), finding.expected, finding.actual)


def _table(ws: Worksheet, row: int, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    for col, header in enumerate(headers, 1):
        _text(ws.cell(row, col), header)
        ws.cell(row, col).font = Font(bold=True)
        ws.cell(row, col).fill = PatternFill("solid", fgColor="D9E1F2")
    for values in rows:
        row += 1
        for col, value in enumerate(values, 1):
            cell = ws.cell(row, col)
            if isinstance(value, tuple):  # (text, CellRef): a link to the flagged cell
                text, ref = value
                _text(cell, text)
                if ref is not None:
                    cell.hyperlink = Hyperlink(ref=cell.coordinate, location=f"{quote_sheetname(ref.sheet)}!{ref.ref}")
                    cell.font = Font(color="0563C1", underline="single")
            elif isinstance(value, int | float) and not isinstance(value, bool):
                cell.value = value
            else:
                _text(cell, value)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    return row + 1


def _text(cell: XlCell, value: object) -> None:
    """Write text as text: openpyxl would store a string starting with "=" as a formula."""
    cell.value = "" if value is None else str(value)
    cell.data_type = "s"


def _shown(raw: object) -> str:
    return "" if raw is None else str(raw)
