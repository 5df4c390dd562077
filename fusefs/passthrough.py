"""A drop's folder as written: FUSE requests on real paths of the staging directory.

Sizes, times and modes are the staged files' own, so cp -a, rsync and find see what they
wrote. A staged file that a failed import turned into a blob by a hard link is copied
before it is changed (never change a blob's bytes in place).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from typing import Any

_KEYS = ("st_mode", "st_nlink", "st_size", "st_blocks", "st_uid", "st_gid")


def attrs(st: os.stat_result) -> dict[str, int]:
    out = {key: getattr(st, key) for key in _KEYS}
    out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
    return out


def getattr_(real: str) -> dict[str, int]:
    return attrs(os.lstat(real))


def listing(real: str) -> Iterator[tuple[str, dict[str, int] | None]]:
    yield ".", None
    yield "..", None
    with os.scandir(real) as entries:
        for entry in entries:
            try:
                yield entry.name, attrs(entry.stat(follow_symlinks=False))
            except FileNotFoundError:
                continue


def writes(flags: int) -> bool:
    """Whether open flags change the file."""
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC))


class FdHandle:
    """A staged file open in a drop."""

    def __init__(self, real: str, fd: int) -> None:
        self.real = real
        self.fd = fd
        self.drop: Any = None  # the drop told when a file opened for writing is closed

    def read(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def write(self, data: bytes, offset: int) -> int:
        return os.pwrite(self.fd, data, offset)

    def truncate(self, length: int) -> None:
        os.ftruncate(self.fd, length)

    def fsync(self) -> None:
        os.fsync(self.fd)

    def stat(self) -> dict[str, int]:
        return attrs(os.fstat(self.fd))

    def close(self) -> None:
        os.close(self.fd)


def _unshare(real: str) -> None:
    """A file whose inode is also a blob (nlink > 1) is replaced by a copy of its own."""
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        copy = f"{real}.cas-unshare"
        shutil.copy2(real, copy)
        os.replace(copy, real)


def open_(real: str, flags: int) -> FdHandle:
    if writes(flags):
        _unshare(real)
    flags &= ~(os.O_APPEND | os.O_EXCL | os.O_CREAT)  # offsets come with each write request
    return FdHandle(real, os.open(real, flags | os.O_CLOEXEC))


def create(real: str, mode: int, flags: int = os.O_WRONLY) -> FdHandle:
    access = os.O_RDWR if flags & os.O_RDWR or not flags & os.O_WRONLY else os.O_WRONLY
    fd = os.open(real, access | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, stat.S_IMODE(mode))
    return FdHandle(real, fd)


def truncate(real: str, length: int) -> None:
    _unshare(real)
    os.truncate(real, length)


def mkdir(real: str, mode: int) -> None:
    os.mkdir(real, stat.S_IMODE(mode))


def unlink(real: str) -> None:
    os.unlink(real)


def rmdir(real: str) -> None:
    os.rmdir(real)


def rename(old: str, new: str) -> None:
    os.rename(old, new)


def chmod(real: str, mode: int) -> None:
    _unshare(real)
    os.chmod(real, stat.S_IMODE(mode), follow_symlinks=False)


def chown(real: str, uid: int, gid: int) -> None:
    _unshare(real)
    os.chown(real, uid, gid, follow_symlinks=False)


def utimens(real: str, times: Any = None) -> None:
    _unshare(real)
    if times is None:
        os.utime(real, follow_symlinks=False)
        return
    st = os.lstat(real)
    atime, mtime = (_ns(t, old) for t, old in zip(times, (st.st_atime_ns, st.st_mtime_ns), strict=True))
    os.utime(real, ns=(atime, mtime), follow_symlinks=False)


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2  # libfuse passes these as the nanoseconds of time 0


def _ns(t: int, old: int) -> int:
    """A time the binding passes (ns): now, unchanged, or itself."""
    return time.time_ns() if t == UTIME_NOW else old if t == UTIME_OMIT else int(t)


def symlink(target: str, real: str) -> None:
    os.symlink(target, real)


def readlink(real: str) -> str:
    return os.readlink(real)
