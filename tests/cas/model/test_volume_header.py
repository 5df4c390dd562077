"""A volume's NRRD header read without its voxels (`probe_volume`): dimensions, and one line
for what is not a volume of one file."""

from __future__ import annotations

import pytest

from cas.errors import InvalidInput
from cas.model.media import probe_volume

HEADER = "NRRD0005\n# a comment: with a colon\ntype: {type}\ndimension: {dimension}\nsizes: {sizes}\n" \
         "encoding: {encoding}\nspace origin: (0,0,0)\nmodality:=CT\n{extra}\n"


def nrrd(type: str = "short", dimension: int = 3, sizes: str = "4 3 2", encoding: str = "raw",
         extra: str = "", body: int = 48) -> bytes:
    return HEADER.format(type=type, dimension=dimension, sizes=sizes, encoding=encoding, extra=extra).encode() \
        + bytes(body)


def probe(data: bytes):
    return probe_volume(data, len(data), "v.nrrd")


def test_dimensions_and_size_come_from_the_header():
    info = probe(nrrd())
    assert (info.width, info.height, info.dimensions, info.mime) == (4, 3, (4, 3, 2), "application/x-nrrd")
    assert info.facts() == {"dimensions": [4, 3, 2]}
    assert probe(nrrd(encoding="gzip", body=3)).dimensions == (4, 3, 2)  # compressed: not sized by the header


@pytest.mark.parametrize(("data", "words"), [
    (b"P5\n4 3\n255\n", "not an NRRD file"),
    (nrrd(body=47), "truncated NRRD: 4x3x2 voxels need 48 bytes, the file has 47"),
    (nrrd(dimension=4, sizes="1 4 3 2"), "a volume has 3 dimensions"),
    (nrrd(sizes="4 0 2"), "a volume has 3 dimensions of at least one voxel"),
    (nrrd(type="block"), "a known type"),
    (nrrd(encoding="zstd"), "NRRD encoding 'zstd'"),
    (nrrd(extra="data file: v.raw\n"), "separate data file"),
    (HEADER.format(type="short", dimension=3, sizes="4 3 2", encoding="raw", extra="").encode()[:-1],
     "NRRD header does not end"),
])
def test_what_is_not_a_volume_of_one_file_is_one_line(data, words):
    with pytest.raises(InvalidInput) as e:
        probe(data)
    assert str(e.value).startswith("v.nrrd: ") and words in str(e.value) and "\n" not in str(e.value)
