"""Export folders that appear whole or not at all (by `cas.outputs`), and file names made unique."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cas.outputs import new_folder

Writer = TypeVar("Writer", bound=Callable[..., dict[str, int]])
Progress = Callable[[int], object]  # told how many more items are done (its result is ignored)


def no_progress(_done: int) -> None:
    pass


def writes_folder(write: Writer) -> Writer:
    """`write(store, project, dest, ...)` run on a `cas.outputs.new_folder` of `dest`; the
    wrapper takes `force` (replace a folder with files at `dest`)."""
    @functools.wraps(write)
    def wrapper(store: Any, project: str, dest: Path, *args: Any, force: bool = False, **kwargs: Any) -> dict[str, int]:
        with new_folder(Path(dest), force, keep=store.root) as tmp:
            return write(store, project, tmp, *args, **kwargs)
    return wrapper  # type: ignore[return-value]  # same signature as `write`; Writer cannot say so


class UniqueNames:
    """File names made unique by an alternative name or a number before the extension
    (`a.jpg`, then `a_2.jpg`). Stems can be kept unique instead, for formats whose label files are named
    by stem (YOLO, VOC: `a.jpg` and `a.png` would share `a.txt`)."""

    def __init__(self, by_stem: bool = False) -> None:
        self.by_stem = by_stem
        self.taken: set[str] = set()
        self.renamed = 0

    def __call__(self, name: str, alternative: str | None = None) -> str:
        """`name`, or when it is taken `alternative`, then numbered ones (`a_2.jpg`)."""
        candidate = name
        if self._key(candidate) in self.taken and alternative:
            candidate = alternative
        stem, ext = os.path.splitext(candidate)
        n = 1
        while self._key(candidate) in self.taken:
            n += 1
            candidate = f"{stem}_{n}{ext}"
        if candidate != name:
            self.renamed += 1
        self.taken.add(self._key(candidate))
        return candidate

    def _key(self, name: str) -> str:
        return os.path.splitext(name)[0] if self.by_stem else name
