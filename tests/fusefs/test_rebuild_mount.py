"""After `cas fsck --rebuild-index`, the mount shows exactly what it showed before."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import jpeg_bytes, run_cas
from tests.fusefs.conftest import files_under, store_with


def test_mount_identical_after_rebuild(tmp_path: Path, mount) -> None:
    store = store_with(tmp_path, {"d/a.jpg": jpeg_bytes(20, 10), "d/b.jpg": jpeg_bytes(21, 11),
                                  "e/c.jpg": jpeg_bytes(22, 12)})
    run_cas(store, "snapshot", "p")
    with mount(store, read_only=True) as mnt:
        before = files_under(mnt / "p")
    shutil.rmtree(store / "index")
    run_cas(store, "fsck", "--rebuild-index")
    with mount(store, read_only=True) as mnt:
        assert files_under(mnt / "p") == before
