"""The remote's version heads (cas.blobs.backends.refs) against moto's S3 server."""

from __future__ import annotations

import boto3
import pytest

from cas import Store
from cas.errors import CasError, Conflict
from cas.ids import BlobId


def _id(n: int) -> BlobId:
    return BlobId(bytes([n]) * 16)


def test_refs_are_created_moved_by_etag_and_listed(s3_store: Store) -> None:
    assert s3_store.s3 is not None
    refs = s3_store.s3.refs
    assert refs.read("p") == (None, None) and refs.list() == {}
    refs.write("p", _id(1), None)
    version, etag = refs.read("p")
    assert version == _id(1) and etag
    with pytest.raises(Conflict, match="p was pushed from elsewhere"):
        refs.write("p", _id(9), None)  # created meanwhile
    refs.write("p", _id(2), etag)
    with pytest.raises(Conflict):
        refs.write("p", _id(3), etag)  # moved meanwhile: the old ETag no longer matches
    refs.write("q", _id(4), None)
    assert refs.list() == {"p": _id(2), "q": _id(4)}


def test_an_unreadable_ref_is_named(s3_store: Store, s3_endpoint: str, bucket: str) -> None:
    assert s3_store.s3 is not None
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(Bucket=bucket, Key="pre/refs/p", Body=b"junk")
    with pytest.raises(CasError, match=f"remote ref of p \\(s3://{bucket}/pre/refs/p\\) is unreadable"):
        s3_store.s3.refs.read("p")
