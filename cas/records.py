"""Index records as frozen dataclasses; all msgpack encoding lives here."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import msgpack

from cas.ids import BlobId

LOCAL = "local"
PACK = "pack"  # a small blob inside a pack file under <store>/packs/ (cas.blobs.backends.packs)
S3 = "s3"
S3PACK = "s3pack"  # a small blob inside an S3 pack object <prefix>/packs/<name>.pack (cas.blobs.backends.s3packs)
LINK = "link"
STORED_HERE = (LOCAL, PACK)  # the locations whose bytes are on this machine
PACKED = (PACK, S3PACK)  # the locations whose records keep a pack name and an offset
UNKNOWN_SIZE = -1  # a link imported without a HEAD: learned on first read


_packers = threading.local()
_KEPT_BUFFER = 1 << 20  # a Packer keeps its largest buffer: one that grew past this is dropped


def pack(obj: Any) -> bytes:
    # One Packer per thread, kept: msgpack.packb builds one per call, whose buffer is a fresh
    # 256 KiB allocation (an mmap and a munmap), three times the cost of packing a record.
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    raw: bytes = packer.pack(obj)
    if len(raw) > _KEPT_BUFFER:
        _packers.packer = None
    return raw


def unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False)


def _trusted_id(raw: bytes) -> BlobId:
    """A BlobId from 16 bytes the index wrote (no length check: records decode by the million)."""
    return bytes.__new__(BlobId, raw)


# The two records decoded per item and per blob are plain (not frozen) dataclasses: a frozen
# one costs 4 us to build against 1 us, and a listing of a million items builds a million.
# Treat them as immutable all the same: `dataclasses.replace` makes a changed copy.
@dataclass(slots=True)
class BlobRecord:
    """Size, location and reference count of one blob.

    A link entry (location LINK) also keeps its URL, the ETag and size seen at import
    or first read (a later read that finds others fails), and the content digest once a
    full read has computed it. A packed blob (location PACK or S3PACK) keeps its pack's name
    and the offset of its bytes there.
    """

    size: int
    refcount: int = 0
    location: str = LOCAL
    created: int = 0  # ns since epoch
    url: str | None = None
    etag: str | None = None
    digest: BlobId | None = None
    pack: str | None = None
    offset: int = 0

    def encode(self) -> bytes:
        fields: list[Any] = [self.size, self.refcount, self.location, self.created]
        if self.url is not None:  # 7 fields
            fields += [self.url, self.etag, bytes(self.digest) if self.digest is not None else None]
        elif self.pack is not None:  # 6 fields
            fields += [self.pack, self.offset]
        return pack(fields)

    @classmethod
    def decode(cls, raw: bytes) -> BlobRecord:
        fields = unpack(raw)
        if len(fields) == 4:
            return cls(*fields)
        if len(fields) == 6:
            size, refcount, location, created, pack_name, offset = fields
            return cls(size, refcount, location, created, pack=pack_name, offset=offset)
        size, refcount, location, created, url, etag, digest = fields
        return cls(size, refcount, location, created, url, etag, _trusted_id(digest) if digest is not None else None)

    @staticmethod
    def raw_summary(raw: bytes) -> tuple[int, int, str]:
        """(size, refcount, location) of an encoded record, for scans over every blob."""
        fields = unpack(raw)
        return fields[0], fields[1], fields[2]

    @staticmethod
    def raw_is_packed(raw: bytes) -> bool:
        """Whether an encoded record is of a packed blob: only those are 6-element arrays."""
        return raw[:1] == b"\x96"

    @staticmethod
    def raw_has_url(raw: bytes) -> bool:
        """Whether an encoded record carries a URL (a link), without decoding it: only link
        records are 7-element arrays (msgpack fixarray header 0x97)."""
        return raw[:1] == b"\x97"

    @property
    def packed(self) -> bool:
        """Whether the bytes are an entry of a pack (local or in S3): `pack` and `offset` say where."""
        return self.location in PACKED

    def at_entry(self, location: str, pack: str, offset: int) -> bool:
        """Whether the record points at the entry at `offset` of pack `pack` of `location` (PACK or S3PACK)."""
        return self.location == location and self.pack == pack and self.offset == offset

    def content_digest(self, blob_id: BlobId) -> BlobId | None:
        """What the bytes must hash to: the id, or for a link the digest a full read learned (None before)."""
        return self.digest if self.location == LINK else blob_id

    def with_refcount(self, refcount: int) -> BlobRecord:
        return BlobRecord(self.size, refcount, self.location, self.created, self.url, self.etag, self.digest,
                          self.pack, self.offset)


Related = tuple[str, BlobId, int]  # a related file of an item: name, blob, size


@dataclass(slots=True)
class ItemRecord:
    """One image (video, point cloud): its media blob, annotation blob and header facts. A
    frame of a point-cloud episode holds its episode's annotation.json as `ann` and its
    frame_pointcloud_map.json as `meta` (`cas.model.episode`)."""

    media: BlobId
    ann: BlobId
    size: int
    ann_size: int
    width: int
    height: int
    mime: str
    mtime: int  # ns since epoch; stable across remounts
    meta: BlobId | None = None
    meta_size: int = 0
    facts: dict[str, Any] | None = None  # what the media's header says beyond its size (a video's frames...)
    related: list[Related] | None = None  # files that go with the media (a point cloud's camera images...)

    def blobs(self) -> list[BlobId]:
        """Every blob this item holds a reference on."""
        out = [self.media, self.ann]
        if self.meta is not None:
            out.append(self.meta)
        if self.related:
            out.extend(blob for _name, blob, _size in self.related)
        return out

    def related_file(self, name: str) -> Related:
        """The related file named `name` (KeyError if the item has none of that name)."""
        for rel in self.related or ():
            if rel[0] == name:
                return rel
        raise KeyError(name)

    def with_size(self, size: int) -> ItemRecord:
        return ItemRecord(self.media, self.ann, size, self.ann_size, self.width, self.height, self.mime,
                          self.mtime, self.meta, self.meta_size, self.facts, self.related)

    def same_content(self, other: ItemRecord) -> bool:
        return (self.media, self.ann, self.meta, self.related) == (other.media, other.ann, other.meta, other.related)

    def encode(self) -> bytes:
        fields = [bytes(self.media), bytes(self.ann), self.size, self.ann_size, self.width, self.height, self.mime,
                  self.mtime, bytes(self.meta) if self.meta is not None else None, self.meta_size]
        if self.facts is not None or self.related:  # later fields only when there are any: an image's record
            fields.append(self.facts)                # stays as it was
        if self.related:
            fields.append([[name, bytes(blob), size] for name, blob, size in self.related])
        return pack(fields)

    @staticmethod
    def raw_ids(raw: bytes) -> tuple[BlobId, BlobId]:
        """(media id, annotation id) of an encoded record, sliced out: both are 16-byte bin
        fields at the head of the array (header 0x9a, then c4 10 before each)."""
        return _trusted_id(raw[3:19]), _trusted_id(raw[21:37])

    @staticmethod
    def raw_sizes(raw: bytes) -> tuple[bytes, int, int]:
        """(media id, media size, annotation + item meta + related files' size) of an encoded
        record, for scans over every item."""
        fields = unpack(raw)
        related = sum(size for _name, _blob, size in fields[11]) if len(fields) > 11 else 0
        return fields[0], fields[2], fields[3] + fields[9] + related

    @staticmethod
    def raw_image(raw: bytes) -> tuple[bytes, int, int]:
        """(media id, width, height) of an encoded record."""
        fields = unpack(raw)
        return fields[0], fields[4], fields[5]

    @staticmethod
    def raw_blobs(raw: bytes) -> tuple[bytes, int, bytes, int, bytes | None, int, list[tuple[bytes, int]]]:
        """(media id, media size, annotation id, its size, item meta id or None, its size,
        [(blob id, size)] of its related files) of an encoded record, for scans over every item."""
        fields = unpack(raw)
        related = [(blob, size) for _name, blob, size in fields[11]] if len(fields) > 11 else []
        return fields[0], fields[2], fields[1], fields[3], fields[8], fields[9], related

    @staticmethod
    def raw_ann_facts(raw: bytes) -> tuple[bytes, dict[str, Any] | None]:
        """(annotation id, header facts: a video's frames..., None for an image) of an encoded record."""
        fields = unpack(raw)
        return fields[1], fields[10] if len(fields) > 10 else None

    @classmethod
    def decode(cls, raw: bytes) -> ItemRecord:
        media, ann, size, ann_size, w, h, mime, mtime, meta, meta_size, *later = unpack(raw)
        related = [(name, _trusted_id(blob), n) for name, blob, n in later[1]] if len(later) > 1 else None
        return cls(_trusted_id(media), _trusted_id(ann), size, ann_size, w, h, mime, mtime,
                   _trusted_id(meta) if meta is not None else None, meta_size, later[0] if later else None, related)


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    created: int
    description: str = ""

    def encode(self) -> bytes:
        return pack([self.created, self.description])

    @classmethod
    def decode(cls, raw: bytes) -> DatasetRecord:
        created, description = unpack(raw)
        return cls(created, description)


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """A project and its Supervisely meta (classes, tags, projectType)."""

    created: int
    meta: dict[str, Any] = field(default_factory=dict)
    mtime: int = 0

    @property
    def project_type(self) -> str:
        return self.meta.get("projectType", "images")

    def encode(self) -> bytes:
        return pack([self.created, self.meta, self.mtime])

    @classmethod
    def decode(cls, raw: bytes) -> ProjectRecord:
        created, meta, mtime = unpack(raw)
        return cls(created, meta, mtime)


def content_differences(media: tuple[BlobId, BlobId], ann: tuple[BlobId, BlobId],
                        meta: tuple[BlobId | None, BlobId | None], noun: str = "image") -> str:
    """What differs between a stored item and an incoming one, as 'image and annotation'
    (each argument is the (stored, incoming) pair of one part; `noun` names the media)."""
    parts = [what for what, (a, b) in ((noun, media), ("annotation", ann), ("item meta", meta)) if a != b]
    if not parts:
        return "related files"  # the one part left (`ItemRecord.same_content`)
    return " and ".join(parts) if len(parts) < 3 else f"{noun}, annotation and item meta"
