"""Link entries read from a real HTTP server on 127.0.0.1 that honours Range, with faults."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cas import Store
from cas.blobs.backends.fetch import RemoteChanged, RemoteError
from cas.blobs.links import UrlChecker, link_id, split_url
from cas.config import NetOptions
from cas.errors import CorruptBlob, InvalidInput
from cas.ingest.session import ImportSession
from cas.records import LINK
from tests.conftest import jpeg_bytes
from tests.servers import RangeServer

NET = NetOptions(connect_timeout=1.0, read_timeout=1.0, retries=2, backoff=0.05)


@pytest.fixture
def lstore(tmp_path: Path):
    s = Store.init(tmp_path / "store", net=NET)
    yield s
    s.close()


def link_item(store: Store, url: str, name: str = "a.jpg", size: int = -1, etag: str | None = None):
    with ImportSession(store, "p") as session:
        session.add_link("ds", name, url, size, etag)
        session.commit()
    return store.ns.item("p", "ds", name)


def test_link_import_reads_nothing_then_fetches_by_range(lstore: Store, http_server: RangeServer) -> None:
    data = jpeg_bytes(64, 48)
    http_server.files["/a.jpg"] = data
    item = link_item(lstore, http_server.url("/a.jpg"))
    assert http_server.requests == [], "import by link reads no content"
    rec = lstore.stat(item.media)
    assert (rec.location, rec.size, rec.url) == (LINK, -1, http_server.url("/a.jpg"))
    assert lstore.read_bytes(item.media) == data
    learned = lstore.stat(item.media)
    assert learned.size == len(data) and learned.digest is not None and learned.etag
    assert all(r[2] and r[2].startswith("bytes=") for r in http_server.requests)
    before = len(http_server.requests)
    assert lstore.read_bytes(item.media) == data  # from the cache
    assert len(http_server.requests) == before


def test_large_link_streams_with_read_ahead(lstore: Store, http_server: RangeServer) -> None:
    data = os.urandom(10 << 20)
    http_server.files["/big.bin"] = data
    item = link_item(lstore, http_server.url("/big.bin"), "big.bin")
    with lstore.open(item.media) as reader:
        assert reader.read(1000) == data[:1000]
        assert reader.pread(10, 9 << 20) == data[9 << 20:(9 << 20) + 10]
        rest = b"".join(iter(lambda: reader.read(1 << 17), b""))
    assert data[:1000] + rest == data


def test_server_errors_are_retried(lstore: Store, http_server: RangeServer) -> None:
    http_server.files["/a.jpg"] = data = jpeg_bytes()
    http_server.faults.status["/a.jpg"] = [500, 503]
    item = link_item(lstore, http_server.url("/a.jpg"))
    assert lstore.read_bytes(item.media) == data


def test_persistent_500_is_an_error_naming_url_and_status(lstore: Store, http_server: RangeServer) -> None:
    http_server.files["/a.jpg"] = jpeg_bytes()
    http_server.faults.status["/a.jpg"] = [500] * 10
    item = link_item(lstore, http_server.url("/a.jpg"))
    with pytest.raises(RemoteError, match=r"a\.jpg: HTTP 500"):
        lstore.read_bytes(item.media)


def test_deleted_target_is_a_404(lstore: Store, http_server: RangeServer) -> None:
    http_server.files["/a.jpg"] = jpeg_bytes()
    item = link_item(lstore, http_server.url("/a.jpg"))
    del http_server.files["/a.jpg"]
    with pytest.raises(RemoteError, match=rf"{http_server.url('/a.jpg')}: HTTP 404"):
        lstore.read_bytes(item.media)


def test_slow_server_times_out_clearly(lstore: Store, http_server: RangeServer) -> None:
    http_server.files["/a.jpg"] = jpeg_bytes()
    item = link_item(lstore, http_server.url("/a.jpg"))
    http_server.faults.delay = 3.0
    started = time.monotonic()
    with pytest.raises(RemoteError, match="timed out"):
        lstore.read_bytes(item.media)
    assert time.monotonic() - started < 15


def test_server_stopped_mid_read_fails_without_hanging(lstore: Store, http_server: RangeServer) -> None:
    data = os.urandom(12 << 20)
    http_server.files["/big.bin"] = data
    item = link_item(lstore, http_server.url("/big.bin"), "big.bin")
    http_server.faults.abort_after["/big.bin"] = 3 << 20
    http_server.faults.on_abort = http_server.stop
    started = time.monotonic()
    with pytest.raises(RemoteError, match="refused|broken|closed"):
        lstore.read_bytes(item.media)
    assert time.monotonic() - started < 15
    assert not os.path.exists(lstore.cache.path(item.media))


def test_broken_stream_resumes_where_it_stopped(lstore: Store, http_server: RangeServer) -> None:
    data = os.urandom(9 << 20)
    http_server.files["/big.bin"] = data
    item = link_item(lstore, http_server.url("/big.bin"), "big.bin")
    http_server.faults.abort_after["/big.bin"] = 5 << 20
    http_server.faults.on_abort = lambda: http_server.faults.abort_after.clear()  # only the first time
    assert lstore.read_bytes(item.media) == data
    ranges = [r[2] for r in http_server.requests if r[0] == "GET"]
    assert ranges[0] == "bytes=0-" and ranges[-1] != "bytes=0-", ranges


def test_refused_connection(lstore: Store) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    item = link_item(lstore, f"http://127.0.0.1:{port}/x.jpg", "x.jpg")
    with pytest.raises(RemoteError, match=rf"127.0.0.1:{port}/x.jpg: connection refused"):
        lstore.read_bytes(item.media)


def test_changed_remote_fails_rather_than_mixing(lstore: Store, http_server: RangeServer) -> None:
    http_server.files["/a.bin"] = os.urandom(100_000)
    item = link_item(lstore, http_server.url("/a.bin"), "a.bin", 100_000, None)
    lstore.read_bytes(item.media)  # learns ETag and digest
    lstore.cache.drop(item.media)
    http_server.files["/a.bin"] = os.urandom(100_000)  # same size, new ETag
    with pytest.raises(RemoteChanged, match="ETag"):
        lstore.read_bytes(item.media)
    http_server.files["/a.bin"] = os.urandom(50)
    with pytest.raises(RemoteChanged, match="size"):
        lstore.read_bytes(item.media)


def test_changed_bytes_without_etag_fail_the_digest(lstore: Store, http_server: RangeServer) -> None:
    http_server.faults.no_etag = True
    http_server.files["/a.bin"] = os.urandom(100_000)
    item = link_item(lstore, http_server.url("/a.bin"), "a.bin")
    lstore.read_bytes(item.media)
    lstore.cache.drop(item.media)
    http_server.files["/a.bin"] = os.urandom(100_000)
    with pytest.raises(CorruptBlob):
        lstore.read_bytes(item.media)
    assert not os.path.exists(lstore.cache.path(item.media)), "cache not poisoned"


@pytest.mark.parametrize("url", ["ftp://host/a.jpg", "javascript:alert(1)", "a.jpg", "http:///a.jpg",
                                 "http://host/a\x00.jpg"])
def test_bad_urls_are_refused(lstore: Store, url: str) -> None:
    with pytest.raises(InvalidInput):
        link_item(lstore, url, "a.jpg")
    assert not lstore.ns.has_project("p")


def test_file_links_only_under_allowed_roots(lstore: Store, tmp_path: Path) -> None:
    inside = tmp_path / "data"
    inside.mkdir()
    (inside / "a.jpg").write_bytes(data := jpeg_bytes())
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    with pytest.raises(InvalidInput, match="allowed roots"):
        link_item(lstore, f"file://{inside}/a.jpg")
    lstore.config.allow_roots = [str(inside)]
    item = link_item(lstore, f"file://{inside}/a.jpg")
    assert lstore.read_bytes(item.media) == data
    with pytest.raises(InvalidInput, match="allowed roots"):
        link_item(lstore, f"file://{inside}/../secret.jpg", "b.jpg")


def test_same_url_is_one_link_entry(lstore: Store, http_server: RangeServer) -> None:
    url = http_server.url("/a.jpg")
    with ImportSession(lstore, "p") as session:
        session.add_link("ds", "a.jpg", url)
        session.add_link("other", "a.jpg", url)
        session.commit()
    assert lstore.stat(link_id(url)).refcount == 2


def test_dns_failure_names_the_url(lstore: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def no_dns(host, *args, **kwargs):  # fail name lookups here, so the test sends no packet out
        if host == "images.cas-test.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    item = link_item(lstore, "http://images.cas-test.invalid/a.jpg")
    with pytest.raises(RemoteError, match=r"images\.cas-test\.invalid/a\.jpg: host name did not resolve"):
        lstore.read_bytes(item.media)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/a.jpg",
                                 "http://[::ffff:169.254.169.254]/a.jpg", "http://100.100.100.200/a.jpg",
                                 "https://metadata.google.internal/computeMetadata/v1/", "http://224.0.0.1/a.jpg",
                                 "http://0.0.0.0/a.jpg"])
def test_link_local_and_metadata_addresses_are_refused_at_import(lstore: Store, url: str) -> None:
    with pytest.raises(InvalidInput, match="metadata|link-local|unicast"):
        link_item(lstore, url)
    assert not lstore.ns.has_project("p")


def test_a_name_that_resolves_to_a_metadata_address_is_refused_before_any_request(
        lstore: Store, http_server: RangeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "rebound.cas-test.invalid":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    item = link_item(lstore, "http://rebound.cas-test.invalid/a.jpg")  # a name: checked when fetched
    with pytest.raises(RemoteError, match=r"resolves to 169\.254\.169\.254, a cloud metadata address; refused"):
        lstore.read_bytes(item.media)


def test_public_links_only_refuses_private_and_loopback(tmp_path: Path, http_server: RangeServer) -> None:
    http_server.files["/a.jpg"] = jpeg_bytes()
    with Store.init(tmp_path / "open", net=NET) as store:  # the default: loopback and private are allowed
        assert store.read_bytes(link_item(store, http_server.url("/a.jpg")).media) == jpeg_bytes()
    strict = NetOptions(connect_timeout=1.0, read_timeout=1.0, retries=0, public_links_only=True)
    with Store.init(tmp_path / "strict", net=strict) as store:
        for url in (http_server.url("/a.jpg"), "http://10.1.2.3/a.jpg", "http://[::1]/a.jpg"):
            with pytest.raises(InvalidInput, match="private or loopback"):
                link_item(store, url)
        item = link_item(store, http_server.url("/a.jpg").replace("127.0.0.1", "localhost"))
        with pytest.raises(RemoteError, match="private or loopback"):
            store.read_bytes(item.media)


def test_a_hung_server_fails_a_read_within_the_deadline(tmp_path: Path, http_server: RangeServer) -> None:
    """Timeouts x retries used to add up (30 s x 4 tries through the mount): the deadline bounds
    the whole read. Without it this read would take 4 x 5 s."""
    http_server.files["/a.jpg"] = jpeg_bytes()
    net = NetOptions(connect_timeout=5.0, read_timeout=5.0, retries=3, backoff=0.05, deadline=2.0)
    with Store.init(tmp_path / "store", net=net) as store:
        item = link_item(store, http_server.url("/a.jpg"))
        http_server.faults.delay = 6.0  # answers nothing for longer than any attempt may wait
        started = time.monotonic()
        with pytest.raises(RemoteError, match="timed out"):
            store.read_bytes(item.media)
        assert time.monotonic() - started < 10


def _pools_in_child() -> int:
    from cas.blobs.backends import fetch
    return len(fetch._pools)


def test_a_forked_child_never_uses_the_parents_connections(lstore: Store, http_server: RangeServer) -> None:
    """Its sockets are the parent's too: two processes on one keep-alive connection would mix
    their responses."""
    import multiprocessing

    from cas.blobs.backends import fetch
    http_server.files["/a.jpg"] = data = jpeg_bytes()
    assert lstore.read_bytes(link_item(lstore, http_server.url("/a.jpg")).media) == data
    assert fetch._pools
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_pools_in_child) == 0


SPLIT_CASES = [
    "http://127.0.0.1:9/images/0000001.jpg", "HTTP://Host.Example.com:80/a/b%20c.jpg", "https://h", "https://h/",
    "s3://bucket/key/x.png", "file:///tmp/x.jpg", "file:/tmp/x", "http://u:p@h/x", "http://[::1]/x",
    "http://h/x?y=1#z", "http://h/a b", "http://h\\x/y", "1http://h/x", "http://h:abc/x", "ftp://h/x",
    "http://h//x//", "a+b.c-d://x/y", "http:///x", "http://h:/x", "http://é.com/ü.jpg", "http://h/x;p",
    "http://h@", "http://h/@x", "http://h/x\t.jpg", "http://h:9\u00a0/x", "http://h\u3000/x", "http://h/x\n",
    " http://h/x", "http://h/x ", "", "x", "//h/x",
]


@pytest.mark.parametrize("url", SPLIT_CASES)
def test_split_url_is_urlsplit(url: str) -> None:
    """The fast split of plain URLs gives urlsplit's result, and its host, for every URL."""
    ours, theirs = split_url(url), urlsplit(url)
    assert ours == theirs
    assert ours.hostname == theirs.hostname


def test_url_checker_checks_every_url_once_its_host_passed(tmp_path: Path) -> None:
    """Past the first URL of a host only the rest of each URL is matched: whatever check_url
    refuses in it is still refused, and file: URLs are checked in full every time."""
    inside = tmp_path / "in"
    inside.mkdir()
    check = UrlChecker([str(inside)])
    assert check("http://127.0.0.1:9/a.jpg") == "http://127.0.0.1:9/a.jpg"
    assert check("http://127.0.0.1:9/b.jpg?x=1#f")
    for bad in ("http://127.0.0.1:9/a\x01.jpg", "http://127.0.0.1:9/" + "a" * 5000, "http://169.254.169.254/a.jpg"):
        with pytest.raises(InvalidInput):
            check(bad, "list.txt:3")
    assert check(f"file://{inside}/a.jpg")
    with pytest.raises(InvalidInput, match="outside the allowed roots"):
        check(f"file://{tmp_path}/out.jpg")
