"""The FUSE operations called directly, without a kernel mount (these run where /dev/fuse
is missing too): listings, attributes, reads, writes into the store, errors as errnos,
invalidation of changed paths, and a clean shutdown."""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cas import Store
from cas.ingest.session import ImportSession
from fusefs.binding import FuseOSError
from fusefs.ops import CasOperations
from tests.conftest import jpeg_bytes, png_bytes, run_cas
from tests.fusefs.conftest import store_with

X, Y = jpeg_bytes(), jpeg_bytes(20, 20)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return store_with(tmp_path, {"a/x.jpg": X, "a/y.jpg": Y})


class Ops:
    """A CasOperations served from this process, recording the paths it invalidates."""

    def __init__(self, store: Path, read_only: bool = False) -> None:
        self.invalidated: list[str] = []
        self.ops = CasOperations(str(store), read_only=read_only, invalidate=self.invalidated.append)
        self.ops.init("/")

    def listing(self, path: str) -> dict[str, dict[str, int] | None]:
        fh = self.ops.opendir(path)
        try:
            return {name: attrs for name, attrs, _next in self.ops.readdir_at(path, fh, 0)}
        finally:
            self.ops.releasedir(path, fh)

    def read(self, path: str) -> bytes:
        fh = self.ops.open(path, os.O_RDONLY)
        try:
            return self.ops.read(path, 1 << 24, 0, fh)
        finally:
            self.ops.release(path, fh)

    def write(self, path: str, data: bytes) -> None:
        fh = self.ops.create(path, 0o644)
        try:
            self.ops.write(path, data, 0, fh)
            self.ops.flush(path, fh)
            self.ops.fsync(path, 0, fh)  # a barrier: committed when it returns
        finally:
            self.ops.release(path, fh)


@pytest.fixture
def served(store: Path) -> Iterator[Ops]:
    ops = Ops(store)
    yield ops
    ops.ops.destroy("/")


def errno_of(call, *args) -> int:
    with pytest.raises(FuseOSError) as raised:
        call(*args)
    return raised.value.errno


def test_listings_show_the_supervisely_layout_with_attributes(served: Ops):
    assert "p" in served.listing("/")
    assert {"meta.json", "a"} <= set(served.listing("/p"))
    assert {"img", "ann"} <= set(served.listing("/p/a"))
    images = served.listing("/p/a/img")
    assert {k: v["st_size"] for k, v in images.items() if v and k not in (".", "..")} == {"x.jpg": len(X),
                                                                                          "y.jpg": len(Y)}
    assert served.ops.getattr("/p/a/img/x.jpg")["st_size"] == len(X)


def test_reads_give_the_stored_bytes_and_annotations(served: Ops):
    assert served.read("/p/a/img/x.jpg") == X
    assert served.read("/p/a/img/y.jpg") == Y
    ann = json.loads(served.read("/p/a/ann/y.jpg.json"))
    assert ann["size"] == {"width": 20, "height": 20} and ann["objects"] == []
    assert json.loads(served.read("/p/meta.json"))["projectType"] == "images"


def test_errors_are_errnos_and_the_operations_go_on(served: Ops):
    assert errno_of(served.ops.getattr, "/p/a/img/missing.jpg") == errno.ENOENT
    assert errno_of(served.ops.getattr, "/nope") == errno.ENOENT
    assert errno_of(served.ops.open, "/p/a/img", os.O_RDONLY) == errno.EISDIR
    assert errno_of(served.ops.mkdir, "/p/a/img/sub", 0o755) in (errno.EPERM, errno.EINVAL, errno.EEXIST)
    assert served.read("/p/a/img/x.jpg") == X  # still serving


def test_a_file_written_in_is_imported(served: Ops, store: Path):
    image = png_bytes()
    served.write("/p/a/img/z.png", image)
    assert served.read("/p/a/img/z.png") == image
    with Store(store) as other:  # another process's view of the store: committed
        assert other.read_bytes(other.ns.item("p", "a", "z.png").media) == image


