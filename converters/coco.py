"""COCO: `annotations/instances_<split>.json` (or `person_keypoints_<split>.json`, or one
JSON file) with its images, into one dataset per annotation file; and back.

Import: bbox -> rectangle (an annotation without segmentation), polygon segmentation ->
one polygon object per part, RLE and compressed RLE -> bitmap, `iscrowd` -> the tag
`iscrowd`, keypoints -> a graph of the class `<category>_keypoints` whose nodes and
edges come from the category's `keypoints` and `skeleton`. A category whose
annotations use more than one geometry gets a class of shape `any`. Coordinates are
clipped to the image and counted. Annotations are built by the import's workers with
the real image size (a size in the JSON that differs from the file's is an error).
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from cas.errors import InvalidInput, shown
from cas.ingest.session import ImportSession
from cas.ingest.workers import SafePoints, exit_with, forkserver, stopped_on_error
from cas.model.annotation import loads
from cas.model.media import check_pixels
from cas.records import ItemRecord
from cas.store import Store

from . import geometry as geo
from . import text, walk
from .contract import Detection, dataset_names, fits, no
from .output import Progress, UniqueNames, no_progress, writes_folder
from .renames import Renames

EXPORT_PROCESS_THRESHOLD = 2000  # items before worker processes pay for their start-up
EXPORT_CHUNK = 250
PREFIXES = ("instances_", "person_keypoints_", "keypoints_", "panoptic_")
CROWD_TAG = {"name": "iscrowd", "value_type": "none"}


# -- finding the files ---------------------------------------------------------------------------
READS = ("boxes", "polygons", "masks", "keypoints", "tags")
WRITES = ("boxes", "polygons", "masks", "keypoints", "tags")
LAYOUTS = ("COCO instances and person_keypoints JSON (COCO 2017, CVAT, FiftyOne, Datumaro, "
           "the Supervisely SDK), images beside them")
LOOKS_FOR = "COCO annotation JSON with an 'images' list (annotations/*.json, *.json, labels.json)"
# Annotation file stems that name no split: the dataset is named by the export's folder
# (Supervisely SDK: <dataset>/annotations/coco_instances.json; FiftyOne: labels.json).
UNNAMED = ("instances", "coco_instances", "labels", "annotations", "coco")


def annotation_files(src: Path) -> list[Path]:
    """COCO JSON files of `src` (a file, or a folder with them in `annotations/` or at the
    top), with files of other tasks among them."""
    if src.is_file():
        return [src]
    folder = src / "annotations" if (src / "annotations").is_dir() else src
    found = (Path(e.path) for e in walk.files(str(folder)) if e.name.endswith(".json"))
    return sorted(p for p in found if _looks_like_coco(p))


def _looks_like_coco(path: Path) -> bool:
    head = text.head(path, 1 << 20)
    return b'"images"' in head and (b'"annotations"' in head or b'"categories"' in head) or \
        path.name.startswith(PREFIXES + tuple(TASK_OF_PREFIX)) and b'"images"' in head


def detect(src: Path) -> Detection:
    if src.is_file():
        if src.suffix == ".json" and _looks_like_coco(src):
            return fits(f"{src.name} has \"images\" and \"annotations\"")
    elif src.is_dir() and not (src / "meta.json").exists():
        found = annotation_files(src)
        if found:
            return fits(f"{found[0].relative_to(src)} has \"images\" and \"annotations\"")
    return no('no JSON with "images" and "annotations"')


def split_name(path: Path) -> str:
    stem = path.stem
    for prefix in PREFIXES:
        if stem.startswith(prefix):
            return stem[len(prefix):] or stem
    if stem in UNNAMED:
        folder = path.parent.parent if path.parent.name == "annotations" else path.parent
        return folder.name or stem
    return stem


# Files of other COCO tasks, beside the instances: skipped and counted (captions, panoptic
# segments, stuff segmentation, Datumaro's image_info and image-level labels).
TASK_OF_PREFIX = {"captions_": "captions", "panoptic_": "panoptic", "image_info_": "image_info",
                  "labels_": "labels", "stuff_": "stuff"}


def other_task(path: Path, data: dict[str, Any]) -> str | None:
    """What a COCO file holds when it is not instances or keypoints (None when it is)."""
    for prefix, task in TASK_OF_PREFIX.items():
        if path.name.startswith(prefix):
            return task
    anns = data.get("annotations")
    if anns is None and not data.get("categories"):
        return "image_info"
    head = anns[:100] if isinstance(anns, list) and all(isinstance(a, dict) for a in anns[:100]) else []
    if any("segments_info" in a for a in head):
        return "panoptic"
    if head and not any("category_id" in a for a in head) and any("caption" in a for a in head):
        return "captions"
    return None


def load(path: Path) -> dict[str, Any]:
    try:
        data = loads(path.read_bytes(), path.name)
    except OSError as e:
        raise InvalidInput(path.name, f"not a readable COCO JSON ({e.strerror})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InvalidInput(path.name, "expected an object with an 'images' list", "images")
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise InvalidInput(path.name, "expected a list", key)
    return data


def count(src: Path) -> int:
    return sum(len(data["images"]) for _split, group in _instance_groups(src)[0] for _p, data in group[:1])


def _instance_groups(src: Path) -> tuple[list[tuple[str, list[tuple[Path, dict[str, Any]]]]], Counter[str]]:
    """The instance and keypoint files of `src` grouped by split (COCO 2017 has instances
    and person_keypoints of the same images), and the files of other tasks, counted."""
    files = annotation_files(src)
    if not files:
        raise InvalidInput(str(src), f"no {LOOKS_FOR}")
    groups: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    skipped: Counter[str] = Counter()
    for path in files:
        data = load(path)
        task = other_task(path, data)
        if task is not None:
            skipped[f"COCO {task} files skipped (not instances or keypoints)"] += 1
            continue
        groups.setdefault(split_name(path), []).append((path, data))
    if not groups:
        raise InvalidInput(str(src), f"no COCO instances or keypoints among {len(files)} JSON files "
                                     f"({', '.join(p.name for p in files[:5])})")
    return sorted(groups.items()), skipped


def source_root(src: Path) -> Path:
    """The folder an import of `src` reads: for an annotation file in `annotations/`, the
    folder above (where COCO keeps the images)."""
    if src.is_dir():
        return src
    return src.parent.parent if src.parent.name == "annotations" else src.parent


def image_dirs(src: Path, ann_file: Path, split: str) -> list[Path]:
    """The folders where COCO exports keep the images of `ann_file`, in the order looked in."""
    root = source_root(src)
    top = ann_file.parent.parent if ann_file.parent.name == "annotations" else ann_file.parent
    return [root / "images" / split, root / split, root / "images", root / "data", root, top / split,
            top / "images" / split, top / "images", top / "data", ann_file.parent]


def find_image(dirs: list[Path], ann_file: Path, file_name: str, where: str) -> Path | None:
    """The image `file_name` names, in the first of `dirs` (see `image_dirs`) that has it; a
    name that leads outside the source is refused (InvalidInput)."""
    for base in dirs:
        candidate = walk.contained(base, file_name, ann_file.name, where)
        if candidate.is_file():
            return candidate
    return None


# -- import --------------------------------------------------------------------------------------
def _num_list(v: Any, n: int | None = None) -> TypeGuard[list[float]]:
    return isinstance(v, list) and (n is None or len(v) == n) and all(map(geo.is_number, v))


def _segmentation(ann: dict[str, Any]) -> Any:
    """An annotation's segmentation, None when it is only its box's polygon (as cas and
    other tools write for boxes, so every annotation has one): that stays a rectangle."""
    seg = ann.get("segmentation")
    box = ann.get("bbox")
    if isinstance(seg, list) and len(seg) == 1 and _num_list(seg[0], 8) and _num_list(box, 4) and _is_box(seg[0], box):
        return None
    return seg


def _is_box(ring: list[float], box: list[float]) -> bool:
    """Whether four points (x, y, ...) are the corners of `box` ([x, y, w, h])."""
    x, y, w, h = box
    xs, ys = ring[0::2], ring[1::2]
    left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
    return all(abs(a - b) < 0.01 for a, b in ((left, x), (right, x + w), (top, y), (bottom, y + h))) \
        and all(v in (left, right) for v in xs) and all(v in (top, bottom) for v in ys)


def _is_id(v: Any) -> bool:
    """An image or category id: an integer or a string (never a list, which cannot key a table)."""
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def read(src: Path, session: ImportSession, dataset: str | None = None, link: bool = False) -> dict[str, int]:
    groups, counts = _instance_groups(src)
    loaded = [pair for _split, group in groups for pair in group]
    classes, class_of = _classes(loaded)
    for entry in class_of.values():
        if entry.get("graph", entry["name"]) != entry["name"]:
            counts[f"keypoints of category {entry['name']!r} imported as class {entry['graph']!r} "
                   f"(its boxes or masks keep {entry['name']!r})"] += 1
    session.set_meta({"classes": classes, "tags": [CROWD_TAG], "projectType": "images"}, loaded[0][0].name)
    if not link:  # every image is a file to read, with an annotation to build
        session.expect_items(sum(len(data["images"]) for _path, data in loaded))
    targets = dataset_names(dataset, (split for split, _group in groups), src.name)
    for split, group in groups:
        target = targets[split]
        session.add_dataset(target)
        by_image = _group(group, class_of, session)
        seen: set[Any] = set()
        for path, data in group:
            dirs = image_dirs(src, path, split)
            for i, image in enumerate(data["images"]):
                if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
                    session.reject(InvalidInput(path.name, "expected an object with a file_name", f"images[{i}]"))
                    continue
                image_id = image.get("id") if _is_id(image.get("id")) else None
                if image_id is not None and image_id in seen:
                    continue  # the same image in the split's keypoints file
                seen.add(image_id)
                anns = by_image.pop(image_id, []) if image_id is not None else []
                _add_image(session, dirs, path, split, target, i, image, anns, class_of, link, counts)
        counts["annotations without an image"] += sum(len(v) for v in by_image.values())
    return dict(counts)


def _add_image(session: ImportSession, dirs: list[Path], path: Path, split: str, target: str, i: int,
               image: dict[str, Any], anns: list[tuple[str, int, dict[str, Any]]],
               class_of: dict[int, dict[str, Any]], link: bool, counts: Counter[str]) -> None:
    """Queue `images[i]` of `path` with its annotations: a local image, or with `link` its URL.
    The builder carries only the categories its annotations use (it is pickled per item)."""
    name = os.path.basename(image["file_name"])
    used = {ann["category_id"]: class_of[ann["category_id"]] for _f, _i, ann in anns}
    builder = functools.partial(build_annotation, path.name, i, image.get("width"), image.get("height"),
                                anns, used)
    if link:
        url = image.get("coco_url") or image.get("flickr_url")
        if not url or not _num_list([image.get("width"), image.get("height")]):
            session.reject(InvalidInput(path.name, "--link needs coco_url, width and height", f"images[{i}]"))
            return
        ann, notes = builder(int(image["width"]), int(image["height"]))
        counts.update(notes)
        session.add_link(target, name, url, ann=ann, width=int(image["width"]), height=int(image["height"]),
                         label=f"{path.name}: images[{i}]")
        return
    try:
        found = find_image(dirs, path, image["file_name"], f"images[{i}].file_name")
    except InvalidInput as e:
        session.reject(e)
        return
    if found is None:
        session.reject(InvalidInput(path.name, f"image {image['file_name']!r} not found next to the annotations "
                                               "(images/<split>/, <split>/, images/, data/)", f"images[{i}].file_name"))
        return
    session.add_item(target, name, str(found), ann=builder, label=f"{split}/{image['file_name']}")


def _classes(loaded: list[tuple[Path, dict[str, Any]]]) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Meta classes of every category, and category id -> what building objects needs."""
    kinds: dict[str, set[str]] = defaultdict(set)
    cats: dict[int, dict[str, Any]] = {}
    for path, data in loaded:
        for i, cat in enumerate(data.get("categories", [])):
            if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
                raise InvalidInput(path.name, "expected {\"id\": int, \"name\": str, ...}", f"categories[{i}]")
            skeleton = cat.get("skeleton") or []
            if not isinstance(skeleton, list) or not all(_num_list(e, 2) for e in skeleton):
                raise InvalidInput(path.name, "expected a list of [node, node] pairs", f"categories[{i}].skeleton")
            if cat["id"] not in cats or cat.get("keypoints") and not cats[cat["id"]].get("keypoints"):
                cats[cat["id"]] = cat  # person_keypoints' person: the one with keypoints
        for ann in data.get("annotations", []):
            if isinstance(ann, dict) and _is_id(ann.get("category_id")) and ann["category_id"] in cats:
                name = cats[ann["category_id"]]["name"]
                seg = _segmentation(ann)
                if seg or not ann.get("keypoints"):  # a keypoint annotation without one is only a graph
                    kinds[name].add("bitmap" if isinstance(seg, dict) else "polygon" if seg else "rectangle")
    classes: list[dict[str, Any]] = []
    class_of: dict[int, dict[str, Any]] = {}
    titles = UniqueNames()
    titles.taken.update(cat["name"] for cat in cats.values())
    for cid, cat in sorted(cats.items()):
        name = cat["name"]
        entry: dict[str, Any] = {"name": name}
        points = cat.get("keypoints") if isinstance(cat.get("keypoints"), list) else None
        graph = bool(points)
        shaped = bool(kinds.get(name))
        if not graph or shaped:  # a keypoint category with no other shape is its graph only
            shapes = set(kinds.get(name) or {"rectangle"})
            classes.append(geo.meta_class(name, shapes.pop() if len(shapes) == 1 else "any", len(classes)))
        if points:
            nodes = {str(k): {"label": str(p), "loc": [0, 0], "color": geo.color(k)} for k, p in enumerate(points)}
            edges = [{"src": str(a - 1), "dst": str(b - 1), "color": "#00FF00"}
                     for a, b in cat.get("skeleton") or [] if 1 <= a <= len(points) and 1 <= b <= len(points)]
            # the graph keeps the category's name unless boxes or masks of the category hold it
            entry["graph"] = titles(f"{name}_keypoints") if shaped else name
            entry["n_keypoints"] = len(points)
            classes.append(geo.meta_class(entry["graph"], "graph", len(classes), {"nodes": nodes, "edges": edges}))
        class_of[cid] = entry
    return classes, class_of


