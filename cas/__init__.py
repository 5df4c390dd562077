"""cas: a content-addressed store for computer-vision datasets."""

from typing import Any

from .errors import (
    AlreadyExists,
    CasError,
    Conflict,
    CorruptBlob,
    InvalidInput,
    InvalidName,
    NotFound,
    SchemaError,
    StoreBusy,
)
from .ids import BlobId
from .records import ItemRecord
from .store import Store

__all__ = ["AlreadyExists", "BlobId", "CasError", "Conflict", "CorruptBlob", "InvalidInput", "InvalidName",
           "ItemRecord", "NotFound", "SchemaError", "Store", "StoreBusy", "open_dataset"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "open_dataset":  # the training API loads on first use, not with `import cas`
        from .dataset import open_dataset
        return open_dataset
    raise AttributeError(f"module 'cas' has no attribute {name!r}")
