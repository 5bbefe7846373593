"""Mark up an .xlsx/.xlsm package by patching its parts, never by loading and saving the workbook.

A library that loads a workbook into its own model and saves it again writes back only what it models:
pictures, charts, macros, form controls and newer Excel features can be lost, and cached formula
results are dropped. Here the office's zip is copied member by member and only the parts that must
change are rewritten: `xl/styles.xml` (new fills, fonts and cell formats appended; every existing one
kept at its index), the marked sheets (a cell's style index, inserted `<c>`/`<row>` elements, a
`<legacyDrawing>`), their comments and VML parts and relationships, `xl/workbook.xml` (a new first
sheet; sheet-local defined names shifted), its relationships and `[Content_Types].xml`. Every other
member is written back with identical content.

Text is always written as text (an inline string or a comment run, XML-escaped, control characters in
the `_xHHHH_` form Excel uses); nothing written here is ever a formula or an external link.
This module knows nothing about reports; `annotate` decides what to mark.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

from ._opc import Package, PatchError, Rels, resolve, xstring
from ._sheetml import (
    CONTENT_TYPES,
    MAIN,
    MAX_TEXT,
    REL,
    REL_TYPES,
    SHEET_ORDER,
    Style,
    Styles,
    a1,
    cell_range,
    esc,
    insert_after,
    insert_ordered,
    is_ref,
    limited,
    sheet_name,
    split,
)

__all__ = ["MAX_TEXT", "Cell", "Link", "Mark", "NewSheet", "PatchError", "PatchResult", "Style", "patch_workbook",
           "quote_sheet"]

_WORKBOOK_AFTER_SHEETS = ("sheets", "functionGroups", "externalReferences")


@dataclass(frozen=True, slots=True)
class Mark:
    """One cell of an existing sheet: the fill it gets and the text added to its comment.

    A cell inside a merged range is marked on the range's top-left cell (the one Excel shows); when
    several marks land on one cell, the first one's fill is used and their comments follow one another.
    """

    sheet: str
    ref: str
    fill: str | None = None  # RRGGBB; the cell keeps its number format, font, border and protection
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """An internal hyperlink to a cell of the workbook (never to a file or a URL)."""

    sheet: str
    ref: str


@dataclass(frozen=True, slots=True)
class Cell:
    """A cell of the new sheet: text is written as an inline string, numbers as numbers."""

    value: str | int | float | None = None
    style: Style = field(default_factory=Style)
    link: Link | None = None


@dataclass(frozen=True)
class NewSheet:
    """A sheet added in front of the others, printed landscape and one page wide.

    `rows[i]` is row i + 1; `heights` maps 1-based rows to points; `merges` are A1 ranges; the
    `header_row` (1-based) is repeated on every printed page, and the panes are frozen below it.
    """

    name: str
    rows: Sequence[Sequence[Cell]]
    widths: Sequence[float]
    heights: Mapping[int, float] = field(default_factory=dict)
    merges: Sequence[str] = ()
    header_row: int | None = None


@dataclass(frozen=True, slots=True)
class PatchResult:
    """What was written: the new sheet's final name, cells filled, cells commented, and the marks left out
    (no such worksheet, or not a cell address)."""

    sheet_name: str | None
    marked: int
    comments: int
    missing: tuple[Mark, ...]


def quote_sheet(name: str) -> str:
    """A sheet name as a formula or link writes it: always quoted, inner quotes doubled."""
    return "'" + name.replace("'", "''") + "'"


def patch_workbook(source: str | Path, target: str | Path | IO[bytes], marks: Sequence[Mark],
                   sheet: NewSheet | None = None, *, author: str = "",
                   properties: Mapping[str, str] | None = None) -> PatchResult:
    """Copy the package `source` to `target` with `marks` applied, `sheet` inserted first and the custom
    document `properties` set (docProps/custom.xml, made if the package has none).

    Raises:
        PatchError: the package is damaged or of a kind this module does not patch (the caller reports
            it); `source` is only read.
    """
    try:
        with open(source, "rb") as stream, zipfile.ZipFile(stream) as archive:
            package = _Book(archive)
            result = package.apply(marks, sheet, author)
            if properties:
                _set_properties(package, properties)
            package.write(stream, target)
            return result
    except (zipfile.BadZipFile, zipfile.LargeZipFile, etree.XMLSyntaxError, KeyError, EOFError, zlib.error,
            NotImplementedError, RuntimeError, UnicodeDecodeError, struct.error) as exc:
        raise PatchError(f"{type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# The package


class _Book(Package):
    """The package as a workbook: its sheets by name, and the changes this module makes to it."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        super().__init__(archive)
        office = [r for r in self.parse("_rels/.rels") if r.get("Type") == REL_TYPES["office"]]
        if not office:
            raise PatchError("no workbook part in the package")
        self.workbook_part = resolve("", office[0].get("Target", ""))
        workbook = self.parse(self.workbook_part)
        if etree.QName(workbook).namespace != MAIN:
            raise PatchError("not a transitional SpreadsheetML workbook (strict OOXML is not patched)")
        self.book_rels = self.rels(self.workbook_part)
        self.sheets: dict[str, str] = {}  # worksheet name → part (chart and macro sheets are never marked)
        self.sheet_list: list[tuple[str, str]] = []  # every sheet in order, with its part
        for el in workbook.iterfind(f"{{{MAIN}}}sheets/{{{MAIN}}}sheet"):
            rid, name = el.get(f"{{{REL}}}id", ""), el.get("name", "")
            target = self.book_rels.target(rid)
            if self.book_rels.target(rid, REL_TYPES["worksheet"]) is not None and self.name(target or "") is not None:
                self.sheets[name] = self.name(target or "") or ""
            self.sheet_list.append((name, target or ""))

    # the work -----------------------------------------------------------------------------

    def apply(self, marks: Sequence[Mark], sheet: NewSheet | None, author: str) -> PatchResult:
        styles = Styles(self, self.book_rels)
        by_sheet: dict[str, list[Mark]] = {}
        missing = []
        for mark in marks:
            if mark.sheet in self.sheets and is_ref(mark.ref):
                by_sheet.setdefault(mark.sheet, []).append(mark)
            else:
                missing.append(mark)
        marked = comments = 0
        blocks = _VmlBlocks(self)
        for name, sheet_marks in by_sheet.items():
            m, c = _mark_sheet(self, self.sheets[name], sheet_marks, styles, author, blocks)
            marked, comments = marked + m, comments + c
        final = None
        if sheet is not None:
            final = self._insert_sheet(sheet, styles)
        return PatchResult(final, marked, comments, tuple(missing))

    def _insert_sheet(self, sheet: NewSheet, styles: Styles) -> str:
        taken = {n.lower() for n in self.sheets} | {n.lower() for n, _ in self.sheet_list}
        name = sheet_name(sheet.name)
        while name.lower() in taken:
            name = sheet_name(name[:30] + "_")
        part = self.new_part("xl/worksheets/sheet{}.xml", _sheet_xml(sheet, name, styles), CONTENT_TYPES["worksheet"])
        rid = self.book_rels.add(REL_TYPES["worksheet"], part)
        workbook = self.xml(self.workbook_part)
        sheets = workbook.find(f"{{{MAIN}}}sheets")
        if sheets is None:
            raise PatchError("the workbook lists no sheets")
        ids = [int(s.get("sheetId", "0")) for s in sheets if s.get("sheetId", "").isdigit()]
        el = etree.Element(f"{{{MAIN}}}sheet")
        el.set("name", name)
        el.set("sheetId", str(max(ids, default=0) + 1))
        el.set(f"{{{REL}}}id", rid)
        sheets.insert(0, el)
        names = workbook.find(f"{{{MAIN}}}definedNames")
        for dn in names if names is not None else ():
            local = dn.get("localSheetId")
            if local is not None and local.isdigit():  # names local to a sheet follow it to its new index
                dn.set("localSheetId", str(int(local) + 1))
        if sheet.header_row:
            if names is None:
                names = etree.Element(f"{{{MAIN}}}definedNames")
                insert_after(workbook, names, _WORKBOOK_AFTER_SHEETS)
            dn = etree.Element(f"{{{MAIN}}}definedName")
            dn.set("name", "_xlnm.Print_Titles")
            dn.set("localSheetId", "0")
            dn.text = f"{quote_sheet(name)}!${sheet.header_row}:${sheet.header_row}"
            names.insert(0, dn)
        views = workbook.find(f"{{{MAIN}}}bookViews")
        if views is None:
            views = etree.Element(f"{{{MAIN}}}bookViews")
            sheets.addprevious(views)
        if not len(views):
            etree.SubElement(views, f"{{{MAIN}}}workbookView")
        active = views[0].get("activeTab", "0")
        for view in views:
            for attr in ("activeTab", "firstSheet"):
                view.attrib.pop(attr, None)
        self._deselect_tabs(int(active) if active.isdigit() else 0)
        return name

    def _deselect_tabs(self, active: int) -> None:
        """The new first sheet is the one selected: a second selected tab would group the sheets.

        The office's selected tab is its active sheet (the only one, unless it saved a group of sheets);
        sheets being patched anyway are cleared too, the others are not even read.
        """
        for index, (_, target) in enumerate(self.sheet_list):
            part = self.name(target) if target else None
            if part is None:
                continue
            if part in self.trees:
                for view in self.trees[part].iterfind(f"{{{MAIN}}}sheetViews/{{{MAIN}}}sheetView"):
                    view.attrib.pop("tabSelected", None)
                continue
            if index != active:
                continue
            data = self.read(part)
            if b"tabSelected" in data:
                fixed = _TAB_SELECTED.sub(lambda m: m.group(1) + m.group(3), data)
                if fixed != data:
                    self.changed[part] = fixed

