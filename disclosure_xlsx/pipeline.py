"""Compose the stages for a batch: find the files, read and clean them (in parallel), validate all at once.

Reading a workbook is the only per-file cost; each worker returns a compact cleaned report, and the
parent validates every report of a format in one Pandera call. A file that cannot be read becomes one
finding for that file and the batch goes on.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .access import access_problem, scrub_paths
from .catalog import LANGS, Cleaning, DisclosureError, Finding, bilingual, text
from .clean import CleanReport, clean_report
from .formats import Format
from .marks import OwnOutputs
from .read import read_workbook

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXTENSIONS", "BatchResult", "Checked", "WorkbookResult", "check_file", "discover", "duplicate_groups",
           "file_labels", "modified_time", "normalise_office", "validate_checked", "validate_paths"]

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
    """Every workbook of a batch, in the order found, and the frames validation checked (per format id:
    one row per readable workbook of that format, indexed by its position in `workbooks`)."""

    workbooks: list[WorkbookResult]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def frame(self, fmt: Format) -> pd.DataFrame:
        """The values of the batch's workbooks of `fmt` (blank = <NA>), built once."""
        if fmt.id not in self.frames:
            from .validate import report_frame

            rows = [i for i, w in enumerate(self.workbooks) if w.report is not None and w.report.format is fmt]
            frame = report_frame([self.workbooks[i].report for i in rows], fmt)  # type: ignore[misc]
            self.frames[fmt.id] = frame.set_axis(rows)
        return self.frames[fmt.id]

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


def discover(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = (),
             skipped: list[Path] | None = None) -> list[Path]:
    """The workbooks to check: files as given, folders searched recursively for workbook files.

    Office lock files (`~$x.xlsx`), hidden files and anything under `exclude` (the output folder)
    are skipped; so are the tool's own outputs a search finds (`_own_output`), which are appended to
    `skipped` when it is given. Each file is listed once, sorted within each folder so that a batch is
    processed in the same order every time.
    """
    skip = [Path(p).resolve() for p in exclude]
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_dir():
            own = _own_output(path)
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and child.suffix.lower() in EXTENSIONS and not _skipped(relative) \
                        and not any(child.resolve().is_relative_to(s) for s in skip):
                    if own(child):
                        if skipped is not None:
                            skipped.append(child)
                        continue
                    found.setdefault(child, None)
        elif not _skipped((path.name,)):
            found.setdefault(path, None)
    return list(found)


def _own_output(root: Path) -> Callable[[Path], bool]:
    """The filter for the files a search of `root` finds: the tool's own outputs are no submissions
    (marks.py says which); a file named on the command line never passes through it."""
    return OwnOutputs(root)


def _skipped(parts: Sequence[str]) -> bool:
    return any(p.startswith((".", "~$")) for p in parts)


@dataclass(frozen=True, slots=True)
class Checked:
    """What reading and cleaning one file gave: its cleaned report, or the finding that stopped it."""

    file: str
    report: CleanReport | None
    problem: Finding | None = None


def check_file(path: str | Path) -> Checked:
    """Read and clean one file; never raises for a bad file (it becomes the returned finding)."""
    file = str(path)
    try:
        return Checked(file, clean_report(read_workbook(path)))
    except DisclosureError as exc:
        return Checked(file, None, exc.finding)
    except Exception as exc:  # a file that breaks the reader must not stop the batch; it is reported
        problem = access_problem(exc)
        if problem is not None:  # this machine could not read it: not the office's fault
            return Checked(file, None, problem)
        reason = scrub_paths(f"{type(exc).__name__}: {str(exc)[:160]}", path)
        return Checked(file, None, Finding("internal-error", params={"reason": bilingual(reason, reason)}))


def validate_paths(paths: Iterable[str | Path], *, workers: int | None = None,
                   progress: Progress | None = None, exclude: Iterable[str | Path] = ()) -> BatchResult:
    """Check every workbook under `paths`: read, clean, then validate all of them at once.

    Args:
        paths: files and folders.
        workers: reading processes (default: all cores); 1 reads in this process.
        progress: called with (done, total) after each file is read.
        exclude: folders to leave out of the search (the output folder).
    """
    files = discover(paths, exclude=exclude)
    return validate_checked(list(_read_all(files, workers, progress)))


