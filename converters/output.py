"""Export folders that appear whole or not at all, and file names made unique."""

from __future__ import annotations

import functools
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cas.errors import AlreadyExists, CasError

Writer = TypeVar("Writer", bound=Callable[..., dict[str, int]])
Progress = Callable[[int], object]  # told how many more items are done (its result is ignored)


def no_progress(_done: int) -> None:
    pass


@contextmanager
def fresh_folder(dest: Path) -> Iterator[Path]:
    """A temporary folder beside `dest`, renamed to `dest` when the block succeeds and
    removed when it fails: an export error never leaves a half-written folder. `dest` must
    be absent or an empty folder."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AlreadyExists(f"{dest} exists and is not an empty directory")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in (dest.parent, *dest.parent.parents) if p.exists())
        raise CasError(f"cannot make {dest}: {blocker} is not a directory") from None
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    tmp.mkdir()  # exclusive, with the umask's permissions (mkdtemp's 0700 would stay on the export)
    try:
        yield tmp
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def writes_folder(write: Writer) -> Writer:
    """`write(store, project, dest, ...)` run on a fresh_folder of `dest`."""
    @functools.wraps(write)
    def wrapper(store: Any, project: str, dest: Path, *args: Any, **kwargs: Any) -> dict[str, int]:
        with fresh_folder(Path(dest)) as tmp:
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
