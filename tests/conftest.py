"""Shared fixtures: a fresh store, sample images and the `cas` command as a subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cas import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "store")
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


def run_cas(store: Path, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the real `cas` command (exit codes and one-line errors are part of the contract)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
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
