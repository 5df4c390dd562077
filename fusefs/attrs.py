"""Mode, owner and times set through the mount (chmod, chown, utimens) that the store does not
keep: held for the life of the mount, by path, and moved by rename. This is what lets
`cp -a`, `rsync -a` and `tar -x` finish cleanly, and a second `rsync -a` find nothing to send."""

from __future__ import annotations

import stat
import threading
import time
from typing import Any

Attrs = dict[str, int]


class AttrOverlay:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, Attrs] = {}

    def apply(self, path: str, attrs: Attrs) -> Attrs:
        """`attrs` with whatever was set on `path` laid over it."""
        if self._by_path:
            extra = self._by_path.get(path)
            if extra:
                return {**attrs, **extra}
        return attrs

    def chmod(self, path: str, current: Attrs, mode: int) -> None:
        self._set(path, st_mode=stat.S_IFMT(current["st_mode"]) | stat.S_IMODE(mode))

    def chown(self, path: str, uid: int, gid: int) -> None:
        changes = {}
        if uid != -1 and uid != 0xFFFFFFFF:
            changes["st_uid"] = uid
        if gid != -1 and gid != 0xFFFFFFFF:
            changes["st_gid"] = gid
        self._set(path, **changes)

    def utimens(self, path: str, times: Any = None) -> None:
        """Times in ns (the binding passes ns); None means now."""
        now = time.time_ns()
        atime, mtime = times if times is not None else (now, now)
        self._set(path, st_atime=int(atime), st_mtime=int(mtime), st_ctime=now)

    def _set(self, path: str, **changes: int) -> None:
        with self._lock:
            self._by_path.setdefault(path, {}).update(changes)

    def forget(self, path: str) -> None:
        """A file was removed (or rewritten: new content has new times)."""
        if path in self._by_path:
            with self._lock:
                self._by_path.pop(path, None)

    def forget_under(self, path: str) -> None:
        with self._lock:
            for key in [k for k in self._by_path if k == path or k.startswith(path + "/")]:
                del self._by_path[key]

    def move(self, old: str, new: str) -> None:
        """A rename: what was set on `old` (and below it) now belongs to `new`."""
        with self._lock:
            self._by_path.pop(new, None)
            for key in [k for k in self._by_path if k == old or k.startswith(old + "/")]:
                self._by_path[new + key[len(old):]] = self._by_path.pop(key)
