"""Projects of the kinds beyond images written by the Supervisely SDK's own classes, and what
the SDK reads back from a project folder (a source, an export, a mount), for the tests that
import, export and mount them (tests/converters/test_sly_videos.py, test_sly_pointclouds.py,
test_sly_episodes.py, test_sly_volumes.py, and their mount tests).
Made once per run: the SDK takes seconds to start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tools import run_tool

# A video project: two videos made with OpenCV's encoder, objects with tags over frame ranges,
# rectangles and polygons on some frames, a video tag over every frame; two datasets.
VIDEO_PROJECT = r"""
import os, sys, numpy as np, cv2, supervisely as sly
root, scratch = sys.argv[1], sys.argv[2]
os.makedirs(scratch, exist_ok=True)

def video(name, frames, size):
    path = os.path.join(scratch, name)
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        out.write(np.full((size[1], size[0], 3), i * 20 % 255, np.uint8))
    out.release()
    return path

car = sly.ObjClass("car", sly.Rectangle)
lane = sly.ObjClass("lane", sly.Polygon)
weather = sly.TagMeta("weather", sly.TagValueType.ANY_STRING)
moving = sly.TagMeta("moving", sly.TagValueType.NONE)
meta = sly.ProjectMeta(obj_classes=[car, lane], tag_metas=[weather, moving])
project = sly.VideoProject(root, sly.OpenMode.CREATE)
project.set_meta(meta)
for ds_name, name, frames, size in (("day", "a.mp4", 12, (64, 48)), ("night", "b.mp4", 8, (80, 60))):
    ds = project.create_dataset(ds_name)
    c = sly.VideoObject(car, tags=sly.VideoTagCollection([sly.VideoTag(moving, frame_range=(2, 5))]))
    l = sly.VideoObject(lane)
    figures = [sly.Frame(i, figures=[sly.VideoFigure(c, sly.Rectangle(1, 1, 10 + i, 20), i),
                                      sly.VideoFigure(l, sly.Polygon([sly.PointLocation(1, 1), sly.PointLocation(5, 9),
                                                                      sly.PointLocation(9, 2)]), i)])
               for i in range(0, frames, 3)]
    ann = sly.VideoAnnotation((size[1], size[0]), frames, objects=sly.VideoObjectCollection([c, l]),
                              frames=sly.FrameCollection(figures),
                              tags=sly.VideoTagCollection([sly.VideoTag(weather, "sunny",
                                                                        frame_range=(0, frames - 1))]))
    ds.add_item_file(name, video(name, frames, size), ann=ann)
"""

# What both point cloud scripts share: a PCD v0.7 writer (ASCII or binary) and two camera
# images with their JSON, written into an item's related folder as the SDK reads them.
CLOUDS = r"""
import json, os, sys, numpy as np, cv2, supervisely as sly
from supervisely.geometry.cuboid_3d import Cuboid3d, Vector3d
root, scratch = sys.argv[1], sys.argv[2]
os.makedirs(scratch, exist_ok=True)

def cloud(name, n, binary):
    points = np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 10
    path = os.path.join(scratch, name)
    with open(path, "wb") as f:
        f.write(("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\n"
                 f"COUNT 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n"
                 f"DATA {'binary' if binary else 'ascii'}\n").encode())
        f.write(points.tobytes() if binary else "".join(f"{x:g} {y:g} {z:g}\n" for x, y, z in points).encode())
    return path

def cameras(related):
    os.makedirs(related)
    for camera, shade in (("front.png", 90), ("left.png", 40)):
        cv2.imwrite(os.path.join(related, camera), np.full((20, 30, 3), shade, np.uint8))
        with open(os.path.join(related, camera + ".json"), "w") as f:
            json.dump({"name": camera, "meta": {"deviceId": camera, "sensorsData": {
                "extrinsicMatrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
                "intrinsicMatrix": [1, 0, 0, 0, 1, 0, 0, 0, 1]}}}, f)
