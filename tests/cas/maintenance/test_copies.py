"""fsck against packs: a record whose bytes are elsewhere here is re-pointed at them, a pack
records point into but that is gone is named, a loose file nothing points at is an orphan."""

from __future__ import annotations

import os
from dataclasses import replace

from cas import Store
from cas.blobs.backends.packs import PackWriter
from cas.blobs.catalog import get_blob, put_blob
from cas.blobs.spool import spool_bytes
from cas.ids import BlobId
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.records import LOCAL, PACK
from tests.conftest import jpeg_bytes


def add(store: Store, n: int) -> dict[str, bytes]:
    items = {f"{i:03d}.jpg": jpeg_bytes(8 + i, 8, (i, 9, 9)) for i in range(n)}
    with ImportSession(store, "p") as session:
        for name, data in items.items():
            session.add_item("d", name, data)
        session.commit()
    return items


def set_record(store: Store, blob_id: BlobId, **changes: object) -> None:
    with store.index.write() as txn:
        rec = get_blob(store.index, txn, blob_id)
        assert rec is not None
        put_blob(store.index, txn, blob_id, replace(rec, **changes))  # type: ignore[arg-type]


def kinds(store: Store, **kwargs: bool) -> list[str]:
    return sorted(p.kind for p in fsck(store, **kwargs).problems)


def assert_reads_back(store: Store, items: dict[str, bytes]) -> None:
    for name, data in items.items():
        assert store.read_bytes(store.ns.item("p", "d", name).media) == data


def test_a_record_with_a_wrong_offset_is_re_pointed_at_its_entry(store: Store) -> None:
    items = add(store, 5)
    blob = store.ns.item("p", "d", "002.jpg").media
    rec = store.stat(blob)
    set_record(store, blob, offset=rec.offset + 7)
    for verify in (True, False):  # the header check finds it without hashing too
        report = fsck(store, verify=verify)
        assert [(p.kind, p.subject) for p in report.problems] == [("misplaced-blob", str(blob))]
        assert f"pack {rec.pack} at offset {rec.offset} holds a good copy" in report.problems[0].detail
        assert report.problems[0].action == "re-point its record at the copy"
        assert not report.sources_needed
    repaired = fsck(store, repair=True)
    assert [p.repaired for p in repaired.problems] == [True]
    assert store.stat(blob).offset == rec.offset
    assert_reads_back(store, items)
    assert fsck(store).clean


def test_a_loose_blob_whose_file_is_gone_is_re_pointed_at_a_pack_that_holds_it(store: Store) -> None:
    """The pack is unused (an orphan) until the repair: it must not be removed as one."""
    data = os.urandom(20_000)  # loose: over PACK_MAX
    blob = store.put(data)
    assert store.stat(blob).location == LOCAL
    writer = PackWriter(store.local.pack_dir)
    writer.append(blob, data)
    writer.close()
    os.unlink(store.local.path(blob))
    assert kinds(store) == ["misplaced-blob"], "the pack holding the copy is no orphan"
    fsck(store, repair=True)
    rec = store.stat(blob)
    assert (rec.location, rec.pack) == (PACK, writer.name)
    assert store.read_bytes(blob) == data and fsck(store).clean
    assert collect_garbage(store).packs_compacted == 0 and store.read_bytes(blob) == data


def test_a_packed_blob_whose_pack_is_gone_is_named_and_re_pointed_at_its_loose_file(store: Store) -> None:
    items = add(store, 4)
    (name, path, _size), = store.local.list_packs()
    blob = store.ns.item("p", "d", "001.jpg").media
    store.local.install(spool_bytes(items["001.jpg"]), str(store.tmp_dir))  # a loose copy of one blob
    os.unlink(path)
    report = fsck(store)
    missing = [p for p in report.problems if p.kind == "missing-pack"]
    assert [(p.subject, p.detail.split(";")[0]) for p in missing] == [(name, "8 records point into it")]
    assert [p.subject for p in report.problems if p.kind == "misplaced-blob"] == [str(blob)]
    assert "damaged-item" in kinds(store), "the other images are lost"
    fsck(store, repair=True)
    assert store.stat(blob).location == LOCAL
    assert store.read_bytes(blob) == items["001.jpg"]


def test_a_loose_file_beside_a_packed_record_is_an_orphan(store: Store) -> None:
    """What a push (a record moved to S3) or a repair (re-pointed at a pack) leaves behind."""
    items = add(store, 3)
    blob = store.ns.item("p", "d", "000.jpg").media
    store.local.install(spool_bytes(items["000.jpg"]), str(store.tmp_dir))
    report = fsck(store)
    assert [(p.kind, p.subject) for p in report.problems] == [("orphan-file", store.local.path(blob))]
    collect_garbage(store)
    assert not os.path.exists(store.local.path(blob)) and store.read_bytes(blob) == items["000.jpg"]
    assert fsck(store).clean and store.stat(blob).location == PACK
