"""Drops: folders in other layouts copied into a real mount, imported whole by the converter
`cas import` runs, with the same result as `cas import` of the source.

What these tests hold the mount to:
- `cp -r` (also `cp -a`, `rsync -a`, `mv`) of an export written by another tool (the
  Supervisely SDK, Datumaro), or of a plain folder of images, at the mount root makes a
  project, and into a project folder merges into that project: the same datasets, items and
  objects as `cas import SRC --project P`.
- Until it is imported the folder shows what was written (sizes, times, modes); a second
  rsync transfers nothing.
- A drop that fails changes nothing in the namespace, stays with its reason beside it
  (`<name>.import-error`, /.cas/status, `cas mount-status` exits 1), and is imported once fixed.
- SIGKILL of the daemon during a drop's copy or its import: after a remount every file whose
  close() succeeded is imported, once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cas import Store
from converters.ingest import detect_format, import_source
from fusefs.mount import daemon_pid
from tests.conftest import ROOT, jpeg_bytes, run_cas, write_images
from tests.converters.samples import cityscapes_sample, coco_sample, labelme_sample, masks_sample, objects_of
from tests.fusefs.conftest import force_unmount, mounted, store_with

WATCHDOG = 120  # seconds: against a hung mount, never a synchronisation


def new_store(tmp_path: Path) -> Path:
    """An empty store made by `cas init`."""
    store = tmp_path / "store"
    run_cas(store, "init")
    return store


def mount_status(mnt: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cas", "mount-status", str(mnt), *args], capture_output=True,
                          text=True, timeout=WATCHDOG, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_imported(mnt: Path) -> subprocess.CompletedProcess:
    """`cas mount-status --wait`: every waiting drop imported (or failed) when it returns."""
    return mount_status(mnt, "--wait")


def contents(store: Store, project: str) -> dict[str, object]:
    """What an import made of a project: datasets, their item names and sizes, objects."""
    ns = store.ns
    items = {d: sorted((name, rec.width, rec.height, rec.size) for name, rec in ns.items(project, d))
             for d in ns.datasets(project)}
    objects = {k: sorted(v) for k, v in objects_of(store, project).items()}
    return {"meta": ns.project(project).meta, "items": items, "objects": objects}


def assert_daemon_was_clean(store: Path) -> None:
    """No traceback and no crash of the daemon (at unmount, drops are imported: the kernel
    session is gone by then and must not be told anything)."""
    log = (store / "logs/mount.log").read_text(errors="replace")
    assert "Traceback" not in log and "Fatal Python error" not in log, log[-3000:]


def imported_by_cas_import(tmp_path: Path, src: Path, project: str) -> dict[str, object]:
    """`cas import SRC --project P` (format detected) into a fresh store."""
    with Store.init(tmp_path / f"reference-{project}") as store:
        import_source(store, src, project, detect_format(src))
        return contents(store, project)


def peer_sources(root: Path, sdk_exports: Path, datumaro_exports: Path) -> dict[str, Path]:
    """Exports the real tools wrote, and samples laid out as each format's specification says."""
    photos = root / "photos"
    write_images(photos, 5)
    write_images(photos / "2024", 3, prefix="later")
    return {
        "sdk_coco": sdk_exports / "coco", "sdk_yolo": sdk_exports / "yolo", "sdk_voc": sdk_exports / "voc",
        "dm_coco": datumaro_exports / "coco", "dm_voc": datumaro_exports / "voc",
        "dm_yolo": datumaro_exports / "yolo_ultralytics",
        "street_coco": coco_sample(root / "street_coco"), "labelme": labelme_sample(root / "labelme"),
        "cityscapes": cityscapes_sample(root / "cityscapes"), "masks": masks_sample(root / "masks", machine=False),
        "photos": photos,
    }


