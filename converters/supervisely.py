"""Supervisely project directories, as the official SDK lays them out.

    meta.json
    <dataset>/img/<item>            <dataset>/ann/<item>.json
    <dataset>/meta/<item>.json      (optional item meta)
    <dataset>/img_info/<item>.json  (optional, server-side info: ignored on import)
    <dataset>/datasets/<child>/...  (nested datasets)

A video project (`sly.VideoProject`) has video/ for img/ (a point cloud project pointcloud/
and related_images/, a volume project volume/ and mask/: `cas.model.layout`), and at the top
a key_id_map.json: the ids a Supervisely server gave the annotations' keys. The store keeps
no server ids (a new upload makes new ones): a map that holds any is counted in the import's
summary, and an export writes the empty map the SDK writes for a project of its own. The SDK's meta.json
names no projectType: the media folder says it, and for point clouds an episode's files
(`sly.PointcloudEpisodeProject`: annotation.json and frame_pointcloud_map.json in each episode,
no ann/; `cas.model.episode`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cas.blobs.hashing import hash_bytes
from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.model.episode import EpisodeFiles, check_episode, default_frame_map, empty_episode_annotation
from cas.model.layout import (
    DATASET_FILES,
    EPISODE_ANNOTATION,
    FRAME_MAP,
    MEDIA_SECTIONS,
    META_NAME,
    NESTED,
    Sections,
    dataset_folder,
    json_name,
    project_type_of,
    sections,
)
from cas.model.related import check_names as check_related_names
from cas.records import ItemRecord
from cas.store import Store

from . import text
from .contract import CERTAIN, Detection, dataset_names, fits, no
from .output import Progress, no_progress, writes_folder
from .walk import files, subdirs, tree

READS = ("boxes", "polygons", "polylines", "points", "masks", "keypoints", "tags", "media")
WRITES = ("boxes", "polygons", "polylines", "points", "masks", "keypoints", "tags", "media")
LAYOUTS = "Supervisely projects: meta.json, <dataset>/img/ and ann/, nested datasets under datasets/"


def detect(path: Path) -> Detection:
    """meta.json at the top and at least one dataset folder with img/ or ann/."""
    if not (path / META_NAME).is_file():
        return no(f"no {META_NAME}")
    if any(_is_dataset(Path(d.path)) for d in subdirs(str(path))):
        return fits(f"{META_NAME} and dataset folders", CERTAIN)
    return no(f"{META_NAME} but no dataset folder with img/ or ann/")


def _is_dataset(path: Path) -> bool:
    return any((path / sub).is_dir() for sub in (*MEDIA_SECTIONS, "ann", NESTED))


def _datasets(root: Path, rel: str = "") -> Iterator[tuple[str, Path]]:
    """(dataset path, folder) for every dataset, parents before children."""
    for entry in subdirs(str(root)):
        folder = Path(entry.path)
        if not _is_dataset(folder):
            continue
        name = f"{rel}/{entry.name}" if rel else entry.name
        yield name, folder
        if (folder / NESTED).is_dir():
            yield from _datasets(folder / NESTED, name)


def count(path: Path) -> int:
    total = 0
    for _name, folder in _datasets(path):
        for sub in MEDIA_SECTIONS:
            if (folder / sub).is_dir():
                total += sum(1 for _ in files(str(folder / sub)))
    return total


read_json_file = text.read_json
KEY_ID_MAP = "key_id_map.json"
# The map the SDK writes for a project of its own (no server ids)
EMPTY_KEY_ID_MAP: dict[str, dict[str, int]] = {"tags": {}, "objects": {}, "figures": {}, "videos": {}}


def _media_dir(folder: Path) -> Path | None:
    return next((folder / d for d in MEDIA_SECTIONS if (folder / d).is_dir()), None)


EPISODES = "point_cloud_episodes"


def _folder_kind(folder: Path, media: Path) -> str | None:
    """The project type a dataset folder's media folder says: point clouds with an episode's
    files are an episode's, with ann/ a point cloud project's; with neither, either (None)."""
    kind = project_type_of(media.name)
    if sections(kind).media != sections(EPISODES).media:
        return kind
    if any((folder / f).is_file() for f in DATASET_FILES):
        return EPISODES
    return kind if (folder / "ann").is_dir() else None


def _project_type(meta: dict[str, Any], found: list[tuple[str, Path]]) -> dict[str, Any]:
    """`meta` with the projectType its datasets' media folders say (the SDK writes none): one
    type for every dataset, and the one meta.json names if it names one."""
    kinds: dict[str, str] = {}
    either = None  # a dataset of point clouds alone: of a point cloud or an episode project
    for name, folder in found:
        media = _media_dir(folder)
        if media is not None:
            kind = _folder_kind(folder, media)
            if kind is None:
                either = either or name
            else:
                kinds.setdefault(kind, name)
    said = meta.get("projectType")
    if either is not None and not kinds:
        kinds[EPISODES if said == EPISODES else "point_clouds"] = either
    if len(kinds) > 1:
        (a, da), (b, db) = sorted(kinds.items())[:2]
        raise InvalidInput(f"{db}/", f"a project of one type only: dataset {da} holds {a}, {db} holds {b}")
    if not kinds:
        return meta
    (kind, name), = kinds.items()
    if said is not None and said != kind:
        raise InvalidInput(META_NAME, f"projectType {said!r}, but dataset {name} holds {kind} "
                                      f"({sections(kind).media}/)", "projectType")
    return {**meta, "projectType": kind}


def _key_id_map_ids(src: Path) -> int:
    """Server ids in the project's key_id_map.json (0 when it has none, or no map)."""
    path = src / KEY_ID_MAP
    if not path.is_file():
        return 0
    doc = read_json_file(path, KEY_ID_MAP)
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise InvalidInput(KEY_ID_MAP, "expected an object of objects (tags, objects, figures, videos)", "$")
    return sum(len(v) for v in doc.values())


