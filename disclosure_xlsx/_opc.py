"""An OOXML package (Open Packaging Conventions) read and written part by part.

The zip's members are kept as they are; a part is parsed when it is looked at, serialised again only
if it was changed, and every member not changed is copied into the new zip exactly as stored (its
compressed bytes, not even inflated), so pictures, macros and anything else come out byte-identical.
XML is parsed with no DTD, no entity expansion and no network access.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lxml import etree

__all__ = ["CT", "PKG_REL", "Package", "PatchError", "Rels", "resolve", "serialise", "xstring"]

PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_DATE = (1980, 1, 1, 0, 0, 0)  # new zip members get a fixed time, so the same input gives the same bytes
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          remove_blank_text=False)
_ESCAPED = re.compile(r"_(x[0-9A-Fa-f]{4}_)")
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class PatchError(ValueError):
    """The package cannot be patched safely (damaged, encrypted, strict OOXML, ambiguous members)."""


class Package:
    """The zip's members, the parts changed so far, and what is new."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.infos = archive.infolist()
        names = [i.filename for i in self.infos]
        self.lower = {n.lower(): n for n in names}
        if len(self.lower) != len(names):
            raise PatchError("the zip holds two members with the same name")
        if any(i.flag_bits & 0x1 for i in self.infos):
            raise PatchError("the zip is encrypted")
        self.changed: dict[str, bytes] = {}
        self.trees: dict[str, etree._Element] = {}  # parts being changed, serialised at the end
        self.seen: dict[str, etree._Element] = {}  # parts parsed to be looked at
        self.added: list[str] = []  # names of new members, in order

    # members ------------------------------------------------------------------------------

    def name(self, part: str) -> str | None:
        return self.lower.get(part.lower())

    def read(self, part: str) -> bytes:
        if part in self.changed:
            return self.changed[part]
        name = self.name(part)
        if name is None:
            raise PatchError(f"missing part {part}")
        return self.archive.read(name)

    def parse(self, part: str) -> etree._Element:
        """A part parsed to be looked at (parsed once)."""
        if part in self.trees:
            return self.trees[part]
        if part not in self.seen:
            root = etree.fromstring(self.read(part), _PARSER)
            if root.getroottree().docinfo.doctype:
                raise PatchError(f"{part} declares a DTD")
            self.seen[part] = root
        return self.seen[part]

    def xml(self, part: str) -> etree._Element:
        """A part parsed to be changed: it is serialised again at the end (unchanged parts never are)."""
        if part not in self.trees:
            self.trees[part] = self.parse(part)
        return self.trees[part]

    @property
    def types(self) -> etree._Element:
        return self.xml(self.name("[Content_Types].xml") or "[Content_Types].xml")

    def new_part(self, pattern: str, data: bytes | etree._Element, content_type: str | None) -> str:
        """Add a part named by `pattern` ("xl/comments{}.xml") with the first free number."""
        n = 1
        while self.name(pattern.format(n)) is not None:
            n += 1
        part = pattern.format(n)
        self.lower[part.lower()] = part
        self.added.append(part)
        if isinstance(data, bytes):
            self.changed[part] = data
        else:
            self.trees[part] = data
        if content_type:
            override = etree.SubElement(self.types, f"{{{CT}}}Override")
            override.set("PartName", "/" + part)
            override.set("ContentType", content_type)
        return part

    def rels(self, part: str) -> Rels:
        folder, base = posixpath.split(part)
        return Rels(self, posixpath.join(folder, "_rels", base + ".rels"), folder)

    def ensure_default(self, extension: str, content_type: str) -> None:
        for el in self.types.iterfind(f"{{{CT}}}Default"):
            if el.get("Extension", "").lower() == extension:
                return
        default = etree.Element(f"{{{CT}}}Default")
        default.set("Extension", extension)
        default.set("ContentType", content_type)
        self.types.insert(0, default)

    def write(self, source: IO[bytes], target: str | Path | IO[bytes]) -> None:
        """Write the package: unchanged members copied as stored (not even inflated), the rest deflated."""
        for part, root in self.trees.items():
            self.changed[self.name(part) or part] = serialise(root)
        if len(self.infos) + len(self.added) >= 0xFFFF:
            raise PatchError("too many members to patch")
        entries: list[_Entry] = []
        out = open(target, "wb") if isinstance(target, str | Path) else target  # noqa: SIM115
        try:
            offset = 0
            for info in self.infos:
                data = self.changed.get(info.filename)
                if data is None:
                    raw, method = _stored(source, info), info.compress_type
                    entry = _Entry(info.filename, info.date_time, method, info.flag_bits & 0x806, info.CRC, raw,
                                   info.file_size, info.external_attr)
                else:
                    entry = _Entry.deflated(info.filename, info.date_time, data, info.external_attr)
                offset += entry.write_local(out, offset)
                entries.append(entry)
            for part in self.added:
                entry = _Entry.deflated(part, _DATE, self.changed[part], 0o644 << 16)
                offset += entry.write_local(out, offset)
                entries.append(entry)
            start = offset
            for entry in entries:
                offset += entry.write_central(out)
            out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), offset - start,
                                  start, 0))
        finally:
            if out is not target:
                out.close()


