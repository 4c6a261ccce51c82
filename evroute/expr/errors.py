"""The errors JMESPath defines, each with the kind the specification names it by."""

from __future__ import annotations

SYNTAX = "syntax"
UNKNOWN_FUNCTION = "unknown-function"
INVALID_ARITY = "invalid-arity"
INVALID_TYPE = "invalid-type"
INVALID_VALUE = "invalid-value"


class ExpressionSyntaxError(ValueError):
    """The expression cannot be compiled; `position` is a 0-based offset in it.

    `kind` is "syntax", or "unknown-function", "invalid-arity", "invalid-type" or
    "invalid-value" for mistakes that are certain before any data is seen.
    """

    def __init__(
        self, message: str, expression: str, position: int | None, kind: str = SYNTAX
    ) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        self.kind = kind
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}")


class ExpressionError(Exception):
    """Evaluating an expression failed for one value; `kind` is "invalid-type" or
    "invalid-value", and `function` the function that refused it, if one did."""

    def __init__(
        self,
        message: str,
        kind: str = INVALID_TYPE,
        function: str | None = None,
        position: int | None = None,
    ) -> None:
        self.message = message
        self.kind = kind
        self.function = function
        self.position = position
        where = f" (at position {position})" if position is not None else ""
        super().__init__(f"{kind}: {message}{where}")