def test_exports_of_other_tools_dropped_at_the_root_import_as_cas_import_does(
        tmp_path, sdk_exports, datumaro_exports):
    sources = peer_sources(tmp_path / "src", sdk_exports, datumaro_exports)
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        for name, src in sources.items():
            proc = subprocess.run(["cp", "-r", src, mnt / name], capture_output=True, text=True, timeout=WATCHDOG)
            assert proc.returncode == 0 and proc.stderr == "", (name, proc.stderr)
        waited = wait_imported(mnt)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        for name in sources:
            assert (mnt / name / "meta.json").is_file(), (name, os.listdir(mnt / name))
            assert not (mnt / f"{name}.import-error").exists()
    with Store(store) as s:
        assert sorted(s.ns.projects()) == sorted(sources)
        for name, src in sources.items():
            assert contents(s, name) == imported_by_cas_import(tmp_path, src, name), name
    assert run_cas(store, "fsck").returncode == 0
    assert_daemon_was_clean(store)


def test_a_folder_copied_into_a_project_merges_into_it(tmp_path):
    store = store_with(tmp_path, {"a/x.jpg": jpeg_bytes()})
    before = tmp_path / "before"
    shutil.copytree(store, before)
    photos = tmp_path / "photos"
    write_images(photos, 4)
    coco = coco_sample(tmp_path / "street_coco")
    with mounted(store, tmp_path / "mnt") as mnt:
        for src in (photos, coco):
            proc = subprocess.run(["cp", "-r", src, mnt / "p"], capture_output=True, text=True, timeout=WATCHDOG)
            assert proc.returncode == 0, proc.stderr
        assert wait_imported(mnt).returncode == 0
    with Store(before) as s:  # `cas import SRC --project p` of each, in the same order
        for src in (photos, coco):
            import_source(s, src, "p", detect_format(src))
        expected = contents(s, "p")
    with Store(store) as s:
        got = contents(s, "p")
    assert got == expected
    assert set(got["items"]) >= {"a", "photos"}


def test_a_drop_shows_what_was_written_until_it_is_imported(tmp_path):
    src = coco_sample(tmp_path / "street_coco")
    for i, path in enumerate(sorted(src.rglob("*"))):
        os.utime(path, (1_600_000_000 + i, 1_600_000_000 + i))
        os.chmod(path, 0o750 if path.is_dir() else 0o640)
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt", settle=3600) as mnt:
        proc = subprocess.run(["rsync", "-a", f"{src}/", mnt / "street"], capture_output=True, text=True,
                              timeout=WATCHDOG)
        assert proc.returncode == 0, proc.stderr
        for path in src.rglob("*"):
            ours, theirs = os.stat(mnt / "street" / path.relative_to(src)), os.stat(path)
            assert (ours.st_size, ours.st_mode, int(ours.st_mtime)) == \
                (theirs.st_size, theirs.st_mode, int(theirs.st_mtime)), path
        again = subprocess.run(["rsync", "-a", "--stats", f"{src}/", mnt / "street"], capture_output=True, text=True,
                               timeout=WATCHDOG)
        assert "Number of regular files transferred: 0" in again.stdout, again.stdout
        status = json.loads((mnt / ".cas/status.json").read_text())
        assert [(d["path"], d["state"], d["files"]) for d in status["drops"]] == [("street", "waiting", 5)]
        assert "waiting    street (5 files" in (mnt / ".cas/status").read_text()
        assert run_cas(store, "ls").stdout.decode().strip() == ""  # nothing in the namespace yet
        assert wait_imported(mnt).returncode == 0
        assert sorted(os.listdir(mnt / "street")) == ["meta.json", "val2017"]
        assert "done       street: imported street: 4 items" in (mnt / ".cas/status").read_text()


def test_a_failed_drop_stays_with_its_reason_changes_nothing_and_imports_once_fixed(tmp_path):
    src = coco_sample(tmp_path / "street_coco")
    missing = src / "images/val2017/000000000002.jpg"
    kept = missing.read_bytes()
    missing.unlink()
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        assert subprocess.run(["cp", "-r", src, mnt], timeout=WATCHDOG).returncode == 0
        failed = wait_imported(mnt)
        assert failed.returncode == 1, failed.stdout
        assert "failed     street_coco: instances_val2017.json: images[2].file_name: image '000000000002.jpg' " \
               "not found" in failed.stdout, failed.stdout
        reason = (mnt / "street_coco.import-error").read_text()
        assert "000000000002.jpg' not found" in reason, reason
        assert run_cas(store, "ls").stdout.decode().strip() == ""  # no project, not even an empty one
        assert sorted(os.listdir(mnt / "street_coco")) == ["annotations", "images"]  # the files as written
        assert mount_status(mnt).returncode == 0  # refused once: the next call has nothing new
        (mnt / "street_coco/images/val2017" / missing.name).write_bytes(kept)
        fixed = wait_imported(mnt)
        assert fixed.returncode == 0, fixed.stdout
        assert not (mnt / "street_coco.import-error").exists()
        assert "val2017" in os.listdir(mnt / "street_coco")
    with Store(store) as s:
        assert s.ns.count_items("street_coco", "val2017") == 4
    assert_daemon_was_clean(store)


