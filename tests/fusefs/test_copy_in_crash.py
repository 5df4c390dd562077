"""kill -9 of the mount daemon in the middle of `cp -rv`: nothing cp reported as copied is lost.

`cp -v` prints "'src' -> 'dst'" for a file *before* copying it, and reports a failure of that
copy on stderr, naming the file. So a file counts as reported copied when its line is on
stdout and cp's stderr does not name it.

The copy runs in rounds. Round 1 is `cp -rv SRC MNT/crash` (line-buffered with stdbuf); the
daemon gets SIGKILL as soon as cp's stdout has reached a number of file lines drawn from a
seeded random.Random (cp then fails the rest with ENOTCONN and exits). After each kill:
`cas umount MNT` clears the stale mount, `cas fsck` either is clean or (exit 1) reports
the journal as pending, the store is mounted again (the journal in <store>/tmp/ is replayed) and
every file reported so far must be there. The next round copies only the files not yet
reported, with `cp -v --parents` from inside SRC (overwriting whatever a killed round left at
their names). After 10 kills a last round copies the rest; then every file is an item after
the unmount, `cas export` gives the source back (each annotation carries a description of its
own, so a lost annotation shows) and `cas fsck` is clean.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
from pathlib import Path

from cas.model.annotation import empty_annotation
from fusefs.mount import detach, mount_background, wait_for_exit
from tests.conftest import jpeg_bytes, png_bytes, run_cas

IMAGES = 1000  # and as many annotations: 2,000 files, plus meta.json
KILLS = 10
SEED = 20240601
CP_TIMEOUT = 60.0  # a watchdog against a hung mount, never a synchronisation
META = {"classes": [], "tags": [], "projectType": "images"}
VERBOSE_LINE = re.compile(r"^'(.*)' -> '(.*)'$")
QUOTED = re.compile(r"'([^']*)'")


def make_project(root: Path, n: int) -> list[str]:
    """meta.json, ds/img/<n images of 16 px> and ds/ann/<their annotations>; returns the files."""
    (root / "ds/img").mkdir(parents=True)
    (root / "ds/ann").mkdir()
    (root / "meta.json").write_text(json.dumps(META))
    for i in range(n):
        if i % 4 == 3:
            name, width = f"{i:04d}.jpg", 16 + i % 24
            data = jpeg_bytes(width, 16, (i % 256, 60 * (i // 256), 90))
        else:
            name, width = f"{i:04d}.png", 16
            data = png_bytes(16, 16, (i % 256, i // 256, 160))
        (root / "ds/img" / name).write_bytes(data)
        (root / "ds/ann" / f"{name}.json").write_text(json.dumps({**empty_annotation(width, 16),
                                                                   "description": f"item {i}"}))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class CopyRound:
    """One cp run: its file lines read as they come, SIGKILL to the daemon after `kill_after`."""

    def __init__(self, cmd: list[str], cwd: Path | None, src: Path, dest: Path, files: set[str],
                 errfile: Path) -> None:
        self.cmd, self.cwd, self.files, self.errfile = cmd, cwd, files, errfile
        self.prefixes = (f"{dest}/", f"{src}/")
        self.timed_out = False

    def rel(self, path: str) -> str | None:
        for prefix in self.prefixes:
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
        return path if path in self.files else None

    def run(self, kill_after: int | None, daemon: int) -> tuple[set[str], bool, int, str]:
        """Returns (files reported copied, whether the daemon was killed, exit status, stderr)."""
        lines: list[str] = []
        killed = False
        with open(self.errfile, "w+b") as err:
            proc = subprocess.Popen(["stdbuf", "-oL", *self.cmd], cwd=self.cwd, stdout=subprocess.PIPE, stderr=err)
            watchdog = threading.Timer(CP_TIMEOUT, self._expire, args=(proc,))
            watchdog.start()
            try:
                for raw in proc.stdout:  # type: ignore[union-attr]
                    match = VERBOSE_LINE.match(raw.decode(errors="replace").rstrip("\n"))
                    rel = self.rel(match.group(2)) if match else None
                    if rel is None:
                        continue  # a directory
                    lines.append(rel)
                    if not killed and kill_after is not None and len(lines) >= kill_after:
                        os.kill(daemon, signal.SIGKILL)
                        killed = True
                proc.wait(timeout=CP_TIMEOUT)
            finally:
                watchdog.cancel()
                proc.stdout.close()  # type: ignore[union-attr]
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        assert not self.timed_out, f"cp did not finish within {CP_TIMEOUT:.0f} s: {self.cmd[:3]}"
        failed = {rel for q in QUOTED.findall(stderr) if (rel := self.rel(q)) is not None}
        return set(lines) - failed, killed, proc.returncode, stderr

    def _expire(self, proc: subprocess.Popen) -> None:
        self.timed_out = True
        proc.kill()


def listed(project: Path) -> set[str]:
    """Files the mounted project shows (meta.json, images, annotations)."""
    found = {"meta.json"} if "meta.json" in os.listdir(project) else set()
    for section in ("img", "ann"):
        found |= {f"ds/{section}/{name}" for name in os.listdir(project / "ds" / section)}
    return found


def test_kill_9_mid_cp_loses_nothing_cp_reported(tmp_path: Path) -> None:
    src, store, mnt = tmp_path / "src", tmp_path / "store", tmp_path / "mnt"
    files = make_project(src, IMAGES)
    run_cas(store, "init")
    mnt.mkdir()
    rng = random.Random(SEED)
    cuts = sorted(rng.sample(range(40, len(files) - 40), KILLS))  # in files reported over the whole copy
    reported: set[str] = set()
    pending_seen = 0
    pid = mount_background(str(store), str(mnt))
    try:
        for round_no in range(KILLS + 1):
            remaining = [f for f in files if f not in reported]
            if round_no == 0:
                cmd, cwd = ["cp", "-rv", str(src), str(mnt / "crash")], None
            else:
                cmd, cwd = ["cp", "-v", "--parents", *remaining, str(mnt / "crash")], src
            kill_after = max(1, cuts[round_no] - len(reported)) if round_no < KILLS else None
            done, killed, code, stderr = CopyRound(cmd, cwd, src, mnt / "crash", set(files),
                                                   tmp_path / "cp.err").run(kill_after, pid)
            reported |= done
            if round_no == KILLS:
                assert code == 0 and not killed, stderr
                break
            assert killed, f"cp finished before reporting {kill_after} files (round {round_no})"
            assert wait_for_exit(pid, 10.0), "the daemon survived SIGKILL"
            assert "cleared stale mount" in run_cas(store, "umount", str(mnt)).stdout.decode()
            check = run_cas(store, "fsck", check=False)
            out = check.stdout.decode()
            if check.returncode != 0:  # closed files not yet in the index: the journal says so
                assert check.returncode == 1 and "Traceback" not in check.stderr.decode(), out
                assert any("pending-journal" in line for line in out.splitlines()), out
                pending_seen += 1
            pid = mount_background(str(store), str(mnt))  # replays the journal
            missing = sorted(reported - listed(mnt / "crash"))
            assert not missing, f"after kill {round_no + 1}: {len(missing)} reported files lost, e.g. {missing[:5]}"
            if "meta.json" in reported:
                assert json.loads((mnt / "crash/meta.json").read_text()) == META
        assert reported == set(files)
        assert "unmounted" in run_cas(store, "umount", str(mnt)).stdout.decode()
    finally:
        detach(str(mnt))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lines = run_cas(store, "ls", "crash/ds").stdout.decode().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(f[len("ds/img/"):] for f in files
                                                                    if f.startswith("ds/img/"))
    out = tmp_path / "out"
    run_cas(store, "export", "crash", str(out))
    for rel in files:
        if rel.endswith(".json"):
            assert json.loads((out / rel).read_text()) == json.loads((src / rel).read_text()), rel
        else:
            assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    check = run_cas(store, "fsck", check=False)
    assert check.returncode == 0, check.stdout.decode()[-2000:]
    assert pending_seen > 0, "no kill found a pending journal (fsck never reported pending-journal)"
