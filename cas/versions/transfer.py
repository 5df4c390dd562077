"""Moving bytes between places: `pull` materializes link items into the store, `push` moves
local blobs to the store's S3 remote. Both work in batches, each finished with one
transaction, so an interrupted run keeps what it finished and a rerun does the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cas.blobs.catalog import get_blob, put_blob, scan_blobs
from cas.blobs.hashing import hash_file
from cas.blobs.repack import compact_packs
from cas.blobs.spool import spool_bytes
from cas.errors import HEAL_HINT, CasError, NotFound, StoreBusy
from cas.ids import BlobId
from cas.index import item_key
from cas.ingest.prepare import PrepareConfig, Prepared, Preparer, item_record, record_new_parts
from cas.model.namespace import raw_item
from cas.records import LINK, LOCAL, PACK, S3, STORED_HERE, BlobRecord, ItemRecord

if TYPE_CHECKING:
    from cas.store import Store

BATCH = 64
WORKERS = 8
MAX_REPORTED = 20

Progress = Callable[[int], object]  # its result is ignored (tqdm.update returns one)


@dataclass
class TransferReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(message)


# -- pull -------------------------------------------------------------------------------------
def link_items(store: Store, project: str, dataset: str | None) -> Iterator[tuple[str, str, ItemRecord]]:
    """Every link item of a project, or of a dataset and the datasets nested in it."""
    index = store.index
    datasets = [d for d in store.ns.datasets(project)
                if dataset is None or d == dataset or d.startswith(dataset + "/")]
    if dataset is not None and dataset not in datasets:
        raise NotFound(f"no dataset {project}/{dataset}")
    for d in datasets:
        batch: list[tuple[str, str, ItemRecord]] = []
        with index.read() as txn:
            for name, rec in store.ns.items(project, d, txn):
                blob = get_blob(index, txn, rec.media)
                if blob is not None and blob.location == LINK:
                    batch.append((d, name, rec))
        yield from batch


def count_links(store: Store, project: str, dataset: str | None) -> int:
    return sum(1 for _ in link_items(store, project, dataset))


def pull_links(store: Store, project: str, dataset: str | None = None,
               progress: Progress | None = None) -> TransferReport:
    """Fetch every link item of `project` (or `project/dataset`) and make it an ordinary item
    whose media is a blob of the store: read once, hashed (identical content dedups),
    width and height from the image header. An item whose URL fails is reported and
    stays a link."""
    report = TransferReport()
    with store.lock(what="pull"):
        preparer = Preparer(PrepareConfig(str(store.root), store.tmp_dir, project, store.ns.project(project).meta,
                                          check_conflicts=False, verify_dedup=False), store)
        pending = link_items(store, project, dataset)
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="cas-pull") as pool, closing(preparer):
            while True:
                batch = [b for b in (next(pending, None) for _ in range(BATCH)) if b is not None]
                if not batch:
                    break
                done = list(pool.map(lambda entry: _materialize(store, preparer, project, *entry), batch))
                _commit_pulled(store, project, batch, done, report)
                if progress is not None:
                    progress(len(batch))
    return report


def _materialize(store: Store, preparer: Preparer, project: str, dataset: str, name: str,
                 rec: ItemRecord) -> Prepared | CasError:
    label = f"{project}/{dataset}/img/{name}"
    try:
        with store.open(rec.media) as reader:
            data = reader.readall()
        ann: Any = store.read_json(rec.ann, f"{project}/{dataset}/ann/{name}.json")
        if ann.get("size") == {"height": rec.height, "width": rec.width} == {"height": 0, "width": 0} \
                and not ann.get("objects") and not ann.get("tags"):
            ann = None  # the placeholder of a link imported without its size: sized from the image now
        item_meta = store.read_json(rec.meta, label) if rec.meta is not None else None
        with store.index.read() as txn:
            return preparer.prepare(txn, dataset, name, data, ann, item_meta, label,
                                    f"{project}/{dataset}/ann/{name}.json")
    except CasError as e:  # the URL failed, or its content is not a valid image: reported, stays a link
        return e


def _commit_pulled(store: Store, project: str, batch: list[tuple[str, str, ItemRecord]],
                   done: list[Prepared | CasError], report: TransferReport) -> None:
    index = store.index
    new = {part.id: part for item in done if isinstance(item, Prepared) for part in item.parts() if part.new}
    if new:
        store.write_backend.sync()
    with index.write() as txn:
        record_new_parts(store, txn, new.values())
        for (dataset, name, old), item in zip(batch, done):
            if isinstance(item, CasError):
                report.fail(f"{project}/{dataset}/{name}: {item}")
                continue
            current = raw_item(index, txn, item_key(project, dataset, name))
            if current is None or not ItemRecord.decode(current).same_content(old):
                report.skipped += 1  # changed meanwhile: leave the newer state alone
                continue
            rec = replace(item_record(item), mtime=old.mtime)
            store.ns.put_item(txn, project, dataset, name, rec, overwrite=True)
            report.done += 1
            report.bytes += item.media.size


# -- push -------------------------------------------------------------------------------------
def local_blobs(store: Store, only: set[bytes] | None = None) -> Iterator[list[tuple[BlobId, BlobRecord]]]:
    """Local blobs (of `only`, if given) in batches (each read in its own short transaction)."""
    after = b""
    while True:
        batch: list[tuple[BlobId, BlobRecord]] = []
        with store.index.read() as txn:
            for key, raw in scan_blobs(store.index, txn, after):
                rec = BlobRecord.decode(raw)
                after = key
                if rec.location in STORED_HERE and (only is None or key in only):
                    batch.append((BlobId(key), rec))
                    if len(batch) >= BATCH * 4:
                        break
        if not batch:
            return
        yield batch


def count_local(store: Store) -> tuple[int, int]:
    n = size = 0
    for batch in local_blobs(store):
        n += len(batch)
        size += sum(rec.size for _id, rec in batch)
    return n, size


def push_blobs(store: Store, progress: Progress | None = None, only: set[bytes] | None = None) -> TransferReport:
    """Upload every local blob (of `only`, if given) to the S3 remote (digest checked first),
    record it as in S3, then delete the local file (and rewrite the packs the packed ones
    left, unless an import is running: then the next gc does). A blob is recorded as moved
    only after S3 acknowledged it."""
    s3 = store.s3
    if s3 is None:
        raise CasError(f"the store at {store.root} has no S3 remote (cas init --s3 s3://bucket/prefix)")
    report = TransferReport()
    packs_left = False
    with store.lock(what="push"), ThreadPoolExecutor(WORKERS, thread_name_prefix="cas-push") as pool:
        for batch in local_blobs(store, only):
            results = list(pool.map(lambda entry: _upload(store, *entry), batch))
            moved = [(blob_id, rec) for (blob_id, rec), error in zip(batch, results) if error is None]
            for error in results:
                if error is not None:
                    report.fail(error)
            with store.index.write() as txn:
                for blob_id, _rec in moved:
                    current = get_blob(store.index, txn, blob_id)
                    if current is not None and current.location in STORED_HERE:
                        put_blob(store.index, txn, blob_id, replace(current, location=S3, pack=None, offset=0))
            for blob_id, rec in moved:  # only once the records point at S3 (a pack's copy goes at gc)
                if rec.location == LOCAL:
                    store.local.delete(blob_id)
                report.done += 1
                report.bytes += rec.size
            if progress is not None:
                progress(sum(rec.size for _id, rec in batch))
            packs_left |= any(rec.location == PACK for _id, rec in moved)
    if packs_left:
        try:  # the packs the blobs left, now that nothing else runs (else the next gc does it)
            with store.lock(exclusive=True, what="reclaim packs"):
                compact_packs(store)
        except StoreBusy:
            pass
    return report


def _upload(store: Store, blob_id: BlobId, rec: BlobRecord) -> str | None:
    assert store.s3 is not None
    if rec.location == PACK:  # small: read (and verified) whole
        try:
            store.s3.install(spool_bytes(store.read_bytes(blob_id)), store.tmp_dir)
        except CasError as e:
            return f"blob {blob_id}: {e}"
        return None
    path = store.local.path(blob_id)
    try:
        digest, size = hash_file(path)
    except OSError as e:
        return f"blob {blob_id}: {e.strerror} ({path})"
    if digest != blob_id or size != rec.size:
        return f"blob {blob_id}: local file is corrupt (digest {digest}, {size} bytes); not pushed; {HEAL_HINT}"
    try:
        assert store.s3 is not None
        store.s3.upload_file(path, blob_id)
    except CasError as e:
        return str(e)
    return None
