"""Snapshots: versions cost only changed trees; log, diff, restore; gc keeps versions' blobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cas import Store
from cas.ids import BlobId
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.versions import snapshots
from cas.versions.snapshots import diff, history, restore, snapshot
from cas.versions.trees import version_items
from tests.conftest import jpeg_bytes


def add(store: Store, items: dict[str, bytes], project: str = "p", overwrite: bool = False) -> None:
    with ImportSession(store, project, overwrite=overwrite) as session:
        for rel, data in items.items():
            dataset, _, name = rel.rpartition("/")
            session.add_item(dataset, name, data)
        session.commit()


def test_snapshot_change_diff_restore(store: Store) -> None:
    add(store, {f"a/{i}.jpg": jpeg_bytes(20 + i, 10) for i in range(5)} | {"b/x.jpg": jpeg_bytes(9, 9)})
    v1, new = snapshot(store, "p", "first")
    assert new and v1.items == 6 and v1.message == "first"
    assert snapshot(store, "p")[1] is False, "nothing changed: no new version"
    add(store, {"a/0.jpg": jpeg_bytes(50, 50), "a/new.jpg": jpeg_bytes(7, 7)}, overwrite=True)
    store.ns.remove_item("p", "b", "x.jpg")
    d = diff(store, "p", v1, None)
    assert (d.added, d.removed, d.changed) == (["a/new.jpg"], ["b/x.jpg"], ["a/0.jpg"])
    v2, _ = snapshot(store, "p", "second")
    assert [v.message for v in history(store, "p")] == ["second", "first"]
    assert diff(store, "p", v1, v2).changed == ["a/0.jpg"]
    restored = restore(store, "p", v1)
    assert restored.parent == v2.id and restored.tree == v1.tree
    assert sorted(n for n, _ in store.ns.items("p", "a")) == [f"{i}.jpg" for i in range(5)]
    assert store.read_bytes(store.ns.item("p", "b", "x.jpg").media) == jpeg_bytes(9, 9)
    assert fsck(store).clean
    assert diff(store, "p", v1, None).changed == []


def test_gc_keeps_blobs_of_versions(store: Store) -> None:
    add(store, {"a/1.jpg": jpeg_bytes(11, 11)})
    v1, _ = snapshot(store, "p")
    store.ns.remove_item("p", "a", "1.jpg")
    collect_garbage(store)
    assert store.read_bytes(next(version_items(store, v1))[2].media) == jpeg_bytes(11, 11)
    restore(store, "p", v1)
    assert fsck(store).clean


def test_second_snapshot_rebuilds_only_changed_buckets(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "BUCKET_ITEMS", 4)
    add(store, {f"d/{i:03d}.jpg": jpeg_bytes(8 + i % 5, 8, (i, 0, 0)) for i in range(40)})
    v1, _ = snapshot(store, "p")
    add(store, {"d/017.jpg": jpeg_bytes(30, 30)}, overwrite=True)
    written: list[bytes] = []
    real = snapshots.TreeWriter.record

    def spy(self, txn: object) -> None:
        written.extend(self.written)
        real(self, txn)

    monkeypatch.setattr(snapshots.TreeWriter, "record", spy)
    v2, _ = snapshot(store, "p")
    assert len(written) == 4, "one bucket, its dataset, the project tree, the version"
    assert {(d, n) for d, n, _r, _l in version_items(store, v2)} == {("d", f"{i:03d}.jpg") for i in range(40)}
    assert diff(store, "p", v1, v2).changed == ["d/017.jpg"]


def test_item_written_during_a_snapshot_stays_for_the_next(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "BUCKET_ITEMS", 4)
    add(store, {f"d/{i:03d}.jpg": jpeg_bytes(8 + i % 5, 8, (i, 0, 0)) for i in range(20)})
    v1, _ = snapshot(store, "p")
    add(store, {"d/005.jpg": jpeg_bytes(30, 30)}, overwrite=True)
    real = snapshots.TreeWriter.install

    def write_meanwhile(self: snapshots.TreeWriter) -> None:  # after the trees are read, before the head moves
        add(store, {"d/005.jpg": jpeg_bytes(31, 31), "d/011.jpg": jpeg_bytes(32, 32)}, overwrite=True)
        real(self)

    monkeypatch.setattr(snapshots.TreeWriter, "install", write_meanwhile)
    v2, _ = snapshot(store, "p")
    monkeypatch.setattr(snapshots.TreeWriter, "install", real)
    assert diff(store, "p", v1, v2).changed == ["d/005.jpg"], "the snapshot holds what it read"
    v3, new = snapshot(store, "p")
    assert new and diff(store, "p", v2, v3).changed == ["d/005.jpg", "d/011.jpg"]
    assert diff(store, "p", v3, None).changed == []


def test_first_snapshot_reads_one_dirty_mark_per_dataset_and_compares_no_item(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset the head lacks is built whole: its other marks are not read; and marks are
    dropped without comparing items when nothing was committed during the snapshot."""
    add(store, {f"{d}/{i:02d}.jpg": jpeg_bytes(8 + i % 5, 8, (i, 0, 0)) for d in ("a", "a/b", "c") for i in range(6)})
    index = store.index
    marks_read: list[bytes] = []
    items_compared: list[str] = []
    scan_range, getter = index.scan_range, index.getter

    def counting_scan(txn, dbname, start, stop, prefix):  # type: ignore[no-untyped-def]
        for key, value in scan_range(txn, dbname, start, stop, prefix):
            if dbname == "dirty":
                marks_read.append(key)
            yield key, value

    def counting_getter(txn, dbname):  # type: ignore[no-untyped-def]
        if dbname == "items":
            items_compared.append(dbname)
        return getter(txn, dbname)

    monkeypatch.setattr(index, "scan_range", counting_scan)
    monkeypatch.setattr(index, "getter", counting_getter)
    version, _ = snapshot(store, "p")
    assert version.items == 18
    assert len(marks_read) == 3 and items_compared == []
    with index.read() as txn:
        assert list(index.scan(txn, "dirty")) == []


