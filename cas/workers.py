"""Worker processes leave as soon as the process they work for is gone.

A pool's workers are children of the forkserver, not of the importing process, so nothing
stops them when that process is SIGKILLed: they would finish their chunk, and a chunk of
big files takes a while. A thread in each worker waits on a pidfd of the client, which
becomes readable the moment the client dies (a zombie its parent has not reaped counts
as dead, unlike for `kill(pid, 0)`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import BaseContext


def forkserver(preload: list[str]) -> BaseContext:
    """The forkserver context for worker pools, its server started with Ctrl-C ignored: a
    process started with SIGINT ignored keeps it so, and so does every worker forked from
    it. Ctrl-C reaches the whole process group; the client alone answers it, with one line
    (not a KeyboardInterrupt traceback from each worker)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    if threading.current_thread() is threading.main_thread():  # only it may set handlers
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
    return context


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C back while a pool may be starting workers (an interrupt in mid-handshake
    leaves a half-started worker printing tracebacks); it is raised right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


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
