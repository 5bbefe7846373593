"""Published reports as input: a .docx, an HTML page, a text copy or a PDF, turned into the grids a
workbook would give, so that the label reader (`locate.py`, `read.py`) reads them like a pasted workbook.

Last year's reports often exist only as published documents. Each data table of a document becomes
a pseudo-sheet (表1, 表2, …) with its merged cells resolved the way a workbook holds them: the text in
the top-left cell, "" in the cells it covers. Parts of one table split over several `<table>` elements
or pages, with nothing but blank lines, page numbers or 续表 between them, are joined. The text outside
the tables becomes one more pseudo-sheet, 正文: the title line (〈机关〉〈YYYY〉年政府信息公开工作年度报告),
the cover fields the preamble states (label, value) and each narrative heading with its text below it,
which is where `read.py` looks for them in a workbook.

Nothing in a document is fetched or executed: HTML is parsed by lxml without network access and
with scripts, styles and comments dropped; .docx XML by python-docx (no entity resolution). The size
and decompression limits of workbooks are checked by the caller (`read.py`) before this module opens
a file; this module adds limits on a document's XML, its pages and its tables.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .catalog import LANGS, Finding, bilingual, phrase, text, text_list
from .formats import Format, Narrative, Section, all_formats
from .limits import (MAX_DOCUMENT_XML_BYTES, MAX_PDF_INFLATED_BYTES, MAX_PDF_PAGES, MAX_TABLE_COLUMNS,
                     MAX_TABLE_ROWS)
from .locate import Grid, Located, fold, matches

__all__ = ["SUFFIXES", "Document", "read_document", "unaligned_tables"]

SUFFIXES = (".docx", ".html", ".htm", ".txt", ".pdf")
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?")  # a plain number, as a spreadsheet would hold it
_VALUE = re.compile(r"[-+]?[\d.,]*\d[\d.,]*\w{0,2}")  # a number, maybe with a unit (件, 万元): not a label
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")  # what HTML collapses; NBSP is kept, as a browser shows it
_BREAK = "\u2028"  # stands for <br> while HTML whitespace is collapsed
_BOOKMARK = re.compile(r"\[bookmark: [^\]]*\]")  # how the seed's text copies mark Word bookmarks
_YEAR = re.compile(r"(19|20)\d\d")
_SKIP_TAGS = {"script", "style", "head", "noscript", "template", "iframe", "object", "embed", "svg", "math",
              "select", "textarea", "button", "option"}
_BLOCK_TAGS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "section", "article", "header",
               "footer", "main", "aside", "nav", "blockquote", "pre", "table", "tr", "td", "th", "caption",
               "center", "dl", "dt", "dd", "form", "fieldset", "address", "hr", "body", "tbody", "thead", "tfoot"}


@dataclass(frozen=True)
class _Table:
    """One table as found in the document, its merged cells resolved (text in the top-left cell)."""

    grid: list[list[object]]


@dataclass
class Document:
    """A published report as pseudo-sheets: 正文 first, then one per table (parts of a split table joined)."""

    sheets: dict[str, Grid]
    headings: dict[str, str | None] = field(default_factory=dict)  # table sheet → section heading printed above it


Item = str | _Table  # a paragraph (one line of text) or a table, in document order


def read_document(path: str | Path) -> Document:
    """Read a published report (.docx, .html/.htm, .txt, .pdf) into pseudo-sheets.

    Raises:
        DisclosureError: the file is damaged (`file-unreadable`), a PDF has no text layer
            (`document-no-text`) or a table is beyond the limits (`file-too-large`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".docx":
        items, fallback = _docx(path)
    elif suffix in (".html", ".htm"):
        items, fallback = _html(path.read_bytes())
    elif suffix == ".txt":
        items, fallback = _txt(_decode(path.read_bytes())), None
    elif suffix == ".pdf":
        items, fallback = _pdf(path), None
    else:
        raise ValueError(f"not a document suffix: {suffix}")
    return _assemble(items, fallback)


# ----------------------------------------------------------------------------------------------
# Assembling: tables into pseudo-sheets, the text around them into 正文


def _assemble(items: Sequence[Item], fallback_title: str | None) -> Document:
    groups: list[list[_Table]] = []
    headings: list[str | None] = []
    paragraphs: list[str | None] = []  # None where a table stands: narratives stop there
    joinable = False  # only blank lines, page numbers or 续表 since the last table
    last_heading: str | None = None
    for item in items:
        if isinstance(item, _Table):
            if not item.grid:
                continue
            if groups and joinable and _continues(groups[-1], item):
                groups[-1].append(item)
            else:
                groups.append([item])
                headings.append(last_heading)
            last_heading = None
            paragraphs.append(None)
            joinable = True
        else:
            paragraphs.append(item)
            if not _between_parts(item):
                joinable = False
                found = _heading(item)
                last_heading = found.heading if isinstance(found, Section) else None
    sheets: dict[str, Grid] = {text("documents.sheet.text"): _text_sheet(paragraphs, fallback_title)}
    names: dict[str, str | None] = {}
    for number, (group, heading) in enumerate(zip(groups, headings, strict=True), 1):
        name = text("documents.sheet.table", number=number)
        sheets[name] = _join(group)
        names[name] = heading
    return Document(sheets, names)


def _continues(group: list[_Table], table: _Table) -> bool:
    """Whether `table` goes on where the group stopped (the same columns, or rows without a header)."""
    width = max(len(row) for part in group for row in part.grid)
    return max(len(row) for row in table.grid) == width or _has_value(table.grid[0])


def _join(parts: list[_Table]) -> list[list[object]]:
    """One grid of the parts, narrower parts aligned right (values sit at the right end of every row);
    plain numbers become numbers, as a spreadsheet holds them. A row broken across a page (its label
    goes on at the top of the next part, with no numbers) is made one row again."""
    width = max(len(row) for part in parts for row in part.grid)
    rows: list[list[object]] = []
    for part in parts:
        grid = [[""] * (width - len(row)) + [_number(v) for v in row] for row in part.grid]
        if rows and grid and _broken(rows[-1], grid[0]):
            rows[-1] = [f"{a}{b}" if b != "" else a for a, b in zip(rows[-1], grid.pop(0), strict=True)]
        rows += grid
    if len(rows) > MAX_TABLE_ROWS:
        raise _too_large(len(rows), width)
    return rows


def _broken(last: Sequence[object], first: Sequence[object]) -> bool:
    """Whether `first` is the rest of row `last`: text only, and joined to it a label of a format
    that neither part is on its own."""
    if _has_value(first) or not any(isinstance(v, str) and v.strip() for v in first):
        return False
    labels = _all_labels()
    return any(isinstance(a, str) and isinstance(b, str) and b.strip() and fold(a + b) in labels
               and fold(a) not in labels and fold(b) not in labels for a, b in zip(last, first, strict=True))


@cache
def _all_labels() -> frozenset[str]:
    """Every printed table label of every format, folded."""
    return frozenset(fold(label) for fmt in all_formats().values() for label, aliases in _known_labels(fmt)
                     for label in (label, *aliases))


def _number(value: object) -> object:
    return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value) else value


