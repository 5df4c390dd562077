"""Every setting cas takes from the environment, read in one place.

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
(cas.config.StoreConfig), not here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cas.config import NetOptions
from cas.errors import InvalidInput

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


def current() -> Settings:
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