def test_mv_from_another_file_system_removes_the_source_once_imported(tmp_path):
    photos = write_images(tmp_path / "photos", 6)[0].parent
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        proc = subprocess.run(["mv", photos, mnt], capture_output=True, text=True, timeout=WATCHDOG)
        assert proc.returncode == 0, proc.stderr
        assert not photos.exists()
        assert wait_imported(mnt).returncode == 0
        assert len(os.listdir(mnt / "photos/photos/img")) == 6


def _kill(mnt: Path) -> None:
    pid = daemon_pid(str(mnt))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    force_unmount(mnt, pid)


def test_sigkill_during_a_drop_copy_keeps_every_closed_file(tmp_path):
    images = write_images(tmp_path / "src", 6)
    store = new_store(tmp_path)
    mnt = tmp_path / "mnt"
    with mounted(store, mnt, settle=3600):
        (mnt / "photos").mkdir()
        for path in images[:5]:
            (mnt / "photos" / path.name).write_bytes(path.read_bytes())  # closed: must be imported
        torn = open(mnt / "photos" / images[5].name, "wb")  # noqa: SIM115 - never closed: the daemon dies first
        torn.write(images[5].read_bytes()[:100])
        torn.flush()
        _kill(mnt)
    with mounted(store, mnt) as again:
        assert wait_imported(again).returncode == 0
        assert sorted(os.listdir(again / "photos/photos/img")) == sorted(p.name for p in images[:5])
    assert "its copy never finished" in (store / "logs/mount.log").read_text()
    assert run_cas(store, "fsck").returncode == 0


def test_sigkill_during_a_drop_import_imports_it_once_after_a_remount(tmp_path):
    src = tmp_path / "photos"
    write_images(src, 1500)
    store = new_store(tmp_path)
    log = store / "logs/mount.log"
    mnt = tmp_path / "mnt"
    with mounted(store, mnt, settle=0.2):
        start = log.stat().st_size
        assert subprocess.run(["cp", "-r", src, mnt], timeout=WATCHDOG).returncode == 0
        deadline = time.monotonic() + WATCHDOG
        while "photos: importing 1500 files" not in log.read_text()[start:]:  # a condition, polled
            assert time.monotonic() < deadline, log.read_text()[start:]
            time.sleep(0.01)
        _kill(mnt)
    with mounted(store, mnt) as again:
        assert wait_imported(again).returncode == 0
        assert len(os.listdir(again / "photos/photos/img")) == 1500
    with Store(store) as s:
        assert s.ns.projects() == ["photos"] and s.ns.count_items("photos", "photos") == 1500
    assert run_cas(store, "fsck").returncode == 0


