"""Real writers through a real mount: rsync, cp -a, tar, editors' temp files, rm -rf, full disks.

What these tests hold the mount to:
- Temporary ("staged") names (dot files, `#x#`, `x~`, `*.tmp`/`.swp`/`.part`/..., Python's
  `tmpXXXXXXXX`) are ordinary private files anywhere writable: never items, gone at unmount.
- Renaming a staged file onto a Supervisely position imports it, validated like a close().
- chmod/chown/utimens are kept for the life of the mount, so `rsync -a`, `cp -a` and `tar -x`
  exit 0 and a second `rsync -a` transfers nothing; contents read back verbatim.
- Writes to img_info/ are accepted and never imported.
- `rm -rf` of a project (with its versions) or a dataset works like `cas rm`.
- close() validates; fsync() and unmount are barriers for the index (write-back).
- A full store disk is ENOSPC, never EIO.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from cas.model.annotation import empty_annotation
from tests.conftest import assert_user_error, jpeg_bytes, png_bytes, run_cas
from tests.fusefs.conftest import store_with

META = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}], "tags": [], "projectType": "images"}
COUNTS = ("projects", "datasets", "items", "blobs", "logical_bytes", "stored_bytes")
STAGED_NAMES = [".hidden", ".a.jpg.json.swp", "#autosave#", "#lock", "backup~", "x.tmp", "x.TMP", "x.temp",
                "x.swp", "x.swo", "x.swx", "x.part", "x.Partial", "x.crdownload", "x.CRDOWNLOAD", "tmpab_c1234"]


def box(x0, y0, x1, y1):
    return {"classTitle": "car", "geometryType": "rectangle", "description": "", "tags": [],
            "points": {"exterior": [[x0, y0], [x1, y1]], "interior": []}}


def ann_with(w, h, *objects):
    return {**empty_annotation(w, h), "objects": list(objects)}


def counts(store):
    stats = json.loads(run_cas(store, "stats", "--json").stdout)
    return {key: stats[key] for key in COUNTS}


def barrier(path):
    """fsync() on any file of the mount: everything closed before it is in the index."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(*cmd, cwd=None):
    return subprocess.run([str(c) for c in cmd], capture_output=True, cwd=cwd, timeout=120)


def item_names(store, target):
    """Item names `cas ls P/D` prints (child datasets, printed as `child/`, left out)."""
    lines = run_cas(store, "ls", target).stdout.decode().splitlines()
    return sorted(line.split("\t")[0] for line in lines if line and not line.split("\t")[0].endswith("/"))


def assert_export_equals(store, project, src, out):
    """`cas export` gives back every file of `src`: JSON equal once parsed, other files byte-equal."""
    run_cas(store, "export", project, str(out))
    for path in src.rglob("*"):
        if path.is_file():
            got = out / path.relative_to(src)
            if path.suffix == ".json":
                assert json.loads(got.read_text()) == json.loads(path.read_text()), path
            else:
                assert got.read_bytes() == path.read_bytes(), path


def source_files(src):
    return sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())


def raise_errno(action):
    with pytest.raises(OSError) as err:
        action()
    return err.value.errno


# -- rsync, cp -a, tar ----------------------------------------------------------------------
def test_rsync_a_imports_and_a_second_rsync_transfers_nothing(tmp_path, sample_project, mount):
    assert shutil.which("rsync") is not None, \
        "rsync is not installed: `make test` installs it (system-deps); apt-get install rsync"
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        first = run("rsync", "-a", f"{sample_project}/", mnt / "synced")
        assert first.returncode == 0, first.stderr.decode()
        barrier(mnt / "synced/meta.json")
        assert_export_equals(store, "synced", sample_project, tmp_path / "out")
        for rel in source_files(sample_project):
            assert (mnt / "synced" / rel).read_bytes() == (sample_project / rel).read_bytes(), rel
        second = run("rsync", "-a", "--stats", f"{sample_project}/", mnt / "synced")
        assert second.returncode == 0, second.stderr.decode()
        assert "Number of regular files transferred: 0" in second.stdout.decode(), second.stdout.decode()


def test_cp_a_keeps_times_and_round_trips(tmp_path, sample_project, mount):
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        proc = run("cp", "-a", sample_project, mnt / "copied")
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
        for rel in source_files(sample_project):
            assert int(os.stat(mnt / "copied" / rel).st_mtime) == int(os.stat(sample_project / rel).st_mtime), rel
            assert (mnt / "copied" / rel).read_bytes() == (sample_project / rel).read_bytes(), rel
    assert_export_equals(store, "copied", sample_project, tmp_path / "out")


