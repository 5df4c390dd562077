"""Supervisely project meta and image annotation validation.

Lives in `cas` because both converters and the FUSE view need it. Every error
names the file and the JSON path of the bad field.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from cas.errors import InvalidInput, shown
from cas.model.media import MediaInfo, PointcloudInfo, VideoInfo, VolumeInfo, check_pixels
from cas.units import shape_text

SHAPES = ("rectangle", "polygon", "line", "point", "bitmap", "graph", "cuboid_3d", "point_cloud", "mask_3d", "any")
SHAPES_3D = ("cuboid_3d", "point_cloud")
MASK_3D = "mask_3d"  # a volume's spatial figure
TAG_TYPES = ("none", "any_number", "any_string", "oneof_string")
PROJECT_TYPES = ("images", "videos", "point_clouds", "point_cloud_episodes", "volumes")
CLOUD_TYPES = ("point_clouds", "point_cloud_episodes")  # the types whose media are point clouds
PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}  # a volume's planes -> the axis (x, y, z) they slice
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def default_meta(project_type: str = "images") -> dict[str, Any]:
    return {"classes": [], "tags": [], "projectType": project_type}


def empty_annotation(width: int, height: int) -> dict[str, Any]:
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": []}


def empty_video_annotation(width: int, height: int, frames: int, video_id: bytes) -> dict[str, Any]:
    """A Supervisely video annotation with nothing in it; its key derives from the video's
    digest, so equal videos get equal (deduplicated) annotations."""
    return {"size": {"height": height, "width": width}, "description": "", "key": bytes(video_id[:16]).hex(),
            "tags": [], "objects": [], "frames": [], "framesCount": frames}


def empty_pointcloud_annotation(cloud_id: bytes) -> dict[str, Any]:
    """A Supervisely point cloud annotation with nothing in it, keyed as `empty_video_annotation`."""
    return {"description": "", "key": bytes(cloud_id[:16]).hex(), "tags": [], "objects": [], "figures": []}


def empty_volume_annotation(dimensions: tuple[int, ...] | list[int], volume_id: bytes) -> dict[str, Any]:
    """A Supervisely volume annotation with nothing in it, keyed as `empty_video_annotation`.
    Its volumeMeta holds what the NRRD header says without a decode: the dimensions (the SDK's
    own also has intensities and a window, which need every voxel)."""
    x, y, z = dimensions
    return {"volumeMeta": {"dimensionsIJK": {"x": x, "y": y, "z": z}}, "key": bytes(volume_id[:16]).hex(),
            "tags": [], "objects": [], "spatialFigures": [],
            "planes": [{"name": plane, "normal": {a: int(i == axis) for i, a in enumerate("xyz")}, "slices": []}
                       for plane, axis in PLANES.items()]}


def empty_item_annotation(project_type: str, width: int, height: int, media: bytes,
                          facts: dict[str, Any] | None) -> dict[str, Any]:
    """The empty annotation of an item of a project of `project_type` (its media's id and
    header facts, `ItemRecord.facts`, key and size a video's)."""
    if project_type == "videos":
        return empty_video_annotation(width, height, (facts or {}).get("frames", 0), media)
    if project_type == "point_clouds":
        return empty_pointcloud_annotation(media)
    if project_type == "volumes":
        return empty_volume_annotation((facts or {}).get("dimensions", (width, height, 1)), media)
    return empty_annotation(width, height)


def annotation_kind(ann: Any) -> str:
    """The project type whose annotation `ann` looks like: a video's counts frames, a point
    cloud's has figures and no size, a volume's has a volumeMeta."""
    if isinstance(ann, dict) and "framesCount" in ann:
        return "videos"
    if isinstance(ann, dict) and "volumeMeta" in ann:
        return "volumes"
    if isinstance(ann, dict) and "figures" in ann and "size" not in ann:
        return "point_clouds"
    return "images"


def dumps(obj: Any) -> bytes:
    """Canonical JSON bytes for anything we store (stable, so equal JSON dedups)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


MAX_INT_DIGITS = 30  # no id, count or coordinate needs more; int() of 4,300+ digits even raises


class _Refused(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"integer of {len(text)} digits")
    return int(text)


# Numbers that may be out of range: only then is every number checked (a Python call per
# number would slow a 100 MB COCO file down severalfold). With digits mapped to 0 the test
# is three substring searches (a regex (\d{31}|[eE][+-]?\d{3}) took 60% of json.loads' time),
# and a look at what stands before each one found.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789E-", b"0000000000e+")
_SUSPECT = (b"0" * (MAX_INT_DIGITS + 1), b"e000", b"e+000")
_NUMBER_CHARS = b"0.e+"  # what a number is made of, mapped
_BEFORE_VALUE = b" \t\r\n,:["  # what may stand before a number (a string's own characters may too)
_NUMBER_REST = re.compile(rb"[0.e+]*")
HIT_BYTES = 256  # bytes per pattern found in a string, beyond which the careful parse is cheaper


def _suspect(raw: bytes) -> bool:
    """Whether a pattern of _SUSPECT may stand in a number: not when the run of number
    characters around it follows a letter, as in a compressed RLE's counts (full of them:
    they sent COCO files to the careful parse, twice as slow)."""
    mapped = raw.translate(_DIGITS_AS_ZERO)
    hits, budget = 0, 16 + len(raw) // HIT_BYTES
    for pattern in _SUSPECT:
        at = mapped.find(pattern)
        while at >= 0:
            start = at
            while start > 0 and mapped[start - 1] in _NUMBER_CHARS:
                start -= 1
            hits += 1
            if start == 0 or mapped[start - 1] in _BEFORE_VALUE or hits > budget:
                return True
            run = _NUMBER_REST.match(mapped, at)
            assert run is not None  # it matches the empty string too
            at = mapped.find(pattern, run.end())  # past this run
    return False


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # an escaped UTF-16 surrogate: legal only in pairs


def _check_strings(node: Any, file: str) -> None:
    """Every string (key or value) encodes as UTF-8: a lone surrogate escape cannot be stored."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode()
            except UnicodeEncodeError:
                raise InvalidInput(
                    file, f"invalid JSON: a string holds a lone UTF-16 surrogate: {node[:60]!r}") from None