_TAB_SELECTED = re.compile(rb'(<(?:[A-Za-z_][\w.-]*:)?sheetView\b[^>]*?)(\s+tabSelected\s*=\s*["\'](?:1|true)["\'])'
                           rb'([^>]*>)')


# ----------------------------------------------------------------------------------------------
# Marking a sheet


def _mark_sheet(package: _Book, part: str, marks: Sequence[Mark], styles: Styles, author: str,
                blocks: _VmlBlocks) -> tuple[int, int]:
    """Fill and comment the marked cells of one sheet; returns (cells marked, comments written)."""
    root = package.xml(part)
    data = root.find(f"{{{MAIN}}}sheetData")
    if data is None:
        data = etree.Element(f"{{{MAIN}}}sheetData")
        insert_ordered(root, data, SHEET_ORDER)
    found = root.iterfind(f"{{{MAIN}}}mergeCells/{{{MAIN}}}mergeCell")
    merges = [r for r in (cell_range(m.get("ref", "")) for m in found) if r is not None]
    grid = _Grid(data)
    fills: dict[tuple[int, int], str] = {}
    notes: dict[tuple[int, int], list[str]] = {}
    for mark in marks:  # several marks on one merged range: the first fill wins, the comments add up
        row, col = _top_left(split(mark.ref), merges)
        if mark.fill:
            fills.setdefault((row, col), mark.fill)
        if mark.comment:
            notes.setdefault((row, col), []).append(mark.comment)
    for (row, col), rgb in fills.items():
        cell = grid.cell(row, col)
        old = cell.get("s", "0")
        cell.set("s", str(styles.with_fill(int(old) if old.isdigit() else 0, rgb)))
    _extend_dimension(root, fills)
    if notes:
        _comment_sheet(package, part, root, notes, author, blocks)
    return len(fills), len(notes)


CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
CUSTOM_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
CUSTOM_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
_PROPERTY_FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"  # the fmtid every custom property carries


def _set_properties(package: _Book, properties: Mapping[str, str]) -> None:
    """Set text custom properties, keeping every other property of the package as it was."""
    found = [part for _, part in package.rels("").of_type(CUSTOM_REL) if package.name(part) is not None]
    if found:
        root = package.xml(package.name(found[0]) or found[0])
    else:
        root = etree.Element(f"{{{CUSTOM_NS}}}Properties", nsmap={None: CUSTOM_NS, "vt": VT_NS})
        part = package.new_part("docProps/custom{}.xml", root, CUSTOM_TYPE)
        package.rels("").add(CUSTOM_REL, part)
    by_name = {p.get("name"): p for p in root if isinstance(p.tag, str)}
    for name, value in properties.items():
        prop = by_name.get(name)
        if prop is None:
            pids = [int(p.get("pid", "1")) for p in by_name.values() if p.get("pid", "").isdigit()]
            prop = etree.SubElement(root, f"{{{CUSTOM_NS}}}property")
            prop.set("fmtid", _PROPERTY_FMTID)
            prop.set("pid", str(max([1, *pids]) + 1))
            prop.set("name", name)
            by_name[name] = prop
        for child in list(prop):
            prop.remove(child)
        etree.SubElement(prop, f"{{{VT_NS}}}lpwstr").text = value


