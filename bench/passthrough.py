"""A minimal passthrough FUSE file system: the ceiling for a Python FUSE daemon.

    python -m bench.passthrough SOURCE MOUNTPOINT [--binding mfusepy|fusepy] [--writable]

Same binding, same options and the same kind of work per request as the cas mount
(lstat for getattr, one descriptor per open file, pread per read), minus the index.
Read-only unless `--writable`: then mkdir, create, write (pwrite), fsync and release
pass through too, the least a copy into a mount can cost on this binding.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os


def make_ops(fuse: object, root: str, writable: bool = False) -> object:
    class Passthrough(fuse.Operations):  # type: ignore[name-defined, misc]
        use_ns = True

        def __init__(self) -> None:
            self.root = root

        def _p(self, path: str) -> str:
            return self.root + path

        def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
            try:
                st = os.lstat(self._p(path))
            except OSError as e:
                raise fuse.FuseOSError(e.errno) from None
            return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid")} | {
                "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns, "st_atime": st.st_atime_ns}

        def readdir(self, path: str, fh: int):  # noqa: ANN201
            return [".", "..", *os.listdir(self._p(path))]

        def open(self, path: str, flags: int) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR) and not writable:
                raise fuse.FuseOSError(errno.EROFS)
            return os.open(self._p(path), flags & ~os.O_CREAT)

        def create(self, path: str, mode: int, fi: object = None) -> int:
            return os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            return os.pwrite(fh, data, offset)

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            os.fsync(fh)
            return 0

        def mkdir(self, path: str, mode: int) -> int:
            os.mkdir(self._p(path), mode)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return os.pread(fh, size, offset)

        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

    return Passthrough()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("mountpoint")
    ap.add_argument("--binding", default="mfusepy", choices=["mfusepy", "fusepy"])
    ap.add_argument("--writable", action="store_true")
    args = ap.parse_args()
    if args.binding == "mfusepy":
        import fusefs.binding  # noqa: F401 - points mfusepy at libfuse 3, as the cas mount uses
    fuse = importlib.import_module("mfusepy" if args.binding == "mfusepy" else "fuse")
    options = {"entry_timeout": 1.0, "attr_timeout": 1.0, "negative_timeout": 0.0, "auto_cache": True}
    fuse.FUSE(make_ops(fuse, os.path.realpath(args.source), args.writable), args.mountpoint, foreground=True,
              nothreads=False, ro=not args.writable, fsname="passthrough", **options)


if __name__ == "__main__":
    main()
