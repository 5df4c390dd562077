import multiprocessing

import pytest

from cas import BlobId, CasError, SchemaError, Store
from cas.index import SCHEMA_KEY, SCHEMA_VERSION, Index


def test_schema_version_is_written_at_init(tmp_path):
    index = Index(tmp_path / "index", create=True)
    with index.read() as txn:
        assert int(txn.get(SCHEMA_KEY, db=index.db["meta"])) == SCHEMA_VERSION
    index.close()


@pytest.mark.parametrize("version,word", [(SCHEMA_VERSION + 1, "newer"), (0, "older")])
def test_other_schema_version_is_refused_not_rewritten(tmp_path, version, word):
    Store.init(tmp_path / "s").close()
    index = Index(tmp_path / "s" / "index")
    with index.write() as txn:
        txn.put(SCHEMA_KEY, str(version).encode(), db=index.db["meta"])
    index.close()
    with pytest.raises(SchemaError, match=word):
        Store(tmp_path / "s")
    import lmdb  # the stored version is untouched
    env = lmdb.open(str(tmp_path / "s" / "index"), max_dbs=8)
    with env.begin() as txn:
        assert int(txn.get(SCHEMA_KEY, db=env.open_db(b"meta", txn=txn, create=False))) == version
    env.close()


def test_opening_a_path_that_is_not_a_store_never_creates_one(tmp_path):
    from cas import NotFound
    with pytest.raises(NotFound, match=r"no cas store at .*typo \(`cas init` or, in Python, `Store.init` creates"):
        Store(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_init_creates_then_opens_and_the_store_opens_after(tmp_path):
    with Store.init(tmp_path / "s") as made:
        blob = made.put(b"kept")
    with Store.init(tmp_path / "s") as again, Store(tmp_path / "s") as opened:
        assert again.read_bytes(blob) == opened.read_bytes(blob) == b"kept"


def test_a_store_without_its_index_points_at_rebuild_and_init_refuses_to_start_empty(tmp_path):
    import shutil

    from cas import NotFound
    with Store.init(tmp_path / "s") as made:
        made.put(b"kept")
    shutil.rmtree(tmp_path / "s" / "index")
    with pytest.raises(NotFound, match=r"has lost its index .*`cas fsck --rebuild-index`"):
        Store(tmp_path / "s")
    with pytest.raises(CasError, match=r"`cas init` would start an empty one .*`cas fsck --rebuild-index`"):
        Store.init(tmp_path / "s")
    assert not (tmp_path / "s" / "index").exists()


@pytest.mark.parametrize("content", [b"", b"not an lmdb file" * 1000], ids=["empty", "garbage"])
def test_an_unreadable_index_points_at_rebuild(tmp_path, content):
    Store.init(tmp_path / "s").close()
    (tmp_path / "s" / "index" / "data.mdb").write_bytes(content)
    with pytest.raises(SchemaError, match=r"index.*`cas fsck --rebuild-index`"):
        Store(tmp_path / "s")


def test_two_stores_on_one_path_share_one_environment(tmp_path):
    a = Store.init(tmp_path / "s")
    b = Store(tmp_path / "s")
    blob = a.put(b"shared")
    assert b.read_bytes(blob) == b"shared"
    a.close()
    assert b.read_bytes(blob) == b"shared"
    b.close()


# -- fork(): a child never uses its parent's environment -------------------------------------------
_parents: Store | None = None


def _use_inherited_then_open_again(root: str, blob_hex: str) -> tuple[str, bool, bytes, str]:
    """In a forked child: the parent's store refuses to read; a store opened here has an
    environment of its own, which reads and writes."""
    assert _parents is not None
    try:
        _parents.read_bytes(BlobId.from_hex(blob_hex))
        inherited = "read"
    except CasError as e:
        inherited = str(e)
    with Store(root) as mine:
        return (inherited, mine.index.env is not _parents.index.env, mine.read_bytes(BlobId.from_hex(blob_hex)),
                mine.put(b"written by the child").hex())


def _open(root: str) -> str:
    try:
        Store(root).close()
        return "opened"
    except CasError as e:
        return str(e)


def test_a_forked_child_opens_an_environment_of_its_own(tmp_path):
    global _parents
    _parents = store = Store.init(tmp_path / "s")
    blob = store.put(b"parent's")
    with multiprocessing.get_context("fork").Pool(1) as pool:
        inherited, own_env, read, written = pool.apply(_use_inherited_then_open_again, (str(store.root), blob.hex()))
    assert "opened by process" in inherited and "before a fork" in inherited
    assert own_env and read == b"parent's"
    assert store.read_bytes(BlobId.from_hex(written)) == b"written by the child", "the parent reads on"
    assert store.put(b"and writes") and store.index.env.readers()
    store.close()


def test_a_child_forked_during_a_transaction_refuses_to_open_the_store(tmp_path):
    """Closing the inherited environment would end that transaction in the reader table the
    processes share, under the parent's feet: the child says so instead."""
    global _parents
    _parents = store = Store.init(tmp_path / "s")
    with store.index.read() as txn:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            said = pool.apply(_open, (str(store.root),))
        assert txn.get(b"schema_version", db=store.index.db["meta"]) is not None
    assert "had a transaction open when this process forked" in said
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_open, (str(store.root),)) == "opened"
    store.close()
