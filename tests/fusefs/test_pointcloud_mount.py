"""A point cloud project in the mount: pointcloud/, ann/, pointcloud_info/ and related_images/
with each cloud's camera images, every file as imported, read by the Supervisely SDK as it
reads the project it wrote."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.conftest import run_cas
from tests.converters.test_sly_pointclouds import COPIED
from tests.sdk_projects import assert_same_project, sdk_read


def test_sdk_reads_a_mounted_pointcloud_project_as_written(tmp_path: Path, mount,
                                                           sdk_pointcloud_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_pointcloud_project), "--project", "p")
    source = sdk_read(sdk_pointcloud_project, "PointcloudProject")
    with mount(store, read_only=True) as mnt:
        assert sorted(os.listdir(mnt / "p/ds0")) == ["ann", "pointcloud", "pointcloud_info", "related_images"]
        assert os.listdir(mnt / "p/ds0/related_images") == ["a_pcd"]  # b.pcd has none
        assert sorted(os.listdir(mnt / "p/ds0/related_images/a_pcd")) == sorted(
            os.listdir(sdk_pointcloud_project / "ds0/related_images/a_pcd"))
        for name in COPIED[:-1]:  # key_id_map.json: the mount has no such file (the SDK needs none)
            assert (mnt / "p" / name).read_bytes() == (sdk_pointcloud_project / name).read_bytes(), name
            assert (mnt / "p" / name).stat().st_size == (sdk_pointcloud_project / name).stat().st_size
        assert not (mnt / "p/ds0/related_images/b_pcd").exists()
        assert not (mnt / "p/ds0/related_images/a_pcd/back.png").exists()
        assert_same_project(sdk_read(mnt / "p", "PointcloudProject"), source, "point_clouds")


def test_related_files_are_not_written_one_by_one(tmp_path: Path, mount, sdk_pointcloud_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_pointcloud_project), "--project", "p")
    with mount(store) as mnt:
        with pytest.raises(PermissionError) as e:
            (mnt / "p/ds0/related_images/a_pcd/back.png").write_bytes(b"x")
        assert e.value.errno == errno.EPERM
        assert not (mnt / "p/ds0/related_images/a_pcd/back.png").exists()
