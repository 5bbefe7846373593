"""A workbook written once and stamped many times: templates and convert's cleaned workbooks at province scale.

Most of a cleaned workbook is the same for every office of a format: its sheets, labels, styles,
merges, formulas, validations and print set-up. Writing it through xlsxwriter for each office costs
tens of milliseconds, mostly spent rebuilding that constant part. So the writer renders each shape of
workbook once, with a token (`token(name)`) in every cell that varies, and a `Stencil` made from that
package turns it into parts with holes. Stamping fills the holes from one office's values and zips the
parts again:

- a cell holding only a token becomes the value: a number as a number, None as a blank (a styled empty
  cell, or no cell), text as an inline string (an empty text too, as xlsxwriter writes it); a cell whose
  text holds tokens among other words keeps its runs and their fonts, the tokens replaced;
- a formula cell named by its sheet and address gets its cached result;
- the second row of a table sheet is repeated once per row given, and the table's filter range and the
  sheet's dimension follow;
- the time the template was rendered at (`RENDERED_AT`) becomes the time of stamping.

Text is always written as text (XML-escaped, control characters in Excel's `_xHHHH_` form), never as a
formula or a link. This module knows SpreadsheetML, not reports; tests compare its output with
xlsxwriter's for the same values, cell by cell.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Union

from ._sheetml import MAX_TEXT, TextTooLong

__all__ = ["RENDERED_AT", "Stencil", "StencilError", "TextTooLong", "token"]

RENDERED_AT = datetime(2001, 2, 3, 4, 5, 6)  # what a stencil is rendered with; replaced by the stamp's time
_RENDERED_TEXT = RENDERED_AT.isoformat(timespec="seconds")  # as both docProps parts write it
_TOKEN = re.compile("\u2983([A-Za-z0-9_.:-]+)\u2984")
_CELL = re.compile(r'<c r="([A-Z]{1,3})([0-9]+)"([^>]*?)(?:/>|>(.*?)</c>)', re.S)
_ROW = re.compile(r'<row r="([0-9]+)"[^>]*>(.*?)</row>', re.S)
_SI = re.compile(r"<si>(.*?)</si>", re.S)
_TYPE = re.compile(r' t="(\w+)"')
_T_OPEN = re.compile(r"<t(?: xml:space=\"preserve\")?>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")
_ESCAPED = re.compile(r"(_x[0-9a-fA-F]{4}_)")


def token(name: str) -> str:
    """The placeholder of value `name` in a rendered template (letters, digits and `_ . : -`)."""
    return f"\u2983{name}\u2984"


class StencilError(ValueError):
    """The rendered template does not have the shape a stencil needs (a bug of its writer)."""


def _text(value: object) -> str:
    """A value as XML text of a cell, the way xlsxwriter escapes it."""
    text = str(value)
    if len(text) > MAX_TEXT:
        raise TextTooLong(f"a text of {len(text):,} characters does not fit a cell ({MAX_TEXT:,})")
    text = _ESCAPED.sub(r"_x005F\1", text)
    text = _CONTROL.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)
    text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(ref: str, attrs: str, value: object) -> str:
    """One `<c>` element for `value` (attrs: its style, e.g. ` s="4"`), as xlsxwriter writes it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f'<c r="{ref}"{attrs}/>' if attrs else ""
    if isinstance(value, bool):
        return f'<c r="{ref}"{attrs} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a number a cell can hold ({ref})")
        return f'<c r="{ref}"{attrs}><v>{value:.16G}</v></c>'
    return f'<c r="{ref}"{attrs} t="inlineStr"><is><t xml:space="preserve">{_text(value)}</t></is></c>'


@dataclass(frozen=True, slots=True)
class _Value:
    """A cell holding one token: the value itself."""

    ref: str
    attrs: str
    name: str

    def render(self, stamp: _Stamp) -> str:
        return _cell(self.ref, self.attrs, stamp.value(self.name))


@dataclass(frozen=True, slots=True)
class _Words:
    """A cell whose text holds tokens among other words: `pieces` alternate constant XML and token names."""

    ref: str
    attrs: str
    pieces: tuple[str, ...]

    def render(self, stamp: _Stamp) -> str:
        parts = [p if i % 2 == 0 else _text("" if (v := stamp.value(p)) is None else v)
                 for i, p in enumerate(self.pieces)]
        return f'<c r="{self.ref}"{self.attrs} t="inlineStr"><is>{"".join(parts)}</is></c>'


