"""/<project>/.versions/<id>/: every version, read-only, in the Supervisely layout."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from tests.conftest import jpeg_bytes, run_cas
from tests.fusefs.conftest import store_with


def test_versions_are_browsable_and_read_only(tmp_path: Path, mount) -> None:
    first = {"d/a.jpg": jpeg_bytes(20, 10), "d/b.jpg": jpeg_bytes(21, 10)}
    store = store_with(tmp_path, first)
    v1 = run_cas(store, "snapshot", "p", "-m", "one").stdout.decode().split()[1]
    (tmp_path / "src" / "d" / "a.jpg").write_bytes(jpeg_bytes(30, 30))
    run_cas(store, "import", str(tmp_path / "src"), "--project", "p", "--overwrite")
    run_cas(store, "rm", "p/d/b.jpg")
    v2 = run_cas(store, "snapshot", "p", "-m", "two").stdout.decode().split()[1]
    with mount(store) as mnt:
        assert "p" in os.listdir(mnt) and ".versions" not in os.listdir(mnt / "p")
        assert sorted(os.listdir(mnt / "p" / ".versions")) == sorted([v1, v2])
        old = mnt / "p" / ".versions" / v1
        assert sorted(os.listdir(old)) == ["d", "meta.json"]
        assert sorted(os.listdir(old / "d" / "img")) == ["a.jpg", "b.jpg"]
        assert (old / "d" / "img" / "a.jpg").read_bytes() == jpeg_bytes(20, 10)
        assert json.loads((old / "d" / "ann" / "a.jpg.json").read_text())["size"] == {"height": 10, "width": 20}
        assert os.listdir(mnt / "p" / ".versions" / v2 / "d" / "img") == ["a.jpg"]
        assert (mnt / "p" / "d" / "img" / "a.jpg").read_bytes() == jpeg_bytes(30, 30)
        for attempt in (lambda: (old / "d" / "img" / "c.jpg").write_bytes(b"x"),
                        lambda: os.unlink(old / "d" / "img" / "a.jpg"),
                        lambda: os.mkdir(old / "e")):
            with pytest.raises(OSError) as info:
                attempt()
            assert info.value.errno == errno.EROFS
        with pytest.raises(FileNotFoundError):
            os.stat(mnt / "p" / ".versions" / ("0" * 32))
