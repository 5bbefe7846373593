"""Every limit on what the tool reads, and the cheap look that enforces them before any reader runs.

A filled report is ~20 KB: five sheets of under 60 rows and 20 columns. Readers trust the file: python-calamine
sizes its grid by the farthest cell it meets (one cell at XFD1048576 asks for 512 GiB and aborts the process),
openpyxl walks every row up to the last. So before either sees a file, `read_regular` opens it only if it is a
regular file of a sane size, and `check_archive` looks at the zip directory and then at each sheet's XML
with a linear tokenizer: every cell, row and used-range reference (xlsx) and every repeat count (ods) must
stay within the limits below, and no XML part may declare a document type or entities. The README's table
of bad inputs quotes these numbers (a test compares them).
"""

from __future__ import annotations

import html
import io
import os
import posixpath
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .access import access_problem
from .catalog import DisclosureError, Finding, bilingual, text
from .layout import a1

__all__ = ["FILE_TIMEOUT_SECONDS", "MAX_DOCUMENT_XML_BYTES", "MAX_FILE_BYTES", "MAX_PDF_INFLATED_BYTES",
           "MAX_PDF_PAGES", "MAX_TABLE_COLUMNS", "MAX_TABLE_ROWS", "MAX_FUZZY_TEXTS", "MAX_GRID_CELLS", "MAX_LABEL_CANDIDATES",
           "MAX_LABEL_CHARS", "MAX_NUMBER_CHARS", "MAX_SHEET_COLUMNS", "MAX_SHEET_ROWS", "MAX_SHEET_XML_BYTES",
           "MAX_UNZIPPED_BYTES", "MAX_ZIP_MEMBERS", "WORKER_MEMORY_BYTES", "WRITE_TIMEOUT_SECONDS", "CELL_TEXT_MAX", "ZIP_ERRORS", "check_archive",
           "check_loaded_sheet", "mib", "read_regular", "too_large", "unreadable"]

# What a file may be, checked before any reader runs.
MAX_FILE_BYTES = 20 * 2**20  # a filled report is ~20 KB; anything this large is not one
MAX_ZIP_MEMBERS = 1_000  # a workbook has ~15 parts (a few more with pictures)
MAX_UNZIPPED_BYTES = 100 * 2**20  # zip bombs are refused from the zip directory, before anything is inflated
MAX_SHEET_XML_BYTES = 10 * 2**20  # a report sheet's XML is ~20 KB; a million rows is 15 MB or more
MAX_SHEET_ROWS = 5_000  # a report sheet has < 60 rows
MAX_SHEET_COLUMNS = 256  # a report sheet has < 20 columns; 256 (IV) is the old .xls width
MAX_GRID_CELLS = 2_000_000  # rows × columns of all sheets together: the reader's grid (~40 bytes a cell)
# Bounds on the work done on what was read.
# Published reports (documents.py): the file and unzipped limits above apply too.
MAX_DOCUMENT_XML_BYTES = 20 * 2**20  # a report's word/document.xml is ~0.1–0.5 MB
MAX_PDF_PAGES = 200  # a report prints on 5–15 pages
MAX_PDF_INFLATED_BYTES = 100 * 2**20  # a PDF's streams, inflated: as a workbook's unzipped size
MAX_TABLE_ROWS = 5_000  # as for a workbook sheet; a report table has < 40 rows
MAX_TABLE_COLUMNS = 200  # a report table has ≤ 15 columns (HTML allows colspan up to 1000)