"""

# A point cloud project: one cloud as PCD v0.7 ASCII, one binary; a cuboid on each; two camera
# images (with their camera JSON) related to the first. The SDK writes no related images: they
# are written as PointcloudDataset.get_related_images reads them.
POINTCLOUD_PROJECT = CLOUDS + r"""

car = sly.ObjClass("car", Cuboid3d)
meta = sly.ProjectMeta(obj_classes=[car], tag_metas=[sly.TagMeta("parked", sly.TagValueType.NONE)])
project = sly.PointcloudProject(root, sly.OpenMode.CREATE)
project.set_meta(meta)
ds = project.create_dataset("ds0")
for name, n, binary in (("a.pcd", 5, False), ("b.pcd", 7, True)):
    obj = sly.PointcloudObject(car, tags=sly.VideoTagCollection([sly.VideoTag(meta.get_tag_meta("parked"))]))
    figure = sly.PointcloudFigure(obj, Cuboid3d(Vector3d(1, 2, 3), Vector3d(0, 0, 0.5), Vector3d(4, 2, 1.5)))
    ann = sly.PointcloudAnnotation(objects=sly.VideoObjectCollection([obj]), figures=[figure])
    ds.add_item_file(name, cloud(name, n, binary), ann=ann)
cameras(ds.get_related_images_path("a.pcd"))
"""

# A point-cloud episode project: episode ep0 of three clouds (ASCII and binary PCD v0.7), a car
# tracked over them (a cuboid per frame, a tag over frames 0 to 1), two camera images related to
# its first frame; episode ep1 of two clouds (the first the same bytes as ep0's), one frame
# annotated. The SDK writes no frame_pointcloud_map.json (only its download from a server does)
# and no related images: ep0's are written as PointcloudEpisodeDataset reads them; ep1 has no map
# (the SDK takes its clouds in name order then).
EPISODE_PROJECT = CLOUDS + r"""

car = sly.ObjClass("car", Cuboid3d)
moving = sly.TagMeta("moving", sly.TagValueType.NONE)
meta = sly.ProjectMeta(obj_classes=[car], tag_metas=[moving])
project = sly.PointcloudEpisodeProject(root, sly.OpenMode.CREATE)
project.set_meta(meta)
for ep, clouds in (("ep0", [("f0.pcd", 5, False), ("f1.pcd", 6, True), ("f2.pcd", 7, False)]),
                   ("ep1", [("a.pcd", 5, False), ("b.pcd", 8, True)])):
    ds = project.create_dataset(ep)
    for i, (name, n, binary) in enumerate(clouds):
        ds.add_item_file(name, cloud(name, n, binary), frame=i)
    tags = [sly.PointcloudEpisodeTag(moving, frame_range=(0, 1))] if ep == "ep0" else []
    obj = sly.PointcloudEpisodeObject(car, tags=sly.PointcloudEpisodeTagCollection(tags))
    frames = [sly.Frame(i, figures=[sly.PointcloudFigure(obj, Cuboid3d(Vector3d(1 + i, 2, 3), Vector3d(0, 0, 0.5),
                                                                      Vector3d(4, 2, 1.5)), frame_index=i)])
              for i in range(len(clouds) if ep == "ep0" else 1)]
    ds.set_ann(sly.PointcloudEpisodeAnnotation(len(clouds), objects=sly.PointcloudEpisodeObjectCollection([obj]),
                                               frames=sly.FrameCollection(frames)))
ep0 = project.datasets.get("ep0")
with open(ep0.get_frame_pointcloud_map_path(), "w") as f:
    json.dump({"0": "f0.pcd", "1": "f1.pcd", "2": "f2.pcd"}, f, indent=4)