def _text_sheet(paragraphs: Sequence[str | None], fallback_title: str | None) -> list[list[object]]:
    """正文: the title, the cover fields stated in the preamble, each narrative heading with its text."""
    rows: list[list[object]] = []
    first = next((i for i, p in enumerate(paragraphs) if p is None or _heading(p) is not None), len(paragraphs))
    front = [p for p in paragraphs[:first] if p]
    title_at = _title_index(front)
    title = _title_text(front, title_at) if title_at is not None else (
        fallback_title if fallback_title and _is_title(fallback_title) else None)
    if title:
        rows.append([title])
    preamble = "\n".join(front[title_at + 1:] if title_at is not None else front)
    rows += [[label, value] for label, value in _stated_fields(preamble)]
    for narrative in _narratives():
        body = _narrative_text(paragraphs, narrative)
        if body is not None:
            rows += [[narrative.heading], [body]]
    return rows


def _title_index(front: Sequence[str]) -> int | None:
    return next((i for i, p in enumerate(front) if _is_title(p)), None)


def _is_title(line: str) -> bool:
    folded = fold(line)
    return fold(_words().report_name) in folded and bool(_YEAR.search(folded)) and len(folded) <= 80


def _title_text(front: Sequence[str], at: int) -> str:
    """The title line; a title printed on two lines (office, then year and report name) is rejoined."""
    line = front[at]
    starts_with_year = bool(re.match(r"\s*(19|20)\d\d", unicodedata.normalize("NFKC", line)))
    if starts_with_year and at > 0 and len(fold(front[at - 1])) <= 40 and fold(front[at - 1]) == "".join(
            front[at - 1].split()):
        return front[at - 1].strip() + line.strip()
    return line


