"""The one exception tree raised by the engine. The CLI prints these as one line."""

from __future__ import annotations


class CasError(Exception):
    """Base of every error the engine raises on purpose."""


class NotFound(CasError):
    """A blob, project, dataset or item does not exist."""


class AlreadyExists(CasError):
    """Something with that name exists and would be replaced."""


class CorruptBlob(CasError):
    """Stored bytes do not match their id."""


class InvalidName(CasError):
    """A name from outside fails validation."""


class InvalidInput(CasError):
    """Bad input: names the file and, where known, the field at fault."""

    def __init__(self, file: str, message: str, field: str | None = None) -> None:
        self.file = file
        self.field = field
        self.message = message
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None]]:  # crosses process pools
        return (InvalidInput, (self.file, self.message, self.field))


class Conflict(CasError):
    """An item exists with different content."""


class StoreBusy(CasError):
    """Another process holds a lock this operation needs."""


class SchemaError(CasError):
    """The index was written by an unknown or newer version."""