cameras(ep0.get_related_images_path("f0.pcd"))
"""

# A volume project: two NRRD volumes written by pynrrd (gzip and raw encoding), a rectangle on a
# slice of each plane, a Mask3D spatial figure each. The SDK writes a local project's Mask3D
# inline in the annotation and no mask/ file (only a download from a server writes those): the
# mask files are written where VolumeDataset.get_mask_path puts them, with the SDK's own NRRD
# encoder (as the server's geometries come), and add_item_file skips its check (it checks a
# volume as a video, and refuses .nrrd).
VOLUME_PROJECT = r"""
import os, sys, numpy as np, nrrd, supervisely as sly
from supervisely.geometry.mask_3d import Mask3D
from supervisely.volume.nrrd_encoder import encode
root, scratch = sys.argv[1], sys.argv[2]
os.makedirs(scratch, exist_ok=True)
SPACE = {"space": "right-anterior-superior", "space directions": np.eye(3).tolist(), "space origin": [0.0] * 3}

def volume(name, shape, encoding):
    path = os.path.join(scratch, name)
    data = (np.arange(np.prod(shape)) % 200).astype(np.int16).reshape(shape)
    nrrd.write(path, data, {**SPACE, "encoding": encoding})
    return path

organ = sly.ObjClass("organ", sly.Rectangle)
tumor = sly.ObjClass("tumor", Mask3D)
meta = sly.ProjectMeta(obj_classes=[organ, tumor], tag_metas=[sly.TagMeta("contrast", sly.TagValueType.NONE)])
project = sly.VolumeProject(root, sly.OpenMode.CREATE)
project.set_meta(meta)
ds = project.create_dataset("ds0")
for name, shape, encoding in (("ct.nrrd", (8, 10, 12), "gzip"), ("mr.nrrd", (6, 7, 5), "raw")):
    path = volume(name, shape, encoding)
    _, volume_meta = sly.volume.read_nrrd_serie_volume_np(path)
    o, t = sly.VolumeObject(organ), sly.VolumeObject(tumor)
    mask = np.zeros(shape, bool)
    mask[1:3, 2:4, 1:3] = True
    spatial = sly.VolumeFigure(t, Mask3D(mask, volume_header=SPACE), None, None)
    planes = {plane: sly.Plane(plane, volume_meta=volume_meta, items=[
        sly.Slice(2, figures=[sly.VolumeFigure(o, sly.Rectangle(1, 1, 3, 4), plane, 2)])])
        for plane in (sly.Plane.SAGITTAL, sly.Plane.CORONAL, sly.Plane.AXIAL)}
    ann = sly.VolumeAnnotation(volume_meta, objects=sly.VolumeObjectCollection([o, t]),
                               plane_sagittal=planes[sly.Plane.SAGITTAL], plane_coronal=planes[sly.Plane.CORONAL],
                               plane_axial=planes[sly.Plane.AXIAL], spatial_figures=[spatial],
                               tags=sly.VolumeTagCollection([sly.VolumeTag(meta.get_tag_meta("contrast"))]))
    ds.add_item_file(name, path, ann=ann, _validate_item=False)
    mask_path = ds.get_mask_path(name, spatial)
    os.makedirs(os.path.dirname(mask_path))
    with open(mask_path, "wb") as f:
        f.write(encode(mask.astype(np.uint8), spatial.geometry.create_header()))