MAX_NUMBER_CHARS = 64  # a value written with more characters is not read as a number (a Decimal of a
# million digits overflows, and cleaning a megabyte of text per cell adds up)
MAX_LABEL_CHARS = 200  # a label or title line is under 60 characters; longer texts are never compared as labels
MAX_LABEL_CANDIDATES = 32  # cells tried as the first column label of a table (a report shows it once or twice)
MAX_FUZZY_TEXTS = 2_000  # distinct texts compared for typos per label (a report has ~300)
# Each file is read in a worker process (workers.py) under these.
FILE_TIMEOUT_SECONDS = 30.0  # a report reads in ~5 ms; a file still being read after this is stopped
WORKER_MEMORY_BYTES = 2 * 2**30  # address space a worker may add while reading one file
# What the tool writes: each workbook's outputs are written in a worker too (outputs.py, feedback.py,
# convert.py, publish.py), under the memory limit above and this timeout.
WRITE_TIMEOUT_SECONDS = 30.0  # a cleaned workbook takes ~40 ms, an annotated copy ~10 ms
CELL_TEXT_MAX = 32_767  # characters a spreadsheet cell holds (Excel's limit; xlsxwriter refuses more)

_PROLOG_BYTES = 4096  # an XML part's declarations come first; a workbook's take ~100 bytes
_SHEET_DIRS = ("xl/worksheets/", "xl/chartsheets/", "xl/macrosheets/", "xl/dialogsheets/")
# One start or end tag of interest, any namespace prefix. Attribute values cannot hold "<", so every
# alternative stops at the next "<": each character is looked at by one attempt only (linear time).
_XLSX_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|c|dimension)(?=[\s/>])"
                       rb"((?:[^<>\"']|\"[^<\"]*\"|'[^<']*')*+)>")
_ODS_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(table|table-row|table-cell|covered-table-cell)(?=[\s/>])"
                      rb"((?:[^<>\"']|\"[^<\"]*\"|'[^<']*')*+)>")
