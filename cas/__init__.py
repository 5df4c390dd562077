"""cas: a content-addressed store for computer-vision datasets.

The layers, bottom to top; a module imports only from its own layer and those below
(tests/test_layering.py checks it, and that there is no import cycle):

    core         ids, errors, config (every setting: a store's, remote reads', the environment's),
                 locks, records (the index's value formats), index (LMDB), units, outputs
    blobs/       the blob engine: hashing, spool, reader, remote_reader, cache, catalog
                 (reference counts), links, repack, backends/ (local files and packs, S3, memory)
    model/       the dataset model: namespace (projects, datasets, items), annotation, media,
                 names, layout (the Supervisely folder layout), reading (the read protocol)
    store        Store: the blob engine and the namespace behind one object
    ingest/      imports: session, prepare, statcache, workers, temporary (tools' temp names),
                 and the mount's write path (staged, journal, closed, validation, overlay,
                 committer, replay, writeback, drops, outcomes)
    versions/    trees (the tree format; a version read as the namespace is), snapshots
                 (building trees, history), sharing (version heads on S3), transfer
    maintenance/ gc, fsck, stats, usage, classes, rebuild
    dataset, cli/ the training API and the command line (cli/ is the composition root: it alone
                 reaches converters/ and fusefs/)
"""

from typing import Any

from cas.errors import (
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
from cas.ids import BlobId
from cas.records import ItemRecord
from cas.store import Store

__all__ = ["AlreadyExists", "BlobId", "CasError", "Conflict", "CorruptBlob", "InvalidInput", "InvalidName",
           "ItemRecord", "NotFound", "SchemaError", "Store", "StoreBusy", "open_dataset"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "open_dataset":  # the training API loads on first use, not with `import cas`
        from cas.dataset import open_dataset
        return open_dataset
    raise AttributeError(f"module 'cas' has no attribute {name!r}")
