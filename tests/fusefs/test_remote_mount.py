"""The mount over remote bytes: an S3-backed store, and link items on an HTTP server."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from tests.conftest import FAST_NET, jpeg_bytes, run_cas, write_images
from tests.servers import CountingS3, RangeServer


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAST_NET.items():
        monkeypatch.setenv(key, value)


def test_s3_store_round_trip_through_the_mount(tmp_path: Path, s3_endpoint: str, bucket: str, mount,
                                               sample_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "init", "--s3", f"s3://{bucket}/team", "--endpoint-url", s3_endpoint)
    run_cas(store, "import", str(sample_project), "--project", "demo")
    assert not list((store / "blobs").rglob("*.*")) and not [p for p in (store / "blobs").rglob("*") if p.is_file()]
    sources = {p.relative_to(sample_project): p.read_bytes() for p in sample_project.rglob("*")
               if p.is_file() and "/img/" in str(p)}
    with mount(store) as mnt:
        for _round in range(2):  # the first from S3, the second from the cache
            for rel, data in sources.items():
                assert (mnt / "demo" / rel).read_bytes() == data, rel
        meta = json.loads((mnt / "demo" / "meta.json").read_text())
        assert meta["classes"]
    stats = json.loads(run_cas(store, "stats", "--json").stdout)
    assert stats["locations"]["s3"]["blobs"] == stats["blobs"]
    assert stats["cache"]["misses"] >= len(set(sources.values()))  # every distinct image fetched once


def test_link_items_through_the_mount(tmp_path: Path, http_server: RangeServer, mount) -> None:
    images = {f"/{i}.jpg": jpeg_bytes(40 + i, 30) for i in range(3)}
    big = os.urandom(9 << 20)
    http_server.files.update(images)
    http_server.files["/video.bin"] = big
    src = tmp_path / "urls.txt"
    src.write_text("".join(http_server.url(p) + "\n" for p in [*images, "/video.bin", "/gone.jpg"]))
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "--project", "web", "--format", "links", "--no-head")
    assert http_server.requests == []
    with mount(store, read_only=True) as mnt:
        img = mnt / "web" / "urls" / "img"
        assert sorted(os.listdir(img)) == ["0.jpg", "1.jpg", "2.jpg", "gone.jpg", "video.bin"]
        for path, data in images.items():
            assert (img / path[1:]).read_bytes() == data  # size unknown until now: direct I/O
        assert (img / "video.bin").read_bytes() == big
        with pytest.raises(OSError) as info:
            (img / "gone.jpg").read_bytes()
        assert info.value.errno == errno.EIO
        assert (img / "0.jpg").read_bytes() == images["/0.jpg"], "the daemon still serves"
    log = (store / "logs" / "mount.log").read_text()
    assert "gone.jpg: HTTP 404" in log
    got = run_cas(store, "get", "web/urls/1.jpg").stdout
    assert got == images["/1.jpg"]


def test_files_of_a_pushed_dataset_read_in_order_come_in_a_few_gets(tmp_path: Path, counting_s3: CountingS3,
                                                                   bucket: str, mount) -> None:
    images = {p.name: p.read_bytes() for p in write_images(tmp_path / "src" / "d", 40)}
    writer, reader, url = tmp_path / "writer", tmp_path / "reader", f"s3://{bucket}/packed"
    run_cas(writer, "import", str(tmp_path / "src"), "--project", "p")
    run_cas(writer, "init", "--s3", url, "--endpoint-url", counting_s3.url)
    run_cas(writer, "push", "p")
    run_cas(reader, "clone", url, str(reader), "--endpoint-url", counting_s3.url, init=False)
    with mount(reader, read_only=True) as mnt:
        before = counting_s3.gets()
        for name, data in images.items():  # as `cp -r` reads them
            assert (mnt / "p" / "d" / "img" / name).read_bytes() == data
        took = counting_s3.gets() - before
    assert took <= 3, f"{took} GETs"  # the first file alone, then its run of the pack (and one past its end)
