"""Run a function over many jobs in worker processes, so that one job can only ever cost its own result.

A reader or writer library may abort the process (python-calamine does, asked for 512 GiB), exhaust memory,
be killed, or never return. `run_isolated` runs every job in a pebble process pool (forked once per call,
workers replaced when one dies), with a timeout per job and a memory limit per worker, and yields one
`Outcome` per job in job order: the value, or what became of the job ("crashed", "memory", "timeout",
"error"). Nothing a job does can stop the others.

Every job runs in a child, even with one worker: no look at a file beforehand can prove that a reader
will not abort on it, and a child costs one fork per call. A job's own trip through the pool costs about
as much CPU as reading a small workbook (measured over 5,000: ~0.4 ms in the parent, ~0.8 ms in the
worker), so a large run sends its jobs in chunks of up to 16; a chunk that does not come back whole (a job
in it hung, crashed or ran out of memory) is run again one job at a time, so that what became of each job
is still its own.
"""

from __future__ import annotations

import collections
import faulthandler
import multiprocessing
import os
import re
import resource
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pebble import ProcessExpired, ProcessPool

from .limits import FILE_TIMEOUT_SECONDS, WORKER_MEMORY_BYTES

__all__ = ["Outcome", "run_isolated"]

J = TypeVar("J")
R = TypeVar("R")
_IN_FLIGHT_PER_WORKER = 64  # jobs handed to the pool ahead of the one being waited for
_CHUNK = 16  # jobs sent to a worker at once, at most
_CHUNKS_PER_WORKER = 8  # a run is cut into at least this many chunks a worker, so that none waits at the end
# A chunk may run its first job's timeout and this share of it for each further job (30 s: 5 s more a job,
# 105 s for 16): slow files (a long PDF) are not stopped for being together; a hang costs that, then 30 s.
_CHUNK_SHARE = 1 / 6
_POLL_SECONDS = 1.0  # how often a wait checks that the pool is still alive
_ALLOCATION = re.compile(r"memory allocation of (\d+) bytes failed")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    """What became of one job: its value, or why there is none.

    failure: None (done), "crashed" (the worker died: a signal or an abort), "memory" (it ran out of
    memory: MemoryError, a failed allocation, or killed by the kernel), "timeout" (stopped after the
    timeout), "error" (the function raised).
    detail: for a failure, a few words a developer can use (the signal, the worker's last error line, the
    exception); never the job's data.
    """

    index: int
    value: R | None = None
    failure: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None


