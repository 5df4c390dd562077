"""The one exception tree raised by the engine. The CLI prints these as one line."""

from __future__ import annotations

import json
import os
import re

# Python's repr of an object, as libraries put it in their messages (PIL, urllib3).
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>:?\s*")


def reason(e: BaseException) -> str:
    """Why `e` happened, in words: the system's text of an errno (OSError, PyAV's errors),
    after the file an OSError names, or the exception's own text without object
    reprs; never a class name or a traceback."""
    strerror = getattr(e, "strerror", None)
    if isinstance(strerror, str) and strerror:
        filename = e.filename if isinstance(e, OSError) else None  # PyAV's is '<none>' for a stream
        return f"{os.fsdecode(filename)}: {strerror}" if isinstance(filename, (str, bytes)) else strerror
    text = _OBJECT_REPR.sub("", str(e)).strip()
    return text or "no reason given"


def shown(value: object, limit: int = 80) -> str:
    """A value from a JSON or YAML document as the document writes it (null, true, 3,
    {"k": 1}; not Python's None, True, {'k': 1}), cut to `limit` characters. A string is
    quoted as names are everywhere in messages ('car')."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class CasError(Exception):
    """Base of every error the engine raises on purpose."""


class NotFound(CasError):
    """A blob, project, dataset or item does not exist."""


class AlreadyExists(CasError):
    """Something with that name exists and would be replaced."""


# What to do about a blob whose bytes are damaged or lost (see cas.blobs.damage).
HEAL_HINT = "`cas fsck` names the items that use it, and a re-import of the original file heals it"


class CorruptBlob(CasError):
    """Stored bytes do not match their id."""


class InvalidName(CasError):
    """A name from outside fails validation."""


class InvalidInput(CasError):
    """Bad input: names the file and, where known, the field at fault."""

    def __init__(self, file: str, message: str, field: str | None = None) -> None:
        file = file if len(file) <= MAX_FILE else "..." + file[-MAX_FILE:]
        self.file = file
        self.field = field
        message = _one_line(message)
        self.message = message
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None]]:  # crosses process pools
        return (InvalidInput, (self.file, self.message, self.field))


MAX_MESSAGE = 1200  # characters: a message quoting hostile input must stay readable (and auto's reasons fit)
MAX_FILE = 300  # characters of a path shown (its end, which names the file)


def _one_line(text: str) -> str:
    """`text` on one line (a parser's multi-line message folded), cut to MAX_MESSAGE."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


class Conflict(CasError):
    """An item exists with different content."""


class StoreBusy(CasError):
    """Another process holds a lock this operation needs."""


class SchemaError(CasError):
    """The index was written by an unknown or newer version."""
