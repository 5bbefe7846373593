"""The publishable annual report of each workbook: a Word document (.docx) and a standalone HTML page.

Both are rendered from one document model built from the format data: the title, the standard
preamble, the six parts in the official order, the office's narratives, and the three tables laid out
exactly as the converter lays out its report sheet (`layout.report_layout`: merged multi-level
headers, the printed note, labels verbatim). Typography follows GB/T 9704-2012 (`data/typography.toml`).
Office text is untrusted: it is only ever written as text (escaped in HTML, a plain run in Word),
never as markup, a field or a link.
"""

from __future__ import annotations

import html
import json
import re
import string
import tomllib
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from .aggregate import ROLLUP_PROPERTY
from .catalog import number_text, text, text_list
from .clean import CleanReport
from .feedback import safe_name
from .formats import Cell, Format, get_format
from .layout import report_layout
from .pipeline import BatchResult, Progress, WorkbookResult, validate_paths

__all__ = ["Para", "Published", "ReportDocument", "Rollup", "Table", "TableCell", "build_document",
           "clean_text", "propose_overview", "publish_paths", "publish_workbook", "read_rollup", "render_html",
           "report_tables", "typography", "write_docx", "write_html"]

MAX_PROPERTIES = 1 << 20  # docProps/custom.xml larger than this is not ours: not parsed


# ------------------------------------------------------------------------------------------------
# The document model, shared by both renderers


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


# ------------------------------------------------------------------------------------------------
# Publishing a batch


def publish_paths(paths: Iterable[str | Path], out: str | Path, *, draft: bool = False,
                  fill_overview: bool = False, prepend_overview: bool = False, lang: str = "zh",
                  workers: int | None = None, progress: Progress | None = None
                  ) -> tuple[BatchResult, list[Published]]:
    """Validate every workbook under `paths`, then write its annual report (.docx and .html) under `out`.

    Args:
        draft: also write workbooks with errors (or without office or year), stamped as drafts.
        fill_overview: propose a paragraph for 一 from the tables; insert it where the office wrote none.
        prepend_overview: insert the proposed paragraph before the office's own text of 一 as well.
        lang: language of the tool's own words (the official labels stay as the format prints them).
    """
    out = Path(out)
    batch = validate_paths(paths, workers=workers, progress=progress, exclude=[out])
    used: set[str] = set()
    done = [publish_workbook(w, out, used, draft=draft, fill_overview=fill_overview,
                             prepend_overview=prepend_overview, lang=lang) for w in batch.workbooks]
    return batch, done


def publish_workbook(workbook: WorkbookResult, out: Path, used: set[str], *, draft: bool = False,
                     fill_overview: bool = False, prepend_overview: bool = False, lang: str = "zh") -> Published:
    """Write one workbook's report, or say why not; `used` holds the file names taken in this batch."""
    report = workbook.report
    if report is None:
        return Published(workbook, refused="unreadable")
    fmt = get_format(report.format_id)
    labels = fmt.cover_labels
    missing = tuple(labels[k] for k, v in (("meta_office", report.office), ("meta_year", report.year)) if v is None)
    failed = workbook.status == "errors"
    if (failed or missing) and not draft:
        return Published(workbook, refused="errors" if failed else "no_cover", missing_cover=missing)
    result = Published(workbook, draft=failed or bool(missing), missing_cover=missing, rollup=read_rollup(workbook.file))
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
    name = _unique(_file_name(report, fmt), used)
    result.docx = write_docx(document, out / f"{name}.docx")
    result.html = write_html(document, out / f"{name}.html")
    return result


def _file_name(report: CleanReport, fmt: Format) -> str:
    """The report title (office, year, report name) made safe as a file name; always in Chinese."""
    office = safe_name(report.office) if report.office else text("publish.no_office")
    year = report.year if report.year is not None else text("publish.no_year")
    return text("publish.title", "zh", office=office, year=year, report_name=fmt.words.report_name)


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{name}_{n}"
    used.add(candidate.lower())
    return candidate


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
    for number, heading, key in _parts(fmt):
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
               for name in ("meta_address", "meta_postcode", "meta_phone", "meta_fax", "meta_email")
               if (value := _as_text(report.texts.get(name)))]
    contact = clean_text(_as_text(report.texts.get("meta_contact")) or office)
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