@pytest.mark.parametrize("tool", ["cp -a", "tar"])
def test_other_writers_make_drops_too(tmp_path, tool):
    src = coco_sample(tmp_path / "street_coco")
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        if tool == "tar":
            archive = tmp_path / "coco.tar"
            subprocess.run(["tar", "-cf", archive, "-C", tmp_path, "street_coco"], check=True)
            proc = subprocess.run(["tar", "-xf", archive, "-C", mnt], capture_output=True, text=True)
        else:
            proc = subprocess.run(["cp", "-a", src, mnt], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert wait_imported(mnt).returncode == 0
    with Store(store) as s:
        assert contents(s, "street_coco") == imported_by_cas_import(tmp_path, src, "street_coco")
    assert_daemon_was_clean(store)


def test_a_drop_still_waiting_at_unmount_is_imported_then(tmp_path):
    photos = write_images(tmp_path / "photos", 3)[0].parent
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt", settle=3600) as mnt:
        assert subprocess.run(["cp", "-r", photos, mnt], timeout=WATCHDOG).returncode == 0
        assert run_cas(store, "ls").stdout.decode().strip() == ""
    with Store(store) as s:
        assert s.ns.count_items("photos", "photos") == 3
    assert_daemon_was_clean(store)


KINDS = [("videos", "VideoProject", "sdk_video_project"), ("point_clouds", "PointcloudProject",
                                                             "sdk_pointcloud_project"),
         ("volumes", "VolumeProject", "sdk_volume_project")]
EPISODES = ("point_cloud_episodes", "PointcloudEpisodeProject", "sdk_episode_project")  # into a project: below


@pytest.mark.parametrize(("kind", "project_class", "fixture"), [*KINDS, EPISODES])
def test_sdk_projects_of_other_kinds_dropped_at_the_root_import_as_cas_import_does(
        tmp_path, kind, project_class, fixture, request):
    from tests.sdk_projects import assert_same_project, sdk_read

    src = request.getfixturevalue(fixture)
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        proc = subprocess.run(["cp", "-r", src, mnt / "p"], capture_output=True, text=True, timeout=WATCHDOG)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        waited = wait_imported(mnt)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert_same_project(sdk_read(mnt / "p", project_class), sdk_read(src, project_class), kind)
    with Store(store) as s, Store.init(tmp_path / "reference") as reference:
        import_source(reference, src, "p", detect_format(src))
        assert s.ns.project("p").meta == reference.ns.project("p").meta
        assert blobs_of(s, "p") == blobs_of(reference, "p")
    assert_daemon_was_clean(store)


@pytest.mark.parametrize(("kind", "project_class", "fixture"), KINDS)
def test_sdk_projects_of_other_kinds_dropped_into_a_project_of_their_kind_merge_into_it(
        tmp_path, kind, project_class, fixture, request):
    from tests.sdk_projects import sdk_read

    src = request.getfixturevalue(fixture)
    store = new_store(tmp_path)
    run_cas(store, "import", str(src), "--project", "p")
    before = tmp_path / "before"
    shutil.copytree(store, before)
    with mounted(store, tmp_path / "mnt") as mnt:
        proc = subprocess.run(["cp", "-r", src, mnt / "p" / "more"], capture_output=True, text=True,
                              timeout=WATCHDOG)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        waited = wait_imported(mnt)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        seen = sdk_read(mnt / "p", project_class)
    with Store(before) as reference:  # `cas import SRC --project p`, as a drop into p is
        import_source(reference, src, "p", detect_format(src))
        expected = blobs_of(reference, "p")
    with Store(store) as s:
        assert s.ns.project("p").meta["projectType"] == kind and blobs_of(s, "p") == expected
    source = sdk_read(src, project_class)
    assert not seen["warnings"] and seen["items"].keys() >= source["items"].keys()
    assert {k: seen["items"][k] for k in source["items"]} == source["items"]
    assert_daemon_was_clean(store)


def blobs_of(store: Store, project: str) -> dict[str, list[tuple]]:
    """Each item of a project with its media, annotation, item meta (an episode's frame map) and
    related files' blobs."""
    return {d: [(name, rec.media, rec.ann, rec.meta, rec.related) for name, rec in store.ns.items(project, d)]
            for d in store.ns.datasets(project)}


def test_an_episode_project_copied_into_one_merges_into_it(tmp_path, sdk_episode_project):
    from tests.sdk_projects import sdk_read

    earlier = tmp_path / "earlier"  # the project there before: one episode, under another name
    shutil.copytree(sdk_episode_project, earlier, ignore=shutil.ignore_patterns("ep0"))
    (earlier / "ep1").rename(earlier / "ep9")
    store = new_store(tmp_path)
    run_cas(store, "import", str(earlier), "--project", "e")
    with mounted(store, tmp_path / "mnt") as mnt:
        proc = subprocess.run(["cp", "-r", sdk_episode_project, mnt / "e"], capture_output=True, text=True,
                              timeout=WATCHDOG)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        waited = wait_imported(mnt)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        seen = sdk_read(mnt / "e", "PointcloudEpisodeProject")
    assert not seen["warnings"] and {k.split("/")[0] for k in seen["items"]} == {"ep0", "ep1", "ep9"}
    source = sdk_read(sdk_episode_project, "PointcloudEpisodeProject")["items"]
    assert {k: v for k, v in seen["items"].items() if not k.startswith("ep9")} == source
    with Store(store) as s, Store.init(tmp_path / "reference") as reference:
        for src in (earlier, sdk_episode_project):
            import_source(reference, src, "e", detect_format(src))
        assert s.ns.project("e").meta == reference.ns.project("e").meta
        assert blobs_of(s, "e") == blobs_of(reference, "e")
    assert_daemon_was_clean(store)


def test_a_video_project_made_in_the_mount_keeps_its_own_folders(tmp_path):
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        (mnt / "v").mkdir()
        (mnt / "v/meta.json").write_text(json.dumps({"classes": [], "tags": [], "projectType": "videos"}))
        (mnt / "v/day/video").mkdir(parents=True)  # its kind's folder: no drop
        assert "none waiting" in (mnt / ".cas/status").read_text()
        assert sorted(os.listdir(mnt / "v/day")) == ["ann", "video", "video_info"]


def test_meta_and_annotations_written_before_a_kinds_folder_go_into_the_drop(tmp_path, sdk_video_project):
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        (mnt / "v").mkdir()
        shutil.copy(sdk_video_project / "meta.json", mnt / "v/meta.json")  # the SDK's: no projectType
        (mnt / "v/day/ann").mkdir(parents=True)
        shutil.copy(sdk_video_project / "day/ann/a.mp4.json", mnt / "v/day/ann/a.mp4.json")  # waits for its video
        (mnt / "v/day/video").mkdir()  # a video project: the folder becomes a drop, with what was written
        shutil.copy(sdk_video_project / "day/video/a.mp4", mnt / "v/day/video/a.mp4")
        assert wait_imported(mnt).returncode == 0
    reference = tmp_path / "reference"
    shutil.copytree(sdk_video_project, reference, ignore=shutil.ignore_patterns("night", "key_id_map.json"))
    with Store(store) as s, Store.init(tmp_path / "ref-store") as ref:
        import_source(ref, reference, "v", detect_format(reference))
        assert s.ns.project("v").meta == ref.ns.project("v").meta and blobs_of(s, "v") == blobs_of(ref, "v")
    assert_daemon_was_clean(store)


@pytest.mark.parametrize("first", ["annotation.json", "frame_pointcloud_map.json", "related_images", "pointcloud"])
def test_an_episode_written_in_any_order_becomes_a_drop(tmp_path, sdk_episode_project, first):
    store = new_store(tmp_path)
    ep0 = sdk_episode_project / "ep0"
    with mounted(store, tmp_path / "mnt") as mnt:
        (mnt / "e/ep0").mkdir(parents=True)
        shutil.copy(sdk_episode_project / "meta.json", mnt / "e/meta.json")
        for entry in sorted(os.listdir(ep0), key=lambda name: name != first):  # `first` first
            if (ep0 / entry).is_dir():
                shutil.copytree(ep0 / entry, mnt / "e/ep0" / entry)
            else:
                shutil.copy(ep0 / entry, mnt / "e/ep0" / entry)
        assert wait_imported(mnt).returncode == 0
        for name in ("annotation.json", "frame_pointcloud_map.json", "related_images/f0_pcd/left.png"):
            assert (mnt / "e/ep0" / name).read_bytes() == (ep0 / name).read_bytes()
    assert_daemon_was_clean(store)


def test_a_project_made_here_shows_its_type_at_once_when_its_meta_says_it(tmp_path):
    store = new_store(tmp_path)
    with mounted(store, tmp_path / "mnt") as mnt:
        (mnt / "v/day").mkdir(parents=True)
        assert sorted(os.listdir(mnt / "v/day")) == ["ann", "img", "img_info", "meta"]  # an image project's, looked at
        (mnt / "v/meta.json").write_text(json.dumps({"classes": [], "tags": [], "projectType": "videos"}))
        assert sorted(os.listdir(mnt / "v/day")) == ["ann", "video", "video_info"]