def read_json_document(path: Path, label: str, list_key: str) -> dict[str, Any]:
    """A JSON object holding a list under `list_key` (LabelMe's shapes, Cityscapes' objects)."""
    doc = read_json_file(path, label)
    if not isinstance(doc, dict) or not isinstance(doc.get(list_key), list):
        raise InvalidInput(label, f"expected a JSON object with a list named {list_key!r}", list_key)
    return doc


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    """Queue every item of a Supervisely project; `dataset` as `contract.dataset_names` says."""
    meta = read_json_file(src / META_NAME, META_NAME)
    if not isinstance(meta, dict):
        raise InvalidInput(META_NAME, "expected a JSON object", "$")  # as Meta() says it
    found = list(_datasets(src))
    session.set_meta(_project_type(meta, found), META_NAME)
    counts = {"datasets": 0, "empty_annotations": 0}
    server_ids = _key_id_map_ids(src)
    if server_ids:
        counts["server ids in key_id_map.json not kept"] = server_ids
    targets = dataset_names(dataset, (name for name, _folder in found), src.name)
    kind = sections(session.meta.project_type)
    for name, folder in found:
        target = targets[name]
        session.add_dataset(target)
        counts["datasets"] += 1
        rel = os.path.relpath(folder, src)
        items_dir = _media_dir(folder)
        if session.meta.project_type == EPISODES:
            _read_episode(session, target, folder, rel, items_dir)
            continue
        names = set()
        if items_dir is not None:
            for entry in files(str(items_dir)):
                names.add(entry.name)
                ann_path = folder / "ann" / json_name(entry.name)
                meta_path = folder / "meta" / json_name(entry.name)
                ann_label = f"{rel}/ann/{entry.name}.json"
                ann = ann_path.read_bytes() if ann_path.is_file() else None
                counts["empty_annotations"] += ann is None
                try:
                    item_meta = (read_json_file(meta_path, f"{rel}/meta/{entry.name}.json")
                                 if meta_path.is_file() else None)
                    if item_meta is not None and not isinstance(item_meta, dict):
                        raise InvalidInput(f"{rel}/meta/{entry.name}.json", "expected a JSON object", "$")
                    related = _related_files(session.meta.project_type, folder, rel, entry.name)
                except InvalidInput as e:
                    session.reject(e)  # fails the import unless --skip-invalid
                    continue
                session.add_item(target, entry.name, entry.path, ann=ann, item_meta=item_meta,
                                 label=f"{rel}/{items_dir.name}/{entry.name}", ann_label=ann_label, related=related)
        if (folder / "ann").is_dir():
            for entry in files(str(folder / "ann")):
                if not entry.name.endswith(".json") or entry.name[:-5] not in names:
                    session.reject(InvalidInput(f"{rel}/ann/{entry.name}", f"annotation has no matching "
                                                f"{kind.noun} in {rel}/{kind.media}/"))
        _check_related_folders(kind, folder, rel, names, session)
        meshes = sum(1 for _rel, _entry in tree(folder / INTERPOLATION)) if (folder / INTERPOLATION).is_dir() else 0
        if meshes:
            counts[MESHES_NOT_KEPT] = counts.get(MESHES_NOT_KEPT, 0) + meshes
    return counts


