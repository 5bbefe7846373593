"""How the tool knows its own outputs again, so that they are never taken for an office's submission.

Two marks: a marker file in each output folder the tool writes (`validate --out`, its `feedback/` tree,
`convert --out`), and a document property on each workbook it writes (`_xlsx.OUTPUT_PROPERTY`: what it
is and when it was written). A folder search (`pipeline.discover`) leaves out, and counts:

- everything inside a marked folder *below* the folder searched (a folder the user names is read as
  asked, so `aggregate 清洗结果/` adds the cleaned workbooks and a city adds the totals in its folder);
- annotated copies and overviews found anywhere, unless the annotated copy was saved again after the
  tool wrote it (an office that corrected its marked copy and sent it back has made a submission).

A file named on the command line is always read. Totals also carry their roll-up counts
(`ROLLUP_PROPERTY`), so a roll-up of totals can say what was left out one level down.
"""

from __future__ import annotations

import html
import json
import os
import re
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._xlsx import OUTPUT_PROPERTY, atomic_output
from .catalog import text

__all__ = ["MARKER", "OUTPUT_PROPERTY", "ROLLUP_PROPERTY", "OwnOutputs", "custom_properties", "rollup_counts",
           "workbook_mark", "write_marker"]

MARKER = ".disclosure-xlsx-output.json"  # the same name in every language
ROLLUP_PROPERTY = "disclosure_xlsx.rollup"  # JSON {"added", "left_out", "missing", …} on a total workbook
SKIPPED_KINDS = ("annotated", "overview")  # never a submission when found by searching a folder
RESAVED_AFTER = timedelta(minutes=1)  # an annotated copy modified this long after it was written was saved again
_CUSTOM_LIMIT = 256 * 1024  # docProps/custom.xml of a workbook is well under 1 KB
_PROPERTY = re.compile(r'<property\b[^>]*\bname="([^"]*)"[^>]*>\s*<vt:\w+\b[^>]*>([^<]*)</vt:\w+>', re.DOTALL)
_MODIFIED = re.compile(r"<dcterms:modified\b[^>]*>([^<]+)</dcterms:modified>")


def write_marker(folder: str | os.PathLike[str], kind: str) -> Path:
    """Mark `folder` as an output of the tool (`kind`: validate | feedback | convert)."""
    path = Path(folder) / MARKER
    body = {"tool": "disclosure-xlsx", "kind": kind, "note": text("marks.marker_note"),
            "note_en": text("marks.marker_note", "en")}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1), "utf-8")
    return path


def custom_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """The custom document properties of an .xlsx/.xlsm (name → text); {} when it has none or is no zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("docProps/custom.xml")
            if info.file_size > _CUSTOM_LIMIT:
                return {}
            xml = archive.read(info).decode("utf-8", "replace")
    except (KeyError, OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError):
        return {}
    return {html.unescape(name): html.unescape(value) for name, value in _PROPERTY.findall(xml)}


def _modified(path: Path) -> datetime | None:
    """When the workbook was last saved (docProps/core.xml), in UTC."""
    try:
        with zipfile.ZipFile(path) as archive:
            xml = archive.read("docProps/core.xml")[:_CUSTOM_LIMIT].decode("utf-8", "replace")
    except (KeyError, OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError):
        return None
    found = _MODIFIED.search(xml)
    return _utc(found.group(1).strip()) if found else None


def _utc(stamp: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def workbook_mark(path: str | os.PathLike[str]) -> tuple[str | None, bool]:
    """(kind, saved again) of a workbook the tool wrote; (None, False) for any other file.

    "Saved again": the file was last saved well after the tool wrote it, by someone else's program.
    """
    value = custom_properties(path).get(OUTPUT_PROPERTY)
    if not value:
        return None, False
    try:
        mark = json.loads(value)
        kind = str(mark["kind"])
        written = _utc(str(mark["written"]))
    except (ValueError, KeyError, TypeError):
        return None, False
    modified = _modified(Path(path))
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


class OwnOutputs:
    """The filter `pipeline.discover` applies to the files a search of `root` finds: true for a file the
    tool wrote that is no submission (see the module docstring). Marked folders are looked up once."""

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
        if path.suffix.lower() not in (".xlsx", ".xlsm"):  # the tool writes only these
            return False
        kind, resaved = workbook_mark(path)
        return kind in SKIPPED_KINDS and not (kind == "annotated" and resaved)