def test_an_invalid_annotation_is_einval_and_changes_nothing(served: Ops):
    before = served.read("/p/a/ann/x.jpg.json")
    fh = served.ops.open("/p/a/ann/x.jpg.json", os.O_WRONLY | os.O_TRUNC)
    served.ops.write("/p/a/ann/x.jpg.json", b"{not json", 0, fh)
    assert errno_of(served.ops.flush, "/p/a/ann/x.jpg.json", fh) == errno.EINVAL
    served.ops.release("/p/a/ann/x.jpg.json", fh)
    assert served.read("/p/a/ann/x.jpg.json") == before


def test_a_read_only_mount_refuses_every_change(store: Path):
    ops = Ops(store, read_only=True)
    try:
        assert errno_of(ops.ops.create, "/p/a/img/z.png", 0o644) == errno.EROFS
        assert errno_of(ops.ops.unlink, "/p/a/img/x.jpg") == errno.EROFS
        assert ops.read("/p/a/img/x.jpg") == X
    finally:
        ops.ops.destroy("/")


def test_a_change_made_elsewhere_invalidates_its_paths(served: Ops, store: Path):
    with Store(store) as other, ImportSession(other, "p", overwrite=True) as session:
        session.add_item("a", "x.jpg", png_bytes())
        session.commit()
    deadline = time.monotonic() + 30
    while "/p/a/img/x.jpg" not in served.invalidated and time.monotonic() < deadline:
        time.sleep(0.02)  # the invalidator polls the change log
    assert "/p/a/img/x.jpg" in served.invalidated and "/p/a/ann/x.jpg.json" in served.invalidated


def test_destroy_commits_and_closes_the_store(store: Path):
    ops = Ops(store)
    fh = ops.ops.create("/p/a/img/w.png", 0o644)
    ops.ops.write("/p/a/img/w.png", png_bytes(), 0, fh)
    ops.ops.flush("/p/a/img/w.png", fh)  # close(2): FLUSH then RELEASE; no fsync, so not committed yet
    ops.ops.release("/p/a/img/w.png", fh)
    ops.ops.destroy("/")  # unmounting commits what is pending
    assert ops.ops.store is not None and ops.ops.store.index._closed
    with Store(store) as other:
        assert other.ns.item("p", "a", "w.png").size == len(png_bytes())


