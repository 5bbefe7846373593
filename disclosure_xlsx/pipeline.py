"""Compose the stages for a batch: find the files, read and clean them (in parallel), validate all at once.

Reading a workbook is the only per-file cost; each worker returns a compact cleaned report, and the
parent validates every report of a format in one Pandera call. A file that cannot be read becomes one
finding for that file and the batch goes on.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .access import access_problem, scrub_paths
from .catalog import LANGS, Cleaning, DisclosureError, Finding, bilingual, phrase, text
from .clean import CleanReport, clean_report
from .formats import Format, all_formats
from .layout import layout_for, standard_where
from .limits import FILE_TIMEOUT_SECONDS, WORKER_MEMORY_BYTES, mib, too_large
from .marks import OWN_SUFFIXES, MarkedFolders, own_output
from .read import read_workbook
from .stray import explained_by_shift
from .documents import SUFFIXES as DOCUMENT_SUFFIXES
from .narrative import check_report
from .narrative import prepare as prepare_narrative
from .workers import Outcome, run_isolated

if TYPE_CHECKING:
    import pandas as pd
    from .crossyear import Pairing
    from .suggest import Suggestion

__all__ = ["EXTENSIONS", "BatchResult", "Checked", "Found", "Skipped", "WorkbookResult", "check_file", "discover",
           "duplicate_groups", "file_labels", "find", "modified_time", "normalise_office", "validate_checked",
           "validate_paths", "validate_workbook"]

EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods", *DOCUMENT_SUFFIXES)  # workbooks, then published reports
# A folder is searched for these; a text copy (.txt) is read only when named, since folders hold notes too.
FOLDER_EXTENSIONS = tuple(s for s in EXTENSIONS if s != ".txt")
REPORT_VERSION = 1
DUPLICATES_NAMED = 5  # other copies a duplicate-submission names; the rest are counted
_JSON_SLOT = "\x00workbooks\x00"  # where write_json puts the workbooks (text with NULs: no workbook holds one)
Progress = Callable[[int, int], None]  # (done, total)
Stage = Callable[[str, int | None], Progress]  # starts the named stage (words: cli.stage.<name>) of a total, or None


@dataclass(slots=True)  # a batch holds one per workbook: no __dict__ each
class WorkbookResult:
    """Everything the batch knows about one file: its status, findings, cleaning log and values."""

    file: str
    findings: list[Finding]
    cleaning: list[Cleaning] = field(default_factory=list)
    report: CleanReport | None = None  # None when the file could not be read
    previous: Pairing | None = None  # how it was paired with last year's report (only with `previous=`)
    suggestion: Suggestion | None = None  # the fewest cells to change so that every identity holds (suggest.py)
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
        out["suggestion"] = self.suggestion.to_dict(r.where) if self.suggestion is not None and r else None
        if self.suggestion is not None:  # the identity findings it explains point at it
            explained = set(self.suggestion.rules)
            for entry, finding in zip(out["findings"], self.findings, strict=True):
                if finding.rule in explained:
                    entry["explained_by_suggestion"] = True
        return out


@dataclass(frozen=True)
class Skipped:
    """A file a folder search found that is one of the tool's own outputs (`own-output`): left out of the
    batch, listed in the JSON report."""

    file: str
    finding: Finding

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "finding": self.finding.to_dict()}


@dataclass
class BatchResult:
    """Every workbook of a batch, in the order found, and, once asked for (`frame`: the roll-up), the
    values of each format's workbooks as one frame (per format id: one row per readable workbook of that
    format, indexed by its position in `workbooks`). Validation does not keep the frames it checked: a
    batch that is not added up would hold every value twice."""

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
    skipped: list[Skipped] = field(default_factory=list)  # the tool's own outputs a folder search found

    @property
    def has_errors(self) -> bool:
        return any(w.status in ("errors", "unreadable") for w in self.workbooks)

    def summary(self) -> dict[str, int]:
        statuses = [w.status for w in self.workbooks]
        return {"workbooks": len(statuses), "ok": statuses.count("ok"), "with_warnings": statuses.count("warnings"),
                "with_errors": statuses.count("errors"), "unreadable": statuses.count("unreadable")}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (a stable contract, documented in README)."""
        return self._head([w.to_dict() for w in self.workbooks])

    def _head(self, workbooks: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"version": REPORT_VERSION, "summary": self.summary(),
                               **{key: record.to_dict() for key, record in self.review.items()},
                               "workbooks": workbooks}
        if self.previous_unreadable:  # only with `previous=` (issue 14)
            out["previous_unreadable"] = self.previous_unreadable
        if self.skipped:
            out["skipped"] = [s.to_dict() for s in self.skipped]
        return out

    def write_json(self, stream: TextIO, *, lines: bool = False,
                   extra: Sequence[dict[str, Any]] | None = None) -> None:
        """The JSON report, written one workbook at a time, so that a batch of any size never holds it whole.

        Without `lines`, the text of `json.dumps(self.to_dict(), ensure_ascii=False)` with the most compact
        separators (`--json`); with `lines`, the same data laid out for report.json: the head indented, then
        each workbook's entry on a line of its own (json's C encoder writes it; indenting every entry took
        the pure-Python one, three times slower). `extra` (one dict per workbook) adds keys to each entry.
        """
        layout: dict[str, Any] = {"indent": 1} if lines else {"separators": (",", ":")}
        head = json.dumps(self._head(_JSON_SLOT), ensure_ascii=False, **layout)
        encoded = json.dumps(_JSON_SLOT)
        before, slot, after = head.partition(encoded)
        if not slot or encoded in after:  # a reviewer's text that holds the slot's very words: never guess
            whole = self.to_dict()
            for entry, added in zip(whole["workbooks"], extra or [{}] * len(self.workbooks), strict=True):
                entry.update(added)
            stream.write(json.dumps(whole, ensure_ascii=False, **layout))
            return
        stream.write(before)
        if not self.workbooks:
            stream.write("[]")
        inner = "\n  " if lines else ""  # the entries' depth in report.json
        for i, workbook in enumerate(self.workbooks):
            entry = workbook.to_dict()
            if extra is not None:
                entry.update(extra[i])
            text_ = json.dumps(entry, ensure_ascii=False, separators=layout.get("separators"))  # one line
            stream.write(("[" if i == 0 else ",") + inner + text_)
        if self.workbooks:
            stream.write("\n ]" if lines else "]")
        stream.write(after)


