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
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from cas.config import settings
from cas.errors import InvalidInput, reason
from cas.model.jpeg import jpeg_size

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


def probe_video(source: str | bytes, label: str) -> VideoInfo:
    """Width, height and frame count from the container (PyAV; no frame is decoded). When
    the container does not store a frame count (Matroska, WebM), it is duration x rate."""
    import av  # only video imports pay for loading FFmpeg
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else source, "r") as container:
            if not container.streams.video:
                raise InvalidInput(label, "no video stream")
            stream = container.streams.video[0]
            width, height, frames = stream.width, stream.height, stream.frames
            if not frames:
                seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
                    (container.duration or 0) / 1_000_000
                frames = round(seconds * float(stream.average_rate or 0))
            fmt = container.format.name
    except InvalidInput:
        raise
    except Exception as e:  # noqa: BLE001 - PyAV raises many kinds on a corrupt container
        raise InvalidInput(label, f"not a readable video ({reason(e)})") from None
    if width <= 0 or height <= 0:
        raise InvalidInput(label, f"video has no pixels ({width}x{height})")
    mime = mimetypes.guess_type(label)[0] or f"video/{fmt.split(',')[0]}"
    return VideoInfo(width, height, mime, frames)
