"""`cas stats P --classes`'s counts (cas.maintenance.classes) on the store of test_usage."""

from __future__ import annotations

from collections import Counter

import pytest

from cas import NotFound, Store
from cas.maintenance.classes import ClassStats, _add_annotation, class_stats
from tests.cas.maintenance.test_usage import build


@pytest.fixture
def built(store: Store) -> Store:
    build(store)
    return store


def test_objects_tags_and_datasets_of_a_project(built: Store) -> None:
    s = class_stats(built, "a")
    # x1 and x2 share ANN_CAR (a car with tag occluded; weather=rain), x3 has ANN_TWO (a car
    # and a road without geometryType; weather=fog), x4 the empty annotation.
    assert s.as_dict() == {
        "project": "a", "project_type": "images", "items": 4, "annotations": 3, "tagged_items": 3,
        "counted": "objects", "objects": 4,
        "classes": [{"class": "car", "geometry": "rectangle", "count": 3},
                    {"class": "road", "geometry": "polygon", "count": 1}],
        "tags": [{"name": "occluded", "items": 0, "objects": 3}, {"name": "weather", "items": 3, "objects": 0}],
        "datasets": [{"name": "train", "items": 2}, {"name": "train/night", "items": 1}, {"name": "val", "items": 1}],
        "media": {},  # an image has no header facts beyond its size
    }


def test_each_distinct_annotation_is_read_once(built: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    read = Counter()
    real = built.read_json
    monkeypatch.setattr(built, "read_json", lambda blob, label: read.update([blob]) or real(blob, label))
    s = class_stats(built, "b")  # y1 (ANN_CAR), y2 (ANN_EMPTY), two links with one empty annotation
    assert (s.items, s.annotations, len(read), set(read.values())) == (4, 3, 3, {1})
    assert s.shapes == Counter({("car", "rectangle"): 1}) and s.item_tags == Counter({"weather": 1})
    assert s.datasets == {"d": 2, "links": 2}


def test_a_video_annotation_counts_figures_under_their_objects_class() -> None:
    s = ClassStats("v", "videos")
    ann = {"tags": [{"name": "scene", "value": "day"}],
           "objects": [{"key": "k1", "classTitle": "car", "tags": [{"name": "moving"}]},
                       {"key": "k2", "classTitle": "person", "tags": []}],
           "frames": [{"index": 0, "figures": [{"objectKey": "k1", "geometryType": "rectangle"},
                                               {"objectKey": "k2", "geometryType": "point"}]},
                      {"index": 1, "figures": [{"objectKey": "k1", "geometryType": "rectangle"}]}]}
    _add_annotation(s, ann, {}, times=2)
    assert s.shapes == Counter({("car", "rectangle"): 4, ("person", "point"): 2})
    assert (s.item_tags, s.object_tags, s.as_dict()["counted"]) == (Counter(scene=2), Counter(moving=2), "figures")


def test_an_unknown_project_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no project named 'nope'"):
        class_stats(store, "nope")