@dataclass(frozen=True)
class Found:
    """What a search of the paths given found (`find`): the files to read, in order; those of them that a
    folder search found, whose own marks (marks.py) their reader looks at, since it opens them anyway; and
    the files left out because they lie in one of the tool's marked output folders."""

    files: list[Path]
    searched: frozenset[Path]
    in_output_folders: list[Path]


def find(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> Found:
    """The files to check: files as given, folders searched recursively for workbook files.

    Office lock files (`~$x.xlsx`), hidden files and anything under `exclude` (the output folder)
    are skipped; each file is listed once, sorted within each folder so that a batch is processed in
    the same order every time. Nothing else is left out silently: a folder that cannot be listed is
    listed itself, and so is anything named like a workbook that is no regular file (a pipe, a device, a
    broken link), so that `check_file` reports each. Links to folders are followed. Names are kept as
    the file system gives them (undecodable bytes as surrogates: `os.fsencode` gives them back). Files in
    the tool's marked output folders below a folder searched are left out (`in_output_folders`); a file
    named on the command line is always read.
    """
    skip = [p.resolve() for p in map(Path, exclude)]
    found: dict[Path, None] = {}
    searched: set[Path] = set()
    in_output_folders: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            marked = MarkedFolders(path)
            for item in _walk(path, skip):
                if marked(item) and item.is_file():  # anything else is listed: check_file says what it is
                    in_output_folders.append(item)
                elif item not in found:
                    found[item] = None
                    searched.add(item)
        elif not _skipped((path.name,)):
            found.setdefault(path, None)
            searched.discard(path)  # named: read as asked, even when a search found it too
    left_out = [p for p in dict.fromkeys(in_output_folders) if p not in found]  # named, or found by another path
    return Found(list(found), frozenset(searched), left_out)


def discover(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = (),
             skipped: list[Path] | None = None) -> list[Path]:
    """The files `find` finds, without the tool's own outputs that are no submission (marks.py), which are
    appended to `skipped` when it is given. It opens every workbook a search found to look at its mark:
    `validate_paths` leaves that to the reader, which opens each file anyway."""
    found = find(paths, exclude=exclude)
    own = {p for p in found.searched if p.suffix.lower() in OWN_SUFFIXES and p.is_file() and own_output(p)}
    if skipped is not None:
        skipped += [*found.in_output_folders, *(p for p in found.files if p in own)]
    return [p for p in found.files if p not in own]


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
        elif child.suffix.lower() in FOLDER_EXTENSIONS:
            yield child


def _inside(child: Path, folder: Path) -> bool:
    try:
        return child.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):
        return False


