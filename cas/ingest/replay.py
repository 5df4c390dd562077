"""The mount's staging directory across daemons: claimed at start, and what a dead daemon
journaled and did not commit replayed into the new one (see journal.py).

A replayed file must still hash to its recorded id (power loss may have torn it); blob
files a killed commit put in place without recording them are removed once the replay is
committed (it may reference some of them again).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cas.blobs.hashing import hash_file
from cas.errors import CasError, StoreBusy
from cas.ids import BlobId
from cas.ingest.closed import Closed
from cas.ingest.journal import PREFIX, Journal, ingest_dirs, installing, live_records, try_lock

if TYPE_CHECKING:
    from cas.ingest.overlay import Overlay
    from cas.store import Store

log = logging.getLogger("cas.mount")


def claim_directory(tmp_dir: str) -> tuple[Path, int, list[Path]]:
    """Take over the staging directories of dead daemons (the first becomes ours), or make
    one. Returns ours, its lock, and the directories to replay (ours first)."""
    dead: list[tuple[Path, int]] = []
    for directory in ingest_dirs(tmp_dir):
        fd = try_lock(directory)
        if fd is not None:
            dead.append((directory, fd))
    if dead:
        (mine, fd), others = dead[0], dead[1:]
        for _, other_fd in others:
            os.close(other_fd)  # replayed into ours; relocked there
        return mine, fd, [mine, *(d for d, _ in others)]
    mine = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp_dir))
    fd = try_lock(mine)
    if fd is None:
        raise CasError(f"cannot lock the new staging directory {mine}")
    return mine, fd, []


def replay(overlay: Overlay, ours: Path, directories: list[Path]) -> tuple[int, set[bytes]]:
    """Re-apply what dead daemons journaled and did not commit (ours first, in order).
    Returns the next sequence number of our journal and the ids of blobs whose files a dead
    commit may have left unrecorded."""
    next_seq, replayed = 1, 0
    maybe_orphans: set[bytes] = set()
    for directory in directories:
        if directory != ours and try_lock(directory) is None:
            continue  # another mount took it meanwhile
        records = live_records(directory)
        maybe_orphans |= installing(directory)
        if directory == ours:
            next_seq = max((r[0] for r in records), default=0) + 1
        keep = {"journal", "lock"}
        for record in records:
            closed = Closed.decode(record, directory)
            if directory != ours:
                _move_in(overlay.journal, ours, closed, next_seq)
                next_seq += 1
            if not _still_whole(overlay, closed):
                continue
            if closed.file is not None:
                keep.add(os.path.basename(closed.file))
            with overlay._lock:
                overlay._accept(closed)
            replayed += 1
        if directory != ours:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for entry in os.scandir(directory):  # scratch files of the dead daemon
                if entry.name not in keep:
                    os.unlink(entry.path)
    if replayed:
        log.info("replayed %d files closed in a mount that stopped before committing them", replayed)
    return next_seq, maybe_orphans


def _move_in(journal: Journal, ours: Path, closed: Closed, seq: int) -> None:
    """Journal another dead directory's record here, then move its file in."""
    old = closed.file
    closed.seq = seq
    if old is not None:
        closed.file = new = f"{ours}/r{closed.seq}-{os.path.basename(old)}"
    journal.append(closed.encode())
    if old is not None and os.path.exists(old):
        os.rename(old, new)


def _still_whole(overlay: Overlay, closed: Closed) -> bool:
    """A replayed file must still hash to its recorded id; a missing one is fine if its blob
    was committed before the crash."""
    store = overlay.store
    if closed.id is None:
        return True
    if closed.file is None:  # a duplicate: of a blob stored, or of an earlier record replayed
        if closed.id in overlay._files or store.has(closed.id):
            return True
        log.error("%s: the blob it duplicates is gone; not imported", closed.label)
        overlay.journal.done([closed.seq])
        return False
    if os.path.exists(closed.file):
        if hash_file(closed.file)[0] == closed.id:
            return True
        log.error("%s: its staged bytes no longer match what was closed; not imported", closed.label)
    elif store.has(closed.id):
        closed.file = None
        return True
    else:
        log.error("%s: its staged bytes are gone; not imported", closed.label)
    overlay.journal.done([closed.seq])
    return False


def remove_orphans(store: Store, barrier: Callable[[], None], maybe_orphans: set[bytes]) -> None:
    """Blob files a killed daemon put in place without committing them: once the replay is
    committed (`barrier`), those the index lacks are deleted."""
    try:
        barrier()
    except OSError as e:
        log.error("replay not committed (%s); blob files it left are kept", e.strerror)
        return
    backend = store.local
    if backend is not store.write_backend:
        return  # S3 objects: gc removes unreferenced ones once they are an hour old
    try:  # alone, as gc: an import running meanwhile may be about to record the same blob
        with store.lock(exclusive=True, what="remove blob files a stopped mount left"):
            for raw in maybe_orphans:
                if not store.has(BlobId(raw)):
                    backend.delete(BlobId(raw))
    except StoreBusy:
        log.info("blob files a stopped mount left are kept for `cas gc` (an import is running)")