def _read_episode(session: ImportSession, dataset: str, folder: Path, rel: str, clouds_dir: Path | None) -> None:
    """Queue the frames of an episode, each with the episode's files (`cas.model.episode`),
    checked once here; a source without them gets the SDK's (frames in name order, nothing
    annotated)."""
    clouds_dir = clouds_dir or folder / sections(EPISODES).media
    clouds = sorted(e.name for e in files(str(clouds_dir))) if clouds_dir.is_dir() else []
    ann_label, map_label = f"{rel}/{EPISODE_ANNOTATION}", f"{rel}/{FRAME_MAP}"
    try:
        if (folder / "ann").is_dir():
            raise InvalidInput(f"{rel}/ann/", f"an episode has one {EPISODE_ANNOTATION}, no ann/")
        map_path, ann_path = folder / FRAME_MAP, folder / EPISODE_ANNOTATION
        frame_map = map_path.read_bytes() if map_path.is_file() else default_frame_map(clouds)
        annotation = ann_path.read_bytes() if ann_path.is_file() else \
            empty_episode_annotation(len(clouds), hash_bytes(frame_map).hex())
        check_episode(session.meta, annotation, frame_map, clouds, ann_label, map_label)
        _check_no_frame_left(session, dataset, clouds, rel)
        related = {name: _related_files(EPISODES, folder, rel, name) for name in clouds}
    except InvalidInput as e:
        session.reject(e)  # fails the import unless --skip-invalid, which leaves the episode out
        return
    episode = EpisodeFiles(str(ann_path) if ann_path.is_file() else annotation,
                           str(map_path) if map_path.is_file() else frame_map, ann_label, map_label)
    for name in clouds:
        session.add_item(dataset, name, str(clouds_dir / name), ann=episode, label=f"{rel}/{clouds_dir.name}/{name}",
                         ann_label=ann_label, related=related[name])
    _check_related_folders(sections(EPISODES), folder, rel, set(clouds), session)


def _check_no_frame_left(session: ImportSession, dataset: str, clouds: list[str], rel: str) -> None:
    """An episode imported over one in the store has each of its frames: a frame left over
    would keep the old episode's files (its frames are replaced, never merged)."""
    ns = session.store.ns
    if not ns.has_dataset(session.project, dataset):
        return
    left = sorted(set(ns.item_names(session.project, dataset)) - set(clouds))
    if left:
        raise InvalidInput(f"{rel}/", f"episode {session.project}/{dataset} in the store has frame {left[0]!r}, "
                                      f"which this one lacks: remove it first (cas rm {session.project}/{dataset})")