def test_tar_x_into_the_mount_imports(tmp_path, sample_project, mount):
    archive = tmp_path / "sample.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(sample_project, arcname="tarred")
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        proc = run("tar", "-xf", archive, "-C", mnt)
        assert proc.returncode == 0, proc.stderr.decode()
    assert_export_equals(store, "tarred", sample_project, tmp_path / "out")
    assert run_cas(store, "fsck").returncode == 0


# -- staged files ---------------------------------------------------------------------------
def test_staged_names_are_private_files_anywhere_writable(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    before = counts(store)
    stamp = 1_600_000_000
    with mount(store) as mnt:
        for where in ("", "p", "p/d", "p/d/img", "p/d/ann", "p/d/meta"):
            folder = mnt / where
            listed = set(os.listdir(folder))
            for name in STAGED_NAMES:
                path, data = folder / name, f"{where}/{name}".encode() * 100
                path.write_bytes(data)
                assert path.read_bytes() == data, path
                assert os.stat(path).st_size == len(data) and name in os.listdir(folder), path
                os.chmod(path, 0o600)
                os.chown(path, 1234, 4321)
                os.utime(path, (stamp, stamp))
                st = os.stat(path)
                assert (st.st_mode & 0o777, st.st_uid, st.st_gid, int(st.st_mtime)) == (0o600, 1234, 4321, stamp)
                moved = folder / f"{name}.part"
                os.rename(path, moved)  # staged onto staged: attributes move with the name
                st = os.stat(moved)
                assert (st.st_mode & 0o777, int(st.st_mtime), moved.read_bytes()) == (0o600, stamp, data), moved
                assert not path.exists()
                moved.unlink()
            staged_dir = folder / ".staging"
            staged_dir.mkdir()
            assert ".staging" in os.listdir(folder) and staged_dir.is_dir()
            staged_dir.rmdir()
            assert set(os.listdir(folder)) == listed, where
        barrier(mnt / "p/d/img/a.jpg")
        assert counts(store) == before
    assert counts(store) == before


def test_swap_file_is_never_imported_and_a_leftover_is_gone_after_remount(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    before = counts(store)
    ann = "p/d/ann"
    data = bytearray(b"b0VIM 9.0\x00" + bytes(range(256)) * 32)
    with mount(store) as mnt:
        swap = mnt / ann / ".a.jpg.json.swp"
        swap.write_bytes(data)
        with open(swap, "r+b") as f:  # vim rewrites blocks of its swap file in place
            f.seek(4096)
            f.write(b"U" * 100)
        data[4096:4196] = b"U" * 100
        assert swap.read_bytes() == bytes(data)
        assert sorted(os.listdir(mnt / ann)) == [".a.jpg.json.swp", "a.jpg.json"]
        assert json.loads((mnt / ann / "a.jpg.json").read_text()) == empty_annotation(40, 30)
        swap.unlink()
        assert os.listdir(mnt / ann) == ["a.jpg.json"]
        (mnt / ann / ".a.jpg.json.swp").write_bytes(b"left behind")
        (mnt / "p/d/img/b.jpg.part").write_bytes(jpeg_bytes()[:50])
        (mnt / "p/d/.staging").mkdir()
        assert "b.jpg.part" in os.listdir(mnt / "p/d/img")
    assert counts(store) == before
    with mount(store) as mnt:
        assert os.listdir(mnt / ann) == ["a.jpg.json"]
        assert os.listdir(mnt / "p/d/img") == ["a.jpg"]
        assert ".staging" not in os.listdir(mnt / "p/d")
    assert item_names(store, "p/d") == ["a.jpg"]


def test_annotation_written_by_tempfile_and_replace_is_imported_verbatim(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30), "d/b.jpg": jpeg_bytes(40, 30, (0, 0, 200))})
    ann_a = ann_with(40, 30, box(1, 1, 5, 5))
    ann_b = ann_with(40, 30, box(2, 2, 9, 9), box(10, 3, 20, 8))
    raw_a = json.dumps(ann_a, indent=1).encode() + b"\n"  # not the store's own formatting: kept verbatim
    raw_b = json.dumps(ann_b, separators=(",", ":")).encode()
    stamp = 1_500_000_000
    with mount(store) as mnt:
        (mnt / "p/meta.json").write_text(json.dumps(META))
        anns = mnt / "p/d/ann"
        with tempfile.NamedTemporaryFile(dir=anns, delete=False) as f:  # Python's atomic-write idiom
            f.write(raw_a)
            f.flush()
            os.fsync(f.fileno())
        assert re.fullmatch(r"tmp[a-z0-9_]{8}", Path(f.name).name), f.name
        os.chmod(f.name, 0o640)
        os.utime(f.name, (stamp, stamp))
        os.replace(f.name, anns / "a.jpg.json")
        assert (anns / "a.jpg.json").read_bytes() == raw_a
        st = os.stat(anns / "a.jpg.json")
        assert (st.st_mode & 0o777, int(st.st_mtime), st.st_size) == (0o640, stamp, len(raw_a))
        editor = anns / ".b.jpg.json.tmp"  # an editor's save: write beside, then rename over
        editor.write_bytes(raw_b)
        os.replace(editor, anns / "b.jpg.json")
        assert (anns / "b.jpg.json").read_bytes() == raw_b
        assert sorted(os.listdir(anns)) == ["a.jpg.json", "b.jpg.json"]
    run_cas(store, "export", "p", str(tmp_path / "out"))
    assert json.loads((tmp_path / "out/d/ann/a.jpg.json").read_text()) == ann_a
    assert json.loads((tmp_path / "out/d/ann/b.jpg.json").read_text()) == ann_b


