"""Import of a Supervisely point cloud (or volume) project vs `cp -r + sync` (issue 30's bar: <= 1.5 x).

    .venv/bin/python -m bench.pointcloud_import [--clouds 1000] [--points 20000] [--images 3]
        [--episodes N] [--rounds 3] [--workdir DIR] [--keep]
    .venv/bin/python -m bench.pointcloud_import --volumes 40 [--voxels 256x256x64] [--masks 2] ...

Makes a project as the SDK lays it out (sly.PointcloudProject: pointcloud/<n>.pcd binary PCD
v0.7, ann/<n>.pcd.json with a cuboid, related_images/<n>_pcd/ with `--images` distinct JPEG
camera images and their <image>.json each; with `--volumes`, sly.VolumeProject: volume/<n>.nrrd
raw int16 NRRDs of `--voxels`, ann/<n>.nrrd.json with a rectangle on an axial slice and
`--masks` Mask3D figures, mask/<n>.nrrd/<figure>.nrrd gzip uint8 masks), then in interleaved
rounds times `cp -r SRC DEST && sync` and `cas import SRC` into a fresh store (cas syncs its
blobs and commits LMDB before it exits), the source hot in the page cache. Prints the medians
and their ratio.

With `--episodes N`, a point-cloud episode project (sly.PointcloudEpisodeProject) of the same
clouds: N episodes <e>/ with pointcloud/, related_images/, one annotation.json (a car tracked
over every frame, a cuboid on each) and frame_pointcloud_map.json.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.dedup import cas_env, fresh_cas_store, prepare, run, synced

LIMIT = 1.5


def make_project(root: Path, clouds: int, points: int, images: int, seed: int = 0, episodes: int = 0) -> None:
    """A point cloud project of `clouds` clouds of `points` points with `images` related images
    each; with `episodes`, an episode project of that many episodes sharing the clouds out."""
    rng = np.random.default_rng(seed)
    meta = {"classes": [{"title": "car", "shape": "cuboid_3d", "color": "#FF0000", "geometry_config": {}}],
            "tags": [], "projectType": "point_cloud_episodes" if episodes else "point_clouds"}
    root.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(meta, indent=4))
    if episodes:
        per = -(-clouds // episodes)
        for e in range(episodes):
            _clouds(root / f"ep{e}", range(e * per, min(clouds, (e + 1) * per)), points, images, rng, episode=True)
    else:
        _clouds(root / "ds0", range(clouds), points, images, rng, episode=False)


def _clouds(ds: Path, numbers: range, points: int, images: int, rng: np.random.Generator, episode: bool) -> None:
    """A dataset of clouds (their annotations in ann/, or an episode's files) and related images."""
    for sub in ("pointcloud", "related_images") + (() if episode else ("ann",)):
        (ds / sub).mkdir(parents=True)
    head = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\n"
            f"TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {points}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\n"
            "DATA binary\n").encode()
    cuboid = {"position": {"x": 1, "y": 2, "z": 0}, "rotation": {"x": 0, "y": 0, "z": 0.3},
              "dimensions": {"x": 4, "y": 2, "z": 1.5}}
    car = f"{numbers.start:032x}"
    frames = []
    for frame, i in enumerate(numbers):
        name = f"{i:06d}.pcd"
        (ds / "pointcloud" / name).write_bytes(head + rng.random((points, 4), np.float32).tobytes())
        key = f"{i:032x}"
        figure = {"key": f"{i + 2:032x}", "objectKey": car if episode else key, "geometryType": "cuboid_3d",
                  "geometry": cuboid}
        frames.append({"index": frame, "figures": [figure]})
        if not episode:
            ann = {"description": "", "key": f"{i + 1:032x}", "tags": [],
                   "objects": [{"key": key, "classTitle": "car", "tags": []}], "figures": [figure]}
            (ds / "ann" / f"{name}.json").write_text(json.dumps(ann, indent=4))
        related = ds / "related_images" / name.replace(".", "_")
        related.mkdir()
        for cam in range(images):
            img = f"cam{cam}.jpg"
            out = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (240, 320, 3), np.uint8)).save(out, "JPEG", quality=80)
            (related / img).write_bytes(out.getvalue())
            (related / f"{img}.json").write_text(json.dumps(
                {"name": img, "meta": {"deviceId": f"cam{cam}", "sensorsData": {
                    "extrinsicMatrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
                    "intrinsicMatrix": [500, 0, 160, 0, 500, 120, 0, 0, 1]}}}))
    if episode:
        (ds / "annotation.json").write_text(json.dumps(
            {"description": "", "key": f"{numbers.stop:032x}", "tags": [],
             "objects": [{"key": car, "classTitle": "car", "tags": []}], "framesCount": len(numbers),
             "frames": frames}, indent=4))
        (ds / "frame_pointcloud_map.json").write_text(json.dumps(
            {str(frame): f"{i:06d}.pcd" for frame, i in enumerate(numbers)}, indent=4))


def _nrrd(data: np.ndarray, gzipped: bool) -> bytes:
    """An NRRD file of a 3D array (x fastest, as NRRD and the SDK lay voxels), as pynrrd writes one."""
    kind = {"int16": "int16", "uint8": "uint8"}[data.dtype.name]
    encoding = "gzip" if gzipped else "raw"
    head = (f"NRRD0005\ntype: {kind}\ndimension: 3\nspace: right-anterior-superior\n"
            f"sizes: {' '.join(map(str, data.shape))}\nspace directions: (1,0,0) (0,1,0) (0,0,2.5)\n"
            f"endian: little\nencoding: {encoding}\nspace origin: (0,0,0)\n\n").encode()
    body = data.tobytes(order="F")
    return head + (gzip.compress(body, 1) if gzipped else body)


