"""Commands that write files (get, render, export): no silent overwrite, the umask's modes,
Ctrl-C stops at once, removes what it wrote and says so."""

from __future__ import annotations

import os
import pty
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_user_error, run_cas, store_files, write_images


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with project `p`: 2,400 images in dataset `d` (past COCO's worker threshold)."""
    base = tmp_path_factory.mktemp("many")
    write_images(base / "d", 2400)
    run_cas(base / "store", "import", str(base / "d"), "-p", "p")
    return base / "store"


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_get_refuses_an_existing_file_unless_forced_and_writes_the_umasks_mode(many, tmp_path, umask_027):
    out = tmp_path / "a.jpg"
    run_cas(many, "get", "p/d/img00001.jpg", "-o", str(out))
    assert mode(out) == 0o640
    out.write_bytes(b"mine")
    assert_user_error(run_cas(many, "get", "p/d/img00002.jpg", "-o", str(out), check=False),
                      str(out), "--force")
    assert out.read_bytes() == b"mine"
    run_cas(many, "get", "p/d/img00002.jpg", "-o", str(out), "--force")
    assert out.read_bytes() == run_cas(many, "get", "p/d/img00002.jpg").stdout
    assert sorted(os.listdir(tmp_path)) == ["a.jpg"]  # no temporary file left beside it


def test_get_refuses_to_write_bytes_onto_a_terminal(many):
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "cas", "--store", str(many), "get", "p/d/img00001.jpg"],
                              stdout=follower, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert_user_error(proc, "terminal", "-o")


def test_render_writes_the_umasks_mode_and_refuses_an_existing_file(many, tmp_path, umask_027):
    out = tmp_path / "r.png"
    run_cas(many, "render", "p/d/img00001.jpg", "-o", str(out))
    assert mode(out) == 0o640
    assert_user_error(run_cas(many, "render", "p/d/img00001.jpg", "-o", str(out), check=False), "--force")


def test_export_refuses_a_folder_with_files_and_force_replaces_it_whole(many, tmp_path, umask_027):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "theirs.txt").write_text("x")
    assert_user_error(run_cas(many, "export", "p", str(dest), check=False), f"{dest} is not empty", "--force")
    assert os.listdir(dest) == ["theirs.txt"]
    run_cas(many, "export", "p", str(dest), "--force")
    assert sorted(os.listdir(dest)) == ["d", "meta.json"] and os.listdir(tmp_path) == ["out"]
    assert mode(dest) == 0o750 and mode(dest / "d" / "img" / "img00001.jpg") == 0o640


@pytest.mark.parametrize("fmt", ["sly", "coco"])  # coco: with worker processes
def test_ctrl_c_during_an_export_stops_at_once_and_removes_what_it_wrote(many, tmp_path, fmt):
    dest = tmp_path / "out"
    before = store_files(many)
    proc = subprocess.Popen([sys.executable, "-m", "cas", "--store", str(many), "export", "p", str(dest),
                             "--format", fmt], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def images_written() -> int:
        return sum(1 for _ in tmp_path.glob(".out.*.partial/**/*.jpg"))

    while images_written() < 20 and proc.poll() is None:  # the export is under way
        time.sleep(0.01)
    assert proc.poll() is None, "the export ended before it could be interrupted"
    signalled = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _out, err = proc.communicate(timeout=60)
    stopped = time.monotonic() - signalled
    stderr = err.decode()
    assert proc.returncode == 130, stderr
    assert [ln for ln in stderr.splitlines() if ln.strip()] == [
        f"cas export: interrupted; removed the partial export at {dest}"], stderr
    assert stopped < 1.5, stopped
    assert os.listdir(tmp_path) == []
    assert store_files(many) == before