EDITORS = {  # an in-place edit of a file, as each tool does it: a temporary name beside it, renamed over
    "sed -i": lambda path: ["sed", "-i", "s/CHANGED_FROM/CHANGED_TO/", path],
    "perl -pi": lambda path: ["perl", "-pi", "-e", "s/CHANGED_FROM/CHANGED_TO/", path],
    "vim -es": lambda path: ["vim", "-u", "NONE", "-i", "NONE", "-N", "-es", "-c", "%s/CHANGED_FROM/CHANGED_TO/",
                             "-c", "wq", path],
    "python .new": lambda path: [sys.executable, "-c", "import os, sys; p = sys.argv[1]; "
                                 "data = open(p).read().replace('CHANGED_FROM', 'CHANGED_TO'); "
                                 "open(p + '.new', 'w').write(data); os.replace(p + '.new', p)", path],
    "python tempfile": lambda path: [sys.executable, "-c", "import os, sys, tempfile; p = sys.argv[1]; "
                                     "data = open(p).read().replace('CHANGED_FROM', 'CHANGED_TO'); "
                                     "fd, tmp = tempfile.mkstemp(dir=os.path.dirname(p)); os.write(fd, data.encode()); "
                                     "os.close(fd); os.replace(tmp, p)", path],
}


@pytest.mark.parametrize("editor", sorted(EDITORS))
def test_editors_rewrite_annotations_and_meta_in_place(tmp_path, mount, editor):
    assert shutil.which(EDITORS[editor]("x")[0]), f"{EDITORS[editor]('x')[0]} is not installed"
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    ann = {**ann_with(40, 30, box(1, 1, 5, 5)), "description": "CHANGED_FROM"}
    meta = {**META, "classes": [{**META["classes"][0], "title": "car"}, {"title": "CHANGED_FROM", "shape": "any",
                                                                          "color": "#00FF00"}]}
    with mount(store) as mnt:
        (mnt / "p/meta.json").write_text(json.dumps(meta))
        (mnt / "p/d/ann/a.jpg.json").write_text(json.dumps(ann))
        for path in (mnt / "p/d/ann/a.jpg.json", mnt / "p/meta.json"):
            proc = run(*EDITORS[editor](path))
            assert proc.returncode == 0 and proc.stderr == b"" and b"lost" not in proc.stdout, \
                (path, proc.stdout, proc.stderr)
            assert b"CHANGED_TO" in path.read_bytes() and b"CHANGED_FROM" not in path.read_bytes(), path
        assert sorted(os.listdir(mnt / "p/d/ann")) == ["a.jpg.json"]  # no temporary file left
        assert sorted(os.listdir(mnt / "p")) == ["d", "meta.json"]
        status = run(sys.executable, "-m", "cas", "mount-status", mnt)
        assert status.returncode == 0, status.stdout  # nothing refused
    run_cas(store, "export", "p", str(tmp_path / "out"))
    assert json.loads((tmp_path / "out/d/ann/a.jpg.json").read_text())["description"] == "CHANGED_TO"
    titles = [c["title"] for c in json.loads((tmp_path / "out/meta.json").read_text())["classes"]]
    assert "CHANGED_TO" in titles


