"""Sizes: training memory per parameter, and human-readable counts and cells for messages and tables (light:
no torch, safe on the lint path)."""

from typing import Any

# Training state per trainable parameter: fp32 weight + fp32 gradient + AdamW's two fp32 moments.
TRAINING_BYTES_PER_PARAM = 16


def human_count(value: float) -> str:
    """761_000_000 -> '761 M', 3_875_544_576 -> '3.88 B'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            number = value / size
            return f"{number:.3g} {unit}" if number < 100 else f"{number:.0f} {unit}"
    return f"{value:g}"


def human_bytes(value: float) -> str:
    """217_100 -> '217.1 kB' (decimal units, as disks and GPU specs count)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def table_cell(value: Any) -> str:
    """A value in a ``lyco plan`` or ``lyco inspect`` table: None -> '-', booleans yes/no, floats as %g."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
