"""A real kernel mount in a temp dir, always unmounted, even when a test fails."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cas.ingest.workers import alive
from fusefs.mount import detach, log_path, mount_background
from tests.conftest import run_cas

# These call the code without a kernel mount; every other module here mounts for real.
NO_MOUNT = {"test_ops.py", "test_paths.py", "test_binding.py", "test_view.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.path.exists("/dev/fuse"):
        return
    skip = pytest.mark.skip(reason="/dev/fuse is missing on this machine: the mount tests need a kernel FUSE device")
    for item in items:
        if item.path.parent == Path(__file__).parent and item.path.name not in NO_MOUNT:
            item.add_marker(skip)


def store_with(tmp_path: Path, files: dict[str, bytes], project: str = "p") -> Path:
    """A store holding `files` ({"dataset/name": bytes}) imported as one project."""
    for rel, data in files.items():
        path = tmp_path / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "src"), "--project", project)
    return store


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below `root` (a mounted project), by relative path, with its bytes."""
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def force_unmount(mountpoint: Path, pid: int | None) -> bool:
    """Unmount (a barrier: the daemon commits what it holds, then exits), then make sure the
    daemon is gone; whether it had to be killed, having outlived the unmount."""
    detach(str(mountpoint))
    if pid is None or not alive(pid):  # alive: a zombie counts as gone
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def mounted(store: Path, mountpoint: Path, **options: object) -> Iterator[Path]:
    """The mount, unmounted at the end; a daemon still running after the unmount's wait fails
    the test (what it had not committed would be missing from the store), with its log."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    pid = None
    try:
        pid = mount_background(str(store), str(mountpoint), **options)  # type: ignore[arg-type]
        yield mountpoint
    finally:
        killed = force_unmount(mountpoint, pid)
    if killed:
        log = log_path(str(store))
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        raise AssertionError(f"the mount's daemon (pid {pid}) outlived its unmount and was killed; its log:\n{tail}")


@pytest.fixture
def mount(tmp_path: Path):
    """Mount a store: `with mount(store_path) as mnt:` (or with read_only=True, project=...)."""
    def _mount(store: Path, **options: object):
        return mounted(store, tmp_path / f"mnt{len(list(tmp_path.glob('mnt*')))}", **options)
    return _mount
