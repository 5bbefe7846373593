"""What the commands promise about their outputs: inputs are never touched, one run at a time writes into
an output, a full disk or a folder that cannot be written is one clear message, a run stopped midway
leaves the previous output as it was, and no text from a workbook becomes live in a file people open.

- `input_problem`: an input of the run inside (or equal to) the output it would write is refused.
- `folder_problem`, `writable_problem`: an output folder is empty, the tool's own (its marker file), or
  refused; a folder the tool did not write is never written into, and nothing it did not write is ever
  deleted (`remove_own`).
- `OutputLock`: a lock file made with O_CREAT|O_EXCL holding the pid; a lock whose process is gone (killed
  outright) is taken over, a live one refuses the second run.
- `disk_full_as_finding`, `clean_stale`, `commit`: staged outputs moved in with renames; leftovers of a
  killed run removed (under the lock) by the next.
- `Written`: what became of one output file of one workbook (a note, never an exception).
- `csv_text`, `name_text`: text that a spreadsheet would run as a formula is written as text.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ._sheetml import TextTooLong
from .catalog import DisclosureError, Finding, phrase, text
from .limits import CELL_TEXT_MAX, WORKER_MEMORY_BYTES, WRITE_TIMEOUT_SECONDS
from .marks import MARKER
from .pipeline import Stage, shown_name
from .workers import Outcome, run_isolated

__all__ = ["FORMULA_START", "LOCK", "OLD", "PREFIX", "STAGING", "OutputLock", "Written", "clean_stale", "clean_temporaries", "commit",
           "csv_text", "disk_full", "disk_full_as_finding", "disk_full_finding", "folder_problem",
           "input_problem", "is_own", "marker_kind", "name_text", "remove_own", "writable_problem",
           "written_in_workers"]

LOCK = ".disclosure-xlsx.lock"  # in the output folder (beside it for convert, whose folder is swapped whole)
PREFIX = ".disclosure-xlsx."  # of every hidden entry a run makes in an output folder
STAGING = f"{PREFIX}new-"  # + pid: where a run builds what it will move in
OLD = f"{PREFIX}old-"  # + pid: what it moved aside, removed once the new outputs are in place
_PROBE = f"{PREFIX}probe-"
# OWASP's CSV-injection advice: a field starting with one of these is a formula to Excel, LibreOffice, WPS.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# A temporary file of _xlsx.atomic_output: ".<stem>.<8 characters of mkstemp>.tmp<suffix>".
_TEMPORARY = re.compile(r"\..*\.[a-z0-9_]{8}\.tmp(\.[^.]+)?\Z")
_FRESH_SECONDS = 10.0  # a lock file without readable contents this young is being written, not stale


# ------------------------------------------------------------------------------------------------
# Text that must stay text


def csv_text(value: Any) -> Any:
    """A CSV field as spreadsheet programs must show it: text that would start a formula gets a leading
    single quote (OWASP); numbers (a negative one too) and blanks are left as they are."""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_START):
        return f"'{value}"
    return value


def name_text(name: str) -> str:
    """A file or folder name made from an office name, without the characters that start a formula."""
    return name.lstrip("".join(FORMULA_START) + " ")


# ------------------------------------------------------------------------------------------------
# What may be written where


def input_problem(out: str | Path, inputs: Iterable[str | Path]) -> Finding | None:
    """`output-is-input` when an input of the run (a file or folder named, or a file found) is the output
    `out` itself or lies inside it: writing the output would overwrite or delete it."""
    target = _real(out)
    inside = target.rstrip(os.sep) + os.sep
    for item in inputs:
        path = _real(item)  # a county's batch has thousands of inputs: strings, not Path objects
        if path == target or path.startswith(inside):
            return Finding("output-is-input", params={"input": shown_name(item), "folder": shown_name(out)})
    return None


def _real(path: str | Path) -> str:
    """`path` made absolute with every link resolved (as `Path.resolve` does it), as a string."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.abspath(path)


def marker_kind(folder: str | Path) -> str | None:
    """What the tool wrote `folder` as (its marker file's `kind`: validate, feedback, convert, publish);
    "" for a marker it cannot read, None for a folder without one."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        kind = json.loads(path.read_text("utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return ""
    return kind if isinstance(kind, str) else ""


def is_own(folder: str | Path, kind: str | None = None) -> bool:
    """Whether `folder` carries the tool's marker file (marks.py), of `kind` when one is given."""
    found = marker_kind(folder)
    return found is not None and (kind is None or found == kind)


