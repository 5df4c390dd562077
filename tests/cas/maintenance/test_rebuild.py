"""Losing the index loses no data: `cas fsck --rebuild-index` from blobs, trees and refs."""

from __future__ import annotations

import shutil
from pathlib import Path

from cas import Store
from cas.versions.snapshots import head, snapshot
from tests.conftest import assert_user_error, run_cas, write_images


def listing(store_path: Path) -> dict[str, bytes]:
    with Store(store_path) as s:
        return {f"{p}/{d}/{n}": s.read_bytes(rec.media) + s.read_bytes(rec.ann)
                for p in s.ns.projects() for d in s.ns.datasets(p) for n, rec in s.ns.items(p, d)}


def test_rebuild_local_store(tmp_path: Path) -> None:
    write_images(tmp_path / "src" / "a", 5)
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "src"), "--project", "p")
    run_cas(store, "snapshot", "p")
    run_cas(store, "put", str(tmp_path / "src" / "a" / "img00000.jpg"))  # a loose blob, also kept
    (tmp_path / "loose.bin").write_bytes(b"loose bytes")
    run_cas(store, "put", str(tmp_path / "loose.bin"))
    before = listing(store)
    shutil.rmtree(store / "index")
    for args in (["stats"], ["ls"], ["fsck"], ["init"]):  # each names the command that helps, never `cas init`
        line = assert_user_error(run_cas(store, *args, check=False), "lost its index", "`cas fsck --rebuild-index`")
        assert "`cas init` creates" not in line
    assert not (store / "index").exists()
    out = run_cas(store, "fsck", "--rebuild-index").stdout.decode()
    assert "rebuilt the index" in out and "1 project, 5 items" in out and "clean" in out
    assert "1 blob pinned that no version holds" in out
    assert listing(store) == before
    run_cas(store, "gc")
    assert listing(store) == before


def test_rebuild_shared_store_from_s3(tmp_path: Path, s3_endpoint: str, bucket: str) -> None:
    write_images(tmp_path / "src" / "a", 4)
    store = tmp_path / "store"
    run_cas(store, "init", "--s3", f"s3://{bucket}/team", "--endpoint-url", s3_endpoint)
    run_cas(store, "import", str(tmp_path / "src"), "--project", "p")
    run_cas(store, "push", "p")
    before = listing(store)
    with Store(store) as s:
        version = head(s, "p")
    shutil.rmtree(store / "index")
    shutil.rmtree(store / "refs")  # the remote's ref is enough
    shutil.rmtree(store / "cache")
    run_cas(store, "fsck", "--rebuild-index")
    assert listing(store) == before
    with Store(store) as s:
        assert head(s, "p") == version
        assert snapshot(s, "p")[1] is False, "the rebuilt state is exactly the head version"


def test_rebuild_finds_the_blobs_pushed_into_s3_pack_objects(tmp_path: Path, s3_endpoint: str, bucket: str) -> None:
    """Filled locally, then pushed: the items' blobs and the trees are in S3 pack objects only."""
    write_images(tmp_path / "src" / "a", 6)
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "src"), "--project", "p")
    run_cas(store, "init", "--s3", f"s3://{bucket}/team", "--endpoint-url", s3_endpoint)
    run_cas(store, "push", "p")
    before = listing(store)
    with Store(store) as s:
        assert {s.stat(rec.media).location for _n, rec in s.ns.items("p", "a")} == {"s3pack"}
    shutil.rmtree(store / "index")
    shutil.rmtree(store / "cache")
    run_cas(store, "fsck", "--rebuild-index")
    assert listing(store) == before
    with Store(store) as s:
        assert {s.stat(rec.media).location for _n, rec in s.ns.items("p", "a")} == {"s3pack"}
