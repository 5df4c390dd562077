"""Import through the mount: staged files, the journal of closed files, batched commits.

`WriteBack` is the engine behind a writable mount (fusefs only translates FUSE calls
into it); `ScratchTree` holds the files with temporary names that are never imported.
They load on first use: `cas import` (cas.ingest.session) needs none of the mount's write path.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cas.ingest.scratch import ScratchTree
    from cas.ingest.staged import StagedFile
    from cas.ingest.temporary import is_temporary
    from cas.ingest.writeback import WriteBack

__all__ = ["ScratchTree", "StagedFile", "WriteBack", "is_temporary"]
_HOMES = {"ScratchTree": "scratch", "StagedFile": "staged", "is_temporary": "temporary", "WriteBack": "writeback"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'cas.ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cas.ingest.{_HOMES[name]}"), name)
