"""A video project in the mount: `video/` and `ann/`, bytes and annotations as stored."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cas
from tests.converters.test_videos import write_video


def test_mount_shows_video_and_ann(tmp_path: Path, mount) -> None:
    src = tmp_path / "clips"
    write_video(src / "a.mp4", 20)
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "--project", "v")
    with mount(store, read_only=True) as mnt:
        listing = os.listdir(mnt / "v" / "clips")
        assert "video" in listing and "ann" in listing and "img" not in listing
        assert (mnt / "v" / "clips" / "video" / "a.mp4").read_bytes() == (src / "a.mp4").read_bytes()
        assert json.loads((mnt / "v" / "clips" / "ann" / "a.mp4.json").read_text())["framesCount"] == 20