def _stated_fields(preamble: str) -> Iterator[tuple[str, str]]:
    """Cover fields the preamble states as 〈label〉：〈value〉, as (the cover's label, value); the office
    and year come from the title."""
    for role, label in _cover_fields():
        try:
            spellings = text_list(f"documents.preamble.{role}")
        except KeyError:  # not a field a preamble states
            continue
        pattern = text("documents.pattern.field", labels="|".join(map(re.escape, spellings)))
        found = re.search(pattern, preamble)
        if found:
            yield label, found.group(1)
        elif role == "contact":
            named = _pattern("contact").search(preamble)
            if named:
                yield label, named.group(1)


def _narrative_text(paragraphs: Sequence[str | None], narrative: Narrative) -> str | None:
    """The text under a narrative heading, up to the next heading or table; the first non-empty one
    (a table of contents lists the headings with nothing under them)."""
    found: str | None = None
    for i, paragraph in enumerate(paragraphs):
        found_here = _heading(paragraph) if paragraph is not None else None
        if not (isinstance(found_here, Narrative) and found_here.name == narrative.name):
            continue
        lines = []
        for line in paragraphs[i + 1:]:
            if line is None or _heading(line) is not None:
                break
            lines.append(line)
        body = "\n".join(lines).strip()
        if body:
            return body
        found = ""
    return found


def _heading(line: str) -> Narrative | Section | None:
    """The narrative or table section whose heading `line` is (up to spacing and punctuation)."""
    folded = fold(line)
    start = line.lstrip()
    for number, heading, what in _headings():
        if folded == heading and start.startswith(number):
            return what
    return None


def _between_parts(line: str) -> bool:
    """A line that may sit between two parts of one table: blank, a page number, 续表."""
    return not line.strip() or bool(_pattern("page").fullmatch(line.strip()))


@cache
def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(text(f"documents.pattern.{name}"))


@cache
def _headings() -> tuple[tuple[str, str, Narrative | Section], ...]:
    """(number, folded heading, what) of every narrative and table section of every format."""
    out: dict[str, tuple[str, str, Narrative | Section]] = {}
    for fmt in all_formats().values():
        things: list[Narrative | Section] = [*fmt.narratives, *fmt.sections]
        for thing in things:
            out.setdefault(fold(thing.heading), (thing.number, fold(thing.heading), thing))
    return tuple(out.values())


@cache
def _narratives() -> tuple[Narrative, ...]:
    out: dict[str, Narrative] = {}
    for fmt in all_formats().values():
        for narrative in fmt.narratives:
            out.setdefault(narrative.name, narrative)
    return tuple(out.values())


@cache
def _cover_fields() -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for fmt in all_formats().values():
        for cover in fmt.cover:
            out.setdefault(cover.role, cover.label)
    return tuple(out.items())


def _words() -> Any:
    return next(iter(all_formats().values())).words


def _has_value(row: Sequence[object]) -> bool:
    return any(isinstance(v, float) or (isinstance(v, str) and _is_value(v)) for v in row)


def _is_value(cell: str) -> bool:
    stripped = "".join(unicodedata.normalize("NFKC", cell).split())
    return bool(_VALUE.fullmatch(stripped))


# ----------------------------------------------------------------------------------------------
# Tables that do not fit the format


def unaligned_tables(document: Document, fmt: Format, located: Located) -> list[Finding]:
    """For each section with cells not found: the document table it is in, and that table's headings
    that match none of the format's labels (what the office wrote instead of the official labels)."""
    incomplete = [s for s in fmt.sections if any(m.section == s.key for m in located.missing)]
    if not incomplete:
        return []
    known = _known_labels(fmt)
    findings = []
    done: set[str] = set()
    numbers = {name: i for i, name in enumerate(document.headings, 1)}
    for section in incomplete:
        sheet = _table_of(document, fmt, section, located)
        if sheet is None or sheet in done:
            continue
        done.add(sheet)
        unknown = list(dict.fromkeys(
            t for row in document.sheets[sheet] for t in row
            if isinstance(t, str) and len(fold(t)) > 1 and not _is_value(t) and not _known(t, known)))
        if not unknown:
            continue
        heading = document.headings.get(sheet)
        number = numbers[sheet]
        table = _both("documents.table.headed", number=number, heading=heading) if heading else _both(
            "documents.table.plain", number=number)
        findings.append(Finding("table-unaligned", params={
            "table": table, "labels": bilingual(_label_list(unknown, "zh"), _label_list(unknown, "en")),
            "format_title": phrase("catalog.format_title", title=fmt.title, id=fmt.id)}))
    return findings


