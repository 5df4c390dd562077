"""Files and directories with temporary names: a plain in-memory tree whose file bytes are
staged files. Nothing here is ever imported; it lives as long as the mount.

Keys are `/`-separated paths; a node's parent is either another scratch directory or a
directory the caller vouches for (a project, dataset or section of the mount).
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from cas.ingest.staged import StagedFile


@dataclass
class Node:
    file: StagedFile | None  # None: a directory
    mtime: int = field(default_factory=time.time_ns)


def _parent(path: str) -> str:
    return path.rpartition("/")[0] or "/"


def _fail(code: int, path: str) -> OSError:
    return OSError(code, f"{path}: {errno.errorcode.get(code, code)}")


class ScratchTree:
    def __init__(self, directory: str) -> None:
        self.directory = directory  # where the bytes are spooled
        self._nodes: dict[str, Node] = {}
        self._children: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> Node | None:
        return self._nodes.get(path)

    def is_dir(self, path: str) -> bool:
        node = self._nodes.get(path)
        return node is not None and node.file is None

    def children(self, directory: str) -> Iterator[tuple[str, Node]]:
        """Scratch entries directly inside `directory` (a scratch directory or any other)."""
        with self._lock:
            names = sorted(self._children.get(directory, ()))
        for name in names:
            node = self._nodes.get(f"{directory.rstrip('/')}/{name}")
            if node is not None:
                yield name, node

    def has_children(self, directory: str) -> bool:
        return bool(self._children.get(directory))

    def _add(self, path: str, node: Node) -> None:
        self._nodes[path] = node
        self._children.setdefault(_parent(path), set()).add(path.rpartition("/")[2])
        if node.file is None:
            self._children.setdefault(path, set())

    def _drop(self, path: str) -> Node:
        node = self._nodes.pop(path)
        siblings = self._children.get(_parent(path))
        if siblings is not None:
            siblings.discard(path.rpartition("/")[2])
        if node.file is None:
            self._children.pop(path, None)
        return node

    def create(self, path: str, exclusive: bool = False) -> StagedFile:
        """A file at `path` (made empty if it exists, unless `exclusive`), opened for the
        caller (who calls `release` when done with it)."""
        with self._lock:
            node = self._nodes.get(path)
            if node is not None:
                if exclusive:
                    raise _fail(errno.EEXIST, path)
                if node.file is None:
                    raise _fail(errno.EISDIR, path)
                node.file.open().truncate(0)
                node.mtime = time.time_ns()
                return node.file
            staged = StagedFile.create(self.directory)
            self._add(path, Node(staged))
            return staged

    def adopt(self, path: str, staged: StagedFile) -> None:
        """Put an existing staged file at `path` (replacing a file there)."""
        with self._lock:
            old = self._nodes.get(path)
            if old is not None:
                if old.file is None:
                    raise _fail(errno.EISDIR, path)
                self._drop(path)
                old.file.remove()
            self._add(path, Node(staged))

    def mkdir(self, path: str) -> None:
        with self._lock:
            if path in self._nodes:
                raise _fail(errno.EEXIST, path)
            self._add(path, Node(None))

    def unlink(self, path: str) -> None:
        self.take(path).remove()

    def rmdir(self, path: str) -> None:
        with self._lock:
            node = self._nodes.get(path)
            if node is None:
                raise _fail(errno.ENOENT, path)
            if node.file is not None:
                raise _fail(errno.ENOTDIR, path)
            if self._children.get(path):
                raise _fail(errno.ENOTEMPTY, path)
            self._drop(path)

    def take(self, path: str) -> StagedFile:
        """Remove a file from the tree and hand its staged bytes to the caller."""
        with self._lock:
            node = self._nodes.get(path)
            if node is None:
                raise _fail(errno.ENOENT, path)
            if node.file is None:
                raise _fail(errno.EISDIR, path)
            self._drop(path)
            return node.file

    def rename(self, old: str, new: str) -> None:
        """Move a file or a directory (with everything below it) within the tree."""
        with self._lock:
            node = self._nodes.get(old)
            if node is None:
                raise _fail(errno.ENOENT, old)
            target = self._nodes.get(new)
            if target is not None:
                if (target.file is None) != (node.file is None):
                    raise _fail(errno.EISDIR if target.file is None else errno.ENOTDIR, new)
                if target.file is None and self._children.get(new):
                    raise _fail(errno.ENOTEMPTY, new)
                dropped = self._drop(new)
                if dropped.file is not None:
                    dropped.file.remove()
            if node.file is not None:  # a file (rsync's temp file renamed into place): no scan
                self._add(new, self._drop(old))
                return
            moved = [(p, n) for p, n in self._nodes.items() if p == old or p.startswith(old + "/")]
            for path, _ in sorted(moved, key=lambda pn: -pn[0].count("/")):
                self._drop(path)
            for path, n in sorted(moved, key=lambda pn: pn[0].count("/")):
                self._add(new + path[len(old):], n)

    def move_under(self, old: str, new: str) -> None:
        """A directory that is not ours (a dataset) was renamed: move what lies below it."""
        with self._lock:
            moved = [(p, n) for p, n in self._nodes.items() if p.startswith(old + "/")]
            for path, _ in sorted(moved, key=lambda pn: -pn[0].count("/")):
                self._drop(path)
            for path, n in sorted(moved, key=lambda pn: pn[0].count("/")):
                self._add(new + path[len(old):], n)

    def under(self, directory: str) -> list[tuple[str, Node]]:
        """Every node below `directory`, parents before children."""
        with self._lock:
            found = [(p, n) for p, n in self._nodes.items() if p.startswith(directory + "/")]
        return sorted(found, key=lambda pn: pn[0].count("/"))

    def remove_under(self, directory: str) -> None:
        """Drop everything below `directory` (its project or dataset was removed)."""
        with self._lock:
            doomed = [p for p in self._nodes if p.startswith(directory + "/")]
            for path in sorted(doomed, key=lambda p: -p.count("/")):
                node = self._drop(path)
                if node.file is not None:
                    node.file.discard()

    def clear(self) -> None:
        self.remove_under("")
