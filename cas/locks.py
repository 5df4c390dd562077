"""Advisory file locks: imports share the store, gc and fsck need it alone."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
            raise StoreBusy(f"cannot {what}: another cas process is importing into this store; "
                            "try again when it has finished") from None
        yield
    finally:
        os.close(fd)
