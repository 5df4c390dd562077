"""The journal of a mount's staging directory `<store>/tmp/ingest-<n>/`.

Every file closed at a Supervisely position is a record appended with one write()
before close() returns; a commit appends the sequence numbers it made durable. A
SIGKILLed daemon leaves the directory behind; the next mount takes it over and
replays what was not committed. A live daemon holds `lock` (flock), so `gc`, `fsck`
and other mounts leave its directory alone. Against power loss, fsync is the promise:
`sync()` makes the journal durable along with the store.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cas.records import pack, unpack

PREFIX = "ingest-"
DROPS_DIR = "drops"  # folders copied into the mount to be imported whole (drops.py)
JOURNAL = "journal"
LOCK = "lock"
DONE = "done"  # a record [DONE, [seq, ...]]: those are committed or dropped
INSTALLING = "installing"  # [INSTALLING, [blob id, ...]]: blob files a commit puts in place next
_LEN = struct.Struct("<I")
COMPACT_BYTES = 4 << 20  # rewrite the journal past this size, keeping only live records


def is_mount_staging(name: str) -> bool:
    """A name in the store's tmp/ that a mount owns (gc and fsck leave it alone)."""
    return name.startswith(PREFIX) or name == DROPS_DIR


def ingest_dirs(tmp_dir: str | Path) -> list[Path]:
    root = Path(tmp_dir)
    return sorted(p for p in root.glob(PREFIX + "*") if p.is_dir())


def try_lock(directory: Path) -> int | None:
    """Take a staging directory's lock; None while a live daemon holds it."""
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def read_records(path: Path) -> Iterator[list[Any]]:
    """Every complete record, in order; a torn last record (power loss) ends the journal."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    offset = 0
    while offset + _LEN.size <= len(data):
        (length,) = _LEN.unpack_from(data, offset)
        body = data[offset + _LEN.size: offset + _LEN.size + length]
        if len(body) < length:
            return
        offset += _LEN.size + length
        yield unpack(body)


def live_records(directory: Path) -> list[list[Any]]:
    """Records of closed files not yet committed (or dropped), in the order they were written."""
    records: dict[int, list[Any]] = {}
    for record in read_records(directory / JOURNAL):
        if record[0] == DONE:
            for seq in record[1]:
                records.pop(seq, None)
        elif record[0] != INSTALLING:
            records[record[0]] = record
    return [records[seq] for seq in sorted(records)]


def installing(directory: Path) -> set[bytes]:
    """Blob ids a commit announced before putting their files in place: after a crash, those
    the index does not hold are files nobody will ever reference."""
    return {bytes(blob) for record in read_records(directory / JOURNAL) if record[0] == INSTALLING
            for blob in record[1]}


class Journal:
    """Append-only log of one staging directory (held locked by its daemon)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / JOURNAL
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def append(self, record: list[Any]) -> None:
        body = pack(record)
        os.write(self.fd, _LEN.pack(len(body)) + body)  # one write: a SIGKILL never tears it

    def done(self, seqs: list[int]) -> None:
        if seqs:
            self.append([DONE, seqs])

    def sync(self) -> None:
        os.fsync(self.fd)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncate(self) -> None:
        os.ftruncate(self.fd, 0)

    def rewrite(self, live: list[list[Any]]) -> None:
        """Replace the journal by its live records (written aside, then renamed over it)."""
        tmp = self.directory / (JOURNAL + ".new")
        with open(tmp, "wb") as f:
            for record in live:
                body = pack(record)
                f.write(_LEN.pack(len(body)) + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
