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
import threading
import time


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
