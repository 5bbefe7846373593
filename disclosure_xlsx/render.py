"""Render a report document (the model `publish` builds) as Word (.docx, python-docx) and as a standalone
HTML page, in the typography of GB/T 9704-2012 (`data/typography.toml`).

The model holds only text and table cells; every text in it is written as text: a plain run in Word,
escaped in HTML. Nothing here knows about formats or workbooks.
"""

from __future__ import annotations

import html
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from docx import Document as new_document
from docx.document import Document as DocxDocument
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor
from docx.styles.style import ParagraphStyle
from docx.table import _Cell
from docx.text.paragraph import Paragraph

from ._xlsx import atomic_output

__all__ = ["Para", "ReportDocument", "Table", "TableCell", "Typography", "render_html", "typography", "write_docx",
           "write_html"]

# ------------------------------------------------------------------------------------------------
# The document model


@dataclass(frozen=True, slots=True)
class Para:
    """One paragraph: its kind decides its typography (title | mark | preamble | note | heading1 | heading2 | body)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class TableCell:
    """A cell of a table, merged when it spans more than one row or column (0-based, inclusive)."""

    row: int
    col: int
    last_row: int
    last_col: int
    text: str
    style: str  # header | label | note | caption | value
    cell_id: str | None = None

    @property
    def rowspan(self) -> int:
        return self.last_row - self.row + 1

    @property
    def colspan(self) -> int:
        return self.last_col - self.col + 1


@dataclass(frozen=True)
class Table:
    """One official table (section 二, 三 or 四) as printed."""

    section: str
    rows: int
    widths: tuple[float, ...]  # relative column widths
    cells: tuple[TableCell, ...]
    header_rows: int  # rows repeated at the top of every page the table runs onto (0: none)
    keep: tuple[tuple[int, int], ...]  # row ranges (first, last) never split across pages


@dataclass(frozen=True)
class ReportDocument:
    title: str
    lang: str
    mark: str | None  # the draft stamp, on every page
    blocks: tuple[Para | Table, ...]

    @property
    def headings(self) -> list[str]:
        return [b.text for b in self.blocks if isinstance(b, Para) and b.kind == "heading1"]


# ------------------------------------------------------------------------------------------------
# Typography (data/typography.toml)


@dataclass(frozen=True, slots=True)
class Role:
    fonts: tuple[str, ...]
    generic: str
    size_pt: float
    bold: bool
    line_pt: float | None = None
    pad_pt: float = 0
    color: str | None = None


@dataclass(frozen=True)
class Typography:
    page: Mapping[str, float]
    roles: Mapping[str, Role]
    latin: tuple[str, ...]
    page_number: tuple[str, str]


@cache
def typography() -> Typography:
    data = tomllib.loads(resources.files("disclosure_xlsx").joinpath("data/typography.toml").read_text("utf-8"))
    roles = {k: Role(**{**v, "fonts": tuple(v["fonts"])}) for k, v in data["roles"].items()}
    page = {k: v for k, v in data["page"].items() if isinstance(v, int | float)}
    return Typography(page, roles, tuple(data["latin"]["fonts"]),
                      (data["page"]["number_before"], data["page"]["number_after"]))


# ------------------------------------------------------------------------------------------------
# Word


_ALIGN = {"header": WD_ALIGN_PARAGRAPH.CENTER, "note": WD_ALIGN_PARAGRAPH.CENTER,
          "caption": WD_ALIGN_PARAGRAPH.CENTER, "value": WD_ALIGN_PARAGRAPH.CENTER, "label": WD_ALIGN_PARAGRAPH.LEFT}
_STYLE = {"title": "Title", "heading1": "Heading 1", "heading2": "Heading 2", "mark": "Draft Mark",
          "note": "Normal", "preamble": "Normal", "body": "Normal"}


def write_docx(document: ReportDocument, path: str | Path) -> Path:
    """The report as a Word document: A4 with the GB/T 9704 margins, fonts declared for East Asian text
    (with an alternative for Word and WPS), page numbers, tables whose headers repeat and stay with their rows."""
    docx = new_document()
    _styles(docx, document.lang)
    _page(docx, document.mark)
    style_ids = {name: docx.styles[name].style_id for name in set(_STYLE.values())}
    for block in document.blocks:
        if isinstance(block, Table):
            _docx_table(docx, block)
        else:
            para = docx.add_paragraph(block.text)
            para._p.style = style_ids[_STYLE[block.kind]]
    properties = docx.core_properties
    properties.title = document.title
    properties.language = _html_lang(document.lang)
    properties.author = properties.last_modified_by = ""
    properties.comments = ""
    path = Path(path)
    with atomic_output(path) as tmp:
        docx.save(str(tmp))
    return path


def _styles(docx: DocxDocument, lang: str) -> None:
    t = typography()
    styles = docx.styles
    defaults = styles.element.find(qn("w:docDefaults"))
    if defaults is not None:
        rpr = defaults.find(f"{qn('w:rPrDefault')}/{qn('w:rPr')}")
        if rpr is not None:
            _fonts(rpr, t.roles["body"])
            language = rpr.find(qn("w:lang"))
            if language is not None:
                language.set(qn("w:val"), _html_lang(lang))
                language.set(qn("w:eastAsia"), "zh-CN")
    line = Pt(t.page["line_pitch_pt"])
    indent = t.page["indent_chars"]
    _style(styles["Normal"], t.roles["body"], line=line, indent=indent, align=WD_ALIGN_PARAGRAPH.JUSTIFY)
    _style(styles["Title"], t.roles["title"], line=Pt(t.roles["title"].line_pt or t.roles["title"].size_pt * 1.5),
           indent=0, align=WD_ALIGN_PARAGRAPH.CENTER, after=line)
    _style(styles["Heading 1"], t.roles["heading1"], line=line, indent=indent, keep=True)
    _style(styles["Heading 2"], t.roles["heading2"], line=line, indent=indent, keep=True)
    mark = styles.add_style("Draft Mark", WD_STYLE_TYPE.PARAGRAPH)
    mark.base_style = styles["Normal"]
    _style(mark, t.roles["mark"], line=line, indent=0, align=WD_ALIGN_PARAGRAPH.CENTER)
    table = styles.add_style("Table Text", WD_STYLE_TYPE.PARAGRAPH)
    table.base_style = styles["Normal"]
    _style(table, t.roles["table"], line=None, indent=0, align=WD_ALIGN_PARAGRAPH.CENTER)
    number = styles.add_style("Page Number", WD_STYLE_TYPE.PARAGRAPH)
    number.base_style = styles["Normal"]
    _style(number, t.roles["page_number"], line=None, indent=0)
    _font_table(docx)


def _style(style: Any, role: Role, *, line: Any, indent: float, align: Any = None, after: Any = 0,
           keep: bool = False) -> None:
    """Fonts, size, colour and spacing of one paragraph style; theme fonts and colours removed so that
    the declared fonts are the ones used."""
    assert isinstance(style, ParagraphStyle)
    font = style.font
    font.size = Pt(role.size_pt)
    font.bold = role.bold
    font.italic = False
    font.color.rgb = RGBColor.from_string(role.color or "000000")
    _fonts(style.element.get_or_add_rPr(), role)
    pf = style.paragraph_format
    pf.space_before = Pt(role.pad_pt)
    pf.space_after = after if role.pad_pt == 0 else Pt(role.pad_pt)
    if line is None:
        pf.line_spacing_rule = WD_LINE_SPACING.SINGLE
    else:
        pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        pf.line_spacing = line
    pf.first_line_indent = Pt(role.size_pt * indent)
    pf.left_indent = 0
    pf.widow_control = True
    if align is not None:
        pf.alignment = align
    if keep:
        pf.keep_with_next = True
    ppr = style.element.get_or_add_pPr()
    for border in ppr.findall(qn("w:pBdr")):  # the default Title has a blue rule under it
        ppr.remove(border)
    ind = ppr.find(qn("w:ind"))
    if ind is not None:  # indents in characters, which Word and WPS keep when the font changes
        ind.set(qn("w:firstLineChars"), str(int(indent * 100)))
    spacing = ppr.find(qn("w:spacing"))
    if spacing is not None:
        spacing.set(qn("w:beforeLines"), "0")


def _fonts(rpr: Any, role: Role) -> None:
    """Declare the role's first font for East Asian text, the Latin font for the rest; drop theme fonts."""
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for attr in ("asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"):
        fonts.attrib.pop(qn(f"w:{attr}"), None)
    latin = typography().latin[0]
    fonts.set(qn("w:ascii"), latin)
    fonts.set(qn("w:hAnsi"), latin)
    fonts.set(qn("w:cs"), latin)
    fonts.set(qn("w:eastAsia"), role.fonts[0])
    fonts.set(qn("w:hint"), "eastAsia")  # quotes and dashes shared by both scripts take the Chinese font
    color = rpr.find(qn("w:color"))
    if color is not None:
        for attr in ("themeColor", "themeShade", "themeTint"):
            color.attrib.pop(qn(f"w:{attr}"), None)


