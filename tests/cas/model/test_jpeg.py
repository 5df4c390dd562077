"""The plain-JPEG header reader gives what Pillow gives, or leaves the file to Pillow."""

import io
import random

import pytest
from PIL import Image

from cas.errors import InvalidInput
from cas.model import jpeg, media
from cas.model.media import probe_image


def pillow_probe(data: bytes):
    """What the probe says with Pillow alone (the reader turned off)."""
    try:
        return media._probe_with_pillow(data, "x.jpg", None)
    except InvalidInput:
        return None


def encoded(mode="RGB", size=(37, 23), exif=None, **options) -> bytes:
    img = Image.new(mode, size, 128 if mode == "L" else (10, 200, 30, 0)[:len(mode)])
    buf = io.BytesIO()
    img.save(buf, "JPEG", **({"exif": exif} if exif is not None else {}), **options)
    return buf.getvalue()


def turned_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: width and height swap
    return exif.tobytes()


PLAIN = {
    "rgb": encoded(),
    "grey": encoded("L", (5, 700)),
    "cmyk": encoded("CMYK", (64, 48)),
    "progressive": encoded(progressive=True, size=(300, 200)),
    "optimized": encoded(optimize=True, quality=30),
    "comment": encoded(comment=b"made by a test"),
    "icc": encoded(icc_profile=b"\0" * 300),
    "subsampled": encoded(subsampling=0, size=(640, 480)),
}


@pytest.mark.parametrize("name", PLAIN)
def test_plain_jpegs_are_read_without_pillow_with_pillows_answer(name):
    data = PLAIN[name]
    width, height = jpeg.jpeg_size(data)
    assert (width, height, "JPEG") == pillow_probe(data)
    assert probe_image(data, data[-64:], "x.jpg") == media.MediaInfo(width, height, "image/jpeg")


def test_exif_and_other_files_are_left_to_pillow():
    turned = encoded(size=(40, 10), exif=turned_exif())
    assert jpeg.jpeg_size(turned) is None
    assert probe_image(turned, turned[-64:], "x.jpg").width == 10  # as shown: turned
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    assert jpeg.jpeg_size(buf.getvalue()) is None
    assert jpeg.jpeg_size(b"") is None and jpeg.jpeg_size(b"\xff\xd8\xff") is None


def test_a_header_cut_short_or_damaged_is_never_read_differently_from_pillow():
    """Every header the reader accepts, Pillow reads the same; every damaged one is Pillow's to judge."""
    rng = random.Random(0)
    accepted = 0
    for data in PLAIN.values():
        sos = data.index(b"\xff\xda")
        for cut in range(0, sos + 20, 7):  # cut short
            got = jpeg.jpeg_size(data[:cut])
            assert got is None or (*got, "JPEG") == pillow_probe(data[:cut])
        for _ in range(300):  # bytes of the header changed
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                damaged[rng.randrange(2, sos + 4)] = rng.randrange(256)
            got = jpeg.jpeg_size(bytes(damaged))
            if got is not None:
                accepted += 1
                assert (*got, "JPEG") == pillow_probe(bytes(damaged)), bytes(damaged[:sos + 4])
    assert accepted > 100  # most changes to table contents leave a readable header
