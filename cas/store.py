"""The store: index plus backend. The one way converters, the FUSE view and the CLI reach the engine."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .annotation import Meta, loads
from .errors import NotFound
from .backends.local import LocalBackend
from .ids import BlobId
from .index import Index
from .locks import store_lock
from .namespace import Namespace
from .reader import BlobReader
from .records import BlobRecord
from .refs import adjust_pin, get_blob, record_new_blob
from .spool import Spooled, spool_bytes, spool_path, spool_stream

if TYPE_CHECKING:
    from .fsck import FsckReport
    from .gc import GcReport
    from .session import ImportSession

Source = str | os.PathLike[str] | bytes | BinaryIO


class Store:
    """A content-addressed store at `root`: `<root>/index` (LMDB), `<root>/blobs`, `<root>/tmp`.

    >>> store = Store("/data/cas")
    >>> blob = store.put(b"hello")
    >>> store.read_bytes(blob)
    b'hello'
    """

    def __init__(self, root: str | os.PathLike[str], create: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        if not create and not (self.root / "index" / "data.mdb").exists():
            raise NotFound(f"no cas store at {self.root} (run `cas init` first)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = Index(self.root / "index", create=create)
        self.backend = LocalBackend(self.root)
        self.tmp_dir = str(self.backend.tmp_dir)
        self.ns = Namespace(self.index)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self, exclusive: bool = False, what: str = "write") -> Any:
        return store_lock(self.root, exclusive, what)

    # -- blobs ----------------------------------------------------------------
    def spool(self, source: Source, tmp_dir: str | None = None) -> Spooled:
        """Read a source once, hashing it (see `cas.spool`); large content goes to `tmp_dir`."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            return spool_bytes(bytes(source))
        if isinstance(source, (str, os.PathLike)):
            return spool_path(os.fspath(source), tmp_dir or self.tmp_dir)
        return spool_stream(source, tmp_dir or self.tmp_dir)

    def put(self, source: Source, pin: bool = True) -> BlobId:
        """Store bytes (a path, bytes or a binary stream), durably, and hold one reference on
        them (call `release` to drop it). Known content writes nothing.

        With `pin=False` no reference is taken: the caller references the blob itself, in a
        later transaction, while holding `lock()` so that `gc` cannot interleave.
        """
        with self.lock():
            spooled = self.spool(source)
            try:
                with self.index.read() as txn:
                    known = get_blob(self.index, txn, spooled.id) is not None
                if not known:
                    self.backend.install(spooled.write_temp(self.tmp_dir), spooled.id)
                    spooled.tmp = None
                    self.backend.sync()
                with self.index.write() as txn:
                    record_new_blob(self.index, txn, spooled.id, spooled.size)
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
        with self.index.read() as txn:
            rec = get_blob(self.index, txn, blob_id)
        if rec is None:
            raise NotFound(f"no blob {blob_id}")
        return rec

    def has(self, blob_id: BlobId) -> bool:
        with self.index.read() as txn:
            return get_blob(self.index, txn, blob_id) is not None

    def open(self, blob_id: BlobId) -> BlobReader:
        """A random-access reader (pread); a full sequential read is digest-verified."""
        rec = self.stat(blob_id)
        return BlobReader(self.backend.open_fd(blob_id), blob_id, rec.size)

    def read_bytes(self, blob_id: BlobId) -> bytes:
        with self.open(blob_id) as reader:
            return reader.readall()

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
        dest = Path(dest)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                size = self.copy_to(blob_id, out)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return size

    # -- namespace helpers ------------------------------------------------------
    def meta(self, project: str) -> Meta:
        return Meta(self.ns.project(project).meta, f"{project}/meta.json")

    def set_meta(self, project: str, meta: dict[str, Any]) -> None:
        """Replace a project's meta after checking every existing annotation against it."""
        checked = Meta(meta, f"{project}/meta.json")
        with self.index.write() as txn:
            self.ns.project(project, txn)
            for dataset in self.ns.datasets(project, txn):
                for name, rec in self.ns.items(project, dataset, txn):
                    label = f"{project}/{dataset}/ann/{name}.json"
                    checked.check_annotation(self.read_json(rec.ann, label), label)
            self.ns.write_meta(txn, project, checked.raw)

    def begin_import(self, project: str, **options: Any) -> "ImportSession":
        """Start an atomic import into `project` (see `cas.session.ImportSession`)."""
        from .session import ImportSession
        return ImportSession(self, project, **options)

    # -- maintenance ------------------------------------------------------------
    def gc(self) -> "GcReport":
        from .gc import collect
        return collect(self)

    def fsck(self, repair: bool = False, verify: bool = True) -> "FsckReport":
        from .fsck import check
        return check(self, repair=repair, verify=verify)

    def stats(self) -> dict[str, Any]:
        from .stats import compute
        return compute(self)

