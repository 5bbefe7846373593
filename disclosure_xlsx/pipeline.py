"""Compose the stages for a batch: find the files, read and clean them (in parallel), validate all at once.

Reading a workbook is the only per-file cost; each worker returns a compact cleaned report, and the
parent validates every report of a format in one Pandera call. A file that cannot be read becomes one
finding for that file and the batch goes on.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Cleaning, DisclosureError, Finding, bilingual, text
from .clean import CleanReport, clean_report
from .limits import FILE_TIMEOUT_SECONDS, WORKER_MEMORY_BYTES, mib, too_large
from .read import Unreadable, read_workbook
from .workers import Outcome, run_isolated

__all__ = ["EXTENSIONS", "BatchResult", "WorkbookResult", "check_file", "discover", "duplicate_groups",
           "shown_name", "validate_paths"]

EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods")
REPORT_VERSION = 1
Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class WorkbookResult:
    """Everything the batch knows about one file: its status, findings, cleaning log and values."""

    file: str
    findings: list[Finding]
    cleaning: list[Cleaning] = field(default_factory=list)
    report: CleanReport | None = None  # None when the file could not be read

    @property
    def status(self) -> str:
        if self.report is None:
            return "unreadable"
        if self.errors:
            return "errors"
        return "warnings" if self.warnings else "ok"

    @property
    def name(self) -> str:
        """How people call the workbook: its office, else its file name."""
        return (self.report.office if self.report else None) or Path(self.file).name

    @property
    def first_error(self) -> str:
        """The Chinese message of its first error, or ""."""
        return next((f.message("zh") for f in self.findings if f.severity == "error"), "")

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {"file": self.file, "office": r.office if r else None, "credit_code": r.credit_code if r else None,
                "year": r.year if r else None, "format": r.format_id if r else None, "status": self.status,
                "located_by": r.located_by if r else None, "findings": [f.to_dict() for f in self.findings],
                "cleaning": [c.to_dict() for c in self.cleaning]}


@dataclass
class BatchResult:
    workbooks: list[WorkbookResult]

    @property
    def has_errors(self) -> bool:
        return any(w.status in ("errors", "unreadable") for w in self.workbooks)

    def summary(self) -> dict[str, int]:
        statuses = [w.status for w in self.workbooks]
        return {"workbooks": len(statuses), "ok": statuses.count("ok"), "with_warnings": statuses.count("warnings"),
                "with_errors": statuses.count("errors"), "unreadable": statuses.count("unreadable")}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (a stable contract, documented in README)."""
        return {"version": REPORT_VERSION, "summary": self.summary(),
                "workbooks": [w.to_dict() for w in self.workbooks]}


def discover(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """The workbooks to check: files as given, folders searched recursively for workbook files.

    Office lock files (`~$x.xlsx`), hidden files and anything under `exclude` (the output folder)
    are skipped; each file is listed once, sorted within each folder so that a batch is processed in
    the same order every time. Nothing else is left out silently: a folder that cannot be listed is
    listed itself, and so is anything named like a workbook that is no regular file (a pipe, a device, a
    broken link), so that `check_file` reports each. Links to folders are followed. Names are kept as
    the file system gives them (undecodable bytes as surrogates: `os.fsencode` gives them back).
    """
    skip = [Path(p).resolve() for p in exclude]
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_dir():
            for item in _walk(path, skip):
                found.setdefault(item, None)
        elif not _skipped((path.name,)):
            found.setdefault(path, None)
    return list(found)


def _walk(root: Path, skip: Sequence[Path]) -> Iterator[Path]:
    """Depth first, each folder's entries sorted by name (the order of sorting the whole paths). Links
    to folders are followed, each folder once (a link back up is not a loop)."""
    seen: set[tuple[int, int]] = set()
    stack: list[Iterator[os.DirEntry[str]] | Path] = [root]
    while stack:
        top = stack.pop()
        if isinstance(top, Path):
            try:
                info = top.stat()
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
                with os.scandir(top) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError:
                yield top  # check_file says why it cannot be listed
                continue
            stack.append(iter(entries))
            continue
        entry = next(top, None)
        if entry is None:
            continue
        stack.append(top)
        child = Path(entry.path)
        if _skipped((entry.name,)) or any(_inside(child, s) for s in skip):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            stack.append(child)
        elif child.suffix.lower() in EXTENSIONS:
            yield child


def _inside(child: Path, folder: Path) -> bool:
    try:
        return child.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):
        return False


def _skipped(parts: Sequence[str]) -> bool:
    return any(p.startswith((".", "~$")) for p in parts)


def shown_name(path: str | Path) -> str:
    """A path as people can read it. A name the file system gives as undecodable bytes (GBK from a
    Windows zip unpacked on Linux) is decoded as GB18030, part by part, else with replacement marks;
    the path itself (for opening) is kept by whoever holds it."""
    text_ = str(path)
    try:
        text_.encode("utf-8")
        return text_
    except UnicodeEncodeError:
        pass
    parts = []
    for part in text_.split(os.sep):
        try:
            part.encode("utf-8")
            parts.append(part)
        except UnicodeEncodeError:
            raw = os.fsencode(part)
            try:
                parts.append(raw.decode("gb18030"))
            except UnicodeDecodeError:
                parts.append(raw.decode("utf-8", "replace"))
    return os.sep.join(parts)


