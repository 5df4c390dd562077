"""Writing through a real mount: cp -r imports, closes validate, rm and mv change the store."""

import errno
import json
import os
import shutil
import subprocess

import pytest

from cas import Store
from cas.model.annotation import empty_annotation
from tests.conftest import jpeg_bytes, png_bytes, run_cas
from tests.fusefs.conftest import store_with

META = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}], "tags": [], "projectType": "images"}


def box_ann(w, h):
    return {**empty_annotation(w, h), "objects": [{"classTitle": "car", "geometryType": "rectangle", "tags": [],
                                                   "points": {"exterior": [[1, 1], [5, 5]], "interior": []}}]}


def stats(store):
    return json.loads(run_cas(store, "stats", "--json").stdout)


def test_cp_r_of_a_supervisely_project_imports_it(tmp_path, sample_project, mount):
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        subprocess.run(["cp", "-r", str(sample_project), str(mnt / "copied")], check=True, capture_output=True)
        assert (mnt / "copied/train/datasets/night/img").is_dir()
    run_cas(store, "export", "copied", str(tmp_path / "out"))
    for src in sample_project.rglob("*"):
        if src.is_file():
            out = tmp_path / "out" / src.relative_to(sample_project)
            if src.suffix == ".json":
                assert json.loads(out.read_text()) == json.loads(src.read_text()), src
            else:
                assert out.read_bytes() == src.read_bytes(), src
    assert run_cas(store, "fsck").returncode == 0


def test_image_copied_in_gets_an_empty_annotation_of_its_size(tmp_path, mount):
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        (mnt / "p").mkdir()
        (mnt / "p/d").mkdir()
        assert sorted(os.listdir(mnt / "p/d")) == ["ann", "img", "img_info", "meta"]
        (mnt / "p/d/img/a.png").write_bytes(png_bytes(33, 21))
        assert json.loads((mnt / "p/d/ann/a.png.json").read_text()) == empty_annotation(33, 21)
        (mnt / "p/d/datasets").mkdir()
        (mnt / "p/d/datasets/sub").mkdir()
        (mnt / "p/d/datasets/sub/img").mkdir()
        (mnt / "p/d/datasets/sub/img/b.jpg").write_bytes(jpeg_bytes())
    assert Store(store).ns.datasets("p") == ["d", "d/sub"]


