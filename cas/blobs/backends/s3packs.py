"""Pack objects in S3: many small blobs in one object, `<prefix>/packs/<name>.pack`.

One S3 object per small blob costs a PUT each (a 100k-item push: ~200k PUTs); a push gathers
the blobs up to `PACK_MAX` into pack objects instead, each uploaded with one PUT.

Layout of a pack object (all integers little-endian):

    entry*     the local pack entry (`packs.HEADER`: MAGIC b"CASb", 16-byte id, 4-byte size,
               then the bytes), end to end from offset 0: a pack object scans like a local pack
    trailer    INDEX_HEAD (b"CASi", u32 count), then `count` INDEX_ENTRY (16-byte id, u64 offset
               of the bytes, u32 size), in entry order
    footer     FOOTER (u64 offset of the trailer, 16-byte XXH3-128 of the trailer, b"CASe"): the
               last FOOTER.size bytes of the object

The index is thus inside the pack: one PUT per pack, and a reader of the index (a clone, an
adoption, fsck, gc) takes one suffix-range GET of the last `INDEX_READ` bytes (a second GET only
when the trailer is longer: packs of blobs under ~3.5 KB on average). `<name>` is 32 hex
digits, random: packs from several machines sharing a bucket never collide. A record of a blob
in a pack object has location `s3pack`, the pack's name and the offset of its bytes
(`cas.records.BlobRecord`); it is written only after S3 acknowledged the whole pack, so a pack
is never referenced before it exists. A pack object is never changed once written.

Size: a pack is closed once it holds `PACK_OBJECT_TARGET` bytes (32 MiB). PUTs cost ~12x a GET
and a 32 MiB pack makes them one per ~5,000 items of 5 KB (goal: one per 1,000), i.e. a request
cost that no longer counts; reads are ranged to the bytes of the blobs asked for (plus small
gaps when neighbours are coalesced), so a larger pack wastes nothing at read time. Against
going larger: a pack is written to a temporary file and sent in one PUT, and an interrupted
push redoes the packs in flight (up to `UPLOADS` x 32 MiB); repacking a pack (gc) rewrites at
most 32 MiB to reclaim its dead part.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cas.blobs.backends.packs import HEADER, MAGIC
from cas.blobs.hashing import hash_bytes
from cas.errors import CasError
from cas.ids import BlobId

PACKS_DIR = "packs/"  # under the remote's prefix
SUFFIX = ".pack"
PACK_OBJECT_TARGET = 32 << 20  # a pack object is closed past this many bytes
UPLOADS = 4  # pack objects built and uploaded at once by a push
INDEX_HEAD = struct.Struct("<4sI")
INDEX_MAGIC = b"CASi"
INDEX_ENTRY = struct.Struct("<16sQI")
FOOTER = struct.Struct("<Q16s4s")
FOOTER_MAGIC = b"CASe"
INDEX_READ = 256 << 10  # the suffix a reader of the index asks for first


class BadPack(CasError):
    """A pack object whose trailer or footer is not what this module writes."""


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one blob's bytes are in a pack object."""

    blob_id: BlobId
    offset: int  # of the bytes (past the entry header)
    size: int


class PackFile:
    """A pack object being written to a local file: `add` entries, then `finish` (the trailer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: list[PackEntry] = []
        self._f = open(path, "wb")  # noqa: SIM115 - closed by finish or close

    def add(self, blob_id: BlobId, data: bytes) -> PackEntry:
        self._f.write(HEADER.pack(MAGIC, blob_id, len(data)))
        entry = PackEntry(blob_id, self._f.tell(), len(data))
        self._f.write(data)
        self.entries.append(entry)
        return entry

    def finish(self) -> None:
        self._f.write(encode_trailer(self.entries, self._f.tell()))
        self._f.close()

    def close(self) -> None:
        self._f.close()


def new_pack_name() -> str:
    return os.urandom(16).hex()


def is_pack_name(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def pack_key_name(key_tail: str) -> str | None:
    """The pack name of a key's part under `packs/` (None: not a pack object of ours)."""
    name = key_tail[:-len(SUFFIX)] if key_tail.endswith(SUFFIX) else ""
    return name if is_pack_name(name) else None


def encode_trailer(entries: Iterable[PackEntry], trailer_offset: int) -> bytes:
    """The index trailer and footer that end a pack whose entries end at `trailer_offset`."""
    listed = list(entries)
    body = INDEX_HEAD.pack(INDEX_MAGIC, len(listed)) + b"".join(
        INDEX_ENTRY.pack(bytes(e.blob_id), e.offset, e.size) for e in listed)
    return body + FOOTER.pack(trailer_offset, bytes(hash_bytes(body)), FOOTER_MAGIC)


def trailer_offset(footer: bytes, object_size: int, what: str) -> int:
    """Where the trailer starts, from the last FOOTER.size bytes of a pack object."""
    if len(footer) != FOOTER.size:
        raise BadPack(f"{what}: too short for a pack object ({object_size} bytes)")
    offset, _digest, magic = FOOTER.unpack(footer)
    if magic != FOOTER_MAGIC or offset + INDEX_HEAD.size + FOOTER.size > object_size:
        raise BadPack(f"{what}: no pack index at its end (not a pack object, or cut short)")
    return offset


def decode_trailer(tail: bytes, what: str) -> list[PackEntry]:
    """The entries of a pack's index from its bytes from the trailer's start to the end,
    checked against the footer's digest."""
    body, footer = tail[:-FOOTER.size], tail[-FOOTER.size:]
    _offset, digest, magic = FOOTER.unpack(footer)
    magic_head, count = INDEX_HEAD.unpack_from(body) if len(body) >= INDEX_HEAD.size else (b"", -1)
    if magic != FOOTER_MAGIC or magic_head != INDEX_MAGIC or len(body) != INDEX_HEAD.size + count * INDEX_ENTRY.size:
        raise BadPack(f"{what}: its pack index is malformed")
    if hash_bytes(body) != BlobId(digest):
        raise BadPack(f"{what}: its pack index does not match its digest (damaged)")
    return [PackEntry(BlobId(raw), offset, size)
            for raw, offset, size in INDEX_ENTRY.iter_unpack(body[INDEX_HEAD.size:])]