def _skipped(parts: Sequence[str]) -> bool:
    return any(p.startswith((".", "~$")) for p in parts)


@dataclass(frozen=True, slots=True)
class Checked:
    """What reading and cleaning one file gave: its cleaned report, or the finding that stopped it, and
    what is worked out from the report alone in the worker that read it (per-file work): the suggested
    fix when its identities fail, and the narrative's findings (None: not worked out yet, as for a report
    built by the caller). `file` is the name shown to people (`shown_name`); the report keeps the path it
    was read from."""

    file: str
    report: CleanReport | None
    problem: Finding | None = None
    suggestion: Suggestion | None = None
    narrative: list[Finding] | None = None


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


def check_file(path: str | Path, suggest: bool = False, own_outputs: bool = False) -> Checked:
    """Read and clean one file, and with `suggest` (as the batch's workers ask) work out the fix of
    identities that fail; never raises for a bad file (it becomes the returned finding). A caller that
    only wants the report pays for no solver. With `own_outputs` (a file a folder search found), one of
    the tool's own outputs gives `own-output` (`read_workbook`).

    A folder (one `discover` could not list) gives `folder-unreadable`. Damage to the file is
    `file-unreadable`, running out of memory `file-too-large`; `internal-error` is left for a defect of
    this tool.
    """
    file = shown_name(path)
    try:
        if os.path.isdir(path):
            return Checked(file, None, _folder_finding(Path(path), file))
        report = clean_report(read_workbook(path, own_outputs=own_outputs))
        if report.file == file:
            report.file = file  # one string for both, in this process and in the parent that receives them
        return Checked(file, report, suggestion=_suggestion(report) if suggest else None,
                       narrative=check_report(report))
    except DisclosureError as exc:
        return Checked(file, None, exc.finding)
    except MemoryError:
        return Checked(file, None, _memory_finding(""))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a file that breaks the reader must not stop the batch; it is reported
        problem = access_problem(exc)
        if problem is not None:  # this machine could not read it: not the office's fault
            return Checked(file, None, problem)
        reason = scrub_paths(f"{type(exc).__name__}: {exc}", path)
        return Checked(file, None, Finding("internal-error", params={"reason": bilingual(reason, reason)}))


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