def run_isolated(func: Callable[[J], R], jobs: Sequence[J], *, workers: int | None = None,
                 timeout: float | None = FILE_TIMEOUT_SECONDS, memory_limit: int | None = WORKER_MEMORY_BYTES,
                 on_done: Callable[[int, int], None] | None = None,
                 on_started: Callable[[], None] | None = None, chunk: int | None = None) -> Iterator[Outcome[R]]:
    """`func(job)` for every job, each in a worker process; one Outcome per job, in job order.

    Args:
        func: a module-level function (it is sent to the workers by reference); it may raise.
        jobs: its arguments, one per call; sent to the workers, so they must pickle (paths, tuples).
        workers: processes (default: all cores); at least one, even for one job.
        timeout: seconds one job may run before its worker is stopped (None: no limit); a chunk of n
            jobs may run `timeout × (1 + (n − 1) / 6)`, and the jobs of a chunk stopped are then run one
            at a time, each with `timeout`.
        memory_limit: bytes of address space a worker may add to what it has when it starts
            (RLIMIT_AS; None: no limit).
        on_done: called with (done, total) as each outcome is yielded.
        on_started: called once the workers exist (forked with the first job), before any outcome: work
            the caller does meanwhile (an import) is no longer inherited by them.
        chunk: jobs sent to a worker at once (default: up to 16, fewer for a small run).
    """
    total = len(jobs)
    if not total:
        return
    workers = max(1, min(workers or os.cpu_count() or 1, total))
    chunk = max(1, chunk or min(_CHUNK, total // (workers * _CHUNKS_PER_WORKER)))
    window = workers * _IN_FLIGHT_PER_WORKER
    # ignore_cleanup_errors: the folder is removed in the `finally` (`_remove`); never a reason to fail
    with tempfile.TemporaryDirectory(prefix="disclosure-workers-", ignore_cleanup_errors=True) as errors:
        pool = _Pool(workers, memory_limit, errors)
        pending: collections.deque[_Job] = collections.deque()
        submitted = finished = 0
        try:
            while finished < total:
                while submitted < total and submitted - finished < window:
                    part = tuple(jobs[submitted:submitted + chunk])
                    pending.append(pool.submit(func, submitted, part, timeout))
                    submitted += len(part)
                    if submitted == len(part) and on_started:
                        on_started()
                for outcome in pool.outcomes(pending, func, timeout):
                    finished += 1
                    if on_done:
                        on_done(finished, total)
                    yield outcome
        finally:  # interrupted mid-way (Ctrl-C, an error): wait until no worker can still write a file
            pool.close(wait=finished < total or pool.replaced)
            _remove(errors, attempts=workers + 1)


def _remove(folder: str, attempts: int = 1) -> None:
    """Remove the workers' folder, never failing the run for it. A worker forked with the pool but not yet
    started when the run ends (the others did every job) creates its file there as the folder is being
    removed, and the removal then fails ("Directory not empty"): it is tried again, once more than there
    are workers. A worker starting after that finds no folder and writes nowhere; the pool's join in the
    background removes the folder once more when every worker has ended (`_Pool.close`)."""
    for _ in range(attempts):
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            return
        except OSError:
            continue
        return


@dataclass
class _Job:
    """Jobs sent to the pool together: the first one's index, the jobs, and what the pool gave back."""

    index: int
    jobs: tuple[Any, ...]
    future: Any  # pebble's ProcessFuture, or None when it could not be scheduled (or is held back)
    attempts: int = 1
    alone: bool = False  # run with nothing else in the pool, to tell whether it is what breaks pools


@dataclass(frozen=True, slots=True)
class _Done:
    """What one job of a chunk gave in the worker: its value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


def _run_chunk(func: Callable[[Any], Any], jobs: tuple[Any, ...]) -> list[_Done]:
    """In a worker: `func(job)` for each job of a chunk; an exception is its own job's outcome only."""
    done = []
    for job in jobs:
        try:
            done.append(_Done(value=func(job)))
        except Exception as exc:  # noqa: BLE001 - MemoryError included: the job's outcome, not the chunk's
            done.append(_Done(error=exc))
    return done


class _Pool:
    """A pebble pool, replaced when it breaks (pebble gives up on a pool when a worker dies before any job
    was known to run on it, or a result cannot be unpickled here). Every job a broken pool did not finish
    is sent again; a job caught in two broken pools is then run alone, and counts as crashed only if it
    breaks a pool alone too: a job that was merely in flight beside the one breaking pools is not blamed."""

    def __init__(self, workers: int, memory_limit: int | None, errors: str) -> None:
        self.workers, self.memory_limit, self.errors = workers, memory_limit, errors
        self.pool = self._start()
        # A worker died or a pool was replaced: a new worker may be starting (and creating its file in
        # `errors`) when the run ends, so the run then waits for the workers before removing the folder.
        self.replaced = False

    def _start(self) -> ProcessPool:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        return ProcessPool(self.workers, initializer=_init_worker, initargs=(self.memory_limit, self.errors),
                           context=context)

    def submit(self, func: Callable[[Any], Any], index: int, jobs: tuple[Any, ...], timeout: float | None,
               attempts: int = 1, alone: bool = False) -> _Job:
        try:
            if len(jobs) == 1:
                future = self.pool.schedule(func, jobs, timeout=timeout)
            else:
                allowed = timeout * (1 + (len(jobs) - 1) * _CHUNK_SHARE) if timeout is not None else None
                future = self.pool.schedule(_run_chunk, (func, jobs), timeout=allowed)
        except RuntimeError:  # the pool broke: `outcomes` replaces it when it comes to these jobs
            future = None
        return _Job(index, jobs, future, attempts, alone)

    def outcomes(self, pending: collections.deque[_Job], func: Callable[[Any], Any],
                 timeout: float | None) -> list[Outcome[Any]]:
        """The outcomes of the first pending jobs (waiting for them), replacing the pool if it broke; a
        chunk that did not come back whole is put back as its jobs one by one."""
        while True:
            head = pending[0]
            future = head.future
            if future is not None and not future.done():
                try:
                    future.exception(timeout=_POLL_SECONDS)
                except FutureTimeout:  # still running (its own timeout is pebble's); is the pool alive?
                    if self.pool.active:
                        continue
            if _broken(future):
                if head.attempts < 2:
                    self._restart(pending, func, timeout)
                elif len(head.jobs) > 1:
                    self._one_by_one(pending, func, timeout)
                elif not head.alone:
                    self._quarantine(pending, func, timeout)
                else:  # it broke a pool with nothing beside it
                    pending.popleft()
                    self._resume(pending, func, timeout)
                    return [Outcome(head.index, failure="crashed", detail="the worker pool broke twice")]
                continue
            error = future.exception()
            if len(head.jobs) > 1 and error is not None:  # a job of the chunk hung, crashed or did not travel
                self._one_by_one(pending, func, timeout)
                continue
            pending.popleft()
            if head.alone:
                self._resume(pending, func, timeout)
            if len(head.jobs) == 1:
                return [Outcome(head.index, value=future.result()) if error is None
                        else self._failed(head.index, error, timeout)]
            return [Outcome(head.index + k, value=done.value) if done.error is None
                    else self._failed(head.index + k, done.error, timeout) for k, done in enumerate(future.result())]

    def _one_by_one(self, pending: collections.deque[_Job], func: Callable[[Any], Any], timeout: float | None) -> None:
        """The first pending chunk replaced by its jobs, each sent on its own."""
        self.replaced = True
        head = pending.popleft()
        for k in reversed(range(len(head.jobs))):
            pending.appendleft(self.submit(func, head.index + k, (head.jobs[k],), timeout))

    def _failed(self, index: int, error: BaseException, timeout: float | None) -> Outcome[Any]:
        if isinstance(error, FutureTimeout | ProcessExpired):  # its worker was stopped or died: pebble starts another
            self.replaced = True
        if isinstance(error, FutureTimeout):
            return Outcome(index, failure="timeout", detail=f"over {timeout} s")
        if isinstance(error, ProcessExpired):
            return self._expired(index, error)
        if isinstance(error, MemoryError):
            return Outcome(index, failure="memory", detail=_short(error))
        return Outcome(index, failure="error", detail=_short(error))  # the function raised

    def _expired(self, index: int, exc: ProcessExpired) -> Outcome[Any]:
        code = exc.exitcode or 0
        last = _last_line(Path(self.errors) / f"{exc.pid}.err") if exc.pid else ""
        allocation = _ALLOCATION.search(last)
        if allocation:
            return Outcome(index, failure="memory", detail=f"allocation of {int(allocation.group(1))} bytes failed")
        if code == -signal.SIGKILL:  # the kernel's out-of-memory killer sends SIGKILL
            return Outcome(index, failure="memory", detail="killed (SIGKILL)")
        cause = f"signal {-code} ({signal.Signals(-code).name})" if -code in _SIGNALS else f"exit {code}"
        return Outcome(index, failure="crashed", detail=f"{cause}: {last}" if last else cause)

    def _restart(self, pending: collections.deque[_Job], func: Callable[[Any], Any], timeout: float | None) -> None:
        """A new pool; every job the old one did not finish is handed to it again."""
        self.replaced = True
        old, self.pool = self.pool, self._start()
        _stop(old)
        for i, item in enumerate(pending):
            if _broken(item.future):
                pending[i] = self.submit(func, item.index, item.jobs, timeout, item.attempts + 1)

    def _quarantine(self, pending: collections.deque[_Job], func: Callable[[Any], Any], timeout: float | None) -> None:
        """A new pool running the first pending job alone; the other unfinished jobs wait, blamed for
        nothing (`_resume` sends them once it is done)."""
        self.replaced = True
        old, self.pool = self.pool, self._start()
        _stop(old)
        head = pending[0]
        pending[0] = self.submit(func, head.index, head.jobs, timeout, head.attempts, alone=True)
        for i in range(1, len(pending)):
            if _broken(pending[i].future):
                pending[i] = _Job(pending[i].index, pending[i].jobs, None)

    def _resume(self, pending: collections.deque[_Job], func: Callable[[Any], Any], timeout: float | None) -> None:
        """The jobs held back while one ran alone, sent to the pool."""
        for i, item in enumerate(pending):
            if item.future is None:
                pending[i] = self.submit(func, item.index, item.jobs, timeout, item.attempts)

    def close(self, wait: bool = False) -> None:
        _stop(self.pool, wait, then=lambda: _remove(self.errors))


_SIGNALS = {s.value for s in signal.Signals}


def _broken(future: Any) -> bool:
    """Whether a job's future will not give its outcome: not scheduled (or held back), not finished by a
    pool that is being replaced, or lost with a broken pool."""
    return future is None or not future.done() or isinstance(future.exception(), BrokenProcessPool)


def _stop(pool: ProcessPool, wait: bool = False, then: Callable[[], None] | None = None) -> None:
    """Stop the workers, then call `then` once every worker has ended. With `wait`, return only then (a
    job cut short may still be writing into a staging folder its caller is about to remove); otherwise the
    join (pebble polls every 0.1 s) goes on in the background: idle workers have nothing left to write."""
    def join() -> None:
        pool.join()
        if then is not None:
            then()

    pool.stop()
    if wait:
        join()
    else:
        threading.Thread(target=join, daemon=True).start()


def _init_worker(memory_limit: int | None, errors: str) -> None:
    """In each worker, before any job: the memory limit, and standard error into a file of its own (a
    library's panic message or abort note is kept for the outcome instead of reaching the user's screen)."""
    faulthandler.disable()  # a crash is reported as the job's outcome, not dumped on the user's screen
    try:
        os.environ["RUST_BACKTRACE"] = "0"
        fd = os.open(os.path.join(errors, f"{os.getpid()}.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass
    start = _address_space()
    if memory_limit is not None and start is not None:
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = start + memory_limit if hard == resource.RLIM_INFINITY else min(start + memory_limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        except (OSError, ValueError):
            pass  # not lowerable here: the timeout and the pool still isolate each job


def _address_space() -> int | None:
    """This process's virtual memory now (a forked worker starts with its parent's); None where unknown."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as stream:
            stream.seek(max(0, os.fstat(stream.fileno()).st_size - 4096))
            lines = [line.strip() for line in stream.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line and not line.startswith("note: run with")]
    return lines[-1][:200] if lines else ""


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