def folder_problem(out: str | Path, *, own: Iterable[str] = (), suggestion: str | None = None,
                   kind: str | None = None) -> Finding | None:
    """Why `out` cannot be one of the tool's output folders (of `kind`), or None.

    It may be missing, empty (hidden entries aside), marked as the tool's own output of this kind, or
    hold nothing but names in `own` (an output folder of a version that wrote no marker). A file is
    `output-not-writable`; any other folder `output-not-empty` — a folder another command of the tool
    wrote too (`convert --force` into a `validate --out` folder would delete its rounds): the tool
    neither writes into it nor deletes anything in it.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        return _not_writable(out, "file")
    if not out.is_dir() or is_own(out, kind):
        return None
    names = set(own) if marker_kind(out) is None else set()
    try:
        foreign = [e for e in os.listdir(out) if not e.startswith(".") and e not in names]
    except OSError as exc:
        return _not_writable(out, _why(exc), exc)
    if not foreign:
        return None
    return Finding("output-not-empty", params={"folder": shown_name(out),
                                               "suggestion": shown_name(out / suggestion) if suggestion else
                                               shown_name(out.parent / f"{out.name}_2")})


def writable_problem(folder: str | Path) -> Finding | None:
    """Make `folder` (with its parents) and a probe file in it: why that fails (`output-not-writable`,
    `output-disk-full`), or None."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_PROBE, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if disk_full(exc):
            return disk_full_finding(folder)
        return _not_writable(folder, _why(exc), exc)
    return None


def _why(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read_only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "denied"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "file"
    return "other"


def _not_writable(folder: Path, why: str, exc: OSError | None = None) -> Finding:
    detail = (exc.strerror or type(exc).__name__) if exc is not None else ""
    return Finding("output-not-writable", params={"folder": shown_name(folder),
                                                  "reason": phrase(f"outputs.reason.{why}", detail=detail)})


def remove_own(path: str | Path) -> None:
    """Delete a folder only if it is the tool's own (marked) or empty; anything else is refused
    (`output-not-empty`) and left as it is."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir() and (is_own(path) or not any(path.iterdir())):
        shutil.rmtree(path, ignore_errors=True)
        return
    raise DisclosureError(Finding("output-not-empty", params={"folder": shown_name(path),
                                                              "suggestion": shown_name(path.parent)}))


# ------------------------------------------------------------------------------------------------
# A full disk


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` is the disk (or the user's quota, or the largest file allowed) being full."""
    return isinstance(exc, OSError) and exc.errno in _FULL


def disk_full_finding(folder: str | Path) -> Finding:
    return Finding("output-disk-full", params={"folder": shown_name(folder)})


@contextlib.contextmanager
def disk_full_as_finding(folder: str | Path) -> Iterator[None]:
    """A full disk anywhere in the block is `output-disk-full` (a DisclosureError), not a traceback."""
    try:
        yield
    except OSError as exc:
        if disk_full(exc):
            raise DisclosureError(disk_full_finding(folder)) from exc
        raise


# ------------------------------------------------------------------------------------------------
# One run at a time


_HELD: dict[Path, int] = {}  # locks this process holds, with how many times each was taken


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22); None where unknown.
    Tells a live holder from a new process that was given the dead holder's pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(holder: dict[str, Any]) -> bool:
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    started = holder.get("started")
    now = _start_ticks(pid)
    return not (isinstance(started, int) and now is not None and now != started)


