"""Mode, owner and times set through the mount (chmod, chown, utimens) that the store does not
keep: held for the life of the mount, by path, and moved by rename. This is what lets
`cp -a`, `rsync -a` and `tar -x` finish cleanly, and a second `rsync -a` find nothing to send."""

from __future__ import annotations

import stat
import threading
import time
from collections import Counter
from typing import Any

Attrs = dict[str, int]


class AttrOverlay:
    """Attributes by path. `_below` counts the paths kept under each directory, so that the
    common case, a rename or removal of one file, touches one entry instead of scanning all
    (rsync -a sets times on every file and renames every one into place)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, Attrs] = {}
        self._below: Counter[str] = Counter()

    def apply(self, path: str, attrs: Attrs) -> Attrs:
        """`attrs` with whatever was set on `path` laid over it."""
        if self._by_path:
            extra = self._by_path.get(path)
            if extra:
                return {**attrs, **extra}
        return attrs

    def apply_in(self, folder: str, name: str, attrs: Attrs) -> Attrs:
        """`apply` for an entry of a listing of `folder`: no path is built while nothing is held."""
        return self.apply(f"{folder}/{name}", attrs) if self._by_path else attrs

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
            self._put(path, changes)

    def _put(self, path: str, changes: Attrs) -> None:
        held = self._by_path.get(path)
        if held is None:
            self._by_path[path] = held = {}
            for parent in _parents(path):
                self._below[parent] += 1
        held.update(changes)

    def _pop(self, path: str) -> Attrs | None:
        held = self._by_path.pop(path, None)
        if held is not None:
            for parent in _parents(path):
                self._below[parent] -= 1
                if not self._below[parent]:
                    del self._below[parent]
        return held

    def _under(self, path: str) -> list[str]:
        """`path` and every kept path below it."""
        if not self._below.get(path):
            return [path] if path in self._by_path else []
        prefix = path.rstrip("/") + "/"
        return [k for k in self._by_path if k == path or k.startswith(prefix)]

    def held_under(self, path: str) -> list[tuple[str, Attrs]]:
        """What was set on `path` and below it."""
        with self._lock:
            return [(key, dict(self._by_path[key])) for key in self._under(path)]

    def forget(self, path: str) -> None:
        """A file was removed (or rewritten: new content has new times)."""
        if path in self._by_path:
            with self._lock:
                self._pop(path)

    def forget_under(self, path: str) -> None:
        with self._lock:
            for key in self._under(path):
                self._pop(key)

    def move(self, old: str, new: str) -> None:
        """A rename: what was set on `old` (and below it) now belongs to `new`."""
        with self._lock:
            self._pop(new)
            for key in self._under(old):
                held = self._pop(key)
                if held is not None:
                    self._put(new + key[len(old):], held)


def _parents(path: str) -> list[str]:
    """'/a/b/c' -> ['/a/b', '/a', '/']."""
    out = []
    while path not in ("", "/"):
        path = path.rpartition("/")[0] or "/"
        out.append(path)
    return out
