"""Sizes as people read them."""

from __future__ import annotations


def human(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as `df -H` and `du --si`)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover
