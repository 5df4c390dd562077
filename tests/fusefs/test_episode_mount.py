"""A point-cloud episode project in the mount: each episode a folder with pointcloud/,
pointcloud_info/, related_images/ and its annotation.json and frame_pointcloud_map.json, every
file as imported, read by the Supervisely SDK as it reads the project it wrote."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cas
from tests.converters.test_sly_episodes import COPIED
from tests.sdk_projects import assert_same_project, sdk_read


@pytest.mark.parametrize("read_only", [True, False])
def test_sdk_reads_a_mounted_episode_project_as_written(tmp_path: Path, mount, sdk_episode_project: Path,
                                                        read_only: bool) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_episode_project), "--project", "e")
    source = sdk_read(sdk_episode_project, "PointcloudEpisodeProject")
    with mount(store, read_only=read_only) as mnt:
        assert sorted(os.listdir(mnt / "e/ep0")) == ["annotation.json", "frame_pointcloud_map.json", "pointcloud",
                                                     "pointcloud_info", "related_images"]  # no ann/: the SDK has none
        assert os.listdir(mnt / "e/ep0/related_images") == ["f0_pcd"]
        for name in COPIED[:-1]:  # key_id_map.json: the mount has no such file (the SDK needs none)
            assert (mnt / "e" / name).read_bytes() == (sdk_episode_project / name).read_bytes(), name
            assert (mnt / "e" / name).stat().st_size == (sdk_episode_project / name).stat().st_size
        assert not (mnt / "e/ep0/ann").exists() and not (mnt / "e/ep0/meta.json").exists()
        assert_same_project(sdk_read(mnt / "e", "PointcloudEpisodeProject"), source, "point_cloud_episodes")


def test_an_episode_is_not_written_file_by_file(tmp_path: Path, mount, sdk_episode_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_episode_project), "--project", "e")
    before = run_cas(store, "ls", "e/ep0").stdout
    with mount(store) as mnt:
        for path in ("e/ep0/pointcloud/f3.pcd", "e/ep0/annotation.json", "e/ep0/frame_pointcloud_map.json"):
            with pytest.raises(PermissionError) as e:
                with open(mnt / path, "wb") as f:
                    f.write((sdk_episode_project / "ep0/pointcloud/f0.pcd").read_bytes())
            assert e.value.errno in (errno.EPERM, errno.EACCES), path
        ann = (sdk_episode_project / "ep0/annotation.json").read_bytes()
        assert (mnt / "e/ep0/annotation.json").read_bytes() == ann
        shutil.copy(sdk_episode_project / "ep0/pointcloud/f0.pcd", mnt / "e/ep0/pointcloud/.f3.tmp")  # scratch: kept
    assert run_cas(store, "ls", "e/ep0").stdout == before
