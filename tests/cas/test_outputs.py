"""The rule for what commands write: no silent overwrite, the umask's modes, whole or nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cas.errors import AlreadyExists, CasError
from cas.outputs import new_file, new_folder, refuse_existing


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_a_new_file_has_the_umasks_mode_and_replaces_only_when_done(tmp_path, umask_027):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), new_file(dest) as out:
        out.write(b"half")
        raise KeyboardInterrupt
    assert dest.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    with new_file(dest) as out:
        out.write(b"new")
    assert dest.read_bytes() == b"new" and mode(dest) == 0o640 and os.listdir(tmp_path) == ["out.bin"]


def test_an_existing_output_is_refused_unless_forced(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(AlreadyExists, match="pass --force"):
        refuse_existing(tmp_path / "f", force=False)
    refuse_existing(tmp_path / "f", force=True)
    refuse_existing(tmp_path / "g", force=False)


def test_a_folder_with_files_is_refused_then_replaced_whole_with_force(tmp_path, umask_027):
    dest = tmp_path / "export"
    dest.mkdir()
    (dest / "theirs.txt").write_text("x")
    with pytest.raises(AlreadyExists, match=f"{dest} is not empty; pass --force"), new_folder(dest):
        pass
    with pytest.raises(KeyboardInterrupt), new_folder(dest, force=True) as tmp:
        (tmp / "a.txt").write_text("half")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["export"] and os.listdir(dest) == ["theirs.txt"]
    with new_folder(dest, force=True) as tmp:
        (tmp / "a.txt").write_text("new")
    assert os.listdir(tmp_path) == ["export"] and os.listdir(dest) == ["a.txt"] and mode(dest) == 0o750


def test_a_folder_holding_the_store_is_never_replaced(tmp_path):
    (tmp_path / "store").mkdir()
    with pytest.raises(CasError, match="holds"), new_folder(tmp_path, force=True, keep=tmp_path / "store"):
        pass
    assert (tmp_path / "store").is_dir()