# A volume project's interpolation/<volume>/<figure>.stl: the meshes a server made of its
# masks (the SDK's download converts each into the figure's mask/ file, which is kept)
INTERPOLATION = "interpolation"
MESHES_NOT_KEPT = "STL meshes in interpolation/ not kept"


def _related_files(project_type: str, folder: Path, rel: str, item: str) -> tuple[tuple[str, str, str], ...]:
    """The related files of an item (`cas.model.related`) as (name, path, label)."""
    kind = sections(project_type)
    if kind.related is None:
        return ()
    where = folder / kind.related / kind.related_folder(item)
    if not where.is_dir():
        return ()
    label = f"{rel}/{kind.related}/{where.name}"
    found = tuple((e.name, e.path, f"{label}/{e.name}") for e in files(str(where)))
    check_related_names([name for name, _path, _label in found], label, project_type)
    return found


def _check_related_folders(kind: Sections, folder: Path, rel: str, items: set[str], session: ImportSession) -> None:
    """Every folder in related_images/ (mask/) is one item's, and no two items share one."""
    if kind.related is None or not (folder / kind.related).is_dir():
        return
    owners: dict[str, str] = {}
    for item in sorted(items):
        other = owners.setdefault(kind.related_folder(item), item)
        if other != item:
            session.reject(InvalidInput(f"{rel}/{kind.related}/{kind.related_folder(item)}",
                                        f"the related folder of both {other} and {item}"))
    for entry in subdirs(str(folder / kind.related)):
        if entry.name not in owners:
            session.reject(InvalidInput(f"{rel}/{kind.related}/{entry.name}", f"related files of no item of {rel}"))


@writes_folder
def write(store: Store, project: str, dest: Path, progress: Progress = no_progress) -> dict[str, int]:
    """Write a project as a Supervisely directory: media byte-identical, JSON pretty-printed."""
    rec = store.ns.project(project)
    kind = sections(rec.project_type)
    item_dir = kind.media
    dest.mkdir(parents=True, exist_ok=True)
    _write_json(dest / META_NAME, rec.meta)
    if rec.project_type != "images":  # as the SDK's VideoProject (Pointcloud-, VolumeProject) writes it
        (dest / KEY_ID_MAP).write_text(json.dumps(EMPTY_KEY_ID_MAP, indent=4))  # the SDK's bytes: no newline
    counts = {"datasets": 0, "items": 0}
    for dataset in store.ns.datasets(project):
        folder = dest / dataset_folder(dataset)
        for sub in (item_dir, kind.ann):
            if sub is not None:
                (folder / sub).mkdir(parents=True, exist_ok=True)
        counts["datasets"] += 1
        for i, (name, item) in enumerate(store.ns.items(project, dataset)):
            store.copy_to(item.media, folder / item_dir / name)
            _copy_related(store, item, folder / (kind.related or "") / kind.related_folder(name))
            counts["items"] += 1
            progress(1)
            if kind.files:  # an episode's files, the same on every frame (`cas.model.episode`)
                if i == 0:
                    assert item.meta is not None  # every frame holds its episode's frame map
                    store.copy_to(item.ann, folder / EPISODE_ANNOTATION)
                    store.copy_to(item.meta, folder / FRAME_MAP)
                continue
            _write_json(folder / "ann" / json_name(name), store.read_json(item.ann, f"{dataset}/ann/{name}.json"))
            if item.meta is not None:
                (folder / "meta").mkdir(exist_ok=True)
                _write_json(folder / "meta" / f"{name}.json", store.read_json(item.meta, f"{dataset}/meta/{name}.json"))
    return counts


def _copy_related(store: Store, item: ItemRecord, folder: Path) -> None:
    """An item's related files, byte for byte, into `folder` (made when it has any)."""
    for rel_name, blob, _size in item.related or ():
        folder.mkdir(parents=True, exist_ok=True)
        store.copy_to(blob, folder / rel_name)


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=4) + "\n", encoding="utf-8")
