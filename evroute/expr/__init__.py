"""JMESPath expressions: compile once, evaluate many times.

The one place the router and transforms get their expressions from, so that a faster
evaluator can replace the jmespath library's interpreter without touching callers.
"""

from __future__ import annotations

import re
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath import visitor as jmespath_visitor

__all__ = [
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "compile",
    "is_truthy",
]


class ExpressionError(Exception):
    """Evaluating an expression failed for one value (invalid-type, invalid-arity...)."""


class ExpressionSyntaxError(ValueError):
    """The expression is not valid JMESPath; `position` is a 0-based offset in it."""

    def __init__(self, message: str, expression: str, position: int | None) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _SpecInterpreter(jmespath_visitor.TreeInterpreter):
    """The jmespath library's interpreter, with ordering as the specification says.

    jmespath.py orders strings too and raises TypeError for a string against a number
    (jmespath.py#169); the specification makes any ordering that is not between two
    numbers null.
    """

    def visit_comparator(self, node: Any, value: Any) -> Any:
        operator = node["value"]
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        if operator == "eq":
            return json_equal(left, right)
        if operator == "ne":
            return not json_equal(left, right)
        if not (_is_number(left) and _is_number(right)):
            return None
        return self.COMPARATOR_FUNC[operator](left, right)


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: a boolean never equals a number, at any depth.

    jmespath.py tells true from 1 only at the top level of a comparison.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    return type(left) is type(right) and bool(left == right)


class _SpecFunctions(jmespath_functions.Functions):
    @jmespath_functions.signature({"types": ["array", "string"]}, {"types": []})
    def _func_contains(self, subject: Any, search: Any) -> bool:
        # membership with JMESPath equality: contains([1], `true`) is false
        if isinstance(subject, str):
            return isinstance(search, str) and search in subject
        return any(json_equal(item, search) for item in subject)


_INTERPRETER = _SpecInterpreter(jmespath_visitor.Options(custom_functions=_SpecFunctions()))
_FUNCTION_TABLE: dict[str, dict[str, Any]] = _SpecFunctions().FUNCTION_TABLE


def is_truthy(value: object) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


class Expression:
    """A compiled JMESPath expression."""

    __slots__ = ("_ast", "source")

    def __init__(self, source: str, ast: Any) -> None:
        self.source = source
        self._ast = ast

    def search(self, data: Any) -> Any:
        """Evaluate against `data`; raises ExpressionError when JMESPath says it fails."""
        try:
            return _INTERPRETER.visit(self._ast, data)
        except jmespath_errors.JMESPathError as error:
            raise ExpressionError(str(error)) from None
        except Exception as error:  # an event must never crash the router (1e999 overflows)
            raise ExpressionError(f"{type(error).__name__}: {error}") from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _call_position(source: str, name: str, occurrence: int) -> int | None:
    """Where the n-th call of `name` starts; the parser keeps no positions, and its tree
    visits calls in the order they are written."""
    calls = [match.start() for match in re.finditer(rf"(?<![\w@]){re.escape(name)}\s*\(", source)]
    return calls[occurrence] if occurrence < len(calls) else None


def _check_functions(source: str, node: Any, seen: dict[str, int] | None = None) -> None:
    """Report unknown functions and wrong arities at compile time, not per event."""
    seen = {} if seen is None else seen
    if node.get("type") == "function_expression":
        name = node["value"]
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        where = _call_position(source, name, occurrence)
        spec = _FUNCTION_TABLE.get(name)
        if spec is None:
            raise ExpressionSyntaxError(f"unknown function {name}()", source, where)
        signature = spec["signature"]
        given = len(node["children"])
        variadic = bool(signature) and signature[-1].get("variadic", False)
        expected = len(signature)
        if (variadic and given < expected) or (not variadic and given != expected):
            wanted = f"at least {expected}" if variadic else str(expected)
            raise ExpressionSyntaxError(
                f"{name}() takes {wanted} argument(s), {given} given", source, where
            )
    for child in node.get("children", ()):
        if isinstance(child, dict):
            _check_functions(source, child, seen)


def compile(source: str) -> Expression:
    """Compile `source`; raises ExpressionSyntaxError with the position of the problem."""
    try:
        parsed = jmespath.compile(source)
    except jmespath_errors.LexerError as error:
        raise ExpressionSyntaxError(error.message, source, error.lex_position) from None
    except jmespath_errors.IncompleteExpressionError:
        raise ExpressionSyntaxError("incomplete expression", source, len(source)) from None
    except jmespath_errors.ParseError as error:
        token = error.token_value
        message = f"unexpected token {token!r}" if token not in (None, "") else error.msg
        raise ExpressionSyntaxError(message, source, error.lex_position) from None
    except jmespath_errors.JMESPathError as error:
        raise ExpressionSyntaxError(str(error), source, None) from None
    _check_functions(source, parsed.parsed)
    return Expression(source, parsed.parsed)