def _top_left(cell: tuple[int, int], merges: Sequence[tuple[int, int, int, int]]) -> tuple[int, int]:
    row, col = cell
    for r1, c1, r2, c2 in merges:
        if r1 <= row <= r2 and c1 <= col <= c2:
            return r1, c1
    return row, col


class _Grid:
    """The rows and cells of <sheetData>, found or inserted in order (rows and cells must stay sorted)."""

    def __init__(self, data: etree._Element) -> None:
        self.data = data
        self.rows: dict[int, etree._Element] = {}
        self.cells: dict[int, dict[int, etree._Element]] = {}
        implicit = 0
        for row in data.iterfind(f"{{{MAIN}}}row"):
            r = row.get("r")
            implicit = int(r) if r and r.isdigit() else implicit + 1
            if not r:  # an omitted index is "the next row": made explicit so that insertions keep it
                row.set("r", str(implicit))
            self.rows[implicit] = row

    def row(self, number: int) -> etree._Element:
        if number not in self.rows:
            el = etree.Element(f"{{{MAIN}}}row", r=str(number))
            after = [n for n in self.rows if n > number]
            if after:
                self.rows[min(after)].addprevious(el)
            else:
                self.data.append(el)
            self.rows[number] = el
        return self.rows[number]

    def cell(self, row: int, col: int) -> etree._Element:
        row_el = self.row(row)
        cells = self.cells.get(row)
        if cells is None:
            cells = self.cells[row] = {}
            implicit = 0
            for c in row_el.iterfind(f"{{{MAIN}}}c"):
                r = c.get("r")
                implicit = split(r)[1] if r else implicit + 1
                if not r:
                    c.set("r", a1(row, implicit))
                cells[implicit] = c
        if col in cells:
            return cells[col]
        el = etree.Element(f"{{{MAIN}}}c", r=a1(row, col))
        after = [n for n in cells if n > col]
        if after:
            cells[min(after)].addprevious(el)
        else:
            ext = row_el.find(f"{{{MAIN}}}extLst")
            if ext is not None:
                ext.addprevious(el)
            else:
                row_el.append(el)
        cells[col] = el
        spans = row_el.get("spans")
        if spans:  # only a hint for Excel; widened so that it still covers every cell of the row
            m = re.fullmatch(r"(\d+):(\d+)", spans)
            if m:
                row_el.set("spans", f"{min(int(m.group(1)), col)}:{max(int(m.group(2)), col)}")
            else:
                del row_el.attrib["spans"]
        return el


def _extend_dimension(root: etree._Element, cells: Iterable[tuple[int, int]]) -> None:
    dim = root.find(f"{{{MAIN}}}dimension")
    points = list(cells)
    if dim is None or not points:
        return
    box = cell_range(dim.get("ref", ""))
    rows = [r for r, _ in points] + ([box[0], box[2]] if box else [])
    cols = [c for _, c in points] + ([box[1], box[3]] if box else [])
    dim.set("ref", f"{a1(min(rows), min(cols))}:{a1(max(rows), max(cols))}")


