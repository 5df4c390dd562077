"""Which file names are temporary: written by tools on their way to a final name, never imported."""

from __future__ import annotations

import re

# Suffixes of editors' swap and backup files, partial downloads and explicit temp files.
_TEMP_SUFFIXES = (".tmp", ".temp", ".swp", ".swo", ".swx", ".part", ".partial", ".crdownload")
# Python's tempfile: "tmp" + 8 characters of its alphabet (mkstemp, NamedTemporaryFile, mkdtemp).
_TEMPFILE = re.compile(r"tmp[a-z0-9_]{8}")


def is_temporary(name: str) -> bool:
    """Dot files (rsync's `.x.jpg.AbC123`, vim's `.x.swp`, `.~lock.x#`), emacs' `#x#`,
    backups `x~`, `*.tmp`, `*.part`, ... and tempfile's `tmpab12_x9z`."""
    return (name.startswith((".", "#")) or name.endswith(("~", "#"))
            or name.lower().endswith(_TEMP_SUFFIXES) or _TEMPFILE.fullmatch(name) is not None)
