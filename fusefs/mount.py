"""Mounting and unmounting: the daemon entry point, readiness, stale mount points."""

from __future__ import annotations

import ctypes.util
import errno
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from cas.errors import CasError
from cas.index import on_read_only_fs
from cas.ingest.drops import SETTLE, Importer
from cas.ingest.workers import alive

log = logging.getLogger("cas.mount")

# Kernel caching: blobs are immutable, so pages are kept across opens (binding.CasFUSE.open);
# names and attributes are cached for a minute; every change to an item, by this mount or any
# other process, drops its entry, attributes and pages within a fraction of a second
# (invalidate.py); missing names are never cached, so new items (a CLI import) show up at once.
# Idle workers get a limit too: libfuse 3.14 otherwise passes its "no limit" default (UINT_MAX) to
# its own range check and prints "Ignoring invalid max threads value 4294967295". The limit is
# libfuse's largest, so that no worker is ever retired, as with no limit (a small one turns on
# libfuse's retiring of idle workers, whose kept thread states see binding.keep_thread_state;
# the daemon crashed at unmount now and then with 16).
MAX_THREADS = 16
NO_IDLE_LIMIT = 100_000  # FUSE_LOOP_MT_MAX_THREADS
MOUNT_OPTIONS = {"entry_timeout": 60.0, "attr_timeout": 60.0, "negative_timeout": 0.0, "max_threads": MAX_THREADS,
                 "max_idle_threads": NO_IDLE_LIMIT}
READY_TIMEOUT = 30.0
UNMOUNT_TIMEOUT = 300.0  # the daemon commits what is still pending before it exits
READ_AHEAD_KB = 1024
# The daemon's entry point: in the composition root, which hands the mount the converters that
# import drops (fusefs itself never imports them).
DAEMON = "cas.cli.daemon"  # the kernel's default for a FUSE mount is 128 KB: 8x the requests per MB


