"""SpreadsheetML pieces the patcher shares: namespaces, part types, cell addresses, schema order, text
escaping, and the style sheet (`xl/styles.xml`) to which new fills, fonts and cell formats are appended
without moving any existing one."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lxml import etree

from ._opc import Package, PatchError, Rels, xstring

__all__ = [
    "CONTENT_TYPES",
    "MAIN",
    "MAX_TEXT",
    "REL",
    "REL_TYPES",
    "SHEET_ORDER",
    "Style",
    "Styles",
    "TextTooLong",
    "a1",
    "cell_range",
    "esc",
    "insert_after",
    "insert_ordered",
    "is_ref",
    "limited",
    "sheet_name",
    "split",
]

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
REL_TYPES = {"worksheet": f"{REL}/worksheet", "styles": f"{REL}/styles", "comments": f"{REL}/comments",
      "vml": f"{REL}/vmlDrawing", "office": f"{REL}/officeDocument"}
CONTENT_TYPES = {"worksheet": "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml",
       "comments": "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml",
       "vml": "application/vnd.openxmlformats-officedocument.vmlDrawing",
       "styles": "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"}
MAX_TEXT = 32767  # Excel's limit for the text of a cell or a comment
_MAX_ROW, _MAX_COL = 1048576, 16384
_REF = re.compile(r"^\$?([A-Z]{1,3})\$?([0-9]{1,7})$")
# Children of <worksheet> in schema order (ECMA-376 CT_Worksheet), to insert <legacyDrawing> in its place.
SHEET_ORDER = ("sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData", "sheetCalcPr",
                "sheetProtection", "protectedRanges", "scenarios", "autoFilter", "sortState", "dataConsolidate",
                "customSheetViews", "mergeCells", "phoneticPr", "conditionalFormatting", "dataValidations",
                "hyperlinks", "printOptions", "pageMargins", "pageSetup", "headerFooter", "rowBreaks", "colBreaks",
                "customProperties", "cellWatches", "ignoredErrors", "smartTags", "drawing", "legacyDrawing",
                "legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls", "webPublishItems",
                "tableParts", "extLst")
_STYLE_ORDER = ("numFmts", "fonts", "fills", "borders", "cellStyleXfs", "cellXfs", "cellStyles", "dxfs",
                "tableStyles", "colors", "extLst")


class TextTooLong(ValueError):
    """A text longer than a cell holds (MAX_TEXT characters): every writer raises this one."""


@dataclass(frozen=True, slots=True)
class Style:
    """How a cell of the new sheet looks: only what the marked-up copy needs."""

    fill: str | None = None  # RRGGBB, solid
    bold: bool = False
    color: str | None = None  # font colour RRGGBB
    underline: bool = False
    wrap: bool = False
    border: bool = False  # thin on all sides
    top: bool = False  # vertical alignment at the top


def insert_after(parent: etree._Element, child: etree._Element, after: Iterable[str]) -> None:
    """Insert `child` after the last existing element named in `after` (a schema order prefix)."""
    position = 0
    wanted = set(after)
    for i, el in enumerate(parent):
        if isinstance(el.tag, str) and etree.QName(el).localname in wanted:
            position = i + 1
    parent.insert(position, child)


def insert_ordered(parent: etree._Element, child: etree._Element, order: Sequence[str]) -> None:
    """Insert `child` where the schema's element order puts it among `parent`'s children."""
    rank = order.index(etree.QName(child).localname)
    for i, el in enumerate(parent):
        if isinstance(el.tag, str):
            local = etree.QName(el).localname
            if local in order and order.index(local) > rank:
                parent.insert(i, child)
                return
    parent.append(child)


# ----------------------------------------------------------------------------------------------
# Text


def limited(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def esc(text: str) -> str:
    return xstring(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def sheet_name(name: str) -> str:
    cleaned = re.sub(r"[\[\]:*?/\\]", "_", xstring(name)).strip("'") or "_"
    return cleaned[:31]


# ----------------------------------------------------------------------------------------------
# Cell addresses


def is_ref(text: str) -> bool:
    """Whether `text` is an A1 cell address inside the sheet's limits."""
    try:
        split(text)
    except PatchError:
        return False
    return True


