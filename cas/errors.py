"""The one exception tree raised by the engine. The CLI prints these as one line."""

from __future__ import annotations


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
