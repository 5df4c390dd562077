"""Point-cloud episode projects written by the Supervisely SDK (`sly.PointcloudEpisodeProject`):
detected, imported with each episode's annotation.json and frame map and each frame's related
images as blobs (deduplicated), exported with every file byte for byte and read back by the SDK
as written; bad input refused in one line naming file and field, the store left as it was."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cas
from tests.converters.test_sly_videos import store_state
from tests.sdk_projects import assert_same_project, sdk_read

# Every file of the source (the SDK's, its frame map and related images as it reads them)
COPIED = ("ep0/annotation.json", "ep0/frame_pointcloud_map.json", "ep0/pointcloud/f0.pcd", "ep0/pointcloud/f1.pcd",
          "ep0/pointcloud/f2.pcd", "ep0/related_images/f0_pcd/front.png", "ep0/related_images/f0_pcd/front.png.json",
          "ep0/related_images/f0_pcd/left.png", "ep0/related_images/f0_pcd/left.png.json", "ep1/annotation.json",
          "ep1/pointcloud/a.pcd", "ep1/pointcloud/b.pcd", "key_id_map.json")


def test_sdk_episode_project_round_trips(tmp_path: Path, sdk_episode_project: Path) -> None:
    src = sdk_episode_project
    assert sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()) == sorted((*COPIED, "meta.json"))
    store = tmp_path / "store"
    out = run_cas(store, "import", str(src), "--project", "e").stdout.decode()
    # 4 distinct clouds (ep1's a.pcd is ep0's f0.pcd), 2 annotations, 2 frame maps (ep1's made), 4 related files
    assert "imported e: 5 items" in out and "12 new blobs" in out, out
    assert "0 new blobs" in run_cas(store, "import", str(src), "--project", "again").stdout.decode()
    assert run_cas(store, "ls").stdout.decode().startswith("again\tpoint_cloud_episodes\t2 datasets\t5 items")
    listing = run_cas(store, "ls", "e/ep0").stdout.decode().splitlines()
    assert listing[1].startswith("f1.pcd\t") and listing[1].endswith("\t6 points\tframe 1"), listing
    stats = run_cas(store, "stats", "e").stdout.decode()
    assert "2 distinct annotations, 4 figures" in stats and "media    5 frames, 31 points in all" in stats, stats
    run_cas(store, "export", "e", str(tmp_path / "out"))
    for name in COPIED:
        assert (tmp_path / "out" / name).read_bytes() == (src / name).read_bytes(), name
    # ep1 had no frame map: the one the SDK assumes is written
    assert json.loads((tmp_path / "out/ep1/frame_pointcloud_map.json").read_text()) == {"0": "a.pcd", "1": "b.pcd"}
    source = sdk_read(src, "PointcloudEpisodeProject")
    assert len(source["items"]["ep0/f0.pcd"]["related"]) == 2 and source["items"]["ep0/f2.pcd"]["frame"] == 2
    assert_same_project(sdk_read(tmp_path / "out", "PointcloudEpisodeProject"), source, "point_cloud_episodes")


def test_an_episode_without_its_files_gets_the_sdks(tmp_path: Path, sdk_episode_project: Path) -> None:
    src = tmp_path / "bare"
    shutil.copytree(sdk_episode_project, src)
    (src / "ep1/annotation.json").unlink()
    (src / "meta.json").write_text(json.dumps({**json.loads((src / "meta.json").read_text()),
                                               "projectType": "point_cloud_episodes"}))
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "--project", "e")
    run_cas(store, "export", "e", str(tmp_path / "out"))
    ann = json.loads((tmp_path / "out/ep1/annotation.json").read_text())
    assert ann["framesCount"] == 2 and ann["objects"] == [] and ann["frames"] == [] and len(ann["key"]) == 32
    assert sdk_read(tmp_path / "out", "PointcloudEpisodeProject")["items"]["ep1"]["ann"]["framesCount"] == 2


def _json(path: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(src: Path) -> None:
        doc = json.loads((src / path).read_text())
        change(doc)
        (src / path).write_text(json.dumps(doc))
    return edit


def _figure(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return _json("ep0/annotation.json", lambda a: change(a["frames"][1]["figures"][0]))


ANN, MAP = "ep0/annotation.json", "ep0/frame_pointcloud_map.json"
BAD = {  # what is wrong -> (the change, the file the error names, the field or words it says)
    "frame map naming a missing cloud": (_json(MAP, lambda m: m.update({"2": "f9.pcd"})), MAP,
                                         "'f9.pcd', which is not in pointcloud/"),
    "cloud with no frame": (_json(MAP, lambda m: m.pop("2")), MAP, "'f2.pcd' has no frame"),
    "frame map not an object": (lambda src: (src / MAP).write_text("[]"), MAP, "expected an object"),
    "figure past the episode's end": (_json(ANN, lambda a: a["frames"][2].update(index=3)), ANN,
                                      "frames[2].index: frame 3 is past the episode's end (frames 0 to 2)"),
    "unknown object key": (_figure(lambda f: f.update(objectKey="f" * 32)), ANN, "frames[1].figures[0].objectKey"),
    "cuboid without dimensions": (_figure(lambda f: f["geometry"].pop("dimensions")), ANN,
                                  "frames[1].figures[0].geometry.dimensions"),
    "frames count not the clouds'": (_json(ANN, lambda a: a.update(framesCount=4)), ANN, "framesCount"),
    "tag past the episode's end": (_json(ANN, lambda a: a["objects"][0]["tags"][0].update(frameRange=[1, 3])), ANN,
                                   "objects[0].tags[0].frameRange"),
    "unknown class": (_json(ANN, lambda a: a["objects"][0].update(classTitle="bus")), ANN, "objects[0].classTitle"),
    "truncated binary cloud": (lambda src: (src / "ep0/pointcloud/f1.pcd").write_bytes(
        (src / "ep0/pointcloud/f1.pcd").read_bytes()[:-5]), "ep0/pointcloud/f1.pcd", "truncated PCD"),
    "camera JSON naming another image": (_json("ep0/related_images/f0_pcd/left.png.json",
                                               lambda j: j.update(name="right.png")),
                                         "ep0/related_images/f0_pcd/left.png.json", "name"),
    "an ann/ folder": (lambda src: (src / "ep0/ann").mkdir(), "ep0/ann/", "one annotation.json, no ann/"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_episode_input_is_one_line_and_changes_nothing(tmp_path: Path, sdk_episode_project: Path,
                                                           case: str) -> None:
    change, file, words = BAD[case]
    src = tmp_path / "episodes"
    shutil.copytree(sdk_episode_project, src)
    change(src)
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_episode_project), "--project", "e")
    before = store_state(store)
    for project in ("w", "e"):  # a new project, and the same one again
        proc = run_cas(store, "import", str(src), "--project", project, "--overwrite", check=False)
        assert proc.returncode != 0
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {file}: ") and words in lines[0], lines
        assert store_state(store) == before


def test_skip_invalid_leaves_a_bad_episode_out(tmp_path: Path, sdk_episode_project: Path) -> None:
    src = tmp_path / "episodes"
    shutil.copytree(sdk_episode_project, src)
    _json(MAP, lambda m: m.update({"2": "f9.pcd"}))(src)
    store = tmp_path / "store"
    proc = run_cas(store, "import", str(src), "--project", "e", "--skip-invalid")
    assert "f9.pcd" in proc.stderr.decode() + proc.stdout.decode()
    assert [line.split("\t")[0] for line in run_cas(store, "ls", "e/ep1").stdout.decode().splitlines()] == [
        "a.pcd", "b.pcd"]
    assert run_cas(store, "ls", "e/ep0").stdout.decode() == ""


def test_an_episode_imported_over_a_longer_one_is_refused(tmp_path: Path, sdk_episode_project: Path) -> None:
    src = tmp_path / "episodes"
    shutil.copytree(sdk_episode_project, src)
    (src / "ep0/pointcloud/f2.pcd").unlink()
    _json(MAP, lambda m: m.pop("2"))(src)
    _json(ANN, lambda a: (a.update(framesCount=2), a["frames"].pop()))(src)
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_episode_project), "--project", "e")
    before = store_state(store)
    proc = run_cas(store, "import", str(src), "--project", "e", "--overwrite", check=False)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ep0/: ") and "'f2.pcd'" in lines[0]
    assert store_state(store) == before
    run_cas(store, "rm", "e/ep0")
    run_cas(store, "import", str(src), "--project", "e", "--overwrite")
    run_cas(store, "export", "e", str(tmp_path / "out"))
    assert (tmp_path / "out" / MAP).read_bytes() == (src / MAP).read_bytes()
    assert len(run_cas(store, "ls", "e/ep0").stdout.decode().splitlines()) == 2