_ATTR = re.compile(rb"(?:^|\s)(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_REF = re.compile(r"\$?([A-Za-z]+)\$?(\d+)")
_RELATIONSHIP = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Relationship\b([^<>]*)>")


def _both(key: str, **params: object) -> dict[str, str]:
    return bilingual(text(f"limits.{key}", "zh", **params), text(f"limits.{key}", "en", **params))


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def too_large(size: dict[str, str], limit: dict[str, str]) -> Finding:
    """`file-too-large`, saying what was too large and which limit it passed."""
    return Finding("file-too-large", params={"size": size, "limit": limit})


def unreadable(reason: dict[str, str]) -> Finding:
    return Finding("file-unreadable", params={"reason": reason})


def _sheet_limit() -> dict[str, str]:
    return _both("limit.sheet", rows=MAX_SHEET_ROWS, columns=MAX_SHEET_COLUMNS)


def _detail(exc: BaseException) -> str:
    """An exception in a few words, without the file's path (it may not be printable)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    first = str(exc).splitlines()[0][:160] if str(exc) else ""
    return first or type(exc).__name__


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of `path`, if it is a regular file no larger than MAX_FILE_BYTES.

    Opened without blocking (a named pipe given as a workbook would wait forever for a writer) and checked
    on the open descriptor, so a link to a device or a pipe is refused too; the file is read once, and
    every reader works on these bytes (nothing can change between the checks and the reading).

    Raises:
        DisclosureError: `file-unreadable` (not a regular file, vanished, unreadable) or `file-too-large`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:  # no permission, locked, gone during the run: this machine's problem (access.py)
        raise DisclosureError(access_problem(exc) or unreadable(_both("reason.os_error", detail=_detail(exc)))) \
            from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("fifo" if stat.S_ISFIFO(info.st_mode) else "device" if stat.S_ISCHR(info.st_mode)
                    or stat.S_ISBLK(info.st_mode) else "socket" if stat.S_ISSOCK(info.st_mode)
                    else "directory" if stat.S_ISDIR(info.st_mode) else "other")
            kinds = _both(f"kind.{kind}")
            raise DisclosureError(unreadable(bilingual(
                text("limits.reason.not_regular", "zh", kind=kinds["zh"]),
                text("limits.reason.not_regular", "en", kind=kinds["en"]))))
        if info.st_size > MAX_FILE_BYTES:
            raise DisclosureError(too_large(_both("size.file", size=mib(info.st_size)),
                                            _both("limit.bytes", size=mib(MAX_FILE_BYTES))))
        with os.fdopen(fd, "rb", closefd=False) as stream:
            # the size it has, and one byte more to see it grow; a file that grows while being read is still
            # bounded (asking for MAX_FILE_BYTES at once would allocate 20 MiB for every 20 KB report)
            data = stream.read(info.st_size + 1)
            if len(data) > info.st_size:
                data += stream.read(MAX_FILE_BYTES + 1 - len(data))
    except OSError as exc:
        raise DisclosureError(access_problem(exc) or unreadable(_both("reason.os_error", detail=_detail(exc)))) \
            from exc
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise DisclosureError(too_large(_both("size.file", size=mib(len(data))),
                                        _both("limit.bytes", size=mib(MAX_FILE_BYTES))))
    return data


# Everything zipfile can raise on a damaged archive: the file's damage, never a defect of ours.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, RuntimeError,
               NotImplementedError, ValueError, KeyError, IndexError, struct.error, UnicodeDecodeError,
               OverflowError)


def check_archive(data: bytes) -> zipfile.ZipFile | None:
    """Refuse a zip-based workbook that goes beyond a limit; return the open archive, or None if `data`
    is not a zip (a .xls, or no workbook at all: python-calamine will say which).

    Checks, in order: the zip directory (parts, unzipped size, duplicate part names), the declarations
    of every XML part, then every reference in the sheets' XML (xlsx and ods told apart by their parts,
    not by the file's name, as python-calamine tells them apart).

    Raises:
        DisclosureError: `file-too-large` naming the limit, or `file-unreadable` for a damaged archive or
            an XML part that declares a document type or entities.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return None
    except ZIP_ERRORS as exc:
        raise DisclosureError(unreadable(_both("reason.damaged", detail=_detail(exc)))) from exc
    _check_directory(archive)
    sheets = _sheet_parts(data, archive)
    grid = 0
    for info in archive.infolist():
        if info.is_dir():
            continue
        scan = sheets.get(info.filename)
        raw = _compressed(data, info)
        if scan is None:
            key = (info.compress_type, info.file_size, raw)
            if key not in _CLEAN_PARTS:  # a batch's workbooks share their template's other parts
                _check_prolog(_as_utf8(_inflate(raw, info, archive, _PROLOG_BYTES)), info.filename)
                if len(_CLEAN_PARTS) > 1024:
                    _CLEAN_PARTS.clear()
                _CLEAN_PARTS[key] = None
            continue
        if info.file_size > MAX_SHEET_XML_BYTES:
            raise DisclosureError(too_large(_both("size.sheet_xml", size=mib(info.file_size)),
                                            _both("limit.bytes", size=mib(MAX_SHEET_XML_BYTES))))
        sheet_key = (scan, info.compress_type, info.file_size, raw)
        if sheet_key not in _CLEAN_SHEETS:  # sheets without values (the narratives') repeat in a batch
            xml = _as_utf8(_inflate(raw, info, archive, info.file_size))
            _check_prolog(xml, info.filename)
            if len(_CLEAN_SHEETS) > 1024:
                _CLEAN_SHEETS.clear()
            _CLEAN_SHEETS[sheet_key] = scan(xml, info.filename, archive)
        grid += _CLEAN_SHEETS[sheet_key]
        if grid > MAX_GRID_CELLS:
            raise DisclosureError(too_large(_both("size.grid", cells=grid),
                                            _both("limit.grid", cells=MAX_GRID_CELLS)))
    return archive


def _check_directory(archive: zipfile.ZipFile) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise DisclosureError(too_large(_both("size.members", count=len(infos)),
                                        _both("limit.members", count=MAX_ZIP_MEMBERS)))
    unzipped = sum(info.file_size for info in infos)
    if unzipped > MAX_UNZIPPED_BYTES:
        raise DisclosureError(too_large(_both("size.unzipped", size=mib(unzipped)),
                                        _both("limit.bytes", size=mib(MAX_UNZIPPED_BYTES))))
    seen: set[str] = set()
    for info in infos:
        if info.filename in seen:  # readers disagree on which copy counts: a zip no office program writes
            raise DisclosureError(unreadable(_both("reason.duplicate_part", part=info.filename)))
        seen.add(info.filename)
    if "xl/workbook.bin" in seen:  # python-calamine would read it as .xlsb, whose binary sheets we cannot look at
        raise DisclosureError(unreadable(_both("reason.binary_workbook")))


# Parts already seen without declarations, by their compressed bytes themselves (not a checksum, which a
# file could forge): identical bytes inflate to identical XML.
_CLEAN_PARTS: dict[tuple[int, int, bytes], None] = {}
_CLEAN_SHEETS: dict[tuple[object, int, int, bytes], int] = {}  # sheet parts within the limits → grid size


def _compressed(data: bytes, info: zipfile.ZipInfo) -> bytes:
    """A part's bytes as stored, found from its local header as every zip reader finds them."""
    header = data[info.header_offset:info.header_offset + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04" or info.flag_bits & 0x1:
        raise DisclosureError(unreadable(_both("reason.damaged", detail=f"bad local header for {info.filename}")))
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    return data[start:start + info.compress_size]


def _inflate(raw: bytes, info: zipfile.ZipInfo, archive: zipfile.ZipFile, size: int) -> bytes:
    """The first `size` bytes of a part (all of it when `size` is its size), inflated straight from its
    stored bytes: opening each part through zipfile costs more than looking at it. A part that inflates
    to more than the directory says is damage (zipfile and python-calamine refuse it too)."""
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            out = raw[:size + 1]
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            out = zlib.decompressobj(-15).decompress(raw, size + 1)
        else:  # bzip2, lzma, or a method no reader knows: zipfile says which
            with archive.open(info) as part:
                out = part.read(size + 1)
    except ZIP_ERRORS as exc:  # the part's damage, never a defect of ours
        raise DisclosureError(unreadable(_both("reason.damaged", detail=_detail(exc)))) from exc
    if len(out) > info.file_size:
        raise DisclosureError(unreadable(_both(
            "reason.damaged", detail=f"{info.filename} is larger than its directory entry says")))
    return out[:size]


def _sheet_parts(data: bytes, archive: zipfile.ZipFile) -> dict[str, Callable[[bytes, str, zipfile.ZipFile], int]]:
    """The parts a reader takes cells from, each with its scanner: content.xml (ods), and for xlsx every
    part in a sheet folder and every target of the workbook's relationships whose type names a sheet
    (wherever it points)."""
    names = archive.namelist()
    parts: dict[str, Callable[[bytes, str, zipfile.ZipFile], int]] = {}
    if "content.xml" in names:
        parts["content.xml"] = _scan_ods
    for name in names:
        if name.lower().startswith(_SHEET_DIRS):
            parts[name] = _scan_xlsx
    rels = "xl/_rels/workbook.xml.rels"
    if rels in names:
        info = archive.getinfo(rels)
        targets = _sheet_targets(info, _compressed(data, info), archive)
        parts.update((name, _scan_xlsx) for name in names if name.lower() in targets)
    return parts


_TARGETS: dict[tuple[int, int, bytes], frozenset[str]] = {}  # by the relationships part's stored bytes


def _sheet_targets(info: zipfile.ZipInfo, raw: bytes, archive: zipfile.ZipFile) -> frozenset[str]:
    """The part names (lower case) the workbook's sheet relationships may point at; worked out once per
    distinct relationships part (a batch's workbooks share their template's)."""
    key = (info.compress_type, info.file_size, raw)
    if key not in _TARGETS:
        xml = _as_utf8(_inflate(raw, info, archive, info.file_size))
        _check_prolog(xml, info.filename)
        found: set[str] = set()
        for match in _RELATIONSHIP.finditer(xml):
            attrs = _attrs(match.group(1))
            if "sheet" in attrs.get("Type", "").lower() and attrs.get("Target"):
                found.update(form.lower() for form in _targets(attrs["Target"]))
        if len(_TARGETS) > 256:
            _TARGETS.clear()
        _TARGETS[key] = frozenset(found)
    return _TARGETS[key]


def _targets(target: str) -> tuple[str, ...]:
    """The part names a relationship target may mean (readers resolve them differently)."""
    if target.startswith("/"):
        return (target.lstrip("/"),)
    return (posixpath.normpath("xl/" + target), "xl/" + target, target)


def _as_utf8(data: bytes) -> bytes:
    """XML parts are UTF-8 (or ASCII-compatible); a UTF-16 one is re-encoded so the byte patterns apply."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", "replace").encode("utf-8")
    if data[:2] in (b"<\x00", b"\x00<"):
        return data.decode("utf-16-le" if data[:1] == b"<" else "utf-16-be", "replace").encode("utf-8")
    return data


_SPACE = re.compile(rb"[ \t\r\n]*")


def _check_prolog(xml: bytes, part: str) -> None:
    """No document type or entity declarations before the root element (the way to make a reader expand a
    few bytes into gigabytes). `xml` is the part, or at least its first _PROLOG_BYTES.

    Walks the prolog as a parser does (declaration, processing instructions, comments), so nothing hides a
    declaration; a prolog longer than _PROLOG_BYTES is refused too. A part that is not XML ends the walk at
    once: its reader will say what it is.
    """
    pos = 3 if xml.startswith(b"\xef\xbb\xbf") else 0
    while True:
        pos = _SPACE.match(xml, pos).end()  # type: ignore[union-attr]
        if pos >= _PROLOG_BYTES:
            raise DisclosureError(unreadable(_both("reason.long_prolog", part=part)))
        if xml.startswith(b"<?", pos):
            end, size = xml.find(b"?>", pos + 2), 2
        elif xml.startswith(b"<!--", pos):
            end, size = xml.find(b"-->", pos + 4), 3
        elif xml.startswith(b"<!", pos):
            raise DisclosureError(unreadable(_both("reason.declaration", part=part)))
        else:
            return  # the root element, or no XML at all
        if end < 0:
            if len(xml) >= _PROLOG_BYTES:
                raise DisclosureError(unreadable(_both("reason.long_prolog", part=part)))
            return  # an unterminated declaration: malformed, and the reader will say so
        pos = end + size


def _attrs_list(raw: bytes) -> list[tuple[str, str]]:
    """A tag's attributes as (local name, value) pairs in order; character references decoded (readers
    decode them too)."""
    out = []
    for match in _ATTR.finditer(raw):
        value = (match.group(2) if match.group(2) is not None else match.group(3)).decode("utf-8", "replace")
        out.append((match.group(1).decode("ascii", "replace"), html.unescape(value) if "&" in value else value))
    return out


def _attrs(raw: bytes) -> dict[str, str]:
    """A tag's attributes by local name (the last one wins, as in a dictionary)."""
    return dict(_attrs_list(raw))


@dataclass(frozen=True, slots=True)
class _Ref:
    row: int  # 0-based
    col: int


def _parse_ref(value: str) -> _Ref | None:
    found = _REF.search(value[:40])
    if not found:
        return None
    col = 0
    for ch in found.group(1)[:8].upper():
        col = col * 26 + ord(ch) - 64
    return _Ref(int(found.group(2)[:12]) - 1, col - 1)


def _shown_ref(row: int, col: int) -> str:
    return a1(min(row, 2**20 - 1), min(col, 2**14 - 1)) if row < 2**20 and col < 2**14 else f"R{row + 1}C{col + 1}"


_STD_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})[0-9]')
_STD_CELL_ROW = re.compile(rb'<c r="[A-Z]{1,3}([0-9]{1,7})"')
_STD_ROW = re.compile(rb'<row r="([0-9]{1,7})"')
_WHITESPACE = bytes.maketrans(b"\t\n\r", b"   ")
_TAG_ENDS = bytes.maketrans(b">/", b"  ")
_DIMENSION = re.compile(rb"dimension[\s/>]([^<>]*)")


