"""Blobs as files under `<store>/blobs/ab/cd/<hex>`; temp files in `<store>/tmp/`."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cas.blobs.backends.packs import SUFFIX, pack_name
from cas.blobs.spool import Spooled
from cas.errors import HEAL_HINT, InvalidName, NotFound
from cas.ids import BlobId


@functools.cache
def _libc() -> Any:
    """libc through ctypes, loaded at the first sync (a run that writes no blob needs neither)."""
    import ctypes
    return ctypes.CDLL(None, use_errno=True)  # libc is loaded already (find_library would run ldconfig: 20+ ms)


def syncfs(path: str) -> None:
    """Flush the whole file system holding `path` in one call (falls back to sync)."""
    import ctypes
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc().syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs({path}) failed: {os.strerror(err)}")
    except AttributeError:  # pragma: no cover - libc without syncfs
        os.sync()
    finally:
        os.close(fd)


class LocalBackend:
    """Blob files on the local file system; rename into place, one syncfs per batch."""

    location = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._made_dirs: set[str] = set()
        self._blob_dir = str(self.blob_dir)  # paths are built per read: strings, not Path objects
        self._pack_paths: dict[str, str] = {}  # pack name -> its checked path

    @property
    def pack_dir(self) -> Path:
        return self.root / "packs"

    def pack_path(self, name: str) -> str:
        path = self._pack_paths.get(name)
        if path is None:
            if pack_name(name + SUFFIX) != name:
                raise NotFound(f"not a pack name: {name!r}")
            path = self._pack_paths[name] = f"{self.pack_dir}/{name}{SUFFIX}"
        return path

    def open_pack(self, name: str) -> int:
        try:
            return os.open(self.pack_path(name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"pack {name} is in the index but its file is missing") from None

    def list_packs(self) -> Iterator[tuple[str | None, str, int]]:
        """(pack name or None if the file is not a pack, path, size) of every file under packs/."""
        if not self.pack_dir.is_dir():
            return
        for entry in os.scandir(self.pack_dir):
            try:
                yield pack_name(entry.path), entry.path, entry.stat().st_size
            except FileNotFoundError:
                continue

    def path(self, blob_id: BlobId) -> str:
        h = blob_id.hex()
        return f"{self._blob_dir}/{h[:2]}/{h[2:4]}/{h}"

    def install(self, sp: Spooled, tmp_dir: str) -> None:
        """Rename the spooled content into place (durable after `sync`)."""
        dest = self.path(sp.id)
        parent = dest[: dest.rfind("/")]
        if parent not in self._made_dirs:
            os.makedirs(parent, exist_ok=True)
            self._made_dirs.add(parent)
        os.replace(sp.write_temp(tmp_dir), dest)
        sp.tmp = None

    def link_in(self, path: str, blob_id: BlobId, replace: bool = False) -> bool:
        """Hard-link a finished file into place (its bytes are not copied; durable after
        `sync`). False if the blob file was there already, unless `replace` (a damaged
        file's place: the new link takes it atomically)."""
        dest = self.path(blob_id)
        parent = dest[: dest.rfind("/")]
        if parent not in self._made_dirs:
            os.makedirs(parent, exist_ok=True)
            self._made_dirs.add(parent)
        if replace:
            fresh = f"{self.tmp_dir}/heal-{os.getpid()}-{blob_id.hex()}"
            os.link(path, fresh)
            os.replace(fresh, dest)
            return True
        try:
            os.link(path, dest)
        except FileExistsError:
            return False
        return True

    def sync(self) -> None:
        syncfs(str(self.blob_dir))

    def open_fd(self, blob_id: BlobId) -> int:
        try:
            return os.open(self.path(blob_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"blob {blob_id} is in the index but its file is missing; {HEAL_HINT}") from None

    def read_range(self, blob_id: BlobId, offset: int, length: int) -> bytes:
        fd = self.open_fd(blob_id)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def delete(self, blob_id: BlobId) -> int:
        path = self.path(blob_id)
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        for top in sorted(os.scandir(self.blob_dir), key=lambda e: e.name):
            if not top.is_dir(follow_symlinks=False):
                yield None, top.path, top.stat().st_size
                continue
            for dirpath, _dirs, files in os.walk(top.path):
                for name in files:
                    path = os.path.join(dirpath, name)
                    try:
                        blob_id = BlobId.from_hex(name)
                    except InvalidName:
                        blob_id = None
                    if blob_id is not None and path != self.path(blob_id):
                        blob_id = None
                    yield blob_id, path, os.stat(path).st_size

    def list_tmp(self) -> Iterator[tuple[str, int]]:
        for entry in os.scandir(self.tmp_dir):
            try:
                yield entry.path, entry.stat().st_size
            except FileNotFoundError:
                continue