def validate_paths(paths: Iterable[str | Path] | Found, *, workers: int | None = None,
                   progress: Progress | None = None, exclude: Iterable[str | Path] = (),
                   previous: Iterable[str | Path] | None = None, aliases: str | Path | None = None,
                   suggest: bool = True, year: int | None = None) -> BatchResult:
    """Check every workbook under `paths`: read, clean, then validate all of them at once. The tool's own
    outputs a folder search finds are left out of the batch, in `BatchResult.skipped` (marks.py).

    Args:
        paths: files and folders, or what `find` found in them (the caller searched already; `exclude`
            then applies to `previous` only).
        workers: reading processes (default: all cores); 1 reads in this process.
        progress: called with (done, total) after each file is read.
        exclude: folders to leave out of the search (the output folder).
        previous: last year's workbooks or folders: each workbook is then paired with its office's
            previous report and checked against it (crossyear.py); they are read in the same pool.
        aliases: a CSV of renamed or merged offices (旧名称,新名称), used with `previous`.
        suggest: work out the suggested fix of each workbook whose identities fail (False: only the
            findings are wanted, as for convert's check of a mapped workbook; a solve can take seconds).
        year: the report year being collected: a workbook whose cover gives another year gets the warning
            `year-not-collected` (a missing or unreadable year has its own warning).
    """
    exclude = list(exclude)
    found = paths if isinstance(paths, Found) else find(paths, exclude=exclude)
    files = found.files
    if previous is None:
        checked, skipped = _own_left_out(list(_read_all(files, workers, progress, suggest, searched=found.searched)))
        batch = validate_checked(checked, suggest=suggest)
        batch.skipped = [*_in_output_folders(found), *skipped]
        return _add_collected_year(batch, year)
    # Cross-year (issue 14): last year's files are read in the same pool; a file in both lists is read once.
    renamed = _read_aliases(aliases)
    before = find(previous, exclude=exclude)
    current = set(files)
    # A file of both lists is read once, unless this year's search may leave it out as the tool's own
    # while last year's list names it: then it is read again, as last year's, without that look.
    earlier_only = [p for p in before.files if p not in current or (p in found.searched and p not in before.searched)]
    both = list(_read_all(files, workers, progress, suggest, unsuggested=earlier_only,
                          searched=found.searched, unsuggested_searched=before.searched))
    checked, skipped = _own_left_out(both[:len(files)])
    batch = validate_checked(checked, suggest=suggest)
    batch.skipped = [*_in_output_folders(found), *skipped]
    read_now = {c.file for c in checked}
    earlier_checked = [c for c in _own_left_out(both[len(files):])[0] if c.file not in read_now]  # once each
    _add_cross_year(batch.workbooks, before.files, [c.report for c in earlier_checked if c.report is not None], renamed)
    batch.previous_unreadable = [c.file for c in earlier_checked if c.report is None]
    return _add_collected_year(batch, year)


def _add_collected_year(batch: BatchResult, year: int | None) -> BatchResult:
    """`year-not-collected` for each workbook whose report year is known and is not `year`."""
    for workbook in batch.workbooks if year is not None else ():
        report = workbook.report
        if report is not None and report.year is not None and report.year != year:
            ref = report.where.get(report.format.field("year").name)
            workbook.findings.append(Finding("year-not-collected", cells=(ref,) if ref else (),
                                             params={"year": report.year, "target": year}))
    return batch


def _own_left_out(checked: list[Checked]) -> tuple[list[Checked], list[Skipped]]:
    """The files read as submissions, and the tool's own outputs a reader recognised (`own-output`)."""
    own = [c.problem is not None and c.problem.code == "own-output" for c in checked]
    return ([c for c, mine in zip(checked, own, strict=True) if not mine],
            [Skipped(c.file, c.problem) for c, mine in zip(checked, own, strict=True) if mine and c.problem])


def _in_output_folders(found: Found) -> list[Skipped]:
    what = phrase("marks.own_folder")
    return [Skipped(shown_name(p), Finding("own-output", params={"what": what})) for p in found.in_output_folders]


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
    return validate_checked([replace(checked, file=label)]).workbooks[0]


def validate_checked(checked: Sequence[Checked], *, suggest: bool = True) -> BatchResult:
    """Validate the read and cleaned files of a batch together (one Pandera call per format); with
    `suggest`, each workbook whose identities fail gets its suggested fix."""
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
            # the narrative against the tables and the notices (issue 15), worked out by the reader if it could
            findings += item.narrative if item.narrative is not None else check_report(item.report)
            findings = explained_by_shift(item.report.format, item.report.values, findings)
            suggestion = item.suggestion
            if suggestion is None and suggest and any(f.code == "identity-mismatch" for f in findings):
                suggestion = _suggestion(item.report)  # a report read by the caller itself, not by check_file
            results.append(WorkbookResult(item.file, findings, item.report.cleaning, item.report,
                                          suggestion=suggestion if suggest else None))
    for group in duplicate_groups(results):
        for workbook, others in zip(group, _other_copies(group)):
            report = workbook.report
            workbook.findings.append(Finding("duplicate-submission", params={
                "office": report.office, "year": report.year, "others": others}))  # type: ignore[union-attr]
    return BatchResult(results)


