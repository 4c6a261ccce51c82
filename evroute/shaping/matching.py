"""What run and explain share when they match an event, so that both decide alike.

A transform's result encoded as JSON (an ExpressionError when it cannot be), and the
dead letter's detail when matching a pattern fails on an event.
"""

from __future__ import annotations

from typing import Any

from evroute.core.json_codec import Unwritable, encode
from evroute.expr import ExpressionError


def pattern_failure(error: Exception) -> str:
    """The dead letter's detail when matching a pattern fails on an event (an event
    nested deeper than Python's recursion allows)."""
    return f"the pattern could not be matched against this event: {error}"


def encode_output(value: Any) -> bytes:
    """A transform's result as compact JSON; ExpressionError when it cannot be one."""
    try:
        return encode(value)
    except Unwritable as error:
        raise ExpressionError(str(error), "invalid-value") from None
