import pytest

from cas import SchemaError, Store
from cas.index import SCHEMA_KEY, SCHEMA_VERSION, Index


def test_schema_version_is_written_at_init(tmp_path):
    index = Index(tmp_path / "index", create=True)
    with index.read() as txn:
        assert int(txn.get(SCHEMA_KEY, db=index.db["meta"])) == SCHEMA_VERSION
    index.close()


@pytest.mark.parametrize("version,word", [(SCHEMA_VERSION + 1, "newer"), (0, "older")])
def test_other_schema_version_is_refused_not_rewritten(tmp_path, version, word):
    Store(tmp_path / "s").close()
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


def test_opening_a_missing_store_without_create_says_so(tmp_path):
    from cas import NotFound
    with pytest.raises(NotFound, match="cas init"):
        Store(tmp_path / "nothing", create=False)


def test_two_stores_on_one_path_share_one_environment(tmp_path):
    a = Store(tmp_path / "s")
    b = Store(tmp_path / "s")
    blob = a.put(b"shared")
    assert b.read_bytes(blob) == b"shared"
    a.close()
    assert b.read_bytes(blob) == b"shared"
    b.close()
