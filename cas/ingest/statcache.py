"""The stat cache: a file imported before and unchanged since is not read again.

As git's index, DVC's state and restic's parent snapshot do, the index keeps, per file
imported from a path, (device, inode) -> (size, mtime_ns, ctime_ns, blob id, image facts,
when the file was looked at). A later import that finds the same five facts takes the blob
id and the image's size from here and reads no byte.

Every change to a file's content moves its mtime or ctime, and a replaced file has a new
inode (or, when an inode is reused, a new ctime), with one exception: timestamps are coarse
(a kernel tick, 2 s on FAT), so a file changed again within one tick of being looked at may
keep all five facts. As git does for such "racily clean" entries, an entry is trusted only
when the file's mtime and ctime lie more than RACY_NS before the moment it was looked at;
otherwise the file is hashed again, and the entry refreshed with the new moment.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cas.blobs.catalog import has_blob, raw_blob_getter
from cas.ids import BlobId
from cas.index import Index
from cas.model.media import MediaInfo, info_fields, info_of
from cas.records import pack, unpack

RACY_NS = 3_000_000_000  # more than any file system's timestamp granularity (FAT: 2 s)
DB = "stat"


def key(st: os.stat_result) -> bytes:
    return st.st_dev.to_bytes(8, "big") + st.st_ino.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Seen:
    """What the cache knows of a file: its blob and the image facts probed from it."""

    blob: BlobId
    size: int
    info: MediaInfo


def entry(st: os.stat_result, looked_at_ns: int, blob: BlobId, info: MediaInfo) -> tuple[bytes, bytes]:
    """The (key, value) to record for a file stat'ed as `st` at `looked_at_ns`, before it was read."""
    return key(st), pack([st.st_size, st.st_mtime_ns, st.st_ctime_ns, looked_at_ns, bytes(blob),
                          info.width, info.height, info.mime, info_fields(info)])


def trusted(st: os.stat_result, size: int, mtime_ns: int, ctime_ns: int, looked_at_ns: int) -> bool:
    """Whether a file stat'ed as `st` is the one an entry describes, unchanged (see the module
    docstring for the racy-timestamp rule)."""
    return ((st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (size, mtime_ns, ctime_ns)
            and max(mtime_ns, ctime_ns) + RACY_NS < looked_at_ns)


def is_empty(index: Index) -> bool:
    """Whether the cache has no entry at all (then no file need be looked up)."""
    with index.read() as txn:
        return index.count(txn, DB) == 0


def lookup(index: Index, txn: Any, path: str) -> Seen | None:
    """The cached facts of the file at `path`, or None when it must be read (unknown,
    changed, racily clean, or its blob is gone from the index)."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # the reader reports it
    raw = index.get(txn, DB, key(st))
    if raw is None:
        return None
    size, mtime_ns, ctime_ns, looked_at_ns, blob, width, height, mime, extra = unpack(raw)
    if not trusted(st, size, mtime_ns, ctime_ns, looked_at_ns) or not has_blob(index, txn, blob):
        return None
    if isinstance(extra, int):  # a video's entry from before the store kept its duration: read it again
        return None
    info = info_of(width, height, mime, extra)
    return Seen(BlobId(blob), size, info)


def record(index: Index, txn: Any, entries: Iterable[tuple[bytes, bytes]]) -> None:
    """Keep the (key, value) entries made by `entry`, once their blobs are durable."""
    for k, value in entries:
        index.put(txn, DB, k, value)


def _blob_of(raw: bytes) -> bytes:
    """The blob id an encoded entry names."""
    return unpack(raw)[4]


def stale(index: Index, txn: Any, gone: Collection[bytes] = ()) -> Iterator[bytes]:
    """The keys of the entries whose blob the index does not have, or is in `gone`."""
    blob = raw_blob_getter(index, txn)
    return (k for k, raw in index.scan(txn, DB) if (b := _blob_of(raw)) in gone or blob(b) is None)


def prune(index: Index, txn: Any, damaged: Collection[bytes] = ()) -> int:
    """Drop the entries whose blob the index no longer has (after gc), or whose blob is in
    `damaged` (fsck found its bytes bad: the file must be read again); how many."""
    keys = list(stale(index, txn, damaged))
    for k in keys:
        index.delete(txn, DB, k)
    return len(keys)
