"""The store: index plus backend. The one way converters, the FUSE view and the CLI reach the engine."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cas.blobs.backends import Backend
from cas.blobs.backends.local import LocalBackend
from cas.blobs.backends.places import Places
from cas.blobs.cache import BlobCache
from cas.blobs.catalog import adjust_pin, get_blob, known_intact, put_blob, record_new_blob
from cas.blobs.hashing import hash_bytes
from cas.blobs.pack_runs import PackRuns
from cas.blobs.reader import ONE_READ, BlobReader
from cas.blobs.spool import Spooled, spool_bytes, spool_path, spool_stream
from cas.config import NetOptions, StoreConfig, settings
from cas.errors import CasError, NotFound
from cas.ids import BlobId
from cas.index import REBUILD_HINT, Index
from cas.locks import store_lock
from cas.model.annotation import Meta, loads
from cas.model.namespace import Namespace
from cas.outputs import new_file
from cas.records import S3PACK, BlobRecord

if TYPE_CHECKING:
    from cas.blobs.backends.s3 import S3Backend
    from cas.blobs.remote_reader import RemoteReader

Source = str | os.PathLike[str] | bytes | BinaryIO
STORE_DATA = ("blobs", "packs", "refs", "config.json")  # what a store holds besides its index


def has_store_data(root: Path) -> bool:
    """Whether `root` holds a store's blobs, packs, refs or config (with or without an index)."""
    return any((root / name).exists() for name in STORE_DATA)