@functools.lru_cache(maxsize=1 << 16)  # the same addresses come back in every copy of a template
def split(ref: str) -> tuple[int, int]:
    """"J8" → (8, 10): 1-based row and column."""
    m = _REF.match(ref.upper())
    if not m:
        raise PatchError(f"not a cell address: {ref!r}")
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    row = int(m.group(2))
    if not (1 <= row <= _MAX_ROW and 1 <= col <= _MAX_COL):
        raise PatchError(f"cell address out of range: {ref!r}")
    return row, col


def letters(col: int) -> str:
    out = ""
    while col:
        col, rest = divmod(col - 1, 26)
        out = chr(65 + rest) + out
    return out


def a1(row: int, col: int) -> str:
    return f"{letters(col)}{row}"


def cell_range(text: str) -> tuple[int, int, int, int] | None:
    first, _, last = text.partition(":")
    try:
        r1, c1 = split(first)
        r2, c2 = split(last or first)
    except PatchError:
        return None
    return min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2)


# ----------------------------------------------------------------------------------------------
# Styles


class Styles:
    """xl/styles.xml: fills, fonts, borders and cell formats appended; existing indexes never move."""

    def __init__(self, package: Package, rels: Rels) -> None:
        self.package, self.rels = package, rels
        self._root: etree._Element | None = None
        self.marked: dict[tuple[int, str], int] = {}
        self.fills: dict[str, int] = {}
        self.fonts: dict[tuple[bool, bool, str | None], int] = {}
        self.border: int | None = None
        self.made: dict[Style, int] = {}
        self.counts: dict[str, int] = {}
        self.xfs: list[etree._Element] | None = None

    @property
    def root(self) -> etree._Element:
        if self._root is None:
            found = self.rels.of_type(REL_TYPES["styles"])
            if found:
                self._root = self.package.xml(found[0][1])
            else:  # a workbook without styles (some generators): give it the minimal one
                root = etree.fromstring(_MINIMAL_STYLES)
                part = self.package.new_part("xl/styles{}.xml", root, CONTENT_TYPES["styles"])
                self.rels.add(REL_TYPES["styles"], part)
                self._root = root
        return self._root

    def _list(self, name: str) -> etree._Element:
        el = self.root.find(f"{{{MAIN}}}{name}")
        if el is None:
            el = etree.Element(f"{{{MAIN}}}{name}")
            insert_ordered(self.root, el, _STYLE_ORDER)
            if name == "fills":  # Excel reserves the first two fills
                etree.SubElement(etree.SubElement(el, f"{{{MAIN}}}fill"), f"{{{MAIN}}}patternFill",
                                 patternType="none")
                etree.SubElement(etree.SubElement(el, f"{{{MAIN}}}fill"), f"{{{MAIN}}}patternFill",
                                 patternType="gray125")
            if name in ("fonts", "borders", "cellXfs"):
                el.append(etree.fromstring(_DEFAULTS[name]))
        return el

    def _append(self, name: str, child: etree._Element) -> int:
        parent = self._list(name)
        if name not in self.counts:
            self.counts[name] = sum(1 for el in parent if isinstance(el.tag, str))
        parent.append(child)
        self.counts[name] += 1
        parent.set("count", str(self.counts[name]))
        return self.counts[name] - 1

    def _fill(self, rgb: str) -> int:
        if rgb not in self.fills:
            fill = etree.Element(f"{{{MAIN}}}fill")
            pattern = etree.SubElement(fill, f"{{{MAIN}}}patternFill", patternType="solid")
            etree.SubElement(pattern, f"{{{MAIN}}}fgColor", rgb="FF" + rgb.upper())
            etree.SubElement(pattern, f"{{{MAIN}}}bgColor", indexed="64")
            self.fills[rgb] = self._append("fills", fill)
        return self.fills[rgb]

    def with_fill(self, xf: int, rgb: str) -> int:
        """The index of a cell format equal to format `xf` but with a solid `rgb` fill."""
        key = (xf, rgb)
        if key not in self.marked:
            if self.xfs is None:  # the office's own formats, indexed once (new ones only ever follow them)
                self.xfs = [el for el in self._list("cellXfs") if isinstance(el.tag, str)]
            base = self.xfs[xf] if 0 <= xf < len(self.xfs) else self.xfs[0]
            new = copy.deepcopy(base)
            new.set("fillId", str(self._fill(rgb)))
            new.set("applyFill", "1")
            self.marked[key] = self._append("cellXfs", new)
        return self.marked[key]

    def of(self, style: Style) -> int:
        """The index of a cell format for a cell of the new sheet."""
        if style not in self.made:
            xf = etree.Element(f"{{{MAIN}}}xf", numFmtId="0", fontId="0", fillId="0", borderId="0", xfId="0")
            if style.bold or style.color or style.underline:
                xf.set("fontId", str(self._font(style)))
                xf.set("applyFont", "1")
            if style.fill:
                xf.set("fillId", str(self._fill(style.fill)))
                xf.set("applyFill", "1")
            if style.border:
                if self.border is None:
                    self.border = self._append("borders", etree.fromstring(_THIN))
                xf.set("borderId", str(self.border))
                xf.set("applyBorder", "1")
            if style.wrap or style.top:
                xf.set("applyAlignment", "1")
                align = etree.SubElement(xf, f"{{{MAIN}}}alignment")
                if style.top:
                    align.set("vertical", "top")
                if style.wrap:
                    align.set("wrapText", "1")
            self.made[style] = self._append("cellXfs", xf)
        return self.made[style]

    def _font(self, style: Style) -> int:
        key = (style.bold, style.underline, style.color)
        if key not in self.fonts:
            self.fonts[key] = self._new_font(style)
        return self.fonts[key]

    def _new_font(self, style: Style) -> int:
        fonts = [el for el in self._list("fonts") if isinstance(el.tag, str)]
        base = fonts[0] if fonts else etree.fromstring(_DEFAULTS["fonts"])
        font = etree.Element(f"{{{MAIN}}}font")
        if style.bold:
            etree.SubElement(font, f"{{{MAIN}}}b")
        if style.underline:
            etree.SubElement(font, f"{{{MAIN}}}u")
        for name in ("sz", "color", "name", "family", "charset", "scheme"):
            if name == "color" and style.color:
                etree.SubElement(font, f"{{{MAIN}}}color", rgb="FF" + style.color.upper())
                continue
            found = base.find(f"{{{MAIN}}}{name}")
            if found is not None:
                font.append(copy.deepcopy(found))
        return self._append("fonts", font)


_MINIMAL_STYLES = (f'<styleSheet xmlns="{MAIN}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font>'
                   '</fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill '
                   'patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/><bottom/>'
                   '<diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" '
                   'borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" '
                   'borderId="0" xfId="0"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" '
                   'builtinId="0"/></cellStyles></styleSheet>')
_DEFAULTS = {"fonts": f'<font xmlns="{MAIN}"><sz val="11"/><name val="Calibri"/></font>',
             "borders": f'<border xmlns="{MAIN}"><left/><right/><top/><bottom/><diagonal/></border>',
             "cellXfs": f'<xf xmlns="{MAIN}" numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'}
_THIN = (f'<border xmlns="{MAIN}">' + "".join(f'<{s} style="thin"><color auto="1"/></{s}>'
                                              for s in ("left", "right", "top", "bottom")) + "<diagonal/></border>")
