"""The size of a plain JPEG from its header, without Pillow (a probe of every image imported:
Pillow's takes about 24 us, this a few).

Only a header of the plainest kind is read here: the start-of-image marker, then segments
Pillow reads without complaint (APPn other than EXIF and MPF, quantization tables that add
up, Huffman tables, restart interval, comments), one baseline, extended or progressive
frame of 8-bit samples with 1, 3 or 4 components, and the start of scan, all inside the
bytes given. Anything else (EXIF, whose orientation may turn the image; MPO; fill bytes,
junk, other markers, a second frame, a short segment) gets None, and Pillow decides, as
before.
"""

from __future__ import annotations

_SOI = b"\xff\xd8"
_FRAMES = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended sequential, progressive
_SKIPPED = frozenset({0xC4, 0xDD, 0xFE, *range(0xE0, 0xF0)})  # DHT, DRI, COM, APPn (checked below)
_DQT, _SOS = 0xDB, 0xDA


def _plain_app(marker: int, payload: bytes) -> bool:
    """Whether Pillow reads this APPn segment as data it keeps, nothing that changes the probe."""
    if marker == 0xE1:
        return not payload.startswith(b"Exif")  # EXIF: the orientation may swap width and height
    if marker == 0xE2:
        return not payload.startswith(b"MPF")  # a multi-picture file (MPO)
    if marker == 0xE0 and payload.startswith(b"JFIF"):
        return len(payload) >= 12  # Pillow reads the version and the density
    if marker == 0xEE and payload.startswith(b"Adobe"):
        return len(payload) >= 7  # Pillow reads the transform flags
    return not (marker == 0xED and payload.startswith(b"Photoshop"))  # resources Pillow parses


def _tables_add_up(payload: bytes) -> bool:
    """Whether a DQT segment holds whole tables (8-bit: 64 bytes, 16-bit: 128, after a byte)."""
    i = 0
    while i < len(payload):
        i += 1 + (64 if payload[i] >> 4 == 0 else 128)
    return i == len(payload)


def jpeg_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a plain JPEG whose header lies in `head` (see the module docstring), or None."""
    if not head.startswith(_SOI):
        return None
    size: tuple[int, int] | None = None
    i, end = 2, len(head)
    while i + 4 <= end:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        length = int.from_bytes(head[i + 2:i + 4], "big")
        if length < 2 or i + 2 + length > end:
            return None
        payload = head[i + 4:i + 2 + length]
        if marker == _SOS:
            return size
        if marker in _FRAMES:
            if size is not None or len(payload) < 6 or payload[0] != 8 or payload[5] not in (1, 3, 4):
                return None
            size = int.from_bytes(payload[3:5], "big"), int.from_bytes(payload[1:3], "big")
            if 0 in size:
                return None
        elif marker == _DQT:
            if not _tables_add_up(payload):
                return None
        elif marker not in _SKIPPED or (0xE0 <= marker <= 0xEF and not _plain_app(marker, payload)):
            return None
        i += 2 + length
    return None
