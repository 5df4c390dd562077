import pytest
import xxhash

from cas.blobs.hashing import Hasher, hash_bytes, hash_file
from cas.errors import InvalidName
from cas.ids import BlobId
from cas.model.names import check_dataset_path, check_name


def test_blob_id_is_xxh3_128_shown_as_32_hex():
    blob = hash_bytes(b"abc")
    assert bytes(blob) == xxhash.xxh3_128_digest(b"abc")
    assert len(str(blob)) == 32 and BlobId.from_hex(str(blob)) == blob


def test_streaming_digest_equals_one_shot(tmp_path):
    data = bytes(range(256)) * 10_000
    h = Hasher()
    for i in range(0, len(data), 4099):
        h.update(data[i:i + 4099])
    assert h.digest() == hash_bytes(data) and h.size == len(data)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(str(tmp_path / "f")) == (hash_bytes(data), len(data))


@pytest.mark.parametrize("text", ["", "zz" * 16, "ab" * 15, "ab" * 17])
def test_bad_blob_id_text_is_refused(text):
    with pytest.raises(InvalidName):
        BlobId.from_hex(text)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a\\b", "x\x00y", "tab\there", "é" * 128])
def test_unsafe_names_are_refused(name):
    with pytest.raises(InvalidName):
        check_name(name)


def test_name_of_255_bytes_is_fine_and_256_is_not():
    check_name("a" * 255)
    with pytest.raises(InvalidName, match="longer than 255"):
        check_name("a" * 256)


def test_dataset_paths_nest_with_slashes_but_each_part_is_checked():
    assert check_dataset_path("train/night") == "train/night"
    for bad in ("train/../x", "/train", "train/", "a//b"):
        with pytest.raises(InvalidName):
            check_dataset_path(bad)
