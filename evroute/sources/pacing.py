"""Replay pacing: when each recorded event may go, by a fixed rate or by its own time."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson

from evroute.expr import Expression, ExpressionError


class Pacer:
    def due(self, line: bytes) -> float | None:
        """The monotonic time at which this line may be routed; None for at once."""
        raise NotImplementedError


class RatePacer(Pacer):
    """N events a second, evenly spaced from the first."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.start: float | None = None
        self.count = 0

    def due(self, line: bytes) -> float:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.count * self.interval
        self.count += 1
        return due


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from an RFC 3339 string or a number; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text.replace("t", "T", 1) if "t" in text[:11] else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


class SpeedPacer(Pacer):
    """The gaps between the events' own times, `speed` times faster.

    An event without a readable time, or earlier than the one before, goes at once.
    """

    def __init__(self, speed: float, time_field: Expression) -> None:
        self.speed = speed
        self.time_field = time_field
        self.origin: tuple[float, float] | None = None  # (event time, monotonic time)

    def due(self, line: bytes) -> float | None:
        try:
            event = orjson.loads(line)
            moment = parse_time(self.time_field.search(event)) if isinstance(event, dict) else None
        except (orjson.JSONDecodeError, ExpressionError):
            return None
        if moment is None:
            return None
        if self.origin is None:
            self.origin = (moment, time.monotonic())
            return None
        event_origin, wall_origin = self.origin
        return wall_origin + (moment - event_origin) / self.speed