class OutputLock:
    """A lock file for one output: taken with O_CREAT|O_EXCL and the pid (and start time) written into it.

    A second run finds it and is refused (`output-locked`) while the holder lives; a lock left by a run
    killed outright (its pid gone, or now another process's) is taken over. Taken again by the process
    that holds it (the command, then the library call) it is only counted; released when the count
    returns to zero. The lock file is removed on release.
    """

    def __init__(self, path: str | Path, folder: str | Path) -> None:
        self.path = Path(path)
        self.folder = Path(folder)
        self._key = Path(_real(self.path))

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        if _HELD.get(self._key):
            _HELD[self._key] += 1
            return
        body = json.dumps({"tool": "disclosure-xlsx", "pid": os.getpid(), "started": _start_ticks(os.getpid()),
                           "since": datetime.now().isoformat(timespec="seconds")}).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raw, holder = self._read()
                if holder is None and self._fresh():
                    raise DisclosureError(self._locked({})) from None
                if holder is not None and _alive(holder):
                    raise DisclosureError(self._locked(holder)) from None
                self._take_over(raw)
                continue
            except OSError as exc:
                problem = disk_full_finding(self.folder) if disk_full(exc) else _not_writable(self.folder, _why(exc), exc)
                raise DisclosureError(problem) from exc
            try:
                os.write(fd, body)
            except OSError as exc:
                os.close(fd)
                os.unlink(self.path)
                if disk_full(exc):
                    raise DisclosureError(disk_full_finding(self.folder)) from exc
                raise
            os.close(fd)
            _HELD[self._key] = 1
            return
        raise DisclosureError(self._locked({}))

    def release(self) -> None:
        count = _HELD.get(self._key, 0)
        if count > 1:
            _HELD[self._key] = count - 1
            return
        _HELD.pop(self._key, None)
        if count:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _read(self) -> tuple[bytes, dict[str, Any] | None]:
        try:
            raw = self.path.read_bytes()[:4096]
        except OSError:
            return b"", None
        try:
            holder = json.loads(raw)
        except ValueError:
            return raw, None
        return raw, holder if isinstance(holder, dict) else None

    def _fresh(self) -> bool:
        try:
            return time.time() - self.path.stat().st_mtime < _FRESH_SECONDS
        except OSError:
            return False

    def _take_over(self, seen: bytes) -> None:
        """Remove a stale lock: moved aside under a name of our own first, so that of two runs taking it
        over at once only one removes it; put back if it turns out not to be the one judged stale."""
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # the other run took it first: try again
        try:
            if aside.read_bytes()[:4096] != seen:
                with contextlib.suppress(OSError):
                    os.link(aside, self.path)  # a live lock: back, unless a new one exists already
        finally:
            with contextlib.suppress(OSError):
                aside.unlink()

    def _locked(self, holder: dict[str, Any]) -> Finding:
        return Finding("output-locked", params={"folder": shown_name(self.folder), "lock": shown_name(self.path),
                                                "pid": str(holder.get("pid") or "?"),
                                                "since": str(holder.get("since") or "?")})


# ------------------------------------------------------------------------------------------------
# Staging: build beside, move in, clean up after a run that was killed


def clean_stale(folder: str | Path, names: Sequence[str], *, prefixes: Sequence[str] = (PREFIX,),
                inside: bool = True) -> None:
    """Remove what runs killed midway left in `folder` (call it holding the lock).

    For each prefix, `<prefix>new-*` folders (staging) are removed and `<prefix>old-*` ones (what a run
    moved aside) put back when their place is empty — a run killed between its two renames — else
    removed. The tool's own prefix (`STAGING`, `OLD`) holds the moved entries `names`; any other prefix
    (`.feedback.`, `.清洗结果.` of a folder swapped whole) is itself `names[0]`. `inside`: `folder` is the
    tool's own output folder, so its probe and temporary files (`_xlsx.atomic_output`) go too; beside an
    output (in the user's folder) only entries of these exact prefixes are touched.
    """
    folder = Path(folder)
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return
    inside = inside and is_own(folder)  # temporaries only where the marker says the folder is the tool's own
    for entry in entries:
        path = folder / entry
        prefix = next((p for p in prefixes if entry.startswith(p)), None)
        if prefix is not None and entry.startswith(f"{prefix}new-"):
            _remove(path)
        elif prefix is not None and entry.startswith(f"{prefix}old-"):
            if prefix == PREFIX:
                for name in names:
                    if (path / name).exists() and not (folder / name).exists():
                        with contextlib.suppress(OSError):
                            os.rename(path / name, folder / name)
            elif names and not (folder / names[0]).exists():
                with contextlib.suppress(OSError):
                    os.rename(path, folder / names[0])
            _remove(path)
        elif inside and entry.startswith((_PROBE, f"{LOCK}.stale-")):
            _remove(path)
        elif inside and _TEMPORARY.match(entry) and path.is_file():
            _remove(path)


