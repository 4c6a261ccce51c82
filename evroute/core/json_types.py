"""What kind of JSON value something is, in words, for messages."""

from __future__ import annotations

from typing import Any


def json_type(value: Any) -> str:
    """`a string`, `an array`, `null`...: a value's JSON type, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
