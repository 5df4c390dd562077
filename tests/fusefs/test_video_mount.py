"""A video project in the mount: `video/`, `ann/` and `video_info/`, bytes and annotations as
stored, read by the Supervisely SDK as it reads the project it wrote."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.conftest import run_cas
from tests.converters.test_videos import write_video
from tests.sdk_projects import assert_same_project, sdk_read


def test_mount_shows_video_and_ann(tmp_path: Path, mount) -> None:
    src = tmp_path / "clips"
    write_video(src / "a.mp4", 20)
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "--project", "v")
    with mount(store, read_only=True) as mnt:
        listing = os.listdir(mnt / "v" / "clips")
        assert "video" in listing and "ann" in listing and "img" not in listing
        assert (mnt / "v" / "clips" / "video" / "a.mp4").read_bytes() == (src / "a.mp4").read_bytes()
        assert json.loads((mnt / "v" / "clips" / "ann" / "a.mp4.json").read_text())["framesCount"] == 20


def test_sdk_reads_a_mounted_video_project_as_written(tmp_path: Path, mount, sdk_video_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_video_project), "--project", "v")
    source = sdk_read(sdk_video_project, "VideoProject")
    with mount(store, read_only=True) as mnt:
        assert sorted(os.listdir(mnt / "v" / "day")) == ["ann", "video", "video_info"]  # the SDK's folders only
        for name in ("day/video/a.mp4", "night/video/b.mp4"):
            assert (mnt / "v" / name).read_bytes() == (sdk_video_project / name).read_bytes()
        assert json.loads((mnt / "v/day/video_info/a.mp4.json").read_text())["size"] > 0
        assert_same_project(sdk_read(mnt / "v", "VideoProject"), source, "videos")


def test_a_video_written_into_the_mount_gets_a_video_annotation(tmp_path: Path, mount,
                                                                sdk_video_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_video_project), "--project", "v")
    with mount(store) as mnt:
        shutil.copy(sdk_video_project / "day/video/a.mp4", mnt / "v/day/video/c.mp4")
        ann = json.loads((mnt / "v/day/ann/c.mp4.json").read_text())
        assert (ann["framesCount"], ann["frames"], ann["size"]) == (12, [], {"height": 48, "width": 64})
    row = run_cas(store, "ls", "v/day").stdout.decode().splitlines()[1]
    assert row.startswith("c.mp4\t64x48\t") and row.endswith("\t12 frames, 1.2 s")
