"""Point cloud projects written by the Supervisely SDK (`sly.PointcloudProject`): detected,
imported with their related images as blobs (deduplicated), exported with every cloud and
related file byte for byte and read back by the SDK as written; plain .pcd folders as projects
without labels; bad input refused in one line naming file and field, the store left as it was."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cas
from tests.converters.test_sly_videos import store_state
from tests.sdk_projects import assert_same_project, sdk_read

COPIED = ("ds0/pointcloud/a.pcd", "ds0/pointcloud/b.pcd", "ds0/related_images/a_pcd/front.png",
          "ds0/related_images/a_pcd/front.png.json", "ds0/related_images/a_pcd/left.png",
          "ds0/related_images/a_pcd/left.png.json", "key_id_map.json")


def test_sdk_pointcloud_project_round_trips(tmp_path: Path, sdk_pointcloud_project: Path) -> None:
    store = tmp_path / "store"
    out = run_cas(store, "import", str(sdk_pointcloud_project), "--project", "p").stdout.decode()
    assert "imported p: 2 items" in out and "8 new blobs" in out  # 2 clouds, 2 annotations, 2 images, 2 JSON
    stats, du = (json.loads(run_cas(store, *command, "--json").stdout) for command in (["stats"], ["du"]))
    assert (du["total"]["blobs"], du["total"]["unique_bytes"], du["total"]["logical_bytes"]) == (
        stats["blobs"], stats["stored_bytes"], stats["logical_bytes"])  # du counts the related files too
    again = run_cas(store, "import", str(sdk_pointcloud_project), "--project", "q").stdout.decode()
    assert "0 new blobs" in again  # the related files dedup like any other
    listing = run_cas(store, "ls", "p/ds0").stdout.decode().splitlines()
    assert listing[0].startswith("a.pcd\t") and listing[0].endswith("\t5 points") and listing[1].endswith("7 points")
    assert "media    12 points in all" in run_cas(store, "stats", "p").stdout.decode()
    run_cas(store, "export", "p", str(tmp_path / "out"))
    for name in COPIED:
        assert (tmp_path / "out" / name).read_bytes() == (sdk_pointcloud_project / name).read_bytes(), name
    source = sdk_read(sdk_pointcloud_project, "PointcloudProject")
    assert len(source["items"]["ds0/a.pcd"]["related"]) == 2
    assert_same_project(sdk_read(tmp_path / "out", "PointcloudProject"), source, "point_clouds")


def test_a_folder_of_pcd_files_is_a_project_without_labels(tmp_path: Path, sdk_pointcloud_project: Path) -> None:
    src = tmp_path / "scans"
    (src / "night").mkdir(parents=True)
    shutil.copy(sdk_pointcloud_project / "ds0/pointcloud/a.pcd", src / "a.pcd")  # ASCII
    shutil.copy(sdk_pointcloud_project / "ds0/pointcloud/b.pcd", src / "night" / "b.pcd")  # binary
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "--project", "s")
    assert run_cas(store, "ls").stdout.decode().startswith("s\tpoint_clouds\t2 datasets\t2 items")
    rows = json.loads(run_cas(store, "ls", "s/night", "--json").stdout)["items"]
    assert rows[0]["points"] == 7 and rows[0]["mime"] == "application/x-pcd"
    run_cas(store, "export", "s", str(tmp_path / "out"))
    ann = json.loads((tmp_path / "out/scans/ann/a.pcd.json").read_text())
    assert ann["objects"] == [] and ann["figures"] == [] and len(ann["key"]) == 32


def _ann(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(src: Path) -> None:
        path = src / "ds0/ann/a.pcd.json"
        ann = json.loads(path.read_text())
        change(ann)
        path.write_text(json.dumps(ann))
    return edit


def _truncate(src: Path) -> None:
    path = src / "ds0/pointcloud/b.pcd"
    path.write_bytes(path.read_bytes()[:-5])


def _camera_named(src: Path) -> None:
    (src / "ds0/related_images/a_pcd/left.png.json").write_text(json.dumps({"name": "right.png", "meta": {}}))


BAD = {  # what is wrong -> (the change, the file the error names, the field or words it says)
    "cuboid without dimensions": (_ann(lambda a: a["figures"][0]["geometry"].pop("dimensions")),
                                  "ds0/ann/a.pcd.json", "figures[0].geometry.dimensions"),
    "cuboid position not numbers": (_ann(lambda a: a["figures"][0]["geometry"]["position"].update(x="1")),
                                    "ds0/ann/a.pcd.json", "figures[0].geometry.position"),
    "unknown object key": (_ann(lambda a: a["figures"][0].update(objectKey="f" * 32)), "ds0/ann/a.pcd.json",
                           "figures[0].objectKey"),
    "unknown class": (_ann(lambda a: a["objects"][0].update(classTitle="bus")), "ds0/ann/a.pcd.json",
                      "objects[0].classTitle"),
    "truncated binary cloud": (_truncate, "ds0/pointcloud/b.pcd", "truncated PCD"),
    "camera JSON naming another image": (_camera_named, "ds0/related_images/a_pcd/left.png.json", "name"),
    "related folder of no cloud": (lambda src: (src / "ds0/related_images/c_pcd").mkdir(),
                                   "ds0/related_images/c_pcd", "related files of no item"),
    "related file not an image": (lambda src: (src / "ds0/related_images/a_pcd/notes.txt").write_text("x"),
                                  "ds0/related_images/a_pcd/notes.txt", "a related file is an image"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pointcloud_input_is_one_line_and_changes_nothing(tmp_path: Path, sdk_pointcloud_project: Path,
                                                              case: str) -> None:
    change, file, words = BAD[case]
    src = tmp_path / "clouds"
    shutil.copytree(sdk_pointcloud_project, src)
    change(src)
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_pointcloud_project), "--project", "p")
    before = store_state(store)
    proc = run_cas(store, "import", str(src), "--project", "w", check=False)
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {file}: ") and words in lines[0], lines
    assert store_state(store) == before


def test_fsck_counts_and_checks_related_files(tmp_path: Path, sdk_pointcloud_project: Path) -> None:
    from cas import Store
    from tests.conftest import damage_blob

    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_pointcloud_project), "--project", "p")
    assert run_cas(store, "fsck").stdout.decode().strip().endswith("clean")  # each related file's reference counted
    with Store(store) as s:
        _name, blob, _size = s.ns.item("p", "ds0", "a.pcd").related_file("left.png")
        damage_blob(s, bytes(blob))
    out = run_cas(store, "fsck", check=False).stdout.decode()
    assert f"damaged-item: p/ds0/a.pcd: its related file blob {blob} is missing or corrupt" in out
    assert "related file of p/ds0/a.pcd" in run_cas(store, "fsck", "--repair", check=False).stdout.decode()