def _scan_xlsx(xml: bytes, part: str, archive: zipfile.ZipFile) -> int:
    """Every <row r>, <c r> (a cell without r counts on from the previous one, as readers do) and the
    <dimension ref> of one sheet must lie within the limits; returns the sheet's grid size.

    Only the sheet's skeleton matters: without its cell values (`<v>` and a plain inline string hold no
    tag) and value types, the sheets of a batch made from one template are mostly the same bytes, so
    each skeleton is looked at once.
    """
    skeleton = _TYPES.sub(b"", _VALUES.sub(b"", xml))
    known = _SKELETONS.get(skeleton)
    if known is None:
        known = _scan_skeleton(skeleton, part, archive)
        if len(_SKELETONS) > 256:
            _SKELETONS.clear()
        _SKELETONS[skeleton] = known
    return known


# A value (`<v>`, or an inline string of plain text: the stamped templates and cleaned workbooks write
# text so) and a value type; `[^<]*` hides no tag and no r attribute.
_VALUES = re.compile(rb'<v>[^<]*</v>|<is><t(?: xml:space="preserve")?>[^<]*</t></is>')
_TYPES = re.compile(rb' t="[A-Za-z]+"')
_SKELETONS: dict[bytes, int] = {}  # sheet skeletons within the limits → their grid size


