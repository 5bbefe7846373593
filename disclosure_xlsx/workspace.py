"""The clerk's working folder behind the web page (web.py): one folder per report year, every upload kept
as it was sent, and the jobs that validate, accept and add up, run one at a time in a background thread.

    <workdir>/<year>年/
      交回的报表/第N批/…          every upload (names made safe), never overwritten
      批次记录/第N批.json          the batch: what was sent, stored or skipped, its state and its round
      批次记录/第N批.report.json   the batch's own report: `validate --json` of its files
      校验结果/                   the year's `validate --out` folder over the current workbooks
      认可.csv                    the county's acceptance file for the year
      名单/, 汇总/, 设置.json      rosters as uploaded, the total, what the page remembers

The current workbooks of a year are the latest submission of every office: a file of a later batch
replaces the earlier ones of the same office and year (normalised name; a file without one by its name). Each
job writes the year's outputs with `feedback.write_outputs`, so every batch is a round of resubmission
compared with the one before (history/第N轮/), never an overwrite. Nothing here speaks HTTP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import queue
import re
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._xlsx import atomic_output
from .catalog import DisclosureError, Finding, text
from .limits import MAX_FILE_BYTES, mib
from .uploads import (MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, Intake, base_name, refused, take_folder, take_uploads,
                      unique_name)

if TYPE_CHECKING:
    from .pipeline import BatchResult

REPORT, OVERVIEW = text("feedback.report_file"), text("feedback.overview_file")  # the names write_outputs gives

__all__ = ["MAX_UPLOAD_BYTES", "MAX_UPLOAD_FILES", "OVERVIEW", "REPORT", "Job", "Workspace", "default_workdir",
           "default_year"]


def default_workdir() -> Path:
    """The working folder when none is given: a folder in the user's home, which stays the same however
    the program is started (a desktop shortcut's current folder is anyone's guess)."""
    return Path.home() / text("web.dirs.workdir")


def default_year(today: dt.date | None = None) -> int:
    """The report year a clerk works on: last year's (reports are collected in January)."""
    return (today or dt.date.today()).year - 1


def _words(key: str, **params: Any) -> dict[str, str]:
    return {lang: text(key, lang, **params) for lang in ("zh", "en")}


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------
# Jobs


@dataclass
class Job:
    """One background job and how far it got (GET /api/jobs/<id>); `batch` names the batch it validates.

    kind: upload (files sent to the page or the API), folder (copied from a path), recheck, accept,
    aggregate. stage: reading, reading_year, writing, totalling. `error` is a message in both languages.
    """

    id: str
    year: int
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    batch: str | None = None
    state: str = "queued"
    stage: str | None = None
    done: int = 0
    total: int = 0
    error: dict[str, str] | None = None
    notes: list[dict[str, str]] = field(default_factory=list)
    round: int | None = None

    def progress(self, stage: str) -> Callable[[int, int], None]:
        def tick(done: int, total: int) -> None:
            self.stage, self.done, self.total = stage, done, total
        return tick

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "year": self.year, "kind": self.kind, "batch": self.batch, "state": self.state,
                "stage": self.stage, "done": self.done, "total": self.total, "error": self.error,
                "notes": self.notes, "round": self.round}


# ------------------------------------------------------------------------------------------------
# The working folder