def test_an_empty_file_at_a_position_waits_for_its_bytes(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    with mount(store) as mnt:
        img = mnt / "p/d/img"
        proc = run("touch", img / "empty.jpg", mnt / "p/d/ann/later.jpg.json")
        assert proc.returncode == 0, proc.stderr
        assert os.stat(img / "empty.jpg").st_size == 0 and "empty.jpg" in os.listdir(img)
        (img / "empty.jpg").write_bytes(jpeg_bytes(12, 10))
        barrier(img / "empty.jpg")
        assert item_names(store, "p/d") == ["a.jpg", "empty.jpg"]
        (mnt / "p/d/ann/later.jpg.json").unlink()
        (img / "gone.jpg").touch()
        (img / "gone.jpg").unlink()
        assert sorted(os.listdir(img)) == ["a.jpg", "empty.jpg"]


def test_mkdir_then_mv_into_the_new_dataset(tmp_path, mount):
    """The process that made a dataset sees no sections until it makes them (cp -r, rsync and
    tar make them next); anyone else sees the layout at once."""
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    photo = tmp_path / "x.jpg"
    photo.write_bytes(jpeg_bytes(20, 10))
    with mount(store) as mnt:
        assert run("mkdir", mnt / "p/new").returncode == 0
        proc = run("mv", photo, f"{mnt}/p/new/img/")
        assert proc.returncode == 0, proc.stderr
        barrier(mnt / "p/new/img/x.jpg")
        assert item_names(store, "p/new") == ["x.jpg"]
        assert not photo.exists()


def test_a_refused_write_the_shell_ignores_shows_in_the_status(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    with mount(store) as mnt:
        proc = run("sh", "-c", f"echo '{{\"bad\": 1}}' > {mnt}/p/d/ann/a.jpg.json")
        assert proc.returncode == 0  # a shell's > never checks close()
        status = run(sys.executable, "-m", "cas", "mount-status", mnt)
        assert status.returncode == 1, status.stdout
        assert b"rejected p/d/ann/a.jpg.json" in status.stdout, status.stdout
        assert b"rejected p/d/ann/a.jpg.json" in (mnt / ".cas/status").read_bytes()
        refused = json.loads((mnt / ".cas/status.json").read_text())["refused"]
        assert [r["path"] for r in refused] == ["p/d/ann/a.jpg.json"]  # once: not for the emptying open too
        assert run(sys.executable, "-m", "cas", "mount-status", mnt).returncode == 0  # nothing new since


def test_a_good_annotation_written_by_the_shell_is_not_refused(tmp_path, mount):
    """`cat a > b` opens b emptied and closes a duplicate of it (a FLUSH) before writing: the
    empty file then is not the end of the write."""
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    good = tmp_path / "good.json"
    good.write_text(json.dumps(ann_with(40, 30, box(1, 1, 5, 5))))
    with mount(store) as mnt:
        (mnt / "p/meta.json").write_text(json.dumps(META))
        assert run("sh", "-c", f"cat {good} > {mnt}/p/d/ann/a.jpg.json").returncode == 0
        barrier(mnt / "p/d/ann/a.jpg.json")
        status = run(sys.executable, "-m", "cas", "mount-status", mnt)
        assert status.returncode == 0, status.stdout
        assert json.loads((mnt / "p/d/ann/a.jpg.json").read_text())["objects"][0]["classTitle"] == "car"


def test_invalid_annotation_is_einval_at_close_and_at_rename(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(40, 30)})
    good = ann_with(40, 30, box(1, 1, 5, 5))
    bad = {"bad json": b'{"size": {"height": 30,',
           "unknown class": json.dumps(ann_with(40, 30, {**box(1, 1, 5, 5), "classTitle": "bus"})).encode(),
           "wrong size": json.dumps(ann_with(41, 30, box(1, 1, 5, 5))).encode()}
    with mount(store) as mnt:
        (mnt / "p/meta.json").write_text(json.dumps(META))
        target = mnt / "p/d/ann/a.jpg.json"
        raw_good = json.dumps(good, indent=2).encode()
        target.write_bytes(raw_good)
        for why, raw in bad.items():
            def write_in_place(raw=raw):
                with open(target, "wb") as f:
                    f.write(raw)
            assert raise_errno(write_in_place) == errno.EINVAL, why
            assert target.read_bytes() == raw_good, why
            staged = mnt / "p/d/ann/.a.jpg.json.tmp"
            staged.write_bytes(raw)  # a staged file takes anything
            assert raise_errno(lambda staged=staged: os.rename(staged, target)) == errno.EINVAL, why
            assert target.read_bytes() == raw_good, why
            assert staged.read_bytes() == raw, why  # a failed rename leaves both names as they were
            staged.unlink()
        assert os.listdir(mnt / "p/d/ann") == ["a.jpg.json"]
    run_cas(store, "export", "p", str(tmp_path / "out"))
    assert json.loads((tmp_path / "out/d/ann/a.jpg.json").read_text()) == good
    assert "unknown class 'bus'" in (store / "logs/mount.log").read_text()


# -- img_info, rm -rf, a folder of images ---------------------------------------------------
def test_sdk_project_with_img_info_copies_and_img_info_is_not_imported(tmp_path, sample_project, mount):
    infos = {}
    for img in sorted(sample_project.rglob("img/*")):
        info = img.parent.parent / "img_info" / f"{img.name}.json"
        info.parent.mkdir(exist_ok=True)
        info.write_text(json.dumps({"id": len(infos) + 1000, "name": img.name, "hash": "x" * 44,
                                    "mime": "image/jpeg", "created_at": "2024-01-01T00:00:00.000Z"}))
        infos[info.relative_to(sample_project)] = info.read_bytes()
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        proc = run("cp", "-r", sample_project, mnt / "sdk")
        assert proc.returncode == 0, proc.stderr.decode()
        for rel, data in infos.items():
            assert (mnt / "sdk" / rel).read_bytes() == data, rel  # shown in place of the generated file
    assert counts(store)["items"] == len(infos) == 8
    assert run_cas(store, "fsck").returncode == 0


def test_rm_rf_of_a_project_drops_what_cas_rm_drops(tmp_path, mount):
    files = {"d/a.jpg": jpeg_bytes(40, 30), "d/b.png": png_bytes(20, 20), "d/sub/c.jpg": jpeg_bytes(10, 10)}
    store = store_with(tmp_path, files)
    shared = tmp_path / "q_src/d"
    shared.mkdir(parents=True)
    (shared / "a.jpg").write_bytes(jpeg_bytes(40, 30))  # q shares a blob with p
    run_cas(store, "import", str(tmp_path / "q_src"), "--project", "q")
    run_cas(store, "snapshot", "p", "-m", "before the cleanup")
    run_cas(store, "rm", "p/d/b.png")  # b.png's bytes are now held only by the version
    assert run_cas(store, "log", "p").stdout.strip()
    twin = tmp_path / "twin"
    shutil.copytree(store, twin)
    with mount(store) as mnt:
        proc = run("rm", "-rf", mnt / "p")
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
        assert set(os.listdir(mnt)) - {".cas"} == {"q"}
    assert_user_error(run_cas(store, "log", "p", check=False))
    run_cas(twin, "rm", "p")
    run_cas(store, "gc")
    run_cas(twin, "gc")
    assert counts(store) == counts(twin)
    assert counts(store)["projects"] == 1 and counts(store)["items"] == 1
    assert item_names(store, "q/d") == ["a.jpg"]
    assert run_cas(store, "fsck").returncode == 0


def test_rm_rf_of_a_dataset(tmp_path, mount):
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(), "d/sub/c.jpg": jpeg_bytes(10, 10), "e/x.png": png_bytes()})
    with mount(store) as mnt:
        proc = run("rm", "-rf", mnt / "p/d")
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
        assert sorted(os.listdir(mnt / "p")) == ["e", "meta.json"]
    assert run_cas(store, "ls", "p/d", check=False).returncode == 1
    assert item_names(store, "p/e") == ["x.png"]
    run_cas(store, "gc")
    assert counts(store)["items"] == 1


