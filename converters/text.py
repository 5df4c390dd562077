"""Text files from outside (label lists, class names, YAML configs): decoded as UTF-8, or
refused with one InvalidInput that names the file and the byte at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.model.annotation import loads

MAX_YAML_BYTES = 16 << 20  # a dataset config is a few KB; beyond this it is not one


def decode(raw: bytes, label: str) -> str:
    """UTF-8 text (a leading BOM dropped), or InvalidInput naming the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InvalidInput(label, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})",
                           f"line {line}") from None


def read_text(path: Path, label: str | None = None) -> str:
    """The UTF-8 text of `path`; errors name `label` (default: the path)."""
    return decode(path.read_bytes(), label or str(path))


def lines(path: Path, label: str | None = None) -> list[str]:
    """The stripped, non-empty lines of a text file."""
    return [ln.strip() for ln in read_text(path, label).splitlines() if ln.strip()]


def head(path: Path, size: int = 4096) -> bytes:
    """The first `size` bytes of a file (b"" if unreadable): what detection sniffs."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def read_json(path: Path, label: str | None = None) -> Any:
    """A JSON document by the store's strict rules (UTF-8, finite numbers, bounded nesting):
    any failure is one InvalidInput naming `label`."""
    label = label or path.name
    try:
        return loads(path.read_bytes(), label)
    except OSError as e:
        raise InvalidInput(label, f"cannot read ({e.strerror})") from None


def read_yaml(path: Path, label: str | None = None) -> Any:
    """A YAML document parsed with the safe loader; any failure is one InvalidInput."""
    label = label or path.name
    if path.stat().st_size > MAX_YAML_BYTES:
        raise InvalidInput(label, f"over {MAX_YAML_BYTES >> 20} MB: not a dataset config")
    text = read_text(path, label)
    import yaml  # only the formats that have YAML configs load it
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        raise InvalidInput(label, f"unreadable YAML ({getattr(e, 'problem', None) or e})", where) from None
    except RecursionError:
        raise InvalidInput(label, "unreadable YAML: nested too deeply") from None
    except ValueError as e:  # an integer of thousands of digits
        raise InvalidInput(label, f"unreadable YAML: {e}") from None