def _group(group: list[tuple[Path, dict[str, Any]]], class_of: dict[int, dict[str, Any]],
           session: ImportSession) -> dict[Any, list[tuple[str, int, dict[str, Any]]]]:
    """image id -> (file, index, annotation) over a split's files, after the checks whose
    errors need the index. An annotation id in two files (instances and person_keypoints)
    is taken once: the one with keypoints."""
    by_image: dict[Any, dict[Any, tuple[str, int, dict[str, Any]]]] = defaultdict(dict)
    for path, data in group:
        file = path.name
        for i, ann in enumerate(data.get("annotations", [])):
            where = f"annotations[{i}]"
            try:
                if not isinstance(ann, dict):
                    raise InvalidInput(file, "expected an object", where)
                if not _is_id(ann.get("image_id")):
                    raise InvalidInput(file, f"expected an image id, got {shown(ann.get('image_id'))}",
                                       f"{where}.image_id")
                if not _is_id(ann.get("category_id")) or ann["category_id"] not in class_of:
                    raise InvalidInput(file, f"unknown category_id {shown(ann.get('category_id'))}",
                                       f"{where}.category_id")
                if "bbox" in ann and not _num_list(ann["bbox"], 4):
                    raise InvalidInput(file, "expected 4 numbers", f"{where}.bbox")
                seg = ann.get("segmentation")
                if seg is not None and not isinstance(seg, (list, dict)):
                    raise InvalidInput(file, "expected a list of polygons or an RLE object", f"{where}.segmentation")
                if "keypoints" in ann and not _num_list(ann["keypoints"]):
                    raise InvalidInput(file, "expected a list of numbers", f"{where}.keypoints")
            except InvalidInput as e:
                session.reject(e, "annotation")  # its image is imported without it
                continue
            # one entry per annotation id of the split: the person_keypoints copy, with keypoints, wins
            key = ann.get("id") if len(group) > 1 and _is_id(ann.get("id")) else (file, i)
            entries = by_image[ann["image_id"]]
            old = entries.get(key)
            if old is None or ann.get("keypoints") and not old[2].get("keypoints"):
                entries[key] = (file, i, ann)
    return {image_id: list(entries.values()) for image_id, entries in by_image.items()}


