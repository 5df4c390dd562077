"""Temporary names and the scratch tree that holds them (never imported)."""

from __future__ import annotations

import errno

import pytest

from cas.ingest import ScratchTree, is_temporary


@pytest.mark.parametrize("name", [".meta.json.nZwgfL", ".x.jpg.swp", "#autosave#", "x.json~", "a.TMP", "a.part",
                                  "a.crdownload", "tmpab_c1234", ".~lock.a.json#"])
def test_temporary_names(name):
    assert is_temporary(name)


@pytest.mark.parametrize("name", ["a.jpg", "a.jpg.json", "meta.json", "tmp", "tmp_dataset_2024", "x.tmpl"])
def test_final_names(name):
    assert not is_temporary(name)


def errno_of(action) -> int:
    with pytest.raises(OSError) as err:
        action()
    return err.value.errno


def test_files_and_directories_behave_like_a_folder(tmp_path):
    tree = ScratchTree(str(tmp_path))
    f = tree.create("/p/.a.tmp")
    f.write(b"hello", 0)
    f.release()
    assert tree.get("/p/.a.tmp").file.read(10, 0) == b"hello"  # readable without an open descriptor
    assert tree.get("/p/.a.tmp").file.size == 5
    assert errno_of(lambda: tree.create("/p/.a.tmp", exclusive=True)) == errno.EEXIST
    tree.mkdir("/p/.dir")
    tree.create("/p/.dir/inner").release()
    assert errno_of(lambda: tree.rmdir("/p/.dir")) == errno.ENOTEMPTY
    assert errno_of(lambda: tree.unlink("/p/.dir")) == errno.EISDIR
    tree.rename("/p/.dir", "/p/.moved")
    assert [name for name, _ in tree.children("/p/.moved")] == ["inner"]
    assert tree.get("/p/.dir/inner") is None
    assert errno_of(lambda: tree.rename("/p/.a.tmp", "/p/.moved")) == errno.EISDIR
    taken = tree.take("/p/.a.tmp")
    assert taken.read(5, 0) == b"hello" and tree.get("/p/.a.tmp") is None
    tree.remove_under("/p")
    assert list(tree.children("/p")) == [] and not list(tmp_path.iterdir())[1:]