def make_volume_project(root: Path, volumes: int, shape: tuple[int, int, int], masks: int, seed: int = 0) -> None:
    """A volume project of `volumes` distinct volumes of `shape` voxels with `masks` Mask3D files each."""
    rng = np.random.default_rng(seed)
    meta = {"classes": [{"title": "organ", "shape": "rectangle", "color": "#00FF00", "geometry_config": {}},
                        {"title": "tumor", "shape": "mask_3d", "color": "#FF0000", "geometry_config": {}}],
            "tags": [], "projectType": "volumes"}
    root.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(meta, indent=4))
    ds = root / "ds0"
    for sub in ("volume", "ann", "mask"):
        (ds / sub).mkdir(parents=True)
    x, y, z = shape
    for i in range(volumes):
        name = f"{i:06d}.nrrd"
        (ds / "volume" / name).write_bytes(_nrrd(rng.integers(-1000, 3000, shape, np.int16), gzipped=False))
        organ = f"{4 * i:032x}"
        objects = [{"key": organ, "classTitle": "organ", "tags": []}]
        spatial = []
        (ds / "mask" / name).mkdir()
        for m in range(masks):
            obj, fig = f"{4 * i + 1 + m:032x}", f"{(i + 1) << 64 | m:032x}"
            objects.append({"key": obj, "classTitle": "tumor", "tags": []})
            mask = np.zeros(shape, np.uint8)
            mask[x // 4:x // 2, y // 4:y // 2, m:z // 2 + m] = 1
            inline = base64.b64encode(gzip.compress(f"{x},{y},{z}|".encode() + mask.tobytes(), 1)).decode()
            spatial.append({"key": fig, "objectKey": obj, "geometryType": "mask_3d",  # as Mask3D.data_2_base64
                            "geometry": {"mask_3d": {"data": inline}, "shape": "mask_3d", "geometryType": "mask_3d"}})
            (ds / "mask" / name / f"{fig}.nrrd").write_bytes(_nrrd(mask, gzipped=True))
        rectangle = {"key": f"{i:016x}{1:016x}", "objectKey": organ, "geometryType": "rectangle",
                     "geometry": {"points": {"exterior": [[1, 1], [20, 30]], "interior": []}}}
        planes = [{"name": plane, "normal": {a: int(a == axis) for a in "xyz"},
                   "slices": [{"index": z // 2, "figures": [rectangle]}] if plane == "axial" else []}
                  for plane, axis in (("sagittal", "x"), ("coronal", "y"), ("axial", "z"))]
        ann = {"volumeMeta": {"dimensionsIJK": {"x": x, "y": y, "z": z}, "ACS": "RAS", "channelsCount": 1,
                              "spacing": [1, 1, 2.5], "origin": [0, 0, 0], "directions": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
               "key": f"{i:032x}", "tags": [], "objects": objects, "planes": planes, "spatialFigures": spatial}
        (ds / "ann" / f"{name}.json").write_text(json.dumps(ann, indent=4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clouds", type=int, default=1000)
    ap.add_argument("--points", type=int, default=20000)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=0, help="an episode project of this many episodes")
    ap.add_argument("--volumes", type=int, default=0, help="a volume project of this many volumes instead")
    ap.add_argument("--voxels", default="256x256x64", help="each volume's dimensions, XxYxZ")
    ap.add_argument("--masks", type=int, default=2, help="Mask3D files per volume")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pcd-bench-", dir=args.workdir))
    try:
        src = work / "project"
        if args.volumes:
            x, y, z = (int(v) for v in args.voxels.split("x"))
            make_volume_project(src, args.volumes, (x, y, z), args.masks)
            what = f"{args.volumes} volumes of {args.voxels} voxels, {args.masks} masks each"
        else:
            make_project(src, args.clouds, args.points, args.images, episodes=args.episodes)
            what = (f"{args.clouds} clouds{f' in {args.episodes} episodes' if args.episodes else ''} x "
                    f"{args.points} points, {args.images} related images each")
        size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
        cp_times, cas_times = [], []
        for _round in range(args.rounds):
            prepare(src)
            shutil.rmtree(work / "copy", ignore_errors=True)
            cp_times.append(run(synced(["cp", "-r", str(src), str(work / "copy")]), work)[0])
            fresh_cas_store(work / "store", work)
            prepare(src)
            cas_times.append(run([sys.executable, "-m", "cas", "--store", str(work / "store"), "--quiet", "import",
                                  str(src), "--project", "p"], work, cas_env())[0])
        cp, cas = statistics.median(cp_times), statistics.median(cas_times)
        print(f"{what}: {size / 1e6:.0f} MB in {sum(1 for p in src.rglob('*') if p.is_file())} files")
        print(f"cp -r + sync  {cp:.2f} s (median of {args.rounds})")
        print(f"cas import    {cas:.2f} s (median of {args.rounds})")
        print(f"ratio         {cas / cp:.2f} x cp+sync (bar <= {LIMIT} x: {'MET' if cas / cp <= LIMIT else 'MISSED'})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    main()
