"""The pack object layout: the trailer round-trips and a damaged one is refused."""

from __future__ import annotations

import pytest

from cas.blobs.backends.s3packs import (
    FOOTER,
    BadPack,
    PackEntry,
    decode_trailer,
    encode_trailer,
    is_pack_name,
    new_pack_name,
    pack_key_name,
    trailer_offset,
)
from cas.ids import BlobId


def test_trailer_round_trips_and_says_where_it_starts():
    entries = [PackEntry(BlobId(bytes([i]) * 16), 24 + 40 * i, 16) for i in range(3)]
    tail = encode_trailer(entries, 120)
    assert trailer_offset(tail[-FOOTER.size:], 120 + len(tail), "p") == 120
    assert decode_trailer(tail, "p") == entries


def test_damaged_trailer_is_refused_by_its_digest():
    tail = bytearray(encode_trailer([PackEntry(BlobId(b"a" * 16), 24, 5)], 29))
    tail[10] ^= 1
    with pytest.raises(BadPack, match="does not match its digest"):
        decode_trailer(bytes(tail), "p")


def test_an_object_without_a_footer_is_not_a_pack():
    with pytest.raises(BadPack, match="no pack index"):
        trailer_offset(b"x" * FOOTER.size, 1000, "s3://b/k")


def test_pack_names_are_random_hex_and_keys_parse_back():
    name = new_pack_name()
    assert is_pack_name(name) and name != new_pack_name()
    assert pack_key_name(name + ".pack") == name
    assert pack_key_name(name + ".idx") is None and pack_key_name("../x.pack") is None
