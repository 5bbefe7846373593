"""Small helpers every workbook writer shares: safe xlsxwriter options, checked writes, atomic files, and the
document property by which the tool knows a workbook it wrote."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import xlsxwriter
from xlsxwriter.format import Format as CellFormat
from xlsxwriter.worksheet import Worksheet

from ._sheetml import TextTooLong

__all__ = ["OUTPUT_PROPERTY", "atomic_output", "new_workbook", "output_property", "put"]

# Text that came from a workbook must never become a formula or a link in our outputs.
SAFE_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "nan_inf_to_errors": True}
# Every workbook the tool writes says so in this custom document property (see marks.py): what it is
# (template | cleaned | total | annotated | overview | workbook) and when it was written.
OUTPUT_PROPERTY = "disclosure_xlsx.output"


def output_property(kind: str, written: datetime) -> str:
    """The value of OUTPUT_PROPERTY: JSON {"kind", "written"} (seconds, as written in the file)."""
    return json.dumps({"kind": kind, "written": written.isoformat(timespec="seconds")})


def new_workbook(path: str | os.PathLike[str] | IO[bytes], *, created: datetime | None = None,
                 title: str | None = None, kind: str = "workbook", in_memory: bool = True) -> xlsxwriter.Workbook:
    """An xlsxwriter workbook that writes text as text and records that the tool wrote it (`kind`);
    `created` fixes the timestamp for stable bytes. `in_memory` assembles the parts in memory instead of
    one temporary file each (a template-sized workbook needs well under 1 MB; on a busy disk it halves
    the time). `path` may be a binary buffer (then in memory whatever `in_memory` says)."""
    buffer = not isinstance(path, str | os.PathLike)
    workbook = xlsxwriter.Workbook(path if buffer else str(path), {**SAFE_OPTIONS, "in_memory": in_memory or buffer})
    when = created or datetime.now()
    properties: dict[str, Any] = {"created": when}
    if title:
        properties["title"] = title
    workbook.set_properties(properties)
    workbook.set_custom_property(OUTPUT_PROPERTY, output_property(kind, when))
    return workbook


def put(sheet: Worksheet, row: int, col: int, value: object, cell_format: CellFormat | None = None) -> None:
    """Write one value by its Python type (text always as text) and fail loudly if xlsxwriter refuses."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        code = sheet.write_blank(row, col, None, cell_format)
    elif isinstance(value, bool):
        code = sheet.write_boolean(row, col, value, cell_format)
    elif isinstance(value, int | float):
        code = sheet.write_number(row, col, value, cell_format)
    else:
        code = sheet.write_string(row, col, str(value), cell_format)
    if code == -2:
        raise TextTooLong(f"xlsxwriter refused to write a text of {len(str(value)):,} characters at row {row}, "
                          f"col {col} (code -2)")
    if code not in (0, None):
        raise ValueError(f"xlsxwriter refused to write {value!r} at row {row}, col {col} (code {code})")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    An interrupted run therefore never leaves a half-written file under the final name.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem[:40]}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once, and read once per process
    os.umask(mask)
    return mask