def _table_of(document: Document, fmt: Format, section: Section, located: Located) -> str | None:
    """The table sheet holding the section: where its cells were found, else the one showing most of
    its labels (at least two)."""
    sheets = Counter(located.positions[c.id].sheet for c in fmt.section_cells(section.key)
                     if c.id in located.positions)
    if sheets:
        return sheets.most_common(1)[0][0]
    labels = {fold(n.label) for n in (*section.rows, *section.columns)} | {fold(b.caption) for b in section.blocks}
    scores = [(sum(isinstance(v, str) and fold(v) in labels for row in grid for v in row), name)
              for name, grid in document.sheets.items() if name in document.headings]
    best = max(scores, default=(0, None))
    return best[1] if best[0] >= 2 else None


def _known_labels(fmt: Format) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out: list[tuple[str, tuple[str, ...]]] = []
    for section in fmt.sections:
        out += [(n.label, n.aliases) for n in (*section.rows, *section.columns)]
        out += [(b.caption, ()) for b in section.blocks]
        out += [(t, ()) for t in (section.heading, section.note, section.row_header) if t]
    return tuple(out)


def _known(label: str, known: Sequence[tuple[str, tuple[str, ...]]]) -> bool:
    return any(matches(label, k, aliases) for k, aliases in known)


def _label_list(labels: list[str], lang: str) -> str:
    shown = [text("documents.table.label", lang, label=" ".join(t.split())) for t in labels[:8]]
    out = text("documents.table.separator", lang).join(shown)
    return out + (text("documents.table.more", lang, count=len(labels)) if len(labels) > 8 else "")


# ----------------------------------------------------------------------------------------------
# .docx (python-docx)


def _docx(path: Path) -> tuple[list[Item], str | None]:
    try:
        with zipfile.ZipFile(path) as archive:  # read.py has checked the zip as a whole
            size = max((i.file_size for i in archive.infolist() if i.filename.endswith(".xml")), default=0)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _unreadable("doc", exc) from exc
    if size > MAX_DOCUMENT_XML_BYTES:
        raise _error(Finding("file-too-large", params={
            "size": _both("documents.reason.xml_too_large", size=_mib(size)), "limit": _mib(MAX_DOCUMENT_XML_BYTES)}))
    try:
        import docx

        document = docx.Document(str(path))
        items = list(_docx_blocks(document.element.body, _numbered_styles(document)))
        title = document.core_properties.title or None
    except Exception as exc:  # python-docx raises zip, XML, key and value errors for a damaged file
        raise _unreadable("docx", exc) from exc
    return items, title


def _docx_blocks(body: Any, numbered: frozenset[str]) -> Iterator[Item]:
    """Paragraphs (one item per line) and tables of a body, in order; content controls looked into."""
    from docx.oxml.ns import qn

    for child in body.iterchildren():
        if child.tag == qn("w:p"):
            lines = str(child.text).split("\n")
            style = child.find(f"{qn('w:pPr')}/{qn('w:pStyle')}")
            if len(lines) == 1 and (child.find(f"{qn('w:pPr')}/{qn('w:numPr')}") is not None or (
                    style is not None and style.get(qn("w:val")) in numbered)):
                lines = [_numbered(lines[0])]  # Word numbers the heading itself: its text lacks 一、
            yield from lines
        elif child.tag == qn("w:tbl"):
            yield _Table(_docx_grid(child))
        elif child.tag == qn("w:sdt"):
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from _docx_blocks(content, numbered)


def _numbered_styles(document: Any) -> frozenset[str]:
    """Ids of the paragraph styles that number their paragraphs (a list style, numbered headings)."""
    from docx.oxml.ns import qn

    out = set()
    for style in document.styles:
        chain = style
        while chain is not None and getattr(chain, "element", None) is not None:
            if chain.element.find(f"{qn('w:pPr')}/{qn('w:numPr')}") is not None:
                out.add(style.style_id)
                break
            chain = getattr(chain, "base_style", None)
    return frozenset(out)


def _numbered(line: str) -> str:
    """A numbered paragraph whose text is a heading without its number, as the heading; else as is."""
    folded = fold(line)
    for number, _, what in _headings():
        body = what.heading[len(number):]
        while body and unicodedata.category(body[0]).startswith("P"):
            body = body[1:]
        if folded == fold(body):
            return what.heading
    return line


