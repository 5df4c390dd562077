"""Sizes and counts as people write and read them."""

from __future__ import annotations

import math
from typing import Any

from cas.errors import InvalidInput

BINARY_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
BARE_BYTES_FLOOR = 16 << 20  # a number with no unit below this is a slip ("50" meant 50M), not a size


def human_binary(n: float) -> str:
    """52428800 -> '50 MiB', 1610612736 -> '1.5 GiB': a size as parse_size's units read it."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def human(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as `df -H` and `du --si`)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 item', '2 items', '0 classes', '3 link items': `n` and `noun` agreeing in number (the
    last word of `noun` takes -s, -es or -ies unless `plural` is given)."""
    if n == 1:
        return f"{n} {noun}"
    if plural is None:
        if noun.endswith(("s", "x", "z", "ch", "sh")):
            plural = noun + "es"
        elif noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
            plural = noun[:-1] + "ies"
        else:
            plural = noun + "s"
    return f"{n} {plural}"


def parse_size(text: str, name: str) -> int:
    """'512K', '50M', '1.5G', '2T' (binary units; 'MiB', 'MB', 'm' alike) or a byte count of at least
    BARE_BYTES_FLOOR; anything else is an InvalidInput naming `name` (the option or field)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in BINARY_UNITS else ""
    number = t[:-1] if unit else t
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf") or not number[:1].isdigit():
        raise InvalidInput(name, f"not a size: {text!r} (e.g. 512K, 50M, 2G, 1.5T)")
    if not unit and value < BARE_BYTES_FLOOR:
        raise InvalidInput(name, f"{text} would be {int(value)} bytes; give a unit (e.g. {text}M) or at least "
                                 f"{BARE_BYTES_FLOOR} bytes (16M)")
    return int(value * BINARY_UNITS[unit])


def counted_phrase(n: int, phrase: str) -> str:
    """'1 object clipped to the image', '2 objects clipped to the image': a count's phrase
    written in the plural ('objects clipped to the image'), its first plural word made to
    agree with `n`."""
    if n != 1:
        return f"{n} {phrase}"
    words = phrase.split(" ")
    for i, word in enumerate(words):
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            words[i] = _singular(word)
            break
    return f"{n} {' '.join(words)}"


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    return word[:-1]


FACT_UNITS = {"frames": "frame", "duration": "s", "points": "point", "voxels": "voxel"}


def shape_text(dimensions: tuple[int, ...] | list[int]) -> str:
    """A volume's dimensions as written in messages: '8x10x12'."""
    return "x".join(map(str, dimensions))


def media_facts(facts: dict[str, Any]) -> str:
    """'12 frames, 1.2 s', '8x10x12 voxels': what a media header says (`ItemRecord.facts`), or
    a sum of them (`summable_facts`)."""
    if "dimensions" in facts:
        return f"{shape_text(facts['dimensions'])} voxels"
    return ", ".join(f"{value:g} {unit}" if unit == "s" else counted(int(value), unit)
                     for name, value in facts.items() if (unit := FACT_UNITS.get(name)))


def summable_facts(facts: dict[str, Any]) -> dict[str, float]:
    """What of a media header's facts adds up over items: a volume's dimensions as its voxels."""
    if "dimensions" in facts:
        return {"voxels": math.prod(facts["dimensions"])}
    return facts
