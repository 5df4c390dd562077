"""Shared fixtures: a fresh store, sample images and the `cas` command as a subprocess."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cas import BlobId, Store
from cas.store import has_store_data

ROOT = Path(__file__).resolve().parent.parent

# A suite started in the background of a non-interactive shell inherits SIGINT ignored, and so
# would every command it starts (the Ctrl-C tests then never see their signal): take it back.
# A handler (not SIG_IGN) is reset on exec, so child processes get Python's default too.
signal.signal(signal.SIGINT, signal.default_int_handler)


def damage_blob(store: Store, blob_id: bytes, data: bytes = b"", at: int = 0) -> tuple[str, int]:
    """Overwrite a stored blob's bytes in place, wherever it lives (its file, or its entry in a
    pack): `data` at offset `at`, or by default one byte flipped there. Returns (file, where
    the blob starts in it)."""
    from cas.records import PACK
    rec = store.stat(blob_id)
    path, base = (store.local.pack_path(rec.pack), rec.offset) if rec.location == PACK \
        else (store.local.path(blob_id), 0)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(base + at)
        data = data or bytes([f.read(1)[0] ^ 0xFF])
        f.seek(base + at)
        f.write(data)
    return path, base


def loose_blob_path(store: Store, blob_id: bytes) -> str:
    """The file of a stored blob, moved out of its pack first if it is packed (for tests that
    remove a blob's file: one entry of a pack cannot be removed alone). The entry left in the
    pack (or packs) is zeroed, so that the file is the blob's only copy (fsck re-points a record at a
    good copy it finds in a pack)."""
    from dataclasses import replace

    from cas.blobs.backends.packs import entries
    from cas.blobs.catalog import put_blob
    from cas.blobs.spool import spool_bytes
    from cas.records import LOCAL, PACK
    blob = BlobId(bytes(blob_id))
    rec = store.stat(blob)
    if rec.location == PACK:
        store.local.install(spool_bytes(store.read_bytes(blob)), str(store.tmp_dir))
        store.local.sync()
        with store.index.write() as txn:
            put_blob(store.index, txn, blob, replace(rec, location=LOCAL, pack=None, offset=0))
    for _name, pack, _size in store.local.list_packs():  # two workers may have packed it each
        for packed, offset, size in list(entries(pack)):
            if packed == blob:
                fd = os.open(pack, os.O_WRONLY)
                try:
                    os.pwrite(fd, bytes(size), offset)
                finally:
                    os.close(fd)
    return store.local.path(blob)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.init(tmp_path / "store")
    yield s
    s.close()


def jpeg_bytes(width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_bytes(width: int = 32, height: int = 24, color: tuple[int, int, int] = (30, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def write_images(folder: Path, n: int, prefix: str = "img", start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"{prefix}{i:05d}.jpg"
        path.write_bytes(jpeg_bytes(16 + i % 50, 16, (i % 256, (i // 256) % 256, 77)))
        paths.append(path)
    return paths


def run_cas(store: Path, *args: str, check: bool = True, input: bytes | None = None,
            init: bool = True) -> subprocess.CompletedProcess:
    """Run the real `cas` command (exit codes and one-line errors are part of the contract).
    Set-up: with `init`, a store that does not exist yet (no index and no blobs) is made first by `cas init` (the one
    command that creates a store)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if init and args[:1] != ("init",) and not (Path(store) / "index").exists() and not has_store_data(Path(store)):
        run_cas(store, "init", init=False)
    proc = subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "--quiet", *args],
                          capture_output=True, env=env, input=input, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"cas {' '.join(args)} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return proc


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    from bench.datagen import make_sample_project
    return make_sample_project(tmp_path / "sample")


def visible_lines(stream: bytes) -> list[str]:
    """Lines as a terminal shows them: a progress bar's '\\r' redraws are overwritten."""
    return [line.rsplit("\r", 1)[-1] for line in stream.decode().split("\n") if line.rsplit("\r", 1)[-1].strip()]


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """A user error: exit status 1, exactly one line `error: ...` on stderr, no traceback.
    Returns that line; every needle must be in it."""
    stderr = proc.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 1, (proc.returncode, stderr)
    lines = visible_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- remote endpoints on 127.0.0.1 ----------------------------------------------------------------
FAST_NET = {"CAS_CONNECT_TIMEOUT": "1", "CAS_READ_TIMEOUT": "1", "CAS_RETRIES": "2"}


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server mode on 127.0.0.1, reached by boto3 over HTTP."""
    from tests.servers import start_moto
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def counting_s3(s3_endpoint: str):
    """An endpoint on the same S3 as `s3_endpoint` that counts the requests it serves."""
    from tests.servers import CountingS3
    server = CountingS3()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    import uuid

    import boto3
    name = f"cas-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(tmp_path: Path, s3_endpoint: str, bucket: str):
    """A store whose new blobs go to s3://<bucket>/pre on the local endpoint."""
    from cas.config import NetOptions, S3Remote
    s = Store.init(tmp_path / "s3store", net=NetOptions(1.0, 2.0, 2, 0.05))
    s.config.s3 = S3Remote(bucket, "pre", s3_endpoint)
    s.save_config()
    yield s
    s.close()


@pytest.fixture
def http_server():
    from tests.servers import RangeServer
    server = RangeServer()
    yield server
    server.stop()


# Exports written by the real tools, shared by the interop and the mount tests.
def processes() -> list[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ...)
    of every process there is."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    out.append((int(entry), f.read().rpartition(")")[2].split()))
            except OSError:
                continue  # gone meanwhile
    return out


from tests.peer_exports import datumaro_exports, demo, names_project, sdk_exports, sdk_names_exports  # noqa: E402, F401
from tests.sdk_projects import (  # noqa: E402, F401
    sdk_episode_project,
    sdk_pointcloud_project,
    sdk_video_project,
    sdk_volume_project,
)


def store_files(root: Path) -> dict[str, bytes]:
    """Every file of a store by path, with its bytes (LMDB's reader table and the store's lock
    left out: readers write there): to assert that a command wrote nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*"))
            if p.is_file() and p.name not in ("lock.mdb", "lock")}
