"""Where a blob's bytes are: one narrow protocol, `Place`, implemented once per location
(a local file, an entry of a local pack, an S3 object, an entry of an S3 pack object, a
link's URL), and `Places.of(record)`, the one place that picks the implementation from a
`BlobRecord`. Writing is the narrower `Backend` protocol (cas.blobs.backends) of the two write
targets, the local disk and S3; a push writes S3 pack objects (cas.versions.transfer).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from cas.blobs.backends.fetch import Fetcher, Stream
from cas.blobs.backends.packs import HEADER, MAGIC, entries
from cas.blobs.backends.s3packs import BadPack
from cas.errors import HEAL_HINT, NotFound
from cas.ids import BlobId
from cas.records import LINK, LOCAL, PACK, S3, S3PACK, BlobRecord

if TYPE_CHECKING:
    from cas.blobs.backends.local import LocalBackend
    from cas.blobs.backends.s3 import S3Backend
    from cas.config import NetOptions, StoreConfig


class Place(Protocol):
    """The bytes of the blobs of one location. `rec` is the blob's record (a pack entry's
    name and offset, a link's URL). Reads are not verified: the store's readers check what
    they read against the id."""

    location: str  # as recorded in BlobRecord.location
    here: bool  # bytes on this machine, read by `open_fd`; else remote, read by `fetcher` through the cache
    owns_bytes: bool  # the store's own bytes (listed, deleted); a link's are not
    packed: bool  # an entry of a pack (the record keeps its pack and offset); freed when the pack is rewritten

    def read_range(self, blob_id: BlobId, rec: BlobRecord, offset: int, length: int) -> bytes:
        """Up to `length` bytes of the blob from `offset` (fewer only at its end; NotFound if absent)."""

    def size_of(self, blob_id: BlobId, rec: BlobRecord) -> int | None:
        """The size of the bytes there (None: they are not)."""

    def delete(self, blob_id: BlobId, rec: BlobRecord) -> int:
        """Free the bytes that are the blob's alone (absent ones are no error); returns the bytes
        freed: 0 for an entry of a pack (freed when its pack is rewritten) and for a link."""

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        """Every blob there as (id, or None if not one of ours, path or URL, size)."""

    def open_fd(self, blob_id: BlobId, rec: BlobRecord) -> tuple[int, int]:
        """(file descriptor, offset of the blob's first byte) of bytes `here`; NotFound if absent."""

    def fetcher(self, blob_id: BlobId, rec: BlobRecord) -> Fetcher:
        """A fetcher of exactly the blob's bytes, for a place not `here`."""

    def file_of(self, blob_id: BlobId, rec: BlobRecord) -> str | None:
        """The file on this machine that holds the bytes (None for a place not `here`)."""

    def describe(self, blob_id: BlobId, rec: BlobRecord) -> str:
        """Where the bytes are, for a user."""


class _Here:
    """What the places on this machine share: reads are preads of `open_fd`."""

    here = True
    owns_bytes = True
    packed = False

    def open_fd(self, blob_id: BlobId, rec: BlobRecord) -> tuple[int, int]:
        raise NotImplementedError

    def read_range(self, blob_id: BlobId, rec: BlobRecord, offset: int, length: int) -> bytes:
        fd, base = self.open_fd(blob_id, rec)
        try:
            return os.pread(fd, max(min(length, rec.size - offset), 0), base + offset)
        finally:
            os.close(fd)

    def fetcher(self, blob_id: BlobId, rec: BlobRecord) -> Fetcher:
        raise NotImplementedError("bytes on this machine are read by open_fd")


class LocalFiles(_Here):
    """A file per blob, `<store>/blobs/ab/cd/<hex>`."""

    location = LOCAL

    def __init__(self, local: LocalBackend) -> None:
        self.local = local

    def open_fd(self, blob_id: BlobId, rec: BlobRecord) -> tuple[int, int]:
        return self.local.open_fd(blob_id), 0

    def file_of(self, blob_id: BlobId, rec: BlobRecord) -> str | None:
        return self.local.path(blob_id)

    def describe(self, blob_id: BlobId, rec: BlobRecord) -> str:
        return "its loose file"

    def read_range(self, blob_id: BlobId, rec: BlobRecord, offset: int, length: int) -> bytes:
        return self.local.read_range(blob_id, offset, length)  # the file's size, not the record's

    def size_of(self, blob_id: BlobId, rec: BlobRecord) -> int | None:
        try:
            return os.stat(self.local.path(blob_id)).st_size
        except FileNotFoundError:
            return None

    def delete(self, blob_id: BlobId, rec: BlobRecord) -> int:
        return self.local.delete(blob_id)

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        return self.local.list_ids()


class LocalPacks(_Here):
    """An entry of a pack file `<store>/packs/<name>.pack` (cas.blobs.backends.packs)."""

    location = PACK
    packed = True

    def __init__(self, local: LocalBackend) -> None:
        self.local = local

    def open_fd(self, blob_id: BlobId, rec: BlobRecord) -> tuple[int, int]:
        assert rec.pack is not None
        return self.local.open_pack(rec.pack), rec.offset

    def file_of(self, blob_id: BlobId, rec: BlobRecord) -> str | None:
        assert rec.pack is not None
        return self.local.pack_path(rec.pack)

    def describe(self, blob_id: BlobId, rec: BlobRecord) -> str:
        return f"pack {rec.pack} at offset {rec.offset}"

    def size_of(self, blob_id: BlobId, rec: BlobRecord) -> int | None:
        """The entry's size when its header, just before the bytes, names this blob."""
        try:
            fd, base = self.open_fd(blob_id, rec)
        except NotFound:
            return None
        try:
            raw = os.pread(fd, HEADER.size, base - HEADER.size) if base >= HEADER.size else b""
            whole = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if len(raw) != HEADER.size:
            return None
        magic, raw_id, size = HEADER.unpack(raw)
        return size if magic == MAGIC and raw_id == bytes(blob_id) and base + size <= whole else None

    def delete(self, blob_id: BlobId, rec: BlobRecord) -> int:
        return 0

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        for name, path, _size in self.local.list_packs():
            if name is not None:
                for blob_id, offset, size in entries(path):
                    yield blob_id, f"{path}@{offset}", size


class _Remote:
    """What the remote places share: reads are GETs of `fetcher`."""

    here = False
    owns_bytes = True
    packed = False

    def open_fd(self, blob_id: BlobId, rec: BlobRecord) -> tuple[int, int]:
        raise NotImplementedError("remote bytes are read by fetcher")

    def file_of(self, blob_id: BlobId, rec: BlobRecord) -> str | None:
        return None


class S3Objects(_Remote):
    """An S3 object per blob, `<prefix>/blobs/<hex>`."""

    location = S3

    def __init__(self, s3: S3Backend) -> None:
        self.s3 = s3

    def fetcher(self, blob_id: BlobId, rec: BlobRecord) -> Fetcher:
        return self.s3.fetcher(blob_id)

    def describe(self, blob_id: BlobId, rec: BlobRecord) -> str:
        return f"S3 object {self.s3.url(blob_id)}"

    def read_range(self, blob_id: BlobId, rec: BlobRecord, offset: int, length: int) -> bytes:
        return self.s3.read_range(blob_id, offset, length)

    def size_of(self, blob_id: BlobId, rec: BlobRecord) -> int | None:
        return self.s3.size_of(blob_id)

    def delete(self, blob_id: BlobId, rec: BlobRecord) -> int:
        self.s3.delete(blob_id)
        return max(rec.size, 0)

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        return self.s3.list_ids()


class SliceFetcher:
    """The bytes [base, base + size) of an object, fetched as if they were an object."""

    def __init__(self, inner: Fetcher, base: int, size: int) -> None:
        self.inner = inner
        self.base = base
        self.size = size
        self.url = f"{inner.url} (bytes {base}-{base + size - 1})"

    def head(self) -> tuple[int, str | None]:
        return self.size, None

    def open(self, start: int, end: int | None = None) -> Stream:
        stop = self.size if end is None else min(end, self.size)
        if start >= stop:
            return Stream(self.size, None, iter(()), lambda: None)
        stream = self.inner.open(self.base + start, self.base + stop)
        return Stream(self.size, None, stream.chunks, stream.close)


class S3Packs(_Remote):
    """An entry of a pack object `<prefix>/packs/<name>.pack` (cas.blobs.backends.s3packs)."""

    location = S3PACK
    packed = True

    def __init__(self, s3: S3Backend) -> None:
        self.s3 = s3

    def fetcher(self, blob_id: BlobId, rec: BlobRecord) -> Fetcher:
        from cas.blobs.backends.fetch import S3Fetcher
        assert rec.pack is not None
        whole = S3Fetcher(self.s3.client, self.s3.remote.bucket, self.s3.pack_key(rec.pack))
        return SliceFetcher(whole, rec.offset, rec.size)

    def describe(self, blob_id: BlobId, rec: BlobRecord) -> str:
        assert rec.pack is not None
        return f"S3 pack object {self.s3.pack_url(rec.pack)} at offset {rec.offset}"

    def read_range(self, blob_id: BlobId, rec: BlobRecord, offset: int, length: int) -> bytes:
        assert rec.pack is not None
        length = min(length, rec.size - offset)
        return self.s3.get_range(self.s3.pack_key(rec.pack), rec.offset + offset, length, f"pack {rec.pack}")

    def size_of(self, blob_id: BlobId, rec: BlobRecord) -> int | None:
        """The entry's size when the pack's index lists this blob at the recorded offset."""
        assert rec.pack is not None
        try:
            listed = self.s3.pack_entries(rec.pack)
        except (NotFound, BadPack):
            return None
        return next((e.size for e in listed if e.blob_id == blob_id and e.offset == rec.offset), None)

    def delete(self, blob_id: BlobId, rec: BlobRecord) -> int:
        return 0

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        for name, url, size in self.s3.list_packs():
            if name is not None:
                for e in self.s3.pack_entries(name, size):
                    yield e.blob_id, f"{url}@{e.offset}", e.size


class Links:
    """A link's URL (http, https, s3, file): read, never listed nor deleted (not our bytes)."""

    location = LINK
    here = False
    owns_bytes = False
    packed = False

    def __init__(self, net: NetOptions, config: StoreConfig) -> None:
        self.net = net
        self.config = config

    def fetcher(self, blob_id: BlobId, rec: BlobRecord) -> Fetcher:
        from cas.blobs.links import fetcher_for
        assert rec.url is not None
        return fetcher_for(rec.url, self.net, self.config.allow_roots, self.config.s3)

    def open_fd(self, blob_id: BlobId, rec: BlobRecord) -> tuple[int, int]:
        raise NotImplementedError("a link is read by fetcher")

    def file_of(self, blob_id: BlobId, rec: BlobRecord) -> str | None:
        return None

    def describe(self, blob_id: BlobId, rec: BlobRecord) -> str:
        return f"its link {rec.url}"

    def read_range(self, blob_id: BlobId, rec: BlobRecord, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        stream = self.fetcher(blob_id, rec).open(offset, offset + length)
        try:
            return b"".join(stream.chunks)
        finally:
            stream.close()

    def size_of(self, blob_id: BlobId, rec: BlobRecord) -> int | None:
        return self.fetcher(blob_id, rec).head()[0]

    def delete(self, blob_id: BlobId, rec: BlobRecord) -> int:
        return 0

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        return iter(())


class Traits(NamedTuple):
    """What a location's bytes are, known from the location alone (no backend needed)."""

    here: bool
    owns_bytes: bool
    packed: bool


_TRAITS = {cls.location: Traits(cls.here, cls.owns_bytes, cls.packed)
           for cls in (LocalFiles, LocalPacks, S3Objects, S3Packs, Links)}


def traits(location: str | None) -> Traits | None:
    """The traits of a recorded location (None: not one this code knows), for code that sorts
    records without reading them (a scan over every record: one dict lookup each)."""
    return _TRAITS.get(location) if location is not None else None


class Places:
    """The place of every location a store can record; `of` picks one from a record."""

    def __init__(self, local: LocalBackend, s3: S3Backend | None, net: NetOptions, config: StoreConfig,
                 root: str) -> None:
        self.root = root
        found: list[Place] = [LocalFiles(local), LocalPacks(local), Links(net, config)]
        if s3 is not None:
            found += [S3Objects(s3), S3Packs(s3)]
        self._by_location = {place.location: place for place in found}

    def of(self, rec: BlobRecord) -> Place:
        """The place of a blob's bytes (NotFound for S3 ones when the store has no remote)."""
        place = self._by_location.get(rec.location)
        if place is None:
            if rec.location in (S3, S3PACK):
                raise NotFound(f"the blob is in S3 but the store has no S3 remote in {self.root}/config.json")
            raise NotFound(f"unknown blob location {rec.location!r}; {HEAL_HINT}")
        return place

    def all(self) -> list[Place]:
        return list(self._by_location.values())
