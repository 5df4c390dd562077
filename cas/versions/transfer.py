"""Moving bytes between places: `pull` materializes link items into the store, `push` moves
local blobs to the store's S3 remote. Both work in batches, each finished with one
transaction, so an interrupted run keeps what it finished and a rerun does the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cas.blobs.backends.packs import HEADER, PACK_MAX
from cas.blobs.backends.places import traits
from cas.blobs.backends.s3packs import PACK_OBJECT_TARGET, UPLOADS, new_pack_name
from cas.blobs.catalog import get_blob, put_blob, scan_blobs
from cas.blobs.hashing import hash_file
from cas.blobs.repack import compact_packs
from cas.blobs.spool import spool_bytes
from cas.errors import HEAL_HINT, CasError, NotFound, StoreBusy
from cas.ids import BlobId
from cas.index import item_key
from cas.ingest.prepare import PrepareConfig, Prepared, Preparer, item_record, record_new_parts
from cas.model.namespace import raw_item
from cas.records import S3, S3PACK, BlobRecord, ItemRecord
from cas.units import counted

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

    def fail(self, message: str, count: int = 1) -> None:
        """`count` blobs or items failed, for the reason `message` says."""
        self.failed += count
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(message)


# -- pull -------------------------------------------------------------------------------------

def _here(rec: BlobRecord) -> bool:
    kind = traits(rec.location)
    return kind is not None and kind.here


def _packed(rec: BlobRecord) -> bool:
    kind = traits(rec.location)
    return kind is not None and kind.packed


def _is_link(rec: BlobRecord) -> bool:
    """Bytes not the store's own (a link's URL): what a pull brings here."""
    kind = traits(rec.location)
    return kind is not None and not kind.owns_bytes

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
                if blob is not None and _is_link(blob):
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
                if _here(rec) and (only is None or key in only):
                    batch.append((BlobId(key), rec))
                    if len(batch) >= BATCH * 4:
                        break
        if not batch:
            return
        yield batch


def _in_item_order(store: Store, only: set[bytes] | None) -> Iterator[list[tuple[BlobId, BlobRecord]]]:
    """The local blobs of `local_blobs`, those of the items first, dataset by dataset in item
    order (media, annotation, item meta), so that a pack holds neighbours a reader walking a
    dataset asks for together; then the rest (trees, older versions' blobs) in id order."""
    seen: set[bytes] = set()
    for project in store.ns.projects():
        for dataset in store.ns.datasets(project):
            ids = [bytes(b) for _name, item in store.ns.items(project, dataset) for b in item.blobs()]
            for start in range(0, len(ids), BATCH * 4):
                batch = []
                with store.index.read() as txn:
                    for key in ids[start:start + BATCH * 4]:
                        rec = get_blob(store.index, txn, BlobId(key)) if key not in seen else None
                        if rec is not None and _here(rec) and (only is None or key in only):
                            seen.add(key)
                            batch.append((BlobId(key), rec))
                if batch:
                    yield batch
    for batch in local_blobs(store, only):
        rest = [(b, rec) for b, rec in batch if bytes(b) not in seen]
        if rest:
            yield rest


def count_local(store: Store) -> tuple[int, int]:
    n = size = 0
    for batch in local_blobs(store):
        n += len(batch)
        size += sum(rec.size for _id, rec in batch)
    return n, size


@dataclass
class _Moved:
    """A blob S3 acknowledged, and where it went (a pack object, or an object of its own)."""

    blob_id: BlobId
    rec: BlobRecord  # as it was when read
    pack: str | None = None
    offset: int = 0


def push_blobs(store: Store, progress: Progress | None = None, only: set[bytes] | None = None,
               packs: bool = True) -> TransferReport:
    """Upload every local blob (of `only`, if given) to the S3 remote, digest checked first:
    blobs up to PACK_MAX gathered into pack objects (cas.blobs.backends.s3packs; `packs=False`:
    each its own object, as before packs), larger ones an object each. A blob is recorded as
    moved only after S3 acknowledged its pack or object; then its local file is deleted (and
    the local packs the packed ones left are rewritten, unless an import is running: then the
    next gc does)."""
    s3 = store.s3
    if s3 is None:
        raise CasError(f"the store at {store.root} has no S3 remote (cas init --s3 s3://bucket/prefix)")
    report = TransferReport()
    packs_left = False
    uploads: set[Future[tuple[list[_Moved], list[tuple[str, int]]]]] = set()

    def finish(done: Iterable[Future[tuple[list[_Moved], list[tuple[str, int]]]]]) -> None:
        nonlocal packs_left
        for future in done:
            moved, errors = future.result()
            for error, count in errors:
                report.fail(error, count)
            packs_left |= _record_moved(store, moved, report, progress)

    with store.lock(what="push"), ThreadPoolExecutor(WORKERS, thread_name_prefix="cas-push") as pool, \
            ThreadPoolExecutor(UPLOADS, thread_name_prefix="cas-push-pack") as pack_pool:
        group: list[tuple[BlobId, BlobRecord]] = []
        group_bytes = 0
        for batch in _in_item_order(store, only):
            alone = [(b, rec) for b, rec in batch if not packs or rec.size > PACK_MAX]
            results = list(pool.map(lambda entry: _upload(store, *entry), alone))
            for error in results:
                if error is not None:
                    report.fail(error)
            packs_left |= _record_moved(store, [_Moved(b, rec) for (b, rec), error in zip(alone, results)
                                                if error is None], report, progress)
            for b, rec in batch:
                if packs and rec.size <= PACK_MAX:
                    group.append((b, rec))
                    group_bytes += HEADER.size + rec.size
                    if group_bytes >= PACK_OBJECT_TARGET:
                        if len(uploads) >= UPLOADS:  # bounded: at most UPLOADS packs in flight
                            done, uploads = wait(uploads, return_when=FIRST_COMPLETED)
                            finish(done)
                        uploads.add(pack_pool.submit(_upload_pack, store, group))
                        group, group_bytes = [], 0
        if group:
            uploads.add(pack_pool.submit(_upload_pack, store, group))
        finish(wait(uploads).done)
    if packs_left:
        try:  # the packs the blobs left, now that nothing else runs (else the next gc does it)
            with store.lock(exclusive=True, what="reclaim packs"):
                compact_packs(store)
        except StoreBusy:
            pass
    return report


def _record_moved(store: Store, moved: list[_Moved], report: TransferReport, progress: Progress | None) -> bool:
    """Record blobs S3 acknowledged as there (one transaction), then free their local bytes;
    whether any left an entry in a local pack."""
    if not moved:
        return False
    with store.index.write() as txn:
        for m in moved:
            current = get_blob(store.index, txn, m.blob_id)
            if current is not None and _here(current):
                there = replace(current, location=S3PACK if m.pack is not None else S3, pack=m.pack, offset=m.offset)
                put_blob(store.index, txn, m.blob_id, there)
    for m in moved:  # only once the records point at S3 (a local pack's copy goes when the pack is rewritten)
        store.places.of(m.rec).delete(m.blob_id, m.rec)
        report.done += 1
        report.bytes += m.rec.size
    if progress is not None:
        progress(sum(m.rec.size for m in moved))
    return any(_packed(m.rec) for m in moved)


def _upload_pack(store: Store,
                 group: list[tuple[BlobId, BlobRecord]]) -> tuple[list[_Moved], list[tuple[str, int]]]:
    """Write the blobs of `group` (each read and verified) into a pack object, uploaded in one
    PUT; (the blobs in it, (error, blobs it concerns) of those left out)."""
    assert store.s3 is not None
    name = new_pack_name()
    records = dict(group)
    errors: list[tuple[str, int]] = []

    def readable() -> Iterator[tuple[BlobId, bytes]]:
        for blob_id, _rec in group:
            try:
                yield blob_id, store.read_bytes(blob_id)
            except CasError as e:
                errors.append((f"blob {blob_id}: {e}", 1))

    try:
        entries = store.s3.upload_pack(name, readable(), store.tmp_dir)
    except CasError as e:
        return [], [*errors, (f"{counted(len(group) - len(errors), 'blob')} in pack {name}: {e}",
                              len(group) - len(errors))]
    return [_Moved(e.blob_id, records[e.blob_id], name, e.offset) for e in entries], errors


def _upload(store: Store, blob_id: BlobId, rec: BlobRecord) -> str | None:
    assert store.s3 is not None
    if _packed(rec):  # small: read (and verified) whole
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
        store.s3.upload_file(path, blob_id)
    except CasError as e:
        return str(e)
    return None