def tree_of(served: Ops, root: str) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry below `root`: (mode, size, bytes of a file), from listings and reads."""
    out: dict[str, tuple[int, int, bytes | None]] = {}
    todo = [root]
    while todo:
        directory = todo.pop()
        for name, attrs in served.listing(directory).items():
            if attrs is None:
                continue
            path = f"{directory}/{name}"
            assert served.ops.getattr(path) == attrs, f"{path}: the listing and getattr agree"
            is_dir = bool(attrs["st_mode"] & 0o040000)
            if is_dir:
                todo.append(path)
            out[path[len(root):]] = (attrs["st_mode"], attrs["st_size"], None if is_dir else served.read(path))
    return out


def test_a_version_shows_what_the_project_showed_when_it_was_taken(store: Path):
    with Store(store) as s, ImportSession(s, "p") as session:
        session.add_item("a/sub", "z.jpg", jpeg_bytes(30, 10), item_meta={"camera": "left"})
        session.add_item("b", "w.png", png_bytes())
        session.commit()
    served = Ops(store)
    try:
        live = tree_of(served, "/p")
        version = run_cas(store, "snapshot", "p").stdout.decode().split()[1]
        assert served.listing("/p/.versions").keys() == {".", "..", version}
        served.write("/p/a/img/new.png", png_bytes())
        assert served.ops.unlink("/p/b/img/w.png") == 0
        assert tree_of(served, "/p") != live, "the live project moved on"
        old = tree_of(served, f"/p/.versions/{version}")
        assert old.keys() == live.keys() and {"/a/datasets/sub/meta/z.jpg.json", "/meta.json"} <= old.keys()
        for path, (mode, size, data) in old.items():
            assert mode & 0o222 == 0, f"{path} is read-only"
            assert (mode | live[path][0] & 0o222, size, data) == live[path], path
        for change in (lambda: served.ops.create(f"/p/.versions/{version}/a/img/q.png", 0o644),
                       lambda: served.ops.unlink(f"/p/.versions/{version}/a/img/x.jpg"),
                       lambda: served.ops.mkdir(f"/p/.versions/{version}/c", 0o755),
                       lambda: served.ops.rmdir("/p/.versions")):
            assert errno_of(change) == errno.EROFS
        assert errno_of(served.ops.getattr, f"/p/.versions/{'0' * 32}") == errno.ENOENT
        assert errno_of(served.ops.getattr, f"/p/.versions/{version}/a/img/new.png") == errno.ENOENT
    finally:
        served.ops.destroy("/")


def test_a_read_only_mount_lists_without_write_bits(store: Path):
    ops = Ops(store, read_only=True)
    try:
        assert all(mode & 0o222 == 0 for mode, _size, _data in tree_of(ops, "/p").values())
    finally:
        ops.ops.destroy("/")


def test_meta_json_reads_back_as_written_while_it_is_the_meta(served: Ops, store: Path):
    meta = json.loads(served.read("/p/meta.json"))
    meta["classes"] = [{"title": "car", "shape": "rectangle", "color": "#FF0000"}]
    written = json.dumps(meta, separators=(",", ":")).encode()  # not how the mount renders a meta
    fh = served.ops.open("/p/meta.json", os.O_WRONLY | os.O_TRUNC)
    served.ops.write("/p/meta.json", written, 0, fh)
    served.ops.flush("/p/meta.json", fh)
    served.ops.release("/p/meta.json", fh)
    assert served.read("/p/meta.json") == written
    assert served.ops.getattr("/p/meta.json")["st_size"] == len(written)
    with Store(store) as other:  # changed elsewhere: the mount shows the new meta
        other.set_meta("p", {**meta, "tags": [{"name": "day", "value_type": "none"}]})
    assert json.loads(served.read("/p/meta.json"))["tags"][0]["name"] == "day"


def test_a_version_the_remote_cannot_be_asked_for_is_eio_not_enoent(served: Ops, store: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    from cas.blobs.backends.fetch import RemoteError
    from fusefs import versions

    def unreachable(*_args: object) -> None:
        raise RemoteError("s3://bucket/p: connection refused (after 3 retries)")

    version = run_cas(store, "snapshot", "p").stdout.decode().split()[1]
    monkeypatch.setattr(versions, "read_version", unreachable)
    assert errno_of(served.ops.getattr, f"/p/.versions/{version}") == errno.EIO
    assert errno_of(served.ops.getattr, f"/p/.versions/{'0' * 32}") == errno.EIO
    monkeypatch.undo()
    assert errno_of(served.ops.getattr, f"/p/.versions/{'0' * 32}") == errno.ENOENT
    assert served.ops.getattr(f"/p/.versions/{version}")["st_mode"] & 0o040000


@pytest.mark.parametrize("size", ["loose", "packed"])
def test_a_copy_into_the_mount_heals_a_blob_fsck_found_damaged(tmp_path: Path, size: str):
    from tests.cas.maintenance.test_fsck import IMAGES
    from tests.conftest import damage_blob
    image = IMAGES[size](1)
    store = store_with(tmp_path, {"a/x.png": image})
    with Store(store) as s:
        damage_blob(s, s.ns.item("p", "a", "x.png").media)
    assert run_cas(store, "fsck", check=False).returncode == 1  # found, and marked
    ops = Ops(store)
    try:
        ops.write("/p/a/img/copy.png", image)
    finally:
        ops.ops.destroy("/")  # unmount: a barrier, every close committed
    out = run_cas(store, "fsck", check=False).stdout.decode()
    assert "healed-blob:" in out, out and out.splitlines()[-1].endswith("clean")
    with Store(store) as s:
        assert s.read_bytes(s.ns.item("p", "a", "x.png").media) == image