def test_cli(tmp_path: Path) -> None:
    from tests.conftest import run_cas, write_images
    write_images(tmp_path / "src" / "ds", 3)
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "src"), "--project", "p")
    first = run_cas(store, "snapshot", "p", "-m", "start").stdout.decode().split()[1]
    run_cas(store, "rm", "p/ds/img00001.jpg")
    run_cas(store, "snapshot", "p", "-m", "removed one")
    log = run_cas(store, "log", "p").stdout.decode().splitlines()
    assert len(log) == 2 and log[0].endswith("removed one") and log[1].startswith(first)
    assert run_cas(store, "diff", "p", first[:10]).stdout.decode().splitlines() == ["- ds/img00001.jpg"]
    run_cas(store, "restore", "p", first[:10])
    assert "img00001.jpg" in run_cas(store, "ls", "p/ds").stdout.decode()


def test_a_local_snapshot_packs_its_trees(store: Store) -> None:
    """Trees are small blobs: a local snapshot appends them to a pack (one file, not a file
    each), and the version reads back from it; gc keeps them."""
    with ImportSession(store, "p") as session:
        session.add_links("d", [(f"{i}.jpg", f"http://127.0.0.1:9/{i}.jpg", -1, None, i) for i in range(600)], "l.txt")
        session.commit()
    version, _ = snapshot(store, "p")
    held = {bytes(b) for _d, _name, rec, _link in version_items(store, version) for b in rec.blobs()}
    trees = snapshots.reachable(store, [version.id]) - held
    assert len(trees) == 6  # version, project, dataset, three buckets of up to 256 items
    assert all(store.stat(BlobId(t)).packed for t in trees)
    collect_garbage(store)
    assert [name for _d, name, _rec, _link in version_items(store, version)] == sorted(f"{i}.jpg" for i in range(600))
    assert fsck(store).clean


def test_marks_of_one_project_go_and_another_projects_stay(store: Store) -> None:
    """Clearing a project's dirty marks empties the table when they are all of it, and keeps
    another project's marks when it is not."""
    add(store, {"d/a.jpg": jpeg_bytes(8, 8)}, "p")
    add(store, {"d/a.jpg": jpeg_bytes(9, 8)}, "q")
    snapshot(store, "p")
    with store.index.read() as txn:
        assert [key.split(b"\0")[0] for key, _ in store.index.scan(txn, "dirty")] == [b"q"]
    snapshot(store, "q")
    with store.index.read() as txn:
        assert list(store.index.scan(txn, "dirty")) == []
    add(store, {"d/b.jpg": jpeg_bytes(10, 8)}, "p")
    second, new = snapshot(store, "p")
    assert new and second.items == 2
