"""What compiled expressions call: truthiness, equality and the built-in functions.

Each built-in checks its arguments' types the way the JMESPath specification states and
raises ExpressionError("invalid-type") otherwise. Expression references (`&expr`) arrive
as one-argument Python functions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evroute.expr.errors import INVALID_TYPE, ExpressionError

NUMBER_TYPES = (int, float)

# Argument types as the specification's signatures name them.
ANY = "any"
NUMBER = "number"
STRING = "string"
ARRAY = "array"
OBJECT = "object"
EXPREF = "expref"
ARRAY_NUMBER = "array[number]"
ARRAY_STRING = "array[string]"

Expref = Callable[[Any], Any]


def is_number(value: object) -> bool:
    return type(value) in NUMBER_TYPES


def is_truthy(value: object) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    if value is None or value is False:
        return False
    if type(value) in (str, list, dict):
        return len(value) > 0  # type: ignore[arg-type]
    return True


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: 1 equals 1.0, a boolean never equals a number, at any depth."""
    left_type = type(left)
    right_type = type(right)
    if left_type is not right_type:
        return left_type in NUMBER_TYPES and right_type in NUMBER_TYPES and left == right
    if left_type is list:
        return len(left) == len(right) and all(map(json_equal, left, right))
    if left_type is dict:
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    return bool(left == right)


def type_name(value: object) -> str:
    """The JMESPath name of a value's type."""
    kind = type(value)
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if kind in NUMBER_TYPES:
        return "number"
    if kind is list:
        return "array"
    if kind is dict:
        return "object"
    if value is None:
        return "null"
    return "expref" if callable(value) else kind.__name__


def _type_error(function: str, expected: str, value: object) -> ExpressionError:
    return ExpressionError(
        f"{function}() expects {expected}, got {type_name(value)}", INVALID_TYPE, function
    )


def _require(function: str, expected: str, value: Any, *types: type) -> None:
    if type(value) not in types:
        raise _type_error(function, expected, value)


def _require_number(function: str, value: Any) -> None:
    if type(value) not in NUMBER_TYPES:
        raise _type_error(function, "a number", value)


def _numbers(function: str, value: Any) -> list[Any]:
    if type(value) is not list or any(type(item) not in NUMBER_TYPES for item in value):
        raise _type_error(function, "an array of numbers", value)
    return value


def _sortable(function: str, value: Any, what: str = "an array of numbers or of strings") -> str:
    """'number' or 'string', the one type every element has; an empty array is 'number'."""
    if type(value) is not list:
        raise _type_error(function, what, value)
    if not value:
        return NUMBER
    if all(type(item) is str for item in value):
        return STRING
    if all(type(item) in NUMBER_TYPES for item in value):
        return NUMBER
    raise ExpressionError(f"{function}() expects {what}", INVALID_TYPE, function)


def _keys_by(function: str, items: list[Any], expref: Expref) -> list[Any]:
    keys = [expref(item) for item in items]
    _sortable(function, keys, "the expression to give all numbers or all strings")
    return keys


def fn_abs(value: Any) -> Any:
    _require_number("abs", value)
    return abs(value)


def fn_avg(value: Any) -> Any:
    numbers = _numbers("avg", value)
    return sum(numbers) / len(numbers) if numbers else None


def fn_ceil(value: Any) -> Any:
    _require_number("ceil", value)
    return math.ceil(value)


def fn_contains(subject: Any, search: Any) -> bool:
    if type(subject) is str:
        return type(search) is str and search in subject
    if type(subject) is list:
        return any(json_equal(item, search) for item in subject)
    raise _type_error("contains", "an array or a string", subject)


def fn_ends_with(subject: Any, suffix: Any) -> bool:
    _require("ends_with", "a string", subject, str)
    _require("ends_with", "a string", suffix, str)
    return bool(subject.endswith(suffix))


def fn_floor(value: Any) -> Any:
    _require_number("floor", value)
    return math.floor(value)


def fn_join(glue: Any, items: Any) -> str:
    _require("join", "a string", glue, str)
    if type(items) is not list or any(type(item) is not str for item in items):
        raise _type_error("join", "an array of strings", items)
    return str(glue.join(items))


def fn_keys(value: Any) -> list[Any]:
    _require("keys", "an object", value, dict)
    return list(value)


def fn_length(value: Any) -> int:
    if type(value) not in (str, list, dict):
        raise _type_error("length", "a string, an array or an object", value)
    return len(value)


def fn_map(expref: Expref, items: Any) -> list[Any]:
    _require("map", "an array", items, list)
    return [expref(item) for item in items]


