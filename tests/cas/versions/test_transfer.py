"""`pull` (links -> blobs) and `push` (local blobs -> S3), including interrupted runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cas import Store
from cas.blobs.backends.packs import PACK_MAX
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.records import LINK, LOCAL, S3, S3PACK, STORED_HERE
from cas.versions import transfer
from cas.versions.transfer import BATCH
from cas.versions.transfer import pull_links as pull
from cas.versions.transfer import push_blobs as push
from tests.conftest import jpeg_bytes, write_images
from tests.servers import RangeServer


def import_links(store: Store, server: RangeServer, images: list[bytes], dataset: str = "web") -> None:
    with ImportSession(store, "p") as session:
        for i, data in enumerate(images):
            server.files[f"/{i}.jpg"] = data
            session.add_link(dataset, f"{i}.jpg", server.url(f"/{i}.jpg"))
        session.commit()


def test_pull_materializes_links_and_dedups(store: Store, http_server: RangeServer) -> None:
    images = [jpeg_bytes(30 + i, 20) for i in range(5)]
    local = store.put(images[0])  # same content already in the store
    import_links(store, http_server, images)
    report = pull(store, "p")
    assert (report.done, report.failed) == (5, 0)
    for i, data in enumerate(images):
        item = store.ns.item("p", "web", f"{i}.jpg")
        assert store.stat(item.media).location in STORED_HERE  # small images are packed
        assert (item.width, item.height, item.size) == (30 + i, 20, len(data))
        assert store.read_json(item.ann, "ann")["size"] == {"width": 30 + i, "height": 20}
        assert store.read_bytes(item.media) == data
    assert store.ns.item("p", "web", "0.jpg").media == local
    assert collect_garbage(store).blobs_removed >= 5  # the link entries, now unreferenced
    assert fsck(store).clean


def test_pull_reports_failures_and_a_rerun_finishes(store: Store, http_server: RangeServer) -> None:
    images = [jpeg_bytes(20, 20 + i) for i in range(3)]
    import_links(store, http_server, images)
    http_server.files.pop("/1.jpg")
    report = pull(store, "p", "web")
    assert (report.done, report.failed) == (2, 1) and "HTTP 404" in report.errors[0]
    assert store.stat(store.ns.item("p", "web", "1.jpg").media).location == LINK
    http_server.files["/1.jpg"] = images[1]
    assert pull(store, "p").done == 1
    assert all(store.stat(rec.media).location in STORED_HERE for _n, rec in store.ns.items("p", "web"))


def test_interrupted_pull_resumes(store: Store, http_server: RangeServer) -> None:
    images = [jpeg_bytes(10 + i % 40, 12, (i % 256, 0, 0)) for i in range(BATCH * 2 + 5)]
    import_links(store, http_server, images)

    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(store, "p", progress=interrupt)
    links = sum(store.stat(rec.media).location == LINK for _n, rec in store.ns.items("p", "web"))
    assert links == len(images) - BATCH
    assert pull(store, "p").done == links
    assert fsck(store).only_orphans


def test_push_without_packs_moves_local_blobs_to_s3_objects(tmp_path: Path, s3_store: Store) -> None:
    from converters.ingest import import_source
    config = s3_store.config
    local = Store.init(tmp_path / "local", net=s3_store.net)
    try:
        write_images(tmp_path / "src" / "ds", BATCH * 5)
        import_source(local, tmp_path / "src", "p", "images")
        local.config.s3 = config.s3
        local.save_config()

        def interrupt(n: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            push(local, progress=interrupt, packs=False)
        where = {local.stat(r.media).location for _n, r in local.ns.items("p", "ds")}
        assert S3 in where and where - {S3} and where <= {S3, *STORED_HERE}
        report = push(local, packs=False)
        assert report.failed == 0
        assert not any(blob_id for blob_id, _p, _s in local.local.list_ids())
        for path in sorted((tmp_path / "src" / "ds").iterdir()):
            item = local.ns.item("p", "ds", path.name)
            assert local.stat(item.media).location == S3
            assert local.read_bytes(item.media) == path.read_bytes()
        assert not list(local.local.list_packs()), "the packs the blobs left are gone"
        assert fsck(local).clean
    finally:
        local.close()


def s3_keys(store: Store, under: str) -> list[str]:
    assert store.s3 is not None
    listed = store.s3.client.list_objects_v2(Bucket=store.s3.remote.bucket, Prefix=store.s3.remote.key(under))
    return [obj["Key"] for obj in listed.get("Contents", [])]


def test_push_gathers_small_blobs_into_pack_objects_and_resumes(tmp_path: Path, s3_store: Store,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from converters.ingest import import_source
    monkeypatch.setattr(transfer, "PACK_OBJECT_TARGET", 40_000)  # several packs of a few dozen blobs
    local = Store.init(tmp_path / "local", net=s3_store.net)
    try:
        write_images(tmp_path / "src" / "ds", BATCH * 5)
        big = local.put(os.urandom(PACK_MAX + 1))
        import_source(local, tmp_path / "src", "p", "images")
        local.config.s3 = s3_store.config.s3
        local.save_config()

        def interrupt(n: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            push(local, progress=interrupt)
        where = {local.stat(r.media).location for _n, r in local.ns.items("p", "ds")}
        assert S3PACK in where and where - {S3PACK} and where <= {S3PACK, *STORED_HERE}
        assert fsck(local).clean
        report = push(local)
        assert report.failed == 0
        assert not any(blob_id for blob_id, _p, _s in local.local.list_ids())
        assert not list(local.local.list_packs()), "the local packs the blobs left are gone"
        packs = set()
        for path in sorted((tmp_path / "src" / "ds").iterdir()):
            item = local.ns.item("p", "ds", path.name)
            rec = local.stat(item.media)
            assert rec.location == S3PACK and rec.pack is not None
            packs.add(rec.pack)
            assert local.read_bytes(item.media) == path.read_bytes()
        assert local.s3 is not None and local.stat(big).location == S3  # larger than PACK_MAX: its own object
        assert s3_keys(local, "blobs/") == [local.s3.key(big)]
        pack_keys = s3_keys(local, "packs/")
        assert 3 <= len(packs) and len(pack_keys) < BATCH * 5 / 10, "one PUT per pack, not per blob"
        assert {local.s3.pack_key(name) for name in packs} <= set(pack_keys)
        assert fsck(local).clean
    finally:
        local.close()


def test_a_failed_pack_upload_moves_no_record(tmp_path: Path, s3_endpoint: str) -> None:
    from cas.config import S3Remote
    local = Store.init(tmp_path / "local")
    try:
        blobs = [local.put(os.urandom(50 + i)) for i in range(3)]
        local.config.s3 = S3Remote("cas-no-such-bucket", "pre", s3_endpoint)
        local.save_config()
        report = push(local)
        assert report.failed == 3 and 'pack' in report.errors[0] and "cas-no-such-bucket" in report.errors[0]
        assert {local.stat(b).location for b in blobs} <= set(STORED_HERE)
        assert not os.listdir(local.tmp_dir), "the pack file built for the upload is gone"
    finally:
        local.close()


def test_push_refuses_a_corrupt_local_blob(tmp_path: Path, s3_store: Store) -> None:
    local = Store.init(tmp_path / "local", net=s3_store.net)
    try:
        blob = local.put(os.urandom(1000))
        path = local.local.path(blob)
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            first = f.read(1)[0]
            f.seek(0)
            f.write(bytes([first ^ 0xFF]))  # a changed byte (writing b"!" failed 1 run in 256: urandom's was "!")
        local.config.s3 = s3_store.config.s3
        local.save_config()
        report = push(local)
        assert report.failed == 1 and "corrupt" in report.errors[0]
        assert local.stat(blob).location == LOCAL
    finally:
        local.close()