"""

# What the SDK reads from a project folder, as JSON: fails on any warning the SDK logs. An
# episode's annotation is read once, under the episode's name; each frame gives its index.
READ = r"""
import hashlib, json, logging, os, sys, supervisely as sly
warnings = []
class Catch(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
sly.logger.addHandler(Catch(logging.WARNING))
cls = getattr(sly, sys.argv[2])
project = cls(sys.argv[1], sly.OpenMode.READ)
out = {"meta": project.meta.to_json(), "items": {}, "warnings": warnings}
for ds in project.datasets:
    episode = isinstance(ds, sly.PointcloudEpisodeDataset)
    if episode:
        out["items"][ds.name] = {"ann": ds.get_ann(project.meta).to_json()}
    for name in sorted(ds):
        paths = ds.get_item_paths(name)
        media = open(paths[0], "rb").read()
        item = out["items"][f"{ds.name}/{name}"] = {"media": hashlib.sha256(media).hexdigest()}
        if episode:
            item["frame"] = ds.get_frame_idx(name)
        else:
            if hasattr(ds.annotation_class, "load_json_file"):
                ann = ds.get_ann(name, project.meta)
            else:  # VolumeDataset.get_ann calls VolumeAnnotation.load_json_file, which the SDK lacks: its from_json
                ann = ds.annotation_class.from_json(json.load(open(ds.get_ann_path(name))), project.meta)
            item["ann"] = ann.to_json()
        # a Mask3D's gzip (timestamped at each to_json): its voxels
        for fig in item.get("ann", {}).get("spatialFigures", []):
            mask = fig["geometry"]["mask_3d"]
            voxels = sly.Mask3D.base64_2_data(mask["data"])
            mask["data"] = [list(voxels.shape), hashlib.sha256(voxels.tobytes()).hexdigest()]
        if hasattr(ds, "get_related_images"):
            item["related"] = sorted([os.path.basename(path), hashlib.sha256(open(path, "rb").read()).hexdigest(),
                                      info] for path, info in ds.get_related_images(name))
        if hasattr(ds, "get_mask_dir"):  # a volume's masks, each read as a Mask3D (its shape) and digested
            where = ds.get_mask_dir(name)
            item["masks"] = sorted([file, hashlib.sha256(open(os.path.join(where, file), "rb").read()).hexdigest(),
                                    list(sly.Mask3D.create_from_file(os.path.join(where, file)).data.shape)]
                                   for file in (os.listdir(where) if os.path.isdir(where) else []))
print(json.dumps(out, sort_keys=True))
"""


def sdk_read(path: Path, project_class: str) -> dict:
    """What `sly.<project_class>(path, READ)` reads: meta, each item's annotation and media digest."""
    return json.loads(run_tool("sly", READ, str(path), project_class).strip().splitlines()[-1])


def assert_same_project(seen: dict[str, Any], source: dict[str, Any], project_type: str) -> None:
    """What the SDK read is what it reads from the source, meta.json naming the project type
    besides (the SDK writes none; the store says what it holds)."""
    assert not seen["warnings"] and seen["items"] and seen["items"] == source["items"]
    assert seen["meta"].pop("projectType") == project_type and seen["meta"] == source["meta"]


@pytest.fixture(scope="session")
def sdk_video_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `sly.VideoProject` written by the SDK (see VIDEO_PROJECT)."""
    root = tmp_path_factory.mktemp("sdk_videos")
    run_tool("sly", VIDEO_PROJECT, str(root / "videos"), str(root / "scratch"))
    return root / "videos"


@pytest.fixture(scope="session")
def sdk_episode_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `sly.PointcloudEpisodeProject` written by the SDK, its frame map and related images as it reads them
    (EPISODE_PROJECT)."""
    root = tmp_path_factory.mktemp("sdk_episodes")
    run_tool("sly", EPISODE_PROJECT, str(root / "episodes"), str(root / "scratch"))
    return root / "episodes"


@pytest.fixture(scope="session")
def sdk_volume_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `sly.VolumeProject` written by the SDK, masks as it reads them (VOLUME_PROJECT)."""
    root = tmp_path_factory.mktemp("sdk_volumes")
    run_tool("sly", VOLUME_PROJECT, str(root / "volumes"), str(root / "scratch"))
    return root / "volumes"


@pytest.fixture(scope="session")
def sdk_pointcloud_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `sly.PointcloudProject` written by the SDK, related images as it reads them (POINTCLOUD_PROJECT)."""
    root = tmp_path_factory.mktemp("sdk_pointclouds")
    run_tool("sly", POINTCLOUD_PROJECT, str(root / "clouds"), str(root / "scratch"))
    return root / "clouds"