def fn_max(items: Any) -> Any:
    _sortable("max", items)
    return max(items) if items else None


def _extreme_by(function: str, items: Any, expref: Expref, pick: Callable[..., int]) -> Any:
    """The first item whose key `pick` (max or min) chooses."""
    _require(function, "an array", items, list)
    if not items:
        return None
    keys = _keys_by(function, items, expref)
    return items[pick(range(len(items)), key=keys.__getitem__)]


def fn_max_by(items: Any, expref: Expref) -> Any:
    return _extreme_by("max_by", items, expref, max)


def fn_merge(*objects: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for value in objects:
        _require("merge", "objects", value, dict)
        merged.update(value)
    return merged


def fn_min(items: Any) -> Any:
    _sortable("min", items)
    return min(items) if items else None


def fn_min_by(items: Any, expref: Expref) -> Any:
    return _extreme_by("min_by", items, expref, min)


def fn_not_null(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def fn_reverse(value: Any) -> Any:
    if type(value) not in (str, list):
        raise _type_error("reverse", "an array or a string", value)
    return value[::-1]


def fn_sort(items: Any) -> list[Any]:
    _sortable("sort", items)
    return sorted(items)


def fn_sort_by(items: Any, expref: Expref) -> list[Any]:
    _require("sort_by", "an array", items, list)
    keys = _keys_by("sort_by", items, expref)
    order = sorted(range(len(items)), key=keys.__getitem__)  # stable, as the spec asks
    return [items[index] for index in order]


def fn_starts_with(subject: Any, prefix: Any) -> bool:
    _require("starts_with", "a string", subject, str)
    _require("starts_with", "a string", prefix, str)
    return bool(subject.startswith(prefix))


def fn_sum(items: Any) -> Any:
    return sum(_numbers("sum", items))


def fn_to_array(value: Any) -> list[Any]:
    return value if type(value) is list else [value]


def fn_to_string(value: Any) -> str:
    if type(value) is str:
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ExpressionError(f"to_string(): {error}", INVALID_TYPE, "to_string") from None


# A string is a number for to_number() when it is a JSON number, nothing more or less.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def fn_to_number(value: Any) -> Any:
    kind = type(value)
    if kind in NUMBER_TYPES:
        return value
    if kind is not str:
        return None
    match = _JSON_NUMBER.fullmatch(value)
    if match is None:
        return None
    if match.group(1) is None and match.group(2) is None:
        return int(value)
    number = float(value)
    return None if math.isinf(number) else number


def fn_type(value: Any) -> str:
    return type_name(value)


def fn_values(value: Any) -> list[Any]:
    _require("values", "an object", value, dict)
    return list(value.values())


@dataclass(frozen=True)
class Function:
    """A built-in: its Python implementation and its arguments' types."""

    name: str
    implementation: Callable[..., Any]
    arguments: tuple[str, ...]
    variadic: bool = False  # the last argument may repeat (at least once)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("abs", fn_abs, (NUMBER,)),
        Function("avg", fn_avg, (ARRAY_NUMBER,)),
        Function("ceil", fn_ceil, (NUMBER,)),
        Function("contains", fn_contains, (ARRAY, ANY)),
        Function("ends_with", fn_ends_with, (STRING, STRING)),
        Function("floor", fn_floor, (NUMBER,)),
        Function("join", fn_join, (STRING, ARRAY_STRING)),
        Function("keys", fn_keys, (OBJECT,)),
        Function("length", fn_length, (ANY,)),
        Function("map", fn_map, (EXPREF, ARRAY)),
        Function("max", fn_max, (ARRAY,)),
        Function("max_by", fn_max_by, (ARRAY, EXPREF)),
        Function("merge", fn_merge, (OBJECT,), variadic=True),
        Function("min", fn_min, (ARRAY,)),
        Function("min_by", fn_min_by, (ARRAY, EXPREF)),
        Function("not_null", fn_not_null, (ANY,), variadic=True),
        Function("reverse", fn_reverse, (ANY,)),
        Function("sort", fn_sort, (ARRAY,)),
        Function("sort_by", fn_sort_by, (ARRAY, EXPREF)),
        Function("starts_with", fn_starts_with, (STRING, STRING)),
        Function("sum", fn_sum, (ARRAY_NUMBER,)),
        Function("to_array", fn_to_array, (ANY,)),
        Function("to_number", fn_to_number, (ANY,)),
        Function("to_string", fn_to_string, (ANY,)),
        Function("type", fn_type, (ANY,)),
        Function("values", fn_values, (OBJECT,)),
    )
}
