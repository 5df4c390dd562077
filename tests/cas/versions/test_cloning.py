"""`clone_store`: a new store from the projects shared in a bucket (a real local S3 endpoint);
refused into a non-empty path, and nothing left behind when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from cas import NotFound, Store
from cas.config import NetOptions, S3Remote
from cas.errors import AlreadyExists, CasError
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.versions import cloning
from cas.versions.cloning import clone_store
from cas.versions.sharing import push
from tests.cas.versions.test_sharing import make
from tests.conftest import jpeg_bytes

NET = NetOptions(1.0, 2.0, 2, 0.05)


@pytest.fixture
def shared(tmp_path: Path, s3_endpoint: str, bucket: str) -> S3Remote:
    """Projects `p` (3 items) and `q` (1 item) pushed to s3://bucket/team."""
    with make(tmp_path, "origin", s3_endpoint, bucket) as origin:
        for project, n in (("p", 3), ("q", 1)):
            with ImportSession(origin, project) as session:
                for i in range(n):
                    session.add_item("d", f"{i}.jpg", jpeg_bytes(10 + i, 10))
                session.commit()
            push(origin, project)
    return S3Remote(bucket, "team", s3_endpoint)


def test_clone_makes_a_store_with_every_shared_project(tmp_path: Path, shared: S3Remote) -> None:
    versions = clone_store(tmp_path / "new" / "store", shared, net=NET)
    assert {p: v.items for p, v in versions.items()} == {"p": 3, "q": 1}
    with Store(tmp_path / "new" / "store") as store:
        assert store.config.s3 == shared and store.ns.projects() == ["p", "q"]
        assert store.read_bytes(store.ns.item("p", "d", "2.jpg").media) == jpeg_bytes(12, 10)
        assert fsck(store).clean


def test_clone_of_some_projects_into_an_empty_directory(tmp_path: Path, shared: S3Remote) -> None:
    (tmp_path / "empty").mkdir()
    assert list(clone_store(tmp_path / "empty", shared, ["q", "q"], net=NET)) == ["q"]
    with Store(tmp_path / "empty") as store:
        assert store.ns.projects() == ["q"]


def test_a_non_empty_path_is_refused_and_untouched(tmp_path: Path, shared: S3Remote) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(AlreadyExists, match="busy exists and is not an empty directory"):
        clone_store(tmp_path / "busy", shared, net=NET)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def test_a_project_not_shared_is_named_and_nothing_is_made(tmp_path: Path, shared: S3Remote) -> None:
    with pytest.raises(NotFound, match=r"shares no project nope \(it shares: p, q\)"):
        clone_store(tmp_path / "new", shared, ["p", "nope"], net=NET)
    assert not (tmp_path / "new").exists()


def test_a_clone_failing_midway_leaves_nothing(tmp_path: Path, shared: S3Remote,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = cloning.clone

    def fail_on_q(store: Store, project: str, progress: object = None):
        if project == "q":
            raise CasError("the network went away")
        return real(store, project, progress)

    monkeypatch.setattr(cloning, "clone", fail_on_q)
    with pytest.raises(CasError, match="network went away"):
        clone_store(tmp_path / "new", shared, net=NET)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CasError, match="network went away"):
        clone_store(tmp_path / "empty", shared, net=NET)
    assert list((tmp_path / "empty").iterdir()) == []


def test_an_unreachable_bucket_makes_nothing(tmp_path: Path, s3_endpoint: str) -> None:
    with pytest.raises(CasError, match="no-such-bucket-here"):
        clone_store(tmp_path / "new", S3Remote("no-such-bucket-here", "x", s3_endpoint), net=NET)
    assert not (tmp_path / "new").exists()


def test_a_clone_finds_the_blobs_in_the_packs_indexes_not_by_a_head_each(
        tmp_path: Path, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cas.blobs.backends.s3 import S3Backend
    from cas.records import S3PACK
    remote = S3Remote(bucket, "team", s3_endpoint)
    with Store.init(tmp_path / "origin", NET) as origin:
        with ImportSession(origin, "p") as session:  # a local store: its blobs go up at push, packed
            for i in range(20):
                session.add_item("d", f"{i}.jpg", jpeg_bytes(10 + i, 10))
            session.commit()
        origin.config.s3 = remote
        origin.save_config()
        push(origin, "p")
    heads = []
    size_of = S3Backend.size_of
    monkeypatch.setattr(S3Backend, "size_of", lambda self, blob_id: heads.append(blob_id) or size_of(self, blob_id))
    clone_store(tmp_path / "new", remote, net=NET)
    assert len(heads) <= 3, "a HEAD for the version and tree objects at most, none per item"
    with Store(tmp_path / "new") as store:
        item = store.ns.item("p", "d", "1.jpg")
        assert {store.stat(b).location for b in item.blobs()} == {S3PACK}
        assert store.read_bytes(item.media) == jpeg_bytes(11, 10)
        assert fsck(store).clean