class Store:
    """A content-addressed store at `root`: `<root>/index` (LMDB), `<root>/blobs`, `<root>/tmp`,
    `<root>/config.json`, and for remote blobs `<root>/cache`.

    New blobs go to S3 when the store has an S3 remote (`config.json`), else to `blobs/`.

    `Store(root)` opens an existing store and never creates one (a mistyped path is an error);
    `Store.init(root)` creates one, as `cas init` does.

    >>> store = Store.init("/data/cas")
    >>> blob = store.put(b"hello")
    >>> store.read_bytes(blob)
    b'hello'
    """

    def __init__(self, root: str | os.PathLike[str], net: NetOptions | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        if not (self.root / "index" / "data.mdb").exists():
            if has_store_data(self.root):
                raise NotFound(f"the cas store at {self.root} has lost its index ({self.root}/index/data.mdb "
                               f"is missing): {REBUILD_HINT}")
            raise NotFound(f"no cas store at {self.root} (`cas init` or, in Python, `Store.init` creates one)")
        self.index = Index(self.root / "index")
        self.config = StoreConfig.load(self.root)
        self.net = net or settings().net
        self.local = LocalBackend(self.root)  # blobs/, packs/ and tmp/ on this machine
        self.s3: S3Backend | None = None
        self.write_backend: Backend = self.local  # where new blobs go
        self._connect()
        self.tmp_dir = str(self.local.tmp_dir)
        self.ns = Namespace(self.index)
        self._cache: BlobCache | None = None
        self._cache_lock = threading.Lock()
        self._pack_runs: PackRuns | None = None
        self._private_cache: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def init(cls, root: str | os.PathLike[str], net: NetOptions | None = None) -> Store:
        """Create a store at `root` (or open the one there): the Python API's `cas init`. A
        store that lost its index is refused: an empty index would make every blob an orphan
        for `gc` (`cas fsck --rebuild-index` rebuilds it instead)."""
        path = Path(root).expanduser().resolve()
        if not (path / "index" / "data.mdb").exists():
            if has_store_data(path):
                raise CasError(f"the cas store at {path} has lost its index; `cas init` would start an empty "
                               f"one over its blobs: {REBUILD_HINT}")
            Index(path / "index", create=True).close()
        return cls(path, net)

    @property
    def cache(self) -> BlobCache:
        """The cache of remote blobs (made on first use). A store on a read-only file system
        caches in a temporary directory of this process's, removed when the store closes."""
        with self._cache_lock:
            if self._cache is None:
                where = self.root
                if self.index.read_only:
                    self._private_cache = tempfile.TemporaryDirectory(prefix="cas-cache-")
                    where = Path(self._private_cache.name)
                self._cache = BlobCache(where, self.config.cache_size)
            return self._cache

    @property
    def pack_runs(self) -> PackRuns:
        """Runs of the S3 pack objects in the cache, for readers that walk (`cas.blobs.pack_runs`)."""
        with self._cache_lock:
            if self._pack_runs is None:
                self._pack_runs = PackRuns(self)
            return self._pack_runs

    def save_config(self) -> None:
        self.config.save(self.root)
        self._connect()

    def _connect(self) -> None:
        """The S3 backend of the configured remote, if any (boto3 loads only then)."""
        self.s3 = None
        if self.config.s3:
            from cas.blobs.backends.s3 import S3Backend
            self.s3 = S3Backend(self.config.s3, self.net)
        self.write_backend = self.s3 or self.local
        self.places = Places(self.local, self.s3, self.net, self.config, str(self.root))

    def close(self) -> None:
        if self._pack_runs is not None:
            self._pack_runs.close()
        self.flush_cache_counters()
        self.index.close()
        if self._private_cache is not None:
            self._private_cache.cleanup()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self, exclusive: bool = False, what: str = "write") -> Any:
        return store_lock(self.root, exclusive, what)

    # -- blobs ----------------------------------------------------------------
    def spool(self, source: Source, tmp_dir: str | None = None, owned: bool = False) -> Spooled:
        """Read a source once, hashing it (see `cas.blobs.spool`); large content goes to `tmp_dir`
        (`owned`: a path of the store's own, linked rather than copied)."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            return spool_bytes(bytes(source))
        if isinstance(source, (str, os.PathLike)):
            return spool_path(os.fspath(source), tmp_dir or self.tmp_dir, owned)
        return spool_stream(source, tmp_dir or self.tmp_dir)

    def put(self, source: Source, pin: bool = True) -> BlobId:
        """Store bytes (a path, bytes or a binary stream), durably, and hold one reference on
        them (call `release` to drop it). Known content writes nothing, unless fsck found the
        stored copy damaged: then these bytes heal it.

        With `pin=False` no reference is taken: the caller references the blob itself, in a
        later transaction, while holding `lock()` so that `gc` cannot interleave.
        """
        with self.lock():
            spooled = self.spool(source)
            try:
                with self.index.read() as txn:
                    known = known_intact(self.index, txn, spooled.id)
                if not known:  # new, or damaged: these bytes replace the damaged ones
                    self.write_backend.install(spooled, self.tmp_dir)
                    self.write_backend.sync()
                with self.index.write() as txn:
                    record_new_blob(self.index, txn, spooled.id, spooled.size, self.write_backend.location)
                    if pin:
                        adjust_pin(self.index, txn, spooled.id, +1)
            finally:
                spooled.discard()
        return spooled.id

    def release(self, blob_id: BlobId) -> None:
        """Drop one reference taken by `put`; unreferenced blobs are freed by `gc`."""
        with self.index.write() as txn:
            adjust_pin(self.index, txn, blob_id, -1)

    def stat(self, blob_id: BlobId) -> BlobRecord:
        """The blob's record (a read of the index, nothing else: NotFound if it has none)."""
        with self.index.read() as txn:
            rec = get_blob(self.index, txn, blob_id)
        if rec is None:
            raise NotFound(f"no blob {blob_id}")
        return rec

    def adopt_remote(self, blob_id: BlobId) -> BlobRecord | None:
        """A blob this index does not know but the shared S3 remote has (another store pushed
        it, e.g. in a version this store pulled): recorded here as remote, where it is. The
        versions layer calls it, for the version objects and trees it reads (see
        `cas.versions.trees`); the read path never does."""
        if self.s3 is None:
            return None
        self.record_remote({blob_id: -1})
        return self.stat(blob_id) if self.has(blob_id) else None

    def record_remote(self, sizes: dict[BlobId, int]) -> None:
        """Record the blobs of `sizes` (id -> size, -1 if unknown) that the shared remote holds
        and this index does not know, where the remote has them: in a pack object (its index
        says; the indexes are read once per process: one listing and one read per pack) or as
        an object of its own (a HEAD each, only for blobs of unknown size, tried before the
        listing: the version and tree objects adopted one by one). Known blobs stay as they are."""
        assert self.s3 is not None
        with self.index.read() as txn:
            unknown = {b: n for b, n in sizes.items() if get_blob(self.index, txn, b) is None}
        if not unknown:
            return
        packed = self.s3.find_packed(set(unknown), refresh=False)
        alone: dict[BlobId, int] = {}
        for blob_id, size in unknown.items():
            if blob_id not in packed and size < 0 and (head := self.s3.size_of(blob_id)) is not None:
                alone[blob_id] = head
        rest = {b for b in unknown if b not in packed and b not in alone}
        if rest:
            packed.update(self.s3.find_packed(rest))
            alone.update({b: unknown[b] for b in rest if b not in packed and unknown[b] >= 0})
        with self.index.write() as txn:
            for blob_id, (name, entry) in packed.items():
                record_new_blob(self.index, txn, blob_id, entry.size, S3PACK, packed=(name, entry.offset))
            for blob_id, size in alone.items():
                record_new_blob(self.index, txn, blob_id, size, self.s3.location)

    def has(self, blob_id: BlobId) -> bool:
        with self.index.read() as txn:
            return get_blob(self.index, txn, blob_id) is not None

    def open(self, blob_id: BlobId) -> BlobReader | RemoteReader:
        """A random-access reader (pread); a full sequential read is digest-verified.
        Remote blobs (S3, links) are read through the cache."""
        rec = self.stat(blob_id)
        place = self.places.of(rec)
        if place.here:
            try:
                fd, base = place.open_fd(blob_id, rec)
                return BlobReader(fd, blob_id, rec.size, base=base)
            except NotFound:
                rec = self.stat(blob_id)  # `cas push` may have moved it to S3 meanwhile
                place = self.places.of(rec)
                if place.here:
                    raise
        expect = rec.content_digest(blob_id)
        if expect is not None:
            cached = self.cache.open(blob_id, rec.size)
            if cached is not None:
                return BlobReader(cached, expect, rec.size, on_corrupt=lambda: self.cache.drop(blob_id))
        if place.packed:  # an entry of an S3 pack: from its run in the cache, or fetching that run
            in_run = self.pack_runs.reader(blob_id, rec)
            if in_run is not None:
                return in_run
        self.cache.note_miss(rec.size)
        from cas.blobs.remote_reader import RemoteReader  # urllib3: only for remote blobs
        return RemoteReader(place.fetcher(blob_id, rec), blob_id, rec.size, expect, rec.etag, self.cache, self.net,
                            learn=lambda size, etag, digest: self.learn_link(blob_id, size, etag, digest))

    def learn_link(self, link: BlobId, size: int, etag: str | None, digest: BlobId) -> None:
        """Record what a full read of a link found: its size, ETag and content digest."""
        from dataclasses import replace
        if self.index.read_only:
            return  # nobody can record it here: each full read learns it again
        with self.index.write() as txn:
            rec = get_blob(self.index, txn, link)
            if rec is not None and rec.url is not None:  # a link's record (only links keep a URL)
                put_blob(self.index, txn, link, replace(rec, size=size, etag=rec.etag or etag, digest=digest))

    def flush_cache_counters(self) -> None:
        """Add this process's cache hits and misses to the totals kept in the index."""
        if self._cache is None or not any(self._cache.counters.as_list()) or self.index.read_only:
            return
        counters, self._cache.counters = self._cache.counters, type(self._cache.counters)()
        counters.add_to_totals(self.index)

    def read_bytes(self, blob_id: BlobId) -> bytes:
        """The whole blob, verified. A small one stored here takes one open, one pread and
        one digest (the training loader's and the exports' hot path)."""
        rec = self.stat(blob_id)
        place = self.places.of(rec)
        if place.here and 0 < rec.size <= ONE_READ:
            try:
                data = place.read_range(blob_id, rec, 0, rec.size)
            except NotFound:
                data = b""
            if len(data) == rec.size and hash_bytes(data) == blob_id:
                return data
        with self.open(blob_id) as reader:  # elsewhere, large, moved or damaged: the reader says what is wrong
            return reader.readall()

    def read_many(self, blob_ids: Iterable[BlobId]) -> Iterator[tuple[BlobId, bytes]]:
        """(id, verified bytes) of each blob, in the order given, read ahead in parallel:
        neighbours in one S3 pack object come in one ranged GET (see `cas.blobs.batch_reader`);
        other blobs are read one each, through the cache when remote."""
        from cas.blobs.batch_reader import read_many
        return read_many(self, blob_ids)

    def read_json(self, blob_id: BlobId, label: str) -> Any:
        return loads(self.read_bytes(blob_id), label)

    def copy_to(self, blob_id: BlobId, dest: str | os.PathLike[str] | BinaryIO) -> int:
        """Write a blob to a path (atomically, via a temp file beside it) or a stream; verified."""
        if not isinstance(dest, (str, os.PathLike)):
            with self.open(blob_id) as reader:
                while chunk := reader.read(1 << 22):
                    dest.write(chunk)
                if reader.size == 0:
                    reader.readall()
                return reader.size
        with new_file(Path(dest)) as out:
            return self.copy_to(blob_id, out)

    # -- namespace helpers ------------------------------------------------------
    def set_meta(self, project: str, meta: dict[str, Any]) -> None:
        """Replace a project's meta after checking every existing annotation against it."""
        checked = Meta(meta, f"{project}/meta.json")
        with self.index.write() as txn:
            self.ns.project(project, txn)
            for dataset in self.ns.datasets(project, txn):
                for name, rec in self.ns.items(project, dataset, txn):
                    label = f"{project}/{dataset}/ann/{name}.json"
                    checked.check_item_annotation(self.read_json(rec.ann, label), label)
            self.ns.write_meta(txn, project, checked.raw)

