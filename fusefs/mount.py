"""Mounting and unmounting: the daemon entry point, readiness, stale mount points."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cas.errors import CasError

log = logging.getLogger("cas.mount")

# Kernel caching: blobs are immutable, so the page cache is safe (auto_cache drops it when an
# item's mtime or size changes); names and attributes are cached for a second, so changes made
# by another process (a CLI import) show up within a second; missing names are never cached.
MOUNT_OPTIONS = {"entry_timeout": 1.0, "attr_timeout": 1.0, "negative_timeout": 0.0, "auto_cache": True,
                 "max_threads": 16}
READY_TIMEOUT = 30.0


def log_path(store_root: str) -> Path:
    path = Path(store_root) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path / "mount.log"


def check_mountpoint(mountpoint: str) -> None:
    """A clear error for a missing, busy or stale (killed daemon) mount point."""
    try:
        st = os.stat(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise CasError(f"{mountpoint} is a stale mount (its daemon died: 'Transport endpoint is not "
                           f"connected'); run `cas umount {mountpoint}` first") from None
        raise CasError(f"mount point {mountpoint} does not exist") from None
    if not os.path.isdir(mountpoint) or not (st.st_mode & 0o040000):
        raise CasError(f"mount point {mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise CasError(f"{mountpoint} is already a mount point")


def is_fuse_mount(mountpoint: str) -> bool:
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target and "fuse" in line.split()[2] for line in f)


def run_foreground(store_root: str, mountpoint: str, read_only: bool = False, project: str | None = None) -> None:
    """Serve the mount in this process until it is unmounted (or SIGINT / SIGTERM)."""
    from .binding import CasFUSE
    from .ops import CasOperations

    handler = logging.FileHandler(log_path(store_root))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("mfusepy").setLevel(logging.WARNING)
    ops = CasOperations(str(Path(store_root).resolve()), read_only=read_only, project=project)
    CasFUSE(ops, mountpoint, foreground=True, nothreads=False, fsname=f"cas:{store_root}", subtype="cas",
            ro=read_only, **MOUNT_OPTIONS)


def mount_background(store_root: str, mountpoint: str, read_only: bool = False, project: str | None = None) -> int:
    """Start the daemon in its own session; return its pid once the mount is ready."""
    cmd = [sys.executable, "-m", "fusefs", "--store", store_root, mountpoint]
    if read_only:
        cmd.append("--read-only")
    if project:
        cmd += ["--project", project]
    logfile = log_path(store_root)
    start = logfile.stat().st_size if logfile.exists() else 0
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if is_fuse_mount(mountpoint):
            return proc.pid
        if proc.poll() is not None:
            with open(logfile, "rb") as f:
                f.seek(start)
                tail = f.read().decode(errors="replace").strip().splitlines()[-3:]
            raise CasError(f"mount failed: {' / '.join(tail) or 'the daemon exited'} (log: {logfile})")
        time.sleep(0.02)
    proc.terminate()
    raise CasError(f"mount did not become ready within {READY_TIMEOUT:.0f} s (log: {logfile})")


def umount(mountpoint: str) -> str:
    """Unmount; a stale mount (dead daemon) is detached lazily. Returns what was done."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        raise CasError("fusermount3 not found: install the fuse3 package")
    stale = False
    try:
        os.stat(mountpoint)
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            raise CasError(f"{mountpoint}: {e.strerror}") from None
        stale = True
    if not stale and not is_fuse_mount(mountpoint):
        raise CasError(f"{mountpoint} is not a cas mount")
    res = subprocess.run([tool, "-u", *(["-z"] if stale else []), mountpoint], capture_output=True, text=True)
    if res.returncode != 0:
        msg = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        if "busy" in msg.lower():
            msg += " (a process still uses it: close it, or `fusermount3 -u -z` to detach lazily)"
        raise CasError(f"cannot unmount {mountpoint}: {msg}")
    return "cleared stale mount" if stale else "unmounted"