def check_file(path: str | Path) -> tuple[str, CleanReport | None, Finding | None]:
    """Read and clean one file; never raises for a bad file (it becomes the returned finding).

    Returns the file's shown name (`shown_name`), the cleaned report or None, and the finding that
    stopped it. A folder (one `discover` could not list) gives `folder-unreadable`. Damage to the file is
    `file-unreadable`, running out of memory `file-too-large`; `internal-error` is left for a defect of
    this tool.
    """
    file = shown_name(path)
    try:
        if os.path.isdir(path):
            return file, None, _folder_finding(Path(path), file)
        return file, clean_report(read_workbook(path)), None
    except (Unreadable, DisclosureError) as exc:
        return file, None, exc.finding
    except MemoryError:
        return file, None, _memory_finding("")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a file that breaks the reader must not stop the batch; it is reported
        reason = f"{type(exc).__name__}: {str(exc)[:160]}"
        return file, None, Finding("internal-error", params={"reason": bilingual(reason, reason)})


def _folder_finding(folder: Path, shown: str) -> Finding:
    try:
        os.listdir(folder)
        reason = _words("folder.unlisted")
    except FileNotFoundError:
        reason = _words("folder.vanished")
    except PermissionError:
        reason = _words("folder.denied")
    except OSError as exc:
        reason = _words("folder.unlistable", detail=exc.strerror or type(exc).__name__)
    return Finding("folder-unreadable", params={"folder": shown, "reason": reason})


def _words(key: str, **params: object) -> dict[str, str]:
    return bilingual(text(f"pipeline.{key}", "zh", **params), text(f"pipeline.{key}", "en", **params))


def _memory_finding(detail: str) -> Finding:
    """file-too-large for a file whose reading ran out of memory (the worker's limit, or the machine's)."""
    size = f"{int(detail.split()[2]) / 2**30:.1f} GiB" if detail.startswith("allocation of ") else ""
    return too_large(_limit_words("size.memory", size=size or mib(WORKER_MEMORY_BYTES)),
                     _limit_words("limit.memory", size=mib(WORKER_MEMORY_BYTES)))


def _limit_words(key: str, **params: object) -> dict[str, str]:
    return bilingual(text(f"limits.{key}", "zh", **params), text(f"limits.{key}", "en", **params))


def _isolation_finding(outcome: Outcome[Any]) -> Finding:
    """What the county reads for a file whose worker crashed, ran out of memory, hung, or failed."""
    if outcome.failure == "memory":
        return _memory_finding(outcome.detail)
    if outcome.failure == "timeout":
        return Finding("file-timeout", params={"seconds": f"{FILE_TIMEOUT_SECONDS:g}"})
    if outcome.failure == "crashed":
        return Finding("file-reader-crashed", params={"reason": bilingual(outcome.detail, outcome.detail)})
    return Finding("internal-error", params={"reason": bilingual(outcome.detail, outcome.detail)})


def validate_paths(paths: Iterable[str | Path], *, workers: int | None = None,
                   progress: Progress | None = None, exclude: Iterable[str | Path] = ()) -> BatchResult:
    """Check every workbook under `paths`: read, clean, then validate all of them at once.

    Args:
        paths: files and folders.
        workers: reading processes (default: all cores); 1 reads in this process.
        progress: called with (done, total) after each file is read.
        exclude: folders to leave out of the search (the output folder).
    """
    from .validate import validate_reports  # pandas and pandera load only when there is work

    files = discover(paths, exclude=exclude)
    checked = list(_read_all(files, workers, progress))
    reports = [report for _, report, _ in checked if report is not None]
    found = iter(validate_reports(reports))
    results = []
    for file, report, problem in checked:
        if report is None:
            results.append(WorkbookResult(file, [problem] if problem else []))
        else:
            results.append(WorkbookResult(file, [*report.findings, *next(found)], report.cleaning, report))
    for group in duplicate_groups(results):
        for workbook in group:
            others = sorted(Path(w.file).name for w in group if w is not workbook)  # not in batch order
            report = workbook.report
            workbook.findings.append(Finding("duplicate-submission", params={
                "office": report.office, "year": report.year,  # type: ignore[union-attr]
                "others": bilingual("、".join(others), ", ".join(others))}))
    return BatchResult(results)


def duplicate_groups(workbooks: Sequence[WorkbookResult]) -> list[list[WorkbookResult]]:
    """Workbooks of the same office and year, unless their credit codes tell them apart."""
    groups: dict[tuple[str, int | None], list[WorkbookResult]] = {}
    for w in workbooks:
        if w.report is not None and w.report.office:
            groups.setdefault((w.report.office, w.report.year), []).append(w)
    out = []
    for group in groups.values():
        codes = [w.report.credit_code for w in group]  # type: ignore[union-attr]
        if len(group) > 1 and not (all(codes) and len(set(codes)) == len(codes)):
            out.append(group)
    return out


def _read_all(files: list[Path], workers: int | None, progress: Progress | None
              ) -> Iterator[tuple[str, CleanReport | None, Finding | None]]:
    """`check_file` for every file in worker processes (workers.py), so that a reader that aborts, runs
    out of memory or hangs costs only its file: one finding, and the batch goes on. Always in workers,
    even with `workers=1` (no look at a file beforehand can prove that a reader will not abort on it)."""
    importing: list[threading.Thread] = []

    def done(count: int, total: int) -> None:
        if not importing:  # the workers exist now: load pandas and pandera meanwhile, for the validation
            importing.append(threading.Thread(target=importlib.import_module, args=(f"{__package__}.validate",),
                                              daemon=True))
            importing[0].start()
        if progress:
            progress(count, total)

    for outcome in run_isolated(check_file, files, workers=workers, timeout=FILE_TIMEOUT_SECONDS,
                                memory_limit=WORKER_MEMORY_BYTES, on_done=done):
        if outcome.value is not None:
            yield outcome.value
        else:
            yield shown_name(files[outcome.index]), None, _isolation_finding(outcome)
