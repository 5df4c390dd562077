"""Folders of videos: a video project with sizes and frame counts from the containers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cas import Store
from cas.errors import InvalidInput
from converters.ingest import detect_format, import_source


def write_video(path: Path, frames: int, codec: str = "mpeg4", size: tuple[int, int] = (64, 48)) -> None:
    import av
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), i * 7 % 255, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_videos_become_a_video_project(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "clips"
    write_video(src / "a.mp4", 20)
    write_video(src / "b.mov", 15, size=(80, 60))
    write_video(src / "night" / "c.mkv", 12)
    write_video(src / "night" / "d.avi", 9)
    write_video(src / "night" / "e.webm", 10, codec="libvpx")
    assert detect_format(src) == "videos"
    report, _ = import_source(store, src, "v", "videos")
    assert report.items_added == 5
    assert store.ns.project("v").project_type == "videos"
    expected = {"a.mp4": (64, 48, 20), "b.mov": (80, 60, 15), "c.mkv": (64, 48, 12), "d.avi": (64, 48, 9),
                "e.webm": (64, 48, 10)}
    for dataset in ("clips", "night"):
        for name, item in store.ns.items("v", dataset):
            ann = store.read_json(item.ann, name)
            assert (item.width, item.height, ann["framesCount"]) == expected[name]
            assert ann["objects"] == [] and ann["frames"] == [] and len(ann["key"]) == 32
            assert item.mime.startswith("video/")


def test_not_a_video_is_refused(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "clips"
    write_video(src / "a.mp4", 5)
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    with pytest.raises(InvalidInput, match=r"broken.mp4: not a readable video"):
        import_source(store, src, "v", "videos")
    assert not store.ns.has_project("v")

