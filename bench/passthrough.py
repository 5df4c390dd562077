"""A minimal read-only passthrough FUSE file system: the ceiling for a Python FUSE daemon.

    python -m bench.passthrough SOURCE MOUNTPOINT [--binding mfusepy|fusepy]

Same binding, same options and the same kind of work per request as the cas mount
(lstat for getattr, one descriptor per open file, pread per read), minus the index.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os


def make_ops(fuse: object, root: str) -> object:
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
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise fuse.FuseOSError(errno.EROFS)
            fd = os.open(self._p(path), os.O_RDONLY)
            return fd

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
    args = ap.parse_args()
    if args.binding == "mfusepy":
        import fusefs.binding  # noqa: F401 - points mfusepy at libfuse 3, as the cas mount uses
    fuse = importlib.import_module("mfusepy" if args.binding == "mfusepy" else "fuse")
    options = {"entry_timeout": 1.0, "attr_timeout": 1.0, "negative_timeout": 0.0, "auto_cache": True}
    fuse.FUSE(make_ops(fuse, os.path.realpath(args.source)), args.mountpoint, foreground=True, nothreads=False,
              ro=True, fsname="passthrough", **options)


if __name__ == "__main__":
    main()