@dataclass(frozen=True, slots=True)
class _Result:
    """The cached result of a formula cell."""

    key: tuple[str, str]  # (sheet, address)

    def render(self, stamp: _Stamp) -> str:
        if self.key not in stamp.results:
            raise StencilError(f"no result given for the formula at {self.key}")
        return _text(stamp.results[self.key])


@dataclass(frozen=True, slots=True)
class _Rows:
    """A table's rows: the template row's cells (column letters, attributes) repeated once per row."""

    sheet: str
    first: int  # the row number of the template row
    cells: tuple[tuple[str, str], ...]

    def render(self, stamp: _Stamp) -> str:
        out = []
        for number, row in enumerate(stamp.rows(self.sheet, len(self.cells)), self.first):
            out.append(f'<row r="{number}">')
            out += [_cell(f"{col}{number}", attrs, value) for (col, attrs), value in zip(self.cells, row, strict=True)]
            out.append("</row>")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class _Extent:
    """The last row of a table in a range: `A1:F{n}` (a filter covers one row at least, as xlsxwriter's)."""

    sheet: str
    first: int  # the template row's number
    last_col: str
    absolute: bool
    at_least_one: bool

    def render(self, stamp: _Stamp) -> str:
        count = len(stamp.tables.get(self.sheet, ()))
        last = self.first - 1 + (max(count, 1) if self.at_least_one else count)
        return f"$A$1:${self.last_col}${last}" if self.absolute else f"A1:{self.last_col}{last}"


class _Time:
    """When the workbook was written (both docProps parts write it to the second)."""

    def render(self, stamp: _Stamp) -> str:
        return stamp.written.isoformat(timespec="seconds")


_Hole = Union[_Value, _Words, _Result, _Rows, _Extent, _Time]
_Part = tuple[Union[str, _Hole], ...]


@dataclass(frozen=True, slots=True)
class _Stamp:
    values: Mapping[str, object]
    results: Mapping[tuple[str, str], str]
    tables: Mapping[str, Sequence[Sequence[object]]]
    written: datetime

    def value(self, name: str) -> object:
        try:
            return self.values[name]
        except KeyError:
            raise StencilError(f"no value given for the token {name!r}") from None

    def rows(self, sheet: str, width: int) -> Sequence[Sequence[object]]:
        rows = self.tables.get(sheet, ())
        if any(len(r) != width for r in rows):
            raise StencilError(f"every row of the table on {sheet!r} must have {width} values")
        return rows


@dataclass(frozen=True)
class Stencil:
    """A rendered workbook as parts with holes; `stamp` fills them. Build it with `from_package`."""

    infos: tuple[zipfile.ZipInfo, ...]
    parts: Mapping[str, bytes | _Part]

    @classmethod
    def from_package(cls, data: bytes, *, results: Iterable[tuple[str, str]] = (),
                     tables: Iterable[str] = ()) -> Stencil:
        """The stencil of a package rendered with tokens and at RENDERED_AT.

        Args:
            results: the (sheet, address) of each formula cell whose cached result varies.
            tables: the sheets holding one header row and one template row of tokens, to be repeated.
        """
        archive = zipfile.ZipFile(io.BytesIO(data))
        raw = {info.filename: archive.read(info) for info in archive.infolist()}
        sheets = _sheet_parts(raw)
        strings, kept, tokens = _strings(raw.get("xl/sharedStrings.xml", b"").decode("utf-8"))
        results, tables = set(results), set(tables)
        unknown = (results and {s for s, _ in results} - set(sheets)) or (tables - set(sheets))
        if unknown:
            raise StencilError(f"no such sheets in the template: {sorted(unknown)}")
        parts: dict[str, bytes | _Part] = {}
        references = 0
        for name, content in raw.items():
            sheet = next((s for s, part in sheets.items() if part == name), None)
            if sheet is not None:
                pieces, count = _sheet(content.decode("utf-8"), sheet, kept, tokens,
                                       {ref for s, ref in results if s == sheet}, sheet in tables)
                references += count
                parts[name] = pieces
            elif name == "xl/workbook.xml":
                parts[name] = _filters(content.decode("utf-8"), list(sheets), tables)
            elif _RENDERED_TEXT.encode() in content:
                parts[name] = _with_time(content.decode("utf-8"))
            else:
                parts[name] = content
        if "xl/sharedStrings.xml" in raw:
            parts["xl/sharedStrings.xml"] = _kept_strings(raw["xl/sharedStrings.xml"].decode("utf-8"), strings,
                                                          kept, references).encode("utf-8")
        return cls(tuple(archive.infolist()), parts)

    def stamp(self, values: Mapping[str, object], *, results: Mapping[tuple[str, str], str] | None = None,
              tables: Mapping[str, Sequence[Sequence[object]]] | None = None,
              written: datetime | None = None) -> bytes:
        """The package with every hole filled: `values` by token name, formula `results` by (sheet, address),
        `tables` by sheet (rows of values), `written` (now by default) as its time.

        Raises:
            TextTooLong: a text does not fit a cell.
            StencilError: a token, result or row width is missing.
        """
        stamp = _Stamp(values, results or {}, tables or {}, written or datetime.now())
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for info in self.infos:
                part = self.parts[info.filename]
                content = part if isinstance(part, bytes) else "".join(
                    p if isinstance(p, str) else p.render(stamp) for p in part).encode("utf-8")
                member = zipfile.ZipInfo(info.filename, info.date_time)  # writing fills in a ZipInfo: a new one
                member.external_attr = info.external_attr
                archive.writestr(member, content, compress_type=zipfile.ZIP_DEFLATED)
        return buffer.getvalue()


