"""Width, height and mime of an image from its header (Pillow, no pixel decode), and the
pixel limit of everything that does decode (render, mask imports, exports that draw masks).

An image's size is the size it is shown at: a JPEG whose EXIF orientation turns it a
quarter (a phone photo held upright) is as wide as its stored rows are high, as the
Supervisely SDK (OpenCV), Ultralytics and browsers read it; annotations are in those
coordinates, and `decode(..., oriented=True)` gives those pixels."""

from __future__ import annotations

import io
import mimetypes
import warnings
from dataclasses import dataclass, fields
from typing import IO, TYPE_CHECKING, Any

from cas.config import settings
from cas.errors import InvalidInput, reason
from cas.model.jpeg import jpeg_size
from cas.units import shape_text

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".jfif", ".jpe", ".mpo"})
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND\xaeB`\x82"


def _pillow() -> Any:
    """PIL.Image, loaded on first use (an import whose files the stat cache knows opens no image)."""
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None  # headers of large aerial images are legal; decoding checks max_pixels()
    return Image


def max_pixels() -> int:
    """The most pixels an image or mask may have to be decoded ($CAS_MAX_PIXELS, --max-pixels)."""
    return settings().max_pixels


def check_pixels(width: int, height: int, label: str) -> None:
    """Refuse to decode (or draw) a `width` x `height` image over the pixel limit."""
    limit = max_pixels()
    if width * height > limit:
        raise InvalidInput(label, f"{width}x{height} is {width * height:,} pixels, over the decoding limit of "
                                  f"{limit:,} (raise it with --max-pixels or $CAS_MAX_PIXELS)")


def _open(source: bytes | str | IO[bytes]) -> Image.Image:
    """Pillow's open (the header only), without its warnings about odd files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _pillow().open(io.BytesIO(source) if isinstance(source, bytes) else source)


def _unreadable(label: str, e: Exception) -> InvalidInput:
    return InvalidInput(label, f"not a readable image ({reason(e)})")


def open_for_decoding(source: bytes | str | IO[bytes], label: str) -> Image.Image:
    """An image opened (header read, not decoded) whose size is within the pixel limit;
    a file Pillow cannot read is one InvalidInput."""
    try:
        img = _open(source)
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise many kinds on corrupt input
        raise _unreadable(label, e) from None
    check_pixels(*img.size, label)
    return img


def decode(img: Image.Image, label: str, oriented: bool = False) -> Image.Image:
    """`img`'s pixels loaded (turned as its EXIF orientation says, with `oriented`); a
    corrupt or truncated body is one InvalidInput."""
    try:
        img.load()
        if oriented and orientation(img) != 1:
            from PIL import ImageOps
            return ImageOps.exif_transpose(img)
    except Exception as e:  # noqa: BLE001 - as above
        raise _unreadable(label, e) from None
    return img


EXIF_ORIENTATION = 0x0112
TURNED = frozenset({5, 6, 7, 8})  # orientations that swap width and height


def orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image (1: as stored); an unreadable EXIF block is 1."""
    if "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block does not make the image unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


@dataclass(frozen=True, slots=True)
class MediaInfo:
    width: int
    height: int
    mime: str

    def facts(self) -> dict[str, Any] | None:
        """What the header says beyond the size and type (a video's frames...), as the item
        record keeps it; None for an image."""
        return None


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def _probe_with_pillow(head: bytes, label: str, fallback: bytes | None) -> tuple[int, int, str]:
    """(width, height as shown, Pillow's format name) of the image whose header is in `head`."""
    try:
        try:
            img = _open(head)
        except Exception:  # noqa: BLE001 - Pillow's plugins raise many kinds on corrupt input
            if fallback is None or len(fallback) == len(head):
                raise
            img = _open(fallback)
        width, height = img.size
        if orientation(img) in TURNED:
            width, height = height, width
        return width, height, img.format or ""
    except Exception as e:  # noqa: BLE001 - as above
        if "runcated" in str(e):
            raise InvalidInput(label, "truncated image (header cut short)") from None
        raise _unreadable(label, e) from None


def probe_image(head: bytes, tail: bytes, label: str, fallback: bytes | None = None) -> MediaInfo:
    """Read the header in `head`; check JPEG/PNG trailers so truncated files are refused."""
    plain = jpeg_size(head)  # most images: read without Pillow, as Pillow would
    if plain is not None:
        (width, height), fmt = plain, "JPEG"
    else:
        width, height, fmt = _probe_with_pillow(head, label, fallback)
    if width <= 0 or height <= 0:
        raise InvalidInput(label, f"image has no pixels ({width}x{height})")
    if fmt == "JPEG" and _JPEG_EOI not in tail:
        raise InvalidInput(label, "truncated JPEG (no end-of-image marker)")
    if fmt == "PNG" and not tail.endswith(_PNG_IEND):
        raise InvalidInput(label, "truncated PNG (no IEND chunk)")
    mime = "image/jpeg" if fmt == "JPEG" else \
        _pillow().MIME.get(fmt) or mimetypes.guess_type(label)[0] or "application/octet-stream"
    return MediaInfo(width, height, mime)


VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"})


def is_video_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True, slots=True)
class VideoInfo(MediaInfo):
    frames: int = 0
    duration: float = 0.0  # seconds
    counted: bool = False  # the container stores the frame count (else: duration x rate)

    def facts(self) -> dict[str, Any] | None:
        return {"frames": self.frames, "duration": self.duration}

    @property
    def exact_frames(self) -> int | None:
        """The frame count when the container stores it (an annotation must say the same)."""
        return self.frames if self.counted else None


def info_fields(info: MediaInfo) -> dict[str, Any] | None:
    """The fields of `info` beyond a MediaInfo's (None for an image), to remember it by (`info_of`)."""
    return {f.name: getattr(info, f.name) for f in fields(info)[3:]} or None


def info_of(width: int, height: int, mime: str, extra: dict[str, Any] | None) -> MediaInfo:
    """The MediaInfo (or VideoInfo...) that `info_fields` gave `extra`."""
    if not extra:
        return MediaInfo(width, height, mime)
    kind = next(k for k in _KINDS if {f.name for f in fields(k)[3:]} == extra.keys())
    return kind(width, height, mime, **extra)


def probe_video(source: str | bytes, label: str) -> VideoInfo:
    """Width, height, frame count and duration from the container (PyAV; no frame is
    decoded). When the container does not store a frame count (Matroska, WebM), it is
    duration x rate."""
    import av  # only video imports pay for loading FFmpeg
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else source, "r") as container:
            if not container.streams.video:
                raise InvalidInput(label, "no video stream")
            stream = container.streams.video[0]
            width, height, frames = stream.width, stream.height, stream.frames
            counted = bool(frames)
            seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
                (container.duration or 0) / 1_000_000
            if not frames:
                frames = round(seconds * float(stream.average_rate or 0))
            fmt = container.format.name
    except InvalidInput:
        raise
    except Exception as e:  # noqa: BLE001 - PyAV raises many kinds on a corrupt container
        raise InvalidInput(label, f"not a readable video ({reason(e)})") from None
    if width <= 0 or height <= 0:
        raise InvalidInput(label, f"video has no pixels ({width}x{height})")
    mime = mimetypes.guess_type(label)[0] or f"video/{fmt.split(',')[0]}"
    return VideoInfo(width, height, mime, frames, round(seconds, 3), counted)


POINTCLOUD_EXTENSIONS = frozenset({".pcd"})
PCD_MIME = "application/x-pcd"
_PCD_TYPES = {"F": (4, 8), "I": (1, 2, 4, 8), "U": (1, 2, 4, 8)}


def is_pointcloud_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in POINTCLOUD_EXTENSIONS


@dataclass(frozen=True, slots=True)
class PointcloudInfo(MediaInfo):
    points: int = 0

    def facts(self) -> dict[str, Any] | None:
        return {"points": self.points}


def probe_pointcloud(head: bytes, size: int, label: str) -> PointcloudInfo:
    """The point count of a PCD file (v0.5 to v0.7) from its header in `head`, the file's
    first bytes (no point is parsed); a binary body shorter than POINTS x the point's bytes
    is refused as truncated."""
    header: dict[str, list[str]] = {}
    at = 0
    while "DATA" not in header:
        end = head.find(b"\n", at)
        if end < 0:
            raise InvalidInput(label, "not a PCD file (no DATA line in its header)")
        line = head[at:end].decode("ascii", "replace").strip()
        at = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key.upper()] = values
    try:
        points = int(header["POINTS"][0]) if "POINTS" in header else \
            int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        sizes = [int(v) for v in header["SIZE"]]
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(sizes))]
        types = header["TYPE"]
    except (KeyError, IndexError, ValueError):
        raise InvalidInput(label, "PCD header lacks POINTS (or WIDTH and HEIGHT), SIZE or TYPE, or has a "
                                  "non-number there") from None
    data = header["DATA"][0].lower() if header["DATA"] else ""
    if points < 0 or not (len(sizes) == len(types) == len(counts) == len(header.get("FIELDS", sizes))) or any(
            t not in _PCD_TYPES or n not in _PCD_TYPES[t] for t, n in zip(types, sizes, strict=True)):
        raise InvalidInput(label, "PCD header: FIELDS, SIZE, TYPE and COUNT do not agree")
    if data not in ("ascii", "binary", "binary_compressed"):
        raise InvalidInput(label, f"PCD header: DATA {data!r} is not ascii, binary or binary_compressed")
    body = points * sum(n * c for n, c in zip(sizes, counts, strict=True))
    if data == "binary" and size - at < body:
        raise InvalidInput(label, f"truncated PCD: {points} points need {body} bytes, the file has {size - at}")
    return PointcloudInfo(0, 0, PCD_MIME, points)


VOLUME_EXTENSIONS = frozenset({".nrrd"})
NRRD_MIME = "application/x-nrrd"
_NRRD_TYPE_BYTES = {  # NRRD's type names (and their synonyms) -> bytes per value
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                     "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t",
                     "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int",
                     "int64", "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64",
                     "uint64_t", "double"), 8),
}
_NRRD_ENCODINGS = ("raw", "txt", "text", "ascii", "hex", "gz", "gzip", "bz2", "bzip2")


def is_volume_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in VOLUME_EXTENSIONS


@dataclass(frozen=True, slots=True)
class VolumeInfo(MediaInfo):
    """A volume: width and height are its axial slices' (x, y), `dimensions` its (x, y, z)
    voxels, as the SDK's volumeMeta.dimensionsIJK says them."""

    dimensions: tuple[int, ...] = ()

    def facts(self) -> dict[str, Any] | None:
        return {"dimensions": list(self.dimensions)}


def probe_volume(head: bytes, size: int, label: str) -> VolumeInfo:
    """The dimensions of a 3D NRRD file (a volume, or a Mask3D) from its header in `head`, the
    file's first bytes (no voxel is read); a raw body shorter than its voxels need is refused
    as truncated, a detached header (data in another file) as not a volume of one file."""
    if not head.startswith(b"NRRD000"):
        raise InvalidInput(label, "not an NRRD file (no NRRD000x magic line)")
    end = head.find(b"\n\n")
    if end < 0:
        raise InvalidInput(label, f"NRRD header does not end (no blank line) within {len(head):,} bytes")
    header: dict[str, str] = {}
    for line in head[:end].decode("latin-1").splitlines()[1:]:
        field, colon, value = line.partition(": ")
        if colon and not line.startswith("#") and ":=" not in field:
            header[field.strip().lower()] = value.strip()
    if "data file" in header or "datafile" in header:
        raise InvalidInput(label, "NRRD header names a separate data file: a volume is one .nrrd file")
    try:
        sizes = tuple(int(v) for v in header["sizes"].split())
        dimension = int(header["dimension"])
        value_bytes = _NRRD_TYPE_BYTES[header["type"].lower()]
    except (KeyError, ValueError):
        raise InvalidInput(label, "NRRD header lacks dimension, sizes or a known type, or has a non-number "
                                  "there") from None
    if dimension != 3 or len(sizes) != 3 or min(sizes) <= 0:
        raise InvalidInput(label, f"a volume has 3 dimensions of at least one voxel, this NRRD has sizes "
                                  f"{header['sizes']!r}")
    encoding = header.get("encoding", "").lower()
    if encoding not in _NRRD_ENCODINGS:
        raise InvalidInput(label, f"NRRD encoding {encoding!r} is not one of {', '.join(_NRRD_ENCODINGS)}")
    body = sizes[0] * sizes[1] * sizes[2] * value_bytes
    if encoding == "raw" and "byte skip" not in header and size - end - 2 < body:
        raise InvalidInput(label, f"truncated NRRD: {shape_text(sizes)} voxels need {body} bytes, the "
                                  f"file has {size - end - 2}")
    return VolumeInfo(sizes[0], sizes[1], NRRD_MIME, sizes)


def is_media_name(name: str) -> bool:
    """An image's, a video's, a point cloud's or a volume's file name."""
    return is_image_name(name) or is_video_name(name) or is_pointcloud_name(name) or is_volume_name(name)


_KINDS = (VideoInfo, PointcloudInfo, VolumeInfo)