def clean_temporaries(folder: str | Path) -> None:
    """Remove the temporary files (`_xlsx.atomic_output`) a worker that died left in one of the tool's own
    staging folders."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        path = Path(folder) / entry
        if _TEMPORARY.match(entry) and path.is_file():
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def commit(staging: Path, out: Path, names: Sequence[str], *,
           own: Callable[[Path], bool] = is_own) -> None:
    """Move each of `names` from `staging` into `out`, replacing what is there: a file by `os.replace`, a
    folder by two renames (the old one moved aside, the new one in) after which the old is deleted. A
    folder is replaced only if `own(folder)` says the tool wrote it; otherwise nothing is moved and
    `output-not-empty` is raised."""
    for name in names:
        target = out / name
        if (staging / name).is_dir() and target.exists() and not (target.is_dir() and own(target)):
            raise DisclosureError(Finding("output-not-empty", params={"folder": shown_name(target),
                                                                      "suggestion": shown_name(out.parent)}))
    aside = out / f"{OLD}{os.getpid()}"
    for name in names:
        source, target = staging / name, out / name
        if source.is_dir():
            if target.exists():
                aside.mkdir(exist_ok=True)
                os.rename(target, aside / name)
            os.rename(source, target)
        else:
            os.replace(source, target)
    if aside.exists():
        shutil.rmtree(aside, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# What became of one output of one workbook


@dataclass(frozen=True, slots=True)
class Written:
    """One output file (or pair) of one workbook: made, or why not. A writer that fails for one workbook
    gives this, never an exception: the run goes on, and the office and the county are told why.

    why: None (made), crashed | memory | timeout | error (its worker's outcome, workers.py), too_long (a
    text over a cell's 32,767 characters), disk_full.
    problem: a few technical words for report.json (never shown to an office).
    """

    made: bool = True
    why: str | None = None
    problem: str | None = None

    @classmethod
    def failed(cls, exc: BaseException) -> Written:
        """What an exception of a writer means for its output."""
        problem = f"{type(exc).__name__}: {str(exc)[:300]}"
        if disk_full(exc):
            return cls(False, "disk_full", problem)
        if isinstance(exc, TextTooLong):  # _xlsx.put or a stencil: a text over a cell's limit
            return cls(False, "too_long", problem)
        return cls(False, "error", problem)

    @classmethod
    def from_outcome(cls, outcome: Outcome[Any]) -> Written:
        """What a worker's failure (workers.Outcome) means for the output it was writing."""
        return cls(False, outcome.failure or "error", outcome.detail[:300] or None)

    def reason(self, lang: str = "zh") -> str:
        """Why it was not made, in plain words ("" when it was)."""
        if self.made:
            return ""
        return text(f"outputs.why.{self.why or 'error'}", lang, seconds=f"{WRITE_TIMEOUT_SECONDS:g}",
                    limit=f"{CELL_TEXT_MAX:,}")

    def finding(self, what: str) -> Finding:
        """`output-not-made` for this output (`what`: a key of outputs.what)."""
        return Finding("output-not-made", params={"what": phrase(f"outputs.what.{what}"),
                                                  "reason": {lang: self.reason(lang) for lang in ("zh", "en")}})

    def to_dict(self) -> dict[str, Any]:
        """As in report.json: {made, reason: {zh, en} | null, problem}."""
        return {"made": self.made, "reason": {lang: self.reason(lang) for lang in ("zh", "en")} if not self.made
                else None, "problem": self.problem}


def written_in_workers(func: Callable[[Any], Any], jobs: Sequence[Any], out: str | Path, *, workers: int | None,
                       stage: Stage | None, name: str) -> Iterator[tuple[int, Any]]:
    """Run a writer `func(job)` for every job in worker processes (workers.py) under the stage `name`
    (shown before the first output is written): each job's index with its result, a worker that died, ran
    out of memory or hung given as a `Written` that says so. A full disk ends the run at once
    (`output-disk-full`), so that the previous output stays as it was."""
    tick = stage(name, len(jobs)) if stage else None
    if tick:
        tick(0, len(jobs))
    for outcome in run_isolated(func, jobs, workers=workers, timeout=WRITE_TIMEOUT_SECONDS,
                                memory_limit=WORKER_MEMORY_BYTES, on_done=tick):
        result = outcome.value if outcome.value is not None else Written.from_outcome(outcome)
        if isinstance(result, Written) and result.why == "disk_full":
            raise DisclosureError(disk_full_finding(out))
        yield outcome.index, result