def _docx_grid(tbl: Any) -> list[list[object]]:
    """A Word table on its layout grid: a horizontally merged cell (gridSpan) fills its first column,
    a vertically merged one (vMerge) its first row; the cells they cover stay ""."""
    from docx.oxml.ns import qn

    names = {k: qn(f"w:{k}") for k in ("tr", "tc", "p", "tcPr", "trPr", "gridSpan", "gridBefore", "vMerge", "val")}

    def prop(parent: Any, pr: str, key: str) -> str | None:  # a w:val of a cell or row property
        found = parent.find(f"{names[pr]}/{names[key]}")
        return None if found is None else str(found.get(names["val"], "continue" if key == "vMerge" else ""))

    rows: list[list[object]] = []
    trs = tbl.findall(names["tr"])
    for tr in trs:
        row: list[object] = [""] * _count(prop(tr, "trPr", "gridBefore"), 0)
        for tc in tr.findall(names["tc"]):
            span = _count(prop(tc, "tcPr", "gridSpan"), 1)
            continued = prop(tc, "tcPr", "vMerge") == "continue"  # <w:vMerge/> without a value continues
            cell = "" if continued else "\n".join(str(p.text) for p in tc.findall(names["p"]))
            row += [cell] + [""] * (span - 1)
        if len(row) > MAX_TABLE_COLUMNS or len(rows) >= MAX_TABLE_ROWS:
            raise _too_large(len(trs), len(row))
        rows.append(row)
    return _square(rows)


def _count(value: str | None, default: int) -> int:
    digits = re.match(r"\s*(\d+)", value or "")
    return max(int(digits.group(1)), 0) if digits else default


def _square(rows: list[list[object]]) -> list[list[object]]:
    width = max((len(r) for r in rows), default=0)
    return [r + [""] * (width - len(r)) for r in rows]


# ----------------------------------------------------------------------------------------------
# .html / .htm (lxml)


def _html(data: bytes) -> tuple[list[Item], str | None]:
    """The paragraphs and tables of the part of the page that holds the report, and its title."""
    import lxml.etree
    import lxml.html

    parser = lxml.html.HTMLParser(encoding=_html_encoding(data), no_network=True, remove_comments=True,
                                  remove_pis=True, huge_tree=False)
    try:
        root = lxml.html.document_fromstring(data, parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise _unreadable("html", exc) from exc
    body = root.find("body")
    walk = _Walk()
    try:
        walk.block(root if body is None else body)
    except RecursionError as exc:  # elements nested thousands deep: no published page is
        raise _unreadable("html", exc) from exc
    content = walk.content()
    inside = [i for i, owner in enumerate(walk.owners) if content is None or owner is content
              or any(a is content for a in owner.iterancestors())]
    items = [walk.items[i] for i in inside]
    # A title printed above the article (the last title-like line before it, not the breadcrumbs), else <title>.
    before = [i for i in walk.items[:inside[0] if inside else 0] if isinstance(i, str)]
    title = next((line for line in reversed(before) if _is_title(line)), None) or root.findtext(".//title")
    return items, title


def _html_encoding(data: bytes) -> str:
    """The page's encoding: its BOM, its meta charset, else UTF-8 if it decodes, else GB18030."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8"
    declared = re.search(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_-]+)""", data[:4096], re.IGNORECASE)
    if declared:
        name = declared.group(1).decode("ascii").lower()
        try:
            codecs.lookup(name)
            return "gb18030" if name in ("gb2312", "gbk") else name  # GB18030 is their superset
        except LookupError:
            pass
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def _is_data_table(el: Any) -> bool:
    """A `<table>` with no table inside it holds data; one with tables inside is page layout."""
    return el.tag == "table" and next(el.iterdescendants("table"), None) is None