def _sheet_parts(raw: Mapping[str, bytes]) -> dict[str, str]:
    """Sheet name → its part, from the workbook and its relationships."""
    workbook = raw["xl/workbook.xml"].decode("utf-8")
    rels = raw["xl/_rels/workbook.xml.rels"].decode("utf-8")
    targets = dict(re.findall(r'<Relationship Id="([^"]+)" Type="[^"]+/worksheet" Target="([^"]+)"', rels))
    out = {}
    for name, rid in re.findall(r'<sheet name="([^"]+)" sheetId="[0-9]+" r:id="([^"]+)"/>', workbook):
        out[_unescape(name)] = "xl/" + targets[rid].lstrip("/").removeprefix("xl/")
    return out


def _unescape(text: str) -> str:
    return text.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _strings(sst: str) -> tuple[list[str], dict[int, int], dict[int, tuple[str, ...]]]:
    """The shared strings, the new index of each kept one, and the pieces of each that holds a token
    (constant XML and token names, alternating); those are dropped from the table."""
    strings = _SI.findall(sst)
    kept: dict[int, int] = {}
    tokens: dict[int, tuple[str, ...]] = {}
    for index, inner in enumerate(strings):
        if _TOKEN.search(inner):
            tokens[index] = tuple(_TOKEN.split(_T_OPEN.sub('<t xml:space="preserve">', inner)))
        else:
            kept[index] = len(kept)
    return strings, kept, tokens


def _kept_strings(sst: str, strings: Sequence[str], kept: Mapping[int, int], references: int) -> str:
    head = sst[: sst.index("<si>")] if "<si>" in sst else sst[: sst.rindex("</sst>")]
    head = re.sub(r'count="[0-9]+"', f'count="{references}"', head, count=1)
    head = re.sub(r'uniqueCount="[0-9]+"', f'uniqueCount="{len(kept)}"', head, count=1)
    return head + "".join(f"<si>{strings[i]}</si>" for i in kept) + "</sst>"