def validate_checked(checked: Sequence[Checked]) -> BatchResult:
    """Validate the read and cleaned files of a batch together (one Pandera call per format)."""
    from .validate import validate_reports  # pandas and pandera load only when there is work

    positions = [i for i, c in enumerate(checked) if c.report is not None]
    validation = validate_reports([checked[i].report for i in positions])  # type: ignore[misc]
    found = dict(zip(positions, validation.findings, strict=True))
    results = []
    for i, item in enumerate(checked):
        if item.report is None:
            results.append(WorkbookResult(item.file, [item.problem] if item.problem else []))
        else:
            results.append(WorkbookResult(item.file, [*item.report.findings, *found[i]], item.report.cleaning,
                                          item.report))
    for group in duplicate_groups(results):
        labels = {lang: file_labels(group, lang) for lang in LANGS}
        for workbook in group:
            others = {lang: text("catalog.enumeration", lang).join(
                sorted(labels[lang][id(w)] for w in group if w is not workbook)) for lang in LANGS}  # not batch order
            report = workbook.report
            workbook.findings.append(Finding("duplicate-submission", params={
                "office": report.office, "year": report.year, "others": others}))  # type: ignore[union-attr]
    frames = {fid: frame.set_axis([positions[r] for r in frame.index]) for fid, frame in validation.frames.items()}
    return BatchResult(results, frames)


def duplicate_groups(workbooks: Sequence[WorkbookResult]) -> list[list[WorkbookResult]]:
    """Workbooks of the same office (by `normalise_office`) and year, unless their credit codes tell
    them apart."""
    groups: dict[tuple[str, int | None], list[WorkbookResult]] = {}
    for w in workbooks:
        if w.report is not None and w.report.office:
            groups.setdefault((normalise_office(w.report.office), w.report.year), []).append(w)
    out = []
    for group in groups.values():
        codes = [w.report.credit_code for w in group]  # type: ignore[union-attr]
        if len(group) > 1 and not (all(codes) and len(set(codes)) == len(codes)):
            out.append(group)
    return out


def normalise_office(name: str) -> str:
    """An office name as compared: NFKC (full-width forms) without whitespace. The one place office
    names are compared, so a fuller matcher (a roster's) can replace it."""
    return "".join(unicodedata.normalize("NFKC", name).split())


def file_labels(workbooks: Sequence[WorkbookResult], lang: str = "zh") -> dict[int, str]:
    """How to tell files of one office apart (keyed by id of the workbook): the path below the folder
    they share (`第一次报送/青石乡年报.xlsx`, never an absolute path) and the time it was last modified."""
    paths = [Path(w.file).absolute() for w in workbooks]
    try:
        common = Path(os.path.commonpath([p.parent for p in paths]))
    except ValueError:  # different drives
        common = None
    out = {}
    for w, path in zip(workbooks, paths, strict=True):
        shown = path.relative_to(common).as_posix() if common is not None else path.name
        try:
            time = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        except OSError:
            out[id(w)] = shown
            continue
        out[id(w)] = text("pipeline.file_with_time", lang, file=shown, time=time)
    return out


def modified_time(workbook: WorkbookResult) -> float:
    """When the workbook's file was last modified (0 when it cannot be told)."""
    try:
        return Path(workbook.file).stat().st_mtime
    except OSError:
        return 0.0


def _read_all(files: list[Path], workers: int | None, progress: Progress | None) -> Iterator[Checked]:
    workers = workers or os.cpu_count() or 1
    total = len(files)
    if workers <= 1 or total < 2 * workers:
        for done, path in enumerate(files, 1):
            yield check_file(path)
            if progress:
                progress(done, total)
        return
    chunk = max(1, min(64, total // (workers * 4)))
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        results = pool.map(check_file, files, chunksize=chunk)  # submits every file: the workers now exist
        # While the workers read, load pandas and pandera (about a second) for the validation that follows.
        threading.Thread(target=importlib.import_module, args=(f"{__package__}.validate",), daemon=True).start()
        for done, result in enumerate(results, 1):
            yield result
            if progress:
                progress(done, total)