@dataclass
class _Entry:
    """One member as written: name, DOS time, method, flags, CRC, the stored bytes and the sizes."""

    name: str
    date_time: tuple[int, int, int, int, int, int]
    method: int
    flags: int
    crc: int
    raw: bytes
    size: int
    external: int
    offset: int = 0

    @classmethod
    def deflated(cls, name: str, date_time: tuple[int, int, int, int, int, int], data: bytes,
                 external: int) -> _Entry:
        packer = zlib.compressobj(1, zlib.DEFLATED, -15)  # level 1: twice as fast, parts ~15 % larger
        raw = packer.compress(data) + packer.flush()
        return cls(name, date_time, zipfile.ZIP_DEFLATED, 0, zlib.crc32(data), raw, len(data), external)

    def _common(self) -> bytes:
        name = self.name.encode("utf-8")
        flags = (self.flags & ~0x8) | (0x800 if not name.isascii() else 0)
        y, mo, d, h, mi, sec = self.date_time
        dos_time, dos_date = h << 11 | mi << 5 | sec // 2, max(y - 1980, 0) << 9 | mo << 5 | d
        if max(len(self.raw), self.size) >= 0xFFFFFFFF:
            raise PatchError("a member too large to patch")
        return struct.pack("<HHHHHIII", 20, flags, self.method, dos_time, dos_date, self.crc, len(self.raw),
                           self.size)

    def write_local(self, out: IO[bytes], offset: int) -> int:
        self.offset = offset
        name = self.name.encode("utf-8")
        head = struct.pack("<I", 0x04034B50) + self._common() + struct.pack("<HH", len(name), 0) + name
        out.write(head)
        out.write(self.raw)
        return len(head) + len(self.raw)

    def write_central(self, out: IO[bytes]) -> int:
        name = self.name.encode("utf-8")
        if self.offset >= 0xFFFFFFFF:
            raise PatchError("the package is too large to patch")
        record = (struct.pack("<IH", 0x02014B50, 20) + self._common()
                  + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, self.external & 0xFFFFFFFF, self.offset) + name)
        out.write(record)
        return len(record)


def _stored(source: IO[bytes], info: zipfile.ZipInfo) -> bytes:
    """A member's bytes exactly as stored in the zip (compressed), read through its local header."""
    source.seek(info.header_offset)
    head = source.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise PatchError(f"damaged zip member {info.filename}")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    source.seek(info.header_offset + 30 + name_len + extra_len)
    raw = source.read(info.compress_size)
    if len(raw) != info.compress_size:
        raise PatchError(f"truncated zip member {info.filename}")
    return raw


class Rels:
    """A part's relationships: look up targets, add new ones with free ids (the part is created if need be)."""

    def __init__(self, package: Package, part: str, folder: str) -> None:
        self.package, self.part, self.folder = package, package.name(part) or part, folder
        exists = package.name(part) is not None or part in package.trees
        self.root = package.parse(self.part) if exists else None

    def _all(self) -> list[etree._Element]:
        return [] if self.root is None else [r for r in self.root if isinstance(r.tag, str)]

    def target(self, rid: str, rel_type: str | None = None) -> str | None:
        """The part relationship `rid` points at (None for an external target, or one of another type)."""
        for rel in self._all():
            if rel.get("Id") == rid and rel.get("TargetMode") != "External" and rel_type in (None, rel.get("Type")):
                return resolve(self.folder, rel.get("Target", ""))
        return None

    def of_type(self, rel_type: str) -> list[tuple[str, str]]:
        return [(rel.get("Id", ""), resolve(self.folder, rel.get("Target", ""))) for rel in self._all()
                if rel.get("Type") == rel_type and rel.get("TargetMode") != "External"]

    def add(self, rel_type: str, part: str) -> str:
        package = self.package
        if self.root is None:
            self.root = etree.Element(f"{{{PKG_REL}}}Relationships", nsmap={None: PKG_REL})
            package.lower[self.part.lower()] = self.part
            package.added.append(self.part)
            package.trees[self.part] = self.root
        else:
            self.root = package.xml(self.part)
        ids = {rel.get("Id") for rel in self.root}
        n = len(ids) + 1
        while f"rId{n}" in ids:
            n += 1
        rel = etree.SubElement(self.root, f"{{{PKG_REL}}}Relationship")
        rel.set("Id", f"rId{n}")
        rel.set("Type", rel_type)
        rel.set("Target", posixpath.relpath(part, self.folder or "."))
        return f"rId{n}"


def resolve(folder: str, target: str) -> str:
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(folder, target))


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def xstring(text: str) -> str:
    """Text as SpreadsheetML stores it: characters XML cannot hold as _xHHHH_, a literal "_x0041_" kept."""
    text = _ESCAPED.sub(r"_x005F_\1", text)
    return _ILLEGAL.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
