"""Store settings kept in `<store>/config.json` (never credentials), and network options."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.units import parse_size

DEFAULT_CACHE_SIZE = 10 << 30


@dataclass(frozen=True)
class S3Remote:
    """Where an S3-backed store keeps its blobs: `s3://bucket/prefix/blobs/<hex>`."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, url: str, endpoint_url: str | None = None, region: str | None = None) -> S3Remote:
        if not url.startswith("s3://"):
            raise InvalidInput(url, "an S3 location looks like s3://bucket/prefix")
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise InvalidInput(url, "no bucket name")
        return cls(bucket, prefix.strip("/"), endpoint_url, region)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass
class StoreConfig:
    s3: S3Remote | None = None
    cache_size: int = DEFAULT_CACHE_SIZE
    allow_roots: list[str] = field(default_factory=list)  # directories file:// links may point into

    @classmethod
    def load(cls, root: Path) -> StoreConfig:
        path = root / "config.json"
        if not path.exists():
            return cls()
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
            s3 = raw.get("s3")
            size = raw.get("cache_size", DEFAULT_CACHE_SIZE)  # bytes as saved, or a size written by hand
            return cls(S3Remote(**s3) if s3 else None,
                       size if isinstance(size, int) else parse_size(str(size), f"{path}: cache_size"),
                       [str(p) for p in raw.get("allow_roots", [])])
        except (ValueError, TypeError) as e:
            raise InvalidInput(str(path), f"unreadable store config: {e}") from None

    def save(self, root: Path) -> None:
        path = root / "config.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)


@dataclass(frozen=True)
class NetOptions:
    """Timeouts (seconds) and retries of every remote read (cas.settings reads them from the
    environment).

    `deadline` bounds a read across all its attempts: each attempt's connect and read
    timeouts are cut to its share of it (after the backoff sleeps), so that a stalled
    server costs a reader at most about `deadline` seconds, never timeouts x retries.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.25  # seconds before the first retry; doubles each time
    public_links_only: bool = False  # links may not reach private or loopback addresses either
    deadline: float = 60.0

    def __post_init__(self) -> None:
        sleeps = self.backoff * (2 ** self.retries - 1)
        if sleeps > self.deadline / 4:  # backoff sleeps take a quarter of the deadline at most
            object.__setattr__(self, "backoff", self.backoff * self.deadline / 4 / sleeps)
            sleeps = self.deadline / 4
        share = (self.deadline - sleeps) / (self.retries + 1)
        connect = min(self.connect_timeout, share / 4)
        object.__setattr__(self, "connect_timeout", connect)
        object.__setattr__(self, "read_timeout", min(self.read_timeout, share - connect))
