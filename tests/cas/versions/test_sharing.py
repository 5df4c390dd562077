"""Two stores sharing one bucket on a real local S3 endpoint: push, clone, concurrent
pushes (one conflict, then pull and push), no media moved by a clone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cas import BlobId, NotFound, Store
from cas.config import NetOptions, S3Remote
from cas.errors import Conflict
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.records import S3, S3PACK
from cas.versions.sharing import clone, pull, push
from tests.conftest import jpeg_bytes


def make(tmp_path: Path, name: str, endpoint: str, bucket: str) -> Store:
    store = Store.init(tmp_path / name, net=NetOptions(1.0, 2.0, 2, 0.05))
    store.config.s3 = S3Remote(bucket, "team", endpoint)
    store.save_config()
    return store


def add(store: Store, items: dict[str, bytes], overwrite: bool = True) -> None:
    with ImportSession(store, "p", overwrite=overwrite) as session:
        for rel, data in items.items():
            dataset, _, name = rel.rpartition("/")
            session.add_item(dataset, name, data)
        session.commit()


def contents(store: Store) -> dict[str, bytes]:
    return {f"{d}/{n}": store.read_bytes(rec.media)
            for d in store.ns.datasets("p") for n, rec in store.ns.items("p", d)}


@pytest.fixture
def pair(tmp_path: Path, s3_endpoint: str, bucket: str):
    a, b = make(tmp_path, "a", s3_endpoint, bucket), make(tmp_path, "b", s3_endpoint, bucket)
    yield a, b
    a.close()
    b.close()


def test_push_clone_read_everything(pair) -> None:
    a, b = pair
    add(a, {f"d/{i}.jpg": jpeg_bytes(10 + i, 10) for i in range(6)} | {"e/x.jpg": jpeg_bytes(5, 5)})
    version, _ = push(a, "p")
    cloned = clone(b, "p")
    assert cloned.id == version.id
    assert all(b.stat(rec.media).location == S3 for _n, rec in b.ns.items("p", "d"))
    assert not [p for p in (b.root / "blobs").rglob("*") if p.is_file()], "a clone moves no media bytes"
    assert contents(b) == contents(a)
    assert fsck(b).clean


def test_concurrent_pushes_conflict_then_pull_merges(pair) -> None:
    a, b = pair
    add(a, {f"d/{i}.jpg": jpeg_bytes(10 + i, 10) for i in range(4)})
    push(a, "p")
    clone(b, "p")
    add(a, {"d/0.jpg": jpeg_bytes(40, 40), "d/a-new.jpg": jpeg_bytes(41, 41)})
    add(b, {"d/1.jpg": jpeg_bytes(50, 50), "d/b-new.jpg": jpeg_bytes(51, 51)})
    push(a, "p")  # wins
    with pytest.raises(Conflict, match="cas pull p"):
        push(b, "p")
    how, _ = pull(b, "p")
    assert how == "merged"
    push(b, "p")
    assert pull(a, "p")[0] == "fast-forward"
    expected = {"d/0.jpg": jpeg_bytes(40, 40), "d/a-new.jpg": jpeg_bytes(41, 41), "d/1.jpg": jpeg_bytes(50, 50),
                "d/b-new.jpg": jpeg_bytes(51, 51), "d/2.jpg": jpeg_bytes(12, 10), "d/3.jpg": jpeg_bytes(13, 10)}
    assert contents(a) == expected and contents(b) == expected
    assert fsck(a).clean and fsck(b).clean


def test_same_item_changed_on_both_sides_is_a_clear_conflict(pair) -> None:
    a, b = pair
    add(a, {"d/0.jpg": jpeg_bytes(10, 10)})
    push(a, "p")
    clone(b, "p")
    add(a, {"d/0.jpg": jpeg_bytes(20, 20)})
    add(b, {"d/0.jpg": jpeg_bytes(30, 30)})
    push(a, "p")
    with pytest.raises(Conflict, match=r"d/0.jpg"):
        pull(b, "p")
    assert b.read_bytes(b.ns.item("p", "d", "0.jpg").media) == jpeg_bytes(30, 30), "nothing changed"


def test_gc_in_one_store_never_breaks_the_others(pair) -> None:
    a, b = pair
    b.config.s3_grace_seconds = 0
    add(a, {"d/keep.jpg": jpeg_bytes(33, 33), "d/other.jpg": jpeg_bytes(34, 34)})
    push(a, "p")
    clone(b, "p")
    b.ns.remove_project("p")
    from cas.versions.snapshots import drop_head
    drop_head(b, "p")  # b forgets p and its history entirely
    collect_garbage(b)
    assert contents(a) == {"d/keep.jpg": jpeg_bytes(33, 33), "d/other.jpg": jpeg_bytes(34, 34)}
    shutil.rmtree(a.cache.dir)  # read from S3 again, not from a's cache
    a._cache = None
    assert contents(a)["d/keep.jpg"] == jpeg_bytes(33, 33)


def test_old_versions_of_a_clone_are_readable_on_demand(pair) -> None:
    a, b = pair
    add(a, {"d/x.jpg": jpeg_bytes(10, 10)})
    v1, _ = push(a, "p")
    add(a, {"d/x.jpg": jpeg_bytes(20, 20)})
    push(a, "p")
    clone(b, "p")
    from cas.versions.snapshots import adopt_version, history
    from cas.versions.trees import version_items
    versions = list(history(b, "p"))  # older version objects and trees: adopted as they are read
    assert [v.id for v in versions][-1] == v1.id
    (_d, _n, rec, _link), = list(version_items(b, versions[-1]))
    with pytest.raises(NotFound):  # the read path asks the index only: no S3 request, no write
        b.stat(rec.media)
    adopt_version(b, versions[-1])  # the explicit step: the version's item blobs, recorded as remote
    assert b.stat(rec.media).location == "s3"
    assert b.read_bytes(rec.media) == jpeg_bytes(10, 10)


@pytest.mark.parametrize("packs", [True, False])
def test_the_trees_of_a_push_go_in_one_pack_object_and_older_remotes_stay_readable(pair, packs: bool) -> None:
    """`packs=False` writes trees as objects of their own, as remotes did before packs."""
    from cas.versions.snapshots import diff, reachable
    from cas.versions.trees import _trees as trees_cache
    from cas.versions.trees import read_version
    a, b = pair
    add(a, {f"d{i % 3}/{i}.jpg": jpeg_bytes(10 + i, 10) for i in range(30)})
    first, _ = push(a, "p", packs=packs)
    items = {bytes(blob) for d in a.ns.datasets("p") for _n, rec in a.ns.items("p", d) for blob in rec.blobs()}
    trees = reachable(a) - items
    assert len(trees) >= 6  # version, project, three datasets, their buckets
    assert {a.stat(BlobId(t)).location for t in trees} == {S3PACK if packs else S3}
    if packs:
        assert len({a.stat(BlobId(t)).pack for t in trees}) == 1, "one PUT for the trees of this push"
    trees_cache.clear()  # b reads the trees from S3, as another process would (not decoded by a's push)
    assert clone(b, "p").id == first.id
    assert contents(b) == contents(a)
    assert b.stat(first.id).location == (S3PACK if packs else S3)
    add(a, {"d0/new.jpg": jpeg_bytes(60, 60)})
    second, _ = push(a, "p", packs=packs)
    trees_cache.clear()
    assert pull(b, "p")[0] == "fast-forward"
    assert diff(b, "p", read_version(b, first.id), read_version(b, second.id)).added == ["d0/new.jpg"]
    assert contents(b) == contents(a)
