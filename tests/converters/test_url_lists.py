"""URL lists (`--format links`): text and CSV, HEAD or not, bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from cas import Store
from cas.errors import InvalidInput, InvalidName
from cas.records import LINK
from converters.ingest import detect_format, import_source
from tests.conftest import jpeg_bytes
from tests.servers import RangeServer


def serve_images(server: RangeServer, n: int) -> list[bytes]:
    images = [jpeg_bytes(20 + i, 10) for i in range(n)]
    for i, data in enumerate(images):
        server.files[f"/img/{i}.jpg"] = data
    return images


def test_text_list_with_head(store: Store, http_server: RangeServer, tmp_path: Path) -> None:
    images = serve_images(http_server, 3)
    src = tmp_path / "urls.txt"
    src.write_text("# my images\n" + "".join(http_server.url(f"/img/{i}.jpg") + "\n" for i in range(3)) + "\n")
    assert detect_format(src) == "links"
    report, _ = import_source(store, src, "p", "links", "web")
    assert report.items_added == 3 and report.links == 3
    assert {r[0] for r in http_server.requests} == {"HEAD"}, "only HEADs at import"
    for i in range(3):
        item = store.ns.item("p", "web", f"{i}.jpg")
        rec = store.stat(item.media)
        assert rec.location == LINK and rec.size == len(images[i]) and rec.etag
        assert item.size == len(images[i])
        assert store.read_bytes(item.media) == images[i]


def test_csv_with_names_and_no_head(store: Store, http_server: RangeServer, tmp_path: Path) -> None:
    serve_images(http_server, 2)
    src = tmp_path / "list.csv"
    src.write_text(f"name,url,label\nfirst.jpg,{http_server.url('/img/0.jpg')},cat\n"
                   f"second.jpg,{http_server.url('/img/1.jpg')},dog\n")
    report, _ = import_source(store, src, "p", "links", None, reader_options={"head": False})
    assert report.items_added == 2
    assert http_server.requests == []
    assert [name for name, _ in store.ns.items("p", "list")] == ["first.jpg", "second.jpg"]
    assert store.ns.item("p", "list", "first.jpg").size == -1


def test_bad_line_names_file_and_line_and_imports_nothing(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "urls.txt"
    src.write_text("http://127.0.0.1:9/a.jpg\nftp://127.0.0.1/b.jpg\n")
    with pytest.raises(InvalidInput, match=r"urls\.txt:2: .*scheme 'ftp'"):
        import_source(store, src, "p", "links", None, reader_options={"head": False})
    assert not store.ns.has_project("p")


def test_duplicate_names_and_skip_invalid(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "urls.txt"
    src.write_text("http://127.0.0.1:9/a/x.jpg\nhttp://127.0.0.1:9/b/x.jpg\nhttp://127.0.0.1:9/\n"
                   "http://127.0.0.1:9/c.jpg\n")
    with pytest.raises(InvalidInput, match=r"urls\.txt:2: item name 'x.jpg' is already used on line 1"):
        import_source(store, src, "p", "links", None, reader_options={"head": False})
    report, _ = import_source(store, src, "p", "links", None, reader_options={"head": False}, skip_invalid=True)
    assert report.items_added == 2 and report.items_invalid == 2


def test_head_failure_is_reported_with_the_line(store: Store, http_server: RangeServer, tmp_path: Path) -> None:
    serve_images(http_server, 1)
    src = tmp_path / "urls.txt"
    src.write_text(http_server.url("/img/0.jpg") + "\n" + http_server.url("/missing.jpg") + "\n")
    with pytest.raises(InvalidInput, match=r"urls\.txt:2: .*missing\.jpg: HTTP 404"):
        import_source(store, src, "p", "links", None)
    assert not store.ns.has_project("p")


def test_skip_invalid_leaves_out_a_link_with_a_bad_name(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "urls.csv"
    src.write_text("url,name\nhttp://127.0.0.1:9/a.jpg,a.jpg\nhttp://127.0.0.1:9/b.jpg,..\n")
    with pytest.raises(InvalidName, match="item name may not be '..'"):
        import_source(store, src, "p", "links", None, reader_options={"head": False})
    assert not store.ns.has_project("p")
    report, _ = import_source(store, src, "p", "links", None, reader_options={"head": False}, skip_invalid=True)
    assert (report.items_added, report.items_invalid) == (1, 1)
    assert report.invalid[0].endswith("urls.csv:3: item name may not be '..'")