# ----------------------------------------------------------------------------------------------
# Comments and their VML shapes


class _VmlBlocks:
    """Shape id blocks (o:idmap) of 1,024 ids each, unique across the workbook's VML parts."""

    def __init__(self, package: _Book) -> None:
        self.package = package
        self.used: set[int] | None = None

    def take(self, count: int) -> list[int]:
        if self.used is None:  # read on first use: most copies add no comment to a sheet with VML
            self.used = set()
            for info in self.package.infos:
                if info.filename.lower().endswith(".vml"):
                    for m in _IDMAP.finditer(self.package.archive.read(info)):
                        self.used.update(int(x) for x in m.group(2).split(b",") if x.strip().isdigit())
        out: list[int] = []
        n = 1
        while len(out) < count:
            if n not in self.used:
                out.append(n)
                self.used.add(n)
            n += 1
        return out


def _comment_sheet(package: _Book, part: str, root: etree._Element, notes: Mapping[tuple[int, int], list[str]],
                   author: str, blocks: _VmlBlocks) -> None:
    rels = package.rels(part)
    found = rels.of_type(REL_TYPES["comments"])
    if found:
        comments_part = found[0][1]
        comments = package.xml(comments_part)
    else:
        comments = etree.Element(f"{{{MAIN}}}comments", nsmap={None: MAIN})
        etree.SubElement(comments, f"{{{MAIN}}}authors")
        etree.SubElement(comments, f"{{{MAIN}}}commentList")
        comments_part = package.new_part("xl/comments{}.xml", comments, CONTENT_TYPES["comments"])
        rels.add(REL_TYPES["comments"], comments_part)
    authors = comments.find(f"{{{MAIN}}}authors")
    if authors is None:
        authors = etree.Element(f"{{{MAIN}}}authors")
        comments.insert(0, authors)
    names = [a.text or "" for a in authors]
    if author not in names:
        etree.SubElement(authors, f"{{{MAIN}}}author").text = xstring(author)
        names.append(author)
    author_id = str(names.index(author))
    listing = comments.find(f"{{{MAIN}}}commentList")
    if listing is None:
        listing = etree.SubElement(comments, f"{{{MAIN}}}commentList")
    existing: dict[tuple[int, int], etree._Element] = {}
    for c in listing:
        try:
            existing[split(c.get("ref", ""))] = c
        except PatchError:
            continue
    new_cells = []
    for (row, col), texts in sorted(notes.items()):
        ours = "\n".join(texts)
        comment = existing.get((row, col))
        if comment is None:
            comment = etree.SubElement(listing, f"{{{MAIN}}}comment", ref=a1(row, col), authorId=author_id)
            etree.SubElement(comment, f"{{{MAIN}}}text")
            new_cells.append((row, col, ours))
            _append_run(comment, ours)
        else:  # the office's own comment stays first; ours follows a separator
            theirs = "".join(comment.itertext())
            room = MAX_TEXT - len(theirs) - 4
            if room > 0:
                _append_run(comment, "\n\u2014\u2014\n" + limited(ours, room))
    if new_cells:
        _add_shapes(package, part, root, rels, new_cells, blocks)


def _append_run(comment: etree._Element, text: str) -> None:
    body = comment.find(f"{{{MAIN}}}text")
    if body is None:
        body = etree.SubElement(comment, f"{{{MAIN}}}text")
    plain = body.find(f"{{{MAIN}}}t")
    if plain is not None:  # a plain <t> becomes the first run, so that runs can follow it
        run = etree.Element(f"{{{MAIN}}}r")
        plain.addprevious(run)
        run.append(plain)
    run = etree.Element(f"{{{MAIN}}}r")
    phonetic = body.find(f"{{{MAIN}}}rPh")
    if phonetic is not None:
        phonetic.addprevious(run)
    else:
        body.append(run)
    t = etree.SubElement(run, f"{{{MAIN}}}t")
    t.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
    t.text = xstring(limited(text))


