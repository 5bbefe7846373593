"""Problems of this machine, not of the office: a file that cannot be opened here (no permission, locked by
another program, gone during the run) is told to the county, never answered with "save it again and resend";
and no message that an office reads carries a path of the county's machine.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from .catalog import Finding, phrase

__all__ = ["access_problem", "scrub_paths"]

# errno values (POSIX) and Windows error codes of each kind of problem this machine has with a file.
_KINDS = {
    "permission": ({errno.EACCES, errno.EPERM}, {5}),  # ERROR_ACCESS_DENIED
    "locked": ({errno.EBUSY, errno.ETXTBSY}, {32, 33}),  # ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION
    "vanished": ({errno.ENOENT, errno.ENOTDIR}, {2, 3}),  # ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND
}
_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how python-calamine (Rust) reports an I/O error


def access_problem(exc: BaseException) -> Finding | None:
    """A `file-inaccessible` finding when `exc` means this machine cannot reach the file, else None."""
    winerror = getattr(exc, "winerror", None)
    number = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if number is None:
        found = _OS_ERROR.search(str(exc))
        if found and os.name == "nt":  # a raw Windows error code
            winerror = int(found.group(1))
        elif found:
            number = int(found.group(1))
    for kind, (_, windows) in _KINDS.items():  # a sharing violation is also EACCES: Windows codes first
        if winerror in windows:
            return _finding(kind)
    for kind, (numbers, _) in _KINDS.items():
        if number in numbers:
            return _finding(kind)
    return None


def _finding(kind: str) -> Finding:
    return Finding("file-inaccessible", params={"reason": phrase(f"access.{kind}.reason"),
                                                "advice": phrase(f"access.{kind}.advice")})


def scrub_paths(message: str, path: str | os.PathLike[str], limit: int = 160) -> str:
    """`message` without the folders of `path` on this machine (the file is named by its name only), then
    cut to `limit` characters (cut first, the head of a long folder would be left to show)."""
    file = Path(path)
    out = message
    for form in sorted({str(file.absolute()), str(file.resolve()), str(file)}, key=len, reverse=True):
        if len(form) > len(file.name):
            out = out.replace(form, file.name)
    for folder in sorted({str(file.absolute().parent), str(file.resolve().parent)}, key=len, reverse=True):
        if folder not in (os.sep, "."):
            out = out.replace(folder + os.sep, "").replace(folder, "")
    return out[:limit]
