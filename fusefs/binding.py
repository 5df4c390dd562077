"""The only module that imports the FUSE binding (mfusepy: see README, "Choice of binding").

`CasFUSE` adds READDIRPLUS to mfusepy: a listing hands the kernel each entry's
full attributes, so `ls -l` of a large directory costs one request per buffer
of entries instead of one LOOKUP per entry.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import threading
from typing import Any

# libfuse 3 even where libfuse 2 is installed too (mfusepy would otherwise take the older one,
# which lacks READDIRPLUS in the high-level API and fuse_invalidate_path).
_LIBFUSE3 = ctypes.util.find_library("fuse3")
if _LIBFUSE3 and "FUSE_LIBRARY_PATH" not in os.environ:
    os.environ["FUSE_LIBRARY_PATH"] = _LIBFUSE3

try:
    import mfusepy as _fuse  # noqa: E402
except OSError as e:  # mfusepy looks for libfuse on import
    raise ImportError("libfuse is not installed: install the fuse3 package (apt-get install fuse3)") from e

FuseOSError = _fuse.FuseOSError
Operations = _fuse.Operations
FUSE_READDIR_PLUS = 1  # flag the kernel passes to readdir (libfuse 3)
FUSE_FILL_DIR_PLUS = 2  # flag we pass to the filler: the stat is complete


_thread = threading.local()


def keep_thread_state() -> None:
    """Keep the calling libfuse worker's Python thread state for the life of the thread.

    A ctypes callback on a thread that Python did not start creates a thread state on
    entry and destroys it on return: an mmap, a munmap and a gettid per FUSE request,
    plus the setup in between. Taking one more PyGILState reference the first time a
    worker calls in makes the state (and this thread-local flag) outlive the callback.
    The cost: a worker that libfuse retires (beyond its idle-thread limit, after a burst
    of parallel requests) leaves its few KB of thread state behind.
    """
    if not getattr(_thread, "kept", False):
        ctypes.pythonapi.PyGILState_Ensure()
        _thread.kept = True


def fuse_exit() -> None:
    _fuse.fuse_exit()


_fuse._libfuse.fuse_invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_fuse._libfuse.fuse_invalidate_path.restype = ctypes.c_int


def current_fuse() -> int:
    """The `struct fuse *` of the running file system (call from inside an operation, e.g. init)."""
    return _fuse._libfuse.fuse_get_context().contents.fuse


def caller_pid() -> int:
    """The process a request being served comes from; 0 outside a request."""
    context = _fuse._libfuse.fuse_get_context()
    return int(context.contents.pid) if context else 0


def invalidate_path(fuse: int, path: str) -> int:
    """Drop what the kernel caches for `path` (entry, attributes, pages); 0 or -errno
    (-ENOENT when nothing was cached)."""
    return _fuse._libfuse.fuse_invalidate_path(fuse, path.encode())


_STAT_KEYS = ("st_nlink", "st_mode", "st_uid", "st_gid", "st_size", "st_blocks")
_TIME_KEYS = ("st_atime", "st_mtime", "st_ctime")
NS = 1_000_000_000


def _stat_struct() -> struct.Struct:
    """A Struct laid out as the binding's `struct stat`, holding _STAT_KEYS, then seconds and
    nanoseconds of each of _TIME_KEYS; every other byte is zero padding."""
    types = dict(_fuse.c_stat._fields_)
    spec_types = dict(_fuse.c_timespec._fields_)
    slots = [(getattr(_fuse.c_stat, key).offset, types[key]._type_) for key in _STAT_KEYS]
    for key in _TIME_KEYS:
        base = getattr(_fuse.c_stat, key + "spec").offset
        slots += [(base + getattr(_fuse.c_timespec, part).offset, spec_types[part]._type_)
                  for part in ("tv_sec", "tv_nsec")]
    if slots != sorted(slots):  # fill_stat packs the values in this order
        raise TypeError("struct stat fields out of the expected order")
    fmt, pos = "@", 0
    for offset, code in slots:
        fmt += "x" * (offset - pos) + code
        pos = offset + struct.calcsize("@" + code)
    return struct.Struct(fmt + "x" * (ctypes.sizeof(_fuse.c_stat) - pos))


_STAT = _stat_struct()


def fill_stat(st: Any, attrs: dict[str, int]) -> None:
    """Write a whole `struct stat` (times in ns) in one pack: mfusepy's set_st_attrs sets it
    field by field, 6 us an entry, paid by every entry of a listing."""
    a, m, c = attrs.get("st_atime", 0), attrs.get("st_mtime", 0), attrs.get("st_ctime", 0)
    _STAT.pack_into(st, 0, attrs.get("st_nlink", 0), attrs.get("st_mode", 0), attrs.get("st_uid", 0),
                    attrs.get("st_gid", 0), attrs.get("st_size", 0), attrs.get("st_blocks", 0),
                    a // NS, a % NS, m // NS, m % NS, c // NS, c % NS)


class CasFUSE(_fuse.FUSE):
    """mfusepy's FUSE with complete attributes in readdir (libfuse 3).

    libfuse hands attributes to the kernel only for entries filled with an offset,
    so `operations.readdir_at(path, fh, offset)` yields (name, attrs, next offset)
    from `offset` on, and each kernel buffer is one call.
    """

    def create(self, path: bytes, mode: int, fip: Any) -> int:
        """mfusepy's create inspects the operation's signature on every call. A file whose
        close has nothing to finish gets no FLUSH request (one request fewer per file)."""
        fi = fip.contents
        fi.fh = self.operations.create(path.decode(self.encoding, self.errors), mode, fi.flags)
        if not self.operations.flushes(fi.fh) and hasattr(fi, "noflush"):
            fi.noflush = 1
        return 0

    def open(self, path: bytes, fip: Any) -> int:
        """A file opened for reading keeps its page cache across opens (blob bytes are
        immutable; a changed item is invalidated explicitly, see invalidate.py) and needs
        no FLUSH request on close (only writers have anything to finish)."""
        fi = fip.contents
        fi.fh = self.operations.open(path.decode(self.encoding, self.errors), fi.flags)
        if self.operations.direct_io(fi.fh):
            fi.direct_io = 1
        elif not fi.flags & (os.O_WRONLY | os.O_RDWR):
            fi.keep_cache = int(self.operations.keep_cache(fi.fh))
        if not self.operations.flushes(fi.fh) and hasattr(fi, "noflush"):  # libfuse >= 3.11
            fi.noflush = 1
        return 0

    def readdir_fuse_3(self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int) -> int:
        plus = bool(flags & FUSE_READDIR_PLUS)
        encoding, errors = self.encoding, self.errors
        decoded = None if path is None else path.decode(encoding, errors)
        st = _fuse.c_stat()
        st_ptr = ctypes.pointer(st)  # converted once, not by every call of the filler
        for name, attrs, next_offset in self.operations.readdir_at(decoded, fip.contents.fh, offset):
            if plus and attrs is not None:
                fill_stat(st, attrs)
                fill_flags = FUSE_FILL_DIR_PLUS
            else:
                ctypes.memset(st_ptr, 0, ctypes.sizeof(st))
                st.st_mode = attrs["st_mode"] if attrs else 0
                fill_flags = 0
            if filler(buf, name.encode(encoding, errors), st_ptr, next_offset, fill_flags) != 0:
                break  # buffer full: the handle holds this entry for the next call
        return 0
