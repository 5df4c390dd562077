"""The blobs and pins tables through their owner, cas.blobs.catalog."""

from cas.blobs import catalog
from cas.ids import BlobId


def test_scan_blobs_resumes_past_the_id_it_is_given(store):
    ids = sorted(bytes(store.put(b"blob %d" % i)) for i in range(5))
    with store.index.read() as txn:
        assert [key for key, _raw in catalog.scan_blobs(store.index, txn)] == ids
        assert [key for key, _raw in catalog.scan_blobs(store.index, txn, ids[1])] == ids[2:]
        assert [key for key, _raw in catalog.scan_blobs(store.index, txn, ids[-1])] == []
        not_an_id = ids[1] + b"\x01"  # between ids[1] and ids[2]
        assert [key for key, _raw in catalog.scan_blobs(store.index, txn, not_an_id)] == ids[2:]


def test_pins_are_counted_scanned_and_dropped_with_their_blob(store):
    kept, gone = store.put(b"kept"), store.put(b"gone")
    store.put(b"kept")  # a second pin
    with store.index.write() as txn:
        assert catalog.pin_count(store.index, txn, kept) == 2
        assert dict(catalog.scan_pins(store.index, txn)) == {bytes(kept): 2, bytes(gone): 1}
        catalog.delete_blob(store.index, txn, gone)
        assert not catalog.has_blob(store.index, txn, gone) and catalog.has_blob(store.index, txn, bytes(kept))
        catalog.drop_dangling_pins(store.index, txn)
        assert dict(catalog.scan_pins(store.index, txn)) == {bytes(kept): 2}
        assert catalog.pin_count(store.index, txn, BlobId(bytes(gone))) == 0
