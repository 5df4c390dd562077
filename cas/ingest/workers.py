"""Worker processes leave as soon as the process they work for is gone.

A pool's workers are children of the forkserver, not of the importing process, so nothing
stops them when that process is SIGKILLed: they would finish their chunk, and a chunk of
big files takes a while. A thread in each worker waits on a pidfd of the client, which
becomes readable the moment the client dies (a zombie its parent has not reaped counts
as dead, unlike for `kill(pid, 0)`).
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # multiprocessing loads only when an import is large enough for worker processes
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.context import BaseContext

T = TypeVar("T")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # only it may set signal handlers


def forkserver(preload: list[str]) -> BaseContext:
    """The forkserver context for worker pools, its server started with Ctrl-C ignored: a
    process started with SIGINT ignored keeps it so, and so does every worker forked from
    it. Ctrl-C reaches the whole process group; the client alone answers it, with one line
    (not a KeyboardInterrupt traceback from each worker)."""
    import multiprocessing
    import multiprocessing.forkserver
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    if _in_main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
    return context


class SafePoints:
    """Ctrl-C during long work: noted by a handler and raised as KeyboardInterrupt at the
    next `check()`, a point where nothing is half done. Raised wherever the main thread
    happens to be, it can land inside the bookkeeping of a process pool or in an import
    whose lock the worker threads then wait on forever. A second Ctrl-C raises at once.
    Only in the main thread, and only where Ctrl-C is not ignored."""

    def __init__(self) -> None:
        self.pending = False
        self._waiting = False
        self._previous: Any = None

    def __enter__(self) -> SafePoints:
        if _in_main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, _signum: int, _frame: Any) -> None:
        if self.pending or self._waiting:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    def result(self, future: Future[T]) -> T:
        """`future`'s result, waited for with Ctrl-C raising at once (waiting on a future is
        a safe point: a chunk of big files can take seconds)."""
        self.check()
        self._waiting = True
        try:
            return future.result()
        finally:
            self._waiting = False

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """End a process pool now, its workers terminated rather than asked: after a Ctrl-C in
    the middle of the pool's own bookkeeping, a worker may never get its stop request, and
    `shutdown(wait=True)` (at exit too) would wait for it forever. The workers hold nothing
    that a kill loses: an import survives SIGKILL by design."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def stopped_on_error(pool: ProcessPoolExecutor) -> Iterator[ProcessPoolExecutor]:
    """`pool`, shut down normally on success and with `stop_pool` on any exception."""
    try:
        yield pool
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def exit_with(pid: int) -> None:
    """In a worker: end this process when process `pid` ends."""
    threading.Thread(target=_watch, args=(pid,), name="cas-exit-with", daemon=True).start()


def _watch(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except OSError:  # no pidfd (kernel < 5.3): look every 0.2 s
        while alive(pid):
            time.sleep(0.2)
        os._exit(1)
    select.select([fd], [], [])
    os._exit(1)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not: it has exited, only its parent has not
    reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
