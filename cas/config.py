"""Settings: those kept with a store in `<store>/config.json` (StoreConfig: never credentials),
those of remote reads (NetOptions), and those of the process, from the environment (Settings).

The environment's variables, read here and nowhere else:

    CAS_STORE                 the store directory (else $XDG_DATA_HOME/cas, else ~/.local/share/cas)
    CAS_CONNECT_TIMEOUT       seconds to connect to S3 or a link's server
    CAS_READ_TIMEOUT          seconds a remote read may stall
    CAS_RETRIES               retries of a failed remote request
    CAS_READ_DEADLINE         seconds a remote read may take in all, retries included
    CAS_PUBLIC_LINKS_ONLY     links may not reach private or loopback addresses ("1")
    CAS_MAX_PIXELS            the largest image or mask (width x height) decoded
    CAS_MOUNT_TRACE           a mount daemon counts the requests it serves ("1")

The CLI's global flags write the same variables (`export_flags`), so that a mount
daemon or a worker process started from a command reads what the command was given.
Settings kept with a store (its S3 remote, cache size) are in `<store>/config.json`
(StoreConfig).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.units import parse_size

DEFAULT_CACHE_SIZE = 10 << 30
# gc leaves an S3 object or pack younger than this: another store sharing the bucket may be
# pushing it, or may have pushed it and not yet its version heads that reach it.
DEFAULT_S3_GRACE_SECONDS = 86400


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


S3_FIELDS = frozenset({"bucket", "prefix", "endpoint_url", "region"})


@dataclass
class StoreConfig:
    s3: S3Remote | None = None
    cache_size: int = DEFAULT_CACHE_SIZE
    allow_roots: list[str] = field(default_factory=list)  # directories file:// links may point into
    s3_grace_seconds: float = DEFAULT_S3_GRACE_SECONDS

    @classmethod
    def load(cls, root: Path) -> StoreConfig:
        path = root / "config.json"
        if not path.exists():
            return cls()
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except ValueError as e:
            raise InvalidInput(str(path), f"unreadable store config: {e}") from None
        if not isinstance(raw, dict):
            raise InvalidInput(str(path), "expected a JSON object")
        s3 = raw.get("s3")
        if s3 is not None and not (isinstance(s3, dict) and isinstance(s3.get("bucket"), str)
                                   and set(s3) <= S3_FIELDS and all(isinstance(v, str | None) for v in s3.values())):
            raise InvalidInput(str(path), "expected an object with a bucket, and strings for "
                                          f"{', '.join(sorted(S3_FIELDS))} only", "s3")
        roots = raw.get("allow_roots", [])
        if not isinstance(roots, list):
            raise InvalidInput(str(path), "expected a list of folders", "allow_roots")
        size = raw.get("cache_size", DEFAULT_CACHE_SIZE)  # bytes as saved, or a size written by hand
        grace = raw.get("s3_grace_seconds", DEFAULT_S3_GRACE_SECONDS)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
            raise InvalidInput(str(path), "expected a number of seconds, 0 or more", "s3_grace_seconds")
        return cls(S3Remote(**s3) if s3 else None,
                   size if isinstance(size, int) else parse_size(str(size), f"{path}: cache_size"),
                   [str(p) for p in roots], grace)

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

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default: 1/4 GiB of pixels at 3 bytes each


@dataclass(frozen=True)
class Settings:
    store: Path
    net: NetOptions = field(default_factory=NetOptions)
    max_pixels: int = DEFAULT_MAX_PIXELS
    mount_trace: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives (os.environ unless `env`); a bad value is one
        InvalidInput naming its variable."""
        env = os.environ if env is None else env
        data_home = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        net = NetOptions(_number(env, "CAS_CONNECT_TIMEOUT", NetOptions.connect_timeout),
                         _number(env, "CAS_READ_TIMEOUT", NetOptions.read_timeout),
                         int(_number(env, "CAS_RETRIES", NetOptions.retries)),
                         public_links_only=_flag(env, "CAS_PUBLIC_LINKS_ONLY"),
                         deadline=_number(env, "CAS_READ_DEADLINE", NetOptions.deadline))
        return cls(Path(env.get("CAS_STORE") or Path(data_home) / "cas"), net,
                   int(_number(env, "CAS_MAX_PIXELS", DEFAULT_MAX_PIXELS)), _flag(env, "CAS_MOUNT_TRACE"))



def export_flags(connect_timeout: float, read_timeout: float, retries: int, read_deadline: float,
                 public_links_only: bool, max_pixels: int) -> None:
    """Set the variables of the CLI's global flags, for this process and those it starts."""
    os.environ.update({"CAS_CONNECT_TIMEOUT": str(connect_timeout), "CAS_READ_TIMEOUT": str(read_timeout),
                       "CAS_RETRIES": str(retries), "CAS_READ_DEADLINE": str(read_deadline),
                       "CAS_PUBLIC_LINKS_ONLY": "1" if public_links_only else "", "CAS_MAX_PIXELS": str(max_pixels)})


def settings() -> Settings:
    """The settings as the environment gives them now (read each time: a test or the CLI may
    have just set a variable)."""
    return Settings.from_env()


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"${name}", f"not a number: {raw[:40]!r}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "") not in ("", "0")
