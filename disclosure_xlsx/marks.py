"""How the tool knows its own outputs again, so that they are never taken for an office's submission.

Two marks: a marker file in each output folder the tool writes (`validate --out`, its `feedback/` tree,
`convert --out`), and a document property on each workbook it writes (`_xlsx.OUTPUT_PROPERTY`: what it
is and when it was written). A folder search leaves out, and counts (`pipeline.find` the first kind,
`MarkedFolders`; `pipeline.discover` and, in `validate`, the worker that reads each file the second,
`own_output`):

- everything inside a marked folder *below* the folder searched (a folder the user names is read as
  asked, so `aggregate 清洗结果/` adds the cleaned workbooks and a city adds the totals in its folder);
- annotated copies and overviews found anywhere, unless the annotated copy was saved again after the
  tool wrote it (an office that corrected its marked copy and sent it back has made a submission).

A file named on the command line is always read. Totals also carry their roll-up counts
(`ROLLUP_PROPERTY`), so a roll-up of totals can say what was left out one level down.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._xlsx import OUTPUT_PROPERTY, atomic_output
from .catalog import text

__all__ = ["MARKER", "MarkedFolders", "OUTPUT_PROPERTY", "OWN_SUFFIXES", "ROLLUP_PROPERTY", "custom_properties",
           "own_output", "rollup_counts", "workbook_mark", "write_marker"]

MARKER = ".disclosure-xlsx-output.json"  # the same name in every language
ROLLUP_PROPERTY = "disclosure_xlsx.rollup"  # JSON {"added", "left_out", "missing", …} on a total workbook
SKIPPED_KINDS = ("annotated", "overview")  # never a submission when found by searching a folder
OWN_SUFFIXES = (".xlsx", ".xlsm")  # the tool writes only these
RESAVED_AFTER = timedelta(minutes=1)  # an annotated copy modified this long after it was written was saved again
_LIMIT = 256 * 1024  # docProps/custom.xml and core.xml of a workbook are well under 1 KB each
_CUSTOM, _CORE = "docProps/custom.xml", "docProps/core.xml"
_TAIL = 4096  # read first from the end of a zip: its central directory (a workbook's is ~2 KB)
_PROPERTY = re.compile(r'<property\b[^>]*\bname="([^"]*)"[^>]*>\s*<vt:\w+\b[^>]*>([^<]*)</vt:\w+>', re.DOTALL)
_MODIFIED = re.compile(r"<dcterms:modified\b[^>]*>([^<]+)</dcterms:modified>")


def write_marker(folder: str | os.PathLike[str], kind: str) -> Path:
    """Mark `folder` as an output of the tool (`kind`: validate | feedback | convert | publish)."""
    path = Path(folder) / MARKER
    body = {"tool": "disclosure-xlsx", "kind": kind, "note": text("marks.marker_note"),
            "note_en": text("marks.marker_note", "en")}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1), "utf-8")
    return path


def custom_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """The custom document properties of an .xlsx/.xlsm (name → text); {} when it has none or is no zip."""
    xml = _members(Path(path), (_CUSTOM,)).get(_CUSTOM)
    return _properties(xml) if xml is not None else {}


def _properties(xml: bytes) -> dict[str, str]:
    found = _PROPERTY.findall(xml.decode("utf-8", "replace"))
    return {html.unescape(name): html.unescape(value) for name, value in found}


def _members(source: str | os.PathLike[str] | bytes, names: tuple[str, ...]) -> dict[str, bytes]:
    """Small members of a zip (a file, or its bytes as a reader already holds them), read straight from
    its central directory: every workbook a search finds is looked at, and zipfile.ZipFile, which builds
    the whole directory first, costs several times more. Anything unusual (not a zip, ZIP64, a large or
    damaged member) gives {}: the file is then simply not recognised as the tool's own, and is read like
    any other."""
    wanted = {n.encode(): n for n in names}
    out: dict[str, bytes] = {}
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
            end = tail.rfind(b"PK\x05\x06")  # the end-of-central-directory record
            if end < 0 or len(tail) < end + 22:
                return {}
            cd_size, cd_offset = struct.unpack_from("<II", tail, end + 12)
            start = len(tail) - (size - cd_offset)
            if start >= 0:
                directory = tail[start:start + cd_size]
            elif cd_size <= _LIMIT:  # a directory larger than the tail read first
                f.seek(cd_offset)
                directory = f.read(cd_size)
            else:
                return {}
            at = 0
            while at + 46 <= len(directory) and directory[at:at + 4] == b"PK\x01\x02":
                method, _, _, _, packed, unpacked, name_len, extra_len, note_len = struct.unpack_from(
                    "<HHHIIIHHH", directory, at + 10)
                (offset,) = struct.unpack_from("<I", directory, at + 42)
                name = directory[at + 46:at + 46 + name_len]
                at += 46 + name_len + extra_len + note_len
                if name not in wanted or unpacked > _LIMIT or packed > _LIMIT or method not in (0, 8):
                    continue
                f.seek(offset)
                local = f.read(30)
                if local[:4] != b"PK\x03\x04":
                    return {}
                f.seek(offset + 30 + sum(struct.unpack_from("<HH", local, 26)))
                data = f.read(packed)
                # inflated no further than the directory says: a member that would inflate to more (a bomb
                # behind a small declared size) is damage, and is never inflated whole in this process
                inflate = zlib.decompressobj(-15)
                member = inflate.decompress(data, unpacked + 1) if method == 8 else data
                if len(member) > unpacked or method == 8 and not inflate.eof:  # a bomb, or cut short
                    return {}
                out[wanted[name]] = member
    except (OSError, struct.error, zlib.error, ValueError):
        return {}
    return out


def _utc(stamp: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def workbook_mark(source: str | os.PathLike[str] | bytes) -> tuple[str | None, bool]:
    """(kind, saved again) of a workbook the tool wrote (its path or its bytes); (None, False) for any
    other file.

    "Saved again": the file was last saved (docProps/core.xml) well after the tool wrote it, by an office
    suite: Excel, WPS and LibreOffice set that time when they save.
    """
    members = _members(source, (_CUSTOM, _CORE))
    value = _properties(members[_CUSTOM]).get(OUTPUT_PROPERTY) if _CUSTOM in members else None
    if not value:
        return None, False
    try:
        mark = json.loads(value)
        kind = str(mark["kind"])
        written = _utc(str(mark["written"]))
    except (ValueError, KeyError, TypeError):
        return None, False
    found = _MODIFIED.search(members.get(_CORE, b"").decode("utf-8", "replace"))
    modified = _utc(found.group(1).strip()) if found else None
    return kind, bool(written and modified and modified - written > RESAVED_AFTER)


def rollup_counts(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The roll-up counts a total workbook carries (ROLLUP_PROPERTY), or None if it carries none."""
    value = custom_properties(path).get(ROLLUP_PROPERTY)
    if not value:
        return None
    try:
        counts = json.loads(value)
    except ValueError:
        return None
    if not isinstance(counts, Mapping) or not all(isinstance(counts.get(k), int) for k in ("added", "left_out")):
        return None
    return dict(counts)


def own_output(source: str | os.PathLike[str] | bytes) -> bool:
    """Whether a workbook (its path or its bytes) found by searching a folder is an output of the tool that
    is no submission: an annotated copy not saved again since, or an overview."""
    kind, resaved = workbook_mark(source)
    return kind in SKIPPED_KINDS and not (kind == "annotated" and resaved)


class MarkedFolders:
    """The filter `pipeline.find` applies to the files a search of `root` finds: true for a file inside a
    marked output folder below `root` (see the module docstring). Each folder is looked up once."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._marked: dict[Path, bool] = {}

    def __call__(self, path: Path) -> bool:
        for parent in path.parents:
            if parent == self.root or len(parent.parts) < len(self.root.parts):
                break
            if parent not in self._marked:
                self._marked[parent] = (parent / MARKER).is_file()
            if self._marked[parent]:
                return True
        return False
