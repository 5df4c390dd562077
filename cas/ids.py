"""Blob ids: 16 raw bytes (XXH3-128); hex only at the edges."""

from __future__ import annotations

from cas.errors import InvalidName

ID_BYTES = 16


class BlobId(bytes):
    """A 16-byte content digest; str() shows 32 lowercase hex characters."""

    def __new__(cls, raw: bytes) -> BlobId:
        if len(raw) != ID_BYTES:
            raise ValueError(f"blob id must be {ID_BYTES} bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    @classmethod
    def from_hex(cls, text: str) -> BlobId:
        """Parse 32 hex characters; a bad string is an InvalidName."""
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if len(raw) != ID_BYTES:
            raise InvalidName(f"not a blob id (32 hex characters expected): {text!r}")
        return cls(raw)

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"BlobId({self.hex()})"