def _scan_skeleton(xml: bytes, part: str, archive: zipfile.ZipFile) -> int:
    """`_scan_xlsx` on one skeleton.

    Office programs write every cell and row as `<c r="B5"` / `<row r="5"`, r first. When the sheet has
    only such cells and rows, and no other r attribute, the references are taken with two C-speed
    patterns and a few counts; anything else (prefixed tags, other quotes or spacing, character
    references, cells without r, a second r) is walked tag by tag (`_walk_xlsx`).
    """
    at = xml.find(b"dimension")
    while at >= 0:
        found = _DIMENSION.match(xml, at)
        last = _parse_ref(_attrs(found.group(1)).get("ref", "").split(":")[-1]) if found else None
        if last and (last.row >= MAX_SHEET_ROWS or last.col >= MAX_SHEET_COLUMNS):
            raise DisclosureError(too_large(_both(
                "size.used_range", sheet=_xlsx_sheet_name(archive, part), ref=_shown_ref(last.row, last.col)),
                _sheet_limit()))
        at = xml.find(b"dimension", at + 9)
    flat = xml.translate(_WHITESPACE)  # XML whitespace is all alike: one form to look for
    ends = flat.translate(_TAG_ENDS)  # and "<c>", "<c/>" become "<c " too
    letters, digits, rows = _STD_COLUMN.findall(flat), _STD_CELL_ROW.findall(flat), _STD_ROW.findall(flat)
    tags = ends.count(b"<c ") + ends.count(b"<row ")
    if tags != len(letters) + len(rows) or len(digits) != len(letters) or flat.count(b" r=") != tags \
            or b" r " in flat or b":c " in ends or b":row " in ends:
        return _walk_xlsx(xml, part, archive)  # calamine takes the last of two r attributes: walk it
    far_row = max(max(map(int, set(digits)), default=0), max(map(int, set(rows)), default=0)) - 1
    far_col = _column(max(set(letters), key=lambda c: (len(c), c))) if letters else -1
    if far_row >= MAX_SHEET_ROWS or far_col >= MAX_SHEET_COLUMNS:
        return _walk_xlsx(xml, part, archive)  # to name the first cell beyond the limits
    return (far_row + 1) * (far_col + 1)