def _font_table(docx: DocxDocument) -> None:
    """Name each declared font in the font table with its alternative (w:altName) and the GB2312 charset,
    so that Word and WPS substitute a Chinese font of the same kind when the first is not installed."""
    part = next(r.target_part for r in docx.part.rels.values() if r.reltype.endswith("/fontTable"))
    root = ElementTree.fromstring(part.blob)
    namespace = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

    def w(tag: str) -> str:
        return f"{{{namespace}}}{tag}"

    known = {f.get(w("name")) for f in root.findall(w("font"))}
    for role in typography().roles.values():
        name, *rest = role.fonts
        if name in known:
            continue
        known.add(name)
        font = ElementTree.SubElement(root, w("font"), {w("name"): name})
        if rest:
            ElementTree.SubElement(font, w("altName"), {w("val"): rest[0]})
        ElementTree.SubElement(font, w("charset"), {w("val"): "86"})  # GB2312
        ElementTree.SubElement(font, w("family"), {w("val"): "modern" if role.generic == "sans-serif" else "roman"})
        ElementTree.SubElement(font, w("pitch"), {w("val"): "variable"})
    ElementTree.register_namespace("w", namespace)
    part._blob = ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")  # a plain part: its bytes


def _page(docx: DocxDocument, mark: str | None) -> None:
    """A4, GB/T 9704 margins, page numbers — N — (odd pages right, even pages left), the draft stamp."""
    p = typography().page
    section = docx.sections[0]
    section.page_width, section.page_height = Mm(p["width_mm"]), Mm(p["height_mm"])
    section.top_margin, section.bottom_margin = Mm(p["top_mm"]), Mm(p["bottom_mm"])
    section.left_margin, section.right_margin = Mm(p["left_mm"]), Mm(p["right_mm"])
    section.footer_distance = Mm(p["footer_mm"])
    section.header_distance = Mm(p["footer_mm"] / 2)
    docx.settings.odd_and_even_pages_header_footer = True
    one_char = Pt(typography().roles["page_number"].size_pt)
    for footer, align in ((section.footer, WD_ALIGN_PARAGRAPH.RIGHT), (section.even_page_footer, WD_ALIGN_PARAGRAPH.LEFT)):
        para = footer.paragraphs[0]
        para.style = docx.styles["Page Number"]
        para.alignment = align
        if align == WD_ALIGN_PARAGRAPH.RIGHT:
            para.paragraph_format.right_indent = one_char  # 单页码居右空一字，双页码居左空一字
        else:
            para.paragraph_format.left_indent = one_char
        _page_field(para)
    for header in (section.header, section.even_page_header):
        para = header.paragraphs[0]
        if mark:
            para.text = mark
            para.style = docx.styles["Draft Mark"]


