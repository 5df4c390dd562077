"""The daemon: clean unmount on signals, stale mount points, errors that never kill it."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from cas import Store
from fusefs.mount import is_fuse_mount, mount_background
from tests.conftest import ROOT, damage_blob, jpeg_bytes, run_cas
from tests.fusefs.conftest import force_unmount, store_with


def small_store(tmp_path):
    return store_with(tmp_path, {"a/x.jpg": jpeg_bytes(), "a/y.jpg": jpeg_bytes(20, 20)})


def wait_gone(pid, timeout=10.0):
    """True once the daemon (our child: reap it, or it lingers as a zombie) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_cleanly(tmp_path, sig):
    store, mnt = small_store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    pid = mount_background(str(store), str(mnt))
    try:
        assert (mnt / "p/a/img/x.jpg").read_bytes() == jpeg_bytes()
        os.kill(pid, sig)
        assert wait_gone(pid)
        assert not is_fuse_mount(str(mnt))
        assert os.listdir(mnt) == []
    finally:
        force_unmount(mnt, pid)


def test_stale_mount_is_detected_and_cleared(tmp_path):
    store, mnt = small_store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    pid = mount_background(str(store), str(mnt))
    try:
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        with pytest.raises(OSError) as err:
            os.listdir(mnt)
        assert err.value.errno == errno.ENOTCONN
        again = run_cas(store, "mount", str(mnt), check=False)
        assert again.returncode == 1
        assert "stale mount" in again.stderr.decode() and "cas umount" in again.stderr.decode()
        assert "cleared stale mount" in run_cas(store, "umount", str(mnt)).stdout.decode()
        assert os.listdir(mnt) == []
        out = run_cas(store, "mount", str(mnt)).stdout.decode()
        assert "mounted" in out
        assert (mnt / "p/a/img/x.jpg").read_bytes() == jpeg_bytes()
        assert "unmounted" in run_cas(store, "umount", str(mnt)).stdout.decode()
    finally:
        force_unmount(mnt, None)


def test_corrupt_blob_is_eio_with_a_log_line_and_the_daemon_lives(tmp_path, mount):
    store = small_store(tmp_path)
    with Store(store) as s:
        blob = s.ns.item("p", "a", "x.jpg").media
        damage_blob(s, blob, b"\x00\x01\x02\x03", at=100)
    with mount(store) as mnt:
        with pytest.raises(OSError) as err:
            (mnt / "p/a/img/x.jpg").read_bytes()
        assert err.value.errno == errno.EIO
        assert (mnt / "p/a/img/y.jpg").read_bytes() == jpeg_bytes(20, 20)
    assert f"blob {blob} is corrupt" in (store / "logs/mount.log").read_text()  # the error, as the reader raised it


def test_foreground_mount_serves_until_sigterm(tmp_path):
    store, mnt = small_store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cas", "--store", str(store), "mount", "--foreground", str(mnt)],
                            env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not is_fuse_mount(str(mnt)) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert (mnt / "p/a/img/x.jpg").read_bytes() == jpeg_bytes()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
        assert not is_fuse_mount(str(mnt))
        lines = proc.stderr.read().decode().splitlines()
        assert lines[0] == f"serving {store} at {mnt}; Ctrl-C or `cas umount {mnt}` stops (log {store}/logs/mount.log)"
        assert lines[1:] == [f"refused writes and drops: `cas mount-status {mnt}` (or {mnt}/.cas/status)"], lines
    finally:
        force_unmount(mnt, proc.pid)


def test_daemon_killed_mid_copy_leaves_a_clean_store_after_remount(tmp_path):
    store, mnt = small_store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    pid = mount_background(str(store), str(mnt))
    try:
        out = open(mnt / "p/a/img/big.jpg", "wb")
        out.write(jpeg_bytes()[:-2] + os.urandom(1 << 20))  # half a file: no end-of-image yet
        out.flush()
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        try:
            out.close()
        except OSError:
            pass  # ENOTCONN: the daemon is gone
        assert "cleared stale mount" in run_cas(store, "umount", str(mnt)).stdout.decode()
        run_cas(store, "mount", str(mnt))
        assert sorted(os.listdir(mnt / "p/a/img")) == ["x.jpg", "y.jpg"]
        run_cas(store, "umount", str(mnt))
        check = run_cas(store, "fsck", check=False)
        assert check.returncode == 0, check.stdout.decode()
    finally:
        force_unmount(mnt, None)


def test_a_non_empty_mount_point_is_refused_unless_allowed(tmp_path):
    store, mnt = small_store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "notes.txt").write_text("mine")
    proc = run_cas(store, "mount", str(mnt), check=False)
    stderr = proc.stderr.decode()
    assert proc.returncode == 1 and stderr.count("\n") == 1 and "is not empty" in stderr \
        and "--allow-non-empty" in stderr, stderr
    assert not is_fuse_mount(str(mnt))
    run_cas(store, "mount", str(mnt), "--allow-non-empty")
    try:
        assert "notes.txt" not in os.listdir(mnt) and sorted(os.listdir(mnt / "p" / "a" / "img")) == ["x.jpg", "y.jpg"]
    finally:
        run_cas(store, "umount", str(mnt))
    assert (mnt / "notes.txt").read_text() == "mine"  # hidden while mounted, never touched


@pytest.mark.parametrize("missing, says", [
    ("libfuse", "libfuse is not installed: install the fuse3 package"),
    ("fusermount", "fusermount3 not found: install the fuse3 package"),
])
def test_a_machine_without_fuse_gets_one_line_naming_the_package(tmp_path, monkeypatch, capsys, missing, says):
    import ctypes.util
    import shutil

    from cas.cli import main
    store, mnt = small_store(tmp_path), tmp_path / "mnt"
    mnt.mkdir()
    if missing == "libfuse":
        monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    else:
        monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "environ", os.environ.copy())  # the CLI exports its network options
    monkeypatch.setattr(sys, "argv", ["cas", "--store", str(store), "mount", str(mnt)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert capsys.readouterr().err.splitlines() == [f"error: {says} (apt-get install fuse3; dnf install fuse3)"]
    assert not is_fuse_mount(str(mnt))
