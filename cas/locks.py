"""Advisory file locks: imports share the store, gc and fsck need it alone. And module-level
thread locks made new in a forked child."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cas.errors import StoreBusy
from cas.index import on_read_only_fs


@contextmanager
def store_lock(root: Path, exclusive: bool, what: str) -> Iterator[None]:
    """Shared for writers that add blobs; exclusive (non-blocking) for gc and fsck.

    flock is released by the kernel when a process dies, so a killed import never
    leaves the store locked.
    """
    if on_read_only_fs(root):
        yield  # a read-only file system: nobody can write, so there is nothing to exclude
        return
    fd = os.open(Path(root) / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        mode = fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            raise StoreBusy(f"cannot {what}: another cas process (an import, a mount's commit, gc or fsck) is "
                            "using this store; try again when it has finished") from None
        yield
    finally:
        os.close(fd)


def renew_after_fork(namespace: dict[str, Any], *names: str) -> None:
    """Give a forked child new `threading.Lock`s for the module-level `names` of `namespace`
    (a module's globals()): one another thread held at the fork would never be released there
    (DataLoader workers fork from a parent whose threads read the store)."""
    def renew() -> None:
        for name in names:
            namespace[name] = threading.Lock()
    os.register_at_fork(after_in_child=renew)
