"""The official Supervisely SDK opens a mounted project and reads every image and annotation.

The SDK lives in its own venv (see tests/tools.py), so its dependency pins never touch ours.
"""

import json
import os
import subprocess

from tests.conftest import run_cas
from tests.tools import tool_python

CHECK = r"""
import json, sys
import supervisely as sly
project = sly.Project(sys.argv[1], sly.OpenMode.READ)
out = {"datasets": {}, "objects": 0, "classes": sorted(c.name for c in project.meta.obj_classes)}
for ds in project.datasets:
    names = sorted(ds)
    out["datasets"][ds.name] = names
    for name in names:
        ann = ds.get_ann(name, project.meta)
        img = sly.image.read(ds.get_img_path(name))
        assert tuple(img.shape[:2]) == tuple(ann.img_size), (name, img.shape, ann.img_size)
        out["objects"] += len(ann.labels)
print(json.dumps(out))
"""


def test_supervisely_sdk_reads_a_mounted_project(tmp_path, sample_project, mount):
    store = tmp_path / "store"
    run_cas(store, "import", str(sample_project), "--project", "demo")
    with mount(store, project="demo") as mnt:
        res = subprocess.run([tool_python("sly"), "-c", CHECK, str(mnt)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    expected_objects = sum(len(json.loads(p.read_text())["objects"]) for p in sample_project.rglob("ann/*.json"))
    assert seen["datasets"] == {
        "train": sorted(os.listdir(sample_project / "train/img")),
        "train/night": sorted(os.listdir(sample_project / "train/datasets/night/img")),
        "val": sorted(os.listdir(sample_project / "val/img")),
    }
    assert seen["objects"] == expected_objects
    meta = json.loads((sample_project / "meta.json").read_text())
    assert seen["classes"] == sorted(c["title"] for c in meta["classes"])


def test_supervisely_sdk_reads_a_coco_export_dropped_into_the_mount(tmp_path, mount):
    from tests.converters.samples import coco_sample
    from tests.fusefs.test_drops import wait_imported

    src = coco_sample(tmp_path / "street_coco")
    store = tmp_path / "store"
    run_cas(store, "init")
    with mount(store) as mnt:
        assert subprocess.run(["cp", "-r", str(src), str(mnt)], timeout=120).returncode == 0
        assert wait_imported(mnt).returncode == 0
        res = subprocess.run([tool_python("sly"), "-c", CHECK, str(mnt / "street_coco")], capture_output=True,
                             text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["datasets"] == {"val2017": sorted(os.listdir(src / "images/val2017"))}
    assert seen["objects"] > 0 and "person" in seen["classes"]
