"""The per-item work of an import, run in a worker thread or process.

Read the file once and hash it, probe the image header, validate the
annotation, and, for content the index does not know yet, write it to a temp
file and rename it into place (or, up to PACK_MAX bytes, append it to a pack).
Nothing here touches the index for writing: the session records new blobs
after one sync per batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.blobs.backends.packs import PACK_MAX, PackWriter
from cas.blobs.catalog import known_intact, record_new_blob
from cas.blobs.spool import Spooled, spool_bytes
from cas.errors import Conflict, CorruptBlob, InvalidInput
from cas.ids import BlobId
from cas.index import Index, item_key
from cas.ingest import statcache
from cas.ingest.statcache import Seen
from cas.ingest.workers import exit_with
from cas.model.annotation import (
    CLOUD_TYPES,
    Meta,
    dumps,
    empty_annotation,
    empty_item_annotation,
    loads,
)
from cas.model.episode import EpisodeFiles
from cas.model.layout import sections
from cas.model.media import (
    MediaInfo,
    VolumeInfo,
    probe_image,
    probe_pointcloud,
    probe_video,
    probe_volume,
)
from cas.model.namespace import raw_item
from cas.model.related import check_json, check_mask, image_of
from cas.records import ItemRecord, Related, content_differences

if TYPE_CHECKING:
    from cas.store import Store

# dataset, name, media, ann, item meta, label, ann label, related files ((name, source, label), ...)
Task = tuple[str, str, Any, Any, Any, str, str, tuple[tuple[str, Any, str], ...]]
PACKED_REMEMBERED = 100_000  # new packed blobs a preparer remembers (~10 MB), then forgets at once


@dataclass(slots=True)
class Part:
    """One blob of an item: its id, size, whether this import installed it, and where in a
    pack if it went into one (pack name, offset)."""

    id: BlobId
    size: int
    new: bool
    packed: tuple[str, int] | None = None


@dataclass(slots=True)
class Prepared:
    dataset: str
    name: str
    media: Part
    ann: Part
    meta: Part | None
    info: MediaInfo
    notes: dict[str, int] | None = None  # what a converter's annotation builder counted
    stat_entry: tuple[bytes, bytes] | None = None  # for the stat cache, when media was read from a path
    from_stat_cache: bool = False  # media known from the stat cache, not read
    related: list[tuple[str, Part]] | None = None
    unchanged: bool = False  # the item stored under this name holds the same blobs: nothing to publish

    def parts(self) -> list[Part]:
        return [self.media, self.ann] + ([self.meta] if self.meta else []) + [p for _n, p in self.related or ()]


def _same(old: ItemRecord | None, media: BlobId, ann: Part, meta: Part | None,
          related: list[Related] | None) -> bool:
    """Whether the stored item `old` holds these blobs (as `ItemRecord.same_content` compares)."""
    return old is not None and (old.media, old.ann, old.meta, old.related) == (
        media, ann.id, meta.id if meta else None, related)


def holds_image(index: Index, txn: Any, key: bytes, seen: Seen) -> bool:
    """Whether the item stored at `key` holds the image the stat cache knows, at its size:
    given alone (no annotation, no item meta), the image keeps the item exactly as it is, as
    `Preparer._annotate` would find (the stored annotation and item meta are kept)."""
    raw = raw_item(index, txn, key)
    return raw is not None and ItemRecord.raw_image(raw) == (bytes(seen.blob), seen.info.width, seen.info.height)


def item_record(item: Prepared) -> ItemRecord:
    """The index record of a prepared item."""
    meta = item.meta
    related = [(name, part.id, part.size) for name, part in item.related] if item.related else None
    return ItemRecord(item.media.id, item.ann.id, item.media.size, item.ann.size, item.info.width,
                      item.info.height, item.info.mime, time.time_ns(),
                      meta.id if meta else None, meta.size if meta else 0, item.info.facts(), related)


def record_new_parts(store: Store, txn: Any, parts: Iterable[Part]) -> list[Part]:
    """Record the blobs that `parts` installed, once a sync made them durable; returns the
    parts whose blob was new to the index."""
    return [part for part in parts if part.new and record_new_blob(
        store.index, txn, part.id, part.size, store.write_backend.location, packed=part.packed)]


@dataclass(frozen=True)
class PrepareConfig:
    """Everything a worker needs; small and picklable, so it can cross into a process."""

    store_root: str
    tmp: str
    project: str
    meta: dict[str, Any]
    check_conflicts: bool
    verify_dedup: bool
    project_existed: bool = True  # False: a new project, whose items need no lookup
    client_pid: int = 0  # the importing process; a worker process exits when it is gone
    take_files: bool = False  # the sources are the store's own staged files: new blobs link them
    dry_run: bool = False  # hash and check only: no blob is installed, no temp copy made


class Preparer:
    """Turns tasks into prepared items (see module docstring)."""

    def __init__(self, config: PrepareConfig, store: Store, pack: bool = True) -> None:
        self.config = config
        self.store = store
        self.meta = Meta(config.meta)
        self._empty_anns: dict[tuple[int, int], Spooled] = {}
        self._shared_parts: dict[BlobId, Part] = {}  # shared blobs settled: id -> its part
        # the last episode's files (their sources, then read): frames come episode by episode
        self._episode: tuple[tuple[str | bytes, str | bytes], Spooled, Spooled] | None = None
        # Small new blobs go into packs (of this preparer's own) when blobs are written here,
        # not to S3; `pack=False` for a preparer of one item, which would make a pack of one.
        self.packs = PackWriter(store.local.pack_dir) if pack and store.write_backend is store.local \
            and not config.dry_run else None
        # Where this preparer packed each new blob: a copy met again before the index records
        # the first (later in the chunk, or in the batch being made durable) is not packed twice.
        self._packed: dict[BlobId, tuple[str, int]] = {}

    def prepare_chunk(self, chunk: list[Task], txn: Any = None) -> list[Prepared | InvalidInput]:
        """Prepare the tasks of a chunk in one read snapshot (`txn`, or one of its own): a blob
        committed meanwhile is at worst written twice."""
        if txn is None:
            with self.store.index.read() as txn:
                return self.prepare_chunk(chunk, txn)
        out: list[Prepared | InvalidInput] = []
        for task in chunk:
            try:
                out.append(self.prepare(txn, *task))
            except InvalidInput as e:
                out.append(e)
        return out

    def prepare(self, txn: Any, dataset: str, name: str, media: Any, ann: Any, item_meta: Any,
                label: str, ann_label: str, related: tuple[tuple[str, Any, str], ...] = ()) -> Prepared:
        spools, masks = self._spool_related(related)
        try:
            ids = [(rel, sp.id, sp.size) for rel, sp, _label in spools] or None
            item = self._prepare(txn, dataset, name, media, ann, item_meta, label, ann_label, ids, masks)
            if spools:
                item.related = [(rel, self._settle(txn, sp, lbl)) for rel, sp, lbl in spools]
            return item
        finally:
            for _rel, sp, _label in spools:
                sp.discard()

    def _prepare(self, txn: Any, dataset: str, name: str, media: Any, ann: Any, item_meta: Any,
                 label: str, ann_label: str, related: list[Related] | None,
                 masks: list[tuple[VolumeInfo, str]]) -> Prepared:
        if isinstance(media, Seen):  # the stat cache knows the file: nothing to read
            _check_masks(masks, media.info)
            ann_part, meta_part, notes, old = self._annotate(txn, dataset, name, media.blob, media.info, ann,
                                                             item_meta, label, ann_label, related)
            return Prepared(dataset, name, Part(media.blob, media.size, False), ann_part, meta_part,
                            media.info, notes, from_stat_cache=True,
                            unchanged=_same(old, media.blob, ann_part, meta_part, related))
        try:
            # a dry run only hashes: a large file is read in place, as a file of the store's own
            sp = self.store.spool(media, self.config.tmp, owned=self.config.take_files or self.config.dry_run)
        except FileNotFoundError:
            raise InvalidInput(label, "file not found") from None
        except IsADirectoryError:
            raise InvalidInput(label, "is a directory, not a file") from None
        try:
            info = self._probe(sp, label)
            _check_masks(masks, info)
            ann_part, meta_part, notes, old = self._annotate(txn, dataset, name, sp.id, info, ann, item_meta,
                                                             label, ann_label, related)
            media_part = self._settle(txn, sp, label)
            stat_entry = statcache.entry(sp.stat, sp.looked_at, sp.id, info) if sp.stat is not None else None
            return Prepared(dataset, name, media_part, ann_part, meta_part, info, notes, stat_entry,
                            unchanged=_same(old, sp.id, ann_part, meta_part, related))
        finally:
            sp.discard()

    def _spool_related(self, related: tuple[tuple[str, Any, str], ...],
                       ) -> tuple[list[tuple[str, Spooled, str]], list[tuple[VolumeInfo, str]]]:
        """The related files of an item read and checked (images by their header, JSON parsed,
        a volume's masks by their NRRD header: returned, to be checked against the volume);
        settled only once the item is known to fit."""
        out: list[tuple[str, Spooled, str]] = []
        masks: list[tuple[VolumeInfo, str]] = []
        try:
            for name, source, label in related:
                try:
                    sp = self.store.spool(source, self.config.tmp, owned=self.config.take_files or self.config.dry_run)
                except (FileNotFoundError, IsADirectoryError):
                    raise InvalidInput(label, "not a file") from None
                out.append((name, sp, label))
                if self.meta.project_type == "volumes":
                    masks.append((probe_volume(sp.head, sp.size, label), label))
                elif image_of(name) is None:
                    probe_image(sp.head, sp.tail, label)
                else:
                    raw = sp.data if sp.data is not None else Path(sp.file or "").read_bytes()
                    check_json(name, loads(raw, label), label)
        except BaseException:
            for _name, sp, _label in out:
                sp.discard()
            raise
        return out, masks

    def _annotate(self, txn: Any, dataset: str, name: str, media: BlobId, info: MediaInfo, ann: Any,
                  item_meta: Any, label: str, ann_label: str, related: list[Related] | None,
                  ) -> tuple[Part, Part | None, dict[str, int] | None, ItemRecord | None]:
        """The annotation and item meta parts of an item, checked against the image and, without
        --overwrite, against the item stored under the same name; the builder's notes; and the
        stored item, when it was looked up."""
        if isinstance(ann, EpisodeFiles) or self.meta.project_type == "point_cloud_episodes":
            return self._episode_parts(txn, dataset, name, media, ann, label, related)
        notes = None
        if callable(ann):  # a converter's builder, run here (in parallel) with the real image size
            ann = ann(info.width, info.height)
            if isinstance(ann, tuple):
                ann, notes = ann
        # One lookup serves both rules, and neither needs it when the source has everything and
        # --overwrite is given: what the source lacks is kept from the item stored under this
        # name when its size is unchanged (a re-import of the images alone never wipes
        # annotations edited since), and without --overwrite the item must not differ.
        # A project that did not exist when the import began has no stored item to look up.
        needed = self.config.project_existed and (ann is None or item_meta is None or self.config.check_conflicts)
        old = self._stored(txn, dataset, name) if needed else None
        kept = old if old is not None and (old.width, old.height) == (info.width, info.height) else None
        ann_sp: Spooled | None = None
        empty = False  # the empty annotation of an image: one for many items
        if ann is None and kept is None:
            facts = info.facts()
            if facts is None:  # an image's: one for every image of its size
                ann_sp, empty = self._empty_annotation(info.width, info.height), True
            else:  # a video's (cloud's, volume's) empty annotation names its media: one each
                ann_sp = spool_bytes(dumps(empty_item_annotation(self.meta.project_type, info.width, info.height,
                                                                 media, facts)))
        elif ann is not None:
            if isinstance(ann, (bytes, bytearray)):
                ann = loads(bytes(ann), ann_label)  # loads tells bytes from str; bytes(b) is b
            self.meta.check_item_annotation(ann, ann_label, info.width, info.height, info,
                                            [rel for rel, _blob, _size in related or ()])
            ann_sp = spool_bytes(dumps(ann))
        meta_sp = spool_bytes(dumps(item_meta)) if item_meta is not None else None
        if ann_sp is not None:
            ann_part = Part(ann_sp.id, ann_sp.size, False)  # settled below, once no conflict stops it
        else:
            assert kept is not None  # no annotation given: the stored one stays
            ann_part = Part(kept.ann, kept.ann_size, False)
        meta_part = None
        if meta_sp is None and kept is not None and kept.meta is not None:
            meta_part = Part(kept.meta, kept.meta_size, False)
        if self.config.check_conflicts and old is not None:  # before any blob is installed
            self._check_conflict(old, dataset, name, media, ann_part.id, meta_sp.id if meta_sp else
                                 meta_part.id if meta_part else None, related)
        if ann_sp is not None:
            ann_part = self._settle_shared(txn, ann_sp, ann_label) if empty else self._settle(txn, ann_sp, ann_label)
        if meta_sp is not None:
            meta_part = self._settle(txn, meta_sp, label)
        return ann_part, meta_part, notes, old

    def _episode_parts(self, txn: Any, dataset: str, name: str, media: BlobId, files: Any, label: str,
                       related: list[Related] | None) -> tuple[Part, Part, None, ItemRecord | None]:
        """A frame's annotation and item meta parts: its episode's annotation.json and frame
        map (`cas.model.episode`, checked by the converter), as they are, each settled once
        per preparer."""
        if not isinstance(files, EpisodeFiles):
            raise InvalidInput(label, "a frame of a point-cloud episode comes with its episode (annotation.json, "
                                      "frame_pointcloud_map.json): import or copy in the episode's folder")
        key = (files.annotation, files.frame_map)
        if self._episode is None or self._episode[0] != key:
            self._episode = (key, _spool_file(files.annotation), _spool_file(files.frame_map))
        _key, ann_sp, map_sp = self._episode
        old = self._stored(txn, dataset, name) if self.config.project_existed else None
        if self.config.check_conflicts and old is not None:
            self._check_conflict(old, dataset, name, media, ann_sp.id, map_sp.id, related)
        return (self._settle_shared(txn, ann_sp, files.ann_label), self._settle_shared(txn, map_sp, files.map_label),
                None, old)

    def _stored(self, txn: Any, dataset: str, name: str) -> ItemRecord | None:
        """The item stored under this name, if any."""
        raw = raw_item(self.store.index, txn, item_key(self.config.project, dataset, name))
        return ItemRecord.decode(raw) if raw is not None else None

    def _empty_annotation(self, width: int, height: int) -> Spooled:
        """The empty annotation of an image of this size, made and hashed once."""
        sp = self._empty_anns.get((width, height))
        if sp is None:
            sp = self._empty_anns[(width, height)] = spool_bytes(dumps(empty_annotation(width, height)))
        return sp

    def _settle_shared(self, txn: Any, sp: Spooled, label: str) -> Part:
        """`_settle` of a blob many items share (an empty annotation, an episode's files), once
        per preparer: it is known (or installed by this preparer, for the session to record)
        after the first. With --verify-dedup every item compares its bytes again."""
        part = self._shared_parts.get(sp.id)
        if part is None:
            part = self._settle(txn, sp, label)
            if not self.config.verify_dedup:
                self._shared_parts[sp.id] = part
        return part

    def _probe(self, sp: Spooled, label: str) -> MediaInfo:
        if self.meta.project_type == "videos":
            return probe_video(sp.file if sp.file is not None else sp.data or b"", label)
        if self.meta.project_type in CLOUD_TYPES:
            return probe_pointcloud(sp.head, sp.size, label)
        if self.meta.project_type == "volumes":
            return probe_volume(sp.head, sp.size, label)
        fallback = None
        if sp.file is not None and sp.data is None and sp.size > len(sp.head):  # header beyond the kept head
            with open(sp.file, "rb") as f:
                fallback = f.read(16 << 20)
        return probe_image(sp.head, sp.tail, label, fallback)

    def _check_conflict(self, old: ItemRecord, dataset: str, name: str, media: BlobId, ann: BlobId,
                        meta: BlobId | None, related: list[Related] | None) -> None:
        if (old.media, old.ann, old.meta, old.related) != (media, ann, meta, related):
            differs = content_differences((old.media, media), (old.ann, ann), (old.meta, meta),
                                          sections(self.meta.project_type).noun)
            raise Conflict(f"item {self.config.project}/{dataset}/{name} exists with a different {differs} "
                           "(use --overwrite to replace it)")

    def _settle(self, txn: Any, sp: Spooled, label: str) -> Part:
        """Known content: drop our copy (after comparing, if asked). New, or damaged in the
        store: install it (recording it heals the damaged blob)."""
        if known_intact(self.store.index, txn, sp.id):
            if self.config.verify_dedup:
                self._verify_same(sp, label)
            return Part(sp.id, sp.size, False)
        if self.config.dry_run:
            return Part(sp.id, sp.size, True)
        if self.packs is not None and sp.data is not None and sp.size <= PACK_MAX:
            where = self._packed.get(sp.id)
            if where is None:
                if len(self._packed) >= PACKED_REMEMBERED:
                    self._packed.clear()
                where = self._packed[sp.id] = self.packs.append(sp.id, sp.data)
            return Part(sp.id, sp.size, True, where)
        self.store.write_backend.install(sp, self.config.tmp)
        return Part(sp.id, sp.size, True)

    def close(self) -> None:
        if self.packs is not None:
            self.packs.close()

    def _verify_same(self, sp: Spooled, label: str) -> None:
        if sp.data is not None:
            ours = sp.data
        else:
            with open(sp.file or "", "rb") as f:
                ours = f.read()
        if self.store.read_bytes(sp.id) != ours:
            raise CorruptBlob(f"{label}: content differs from stored blob {sp.id} with the same digest "
                              "(hash collision or corrupt store); nothing was imported")


def _spool_file(source: str | bytes) -> Spooled:
    """A small file (a path or its bytes), read into memory and hashed."""
    return spool_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())


def _check_masks(masks: list[tuple[VolumeInfo, str]], volume: MediaInfo) -> None:
    """A volume's masks (probed by `Preparer._spool_related`) have its dimensions."""
    for mask, label in masks:
        assert isinstance(volume, VolumeInfo)  # masks are related files of volumes only
        check_mask(mask, volume, label)


# -- process pool entry points --------------------------------------------------------
_worker: Preparer | None = None


def init_worker(config: PrepareConfig) -> None:
    """Runs once in each worker process: open the store there (never inherit LMDB across fork)."""
    global _worker
    if config.client_pid:
        exit_with(config.client_pid)  # a killed import cannot shut its pool down
    from cas.store import Store
    _worker = Preparer(config, Store(config.store_root))


_meta_version = 0


def run_chunk(chunk: list[Task], meta: tuple[int, dict[str, Any]] | None = None) -> list[Prepared | InvalidInput]:
    """Prepare a chunk in a worker process; `meta`, (version, meta), when the import's meta
    changed since the worker started (a later source folder widened it)."""
    global _meta_version
    assert _worker is not None, "init_worker did not run"
    if meta is not None and meta[0] != _meta_version:
        _meta_version, _worker.meta = meta[0], Meta(meta[1])
    return _worker.prepare_chunk(chunk)
