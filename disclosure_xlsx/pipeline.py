"""Compose the stages for a batch: find the files, read and clean them (in parallel), validate all at once.

Reading a workbook is the only per-file cost; each worker returns a compact cleaned report, and the
parent validates every report of a format in one Pandera call. A file that cannot be read becomes one
finding for that file and the batch goes on.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import LANGS, Cleaning, DisclosureError, Finding, bilingual, text
from .clean import CleanReport, clean_report
from .formats import Format
from .read import read_workbook
from .documents import SUFFIXES as DOCUMENT_SUFFIXES
from .narrative import check_report

if TYPE_CHECKING:
    import pandas as pd
    from .crossyear import Pairing

__all__ = ["EXTENSIONS", "BatchResult", "Checked", "WorkbookResult", "check_file", "discover", "duplicate_groups",
           "validate_checked", "validate_paths", "validate_workbook"]

EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods", *DOCUMENT_SUFFIXES)  # workbooks, then published reports
# A folder is searched for these; a text copy (.txt) is read only when named, since folders hold notes too.
FOLDER_EXTENSIONS = tuple(s for s in EXTENSIONS if s != ".txt")
REPORT_VERSION = 1
Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class WorkbookResult:
    """Everything the batch knows about one file: its status, findings, cleaning log and values."""

    file: str
    findings: list[Finding]
    cleaning: list[Cleaning] = field(default_factory=list)
    report: CleanReport | None = None  # None when the file could not be read
    previous: Pairing | None = None  # how it was paired with last year's report (only with `previous=`)
    # The county's review (accept.py, rounds.py): records with to_dict(), added to the JSON entry by key.
    review: dict[str, Any] = field(default_factory=dict)

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
        """Warnings that count: one a county reviewer accepted (accept.py) does not."""
        return sum(f.severity == "warning" and getattr(f, "accepted", None) is None for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        out: dict[str, Any] = {
            "file": self.file, "office": r.office if r else None, "credit_code": r.credit_code if r else None,
            "year": r.year if r else None, "format": r.format_id if r else None, "status": self.status,
            "located_by": r.located_by if r else None, "findings": [f.to_dict() for f in self.findings],
            "cleaning": [c.to_dict() for c in self.cleaning],
            **{key: record.to_dict() for key, record in self.review.items()}}
        if self.previous is not None:  # only with `previous=` (issue 14)
            out["previous"] = self.previous.to_dict()
        return out


@dataclass
class BatchResult:
    """Every workbook of a batch, in the order found, and the frames validation checked (per format id:
    one row per readable workbook of that format, indexed by its position in `workbooks`)."""

    workbooks: list[WorkbookResult]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)  # the county's review of the batch, as in WorkbookResult

    def frame(self, fmt: Format) -> pd.DataFrame:
        """The values of the batch's workbooks of `fmt` (blank = <NA>), built once."""
        if fmt.id not in self.frames:
            from .validate import report_frame

            rows = [i for i, w in enumerate(self.workbooks) if w.report is not None and w.report.format is fmt]
            frame = report_frame([self.workbooks[i].report for i in rows], fmt)  # type: ignore[misc]
            self.frames[fmt.id] = frame.set_axis(rows)
        return self.frames[fmt.id]
    previous_unreadable: list[str] = field(default_factory=list)  # last year's files that could not be read

    @property
    def has_errors(self) -> bool:
        return any(w.status in ("errors", "unreadable") for w in self.workbooks)

    def summary(self) -> dict[str, int]:
        statuses = [w.status for w in self.workbooks]
        return {"workbooks": len(statuses), "ok": statuses.count("ok"), "with_warnings": statuses.count("warnings"),
                "with_errors": statuses.count("errors"), "unreadable": statuses.count("unreadable")}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (a stable contract, documented in README)."""
        out: dict[str, Any] = {"version": REPORT_VERSION, "summary": self.summary(),
                               **{key: record.to_dict() for key, record in self.review.items()},
                               "workbooks": [w.to_dict() for w in self.workbooks]}
        if self.previous_unreadable:  # only with `previous=` (issue 14)
            out["previous_unreadable"] = self.previous_unreadable
        return out


def discover(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """The workbooks to check: files as given, folders searched recursively for workbook files.

    Office lock files (`~$x.xlsx`), hidden files and anything under `exclude` (the output folder)
    are skipped; each file is listed once, sorted within each folder so that a batch is processed in
    the same order every time.
    """
    skip = [Path(p).resolve() for p in exclude]
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and child.suffix.lower() in FOLDER_EXTENSIONS and not _skipped(relative) \
                        and not any(child.resolve().is_relative_to(s) for s in skip):
                    found.setdefault(child, None)
        elif not _skipped((path.name,)):
            found.setdefault(path, None)
    return list(found)


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
        reason = f"{type(exc).__name__}: {str(exc)[:160]}"
        return Checked(file, None, Finding("internal-error", params={"reason": bilingual(reason, reason)}))


def validate_paths(paths: Iterable[str | Path], *, workers: int | None = None,
                   progress: Progress | None = None, exclude: Iterable[str | Path] = (),
                   previous: Iterable[str | Path] | None = None, aliases: str | Path | None = None) -> BatchResult:
    """Check every workbook under `paths`: read, clean, then validate all of them at once.

    Args:
        paths: files and folders.
        workers: reading processes (default: all cores); 1 reads in this process.
        progress: called with (done, total) after each file is read.
        exclude: folders to leave out of the search (the output folder).
        previous: last year's workbooks or folders: each workbook is then paired with its office's
            previous report and checked against it (crossyear.py); they are read in the same pool.
        aliases: a CSV of renamed or merged offices (旧名称,新名称), used with `previous`.
    """
    exclude = list(exclude)
    files = discover(paths, exclude=exclude)
    if previous is None:
        return validate_checked(list(_read_all(files, workers, progress)))
    # Cross-year (issue 14): last year's files are read in the same pool; a file in both lists is read once.
    renamed = _read_aliases(aliases)
    earlier = discover(previous, exclude=exclude)
    current = set(files)
    earlier_only = [p for p in earlier if p not in current]
    checked = list(_read_all([*files, *earlier_only], workers, progress))
    batch = validate_checked(checked[:len(files)])
    earlier_checked = checked[len(files):]
    _add_cross_year(batch.workbooks, earlier, [c.report for c in earlier_checked if c.report is not None], renamed)
    batch.previous_unreadable = [c.file for c in earlier_checked if c.report is None]
    return batch


def validate_workbook(source: str | Path | bytes, *, name: str | None = None) -> WorkbookResult:
    """Validate one workbook given by its path or by its bytes (then `name`, e.g. "某镇.xlsx", gives the
    file name shown in findings and the type to read it as)."""
    if not isinstance(source, bytes):
        return validate_checked([check_file(source)]).workbooks[0]
    label = name or "workbook.xlsx"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{Path(label).suffix.lower() or '.xlsx'}"
        path.write_bytes(source)
        checked = check_file(path)
    report = checked.report
    if report is not None:
        report.file = label
    return validate_checked([Checked(label, report, checked.problem)]).workbooks[0]


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
            findings = [*item.report.findings, *found[i]]
            findings += check_report(item.report)  # the narrative against the tables and the notices (issue 15)
            results.append(WorkbookResult(item.file, findings, item.report.cleaning, item.report))
    for group in duplicate_groups(results):
        for workbook in group:
            others = sorted(Path(w.file).name for w in group if w is not workbook)  # not in batch order
            report = workbook.report
            workbook.findings.append(Finding("duplicate-submission", params={
                "office": report.office, "year": report.year,  # type: ignore[union-attr]
                "others": {lang: text("catalog.enumeration", lang).join(others) for lang in LANGS}}))
    frames = {fid: frame.set_axis([positions[r] for r in frame.index]) for fid, frame in validation.frames.items()}
    return BatchResult(results, frames)


def _read_aliases(path: str | Path | None) -> dict[str, tuple[str, ...]]:
    from .crossyear import read_aliases

    return read_aliases(path) if path is not None else {}


def _add_cross_year(results: list[WorkbookResult], earlier: list[Path], earlier_only: list[CleanReport],
                    aliases: dict[str, tuple[str, ...]] | None) -> None:
    """Pair each workbook with last year's report and add the cross-year findings (issue 14)."""
    from .crossyear import check_batch

    wanted = {str(p) for p in earlier}
    pool = [*(w.report for w in results if w.report is not None and w.file in wanted), *earlier_only]
    for workbook, found in zip(results, check_batch([w.report for w in results], pool, aliases=aliases), strict=True):
        workbook.previous = found.pairing
        workbook.findings += found.findings


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