def _column(letters: bytes) -> int:
    col = 0
    for ch in letters[:8].upper():
        col = col * 26 + ch - 64
    return col - 1


def _walk_xlsx(xml: bytes, part: str, archive: zipfile.ZipFile) -> int:
    """The tag-by-tag walk of `_scan_xlsx`: linear, and refuses at the first reference beyond a limit."""
    row, col, far_row, far_col = -1, -1, -1, -1
    for match in _XLSX_TAG.finditer(xml):
        closing, tag, raw = match.groups()
        if closing:
            if tag == b"row":
                col = -1
            continue
        if tag == b"dimension":
            continue  # checked before the walk
        # a second r attribute is malformed; the farthest of them counts, whichever a reader takes
        refs = [r for r in (_parse_ref(v if tag == b"c" else "A" + v) for v in _values(raw, b"r")) if r]
        if tag == b"c":
            row, col = (max(r.row for r in refs), max(r.col for r in refs)) if refs else (max(row, 0), col + 1)
            if row >= MAX_SHEET_ROWS or col >= MAX_SHEET_COLUMNS:
                raise DisclosureError(too_large(_both(
                    "size.cell", sheet=_xlsx_sheet_name(archive, part), ref=_shown_ref(row, col),
                    row=row + 1, col=col + 1), _sheet_limit()))
        else:
            row, col = (max(r.row for r in refs) if refs else row + 1), -1
            if row >= MAX_SHEET_ROWS:
                raise DisclosureError(too_large(_both("size.row", sheet=_xlsx_sheet_name(archive, part),
                                                      row=row + 1), _sheet_limit()))
        far_row, far_col = max(far_row, row), max(far_col, col)
    return (far_row + 1) * (far_col + 1)


