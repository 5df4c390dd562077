"""A point cloud project in the mount: pointcloud/, ann/, pointcloud_info/ and related_images/
with each cloud's camera images, every file as imported, read by the Supervisely SDK as it
reads the project it wrote."""

from __future__ import annotations

import errno
import json
import os
import shutil
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


def test_a_cloud_written_into_the_mount_gets_a_pointcloud_annotation(tmp_path: Path, mount,
                                                                     sdk_pointcloud_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_pointcloud_project), "--project", "p")
    with mount(store) as mnt:
        shutil.copy(sdk_pointcloud_project / "ds0/pointcloud/b.pcd", mnt / "p/ds0/pointcloud/c.pcd")
        ann = json.loads((mnt / "p/ds0/ann/c.pcd.json").read_text())
        assert (ann["objects"], ann["figures"], len(ann["key"])) == ([], [], 32)
    row = run_cas(store, "ls", "p/ds0").stdout.decode().splitlines()[2]
    assert row.startswith("c.pcd\t") and row.endswith("\t7 points")