def _add_shapes(package: _Book, part: str, root: etree._Element, rels: Rels,
                cells: Sequence[tuple[int, int, str]], blocks: _VmlBlocks) -> None:
    """The hidden note boxes Excel and LibreOffice show on hover: one VML shape per new comment."""
    legacy = root.find(f"{{{MAIN}}}legacyDrawing")
    vml_part = rels.target(legacy.get(f"{{{REL}}}id", "")) if legacy is not None else None
    id_blocks = blocks.take(len(cells) // 1024 + 1)
    shapes = "".join(_shape(id_blocks[i // 1024] * 1024 + i % 1024 + 1, row, col, text)
                     for i, (row, col, text) in enumerate(cells))
    if vml_part is not None and package.name(vml_part) is not None:
        data = package.read(vml_part)  # VML is often not well-formed XML: edited as text, not parsed
        package.changed[package.name(vml_part) or vml_part] = _with_shapes(data, shapes, id_blocks, vml_part)
        return
    vml = (_VML_HEAD.format(blocks=",".join(map(str, id_blocks))) + _SHAPETYPE + shapes + "</xml>").encode()
    package.ensure_default("vml", CONTENT_TYPES["vml"])
    vml_part = package.new_part("xl/drawings/vmlDrawing{}.vml", vml, None)
    rid = rels.add(REL_TYPES["vml"], vml_part)
    if legacy is None:
        legacy = etree.Element(f"{{{MAIN}}}legacyDrawing")
        insert_ordered(root, legacy, SHEET_ORDER)
    legacy.set(f"{{{REL}}}id", rid)


def _with_shapes(data: bytes, shapes: str, id_blocks: Sequence[int], part: str) -> bytes:
    """An existing VML drawing (Excel's, LibreOffice's, a button's) with our note shapes appended."""
    start = _VML_ROOT.search(data)
    end = data.rfind(b"</xml>")
    if start is None or end < start.end():
        raise PatchError(f"{part} is not a VML drawing")
    head = start.group()
    for prefix, uri in _VML_NS.items():  # our shapes use these prefixes: declare any the drawing lacks
        if b"xmlns:" + prefix not in head:
            head = head[:-1] + b' xmlns:%s="%s">' % (prefix, uri)
    blocks = ",".join(map(str, id_blocks)).encode()
    body = data[start.end():end]
    if _IDMAP.search(body):
        body = _IDMAP.sub(lambda m: m.group(1) + b",".join(x for x in (m.group(2).strip(), blocks) if x)
                          + m.group(3), body, count=1)
    else:  # LibreOffice writes none: declare the id blocks our shapes use
        body = b'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="%s"/></o:shapelayout>' % blocks + body
    if b"_x0000_t202" not in data:
        shapes = _SHAPETYPE + shapes
    return data[:start.start()] + head + body + shapes.encode() + data[end:]


_VML_ROOT = re.compile(rb"<xml\b[^>]*>")
_VML_NS = {b"v": b"urn:schemas-microsoft-com:vml", b"o": b"urn:schemas-microsoft-com:office:office",
           b"x": b"urn:schemas-microsoft-com:office:excel"}
_IDMAP = re.compile(rb'(<o:idmap\b[^>]*\bdata\s*=\s*")([\d,\s]*)(")')
_VML_HEAD = ('<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
             'xmlns:x="urn:schemas-microsoft-com:office:excel"><o:shapelayout v:ext="edit">'
             '<o:idmap v:ext="edit" data="{blocks}"/></o:shapelayout>')
_SHAPETYPE = ('<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" path="m,l,21600r21600,l21600,xe">'
              '<v:stroke joinstyle="miter"/><v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>')


def _shape(shape_id: int, row: int, col: int, text: str) -> str:
    lines = sum(len(part) // 24 + 1 for part in text.split("\n"))
    height = max(4, min(lines + 1, 40))
    anchor = f"{col}, 15, {max(row - 2, 0)}, 2, {col + 5}, 15, {max(row - 2, 0) + height}, 2"
    return (f'<v:shape id="_x0000_s{shape_id}" type="#_x0000_t202" style="position:absolute;margin-left:59.25pt;'
            f'margin-top:1.5pt;width:300pt;height:{15 * height}pt;z-index:{shape_id % 1024};visibility:hidden" '
            'fillcolor="#ffffe1" o:insetmode="auto"><v:fill color2="#ffffe1"/>'
            '<v:shadow on="t" color="black" obscured="t"/><v:path o:connecttype="none"/>'
            '<v:textbox style="mso-direction-alt:auto"><div style="text-align:left"></div></v:textbox>'
            '<x:ClientData ObjectType="Note"><x:MoveWithCells/><x:SizeWithCells/>'
            f'<x:Anchor>{anchor}</x:Anchor><x:AutoFill>False</x:AutoFill>'
            f'<x:Row>{row - 1}</x:Row><x:Column>{col - 1}</x:Column></x:ClientData></v:shape>')


# ----------------------------------------------------------------------------------------------
# The new sheet


def _sheet_xml(sheet: NewSheet, name: str, styles: Styles) -> bytes:
    out = io.StringIO()
    w = out.write
    last_col = max([len(sheet.widths)] + [len(r) for r in sheet.rows] + [1])
    last_row = max(len(sheet.rows), 1)
    w(f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{MAIN}" xmlns:r="{REL}">')
    w('<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>')
    w(f'<dimension ref="A1:{a1(last_row, last_col)}"/>')
    w('<sheetViews><sheetView tabSelected="1" workbookViewId="0">')
    if sheet.header_row:
        below = a1(sheet.header_row + 1, 1)
        w(f'<pane ySplit="{sheet.header_row}" topLeftCell="{below}" activePane="bottomLeft" state="frozen"/>'
          f'<selection pane="bottomLeft" activeCell="{below}" sqref="{below}"/>')
    w('</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>')
    if sheet.widths:
        w("<cols>")
        for i, width in enumerate(sheet.widths, 1):
            w(f'<col min="{i}" max="{i}" width="{float(width):g}" customWidth="1"/>')
        w("</cols>")
    w("<sheetData>")
    links = []
    known: dict[int, int] = {}  # style object → format index (the same few styles serve every cell)
    for r, cells in enumerate(sheet.rows, 1):
        height = sheet.heights.get(r)
        w(f'<row r="{r}"' + (f' ht="{min(float(height), 409.0):g}" customHeight="1"' if height else "") + ">")
        for c, cell in enumerate(cells, 1):
            ref = a1(r, c)
            s = known.get(id(cell.style))
            if s is None:
                s = known[id(cell.style)] = styles.of(cell.style)
            value = cell.value
            if isinstance(value, bool) or value is None or (isinstance(value, float) and not math.isfinite(value)):
                w(f'<c r="{ref}" s="{s}"/>')
            elif isinstance(value, int | float):
                w(f'<c r="{ref}" s="{s}"><v>{value!r}</v></c>')
            else:
                w(f'<c r="{ref}" s="{s}" t="inlineStr"><is><t xml:space="preserve">{esc(limited(str(value)))}'
                  "</t></is></c>")
            if cell.link is not None:
                links.append((ref, cell.link))
        w("</row>")
    w("</sheetData>")
    if sheet.merges:
        w(f'<mergeCells count="{len(sheet.merges)}">' + "".join(f'<mergeCell ref="{m}"/>' for m in sheet.merges)
          + "</mergeCells>")
    if links:
        w("<hyperlinks>")
        for ref, link in links:
            w(f'<hyperlink ref="{ref}" location="{esc(quote_sheet(link.sheet))}!{esc(link.ref)}" '
              f'display="{esc(link.ref)}"/>')
        w("</hyperlinks>")
    w('<pageMargins left="0.5" right="0.5" top="0.6" bottom="0.6" header="0.3" footer="0.3"/>'
      '<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" fitToHeight="0"/></worksheet>')
    return out.getvalue().encode("utf-8")
