"""Pack files: small blobs end to end in shared files under `<store>/packs/`.

A file per small blob costs a file-system block and an inode (200,000 tiny PNGs of 85
bytes took 1.1 GB as files); a pack holds them end to end. Each entry is a header (MAGIC,
the 16-byte id, the size as 4 bytes little-endian) followed by the bytes, so packs can be
read without the index (`cas fsck --rebuild-index`). Each importing process appends to
packs of its own and never changes an entry in place; entries are durable after the
batch's syncfs, like blob files, and the index records them only then. Blobs removed from
the index leave dead bytes behind, which gc reclaims by rewriting a pack whose live part
has shrunk below half.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from cas.ids import BlobId

# Blobs up to this size are packed (measured, `python -m bench.pack_threshold`: below 1 MiB a
# file per blob costs more than an append, 2.2x at 256 KiB; from 2 MiB up, loose files written in
# parallel beat appends to one pack, and a pack rewrite by gc moves more bytes per blob freed).
PACK_MAX = 1 << 20
ENTRY_MAX = 1 << 30  # what `entries` takes for an entry: packs written under another PACK_MAX stay readable
PACK_FILE_MAX = 256 << 20  # a writer starts a new pack past this size
MAGIC = b"CASb"
HEADER = struct.Struct("<4s16sI")
SUFFIX = ".pack"


class PackWriter:
    """Appends blobs to packs of its own; several threads may call `append`."""

    def __init__(self, pack_dir: Path) -> None:
        self.dir = pack_dir
        self._lock = threading.Lock()
        self._fd = -1
        self.name = ""
        self._size = 0

    def append(self, blob_id: BlobId, data: bytes) -> tuple[str, int]:
        """Write one entry; returns (pack name, offset of the bytes). Durable after a sync."""
        entry = HEADER.pack(MAGIC, blob_id, len(data)) + data
        with self._lock:
            if self._fd < 0 or self._size + len(entry) > PACK_FILE_MAX:
                self._start()
            try:
                view = memoryview(entry)
                while view:
                    view = view[os.write(self._fd, view):]
            except BaseException:
                self.close()  # a partial entry ends this pack: the next append starts another
                raise
            offset = self._size + HEADER.size
            self._size += len(entry)
            return self.name, offset

    def _start(self) -> None:
        self.close()
        self.dir.mkdir(exist_ok=True)
        self.name = f"{os.getpid()}-{os.urandom(8).hex()}"
        self._fd = os.open(self.dir / (self.name + SUFFIX), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                           | os.O_CLOEXEC, 0o444)
        self._size = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def pack_name(path: str) -> str | None:
    """The pack name of a file under packs/ (None if the file is not a pack)."""
    base = os.path.basename(path)
    name = base[:-len(SUFFIX)] if base.endswith(SUFFIX) else ""
    return name if name and all(c.isalnum() or c == "-" for c in name) else None


def entries(path: str) -> Iterator[tuple[BlobId, int, int]]:
    """(id, offset of the bytes, size) of every whole entry of a pack, in order; stops at a
    torn tail (an append a crash cut short) or anything that is not an entry."""
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + HEADER.size <= total:
            magic, raw_id, size = HEADER.unpack(f.read(HEADER.size))
            if magic != MAGIC or size > ENTRY_MAX or pos + HEADER.size + size > total:
                return
            yield BlobId(raw_id), pos + HEADER.size, size
            pos += HEADER.size + size
            f.seek(pos)
