"""Run a function over many jobs in worker processes, so that one job can only ever cost its own result.

A reader or writer library may abort the process (python-calamine does, asked for 512 GiB), exhaust memory,
be killed, or never return. `run_isolated` runs every job in a pebble process pool (forked once per call,
workers replaced when one dies), with a timeout per job and a memory limit per worker, and yields one
`Outcome` per job in job order: the value, or what became of the job ("crashed", "memory", "timeout",
"error"). Nothing a job does can stop the others.

Every job runs in a child, even with one worker: no look at a file beforehand can prove that a reader
will not abort on it, and a child costs one fork per call and ~0.1 ms per job.
"""

from __future__ import annotations

import collections
import faulthandler
import multiprocessing
import os
import re
import resource
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
                 on_started: Callable[[], None] | None = None) -> Iterator[Outcome[R]]:
    """`func(job)` for every job, each in a worker process; one Outcome per job, in job order.

    Args:
        func: a module-level function (it is sent to the workers by reference); it may raise.
        jobs: its arguments, one per call; sent to the workers, so they must pickle (paths, tuples).
        workers: processes (default: all cores); at least one, even for one job.
        timeout: seconds one job may run before its worker is stopped (None: no limit).
        memory_limit: bytes of address space a worker may add to what it has when it starts
            (RLIMIT_AS; None: no limit).
        on_done: called with (done, total) as each outcome is yielded.
        on_started: called once the workers exist (forked with the first job), before any outcome: work
            the caller does meanwhile (an import) is no longer inherited by them.
    """
    total = len(jobs)
    if not total:
        return
    workers = max(1, min(workers or os.cpu_count() or 1, total))
    window = workers * _IN_FLIGHT_PER_WORKER
    with tempfile.TemporaryDirectory(prefix="disclosure-workers-") as errors:
        pool = _Pool(workers, memory_limit, errors)
        pending: collections.deque[_Job] = collections.deque()
        submitted = finished = 0
        try:
            for done in range(1, total + 1):
                while submitted < total and len(pending) < window:
                    pending.append(pool.submit(func, submitted, jobs[submitted], timeout))
                    submitted += 1
                    if submitted == 1 and on_started:
                        on_started()
                outcome = pool.outcome(pending, func, timeout)
                finished = done
                if on_done:
                    on_done(done, total)
                yield outcome
        finally:  # interrupted mid-way (Ctrl-C, an error): wait until no worker can still write a file
            pool.close(wait=finished < total)


@dataclass
class _Job:
    index: int
    job: Any
    future: Any  # pebble's ProcessFuture, or None when it could not be scheduled
    attempts: int = 1


class _Pool:
    """A pebble pool, replaced when it breaks (pebble gives up on a pool when a worker dies before any job
    was known to run on it); a job caught in two broken pools counts as crashed."""

    def __init__(self, workers: int, memory_limit: int | None, errors: str) -> None:
        self.workers, self.memory_limit, self.errors = workers, memory_limit, errors
        self.pool = self._start()

    def _start(self) -> ProcessPool:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        return ProcessPool(self.workers, initializer=_init_worker, initargs=(self.memory_limit, self.errors),
                           context=context)

    def submit(self, func: Callable[[Any], Any], index: int, job: Any, timeout: float | None,
               attempts: int = 1) -> _Job:
        try:
            future = self.pool.schedule(func, (job,), timeout=timeout)
        except RuntimeError:  # the pool broke: `outcome` replaces it when it comes to this job
            future = None
        return _Job(index, job, future, attempts)

    def outcome(self, pending: collections.deque[_Job], func: Callable[[Any], Any],
                timeout: float | None) -> Outcome[Any]:
        """The outcome of the first pending job (waiting for it), replacing the pool if it broke."""
        while True:
            head = pending[0]
            future = head.future
            if future is not None and not future.done():
                try:
                    future.exception(timeout=_POLL_SECONDS)
                except FutureTimeout:  # still running (its own timeout is pebble's); is the pool alive?
                    if self.pool.active:
                        continue
            if future is None or not future.done() or isinstance(future.exception(), BrokenProcessPool):
                if head.attempts >= 2:
                    pending.popleft()
                    return Outcome(head.index, failure="crashed", detail="the worker pool broke twice")
                self._restart(pending, func, timeout)
                continue
            pending.popleft()
            error = future.exception()
            return Outcome(head.index, value=future.result()) if error is None else self._failed(head.index, error,
                                                                                                  timeout)

    def _failed(self, index: int, error: BaseException, timeout: float | None) -> Outcome[Any]:
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
        old, self.pool = self.pool, self._start()
        _stop(old)
        for i, item in enumerate(pending):
            future = item.future
            if future is None or not future.done() or isinstance(future.exception(), BrokenProcessPool):
                pending[i] = self.submit(func, item.index, item.job, timeout, item.attempts + 1)

    def close(self, wait: bool = False) -> None:
        _stop(self.pool, wait)


_SIGNALS = {s.value for s in signal.Signals}


def _stop(pool: ProcessPool, wait: bool = False) -> None:
    """Stop the workers. With `wait`, return once every worker has ended (a job cut short may still be
    writing into a staging folder its caller is about to remove); otherwise the join (pebble polls every
    0.1 s) goes on in the background: idle workers have nothing left to write."""
    pool.stop()
    if wait:
        pool.join()
    else:
        threading.Thread(target=pool.join, daemon=True).start()


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