def _page_field(para: Paragraph) -> None:
    before, after = typography().page_number
    para.add_run(before)
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), " PAGE ")
    run = OxmlElement("w:r")
    shown = OxmlElement("w:t")
    shown.text = "1"
    run.append(shown)
    field.append(run)
    para._p.append(field)
    para.add_run(after)


def _docx_table(docx: DocxDocument, table: Table) -> None:
    p = typography().page
    width = p["width_mm"] - p["left_mm"] - p["right_mm"]
    columns = [width * w / sum(table.widths) for w in table.widths]
    grid = docx.add_table(rows=table.rows, cols=len(columns))
    grid.style = docx.styles["Table Grid"]
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    grid.autofit = False  # a fixed layout: the columns keep the widths of the official table
    tbl_pr = grid._tbl.tblPr
    tbl_width = tbl_pr.find(qn("w:tblW"))
    if tbl_width is not None:
        tbl_width.set(qn("w:type"), "dxa")
        tbl_width.set(qn("w:w"), str(round(Mm(width).twips)))
    margins = OxmlElement("w:tblCellMar")  # narrow cell margins: 15 columns share 156 mm
    for side in ("left", "right"):
        margin = OxmlElement(f"w:{side}")
        margin.set(qn("w:w"), str(round(Mm(p["cell_margin_mm"]).twips)))
        margin.set(qn("w:type"), "dxa")
        margins.append(margin)
    look = tbl_pr.find(qn("w:tblLook"))  # the schema's order: tblLayout, tblCellMar, tblLook
    if look is not None:
        look.addprevious(margins)
    else:
        tbl_pr.append(margins)
    tbl = grid._tbl
    for i, column in enumerate(grid.columns):
        column.width = Mm(columns[i])
    for tr in tbl.tr_lst:  # cell widths set before merging: a merged cell adds up those it swallows
        for i, tc in enumerate(tr.tc_lst):
            tc.width = Mm(columns[i])
    style_id = docx.styles["Table Text"].style_id
    # Cells are addressed by grid offset on the XML rows: python-docx's table.cell() rescans the
    # whole table on every call, which made a table take seconds.
    for spec in table.cells:
        tc = tbl.tr_lst[spec.row].tc_at_grid_offset(spec.col)
        if (spec.row, spec.col) != (spec.last_row, spec.last_col):
            tc = tc.merge(tbl.tr_lst[spec.last_row].tc_at_grid_offset(spec.last_col))
        cell = _Cell(tc, grid)
        cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
        para = cell.paragraphs[0]
        para._p.style = style_id
        para.alignment = _ALIGN[spec.style]
        if spec.text:
            para.add_run(spec.text)
    kept = {r for first, last in table.keep for r in range(first, last)}
    for r, row in enumerate(grid.rows):
        tr_pr = row._tr.get_or_add_trPr()
        tr_pr.append(OxmlElement("w:cantSplit"))  # a row never breaks across pages
        if r < table.header_rows:
            tr_pr.append(OxmlElement("w:tblHeader"))  # repeated at the top of each page
        if r in kept:  # stays on the page of the next row: a header never ends a page
            for tc in row._tr.tc_lst:
                for para in _Cell(tc, grid).paragraphs:
                    para.paragraph_format.keep_with_next = True
    docx.add_paragraph("", style=docx.styles["Table Text"])  # the gap after a table, as in the printed reports