def test_invalid_annotation_fails_close_with_einval_and_changes_nothing(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    with mount(store) as mnt:
        (mnt / "p/meta.json").write_text(json.dumps(META))
        before = stats(store)
        for bad in (b"{not json", json.dumps({**box_ann(40, 30), "objects": [
                {**box_ann(40, 30)["objects"][0], "classTitle": "bus"}]}).encode(),
                json.dumps(box_ann(41, 30)).encode()):
            with pytest.raises(OSError) as err:
                with open(mnt / "p/d/ann/a.jpg.json", "wb") as f:
                    f.write(bad)
            assert err.value.errno == errno.EINVAL
        assert stats(store) == before
        (mnt / "p/d/ann/a.jpg.json").write_text(json.dumps(box_ann(40, 30)))
        assert json.loads((mnt / "p/d/ann/a.jpg.json").read_text()) == box_ann(40, 30)
    log = (store / "logs/mount.log").read_text()
    assert "unknown class 'bus'" in log


def test_annotation_before_its_image_is_attached_when_the_image_arrives(tmp_path, mount):
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        (mnt / "p").mkdir()
        (mnt / "p/meta.json").write_text(json.dumps(META))
        (mnt / "p/d").mkdir()
        os.listdir(mnt / "p/d")
        (mnt / "p/d/ann/a.jpg.json").write_text(json.dumps(box_ann(40, 30)))
        assert "a.jpg.json" in os.listdir(mnt / "p/d/ann")
        assert not (mnt / "p/d/img/a.jpg").exists()
        (mnt / "p/d/img/a.jpg").write_bytes(jpeg_bytes(40, 30))
        assert json.loads((mnt / "p/d/ann/a.jpg.json").read_text()) == box_ann(40, 30)


def test_bad_image_and_bad_meta_fail_close_and_leave_nothing(tmp_path, mount):
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        (mnt / "p").mkdir()
        (mnt / "p/d").mkdir()
        (mnt / "p/d/img").mkdir()
        with pytest.raises(OSError) as err:
            (mnt / "p/d/img/broken.jpg").write_bytes(jpeg_bytes()[:100])
        assert err.value.errno == errno.EINVAL
        assert os.listdir(mnt / "p/d/img") == []
        (mnt / "p/meta.json").write_text(json.dumps(META))
        dup = {**META, "classes": META["classes"] * 2}
        with pytest.raises(OSError) as err:
            (mnt / "p/meta.json").write_text(json.dumps(dup))
        assert err.value.errno == errno.EINVAL
        assert json.loads((mnt / "p/meta.json").read_text()) == META
    run_cas(store, "gc")
    assert stats(store)["blobs"] == 0 and stats(store)["items"] == 0


def test_rm_and_mv_change_the_store(tmp_path, mount):
    store = store_with(tmp_path, {"a/x.jpg": jpeg_bytes(), "a/y.png": png_bytes()})
    with mount(store) as mnt:
        os.rename(mnt / "p/a/img/x.jpg", mnt / "p/a/img/z.jpg")
        assert sorted(os.listdir(mnt / "p/a/img")) == ["y.png", "z.jpg"]
        assert (mnt / "p/a/img/z.jpg").read_bytes() == jpeg_bytes()
        os.rename(mnt / "p/a", mnt / "p/b")
        assert os.listdir(mnt / "p") == ["meta.json", "b"] or sorted(os.listdir(mnt / "p")) == ["b", "meta.json"]
        (mnt / "p/b/img/y.png").unlink()
        assert os.listdir(mnt / "p/b/img") == ["z.jpg"]
        shutil.rmtree(mnt / "p/b")
        assert os.listdir(mnt / "p") == ["meta.json"]
    run_cas(store, "gc")
    assert stats(store)["items"] == 0 and stats(store)["blobs"] == 0
    assert run_cas(store, "fsck").returncode == 0


def test_unsupported_operations_fail_cleanly_and_the_daemon_lives(tmp_path, mount):
    store = store_with(tmp_path, {"a/x.jpg": jpeg_bytes()})
    with mount(store) as mnt:
        cases = [
            (lambda: os.symlink("x.jpg", mnt / "p/a/img/l.jpg"), {errno.EPERM}),
            (lambda: os.link(mnt / "p/a/img/x.jpg", mnt / "p/a/img/h.jpg"), {errno.EPERM}),
            (lambda: (mnt / ".cas/stats.json").write_text("{}"), {errno.EPERM, errno.EACCES}),
            (lambda: (mnt / "p/a/nope").mkdir(), {errno.EPERM}),
            (lambda: (mnt / "p/a/notes.txt").write_text("x"), {errno.EPERM}),
            (lambda: (mnt / "p/a/img/sub").mkdir(), {errno.EPERM}),
            (lambda: (mnt / "p/a/img/x2.jpg").write_bytes(b"not an image"), {errno.EINVAL}),
        ]
        for action, codes in cases:
            with pytest.raises(OSError) as err:
                action()
            assert err.value.errno in codes, (err.value, codes)
        assert (mnt / "p/a/img/x.jpg").read_bytes() == jpeg_bytes()


def test_read_only_mount_refuses_every_change(tmp_path, mount):
    store = store_with(tmp_path, {"a/x.jpg": jpeg_bytes()})
    with mount(store, read_only=True) as mnt:
        for action in (lambda: (mnt / "q").mkdir(), lambda: (mnt / "p/a/img/x.jpg").unlink(),
                       lambda: (mnt / "p/a/img/new.jpg").write_bytes(jpeg_bytes())):
            with pytest.raises(OSError) as err:
                action()
            assert err.value.errno == errno.EROFS
        assert (mnt / "p/a/img/x.jpg").read_bytes() == jpeg_bytes()