def test_a_folder_of_images_copied_into_a_dataset_is_refused_with_a_hint(tmp_path, mount):
    """Into a dataset that holds items there is no place for a folder (a drop goes at the
    mount root or into a project folder: see test_drops.py)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(jpeg_bytes())
    (photos / "b.png").write_bytes(png_bytes())
    store = store_with(tmp_path, {"d/x.jpg": jpeg_bytes()})
    log = store / "logs/mount.log"
    with mount(store) as mnt:
        start = log.stat().st_size
        proc = run("cp", "-r", photos, mnt / "p/d")
        assert proc.returncode != 0
        stderr = proc.stderr.decode()
        assert "No such file or directory" not in stderr, stderr
        assert "Operation not permitted" in stderr, stderr
        assert raise_errno(lambda: (mnt / "p/README.md").write_text("notes")) == errno.EPERM  # a project holds datasets
        status = run(sys.executable, "-m", "cas", "mount-status", mnt)
        assert status.returncode == 1 and b"p/d/photos: no place for it" in status.stdout, status.stdout
    with open(log, "rb") as f:
        f.seek(start)
        new_lines = f.read().decode(errors="replace").splitlines()
    refused = [line for line in new_lines if "no place for it" in line]
    assert len(refused) == 1 and "img/" in refused[0], new_lines  # one line for the folder, not one per file
    assert any("p/README.md: no place for a file" in line and "img/" in line for line in new_lines), new_lines
    assert counts(store)["items"] == 1


# -- write-back barriers --------------------------------------------------------------------
def test_fsync_is_a_barrier_for_other_processes(tmp_path, mount):
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        img = mnt / "p/d/img"
        (mnt / "p").mkdir()
        (mnt / "p/d").mkdir()
        img.mkdir()
        for i in range(30):
            data = png_bytes(16, 16, (i, 100, 200))
            (img / f"{i:02d}.png").write_bytes(data)
            assert (img / f"{i:02d}.png").read_bytes() == data  # readable right after close()
        barrier(img / "29.png")
        assert counts(store)["items"] == 30
        assert len(item_names(store, "p/d")) == 30
        for i in range(30, 40):
            (img / f"{i:02d}.png").write_bytes(png_bytes(16, 16, (i, 100, 200)))
        sync = run("sync", img / "39.png")
        assert sync.returncode == 0, sync.stderr.decode()
        assert counts(store)["items"] == 40


# -- a full disk ----------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def mount_tmpfs(path, size):
    path.mkdir()
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, f"size={size}".encode()) != 0:
        code = ctypes.get_errno()
        if code == errno.EPERM:
            pytest.skip("cannot mount a tmpfs here (EPERM: not root or no CAP_SYS_ADMIN), needed for a small disk")
        raise OSError(code, f"mount -t tmpfs {path}: {os.strerror(code)}")


def umount_tmpfs(path):
    """Unmount; the killed daemon may hold files a moment longer (wait for it), else detach lazily."""
    deadline = time.monotonic() + 10
    while _libc.umount2(str(path).encode(), 0) != 0:
        if ctypes.get_errno() != errno.EBUSY or time.monotonic() > deadline:
            _libc.umount2(str(path).encode(), 2)  # MNT_DETACH
            return
        time.sleep(0.05)


def copy_in(path, data):
    """Write one file with plain syscalls; returns the errno of every failing call, in order."""
    errors = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for at in range(0, len(data), 1 << 16):
            os.write(fd, data[at:at + (1 << 16)])
        os.fsync(fd)
    except OSError as e:
        errors.append(e.errno)
    try:
        os.close(fd)
    except OSError as e:
        errors.append(e.errno)
    return errors


def test_full_disk_is_enospc_never_eio(tmp_path, mount):
    small = tmp_path / "small"
    mount_tmpfs(small, "8m")
    try:
        store = small / "store"
        run_cas(store, "init")
        rng = random.Random(9)
        head = jpeg_bytes(64, 48)[:-2]
        errors = []
        with mount(store) as mnt:
            (mnt / "p").mkdir()
            (mnt / "p/d").mkdir()
            (mnt / "p/d/img").mkdir()
            for i in range(48):  # 48 x 256 KB of incompressible, distinct images: 12 MB > 8 MB
                try:
                    errors = copy_in(mnt / f"p/d/img/{i:02d}.jpg", head + rng.randbytes(256 << 10) + b"\xff\xd9")
                except OSError as e:  # open() itself
                    errors = [e.errno]
                if errors:
                    break
            assert errors, "48 images of 256 KB fit on an 8 MB disk?"
            assert errors[0] == errno.ENOSPC and errno.EIO not in errors, [errno.errorcode[c] for c in errors]
        assert "Traceback" not in (store / "logs/mount.log").read_text(errors="replace")
        check = run_cas(store, "fsck", check=False)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    finally:
        umount_tmpfs(small)