class _Walk:
    """The lines and tables of an HTML tree in document order, each with the block element it is in
    (to find the article among the portal's menus and footer)."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.owners: list[Any] = []
        self.buffer: list[str] = []

    def block(self, el: Any) -> None:
        """Walk a block element: its inline text becomes lines of this block; block children their own."""
        self.flush(el)
        if el.text:
            self.buffer.append(el.text)
        for child in el:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag and tag not in _SKIP_TAGS:
                if _is_data_table(child):
                    self.flush(el)
                    self.table(child)
                elif tag in _BLOCK_TAGS:
                    self.flush(el)
                    self.block(child)
                elif tag == "br":
                    self.buffer.append(_BREAK)
                else:
                    self.inline(child, el)
            if child.tail:
                self.buffer.append(child.tail)
        self.flush(el)

    def inline(self, el: Any, owner: Any) -> None:
        if el.text:
            self.buffer.append(el.text)
        for child in el:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag == "br":
                self.buffer.append(_BREAK)
            elif tag and tag not in _SKIP_TAGS:
                if _is_data_table(child):  # a block inside an inline element
                    self.flush(owner)
                    self.table(child)
                elif tag in _BLOCK_TAGS:
                    self.flush(owner)
                    self.block(child)
                else:
                    self.inline(child, owner)
            if child.tail:
                self.buffer.append(child.tail)

    def table(self, el: Any) -> None:
        self.items.append(_Table(_html_grid(el)))
        self.owners.append(el)

    def flush(self, owner: Any) -> None:
        joined = _HTML_SPACE.sub(" ", "".join(self.buffer))
        self.buffer.clear()
        for line in joined.split(_BREAK):
            if line.strip():
                self.items.append(line.strip())
                self.owners.append(owner)

    def content(self) -> Any:
        """The smallest element holding every data table and every narrative or section heading:
        the article, without the portal's menus and footer; the whole page when there is no such part."""
        anchors = [owner for item, owner in zip(self.items, self.owners, strict=True)
                   if isinstance(item, _Table) or _heading(item) is not None]
        if len(anchors) < 2:
            return None
        chains = [[*reversed(list(el.iterancestors())), el] for el in anchors]
        common = None
        for level in zip(*chains, strict=False):
            if any(el is not level[0] for el in level):
                break
            common = level[0]
        if common is not None and _is_data_table(common):
            common = common.getparent()
        return common


def _html_grid(table: Any) -> list[list[object]]:
    """The table on its grid (the HTML table model): each cell at the first free column of its row,
    covering `colspan` × `rowspan` positions; its text in the first, "" in the others."""
    trs = table.xpath("./tr | ./thead/tr | ./tbody/tr | ./tfoot/tr")
    if len(trs) > MAX_TABLE_ROWS:
        raise _too_large(len(trs), 0)
    grid: list[list[object]] = [[] for _ in trs]
    taken: list[set[int]] = [set() for _ in trs]
    area = 0
    for r, tr in enumerate(trs):
        col = 0
        for td in tr.xpath("./td | ./th"):
            while col in taken[r]:
                col += 1
            cols = _span(td.get("colspan"), 1000)
            rows = min(_span(td.get("rowspan"), 65534), len(trs) - r)
            area += rows * cols
            if col + cols > MAX_TABLE_COLUMNS or area > MAX_TABLE_ROWS * MAX_TABLE_COLUMNS:  # spans that claim too much
                raise _too_large(len(trs), col + cols)
            for rr in range(r, r + rows):
                taken[rr].update(range(col, col + cols))
            row = grid[r]
            row += [""] * (col + cols - len(row))
            row[col] = _cell_text(td)
            col += cols
    width = max([len(g) for g in grid] + [max(t) + 1 for t in taken if t], default=0)
    return [g + [""] * (width - len(g)) for g in grid]


def _span(value: str | None, limit: int) -> int:
    digits = re.match(r"\s*(\d+)", value or "")
    return min(max(int(digits.group(1)), 1), limit) if digits else 1


def _cell_text(td: Any) -> str:
    """A cell's text as shown: HTML whitespace collapsed, <br> and paragraphs as line breaks, NBSP kept."""
    buffer: list[str] = []

    def walk(el: Any) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _SKIP_TAGS:
            return
        if tag == "br" or (tag in _BLOCK_TAGS and buffer):
            buffer.append(_BREAK)
        if el.text and tag:
            buffer.append(el.text)
        for child in el:
            walk(child)
            if child.tail:
                buffer.append(child.tail)

    walk(td)
    lines = [line.strip(" \t\n\r\f") for line in _HTML_SPACE.sub(" ", "".join(buffer)).split(_BREAK)]
    return "\n".join(line for line in lines if line)


