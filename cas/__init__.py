"""cas: a content-addressed store for computer-vision datasets."""

from .errors import (AlreadyExists, CasError, Conflict, CorruptBlob, InvalidInput, InvalidName, NotFound,
                     SchemaError, StoreBusy)
from .ids import BlobId
from .records import ItemRecord
from .store import Store

__all__ = ["AlreadyExists", "BlobId", "CasError", "Conflict", "CorruptBlob", "InvalidInput", "InvalidName",
           "ItemRecord", "NotFound", "SchemaError", "Store", "StoreBusy"]
__version__ = "0.1.0"
