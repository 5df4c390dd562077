"""A volume project in the mount: volume/, ann/, video_info/ (as the SDK's VolumeDataset names
it) and mask/ with each volume's Mask3D files, every file as imported, read by the Supervisely
SDK as it reads the project it wrote."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cas
from tests.converters.test_sly_volumes import masks
from tests.sdk_projects import assert_same_project, sdk_read


def test_sdk_reads_a_mounted_volume_project_as_written(tmp_path: Path, mount, sdk_volume_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_volume_project), "--project", "p")
    source = sdk_read(sdk_volume_project, "VolumeProject")
    with mount(store, read_only=True) as mnt:
        assert sorted(os.listdir(mnt / "p/ds0")) == ["ann", "mask", "video_info", "volume"]
        assert sorted(os.listdir(mnt / "p/ds0/mask")) == ["ct.nrrd", "mr.nrrd"]
        assert masks(mnt / "p") == masks(sdk_volume_project)
        for name in ["ds0/volume/ct.nrrd", "ds0/volume/mr.nrrd", *masks(sdk_volume_project)]:
            assert (mnt / "p" / name).read_bytes() == (sdk_volume_project / name).read_bytes(), name
            assert (mnt / "p" / name).stat().st_size == (sdk_volume_project / name).stat().st_size
        info = json.loads((mnt / "p/ds0/video_info/ct.nrrd.json").read_text())
        assert (info["width"], info["height"], info["mime"]) == (8, 10, "application/x-nrrd")
        assert not (mnt / "p/ds0/mask/xx.nrrd").exists() and not (mnt / "p/ds0/mask/ct_nrrd").exists()
        assert_same_project(sdk_read(mnt / "p", "VolumeProject"), source, "volumes")


def test_masks_are_not_written_one_by_one(tmp_path: Path, mount, sdk_volume_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_volume_project), "--project", "p")
    with mount(store) as mnt:
        with pytest.raises(PermissionError) as e:
            (mnt / "p/ds0/mask/ct.nrrd/0.nrrd").write_bytes(b"x")
        assert e.value.errno == errno.EPERM
        assert not (mnt / "p/ds0/mask/ct.nrrd/0.nrrd").exists()


def test_a_volume_written_into_the_mount_gets_a_volume_annotation(tmp_path: Path, mount,
                                                                  sdk_volume_project: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_volume_project), "--project", "p")
    with mount(store) as mnt:
        shutil.copy(sdk_volume_project / "ds0/volume/mr.nrrd", mnt / "p/ds0/volume/us.nrrd")
        ann = json.loads((mnt / "p/ds0/ann/us.nrrd.json").read_text())
        assert ann["volumeMeta"]["dimensionsIJK"] == {"x": 6, "y": 7, "z": 5} and ann["spatialFigures"] == []
    row = run_cas(store, "ls", "p/ds0").stdout.decode().splitlines()[2]
    assert row.startswith("us.nrrd\t") and row.endswith("\t6x7x5 voxels")
