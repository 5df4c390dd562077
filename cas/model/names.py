"""Validation of names that come from outside (files, datasets, projects)."""

from __future__ import annotations

import re

from cas.errors import InvalidName

MAX_NAME_BYTES = 255
MAX_DEPTH = 32
_FORBIDDEN = re.compile(r"[\x00-\x1f/\\]")


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a safe single path component, else raise InvalidName."""
    if not isinstance(name, str) or name == "":
        raise InvalidName(f"empty {what}")
    if name in (".", ".."):
        raise InvalidName(f"{what} may not be {name!r}")
    if _FORBIDDEN.search(name):
        if "/" in name or "\\" in name:
            raise InvalidName(f"{what} may not contain a slash: {name!r}")
        if "\x00" in name:
            raise InvalidName(f"{what} may not contain a NUL byte: {name!r}")
        raise InvalidName(f"{what} may not contain control characters: {name!r}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"{what} is not valid UTF-8: {name!r}") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidName(f"{what} is longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}...")
    return name


def check_dataset_path(path: str) -> str:
    """A dataset path is '/'-joined dataset names ('train' or 'train/night')."""
    parts = path.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidName(f"dataset nesting deeper than {MAX_DEPTH}: {path!r}")
    for part in parts:
        check_name(part, "dataset name")
    return path

