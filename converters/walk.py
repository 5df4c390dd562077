"""Directory walking shared by converters: sorted, hidden entries skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator


def entries(path: str) -> list[os.DirEntry[str]]:
    """Visible entries of a directory in name order ('.'-names such as .DS_Store are skipped)."""
    with os.scandir(path) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def files(path: str) -> Iterator[os.DirEntry[str]]:
    for entry in entries(path):
        if entry.is_file():
            yield entry


def subdirs(path: str) -> Iterator[os.DirEntry[str]]:
    for entry in entries(path):
        if entry.is_dir():
            yield entry
