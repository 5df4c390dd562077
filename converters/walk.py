"""What an import may read, and the directory walks converters share.

An import reads only files under its source folder (or under a directory given with
`--allow-root`). Walks skip hidden entries and symlinks that lead outside, counting the
latter; `follow_symlinks` opts in to every symlink. Paths taken from annotation files go
through `contained`, which refuses one that resolves outside. Walks are iterative (a
10,000-level folder is an error, not a RecursionError) and visit each directory once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from cas.errors import InvalidInput

SKIPPED_LINKS = "symlinks leading outside the source skipped (--follow-symlinks reads them)"
REAL_DIRS_KEPT = 4096  # folders whose real path a Containment remembers


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


@dataclass
class Containment:
    """The folders an import may read (`roots`: the source, then allowed roots)."""

    roots: tuple[str, ...] = ()
    follow_symlinks: bool = True
    skipped_links: int = 0
    _seen_links: set[str] = field(default_factory=set)
    _real_dirs: dict[str, str] = field(default_factory=dict)

    def allows(self, path: str | os.PathLike[str]) -> bool:
        if not self.roots:
            return True
        try:
            return _under(self._realpath(os.fspath(path)), self.roots)
        except (OSError, ValueError):
            return False

    def _realpath(self, path: str) -> str:
        """os.path.realpath, with the real paths of folders remembered: a file in a known
        folder costs one lstat, not one per component of its path."""
        parent, name = os.path.split(path)
        if not parent or name in ("", ".", "..") or os.path.islink(path):
            return os.path.realpath(path)
        real = self._real_dirs.get(parent)
        if real is None:
            if len(self._real_dirs) >= REAL_DIRS_KEPT:
                self._real_dirs.clear()
            real = self._real_dirs[parent] = os.path.realpath(parent)
        return os.path.join(real, name)

    def keep(self, entry: os.DirEntry[str]) -> bool:
        """Whether a walk takes this entry: not a symlink, or one that stays inside."""
        if not entry.is_symlink() or self.follow_symlinks or self.allows(entry.path):
            return True
        if entry.path not in self._seen_links:  # a converter may walk a folder twice: count once
            self._seen_links.add(entry.path)
            self.skipped_links += 1
        return False


# None outside containment(): a Containment counts and caches, so no shared default instance
_current: ContextVar[Containment | None] = ContextVar("containment", default=None)


def current() -> Containment:
    """The rule of this context; outside containment(), one that allows every path."""
    return _current.get() or Containment()


@contextmanager
def containment(top: Path, allow_roots: Sequence[str] = (), follow_symlinks: bool = False) -> Iterator[Containment]:
    """Confine reads in this context to the folder `top` and `allow_roots`."""
    rule = Containment((os.path.realpath(top), *(os.path.realpath(r) for r in allow_roots)), follow_symlinks)
    token = _current.set(rule)
    try:
        yield rule
    finally:
        _current.reset(token)


def contained(base: Path, given: str, label: str, where: str | None = None) -> Path:
    """`base / given` (a path from an annotation file), refused if it leads outside the
    source: `..` parts, an absolute path, or a symlink out (unless it is allowed)."""
    rule = current()
    path = Path(os.path.normpath(base / given))
    if len(os.fsencode(path)) >= 4096 or any(len(os.fsencode(part)) > 255 for part in path.parts):
        raise InvalidInput(label, f"path too long: {given[:100]!r}...", where)
    if rule.roots:
        inside = _under(os.path.abspath(path), rule.roots) and (  # a path that is not there leads nowhere
            rule.follow_symlinks or not os.path.lexists(path) or rule.allows(path))
        if not inside:
            raise InvalidInput(label, f"path {given[:200]!r} leads outside the source folder "
                                      "(allow a folder with --allow-root DIR)", where)
    return path


def entries(path: str) -> list[os.DirEntry[str]]:
    """Visible entries of a directory in name order ('.'-names such as .DS_Store are skipped),
    without symlinks that lead outside the source."""
    rule = current()
    try:
        it = os.scandir(path)
    except OSError as e:
        raise InvalidInput(path, f"cannot read this folder ({e.strerror})") from None
    with it:
        return sorted((e for e in it if not e.name.startswith(".") and rule.keep(e)), key=lambda e: e.name)


def files(path: str) -> Iterator[os.DirEntry[str]]:
    for entry in entries(path):
        if entry.is_file():
            yield entry


def subdirs(path: str) -> Iterator[os.DirEntry[str]]:
    for entry in entries(path):
        if entry.is_dir():
            yield entry


def tree(top: str | os.PathLike[str]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(folder relative to `top`, file entry) for every visible file below `top`: a folder's
    files first, then its sub-folders in name order, each directory once (symlink loops)."""
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, str]] = [("", os.fspath(top))]
    while stack:
        rel, here = stack.pop()
        try:
            st = os.stat(here)
        except OSError as e:
            raise InvalidInput(here, f"cannot read this folder ({e.strerror})") from None
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        subs = []
        for entry in entries(here):
            if entry.is_file():
                yield rel, entry
            elif entry.is_dir():
                subs.append((f"{rel}/{entry.name}" if rel else entry.name, entry.path))
        stack.extend(reversed(subs))


def tree_files(top: str | os.PathLike[str], suffix: str | tuple[str, ...] = "") -> list[Path]:
    """Every visible file below `top` (ending with `suffix`, if given), sorted by path."""
    return sorted(Path(e.path) for _rel, e in tree(top) if not suffix or e.name.endswith(suffix))