# ------------------------------------------------------------------------------------------------
# HTML


def write_html(document: ReportDocument, path: str | Path) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(render_html(document), "utf-8")
    return path


_TAGS = {"title": "h1", "heading1": "h2", "heading2": "h3"}


def render_html(document: ReportDocument) -> str:
    """The report as one standalone page: no script, nothing loaded from outside (a content security
    policy says so too), every text escaped; tables as real <table> markup with rowspan and colspan and
    inline borders, so that they survive being pasted into a portal's editor."""
    e = html.escape
    body = []
    for block in document.blocks:
        if isinstance(block, Table):
            body.append(_html_table(block))
        else:
            tag = _TAGS.get(block.kind, "p")
            body.append(f'<{tag} class="{block.kind}">{e(block.text)}</{tag}>')
    policy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"
    return ("<!DOCTYPE html>\n"
            f'<html lang="{_html_lang(document.lang)}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{e(document.title)}</title>\n<style>\n{_css()}</style>\n</head>\n<body>\n"
            '<article class="report">\n' + "\n".join(body) + "\n</article>\n</body>\n</html>\n")


def _html_table(table: Table) -> str:
    e = html.escape
    border = "border:1px solid #000;padding:2px 4px;"
    total = sum(table.widths)
    cols = "".join(f'<col style="width:{w / total * 100:.2f}%">' for w in table.widths)
    rows: list[list[str]] = [[] for _ in range(table.rows)]
    for cell in table.cells:
        tag = "td" if cell.style == "value" else "th"
        spans = (f' rowspan="{cell.rowspan}"' if cell.rowspan > 1 else "") + (
            f' colspan="{cell.colspan}"' if cell.colspan > 1 else "")
        align = "left" if cell.style == "label" else "center"
        rows[cell.row].append(f'<{tag} class="{cell.style}"{spans} style="{border}text-align:{align};'
                              f'font-weight:normal;vertical-align:middle">{e(cell.text)}</{tag}>')
    lines = [f"<tr>{''.join(r)}</tr>" for r in rows]
    head, rest = lines[:table.header_rows], lines[table.header_rows:]
    thead = f"<thead>{''.join(head)}</thead>" if head else ""
    return (f'<table class="{e(table.section)}" border="1" cellspacing="0" cellpadding="2" '
            f'style="border-collapse:collapse;width:100%;table-layout:fixed">'
            f"<colgroup>{cols}</colgroup>{thead}<tbody>{''.join(rest)}</tbody></table>")


