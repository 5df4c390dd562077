"""Import through the mount: staged files, the journal of closed files, batched commits.

`WriteBack` is the engine behind a writable mount (fusefs only translates FUSE calls
into it); `ScratchTree` holds the files with temporary names that are never imported.
"""

from cas.ingest.scratch import ScratchTree
from cas.ingest.staged import StagedFile
from cas.ingest.temporary import is_temporary
from cas.ingest.writeback import WriteBack

__all__ = ["ScratchTree", "StagedFile", "WriteBack", "is_temporary"]
