"""What a project's annotations hold (`cas stats P --classes`): objects per class and geometry,
tags on items and on objects, items per dataset; and what its media's headers say, summed (a
video project's frames and duration, an episode project's frames and points).

Reads the store's own annotation model (Supervisely JSON: `objects` with `classTitle` and
`geometryType`, `tags` with `name`; a video's shapes are the `figures` of its `frames`), no
format. Each distinct annotation blob is read once and counted as many times as items
reference it (equal annotations are one blob): one pass over the items, then one read per
distinct annotation. Memory: a count per distinct annotation blob.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cas.ids import BlobId
from cas.index import item_prefix
from cas.model.namespace import scan_items
from cas.records import ItemRecord
from cas.units import summable_facts

if TYPE_CHECKING:
    from cas.store import Store


@dataclass
class ClassStats:
    """Counts over every item of a project. In a video project the shapes counted are figures
    (an object's shape in one frame), under their object's class."""

    project: str
    project_type: str
    items: int = 0
    annotations: int = 0  # distinct annotation blobs read
    tagged_items: int = 0  # items with at least one tag of their own
    shapes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (class, geometry) -> objects
    item_tags: Counter[str] = field(default_factory=Counter)  # tag -> assignments to whole items
    object_tags: Counter[str] = field(default_factory=Counter)  # tag -> assignments to objects
    datasets: dict[str, int] = field(default_factory=dict)  # dataset path -> its own items
    media: Counter[str] = field(default_factory=Counter)  # the items' header facts summed (frames, duration...)

    @property
    def tracked(self) -> bool:
        """Whether objects are tracked over frames (a video's, an episode's): their figures are counted."""
        return self.project_type in ("videos", "point_cloud_episodes")

    @property
    def counted(self) -> str:
        return "figures" if self.tracked else "objects"

    def as_dict(self) -> dict[str, Any]:
        """The `--json` form: lists in name order, stable keys (README, "cas stats --classes")."""
        tags = sorted(set(self.item_tags) | set(self.object_tags))
        return {
            "project": self.project,
            "project_type": self.project_type,
            "items": self.items,
            "annotations": self.annotations,
            "tagged_items": self.tagged_items,
            "counted": self.counted,
            "objects": sum(self.shapes.values()),
            "classes": [{"class": c, "geometry": g, "count": n} for (c, g), n in sorted(self.shapes.items())],
            "tags": [{"name": t, "items": self.item_tags[t], "objects": self.object_tags[t]} for t in tags],
            "datasets": [{"name": d, "items": n} for d, n in self.datasets.items()],
            "media": {k: round(v, 3) for k, v in self.media.items()},
        }


def _names(tags: Any) -> list[str]:
    return [t["name"] for t in tags if isinstance(t, dict) and isinstance(t.get("name"), str)] \
        if isinstance(tags, list) else []


def _add_annotation(stats: ClassStats, ann: Any, shapes: dict[Any, Any], times: int) -> None:
    """Count one annotation `times` (the items referencing it). `shapes`: class -> the shape
    meta.json gives it, for an object that names no geometry."""
    if not isinstance(ann, dict):
        return
    item_tags = _names(ann.get("tags"))
    for tag in item_tags:
        stats.item_tags[tag] += times
    stats.tagged_items += times if item_tags else 0
    objects = ann.get("objects")
    objects = objects if isinstance(objects, list) else []
    keys = {}
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        title = str(obj.get("classTitle"))
        for tag in _names(obj.get("tags")):
            stats.object_tags[tag] += times
        if stats.tracked:
            keys[obj.get("key")] = title
        else:
            stats.shapes[(title, str(obj.get("geometryType") or shapes.get(title, "unknown")))] += times
    frames = ann.get("frames") if stats.tracked else None
    for frame in frames if isinstance(frames, list) else []:
        figures = frame.get("figures") if isinstance(frame, dict) else None
        for fig in figures if isinstance(figures, list) else []:
            if isinstance(fig, dict):
                stats.shapes[(keys.get(fig.get("objectKey"), "unknown"), str(fig.get("geometryType")))] += times


def class_stats(store: Store, project: str) -> ClassStats:
    """Objects per class and geometry, tags, and items per dataset of `project` (NotFound if
    there is no such project)."""
    rec = store.ns.project(project)
    stats = ClassStats(project, rec.project_type)
    shapes = {c.get("title"): c.get("shape") for c in rec.meta.get("classes", []) if isinstance(c, dict)}
    anns: Counter[bytes] = Counter()
    episodes = rec.project_type == "point_cloud_episodes"
    index = store.index
    with index.read() as txn:
        for dataset in sorted(store.ns.datasets(project, txn), key=lambda d: d.split("/")):
            n = 0
            for _key, raw in scan_items(index, txn, item_prefix(project, dataset)):
                ann, facts = ItemRecord.raw_ann_facts(raw)
                if not episodes or n == 0:  # every frame holds its episode's one annotation
                    anns[ann] += 1
                if facts:
                    stats.media.update(summable_facts(facts))
                n += 1
            stats.datasets[dataset] = n
            stats.items += n
    if episodes:
        stats.media = Counter({"frames": stats.items, **stats.media})
    for ann, times in anns.items():
        blob = BlobId(ann)
        _add_annotation(stats, store.read_json(blob, f"{project}: annotation {blob}"), shapes, times)
        stats.annotations += 1
    return stats
