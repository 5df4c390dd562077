"""Video projects written by the Supervisely SDK (`sly.VideoProject`): detected, imported,
exported with every video byte for byte and read back by the SDK as written; bad annotations
refused in one line that names the file and the field, with the store left as it was."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cas
from tests.sdk_projects import assert_same_project, sdk_read


def test_sdk_video_project_round_trips(tmp_path: Path, sdk_video_project: Path) -> None:
    store = tmp_path / "store"
    out = run_cas(store, "import", str(sdk_video_project), "--project", "v").stdout.decode()
    assert "imported v: 2 items" in out
    listing = run_cas(store, "ls", "v/day").stdout.decode()
    assert "a.mp4\t64x48\t" in listing and listing.rstrip().endswith("12 frames, 1.2 s")
    rows = json.loads(run_cas(store, "ls", "v/night", "--json").stdout)["items"]
    assert (rows[0]["frames"], rows[0]["duration"]) == (8, 0.8)
    assert "media    20 frames, 2 s in all" in run_cas(store, "stats", "v").stdout.decode()
    run_cas(store, "export", "v", str(tmp_path / "out"))
    for name in ("day/video/a.mp4", "night/video/b.mp4", "key_id_map.json"):
        assert (tmp_path / "out" / name).read_bytes() == (sdk_video_project / name).read_bytes(), name
    exported, source = sdk_read(tmp_path / "out", "VideoProject"), sdk_read(sdk_video_project, "VideoProject")
    assert_same_project(exported, source, "videos")


def _first_figure(ann: dict[str, Any]) -> dict[str, Any]:
    return ann["frames"][0]["figures"][0]


BAD = {  # what is wrong -> (the change to day/ann/a.mp4.json, the field the error names, its words)
    "frame past the end": (lambda a: a["frames"][-1].update(index=12), "frames[3].index", "past the video's end"),
    "unknown object key": (lambda a: _first_figure(a).update(objectKey="f" * 32), "frames[0].figures[0].objectKey",
                           "unknown object key"),
    "frame count": (lambda a: a.update(framesCount=13), "framesCount", "the video has 12"),
    "tag range": (lambda a: a["tags"][0].update(frameRange=[0, 12]), "tags[0].frameRange", "not within"),
    "object tag range": (lambda a: a["objects"][0]["tags"][0].update(frameRange=[5, 2]),
                         "objects[0].tags[0].frameRange", "not within"),
    "unknown tag": (lambda a: a["objects"][0]["tags"][0].update(name="parked"), "objects[0].tags[0].name",
                    "unknown tag"),
    "figure geometry": (lambda a: _first_figure(a)["geometry"]["points"].update(exterior=[[1, 1]]),
                        "frames[0].figures[0].geometry.points.exterior", "rectangle needs exactly 2 points"),
    "figure class shape": (lambda a: _first_figure(a).update(geometryType="polygon"),
                           "frames[0].figures[0].geometryType", "class 'car' has shape rectangle"),
    "duplicate object": (lambda a: a["objects"][1].update(key=a["objects"][0]["key"]), "objects[1].key",
                         "duplicate object key"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_video_annotation_is_one_line_and_changes_nothing(tmp_path: Path, sdk_video_project: Path,
                                                              case: str) -> None:
    change: Callable[[dict[str, Any]], None]
    change, field, words = BAD[case]
    src = tmp_path / "videos"
    shutil.copytree(sdk_video_project, src)
    ann_path = src / "day/ann/a.mp4.json"
    ann = json.loads(ann_path.read_text())
    change(ann)
    ann_path.write_text(json.dumps(ann))
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_video_project), "--project", "v")
    before = store_state(store)
    proc = run_cas(store, "import", str(src), "--project", "w", check=False)
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: day/ann/a.mp4.json: ") and field in lines[0] \
        and words in lines[0], lines
    assert store_state(store) == before


BAD_MEDIA = {  # what is wrong with day/video/a.mp4 -> (the change, the file the error names, its words)
    "not a video": (lambda p: p.write_bytes(b"not a video at all"), "day/video/a.mp4", "not a readable video"),
    "cut before its index": (lambda p: p.write_bytes(p.read_bytes()[:100]), "day/video/a.mp4", "video"),
    "missing": (lambda p: p.unlink(), "day/ann/a.mp4.json", "annotation has no matching video in day/video/"),
}


@pytest.mark.parametrize("case", sorted(BAD_MEDIA))
def test_bad_video_file_is_one_line_and_changes_nothing(tmp_path: Path, sdk_video_project: Path, case: str) -> None:
    change, file, words = BAD_MEDIA[case]
    src = tmp_path / "videos"
    shutil.copytree(sdk_video_project, src)
    change(src / "day/video/a.mp4")
    store = tmp_path / "store"
    run_cas(store, "import", str(sdk_video_project), "--project", "v")
    before = store_state(store)
    proc = run_cas(store, "import", str(src), "--project", "w", check=False)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith(f"error: {file}: ") \
        and words in lines[0], lines
    assert store_state(store) == before


def store_state(store: Path) -> tuple[str, dict[str, Any]]:
    """What a store holds: its projects, and its blobs counted and sized (a failed import
    writes only bookkeeping to the index)."""
    stats = json.loads(run_cas(store, "stats", "--json").stdout)
    return run_cas(store, "ls").stdout.decode(), {k: stats[k] for k in ("items", "blobs", "stored_bytes",
                                                                        "unreferenced_blobs")}
