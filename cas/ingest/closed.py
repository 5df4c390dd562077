"""The record of a file closed at a Supervisely position (or an item removed) through the
mount: what the journal keeps, the overlay shows and the committer writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cas.ids import BlobId

MEDIA, ANN, META, REMOVE = "media", "ann", "meta", "remove"
Key = tuple[str, str, str]  # project, dataset, item


@dataclass(slots=True)
class Closed:
    """A file closed at a Supervisely position (or an item removed): journaled, not committed."""

    seq: int
    section: str  # MEDIA, ANN, META or REMOVE
    project: str
    dataset: str
    item: str
    file: str | None  # its staged bytes; None: an empty annotation, no item meta, a removal
    id: BlobId | None
    size: int = 0
    width: int = 0
    height: int = 0
    mime: str = ""
    mtime: int = 0
    facts: dict[str, Any] | None = None  # of a media file: what its header says beyond its size (`ItemRecord.facts`)

    @property
    def key(self) -> Key:
        return self.project, self.dataset, self.item

    @property
    def label(self) -> str:
        suffix = "" if self.section in (MEDIA, REMOVE) else ".json"
        section = "img" if self.section in (MEDIA, REMOVE) else self.section
        return f"{self.project}/{self.dataset}/{section}/{self.item}{suffix}"

    def encode(self) -> list[Any]:
        return [self.seq, self.section, self.project, self.dataset, self.item,
                os.path.basename(self.file) if self.file else None, bytes(self.id) if self.id else None,
                self.size, self.width, self.height, self.mime, self.mtime, self.facts]

    @classmethod
    def decode(cls, record: list[Any], directory: Path) -> Closed:
        seq, section, project, dataset, item, file, blob, *rest = record
        return cls(seq, section, project, dataset, item, str(directory / file) if file else None,
                   BlobId(blob) if blob else None, *rest)