def _other_copies(group: Sequence[WorkbookResult]) -> list[dict[str, str]]:
    """For each workbook of a duplicate group, the other copies in words (sorted by name, not batch
    order): all of them, or the first `DUPLICATES_NAMED` and how many there are. Naming every other copy
    would make a group of k copies k² names: a folder holding one office's file 5,000 times would fill the
    parent's memory."""
    out: list[dict[str, str]] = [{} for _ in group]
    for lang in LANGS:
        labels = file_labels(group, lang)
        ordered = sorted(range(len(group)), key=lambda k: labels[id(group[k])])
        for k in range(len(group)):
            shown = [labels[id(group[j])] for j in ordered[:DUPLICATES_NAMED + 1] if j != k][:DUPLICATES_NAMED]
            listed = text("catalog.enumeration", lang).join(shown)
            count = len(group) - 1
            out[k][lang] = listed if count <= DUPLICATES_NAMED else text(
                "pipeline.more_copies", lang, shown=listed, count=count, more=count - len(shown))
    return out


def _suggestion(report: CleanReport) -> Suggestion | None:
    """The suggested fix of a workbook with an identity failure that is reported (`reportable_failures`,
    the same test validation makes; a few ms each: the solver, and scipy with it, is loaded only when no
    single cell explains the failures). None where a row looks shifted one column right (`stray.py`): its
    numbers were read from the wrong columns, so a fix worked out from them would name the wrong cells
    (and cost the solver a second or more); the office is told to move the row back instead."""
    if any(f.code == "value-outside-table" and f.params.get("moved_back") for f in report.findings):
        return None
    row = {c: (v if v is not None else 0) for c, v in report.values.items()}
    if not report.format.reportable_failures(row, report.unusable):
        return None
    from .suggest import suggest_fix

    return suggest_fix(report.format, report.values, unusable=report.unusable)


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


@dataclass(frozen=True, slots=True)
class _ReadJob:
    """One file for a worker, whether its suggested fix is wanted (not for last year's reports), and
    whether a folder search found it (then the reader looks at its mark: the tool's own outputs)."""

    path: Path
    suggest: bool
    searched: bool = False


def _read_job(job: _ReadJob) -> Checked:
    """In a worker: `check_file` (looked up when called, so that a test can stand in for it)."""
    return check_file(job.path, suggest=job.suggest, own_outputs=job.searched)


def _prepare_workers() -> None:
    """Build what every worker needs once per process, before the workers are forked, so that each
    inherits it instead of building it again for its first workbook: the formats and their standard
    layouts (~15 ms a worker), and, from a process's second run on, the narrative rules (~70 ms a worker:
    their patterns compiled). A process's first run forks at once, its workers compiling the rules while
    the parent imports pandas and pandera: a one-workbook `validate` would otherwise wait for the parent to
    compile them first. A process that validates again (the clerk's page, a library caller) has imported
    `validate` in its first run, and from then on compiles the rules once instead of once a worker and run."""
    for fmt in all_formats().values():
        standard_where(fmt.id)
        layout_for(fmt.id)
    if f"{__package__}.validate" in sys.modules:
        prepare_narrative()


def _read_all(files: list[Path], workers: int | None, progress: Progress | None,
              suggest: bool = True, unsuggested: Sequence[Path] = (),
              searched: frozenset[Path] = frozenset(),
              unsuggested_searched: frozenset[Path] = frozenset()) -> Iterator[Checked]:
    """`check_file` for every file, then every file of `unsuggested` (no suggested fix), in worker
    processes (workers.py), so that a reader that aborts, runs out of memory or hangs costs only its
    file: one finding, and the batch goes on. Always in workers, even with `workers=1` (no look at a
    file beforehand can prove that a reader will not abort on it). The files of `files` in `searched`, and
    of `unsuggested` in `unsuggested_searched`, are looked at for the tool's own marks (`own-output`)."""
    def importing() -> None:  # the workers exist now: load pandas and pandera meanwhile, for the validation
        threading.Thread(target=importlib.import_module, args=(f"{__package__}.validate",), daemon=True).start()

    jobs = [*(_ReadJob(p, suggest, p in searched) for p in files),
            *(_ReadJob(p, False, p in unsuggested_searched) for p in unsuggested)]
    _prepare_workers()
    for outcome in run_isolated(_read_job, jobs, workers=workers, timeout=FILE_TIMEOUT_SECONDS,
                                memory_limit=WORKER_MEMORY_BYTES, on_done=progress, on_started=importing):
        if outcome.value is not None:
            yield outcome.value
        else:
            yield Checked(shown_name(jobs[outcome.index].path), None, _isolation_finding(outcome))