# ----------------------------------------------------------------------------------------------
# .txt in the seed's form: one line per cell, each starting with a tab; rows separated by blank
# lines; a line without a tab right after a cell continues it (a header printed on two lines)


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with its BOM (Notepad's "Unicode"), else GB18030 (GBK)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise _unreadable("text", UnicodeDecodeError("gb18030", data[:1], 0, 1, "undecodable"))


def _txt(content: str) -> list[Item]:
    items: list[Item] = []
    rows: list[list[str]] = []
    row: list[str] = []
    in_cell = False  # the previous line was a cell (or continued one)
    for line in _BOOKMARK.sub("", content).replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("\t"):
            row.append(line[1:])
            in_cell = True
        elif not line.strip():
            if row:
                rows.append(row)
                row = []
            in_cell = False
        elif in_cell and row and _heading(line) is None:
            row[-1] += "\n" + line
        else:
            if row:
                rows.append(row)
                row = []
            if rows:
                items.append(_Table(_txt_grid(rows)))
                rows = []
            items.append(line.strip())
            in_cell = False
    if row:
        rows.append(row)
    if rows:
        items.append(_Table(_txt_grid(rows)))
    return items


def _txt_grid(rows: list[list[str]]) -> list[list[object]]:
    """Place the cells of a text copy on the table's grid, which the text does not record.

    A text copy lists the cells of every row, with a cell that continues a merged one from above
    left blank, but it does not say how many columns a cell spans. Rows as wide as the table fill it;
    a row of numbers is aligned right (its values are the table's last columns); a header row is
    placed over the row below it: a blank cell below continues a cell of this row (one column), a run
    of filled cells below sits under one cell of this row (split evenly when this row has more cells).
    """
    width = max(len(r) for r in rows)
    if width > MAX_TABLE_COLUMNS or len(rows) > MAX_TABLE_ROWS:
        raise _too_large(len(rows), width)
    layouts: list[list[tuple[int, int]]] = [[] for _ in rows]
    for i in range(len(rows) - 1, -1, -1):
        cells = rows[i]
        if len(cells) == width:
            layouts[i] = [(c, 1) for c in range(width)]
        elif i == len(rows) - 1 or _has_value(cells):
            layouts[i] = [(width - len(cells) + k, 1) for k in range(len(cells))]
        else:
            layouts[i] = _over(len(cells), rows[i + 1], layouts[i + 1], width)
    grid: list[list[object]] = [[""] * width for _ in rows]
    for r, (cells, layout) in enumerate(zip(rows, layouts, strict=True)):
        for value, (col, _) in zip(cells, layout, strict=True):
            grid[r][col] = value
    return grid


def _over(count: int, below: Sequence[str], layout: Sequence[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    """Where `count` header cells go over a row whose cells are at `layout` (see `_txt_grid`)."""
    if count == len(below):
        return list(layout)
    units: list[list[tuple[int, int]]] = []
    blank_last = True
    for value, pos in zip(below, layout, strict=True):
        blank = not value.strip()
        if blank or blank_last:
            units.append([pos])
        else:
            units[-1].append(pos)
        blank_last = blank
    if count < len(units) or count > len(below):
        return [(0, width)] if count == 1 else [(width - count + k, 1) for k in range(count)]
    parts = [1] * len(units)
    for _ in range(count - len(units)):  # split the runs with the most cells per part
        i = max((j for j in range(len(units)) if len(units[j]) > parts[j]), key=lambda j: len(units[j]) / parts[j])
        parts[i] += 1
    out = []
    for unit, n in zip(units, parts, strict=True):
        size, extra = divmod(len(unit), n)
        start = 0
        for k in range(n):
            chunk = unit[start:start + size + (k < extra)]
            out.append((chunk[0][0], chunk[-1][0] + chunk[-1][1] - chunk[0][0]))
            start += len(chunk)
    return out


# ----------------------------------------------------------------------------------------------
# .pdf with a text layer (pdfplumber)


def _pdf(path: Path) -> list[Item]:
    inflated = _pdf_inflated(path.read_bytes(), MAX_PDF_INFLATED_BYTES)
    if inflated > MAX_PDF_INFLATED_BYTES:
        raise _error(Finding("file-too-large", params={
            "size": _both("documents.reason.inflated", size=_mib(inflated)), "limit": _mib(MAX_PDF_INFLATED_BYTES)}))
    try:
        import pdfplumber

        with pdfplumber.open(str(path)) as pdf:
            if len(pdf.pages) > MAX_PDF_PAGES:
                raise _error(Finding("file-too-large", params={
                    "size": _both("documents.reason.pages", pages=len(pdf.pages)),
                    "limit": _both("documents.reason.pages_limit", limit=MAX_PDF_PAGES)}))
            chars = 0
            items: list[Item] = []
            for page in pdf.pages:
                chars += len(page.chars)
                items += _pdf_page(page)
    except Exception as exc:
        if getattr(exc, "finding", None) is not None:
            raise
        causes = " ".join(f"{type(e).__name__} {e}" for e in (exc, *exc.args, exc.__context__) if e is not None)
        password = "password" in causes.lower() or "encrypt" in causes.lower()  # pdfminer's PDFPasswordIncorrect
        raise _unreadable("pdf_password" if password else "pdf", exc) from exc
    if not chars:
        raise _error(Finding("document-no-text"))
    return items


def _pdf_inflated(data: bytes, limit: int) -> int:
    """What the PDF's compressed streams inflate to, counted up to just past `limit` (pdfminer inflates
    every stream whole, in memory: a small PDF can hold a stream of gigabytes)."""
    total = 0
    for found in re.finditer(rb"stream\r?\n", data):
        end = data.find(b"endstream", found.end())
        if end < 0:
            break
        inflate = zlib.decompressobj()
        pending = data[found.end():end]
        try:
            while pending and total <= limit:
                total += len(inflate.decompress(pending, 2**20))
                pending = inflate.unconsumed_tail
        except zlib.error:  # not a Flate stream (or encrypted): pdfminer does not inflate it either
            continue
        if total > limit:
            break
    return total


def _pdf_page(page: Any) -> list[Item]:
    """A page's tables and the paragraphs around them, top to bottom."""
    tables = page.find_tables()
    boxes = [t.bbox for t in tables]

    def outside(obj: dict[str, Any]) -> bool:
        x = (obj["x0"] + obj["x1"]) / 2
        y = (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)

    lines = page.filter(outside).extract_text_lines() if boxes else page.extract_text_lines()
    placed: list[tuple[float, int, Item]] = [(t.bbox[1], 1, _Table(_pdf_grid(t.extract()))) for t in tables]
    placed += [(top, 0, p) for top, p in _pdf_paragraphs(lines)]
    return [item for _, _, item in sorted(placed, key=lambda t: (t[0], t[1]))]


def _pdf_grid(rows: list[list[str | None]]) -> list[list[object]]:
    """pdfplumber's table: None where a merged cell covers the position, as a workbook's ""."""
    grid: list[list[object]] = [[cell or "" for cell in row] for row in rows]
    if len(grid) > MAX_TABLE_ROWS or any(len(r) > MAX_TABLE_COLUMNS for r in grid):
        raise _too_large(len(grid), max(len(r) for r in grid))
    return _square(grid)


def _pdf_paragraphs(lines: list[dict[str, Any]]) -> Iterator[tuple[float, str]]:
    """Printed lines back into paragraphs: a line ends its paragraph when it stops short of the right
    margin, and the next starts one when it is indented (Chinese text has no spaces between lines)."""
    if not lines:
        return
    left = min(line["x0"] for line in lines)
    right = max(line["x1"] for line in lines)
    current: list[str] = []
    top = 0.0
    previous: dict[str, Any] | None = None
    for line in lines:
        size = max(line["bottom"] - line["top"], 1.0)
        starts = previous is None or line["x0"] > left + size or previous["x1"] < right - 2 * size \
            or line["top"] - previous["bottom"] > size
        if starts and current:
            yield top, "".join(current).strip()
            current = []
        if not current:
            top = line["top"]
        current.append(line["text"])
        previous = line
    if current:
        yield top, "".join(current).strip()


# ----------------------------------------------------------------------------------------------
# Findings


def _error(finding: Finding) -> Exception:
    from .catalog import DisclosureError

    return DisclosureError(finding)


def _unreadable(kind: str, exc: BaseException) -> Exception:
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc  # pdfplumber wraps pdfminer's
    detail = str(inner).splitlines()[0][:160] if str(inner) else type(inner).__name__
    reason = {lang: text("documents.reason.detail", lang, reason=text(f"documents.reason.{kind}", lang),
                         detail=detail) for lang in LANGS}
    return _error(Finding("file-unreadable", params={"reason": reason}))


def _too_large(rows: int, cols: int) -> Exception:
    return _error(Finding("file-too-large", params={
        "size": _both("documents.reason.table_size", rows=rows, cols=cols),
        "limit": _both("documents.reason.table_limit", rows=MAX_TABLE_ROWS, cols=MAX_TABLE_COLUMNS)}))


def _both(key: str, **params: object) -> dict[str, str]:
    """One of this module's words in every language, as a finding's parameter."""
    return {lang: text(key, lang, **params) for lang in LANGS}


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