def loads(raw: bytes, file: str) -> Any:
    """Parse JSON from outside: UTF-8, finite numbers only (no NaN, Infinity or 1e400),
    integers of at most MAX_INT_DIGITS digits, bounded nesting; else one InvalidInput."""
    checks: dict[str, Any] = {"parse_constant": _constant}
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    if _suspect(data):
        checks.update(parse_float=_float, parse_int=_int)
    try:
        doc = json.loads(raw, **checks)
        if _SURROGATE.search(data):
            _check_strings(doc, file)
        return doc
    except _Refused as e:
        raise InvalidInput(file, f"invalid JSON: {e}") from None
    except RecursionError:
        raise InvalidInput(file, "invalid JSON: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(file, f"invalid JSON ({e})") from None


def _expect(cond: bool, file: str, field: str, message: str) -> None:
    if not cond:
        raise InvalidInput(file, message, field)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _known(name: Any, table: dict[str, Any]) -> bool:
    """`name` is a string key of `table` (a list or object where a name belongs is not)."""
    return isinstance(name, str) and name in table


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Meta:
    """A validated project meta with lookup tables for annotation checks."""

    def __init__(self, raw: Any, file: str = "meta.json") -> None:
        _expect(isinstance(raw, dict), file, "$", "expected a JSON object")
        self.raw: dict[str, Any] = raw
        self.file = file
        ptype = raw.get("projectType", "images")
        _expect(ptype in PROJECT_TYPES, file, "projectType",
                f"expected one of {', '.join(PROJECT_TYPES)}, got {shown(ptype)}")
        self.project_type: str = ptype
        self.classes: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        classes = raw.get("classes", [])
        _expect(isinstance(classes, list), file, "classes", "expected a list")
        for i, cls in enumerate(classes):
            where = f"classes[{i}]"
            _expect(isinstance(cls, dict), file, where, "expected an object")
            title = cls.get("title")
            _expect(isinstance(title, str) and title != "", file, f"{where}.title", "expected a non-empty string")
            _expect(title not in self.classes, file, f"{where}.title", f"duplicate class name {title!r}")
            shape = cls.get("shape")
            _expect(shape in SHAPES, file, f"{where}.shape", f"expected one of {', '.join(SHAPES)}, got {shown(shape)}")
            color = cls.get("color", "#000000")
            _expect(isinstance(color, str) and bool(_COLOR.match(color)), file, f"{where}.color",
                    f"expected #RRGGBB, got {shown(color)}")
            config = cls.get("geometry_config", {})
            _expect(isinstance(config, dict), file, f"{where}.geometry_config", "expected an object")
            if shape == "graph":
                nodes = config.get("nodes", {})
                _expect(isinstance(nodes, dict), file, f"{where}.geometry_config.nodes", "expected an object")
                edges = config.get("edges", [])
                _expect(isinstance(edges, list) and all(
                    isinstance(e, dict) and isinstance(e.get("src"), str) and isinstance(e.get("dst"), str)
                    for e in edges), file, f"{where}.geometry_config.edges",
                    'expected a list of {"src": node, "dst": node}')
            self.classes[title] = cls
        tags = raw.get("tags", [])
        _expect(isinstance(tags, list), file, "tags", "expected a list")
        for i, tag in enumerate(tags):
            where = f"tags[{i}]"
            _expect(isinstance(tag, dict), file, where, "expected an object")
            name = tag.get("name")
            _expect(isinstance(name, str) and name != "", file, f"{where}.name", "expected a non-empty string")
            _expect(name not in self.tags, file, f"{where}.name", f"duplicate tag name {name!r}")
            vtype = tag.get("value_type")
            _expect(vtype in TAG_TYPES, file, f"{where}.value_type",
                    f"expected one of {', '.join(TAG_TYPES)}, got {shown(vtype)}")
            if vtype == "oneof_string":
                values = tag.get("values")
                _expect(isinstance(values, list) and bool(values) and all(isinstance(v, str) for v in values),
                        file, f"{where}.values", "expected a non-empty list of strings")
            self.tags[name] = tag

    def check_annotation(self, ann: Any, file: str, width: int | None = None, height: int | None = None) -> None:
        """Validate an image annotation against this meta and (if given) the image size."""
        _check_size(ann, file, width, height, "image")
        self._check_tags(ann.get("tags", []), file, "tags")
        objects = ann.get("objects", [])
        _expect(isinstance(objects, list), file, "objects", "expected a list")
        for i, obj in enumerate(objects):
            self._check_object(obj, file, f"objects[{i}]")

    def check_item_annotation(self, ann: Any, file: str, width: int | None = None, height: int | None = None,
                              info: MediaInfo | None = None, masks: list[str] | None = None) -> None:
        """Validate an annotation as this project's type reads it (an image's, a video's...),
        against the media's size when given, and against what its header says (`info`: a
        video's frames, a cloud's points, a volume's dimensions) when given; `masks`: the names
        of a volume's mask files."""
        if self.project_type == "videos":
            self.check_video_annotation(ann, file, width, height, info.exact_frames if isinstance(info, VideoInfo)
                                        else None)
        elif self.project_type == "point_clouds":
            self.check_pointcloud_annotation(ann, file, info.points if isinstance(info, PointcloudInfo) else None)
        elif self.project_type == "point_cloud_episodes":  # the episode's annotation.json, its frames as it says
            count = ann.get("framesCount") if isinstance(ann, dict) else None
            self.check_episode_annotation(ann, file, count if isinstance(count, int) else 0)
        elif self.project_type == "volumes":
            self.check_volume_annotation(ann, file, info.dimensions if isinstance(info, VolumeInfo) else None, masks)
        else:
            self.check_annotation(ann, file, width, height)

    def check_video_annotation(self, ann: Any, file: str, width: int | None = None,
                               height: int | None = None, frames: int | None = None) -> None:
        """Validate a video annotation: size, framesCount (the video's, when `frames` is
        given), tags and their frame ranges, objects (class, key, tags) and the figures of
        each frame (a frame of the video, an object's key, a geometry of its class)."""
        _check_size(ann, file, width, height, "video")
        count = ann.get("framesCount")
        _expect(_is_int(count) and count >= 0, file, "framesCount", "expected a count of frames")
        if frames is not None and count != frames:
            raise InvalidInput(file, f"annotation says {count} frames but the video has {frames}", "framesCount")
        self._check_video_tags(ann.get("tags", []), file, "tags", count)
        classes = self._objects(ann.get("objects", []), file,
                                lambda tags, where: self._check_video_tags(tags, file, where, count))
        for where, frame in _frames(ann, file, count, "video"):
            self._check_2d_figures(frame.get("figures", []), classes, file, f"{where}.figures")

    def check_pointcloud_annotation(self, ann: Any, file: str, points: int | None = None) -> None:
        """Validate a point cloud annotation: tags, objects (class, key, tags) and figures (an
        object's key, a 3D geometry of its class: a cuboid's position, rotation and dimensions,
        a point_cloud's indices of the cloud's `points`)."""
        _expect(isinstance(ann, dict), file, "$", "expected a JSON object")
        self._check_tags(ann.get("tags", []), file, "tags")
        classes = self._objects(ann.get("objects", []), file, lambda tags, where: self._check_tags(tags, file, where))
        _check_3d_figures(ann.get("figures", []), classes, file, "figures", points)

    def check_episode_annotation(self, ann: Any, file: str, frames: int) -> None:
        """Validate a point-cloud episode's annotation.json against its `frames` point clouds:
        framesCount (theirs, when given), tags and object tags with frame ranges within the
        episode, objects (class, key), and the 3D figures of each frame (a frame of the
        episode, an object's key, a geometry of its class)."""
        _expect(isinstance(ann, dict), file, "$", "expected a JSON object")
        count = ann.get("framesCount", frames)
        _expect(_is_int(count), file, "framesCount", "expected a count of frames")
        if count != frames:
            raise InvalidInput(file, f"annotation says {count} frames but the episode has {frames} point clouds",
                               "framesCount")
        self._check_video_tags(ann.get("tags", []), file, "tags", frames)
        classes = self._objects(ann.get("objects", []), file,
                                lambda tags, where: self._check_video_tags(tags, file, where, frames))
        for where, frame in _frames(ann, file, frames, "episode"):
            _check_3d_figures(frame.get("figures", []), classes, file, f"{where}.figures", None)

    def check_volume_annotation(self, ann: Any, file: str, dimensions: tuple[int, ...] | list[int] | None = None,
                                masks: list[str] | None = None) -> None:
        """Validate a volume annotation: volumeMeta.dimensionsIJK (the volume's, when
        `dimensions` is given), tags, objects (class, key, tags), the figures of each plane's
        slices (a slice within the volume on that plane, an object's key, a 2D geometry of its
        class) and the spatial figures (an object's key, a mask_3d class). `masks`: the names
        of the item's mask files, each `<figure key>.nrrd` of a spatial figure."""
        _expect(isinstance(ann, dict), file, "$", "expected a JSON object")
        volume_meta = ann.get("volumeMeta")
        dims = volume_meta.get("dimensionsIJK") if isinstance(volume_meta, dict) else None
        if not (isinstance(dims, dict) and all(_is_int(dims.get(a)) and dims[a] > 0 for a in "xyz")):
            raise InvalidInput(file, 'expected {"x": int, "y": int, "z": int}', "volumeMeta.dimensionsIJK")
        said = tuple(dims[a] for a in "xyz")
        if dimensions is not None and said != tuple(dimensions):
            raise InvalidInput(file, f"annotation says {shape_text(said)} voxels but the volume is "
                                     f"{shape_text(dimensions)}", "volumeMeta.dimensionsIJK")
        self._check_tags(ann.get("tags", []), file, "tags")
        classes = self._objects(ann.get("objects", []), file, lambda tags, where: self._check_tags(tags, file, where))
        self._check_planes(ann.get("planes", []), said, classes, file)
        spatial = ann.get("spatialFigures", [])
        _expect(isinstance(spatial, list), file, "spatialFigures", "expected a list")
        keys = set()
        for j, fig in enumerate(spatial):
            w = f"spatialFigures[{j}]"
            cls, _geometry = _figure(fig, classes, file, w)
            _expect(fig.get("geometryType") == MASK_3D, file, f"{w}.geometryType",
                    f"expected {MASK_3D}, got {shown(fig.get('geometryType'))}")
            _expect(cls["shape"] in ("any", MASK_3D), file, f"{w}.geometryType",
                    f"class {cls['title']!r} has shape {cls['shape']}, figure has {MASK_3D}")
            keys.add(fig.get("key"))
        for name in masks or ():
            key = name.removesuffix(".nrrd")
            _expect(key in keys, file, "spatialFigures",
                    f"mask {name} names figure {key!r}, which is not among the spatial figures")

    def _check_planes(self, planes: Any, dimensions: tuple[int, ...], classes: dict[str, dict[str, Any]],
                      file: str) -> None:
        """A volume's planes: each slice within the volume's `dimensions` on that plane, each
        of its figures an object's (`classes`: key -> class) with a 2D geometry of its class."""
        _expect(isinstance(planes, list), file, "planes", "expected a list")
        for i, plane in enumerate(planes):
            where = f"planes[{i}]"
            _expect(isinstance(plane, dict) and plane.get("name") in PLANES, file, f"{where}.name",
                    f"expected one of {', '.join(PLANES)}")
            count = dimensions[PLANES[plane["name"]]]
            slices = plane.get("slices", [])
            _expect(isinstance(slices, list), file, f"{where}.slices", "expected a list")
            for j, piece in enumerate(slices):
                w = f"{where}.slices[{j}]"
                _expect(isinstance(piece, dict) and _is_int(piece.get("index")), file, f"{w}.index",
                        "expected an integer")
                _expect(0 <= piece["index"] < count, file, f"{w}.index",
                        f"slice {piece['index']} is past the volume's {count} {plane['name']} slices "
                        f"(0 to {count - 1})")
                self._check_2d_figures(piece.get("figures", []), classes, file, f"{w}.figures")

    def _check_2d_figures(self, figures: Any, classes: dict[str, dict[str, Any]], file: str, where: str) -> None:
        """The figures of a video frame or a volume slice: each an object's (`classes`: key ->
        class) with a 2D geometry of its class."""
        _expect(isinstance(figures, list), file, where, "expected a list")
        for j, fig in enumerate(figures):
            w = f"{where}[{j}]"
            cls, geometry = _figure(fig, classes, file, w)
            self._check_geometry(geometry, fig.get("geometryType"), cls, file, w, f"{w}.geometry")

    def _objects(self, objects: Any, file: str, check_tags: Any) -> dict[str, dict[str, Any]]:
        """The objects of a video, point cloud or volume annotation (key, class, tags checked by
        `check_tags(tags, where)`), as object key -> its class."""
        classes: dict[str, dict[str, Any]] = {}
        _expect(isinstance(objects, list), file, "objects", "expected a list")
        for i, obj in enumerate(objects):
            where = f"objects[{i}]"
            _expect(isinstance(obj, dict) and isinstance(obj.get("key"), str), file, f"{where}.key",
                    "expected a string")
            _expect(obj["key"] not in classes, file, f"{where}.key", f"duplicate object key {obj['key']!r}")
            _expect(_known(obj.get("classTitle"), self.classes), file, f"{where}.classTitle",
                    f"unknown class {shown(obj.get('classTitle'))} (not in meta.json)")
            check_tags(obj.get("tags", []), f"{where}.tags")
            classes[obj["key"]] = self.classes[obj["classTitle"]]
        return classes

    def _check_video_tags(self, tags: Any, file: str, where: str, frames: int) -> None:
        """Tags of a video or of one of its objects: as an image's, each with an optional
        frameRange [first, last] within the video."""
        self._check_tags(tags, file, where)
        for i, tag in enumerate(tags):
            span = tag.get("frameRange")
            if span is None:
                continue
            w = f"{where}[{i}].frameRange"
            _expect(isinstance(span, list) and len(span) == 2 and all(_is_int(v) for v in span), file, w,
                    "expected [first, last] frame indices")
            _expect(0 <= span[0] <= span[1] < frames, file, w,
                    f"frames {span[0]} to {span[1]} are not within the video's (0 to {frames - 1})")

    def _check_tags(self, tags: Any, file: str, where: str) -> None:
        _expect(isinstance(tags, list), file, where, "expected a list")
        for i, tag in enumerate(tags):
            w = f"{where}[{i}]"
            _expect(isinstance(tag, dict), file, w, "expected an object")
            name = tag.get("name")
            _expect(_known(name, self.tags), file, f"{w}.name", f"unknown tag {shown(name)} (not in meta.json)")
            vtype = self.tags[name]["value_type"]
            value = tag.get("value")
            ok = {"none": value is None,
                  "any_number": _is_num(value),
                  "any_string": isinstance(value, str),
                  "oneof_string": value in self.tags[name].get("values", [])}[vtype]
            _expect(ok, file, f"{w}.value", f"value {shown(value)} does not fit tag {name!r} of type {vtype}")

    def _check_object(self, obj: Any, file: str, where: str) -> None:
        # Messages and field paths are formatted only on failure: this runs for every object.
        _expect(isinstance(obj, dict), file, where, "expected an object")
        title = obj.get("classTitle")
        if not _known(title, self.classes):
            raise InvalidInput(file, f"unknown class {shown(title)} (not in meta.json)", f"{where}.classTitle")
        cls = self.classes[title]
        tags = obj.get("tags", [])
        if not isinstance(tags, list) or tags:
            self._check_tags(tags, file, f"{where}.tags")
        self._check_geometry(obj, obj.get("geometryType", cls["shape"]), cls, file, where, where)

    def _check_geometry(self, holder: dict[str, Any], gtype: Any, cls: dict[str, Any], file: str, where: str,
                        at: str) -> None:
        """The geometry of a shape of class `cls` (at path `where`), of type `gtype`, whose
        fields (points, bitmap, nodes) are in `holder` (at path `at`): an image object, or a
        video figure's `geometry`."""
        if gtype not in SHAPES or gtype == "any":
            raise InvalidInput(file, f"unknown geometry {shown(gtype)}", f"{where}.geometryType")
        if gtype in SHAPES_3D:
            raise InvalidInput(file, f"{gtype} is a geometry of point clouds, not of images and videos",
                               f"{where}.geometryType")
        if gtype == MASK_3D:
            raise InvalidInput(file, f"{gtype} is a spatial figure of volumes, not a geometry of images, videos "
                                     "or slices", f"{where}.geometryType")
        if cls["shape"] not in ("any", gtype):
            raise InvalidInput(file, f"class {cls['title']!r} has shape {cls['shape']}, object has {gtype}",
                               f"{where}.geometryType")
        if gtype == "bitmap":
            _check_bitmap(holder.get("bitmap"), file, f"{at}.bitmap")
        elif gtype == "graph":
            known = cls.get("geometry_config", {}).get("nodes", {})
            _check_graph(holder.get("nodes"), known, file, f"{at}.nodes")
        else:
            _check_points(holder.get("points"), gtype, file, at)


def _figure(fig: Any, classes: dict[str, dict[str, Any]], file: str, where: str) -> tuple[dict[str, Any], Any]:
    """(class, geometry) of a video's or point cloud's figure: an object's, by its key."""
    _expect(isinstance(fig, dict) and _known(fig.get("objectKey"), classes), file, f"{where}.objectKey",
            f"unknown object key {shown(fig.get('objectKey') if isinstance(fig, dict) else fig)} (not in objects)")
    geometry = fig.get("geometry")
    _expect(isinstance(geometry, dict), file, f"{where}.geometry", "expected an object")
    return classes[fig["objectKey"]], geometry


def _frames(ann: dict[str, Any], file: str, count: int, media: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, frame) of each of a video's or an episode's annotated frames, whose index is one
    of its `count` frames."""
    frame_list = ann.get("frames", [])
    _expect(isinstance(frame_list, list), file, "frames", "expected a list")
    for i, frame in enumerate(frame_list):
        where = f"frames[{i}]"
        _expect(isinstance(frame, dict) and _is_int(frame.get("index")), file, f"{where}.index",
                "expected an integer")
        _expect(0 <= frame["index"] < count, file, f"{where}.index",
                f"frame {frame['index']} is past the {media}'s end (frames 0 to {count - 1})")
        yield where, frame


def _check_3d_figures(figures: Any, classes: dict[str, dict[str, Any]], file: str, where: str,
                      points: int | None) -> None:
    """The figures of a point cloud (or of one frame of an episode) at path `where`: each an
    object's, by its key, with a 3D geometry of its class (a cuboid's position, rotation and
    dimensions, a point_cloud's indices of the cloud's `points`, when known)."""
    _expect(isinstance(figures, list), file, where, "expected a list")
    for j, fig in enumerate(figures):
        w = f"{where}[{j}]"
        cls, geometry = _figure(fig, classes, file, w)
        gtype = fig.get("geometryType")
        _expect(gtype in SHAPES_3D, file, f"{w}.geometryType",
                f"expected one of {', '.join(SHAPES_3D)}, got {shown(gtype)}")
        _expect(cls["shape"] in ("any", gtype), file, f"{w}.geometryType",
                f"class {cls['title']!r} has shape {cls['shape']}, figure has {gtype}")
        if gtype == "cuboid_3d":
            for part in ("position", "rotation", "dimensions"):
                vec = geometry.get(part)
                _expect(isinstance(vec, dict) and all(_is_num(vec.get(axis)) for axis in "xyz"), file,
                        f"{w}.geometry.{part}", 'expected {"x": number, "y": number, "z": number}')
        else:
            indices = geometry.get("indices")
            _expect(isinstance(indices, list) and all(_is_int(i) and 0 <= i < (points or 1 << 62)
                                                      for i in indices), file, f"{w}.geometry.indices",
                    "expected a list of point indices" + (f" below {points}" if points is not None else ""))


def _check_size(ann: Any, file: str, width: int | None, height: int | None, media: str) -> None:
    """An annotation object whose `size` is the media's (when the media's size is given)."""
    _expect(isinstance(ann, dict), file, "$", "expected a JSON object")
    size = ann.get("size")
    _expect(isinstance(size, dict) and _is_int(size.get("height")) and _is_int(size.get("width")),
            file, "size", "expected {\"height\": int, \"width\": int}")
    if width is not None and height is not None:
        _expect((size["width"], size["height"]) == (width, height), file, "size",
                f"annotation says {size['width']}x{size['height']} but the {media} is {width}x{height}")


_POINT_COUNTS = {"rectangle": (2, 2), "point": (1, 1), "line": (2, None), "polygon": (3, None)}


MAX_COORD = 1 << 31  # pixels: beyond any image (and every tool's int32), so surely an error


def _check_xy(pt: Any, file: str, where: str) -> None:
    _expect(isinstance(pt, list) and len(pt) == 2 and all(_is_num(v) for v in pt), file, where,
            "expected [x, y] numbers")
    _expect(all(math.isfinite(v) and abs(v) <= MAX_COORD for v in pt), file, where,
            f"coordinates must be finite and within ±{MAX_COORD}, got {pt}")


_PLAIN = (int, float)  # exactly these types: a subclass (bool, numpy's float64) takes the slow path


def _plain_points(pts: list[Any]) -> bool:
    """The usual case at a glance: every point a list of two ints or floats within
    ±MAX_COORD (NaN and infinities fail the comparison). False sends the points to
    `_check_xy`, one by one, which accepts what this does and says what is wrong."""
    for pt in pts:
        if type(pt) is not list or len(pt) != 2:
            return False
        x, y = pt
        if type(x) not in _PLAIN or type(y) not in _PLAIN or \
                not (-MAX_COORD <= x <= MAX_COORD and -MAX_COORD <= y <= MAX_COORD):
            return False
    return True


def _check_ring(pts: list[Any], file: str, where: str) -> None:
    """Every point of a contour, the first bad one named."""
    if not _plain_points(pts):
        for j, pt in enumerate(pts):
            _check_xy(pt, file, f"{where}[{j}]")


def _check_points(points: Any, gtype: str, file: str, obj: str) -> None:
    """The `points` of object `obj` (its path in the annotation), of geometry `gtype`."""
    where = f"{obj}.points"
    _expect(isinstance(points, dict), file, where, "expected {\"exterior\": [...], \"interior\": [...]}")
    low, high = _POINT_COUNTS[gtype]
    ext = points.get("exterior")
    _expect(isinstance(ext, list), file, f"{where}.exterior", "expected a list of points")
    n = len(ext)
    if high == low and n != low:
        raise InvalidInput(file, f"{gtype} needs exactly {low} point{'s' * (low > 1)}, got {n}", f"{where}.exterior")
    if n < low:
        raise InvalidInput(file, f"{gtype} needs at least {low} points, got {n}", f"{where}.exterior")
    _check_ring(ext, file, f"{where}.exterior")
    interior = points.get("interior", [])
    if not isinstance(interior, list) or interior:
        _check_interior(interior, gtype, file, where)


def _check_interior(interior: Any, gtype: str, file: str, where: str) -> None:
    """The holes of a polygon (no other geometry has any)."""
    _expect(isinstance(interior, list), file, f"{where}.interior", "expected a list of point lists")
    if gtype != "polygon":
        _expect(not interior, file, f"{where}.interior", f"{gtype} cannot have interior contours")
    for j, ring in enumerate(interior):
        _expect(isinstance(ring, list) and len(ring) >= 3, file, f"{where}.interior[{j}]",
                "a hole needs at least 3 points")
        _check_ring(ring, file, f"{where}.interior[{j}]")


def _check_bitmap(bitmap: Any, file: str, where: str) -> None:
    _expect(isinstance(bitmap, dict), file, where, "expected {\"data\": base64, \"origin\": [x, y]}")
    origin = bitmap.get("origin")
    _expect(isinstance(origin, list) and len(origin) == 2 and all(_is_int(v) for v in origin),
            file, f"{where}.origin", "expected [x, y] integers")
    data = bitmap.get("data")
    _expect(isinstance(data, str), file, f"{where}.data", "expected a base64 string")
    png = inflate_bitmap(data, f"{file}: {where}.data")
    _expect(png.startswith(_PNG_MAGIC) and len(png) >= 24, file, f"{where}.data", "decoded bitmap is not a PNG")
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    check_pixels(width, height, f"{file}: {where}.data")


MAX_BITMAP_BYTES = 256 << 20  # a bitmap's PNG, inflated: far beyond any mask (a zlib bomb is not)


def inflate_bitmap(data: str, label: str) -> bytes:
    """The PNG inside a Supervisely bitmap's `data` (base64 of zlib), inflated to at most
    MAX_BITMAP_BYTES; anything else is one InvalidInput."""
    try:
        inflater = zlib.decompressobj()
        png = inflater.decompress(base64.b64decode(data, validate=True), MAX_BITMAP_BYTES)
    except (binascii.Error, zlib.error, ValueError) as e:
        raise InvalidInput(label, f"not base64 of zlib-compressed PNG ({e})") from None
    if inflater.unconsumed_tail:
        raise InvalidInput(label, f"bitmap inflates past {MAX_BITMAP_BYTES >> 20} MB")
    return png


def _check_graph(nodes: Any, known: dict[str, Any], file: str, where: str) -> None:
    _expect(isinstance(nodes, dict) and bool(nodes), file, where, "expected a non-empty object of nodes")
    for node_id, node in nodes.items():
        w = f"{where}.{node_id}"
        _expect(not known or _known(node_id, known), file, w,
                f"node {shown(node_id)} is not in the class geometry_config")
        _expect(isinstance(node, dict), file, w, "expected {\"loc\": [x, y]}")
        _check_xy(node.get("loc"), file, f"{w}.loc")