def _values(raw: bytes, name: bytes) -> list[str]:
    """Every value of the attribute `name` (any prefix) in a tag's attribute text, references decoded."""
    if name not in raw:
        return []
    pattern = _VALUE_PATTERNS.get(name)
    if pattern is None:
        pattern = _VALUE_PATTERNS[name] = re.compile(
            rb"(?:^|\s)(?:[A-Za-z_][\w.-]*:)?" + re.escape(name) + rb"\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
    out = []
    for double, single in pattern.findall(raw):
        value = (double or single).decode("utf-8", "replace")
        out.append(html.unescape(value) if "&" in value else value)
    return out


_VALUE_PATTERNS: dict[bytes, re.Pattern[bytes]] = {}


def _xlsx_sheet_name(archive: zipfile.ZipFile, part: str) -> str:
    """The name an office sees for a sheet part (looked up only when a file is refused)."""
    try:
        rels = archive.read("xl/_rels/workbook.xml.rels")
        book = archive.read("xl/workbook.xml")
    except ZIP_ERRORS:  # only to name the sheet in the message: its part name will do
        return part
    ids = set()
    for match in _RELATIONSHIP.finditer(rels):
        attrs = _attrs(match.group(1))
        if part in _targets(attrs.get("Target", "")):
            ids.add(attrs.get("Id", ""))
    for match in re.finditer(rb"<(?:[A-Za-z_][\w.-]*:)?sheet\b([^<>]*)>", book):
        attrs = _attrs(match.group(1))
        if attrs.get("id") in ids:
            return attrs.get("name", part)
    return part


def _scan_ods(xml: bytes, part: str, archive: zipfile.ZipFile) -> int:
    """Rows and cells that hold something must lie within the limits, repeats counted; returns the grid size
    of all tables. Empty repeats (LibreOffice ends every sheet with a million empty rows) cost a reader
    nothing and are not counted."""
    skeleton = _ODS_VALUES.sub(b"", _ODS_TEXTS.sub(b"<text:p/>", xml))  # as for xlsx: values hide no tag
    known = _SKELETONS.get(skeleton)
    if known is None:
        known = _scan_ods_skeleton(skeleton)
        if len(_SKELETONS) > 256:
            _SKELETONS.clear()
        _SKELETONS[skeleton] = known
    return known


_ODS_TEXTS, _ODS_VALUES = re.compile(rb"<text:p>[^<]*</text:p>"), re.compile(rb' office:value="[^"<]*"')


def _scan_ods_skeleton(xml: bytes) -> int:
    total = 0
    for name, far_row, far_col in _ods_tables(xml):
        if far_col >= MAX_SHEET_COLUMNS or far_row >= MAX_SHEET_ROWS:
            raise DisclosureError(too_large(_both(
                "size.cell", sheet=name, ref=_shown_ref(far_row, far_col), row=far_row + 1, col=far_col + 1),
                _sheet_limit()))
        total += (far_row + 1) * (far_col + 1)
    return total


def _ods_tables(xml: bytes) -> Iterator[tuple[str, int, int]]:
    """(table name, last row and last column holding content, 0-based) for each table, repeats counted;
    stops after the first table beyond the limits.

    A cell holds content if it has a value type or any child element (a text paragraph); a nested table
    (rare) counts on in its outer table's rows, which can only overstate the size.
    """
    depth, name, row, col, far_row, far_col, row_repeat, row_has = 0, "", 0, 0, -1, -1, 1, False
    for match in _ODS_TAG.finditer(xml):
        closing, tag, raw = match.groups()
        if tag == b"table":
            if not closing and not raw.endswith(b"/"):
                depth += 1
                if depth == 1:
                    name, row, col, far_row, far_col, row_repeat, row_has = _ods_name(raw), 0, 0, -1, -1, 1, False
            elif closing and depth:
                depth -= 1
                if depth == 0:
                    yield name, far_row, far_col
            continue
        if depth == 0:
            continue
        if tag == b"table-row":
            if not closing:
                row_repeat = _repeat(raw, b"number-rows-repeated") if b"repeated" in raw else 1
                row_has, col = False, 0
                if not raw.endswith(b"/"):
                    continue
            if row_has:
                far_row = max(far_row, row + row_repeat - 1)
            row, col, row_repeat, row_has = row + row_repeat, 0, 1, False
        elif not closing:
            repeat = _repeat(raw, b"number-columns-repeated") if b"repeated" in raw else 1
            if b"value-type" in raw or (not raw.endswith(b"/") and not xml.startswith(b"</", match.end())):
                row_has, far_col = True, max(far_col, col + repeat - 1)
                far_row = max(far_row, row)
            col += repeat
        else:
            continue
        if far_row >= MAX_SHEET_ROWS or far_col >= MAX_SHEET_COLUMNS:
            yield name, far_row, far_col
            return
    if depth:
        yield name, far_row, far_col


def _ods_name(raw: bytes) -> str:
    names = _values(raw, b"name")
    return names[-1] if names else ""


def _repeat(raw: bytes, key: bytes) -> int:
    """A repeat count (the largest, if the attribute is given twice); 1 when absent or not a number."""
    counts = [int(v[:12]) for v in _values(raw, key) if v.strip().isdigit()]
    return max(1, *counts) if counts else 1


def check_loaded_sheet(name: str, height: int, width: int) -> None:
    """The limits again on a sheet as python-calamine loaded it (a .xls has no XML to look at first),
    before its cells are converted to Python values.

    Raises:
        DisclosureError: `file-too-large`.
    """
    if height > MAX_SHEET_ROWS:
        raise DisclosureError(too_large(_both("size.rows_loaded", sheet=name, rows=height), _sheet_limit()))
    if width > MAX_SHEET_COLUMNS:
        raise DisclosureError(too_large(_both("size.columns_loaded", sheet=name, columns=width), _sheet_limit()))