def _sheet(xml: str, sheet: str, kept: Mapping[int, int], tokens: Mapping[int, tuple[str, ...]], results: set[str], table: bool) -> tuple[_Part, int]:
    """A sheet's XML cut at its holes; and how many shared-string references it keeps."""
    if not table:
        return _cells(xml, sheet, kept, tokens, results)
    rows = list(_ROW.finditer(xml))
    if len(rows) != 2:
        raise StencilError(f"the table on {sheet!r} must be rendered with one row under its header")
    row = rows[1]
    cells = []
    for cell in _CELL.finditer(row.group(2)):
        kind, attrs = _kind(cell.group(3))
        words = tokens.get(int(cell.group(4)[3:-4])) if kind == "s" else None
        if words is None or not _plain(words):
            raise StencilError(f"every cell of the template row on {sheet!r} must hold one token")
        cells.append((cell.group(1), attrs))
    template = _Rows(sheet, int(row.group(1)), tuple(cells))
    last_col = cells[-1][0]
    span = f"A1:{last_col}{template.first}"
    head, references = _cells(xml[: row.start()], sheet, kept, tokens, results)
    dimension = _Extent(sheet, template.first, last_col, False, False)
    autofilter = _Extent(sheet, template.first, last_col, False, True)
    pieces = [*_cut(head, f'<dimension ref="{span}"/>', ('<dimension ref="', dimension, '"/>')), template,
              *_cut((xml[row.end():],), f'<autoFilter ref="{span}"/>', ('<autoFilter ref="', autofilter, '"/>'))]
    return tuple(pieces), references


def _cut(pieces: Sequence[str | _Hole], text: str, into: Sequence[str | _Hole]) -> list[str | _Hole]:
    """`pieces` with the first constant `text` among them replaced by `into`."""
    out: list[str | _Hole] = []
    found = False
    for piece in pieces:
        if not found and isinstance(piece, str) and text in piece:
            before, after = piece.split(text, 1)
            out += [before, *into, after]
            found = True
        else:
            out.append(piece)
    return [p for p in out if p != ""]


def _plain(words: tuple[str, ...]) -> bool:
    """Whether a token string is one token and nothing else."""
    return len(words) == 3 and words[0] == '<t xml:space="preserve">' and words[2] == "</t>"


def _cells(xml: str, sheet: str, kept: Mapping[int, int], tokens: Mapping[int, tuple[str, ...]],
           results: set[str]) -> tuple[_Part, int]:
    """XML cut at its token cells and formula results; shared-string indices renumbered."""
    pieces: list[str | _Hole] = []
    references = done = 0
    missing = set(results)
    for match in _CELL.finditer(xml):
        col, number, rest, inner = match.groups()
        ref = f"{col}{number}"
        kind, attrs = _kind(rest)
        pieces.append(xml[done:match.start()])
        done = match.end()
        if kind == "s" and int(inner[3:-4]) in tokens:
            words = tokens[int(inner[3:-4])]
            pieces.append(_Value(ref, attrs, words[1]) if _plain(words) else _Words(ref, attrs, words))
        elif kind == "s":
            references += 1
            pieces.append(f'<c r="{ref}"{rest}><v>{kept[int(inner[3:-4])]}</v></c>')
        elif ref in results:
            value = inner.rindex("<v>")
            pieces += [f'<c r="{ref}"{rest}>{inner[:value]}<v>', _Result((sheet, ref)), "</v></c>"]
            missing.discard(ref)
        else:
            pieces.append(match.group(0))
    if missing:
        raise StencilError(f"no formula cells {sorted(missing)} on {sheet!r}")
    pieces.append(xml[done:])
    return tuple(p for p in pieces if p != ""), references


def _kind(rest: str) -> tuple[str, str]:
    """A cell's type (`s`, `str`, `b`, `n` …) and its other attributes."""
    found = _TYPE.search(rest)
    return (found.group(1) if found else "n"), _TYPE.sub("", rest)


def _filters(xml: str, sheets: Sequence[str], tables: set[str]) -> bytes | _Part:
    """workbook.xml, with the range of each table's filter as a hole."""
    pieces: list[str | _Hole] = []
    done = 0
    for match in re.finditer(r'<definedName name="_xlnm._FilterDatabase" localSheetId="([0-9]+)" hidden="1">'
                             r"([^<]*?)!\$A\$1:\$([A-Z]{1,3})\$([0-9]+)</definedName>", xml):
        sheet = sheets[int(match.group(1))]
        if sheet not in tables:
            continue
        start = match.start(3) - len("$A$1:$")
        pieces += [xml[done:start], _Extent(sheet, int(match.group(4)), match.group(3), True, True)]
        done = match.end(4)
    if not pieces:
        return xml.encode("utf-8")
    pieces.append(xml[done:])
    return tuple(pieces)


def _with_time(xml: str) -> _Part:
    pieces: list[str | _Hole] = []
    for i, piece in enumerate(xml.split(_RENDERED_TEXT)):
        if i:
            pieces.append(_Time())
        pieces.append(piece)
    return tuple(pieces)