def log_path(store_root: str) -> Path:
    """`<store>/logs/mount.log`; for a store on a read-only file system, a file in the
    temp directory named after the store."""
    path = Path(store_root) / "logs"
    if on_read_only_fs(store_root):
        digest = hashlib.sha1(str(Path(store_root).resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"cas-mount-{digest}.log"
    path.mkdir(parents=True, exist_ok=True)
    return path / "mount.log"


def is_stale(mountpoint: str) -> bool:
    """A FUSE mount whose daemon is gone ('Transport endpoint is not connected')."""
    try:
        os.listdir(mountpoint)  # stat alone may be answered from the kernel's attribute cache
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


def check_mountpoint(mountpoint: str, allow_non_empty: bool = False) -> None:
    """A clear error for a missing, busy, stale (killed daemon) or non-empty mount point."""
    if is_stale(mountpoint):
        raise CasError(f"{mountpoint} is a stale mount (its daemon died: 'Transport endpoint is not "
                       f"connected'); run `cas umount {mountpoint}` first")
    if not os.path.isdir(mountpoint):
        raise CasError(f"mount point {mountpoint} does not exist or is not a directory")
    if os.path.ismount(mountpoint):
        raise CasError(f"{mountpoint} is already a mount point")
    if not allow_non_empty and any(os.scandir(mountpoint)):
        raise CasError(f"mount point {mountpoint} is not empty (the mount would hide its files); "
                       "pass --allow-non-empty to mount over them")


INSTALL_FUSE = "install the fuse3 package (apt-get install fuse3; dnf install fuse3)"


def check_fuse() -> None:
    """A one-line error naming what to install when this machine cannot mount."""
    if not (ctypes.util.find_library("fuse3") or ctypes.util.find_library("fuse")):
        raise CasError(f"libfuse is not installed: {INSTALL_FUSE}")
    _fusermount()
    if not os.path.exists("/dev/fuse"):
        raise CasError("/dev/fuse is missing: this kernel or container has no FUSE (a container needs "
                       "--device /dev/fuse --cap-add SYS_ADMIN)")


def is_fuse_mount(mountpoint: str) -> bool:
    entry = _mount_entry(mountpoint)
    return entry is not None and "fuse" in entry.fstype


class MountEntry(NamedTuple):
    device: str  # "major:minor"
    fstype: str
    source: str  # a cas mount's is `cas[<pid>]:<store>`


def _mount_entry(mountpoint: str) -> MountEntry | None:
    """The mount on top at `mountpoint`, from /proc/self/mountinfo (never a stat of the mount
    point: from inside the daemon that is a request to itself, and a SIGKILL while it is in
    flight leaves the process unkillable, the kernel waiting for the reply)."""
    target = os.path.realpath(mountpoint)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields, _, rest = line.partition(" - ")
            head, tail = fields.split(), rest.split()
            if len(head) > 4 and len(tail) > 1 and _unescape(head[4]) == target:
                found = MountEntry(head[2], tail[0], tail[1])  # later lines are mounts on top
    return found


def _unescape(field: str) -> str:
    """Mount tables write a space in a path as \\040 (any of space, tab, newline, backslash)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def daemon_pid(mountpoint: str) -> int | None:
    """The pid of the daemon serving a cas mount (its fsname is `cas[<pid>]:<store>`)."""
    entry = _mount_entry(mountpoint)
    if entry is None or "fuse" not in entry.fstype or not entry.source.startswith("cas["):
        return None
    return int(entry.source[4:entry.source.index("]")])


def daemon_store(mountpoint: str) -> str:
    """The store a cas mount serves (its fsname is `cas[<pid>]:<store>`)."""
    entry = _mount_entry(mountpoint)
    if entry is None or "fuse" not in entry.fstype or not entry.source.startswith("cas["):
        raise CasError(f"{mountpoint} is not a cas mount")
    return entry.source[entry.source.index("]") + 2:]


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until a process is gone (reaped, if it is our child); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:  # not our child: gone, or a zombie its parent will reap
            if not alive(pid):
                return True
        time.sleep(0.02)
    return False


def flush(mountpoint: str) -> None:
    """A barrier: returns once everything closed in the mount is committed to the store
    (fsync on the mount's root; the daemon commits its pending batch)."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_foreground(store_root: str, mountpoint: str, read_only: bool = False, project: str | None = None,
                   importer: Importer | None = None, settle: float = SETTLE,
                   on_ready: Callable[[], object] | None = None) -> None:
    """Serve the mount in this process until it is unmounted (or SIGINT / SIGTERM). `importer`
    imports drops (folders in other layouts copied in); without one they are refused.
    `on_ready` is called once the mount is live."""
    from .binding import CasFUSE
    from .ops import CasOperations

    handler = logging.FileHandler(log_path(store_root))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("mfusepy").setLevel(logging.WARNING)
    _load_s3_client(store_root)
    ops = CasOperations(str(Path(store_root).resolve()), read_only=read_only, project=project, importer=importer,
                        settle=settle)
    _unmount_on_signals(mountpoint)
    threading.Thread(target=_when_mounted, args=(mountpoint, on_ready), name="cas-ready", daemon=True).start()
    CasFUSE(ops, mountpoint, foreground=True, nothreads=False, fsname=f"cas[{os.getpid()}]:{store_root}", subtype="cas",
            ro=read_only, **MOUNT_OPTIONS)


def _when_mounted(mountpoint: str, on_ready: Callable[[], object] | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not is_fuse_mount(mountpoint):
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)
    raise_read_ahead(mountpoint)
    if on_ready is not None:
        on_ready()


def raise_read_ahead(mountpoint: str) -> None:
    """Let the kernel read ahead READ_AHEAD_KB in one request (sequential reads of large files
    cost a FUSE request per read-ahead window). Needs root; else a log line."""
    entry = _mount_entry(mountpoint)
    if entry is None:
        return
    knob = Path(f"/sys/class/bdi/{entry.device}/read_ahead_kb")
    try:
        knob.write_text(str(READ_AHEAD_KB))
    except OSError as e:
        log.info("kernel read-ahead stays at its default (%s: %s)", knob, e.strerror)


def _load_s3_client(store_root: str) -> None:
    """boto3 takes about a second to load its service models: do it before the mount is
    ready rather than during the first reads (no index is opened here: see ops.init)."""
    from cas.blobs.backends.s3 import s3_client
    from cas.config import StoreConfig, settings

    remote = StoreConfig.load(Path(store_root)).s3
    if remote is not None:
        s3_client(remote.endpoint_url, remote.region, settings().net)


def _unmount_on_signals(mountpoint: str) -> None:
    """SIGINT, SIGTERM and SIGHUP unmount cleanly, whichever thread they hit.

    libfuse's own handlers only flag the loop to stop, which a multi-threaded loop
    may not notice until the next request. Instead the signals are blocked in every
    thread (FUSE's threads inherit the mask) and one watcher takes them with sigwait
    and unmounts; the kernel then ends the session and the loop returns.
    """
    signals = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)

    def watch() -> None:
        sig = signal.sigwait(signals)
        log.info("signal %s: unmounting %s", signal.Signals(sig).name, mountpoint)
        detach(mountpoint)  # lazily if busy, so the daemon can still exit

    threading.Thread(target=watch, name="cas-signals", daemon=True).start()


def mount_background(store_root: str, mountpoint: str, read_only: bool = False, project: str | None = None,
                     settle: float = SETTLE) -> int:
    """Start the daemon in its own session; return its pid once the mount is ready."""
    cmd = [sys.executable, "-m", DAEMON, "--store", store_root, "--settle", str(settle), mountpoint]
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
            raise_read_ahead(mountpoint)  # the daemon does it too, maybe a moment later
            return proc.pid
        if proc.poll() is not None:
            with open(logfile, "rb") as f:
                f.seek(start)
                tail = f.read().decode(errors="replace").strip().splitlines()[-3:]
            raise CasError(f"mount failed: {' / '.join(tail) or 'the daemon exited'} (log: {logfile})")
        time.sleep(0.02)
    proc.terminate()
    raise CasError(f"mount did not become ready within {READY_TIMEOUT:.0f} s (log: {logfile})")


def _fusermount() -> str:
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        raise CasError(f"fusermount3 not found: {INSTALL_FUSE}")
    return tool


def detach(mountpoint: str, wait: float = 30.0) -> None:
    """Unmount whatever the state: plainly, else lazily (busy or stale), then give the
    daemon `wait` seconds to commit what it holds and exit. For cleanup paths."""
    pid = daemon_pid(mountpoint)
    for args in (["-u"], ["-u", "-z"]):
        if not is_fuse_mount(mountpoint):
            break
        subprocess.run([_fusermount(), *args, mountpoint], capture_output=True)
    if pid is not None:
        wait_for_exit(pid, wait)


def umount(mountpoint: str) -> str:
    """Unmount; a stale mount (dead daemon) is detached lazily. Returns what was done."""
    tool = _fusermount()
    stale = is_stale(mountpoint)
    if not stale and not is_fuse_mount(mountpoint):
        raise CasError(f"{mountpoint} is not a cas mount")
    pid = None if stale else daemon_pid(mountpoint)
    res = subprocess.run([tool, "-u", *(["-z"] if stale else []), mountpoint], capture_output=True, text=True)
    if res.returncode != 0:
        msg = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        if "busy" in msg.lower():
            msg += " (a process still uses it: close it, or `fusermount3 -u -z` to detach lazily)"
        raise CasError(f"cannot unmount {mountpoint}: {msg}")
    if pid is not None and not wait_for_exit(pid, UNMOUNT_TIMEOUT):
        raise CasError(f"unmounted {mountpoint}, but its daemon (pid {pid}) is still committing after "
                       f"{UNMOUNT_TIMEOUT:.0f} s; what it has not committed is imported by the next mount")
    return "cleared stale mount" if stale else "unmounted"
