"""What an upload holds, taken apart before anything is kept: the files a browser or a tool sent, the
workbooks of a .zip among them, or those of a folder on this machine (web.py, workspace.py).

An upload stays within what one workbook may unpack to, in as many files as one workbook may have parts
(limits.py): a county sends ~50 files of ~20 KB. A .zip is refused from its directory, before anything is
inflated, when it goes beyond that (a zip bomb); a member is read no further than the size its directory
declares. Names keep only their last part and are made safe (`feedback.safe_name`), so nothing sent can
name a place outside the batch's folder. Hidden and lock files are skipped as a folder search skips them;
anything else left out is listed with why.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .catalog import LANGS, DisclosureError, Finding, bilingual, text
from .limits import MAX_FILE_BYTES, MAX_UNZIPPED_BYTES, MAX_ZIP_MEMBERS, ZIP_ERRORS, mib

__all__ = ["MAX_UPLOAD_BYTES", "MAX_UPLOAD_FILES", "Intake", "Received", "base_name", "take_folder", "take_uploads",
           "unique_name"]

MAX_UPLOAD_BYTES = MAX_UNZIPPED_BYTES  # one upload, unpacked: as much as one workbook may unpack to
MAX_UPLOAD_FILES = MAX_ZIP_MEMBERS  # files in one upload: as many as one workbook may have parts
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Received:
    """One file to keep: its name (the last part, not yet made safe), what it was called as sent, its bytes."""

    name: str
    origin: str
    data: bytes


@dataclass
class Intake:
    """What an upload holds: the files to keep, and the ones left out, each with why (in both languages)."""

    files: list[Received] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    budget: int = MAX_UPLOAD_BYTES  # bytes still allowed

    def skip(self, name: str, reason: str, **params: Any) -> None:
        self.skipped.append({"name": name, "reason": {lang: text(f"web.skipped.{reason}", lang, **params)
                                                      for lang in LANGS}})

    def spend(self, size: int, name: str) -> None:
        self.budget -= size
        if self.budget < 0:
            raise refused("too_large", name, limit=mib(MAX_UPLOAD_BYTES))

    def add(self, item: Received) -> None:
        self.files.append(item)
        if len(self.files) > MAX_UPLOAD_FILES:
            raise refused("too_many", count=len(self.files), limit=MAX_UPLOAD_FILES)


def refused(reason: str, name: str = "", **params: Any) -> DisclosureError:
    """`upload-refused`: nothing of the upload is kept."""
    return DisclosureError(Finding("upload-refused", params={
        "reason": bilingual(text(f"web.refused.{reason}", "zh", name=name, **params),
                            text(f"web.refused.{reason}", "en", name=name, **params))}))


def base_name(name: str) -> str:
    """The last part of a path as a browser, a tool or a zip gives it (either separator)."""
    return re.split(r"[\\/]", name)[-1]


def unique_name(name: str, used: set[str]) -> str:
    """A safe file name, unique among `used` (compared without case): `_2`, `_3` … before the suffix."""
    from .feedback import safe_name

    path = PurePosixPath(base_name(name))
    suffix = path.suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", path.suffix) else ""
    stem = safe_name(path.stem if suffix else path.name)
    candidate, n = f"{stem}{suffix}", 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{stem}_{n}{suffix}"
    used.add(candidate.lower())
    return candidate


def _hidden(name: str) -> bool:
    """Hidden files, Office lock files and macOS resource forks, skipped as a folder search skips them."""
    parts = [p for p in re.split(r"[\\/]", name) if p not in ("", ".", "..")]
    return any(p.startswith((".", "~$")) or p == "__MACOSX" for p in parts)


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A member's name; one a Windows zip wrote in GBK (no UTF-8 flag) decoded as GB18030."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def take_uploads(uploads: Sequence[tuple[str, IO[bytes]]]) -> Intake:
    """The files to keep of an upload: workbooks and published reports as sent, and those inside .zip files.

    Raises:
        DisclosureError: `upload-refused`: too large, too many files, a .zip beyond the limits or damaged,
            or no workbook at all.
    """
    from .pipeline import EXTENSIONS

    intake = Intake()
    for name, stream in uploads:
        base = base_name(name)
        suffix = PurePosixPath(base).suffix.lower()
        if suffix == ".zip":
            _unzip(base, stream, intake)
        elif _hidden(base):
            continue
        elif suffix in EXTENSIONS:
            intake.add(Received(base, name, _read(stream, intake, base)))
        else:
            intake.skip(base or name, "kind")
    if not intake.files:
        raise refused("no_workbook")
    return intake


def take_folder(folder: str, *, exclude: Sequence[Path] = ()) -> Intake:
    """The workbooks of a folder on this machine, searched as `validate` searches one (it is only read).
    A file over the size limit, a pipe or a device is listed, not read.

    Raises:
        DisclosureError: `upload-refused`: no such folder, no workbook in it, too large or too many.
    """
    from .limits import read_regular
    from .pipeline import discover

    path = Path(folder.strip().strip('"')).expanduser()
    if not folder.strip() or not path.is_dir():
        raise refused("not_folder", folder)
    intake = Intake()
    for file in discover([path], exclude=exclude):
        shown = str(file.relative_to(path)) if file.is_relative_to(path) else str(file)
        try:
            data = read_regular(file)
        except DisclosureError as exc:
            intake.skipped.append({"name": shown, "reason": {lang: exc.finding.message(lang) for lang in LANGS}})
            continue
        intake.spend(len(data), folder)
        intake.add(Received(file.name, shown, data))
    if not intake.files:
        raise refused("no_workbook")
    return intake


def _unzip(name: str, stream: IO[bytes], intake: Intake) -> None:
    from .pipeline import FOLDER_EXTENSIONS

    try:
        archive = zipfile.ZipFile(stream)
        infos = archive.infolist()
    except ZIP_ERRORS:
        raise refused("zip_damaged", name) from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise refused("zip_members", name, count=len(infos), limit=MAX_ZIP_MEMBERS)
    unpacked = sum(i.file_size for i in infos)
    if unpacked > intake.budget:  # from the directory: nothing has been inflated
        raise refused("zip_unpacked", name, size=mib(unpacked), limit=mib(MAX_UPLOAD_BYTES))
    intake.spend(unpacked, name)
    for info in infos:
        member = _zip_name(info)
        shown = f"{name}/{member}"
        if info.is_dir() or _hidden(member):
            continue
        if PurePosixPath(member.replace("\\", "/")).suffix.lower() not in FOLDER_EXTENSIONS:
            intake.skip(shown, "kind")
        elif info.flag_bits & 0x1:
            intake.skip(shown, "encrypted")
        elif info.file_size > MAX_FILE_BYTES:
            intake.skip(shown, "large", size=mib(info.file_size), limit=mib(MAX_FILE_BYTES))
        else:
            try:
                with archive.open(info) as source:
                    data = source.read(info.file_size + 1)  # never more than the directory declared
            except ZIP_ERRORS:
                data = b""
            if len(data) != info.file_size or (info.file_size and not data):
                intake.skip(shown, "damaged")
                continue
            intake.add(Received(base_name(member), shown, data))


def _read(stream: IO[bytes], intake: Intake, name: str) -> bytes:
    chunks = []
    while chunk := stream.read(_CHUNK):
        intake.spend(len(chunk), name)
        chunks.append(chunk)
    return b"".join(chunks)
