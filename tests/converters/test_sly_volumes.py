"""Volume projects written by the Supervisely SDK (`sly.VolumeProject`): detected, imported with
their Mask3D files as blobs (deduplicated), exported with every volume and mask byte for byte
and read back by the SDK as written; plain .nrrd folders as projects without labels; bad input
refused in one line naming file and field, the store left as it was."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cas
from tests.converters.test_sly_videos import store_state
from tests.sdk_projects import assert_same_project, sdk_read


def masks(src: Path) -> list[str]:
    """The mask files of a project, as paths relative to it."""
    return sorted(str(p.relative_to(src)) for p in src.glob("*/mask/*/*.nrrd"))


def test_sdk_volume_project_round_trips(tmp_path: Path, sdk_volume_project: Path) -> None:
    store = tmp_path / "store"
    out = run_cas(store, "import", str(sdk_volume_project), "--project", "p").stdout.decode()
    assert "imported p: 2 items" in out and "6 new blobs" in out  # 2 volumes, 2 annotations, 2 masks
    again = run_cas(store, "import", str(sdk_volume_project), "--project", "q").stdout.decode()
    assert "0 new blobs" in again  # the masks dedup like any other blob
    listing = run_cas(store, "ls", "p/ds0").stdout.decode().splitlines()
    assert listing[0].startswith("ct.nrrd\t8x10\t") and listing[0].endswith("\t8x10x12 voxels")
    assert listing[1].endswith("\t6x7x5 voxels")
    assert json.loads(run_cas(store, "ls", "p/ds0", "--json").stdout)["items"][1]["dimensions"] == [6, 7, 5]
    assert "media    1170 voxels in all" in run_cas(store, "stats", "p").stdout.decode()  # 960 + 210
    run_cas(store, "export", "p", str(tmp_path / "out"))
    copied = ["ds0/volume/ct.nrrd", "ds0/volume/mr.nrrd", "key_id_map.json", *masks(sdk_volume_project)]
    assert len(copied) == 5 and masks(tmp_path / "out") == masks(sdk_volume_project)
    for name in copied:
        assert (tmp_path / "out" / name).read_bytes() == (sdk_volume_project / name).read_bytes(), name
    source = sdk_read(sdk_volume_project, "VolumeProject")
    assert [len(source["items"][f"ds0/{n}"]["masks"]) for n in ("ct.nrrd", "mr.nrrd")] == [1, 1]
    assert source["items"]["ds0/ct.nrrd"]["masks"][0][2] == [8, 10, 12]  # read by the SDK as a Mask3D
    assert_same_project(sdk_read(tmp_path / "out", "VolumeProject"), source, "volumes")


def test_meshes_a_server_made_are_counted_as_not_kept(tmp_path: Path, sdk_volume_project: Path) -> None:
    src = tmp_path / "volumes"
    shutil.copytree(sdk_volume_project, src)
    (src / "ds0/interpolation/ct.nrrd").mkdir(parents=True)  # as the SDK's download writes them
    (src / "ds0/interpolation/ct.nrrd" / ("1" * 32 + ".stl")).write_bytes(b"solid mesh\nendsolid mesh\n")
    out = run_cas(tmp_path / "store", "import", str(src), "--project", "p").stdout.decode()
    assert "1 STL mesh in interpolation/ not kept" in out and "imported p: 2 items" in out


def test_a_folder_of_nrrd_files_is_a_project_without_labels(tmp_path: Path, sdk_volume_project: Path) -> None:
    src = tmp_path / "scans"
    (src / "mr").mkdir(parents=True)
    shutil.copy(sdk_volume_project / "ds0/volume/ct.nrrd", src / "ct.nrrd")  # gzip
    shutil.copy(sdk_volume_project / "ds0/volume/mr.nrrd", src / "mr" / "mr.nrrd")  # raw
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "--project", "s")
    assert run_cas(store, "ls").stdout.decode().startswith("s\tvolumes\t2 datasets\t2 items")
    rows = json.loads(run_cas(store, "ls", "s/mr", "--json").stdout)["items"]
    assert rows[0]["dimensions"] == [6, 7, 5] and rows[0]["mime"] == "application/x-nrrd"
    run_cas(store, "export", "s", str(tmp_path / "out"))
    ann = json.loads((tmp_path / "out/scans/ann/ct.nrrd.json").read_text())
    assert ann["volumeMeta"]["dimensionsIJK"] == {"x": 8, "y": 10, "z": 12} and ann["spatialFigures"] == []
    assert [p["name"] for p in ann["planes"]] == ["sagittal", "coronal", "axial"] and len(ann["key"]) == 32
    seen = sdk_read(tmp_path / "out", "VolumeProject")  # the SDK reads the empty annotations
    assert not seen["warnings"] and sorted(seen["items"]) == ["mr/mr.nrrd", "scans/ct.nrrd"]


def _ann(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(src: Path) -> None:
        path = src / "ds0/ann/ct.nrrd.json"
        ann = json.loads(path.read_text())
        change(ann)
        path.write_text(json.dumps(ann))
    return edit


def _axial(ann: dict) -> dict:
    return next(p for p in ann["planes"] if p["name"] == "axial")


def _mask_of_other_shape(src: Path) -> None:
    """The mr volume's mask put in place of the ct volume's (6x7x5, not 8x10x12)."""
    ct, = (src / "ds0/mask/ct.nrrd").iterdir()
    mr, = (src / "ds0/mask/mr.nrrd").iterdir()
    ct.write_bytes(mr.read_bytes())


def _truncate(src: Path) -> None:
    path = src / "ds0/volume/mr.nrrd"  # raw encoding: the header says how many bytes follow
    path.write_bytes(path.read_bytes()[:-5])


def _stray_mask(src: Path) -> None:
    """A second copy of the ct volume's mask, under a key no figure has."""
    ct, = (src / "ds0/mask/ct.nrrd").iterdir()
    (ct.parent / ("0" * 32 + ".nrrd")).write_bytes(ct.read_bytes())


CT_MASK = "ds0/mask/ct.nrrd/"
BAD = {  # what is wrong -> (the change, the file the error names, the field or words it says)
    "unknown object key": (_ann(lambda a: _axial(a)["slices"][0]["figures"][0].update(objectKey="f" * 32)),
                           "ds0/ann/ct.nrrd.json", "planes[2].slices[0].figures[0].objectKey"),
    "unknown class": (_ann(lambda a: a["objects"][0].update(classTitle="bone")), "ds0/ann/ct.nrrd.json",
                      "objects[0].classTitle"),
    "slice past the volume": (_ann(lambda a: _axial(a)["slices"][0].update(index=12)), "ds0/ann/ct.nrrd.json",
                              "slice 12 is past the volume's 12 axial slices"),
    "sagittal slice past x": (_ann(lambda a: a["planes"][0]["slices"][0].update(index=8)),
                              "ds0/ann/ct.nrrd.json", "planes[0].slices[0].index"),
    "dimensions not the volume's": (_ann(lambda a: a["volumeMeta"]["dimensionsIJK"].update(z=13)),
                                    "ds0/ann/ct.nrrd.json", "but the volume is 8x10x12"),
    "mask of another shape": (_mask_of_other_shape, CT_MASK, "mask is 6x7x5 voxels but its volume is 8x10x12"),
    "mask of no spatial figure": (_stray_mask, "ds0/ann/ct.nrrd.json", "not among the spatial figures"),
    "truncated raw volume": (_truncate, "ds0/volume/mr.nrrd", "truncated NRRD"),
    "mask folder of no volume": (lambda src: (src / "ds0/mask/xx.nrrd").mkdir(), "ds0/mask/xx.nrrd",
                                 "related files of no item"),
    "mask not an nrrd": (lambda src: (src / "ds0/mask/ct.nrrd/notes.txt").write_text("x"),
                         "ds0/mask/ct.nrrd/notes.txt", "<figure key>.nrrd"),
    "volume not an nrrd": (lambda src: (src / "ds0/volume/mr.nrrd").write_bytes(b"\x89PNG not a volume"),
                           "ds0/volume/mr.nrrd", "not an NRRD file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_volume_input_is_one_line_and_changes_nothing(tmp_path: Path, sdk_volume_project: Path,
                                                          case: str) -> None:
    change, file, words = BAD[case]
    src = tmp_path / "volumes"
    shutil.copytree(sdk_volume_project, src)
    change(src)
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_volume_project), "--project", "p")
    before = store_state(store)
    proc = run_cas(store, "import", str(src), "--project", "w", check=False)
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {file}") and words in lines[0], lines
    assert store_state(store) == before
