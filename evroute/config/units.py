"""Durations and sizes as the config writes them: `250ms`, `10s`, `5m`; `64KiB`, `1MiB`."""

from __future__ import annotations

import math
import re
from decimal import Decimal

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string with a unit; ValueError says what is accepted."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 250ms or 5m, got a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(f"expected a duration such as 10s, 250ms or 5m, got {value!r}")


def parse_size(value: object) -> int:
    """Bytes from an integer or a string with a unit; ValueError says what is accepted."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 65536, 64KiB or 1MiB, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(Decimal(match.group(1)) * _SIZE_UNITS[match.group(2)])
    raise ValueError(f"expected a size such as 65536, 64KiB or 1MiB, got {value!r}")
