"""Exports written by the real tools (the Supervisely SDK, Datumaro) from the sample project,
shared by the tests that import them (converters/test_interop.py) and drop them into a mount
(fusefs/test_drops.py). Made once per run: the tools take seconds to start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cas import Store
from converters import coco
from converters.ingest import import_source
from tests.tools import run_tool


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path]:
    """A store holding the sample project (train, train/night, val; every geometry) as `demo`."""
    from bench.datagen import make_sample_project
    root = tmp_path_factory.mktemp("demo")
    store = Store.init(root / "store")
    import_source(store, make_sample_project(root / "sample"), "demo", "sly")
    yield store, root
    store.close()


SDK_EXPORTS = r"""
import sys, supervisely as sly
project = sly.Project(sys.argv[1], sly.OpenMode.READ)
project.to_coco(dest_dir=sys.argv[2] + "/coco", copy_images=True)
project.to_yolo(dest_dir=sys.argv[2] + "/yolo")
project.to_pascal_voc(dest_dir=sys.argv[2] + "/voc")
"""


@pytest.fixture(scope="session")
def sdk_exports(demo: tuple[Store, Path]) -> Path:
    from converters import supervisely
    store, root = demo
    project = root / "sdk-project"
    supervisely.write(store, "demo", project)
    shutil.rmtree(project / "train" / "datasets")  # the SDK's VOC writer fails on nested datasets
    run_tool("sly", SDK_EXPORTS, str(project), str(root / "sdk"), timeout=600)
    return root / "sdk"


DATUMARO_EXPORTS = r"""
import sys, datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], "coco")
for fmt in ("coco", "voc"):
    ds.export(sys.argv[2] + "/" + fmt, fmt, save_media=True)
for fmt in ("cvat", "kitti_detection", "yolo"):
    ds.export(sys.argv[2] + "/" + fmt, fmt, save_media=True)
labelled = dm.Dataset.from_iterable(  # classification: a class per image, one of two
    [dm.DatasetItem(id=item.id, subset=item.subset, media=item.media, annotations=[dm.Label(i % 2)])
     for i, item in enumerate(ds)], categories=["cat", "dog"])
for fmt in ("imagenet", "imagenet_with_subset_dirs"):
    labelled.export(sys.argv[2] + "/" + fmt, fmt, save_media=True)
ds.transform("map_subsets", mapping={"train_night": "train"})
ds.export(sys.argv[2] + "/yolo_ultralytics", "yolo_ultralytics", save_media=True)
"""


@pytest.fixture(scope="session")
def datumaro_exports(demo: tuple[Store, Path]) -> Path:
    store, root = demo
    coco.write(store, "demo", root / "cas-coco")
    run_tool("datumaro", DATUMARO_EXPORTS, str(root / "cas-coco"), str(root / "dm"))
    return root / "dm"


@pytest.fixture(scope="session")
def names_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path]:
    """A store holding `names`: items and datasets whose names readers trip on (spaces,
    non-ASCII, one item name in a dataset and in its child: bench.datagen.NAMES_LAYOUT)."""
    from bench.datagen import NAMES_LAYOUT, make_sample_project
    root = tmp_path_factory.mktemp("names")
    store = Store.init(root / "store")
    import_source(store, make_sample_project(root / "sample", layout=NAMES_LAYOUT), "names", "sly")
    yield store, root
    store.close()


@pytest.fixture(scope="session")
def sdk_names_exports(names_project: tuple[Store, Path]) -> Path:
    """The SDK's COCO, YOLO and VOC exports of `names` (without the nested dataset: the SDK's
    VOC writer fails on one)."""
    from converters import supervisely
    store, root = names_project
    project = root / "sdk-project"
    supervisely.write(store, "names", project)
    shutil.rmtree(project / "train" / "datasets")
    run_tool("sly", SDK_EXPORTS, str(project), str(root / "sdk"), timeout=600)
    return root / "sdk"
