"""Reading and writing events as JSON: orjson first, exact for integers beyond 64 bits."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from evroute.core.lines import has_long_digit_run


class Malformed(ValueError):
    """A line that holds no JSON object (or no JSON value at all)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_event(line: bytes) -> dict[str, Any]:
    """The JSON object on a line; Malformed says why it is not one."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        # beyond a float's range orjson gives up on a number that is valid JSON
        if not has_long_digit_run(line):
            raise Malformed(f"invalid JSON: {error}") from None
        event = _parse_exactly(line)
    else:
        if has_long_digit_run(line):  # orjson may have rounded an integer beyond 64 bits
            event = _parse_exactly(line)
    if not isinstance(event, dict):
        raise Malformed(f"expected a JSON object, got {type(event).__name__}")
    return event


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"number {text} is out of range")
    return number


def _parse_exactly(line: bytes) -> Any:
    """The json module's reading, held to what orjson accepts but for long integers."""
    try:
        event = json.loads(
            line.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite
        )
        # orjson refuses lone surrogates ("\ud800"); so must this, or the event could
        # not be written out again
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as error:  # UnicodeError is a ValueError
        raise Malformed(f"invalid JSON: {error}") from None
    return event


def parse_value(line: bytes) -> Any:
    """Any JSON value on a line, integers beyond 64 bits exact; Malformed says why not."""
    if not has_long_digit_run(line):
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise Malformed(f"invalid JSON: {error}") from None
    return _parse_exactly(line)


class Unwritable(ValueError):
    """A value that cannot be written as JSON (a lone surrogate, nesting too deep)."""


def encode(value: Any) -> bytes:
    """A value as compact JSON; Unwritable when it cannot be one."""
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, which orjson does not write
        pass
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError, UnicodeEncodeError) as error:
        raise Unwritable(f"the result cannot be written as JSON: {error}") from None