class Workspace:
    """The working folder: years, batches, the current workbooks, and one background thread for jobs.

    Only one server may use a folder at a time (a lock file, held while the workspace is open).
    """

    def __init__(self, root: str | Path, *, workers: int | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.workers = workers
        self._lock = threading.RLock()  # batch numbers, the job table
        self.writing = threading.RLock()  # held while a year's outputs change, and while they are zipped
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._lockfile: IO[str] | None = None

    # -- life ------------------------------------------------------------------------------------

    def open(self) -> Workspace:
        """Take the folder (refused when another server uses it), resume interrupted batches, start the
        job thread."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._lockfile = (self.root / ".lock").open("w")  # held open, and locked, while the folder is in use
        try:
            import fcntl

            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no fcntl (Windows): one server per folder is then the user's care
            pass
        except OSError:
            self._lockfile.close()
            self._lockfile = None
            raise DisclosureError(Finding("workdir-in-use", params={"folder": str(self.root)})) from None
        self._thread = threading.Thread(target=self._loop, name="disclosure-xlsx-jobs", daemon=True)
        self._thread.start()
        if self.years():  # what a page of results needs (~0.1 s), loaded while the server starts
            threading.Thread(target=_warm_up, name="disclosure-xlsx-imports", daemon=True).start()
        for year in self.years():
            for record in self.batches(year):
                if record["state"] in ("queued", "running"):  # the server stopped before it was done
                    self._enqueue(Job(record["id"], year, record["kind"], batch=record["id"]))
        return self

    def close(self) -> None:
        """Stop taking jobs; a job under way is left to finish (or is resumed at the next start)."""
        self._queue.put(None)
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None

    def __enter__(self) -> Workspace:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders ---------------------------------------------------------------------------------

    def year_dir(self, year: int) -> Path:
        return self.root / text("web.dirs.year", year=year)

    def results_dir(self, year: int) -> Path:
        return self.year_dir(year) / text("web.dirs.results")

    def acceptance_file(self, year: int) -> Path:
        return self.year_dir(year) / text("web.dirs.accepted")

    def total_dir(self, year: int) -> Path:
        return self.year_dir(year) / text("web.dirs.total")

    def _batches_dir(self, year: int) -> Path:
        return self.year_dir(year) / text("web.dirs.batches")

    def _record_path(self, year: int, number: int) -> Path:
        return self._batches_dir(year) / f"{text('web.dirs.batch', n=number)}.json"

    def years(self) -> list[int]:
        """The years that have a folder, newest first."""
        pattern = re.compile(re.escape(text("web.dirs.year", year="{y}")).replace(re.escape("{y}"), r"(\d{4})"))
        found = [pattern.fullmatch(p.name) for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []
        return sorted({int(m.group(1)) for m in found if m}, reverse=True)

    # -- settings --------------------------------------------------------------------------------

    def settings(self, year: int) -> dict[str, Any]:
        """What the page remembers for a year: the roster in use, the county's name, the reviewer."""
        return _load(self.year_dir(year) / text("web.dirs.settings")) or {}

    def remember(self, year: int, **values: Any) -> None:
        with self._lock:
            settings = {**self.settings(year), **values}
            _dump(self.year_dir(year) / text("web.dirs.settings"), settings)

    # -- batches ---------------------------------------------------------------------------------

    def batches(self, year: int) -> list[dict[str, Any]]:
        """The year's batch records, oldest first."""
        folder = self._batches_dir(year)
        pattern = re.compile(re.escape(text("web.dirs.batch", n="{n}")).replace(re.escape("{n}"), r"(\d+)") + r"\.json")
        numbers = sorted(int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else [])
                         if (m := pattern.fullmatch(p.name)))
        return [r for n in numbers if (r := _load(self._record_path(year, n))) is not None]

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        """A batch record by its id ("2024-3"), with the live state of its job when it runs now."""
        match = re.fullmatch(r"(\d{4})-(\d{1,6})", batch_id)
        if not match:
            return None
        record = _load(self._record_path(int(match.group(1)), int(match.group(2))))
        job = self._jobs.get(batch_id)
        if record is not None and job is not None and job.state == "running":
            record = {**record, "state": job.state, "stage": job.stage, "done": job.done, "total": job.total}
        return record

    def batch_report(self, batch_id: str) -> Path | None:
        record = self.batch(batch_id)
        if record is None or record.get("state") != "done":
            return None
        path = self._batches_dir(record["year"]) / record["report"]
        return path if path.is_file() else None

    def year_report(self, year: int) -> dict[str, Any] | None:
        """The year's current report (校验结果/report.json), or None before the first batch is done."""
        return _load(self.results_dir(year) / REPORT)

    def store_uploads(self, year: int, uploads: Sequence[tuple[str, IO[bytes]]], *, kind: str = "upload") -> Job:
        """Keep the files sent (workbooks, or .zip files of them) as a new batch of `year`, and queue it.

        Raises:
            DisclosureError: `upload-refused` (uploads.py); nothing is stored then.
        """
        return self._new_batch(year, kind, take_uploads(uploads), source=None)

    def store_folder(self, year: int, folder: str) -> Job:
        """Copy the workbooks of a folder on this machine into a new batch of `year`, and queue it; the
        folder is only read, and the working folder is never searched.

        Raises:
            DisclosureError: `upload-refused` (uploads.py); nothing is stored then.
        """
        return self._new_batch(year, "folder", take_folder(folder, exclude=[self.root]), source=folder)

    def _new_batch(self, year: int, kind: str, intake: Intake, source: str | None) -> Job:
        with self._lock:
            number = max((r["number"] for r in self.batches(year)), default=0) + 1
            batch_id = f"{year}-{number}"
            label = text("web.dirs.batch", n=number)
            folder = self.year_dir(year) / text("web.dirs.uploads") / label
            folder.mkdir(parents=True, exist_ok=False)
            used: set[str] = set()
            files = []
            for item in intake.files:
                stored = folder / unique_name(item.name, used)
                with atomic_output(stored) as tmp:
                    tmp.write_bytes(item.data)
                files.append({"name": item.origin, "stored": stored.relative_to(self.year_dir(year)).as_posix(),
                              "size": len(item.data), "sha256": hashlib.sha256(item.data).hexdigest()})
            record = {"id": batch_id, "year": year, "number": number, "kind": kind, "created": _now(),
                      "source": source, "files": files, "skipped": intake.skipped, "state": "queued", "error": None,
                      "round": None, "offices": [], "summary": None, "notes": [], "report": f"{label}.report.json"}
            _dump(self._record_path(year, number), record)
        return self._enqueue(Job(batch_id, year, kind, batch=batch_id))

    def _update(self, year: int, batch_id: str, **values: Any) -> None:
        number = int(batch_id.split("-")[1])
        with self._lock:
            record = _load(self._record_path(year, number)) or {}
            _dump(self._record_path(year, number), {**record, **values})

    def current_files(self, year: int, *, including: str | None = None) -> list[Path]:
        """The year's current workbooks: the latest submission of each office, over every done batch
        (and the batch `including`, whose outputs are being written)."""
        chosen: list[dict[str, Any]] = []
        for record in self.batches(year):
            if record["state"] != "done" and record["id"] != including:
                continue
            new = record.get("offices") or []
            chosen = [old for old in chosen if not any(_same_office(old, n, year) for n in new)] + list(new)
        return [self.year_dir(year) / entry["stored"] for entry in chosen
                if (self.year_dir(year) / entry["stored"]).is_file()]

    # -- jobs ------------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def running(self, year: int) -> Job | None:
        """The job of `year` that is queued or running now, if any (the page shows its progress)."""
        return next((j for j in reversed(list(self._jobs.values()))
                     if j.year == year and j.state in ("queued", "running")), None)

    def submit(self, year: int, kind: str, **params: Any) -> Job:
        """Queue a job without new files: recheck (validate the current workbooks again), accept (record an
        acceptance, then recheck) or aggregate (add up the current workbooks)."""
        with self._lock:
            self._counter += 1
            job = Job(f"{year}-{kind}{self._counter}", year, kind, params=params)
        return self._enqueue(job)

    def _enqueue(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
        self._queue.put(job)
        return job

    def _loop(self) -> None:
        while (job := self._queue.get()) is not None:
            job.state = "running"
            try:
                job.error = {"recheck": self._recheck, "accept": self._accept, "aggregate": self._aggregate}.get(
                    job.kind, self._validate_batch)(job)
            except DisclosureError as exc:
                job.error = {lang: exc.finding.message(lang) for lang in ("zh", "en")}
            except Exception as exc:  # a defect must not stop the thread; the job and its batch say what happened
                job.error = _words("web.job_failed", detail=f"{type(exc).__name__}: {str(exc)[:200]}")
            job.state = "failed" if job.error else "done"
            if job.batch is not None and job.state == "failed":
                self._update(job.year, job.batch, state="failed", error=job.error)

    def wait(self, job: Job, timeout: float | None = None) -> Job:
        """Block until `job` is done or failed (for tests and the synchronous API)."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while job.state in ("queued", "running") and (end is None or time.monotonic() < end):
            time.sleep(0.05)
        return job

    # -- what the jobs do ------------------------------------------------------------------------

    def _validate(self, files: Sequence[Path], job: Job, stage: str) -> BatchResult:
        from .pipeline import validate_paths

        batch = validate_paths(files, workers=self.workers, progress=job.progress(stage), year=job.year)
        self._review(batch, job)
        return batch

    def _review(self, batch: BatchResult, job: Job) -> None:
        """The year's acceptance file applied to the batch (its notices go into report.json); a file that
        cannot be used is a note of the job, not a stop."""
        path = self.acceptance_file(job.year)
        if not path.exists():
            return
        from .accept import apply_acceptances, read_acceptances

        try:
            apply_acceptances(batch, read_acceptances(path))
        except DisclosureError as exc:
            note = {lang: exc.finding.message(lang) for lang in ("zh", "en")}
            if note not in job.notes:
                job.notes.append(note)

    def _write(self, batch: BatchResult, job: Job) -> None:
        from .feedback import write_outputs

        with self.writing:
            write_outputs(batch, self.results_dir(job.year), workers=self.workers, progress=job.progress("writing"))
        info = batch.review.get("round")
        job.round = info.number if info is not None else None

    def _validate_batch(self, job: Job) -> dict[str, str] | None:
        """A batch: its own files validated (its report), then the year's current workbooks, which it
        joins, written as the year's next round."""
        assert job.batch is not None
        record = self.batch(job.batch) or {}
        mine = [self.year_dir(job.year) / f["stored"] for f in record.get("files", [])]
        self._update(job.year, job.batch, state="running")
        batch = self._validate(mine, job, "reading")
        report = batch.to_dict()
        with atomic_output(self._batches_dir(job.year) / record["report"]) as tmp:
            tmp.write_text(json.dumps(report, ensure_ascii=False, indent=1), "utf-8")
        offices = [{"stored": f["stored"], "office": w["office"], "credit_code": w["credit_code"], "year": w["year"],
                    "name": base_name(f["name"]), "status": w["status"]}
                   for f, w in zip(record["files"], report["workbooks"], strict=True)]
        self._update(job.year, job.batch, offices=offices, summary=report["summary"])
        current = self.current_files(job.year, including=job.batch)
        # a year that holds other offices too is validated as a whole, the new files replacing their earlier ones
        year = batch if sorted(current) == sorted(mine) else self._validate(current, job, "reading_year")
        self._write(year, job)
        self._update(job.year, job.batch, state="done", round=job.round, notes=job.notes)
        return None

    def _recheck(self, job: Job) -> dict[str, str] | None:
        files = self.current_files(job.year)
        if not files:
            return _words("web.nothing.no_files")
        self._write(self._validate(files, job, "reading_year"), job)
        return None

    def _accept(self, job: Job) -> dict[str, str] | None:
        """Record the county's acceptance of one warning of the current workbooks, then write the year's
        outputs again with it (the same data: the round is repeated, not a new one)."""
        from .accept import accept_in_batch, add_acceptances, is_accepted, rule_key

        p = job.params
        batch = self._validate(self.current_files(job.year), job, "reading_year")
        workbook = next((w for w in batch.workbooks if w.file == p["file"]), None)
        finding = next((f for f in (workbook.findings if workbook else [])
                        if (f.code, f.rule, f.cells[0].id if f.cells else None) == (p["code"], p["rule"], p["cell"])
                        and f.severity == "warning" and not is_accepted(f)), None)
        if workbook is None or workbook.report is None or finding is None:
            return _words("web.nothing.no_warning")
        report = workbook.report
        entries = accept_in_batch(batch, rule=rule_key(finding), cell=finding.cells[0].id if finding.cells else None,
                                  reason=p["reason"], by=p["by"], office=report.office, credit_code=report.credit_code,
                                  year=report.year, until=p.get("until"))
        add_acceptances(self.acceptance_file(job.year), entries)
        self.remember(job.year, by=p["by"])
        self._review(batch, job)
        self._write(batch, job)
        return None

    def _aggregate(self, job: Job) -> dict[str, str] | None:
        """Add up the current workbooks into the year's total (汇总/), with the roster in use."""
        from .accept import read_acceptances
        from .aggregate import aggregate_paths, provenance
        from .feedback import safe_name

        office, year = job.params["office"], job.year
        self.remember(year, office=office)
        files = self.current_files(year)
        if not files:
            return _words("web.nothing.no_files")
        roster = self.settings(year).get("roster")
        accepted = self.acceptance_file(year)
        output = self.total_dir(year) / text("web.total_file", office=safe_name(office), year=year)
        outcome: dict[str, Any] = {"office": office, "year": year, "created": _now(), "file": output.name}
        try:
            result = aggregate_paths(files, output, office=office, year=year,
                                     roster=self.year_dir(year) / roster if roster else None, workers=self.workers,
                                     progress=job.progress("totalling"),
                                     accepted=read_acceptances(accepted) if accepted.exists() else None)
        except DisclosureError as exc:
            outcome["refused"] = exc.finding.to_dict()
            _dump(self.total_dir(year) / text("web.dirs.total_record"), outcome)
            raise
        outcome["result"] = result.to_dict()
        outcome["lists"] = {lang: provenance(result, lang) for lang in ("zh", "en")}
        _dump(self.total_dir(year) / text("web.dirs.total_record"), outcome)
        return None

    def total(self, year: int) -> dict[str, Any] | None:
        """What the last roll-up of `year` added up (or why it was refused)."""
        return _load(self.total_dir(year) / text("web.dirs.total_record"))

    # -- rosters ---------------------------------------------------------------------------------

    def store_roster(self, year: int, name: str, stream: IO[bytes]) -> Any:
        """Keep an uploaded roster under 名单/ and use it from now on for `year` (templates, the roll-up).

        Raises:
            DisclosureError: the roster cannot be used (`roster-invalid`, `roster-lines-invalid`); it is
                kept on disk but not used.
        """
        from .roster import read_roster

        data = stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise refused("too_large", name, limit=mib(MAX_FILE_BYTES))
        folder = self.year_dir(year) / text("web.dirs.rosters")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / unique_name(name, {p.name.lower() for p in folder.iterdir()})
        with atomic_output(target) as tmp:
            tmp.write_bytes(data)
        roster = read_roster(target)
        self.remember(year, roster=target.relative_to(self.year_dir(year)).as_posix())
        return roster

    def roster(self, year: int) -> Any:
        """The roster in use for `year`, or None."""
        from .roster import read_roster

        name = self.settings(year).get("roster")
        if not name:
            return None
        try:
            return read_roster(self.year_dir(year) / name)
        except DisclosureError:
            return None

    # -- downloads -------------------------------------------------------------------------------

    def feedback_zip(self, year: int, folder: str | None = None) -> bytes | None:
        """One office's feedback folder (by its name under feedback/), or all of them, as a zip."""
        root = self.results_dir(year) / text("feedback.feedback_dir")
        with self.writing:
            if not root.is_dir():
                return None
            names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if folder is not None:
                if folder not in names:  # only a folder the listing gives: no path from the request is opened
                    return None
                names = [folder]
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for name in names:
                    for path in sorted((root / name).iterdir()):
                        if path.is_file():
                            archive.write(path, f"{name}/{path.name}")
            return buffer.getvalue()


def _same_office(old: dict[str, Any], new: dict[str, Any], year: int) -> bool:
    """Whether a newer submission replaces an older one: the same office (normalised name) and year, unless
    both have credit codes that differ or both years are known and differ (but a newer one of the page's
    `year` replaces the office's file of another year: last year's report sent by mistake, then the right
    one); a side without an office name (an unreadable file) is known by its file name. When in doubt both
    stay (and show as two workbooks)."""
    from .accept import code_key, office_key

    offices = office_key(old.get("office")), office_key(new.get("office"))
    if not all(offices):
        return not any(offices) and str(old.get("name", "")).casefold() == str(new.get("name", "")).casefold()
    codes = code_key(old.get("credit_code")), code_key(new.get("credit_code"))
    years = old.get("year"), new.get("year")
    return (offices[0] == offices[1] and not (all(codes) and codes[0] != codes[1])
            and not (all(years) and years[0] != years[1] and years[1] != year))


def _warm_up() -> None:
    import importlib

    importlib.import_module(f"{__package__}.rounds")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _dump(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), "utf-8")