def _css() -> str:
    t = typography()
    p = t.page

    def family(role: str) -> str:
        r = t.roles[role]
        names = [*t.latin, *r.fonts] if role in ("body", "table") else list(r.fonts)
        return ", ".join(json.dumps(n, ensure_ascii=False) for n in names) + f", {r.generic}"

    def font(role: str) -> str:
        r = t.roles[role]
        weight = "bold" if r.bold else "normal"
        color = f"color:#{r.color};" if r.color else ""
        return f"font-family:{family(role)};font-size:{r.size_pt}pt;font-weight:{weight};{color}"

    indent = f"text-indent:{p['indent_chars']}em;"
    return (f"@page {{ size: A4; margin: {p['top_mm']}mm {p['right_mm']}mm {p['bottom_mm']}mm {p['left_mm']}mm; }}\n"
            f"body {{ margin: 0; background: #fff; color: #000; }}\n"
            f".report {{ max-width: {p['width_mm'] - p['left_mm'] - p['right_mm']}mm; margin: 2em auto; "
            f"padding: 0 1em; {font('body')} line-height: 1.8; }}\n"
            f"h1.title {{ {font('title')} text-align: center; line-height: 1.5; margin: 0 0 1em; }}\n"
            f"p.mark {{ {font('mark')} text-align: center; margin: 0 0 1em; }}\n"
            f"h2.heading1 {{ {font('heading1')} {indent} margin: 0; }}\n"
            f"h3.heading2 {{ {font('heading2')} {indent} margin: 0; }}\n"
            f"p.body, p.preamble, p.note {{ {indent} margin: 0; text-align: justify; }}\n"
            f"table {{ {font('table')} line-height: 1.4; margin: .5em 0 1em; page-break-inside: auto; }}\n"
            "thead { display: table-header-group; }\ntr { page-break-inside: avoid; }\n")


def _html_lang(lang: str) -> str:
    return "zh-CN" if lang == "zh" else lang