def build_annotation(file: str, index: int, json_w: Any, json_h: Any, anns: list[tuple[str, int, dict[str, Any]]],
                     class_of: dict[int, dict[str, Any]], width: int, height: int
                     ) -> tuple[dict[str, Any], dict[str, int]]:
    """One image's Supervisely annotation (run by an import worker, with the real image size)."""
    if (json_w, json_h) != (width, height) and json_w is not None:
        raise InvalidInput(file, f"says {json_w}x{json_h} but the image file is {width}x{height}",
                           f"images[{index}].width")
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    objects: list[dict[str, Any]] = []
    for ann_file, i, ann in anns:
        cat = class_of[ann["category_id"]]
        tags = [{"name": "iscrowd", "value": None}] if ann.get("iscrowd") else []
        seg = _segmentation(ann)
        where = f"annotations[{i}].segmentation"
        if isinstance(seg, dict):
            mask = decode_rle(seg, height, width, ann_file, where)
            ob = geo.bitmap(cat["name"], mask, tags)
            if ob is None:
                notes["empty masks skipped"] += 1
            else:
                objects.append(ob)
        elif seg:
            for j, part in enumerate(seg):
                if not _num_list(part) or len(part) % 2:
                    raise InvalidInput(ann_file, "expected a flat list of x, y numbers", f"{where}[{j}]")
                if len(part) < 6:
                    notes["polygons with fewer than 3 points skipped"] += 1
                    continue
                pts = clip.points([[part[k], part[k + 1]] for k in range(0, len(part), 2)], width, height)
                objects.append(geo.polygon(cat["name"], pts, tags=tags))
        elif "bbox" in ann and not ann.get("keypoints"):  # a keypoint annotation's box is its graph's
            x, y, w, h = ann["bbox"]
            (left, top), (right, bottom) = clip.points([[x, y], [x + w, y + h]], width, height)
            objects.append(geo.rectangle(cat["name"], left, top, right, bottom, tags))
        kps = ann.get("keypoints")
        if kps and "graph" in cat:
            nodes = {str(k): [kps[3 * k], kps[3 * k + 1]] for k in range(min(len(kps) // 3, cat["n_keypoints"]))
                     if kps[3 * k + 2] > 0}
            if nodes:
                pts = clip.points(list(nodes.values()), width, height)
                objects.append(geo.graph(cat["graph"], dict(zip(nodes, pts)), tags))
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": objects}, dict(notes)


def _compressed_counts(text: str) -> np.ndarray | None:
    """The runs of a compressed RLE string (COCO's rleFrString, vectorized), or None if it
    is malformed."""
    c = np.frombuffer(text.encode("latin-1", "replace"), np.uint8).astype(np.int64) - 48
    if len(c) == 0 or (c < 0).any() or (c > 63).any() or c[-1] & 0x20:
        return None
    ends = np.flatnonzero((c & 0x20) == 0)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if (lengths > 6).any():  # 30 bits: more than any mask has pixels
        return None
    k = np.arange(len(c)) - np.repeat(starts, lengths)
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    x -= np.where(c[ends] & 0x10, 1 << (5 * lengths), 0)  # sign of the last 5-bit group
    runs = x.copy()
    runs[3::2] = np.cumsum(x[1::2])[1:] if len(x) > 3 else runs[3::2]
    runs[4::2] = np.cumsum(x[2::2])[1:] if len(x) > 4 else runs[4::2]
    return runs


def _uncompressed_counts(counts: list[Any], pixels: int) -> np.ndarray | None:
    """The runs of an uncompressed RLE, or None unless they are non-negative integers adding
    up to `pixels` (summed as Python integers: no overflow)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts) or sum(counts) != pixels:
        return None
    return np.array(counts, np.int64)


def decode_rle(seg: dict[str, Any], height: int, width: int, file: str, where: str) -> np.ndarray:
    """An RLE (`counts` a list: uncompressed; a string: compressed) as a boolean mask, made
    from its checked runs: no pycocotools call per mask (its C code also writes past its
    buffer, aborting the process, when runs do not add up to the mask)."""
    size, counts = seg.get("size"), seg.get("counts")
    if not _num_list(size, 2) or not isinstance(counts, (list, str)):
        raise InvalidInput(file, "expected an RLE {\"size\": [h, w], \"counts\": ...}", where)
    if list(size) != [height, width]:
        raise InvalidInput(file, f"RLE size {size} is not the image's [{height}, {width}]", f"{where}.size")
    check_pixels(width, height, f"{file}: {where}")
    runs = _compressed_counts(counts) if isinstance(counts, str) else _uncompressed_counts(counts, height * width)
    if runs is None or (runs < 0).any() or int(runs.sum()) != height * width:
        raise InvalidInput(file, f"bad RLE (runs must be non-negative and cover {height}x{width} pixels)",
                           f"{where}.counts")
    values = np.zeros(len(runs), bool)
    values[1::2] = True  # runs alternate, 0s first, in column-major order
    return np.repeat(values, runs).reshape(width, height).T


# -- export --------------------------------------------------------------------------------------
@writes_folder
def write(store: Store, project: str, dest: Path, copy_images: bool = True,
          progress: Progress = no_progress) -> dict[str, int]:
    """One `annotations/instances_<dataset>.json` per dataset (nested datasets joined with
    '_'), images under `images/<dataset>/`. Rectangles -> bbox, polygons -> segmentation
    (with holes: RLE), bitmaps -> compressed RLE, graphs -> keypoints of their class's
    category, lines and points -> bbox (counted). Past EXPORT_PROCESS_THRESHOLD items,
    chunks of items are converted by worker processes (mask codecs hold the GIL)."""
    cats, cat_id = _categories(store.ns.project(project).meta)
    counts: Counter[str] = Counter()
    (dest / "annotations").mkdir(parents=True, exist_ok=True)
    ann_id = 1
    total = sum(store.ns.count_items(project, d) for d in store.ns.datasets(project))
    with ExitStack() as stack:
        pool = None
        interrupts = SafePoints()
        if total >= EXPORT_PROCESS_THRESHOLD and (os.cpu_count() or 1) > 1:
            stack.enter_context(interrupts)  # Ctrl-C raises while waiting for a chunk, not in the pool's bookkeeping
            pool = stack.enter_context(stopped_on_error(ProcessPoolExecutor(
                min(os.cpu_count() or 1, 4), mp_context=forkserver(["cas.store"]),
                initializer=_init_exporter, initargs=(str(store.root), os.getpid()))))
        kept, folders = Renames(), UniqueNames()
        for dataset in store.ns.datasets(project):
            flat = folders(dataset.replace("/", "_"))
            kept.dataset(dataset)
            images: list[dict[str, Any]] = []
            annotations: list[dict[str, Any]] = []
            img_dir = dest / "images" / flat
            img_dir.mkdir(parents=True, exist_ok=True)
            chunks = _chunks(store.ns.items(project, dataset), EXPORT_CHUNK)
            jobs = [(dataset, str(img_dir), copy_images, cat_id, chunk) for chunk in chunks]
            futures = [pool.submit(_convert_chunk, job) for job in jobs] if pool is not None else []
            for i, job in enumerate(jobs):
                converted = interrupts.result(futures[i]) if futures else _convert_chunk(job, store)
                for (name, raw), (objects, notes) in zip(job[4], converted):
                    item = ItemRecord.decode(raw)
                    image_id = len(images) + 1
                    images.append({"id": image_id, "file_name": name, "width": item.width, "height": item.height})
                    kept.item(f"images/{flat}/{name}", dataset, name)
                    for coco_ob in objects:
                        coco_ob.update(id=ann_id, image_id=image_id)
                        annotations.append(coco_ob)
                        ann_id += 1
                    counts.update(notes)
                    counts["images"] += 1
                progress(len(job[4]))
            doc = {"info": {"description": f"{project}/{dataset}, exported by cas"}, "licenses": [],
                   "images": images, "annotations": annotations,
                   "categories": [{k: v for k, v in c.items() if k != "_order"} for c in cats]}
            (dest / "annotations" / f"instances_{flat}.json").write_text(json.dumps(doc))
            counts["annotation files"] += 1
            counts["objects"] += len(annotations)
        kept.save(dest)
    return dict(counts)


def _chunks(items: Any, size: int) -> list[list[tuple[str, bytes]]]:
    out: list[list[tuple[str, bytes]]] = [[]]
    for name, item in items:
        if len(out[-1]) >= size:
            out.append([])
        out[-1].append((name, item.encode()))
    return [c for c in out if c]


def _categories(meta: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """COCO categories of a project's classes; a graph class `<c>_keypoints` (as imported)
    gives the keypoints of category `c`."""
    titles = {cls["title"] for cls in meta.get("classes", [])}
    cats: list[dict[str, Any]] = []
    cat_id: dict[str, dict[str, Any]] = {}
    for cls in meta.get("classes", []):
        base = cls["title"].removesuffix("_keypoints")
        if cls["shape"] == "graph" and base != cls["title"] and base in titles:
            continue
        entry: dict[str, Any] = {"id": len(cats) + 1, "name": cls["title"], "supercategory": ""}
        cats.append(entry)
        cat_id[cls["title"]] = entry
    for cls in meta.get("classes", []):
        if cls["shape"] != "graph":
            continue
        entry = cat_id.get(cls["title"]) or cat_id[cls["title"].removesuffix("_keypoints")]
        cat_id[cls["title"]] = entry
        nodes = cls.get("geometry_config", {}).get("nodes", {})
        order = list(nodes)
        entry["keypoints"] = [nodes[k].get("label", k) for k in order]
        entry["skeleton"] = [[order.index(e["src"]) + 1, order.index(e["dst"]) + 1]
                             for e in cls.get("geometry_config", {}).get("edges", [])
                             if e.get("src") in nodes and e.get("dst") in nodes]
        entry["_order"] = order
    return cats, cat_id


_exporter_store: Store | None = None


def _init_exporter(store_root: str, client_pid: int) -> None:
    """In a worker process: its own store (no LMDB environment crosses a fork); it leaves
    when the exporting process does."""
    global _exporter_store
    exit_with(client_pid)
    _exporter_store = Store(store_root)


def _convert_chunk(job: tuple[str, str, bool, dict[str, Any], list[tuple[str, bytes]]],
                   store: Store | None = None) -> list[tuple[list[dict[str, Any]], Counter[str]]]:
    """Items of one chunk: images copied, objects in COCO terms (ids are given later, in order)."""
    from pycocotools import mask as mask_utils
    dataset, img_dir, copy_images, cat_id, entries = job
    store = store or _exporter_store
    assert store is not None
    out = []
    for name, raw in entries:
        item = ItemRecord.decode(raw)
        objects, notes = [], Counter[str]()
        if copy_images:
            note = geo.export_image(store, item, Path(img_dir) / name)
            if note:
                notes[note] += 1
        ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
        for ob in ann.get("objects", []):
            cat = cat_id[ob["classTitle"]]
            coco_ob = _coco_object(ob, cat, item.width, item.height, notes, mask_utils, f"{dataset}/{name}")
            if coco_ob is not None:
                coco_ob.update(category_id=cat["id"],
                               iscrowd=int(any(t.get("name") == "iscrowd" for t in ob.get("tags", []))))
                objects.append(coco_ob)
        out.append((objects, notes))
    return out


def _coco_object(ob: dict[str, Any], cat: dict[str, Any], width: int, height: int, counts: Counter[str],
                 mask_utils: Any, label: str) -> dict[str, Any] | None:
    """One object as a COCO annotation. Every annotation has a segmentation (rectangles,
    lines, points and graphs: the polygon of their box, at least a pixel wide), so
    annToMask and COCOeval with iouType=segm take every one."""
    gtype = ob.get("geometryType")
    mask = geo.full_mask(ob, width, height, label) if gtype == "bitmap" else None  # decoded once
    box = geo.mask_bbox(mask) if mask is not None else geo.bbox(ob)
    if box is None:
        counts["empty objects skipped"] += 1
        return None
    x0, y0, x1, y1 = box
    if gtype not in ("bitmap", "polygon"):
        x1, y1 = max(x1, min(x0 + 1, width)), max(y1, min(y0 + 1, height))
    out: dict[str, Any] = {"bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                           "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}
    if gtype == "polygon" and not ob["points"].get("interior"):
        ext = ob["points"]["exterior"]
        out["segmentation"] = [[c for pt in ext for c in pt]]
        out["area"] = geo.polygon_area(ext)
        if _segmentation(out) is None:  # a polygon shaped as its box: a point on an edge keeps it one
            (ax, ay), (bx, by) = ext[0], ext[1]
            out["segmentation"][0][2:2] = [(ax + bx) / 2, (ay + by) / 2]
    elif gtype in ("bitmap", "polygon"):
        if mask is None:
            counts["polygons with holes written as RLE"] += 1
            mask = geo.polygon_mask(ob, width, height, label)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        out["segmentation"] = {"size": [height, width], "counts": rle["counts"].decode()}
        out["area"] = float(mask_utils.area(rle))
    elif gtype == "graph":
        order = cat.get("_order", [])
        kps: list[float] = []
        for node in order:
            loc = ob["nodes"].get(node, {}).get("loc")
            kps += [loc[0], loc[1], 2] if loc else [0, 0, 0]
        out["keypoints"] = kps
        out["num_keypoints"] = sum(1 for v in kps[2::3] if v)
    elif gtype != "rectangle":
        counts[f"{gtype}s written as bbox"] += 1
    return out
