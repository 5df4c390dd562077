"""Files and folders a command writes for its user, all by one rule: an existing output is
replaced only when asked (`--force`); what is written gets the umask's modes, as any other
tool's output; and it appears whole at its name or not at all: it is written beside it under
a hidden `.partial` name, which an error or Ctrl-C removes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from cas.errors import AlreadyExists, CasError

PARTIAL = ".partial"


def refuse_existing(dest: Path, force: bool) -> None:
    """An error when `dest` exists and `force` is not given."""
    if os.path.lexists(dest) and not force:
        raise AlreadyExists(f"{dest} exists; pass --force to replace it")


def partial_name(dest: Path) -> Path:
    """A hidden name beside `dest` for the output while it is written."""
    return dest.parent / f".{dest.name}.{os.getpid()}.{os.urandom(4).hex()}{PARTIAL}"


@contextmanager
def new_file(dest: Path) -> Iterator[BinaryIO]:
    """A file to write, renamed to `dest` (replacing it) when the block succeeds and removed
    when it fails: an interrupted write leaves the old file or none."""
    tmp = partial_name(dest)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)  # the kernel applies the umask
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, dest)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextmanager
def new_folder(dest: Path, force: bool = False, keep: Path | None = None) -> Iterator[Path]:
    """A temporary folder beside `dest`, put at `dest` when the block succeeds and removed
    when it fails: an error or Ctrl-C never leaves a half-written folder. `dest` must be
    absent or an empty folder, unless `force`: then a folder there is replaced whole (moved
    aside, then deleted) once the new one is complete. A folder holding `keep` (the store) is
    never replaced."""
    if dest.exists() and not dest.is_dir():
        raise AlreadyExists(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise AlreadyExists(f"{dest} is not empty; pass --force to replace it")
        if keep is not None and keep.resolve().is_relative_to(dest.resolve()):
            raise CasError(f"{dest} holds {keep}; it cannot be replaced")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in (dest.parent, *dest.parent.parents) if p.exists())
        raise CasError(f"cannot make {dest}: {blocker} is not a directory") from None
    tmp = partial_name(dest)
    tmp.mkdir()  # exclusive, with the umask's permissions (mkdtemp's 0700 would stay on the export)
    try:
        yield tmp
        _put(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _put(tmp: Path, dest: Path) -> None:
    """`tmp` renamed to `dest`; a folder with files there is moved aside first (and back if
    the rename fails), then deleted."""
    if not (dest.is_dir() and any(dest.iterdir())):
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
        return
    old = partial_name(dest)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    try:
        shutil.rmtree(old)
    except KeyboardInterrupt:  # the new folder is in place: finish its last step, never leave half the old one
        shutil.rmtree(old, ignore_errors=True)
