"""Compile an EventBridge event pattern into closures, once, and check it as EventBridge does."""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from evroute.core.json_types import json_type

PatternPath = tuple[str | int, ...]
EventPath = tuple[str, ...]
ScalarTest = Callable[[Any], bool]
ValueTest = Callable[[Any], bool]
ObjectTest = Callable[[dict[str, Any]], bool]

# The documented range and precision of numeric matching: values between -5.0e9 and
# +5.0e9 inclusive, compared to six digits after the decimal point.
NUMERIC_LIMIT: Final = 5.0e9
NUMERIC_DIGITS: Final = 6
LOWER_BOUNDS: Final = (">", ">=")
UPPER_BOUNDS: Final = ("<", "<=")
OR_KEY: Final = "$or"
EMPTY: Final[dict[str, Any]] = {}


class PatternError(Exception):
    """An invalid pattern, as EventBridge would reject it; `path` says where in the pattern."""

    def __init__(self, message: str, path: PatternPath = ()) -> None:
        super().__init__(f"{format_path(path)}: {message}" if path else message)
        self.message = message
        self.path = path


def format_path(path: PatternPath) -> str:
    """`detail.state[0]`, for messages."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Missing:
    """The value of a field the event does not have."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class FieldCheck:
    """One leaf field test of a pattern, evaluated against one event."""

    path: EventPath
    matched: bool
    expected: Any  # the pattern's list of values and operators for this field
    actual: Any  # the event's value (a list when reached through arrays), or MISSING
    present: bool


# The compiled tree, kept beside the closures for explain() and required_values().


@dataclass(frozen=True)
class _Leaf:
    path: EventPath
    expected: list[Any]
    test: ValueTest
    strings_only: frozenset[str] | None  # the exact strings, when the list holds nothing else


@dataclass(frozen=True)
class _Nested:
    path: EventPath
    node: _Object


@dataclass(frozen=True)
class _Or:
    branches: tuple[_Object, ...]


@dataclass(frozen=True)
class _Object:
    fields: tuple[_Leaf | _Nested | _Or, ...]
    test: ObjectTest


class Pattern:
    """A compiled event pattern."""

    def __init__(self, source: Any, root: _Object) -> None:
        self.source = source
        self._root = root
        self._test = root.test

    def __repr__(self) -> str:
        return f"Pattern({json.dumps(self.source, default=str)})"

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the event matches, exactly as EventBridge decides."""
        return isinstance(event, dict) and self._test(event)

    def explain(self, event: dict[str, Any]) -> list[FieldCheck]:
        """Every leaf field test of the pattern, in pattern order, with its result."""
        checks: list[FieldCheck] = []
        _explain(self._root, event, checks)
        return checks

    def required_values(self) -> dict[EventPath, frozenset[str]]:
        """Paths whose value must be one of these exact strings for any match (for indexing)."""
        return _required(self._root)


def compile(pattern: Any) -> Pattern:
    """Check and compile a pattern (a dict, or its JSON text); raises PatternError."""
    source = pattern
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except json.JSONDecodeError as error:
            raise PatternError(f"the pattern is not valid JSON: {error}") from None
    if not isinstance(pattern, dict):
        raise PatternError(
            f"the pattern must be an object, not {json_type(pattern)}; "
            'for example {"source": ["my.app"]}'
        )
    return Pattern(source, _compile_object(pattern, (), ()))


def _compile_object(pattern: dict[Any, Any], where: PatternPath, prefix: EventPath) -> _Object:
    if not pattern:
        raise PatternError("an empty object matches nothing: give at least one field", where)
    fields: list[_Leaf | _Nested | _Or] = []
    for key, value in pattern.items():
        if not isinstance(key, str):
            raise PatternError(f"field names must be strings, not {json_type(key)}", (*where, key))
        here = (*where, key)
        if key == OR_KEY and isinstance(value, list):  # else "$or" is a field's name
            fields.append(_compile_or(value, here, prefix))
        elif isinstance(value, dict):
            fields.append(_Nested((*prefix, key), _compile_object(value, here, (*prefix, key))))
        elif isinstance(value, list):
            fields.append(_compile_leaf(value, here, (*prefix, key)))
        else:
            raise PatternError(
                f"a field's value must be an array of values or an object, not {json_type(value)}; "
                f"write [{json.dumps(value)}]",
                here,
            )
    return _Object(tuple(fields), _object_test(fields))


def _compile_or(value: Any, where: PatternPath, prefix: EventPath) -> _Or:
    if not isinstance(value, list) or len(value) < 2:
        raise PatternError("$or must be an array of at least two objects", where)
    branches = []
    for index, branch in enumerate(value):
        if not isinstance(branch, dict):
            raise PatternError(f"each $or branch must be an object, not {json_type(branch)}", where)
        for name in branch:
            if name in OPERATORS:
                raise PatternError(
                    f"{name!r} is an operator, not a field name, in a branch of $or",
                    (*where, index, name),
                )
        branches.append(_compile_object(branch, (*where, index), prefix))
    return _Or(tuple(branches))


# Matching


def _object_test(fields: list[_Leaf | _Nested | _Or]) -> ObjectTest:
    # Cheap leaf tests first, $or last: the result is the same in any order.
    ordered = sorted(
        fields, key=lambda field: 0 if isinstance(field, _Leaf) else 1 + isinstance(field, _Or)
    )
    tests = tuple(_field_test(field) for field in ordered)
    if len(tests) == 1:
        return tests[0]

    def all_fields(obj: dict[str, Any]) -> bool:
        # a plain loop: all() over a generator costs more on this per-event path
        for test in tests:  # noqa: SIM110
            if not test(obj):
                return False
        return True

    return all_fields


def _field_test(field: _Leaf | _Nested | _Or) -> ObjectTest:
    if isinstance(field, _Or):
        branches = tuple(branch.test for branch in field.branches)
        return lambda obj: any(branch(obj) for branch in branches)
    key = field.path[-1]
    if isinstance(field, _Leaf):
        leaf = field.test
        return lambda obj: leaf(obj.get(key, MISSING))
    nested = field.node.test

    def nested_field(obj: dict[str, Any]) -> bool:
        value = obj.get(key, MISSING)
        if type(value) is dict:
            return nested(value)
        if type(value) is list:
            # an array of objects matches when one element matches the whole sub-pattern
            elements = list(_flatten(value))
            if not elements:
                return nested(EMPTY)
            return any(nested(element if type(element) is dict else EMPTY) for element in elements)
        return nested(EMPTY)

    return nested_field


def _flatten(values: list[Any]) -> Iterator[Any]:
    """The scalars of nested arrays, in order; a stack, not recursion, for any depth."""
    stack = [iter(values)]
    while stack:
        for value in stack[-1]:
            if type(value) is list:
                stack.append(iter(value))
                break
            yield value
        else:
            stack.pop()


def _leaf_test(strings: frozenset[str], tests: list[ScalarTest], absent_ok: bool) -> ValueTest:
    """A test of one event value: any scalar of it passing one of the pattern's tests."""
    scalar_tests = tuple(tests)
    if not scalar_tests and not absent_ok:
        return _strings_test(strings)

    def scalar(value: Any) -> bool:
        if type(value) is str and value in strings:
            return True
        for test in scalar_tests:  # noqa: SIM110 - as in all_fields, for speed
            if test(value):
                return True
        return False

    def leaf(value: Any) -> bool:
        kind = type(value)
        if kind is str:
            return scalar(value)
        if value is MISSING or kind is dict:
            # an object is not a leaf: only "exists": false matches it, as a missing field
            return absent_ok
        if kind is list:
            found = False
            for element in _flatten(value):
                if type(element) is not dict:
                    found = True
                    if scalar(element):
                        return True
            return absent_ok and not found
        return scalar(value)

    return leaf


def _strings_test(strings: frozenset[str]) -> ValueTest:
    """The common leaf, a list of exact strings, without the general machinery."""

    def leaf(value: Any) -> bool:
        if type(value) is str:
            return value in strings
        if type(value) is list:
            return any(type(element) is str and element in strings for element in _flatten(value))
        return False

    return leaf


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _scaled(number: float) -> float:
    return round(number, NUMERIC_DIGITS)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a string spells, or None; cheap for text that cannot be one."""
    if not text or len(text) > 45 or not (text[0].isdigit() or ":" in text[:5]):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _number_test(numbers: set[float]) -> ScalarTest:
    """Equality with one of `numbers`, as EventBridge's engine has it: to six decimals
    within the numeric range (5 matches 5.0000001), exactly beyond it (account ids)."""
    exact = frozenset(numbers)
    scaled = frozenset(_scaled(n) for n in numbers if -NUMERIC_LIMIT <= n <= NUMERIC_LIMIT)

    def equal(value: Any) -> bool:
        if not _is_number(value):
            return False
        if value in exact:
            return True
        return -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT and _scaled(value) in scaled

    return equal


# Leaves: the list of values and operators of one field


def _compile_leaf(values: list[Any], where: PatternPath, path: EventPath) -> _Leaf:
    if not values:
        raise PatternError("an empty array matches nothing: give at least one value", where)
    strings: set[str] = set()
    numbers: set[float] = set()
    booleans: set[bool] = set()
    tests: list[ScalarTest] = []
    absent_ok = False
    only_strings = True
    for index, value in enumerate(values):
        here = (*where, index)
        if isinstance(value, str):
            strings.add(value)
            continue
        only_strings = False
        if value is None:
            tests.append(lambda v: v is None)
        elif isinstance(value, bool):
            booleans.add(value)
        elif isinstance(value, int | float):
            numbers.add(_finite(value, here))
        elif isinstance(value, dict):
            test = _compile_operator(value, here)
            if test is None:
                absent_ok = True
            else:
                tests.append(test)
        elif isinstance(value, list):
            raise PatternError("an array inside a field's array is not allowed", here)
        else:
            raise PatternError(f"unsupported value of type {json_type(value)}", here)
    if numbers:
        tests.insert(0, _number_test(numbers))
    addresses = frozenset(filter(None, map(_ip, strings)))
    if addresses:
        # as EventBridge's engine: an address matches however it is spelled (2001:DB8::1)
        tests.append(lambda v: type(v) is str and _ip(v) in addresses)
        only_strings = False
    if booleans:
        boolean_set = frozenset(booleans)
        tests.insert(0, lambda v: type(v) is bool and v in boolean_set)
    string_set = frozenset(strings)
    return _Leaf(
        path,
        values,
        _leaf_test(string_set, tests, absent_ok),
        string_set if only_strings else None,
    )


def _finite(value: int | float, where: PatternPath) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise PatternError(f"{value} is not a number JSON can hold", where)
    return value


def _one_key(operator: dict[Any, Any], where: PatternPath) -> tuple[str, Any]:
    if len(operator) != 1:
        keys = ", ".join(json.dumps(str(key)) for key in operator) or "none"
        raise PatternError(
            f"an operator object must have exactly one key (found {keys}); "
            "put each operator in its own object in the array",
            where,
        )
    ((key, argument),) = operator.items()
    return str(key), argument


OPERATORS: Final = frozenset(
    (
        "prefix",
        "suffix",
        "equals-ignore-case",
        "wildcard",
        "anything-but",
        "numeric",
        "exists",
        "cidr",
    )
)


def _compile_operator(operator: dict[Any, Any], where: PatternPath) -> ScalarTest | None:
    """The test of one operator object; None for "exists": false (matches only when absent)."""
    name, argument = _one_key(operator, where)
    here = (*where, name)
    if name in ("prefix", "suffix"):
        return _compile_affix(name, argument, here)
    if name == "equals-ignore-case":
        lowered = _string(argument, name, here).lower()
        return lambda v: type(v) is str and v.lower() == lowered
    if name == "wildcard":
        wildcard = _wildcard(_string(argument, name, here), here)
        return lambda v: type(v) is str and wildcard(v)
    if name == "anything-but":
        return _compile_anything_but(argument, here)
    if name == "numeric":
        return _compile_numeric(argument, here)
    if name == "exists":
        if not isinstance(argument, bool):
            raise PatternError(f"exists takes true or false, not {json_type(argument)}", here)
        return _present if argument else None
    if name == "cidr":
        return _compile_cidr(argument, here)
    known = "prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists, cidr"
    raise PatternError(f"unknown operator {name!r}: the operators are {known}", where)


def _present(value: Any) -> bool:
    return True


def _string(argument: Any, name: str, where: PatternPath) -> str:
    if not isinstance(argument, str):
        raise PatternError(f"{name} takes a string, not {json_type(argument)}", where)
    return argument


def _compile_affix(name: str, argument: Any, where: PatternPath) -> ScalarTest:
    if isinstance(argument, dict):
        inner, value = _one_key(argument, where)
        if inner != "equals-ignore-case":
            raise PatternError(
                f'{name} takes a string or {{"equals-ignore-case": string}}, not {inner!r}',
                where,
            )
        affix = _string(value, f"{name} equals-ignore-case", (*where, inner)).lower()
        if name == "prefix":
            return lambda v: type(v) is str and v.lower().startswith(affix)
        return lambda v: type(v) is str and v.lower().endswith(affix)
    text = _string(argument, name, where)
    if name == "prefix":
        return lambda v: type(v) is str and v.startswith(text)
    return lambda v: type(v) is str and v.endswith(text)


def _wildcard(text: str, where: PatternPath) -> Callable[[str], bool]:
    """A wildcard's test: the literal pieces between its `*`, found in order.

    No regular expression: finding each piece at its leftmost place is exact for `*`
    alone and linear per piece, so no value can make a match backtrack for long.
    """
    pieces: list[str] = []
    literal = ""
    index = 0
    previous_star = False
    while index < len(text):
        char = text[index]
        if char == "\\":
            following = text[index + 1 : index + 2]
            if following not in ("*", "\\"):
                raise PatternError(
                    "in a wildcard, a backslash may only escape * or \\ (write \\\\ for one)",
                    where,
                )
            literal += following
            index += 2
            previous_star = False
            continue
        if char == "*":
            if previous_star:
                raise PatternError(
                    "consecutive wildcard characters (**) are not allowed: use one *", where
                )
            pieces.append(literal)
            literal = ""
            previous_star = True
        else:
            literal += char
            previous_star = False
        index += 1
    pieces.append(literal)
    if len(pieces) == 1:
        return pieces[0].__eq__
    first, *middle, last = pieces
    shortest = sum(len(piece) for piece in pieces)

    def wildcard(value: str) -> bool:
        if len(value) < shortest or not value.startswith(first) or not value.endswith(last):
            return False
        position, end = len(first), len(value) - len(last)
        for piece in middle:
            found = value.find(piece, position, end)
            if found < 0:
                return False
            position = found + len(piece)
        return True

    return wildcard


def _compile_anything_but(argument: Any, where: PatternPath) -> ScalarTest:
    if isinstance(argument, str):
        excluded = argument
        return lambda v: not (type(v) is str and v == excluded)
    if isinstance(argument, int | float) and not isinstance(argument, bool):
        equal = _number_test({_finite(argument, where)})
        return lambda v: not equal(v)
    if isinstance(argument, list):
        if not argument:
            raise PatternError("anything-but takes a non-empty array", where)
        if all(isinstance(item, str) for item in argument):
            strings = frozenset(argument)
            return lambda v: not (type(v) is str and v in strings)
        if all(isinstance(item, int | float) and not isinstance(item, bool) for item in argument):
            equal = _number_test({_finite(item, where) for item in argument})
            return lambda v: not equal(v)
        raise PatternError("anything-but takes an array of only strings or only numbers", where)
    if isinstance(argument, dict):
        name, inner = _one_key(argument, where)
        here = (*where, name)
        if name in ("prefix", "suffix"):
            text = _string(inner, f"anything-but {name}", here)
            if not text:
                raise PatternError(f"anything-but {name} takes a non-empty string", here)
            if name == "prefix":
                return lambda v: not (type(v) is str and v.startswith(text))
            return lambda v: not (type(v) is str and v.endswith(text))
        if name == "equals-ignore-case":
            lowered = frozenset(item.lower() for item in _strings(inner, name, here))
            return lambda v: not (type(v) is str and v.lower() in lowered)
        if name == "wildcard":
            wildcards = tuple(_wildcard(item, here) for item in _strings(inner, name, here))
            return lambda v: not (type(v) is str and any(test(v) for test in wildcards))
        raise PatternError(
            f"anything-but takes prefix, suffix, equals-ignore-case or wildcard, not {name!r}",
            where,
        )
    raise PatternError(
        f"anything-but takes a string, a number, an array or an object, not {json_type(argument)}",
        where,
    )


def _strings(argument: Any, name: str, where: PatternPath) -> list[str]:
    if isinstance(argument, str):
        return [argument]
    if isinstance(argument, list) and argument and all(isinstance(i, str) for i in argument):
        return argument
    raise PatternError(f"anything-but {name} takes a string or a non-empty array of strings", where)


def _compile_numeric(argument: Any, where: PatternPath) -> ScalarTest:
    if not isinstance(argument, list) or len(argument) not in (2, 4):
        raise PatternError(
            'numeric takes an array of one or two comparisons, like [">", 0, "<=", 5]', where
        )
    comparisons: list[tuple[str, float]] = []
    for index in range(0, len(argument), 2):
        operator, bound = argument[index], argument[index + 1]
        if operator not in (*LOWER_BOUNDS, *UPPER_BOUNDS, "="):
            raise PatternError(
                f"unknown numeric operator {json.dumps(operator)}: use <, <=, =, >= or >",
                (*where, index),
            )
        if not isinstance(bound, int | float) or isinstance(bound, bool):
            raise PatternError(
                f"numeric {operator} takes a number, not {json_type(bound)}", (*where, index + 1)
            )
        if not -NUMERIC_LIMIT <= bound <= NUMERIC_LIMIT:
            raise PatternError(
                "numeric values must be between -5.0e9 and 5.0e9", (*where, index + 1)
            )
        comparisons.append((operator, _scaled(bound)))
    if len(comparisons) == 2:
        (first, low), (second, high) = comparisons
        if first not in LOWER_BOUNDS or second not in UPPER_BOUNDS:
            raise PatternError(
                "numeric with two comparisons needs a lower bound (> or >=) first, "
                'then an upper bound (< or <=), like [">", 0, "<=", 5]',
                where,
            )
        if low >= high:
            raise PatternError(
                f"numeric range: the lower bound {low} must be less than the upper {high}", where
            )
    checks = tuple(_comparison(operator, bound) for operator, bound in comparisons)

    def numeric(value: Any) -> bool:
        if not _is_number(value) or not -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT:
            return False
        scaled = _scaled(value)
        return all(check(scaled) for check in checks)

    return numeric


def _comparison(operator: str, bound: float) -> Callable[[float], bool]:
    if operator == ">":
        return lambda value: value > bound
    if operator == ">=":
        return lambda value: value >= bound
    if operator == "<":
        return lambda value: value < bound
    if operator == "<=":
        return lambda value: value <= bound
    return lambda value: value == bound


def _compile_cidr(argument: Any, where: PatternPath) -> ScalarTest:
    """As EventBridge's engine has it: the range runs from the address as written (host
    bits are not cleared) to that address with every host bit set; /32 and /128, a
    single address, are refused (an exact value says that)."""
    text = _string(argument, "cidr", where)
    address_text, slash, length_text = text.partition("/")
    if not slash or "/" in length_text:
        raise PatternError(
            f"cidr takes an address and a prefix length, like 10.0.0.0/24, not {text!r}", where
        )
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise PatternError(
            f"cidr {text!r} is not a valid IP range: {address_text!r} is not an IP address", where
        ) from None
    if not length_text.isdigit():
        raise PatternError(
            f"cidr {text!r} is not a valid IP range: the prefix length must be a whole number",
            where,
        )
    length = int(length_text)
    bits = address.max_prefixlen
    if length >= bits:
        raise PatternError(
            f"cidr {text!r} is not a valid IP range: an IPv{address.version} prefix length"
            f" must be below {bits} (for one address, give it as an exact value)",
            where,
        )
    low = int(address)
    high = low | ((1 << (bits - length)) - 1)
    version = address.version

    def in_network(value: Any) -> bool:
        if type(value) is not str:
            return False
        found = _ip(value)
        return found is not None and found.version == version and low <= int(found) <= high

    return in_network


# explain() and required_values()


def values_at(value: Any, path: EventPath) -> list[Any]:
    """Every value at `path` in an event, looking through arrays."""
    if not path:
        return [value]
    if type(value) is dict:
        if path[0] in value:
            return values_at(value[path[0]], path[1:])
        return []
    if type(value) is list:
        found: list[Any] = []
        for element in value:
            found.extend(values_at(element, path))
        return found
    return []


def _explain(node: _Object, event: dict[str, Any], checks: list[FieldCheck]) -> None:
    for field in node.fields:
        if isinstance(field, _Or):
            for branch in field.branches:
                _explain(branch, event, checks)
        elif isinstance(field, _Nested):
            _explain(field.node, event, checks)
        else:
            found = values_at(event, field.path)
            actual: Any = MISSING if not found else found[0] if len(found) == 1 else found
            checks.append(
                FieldCheck(
                    path=field.path,
                    matched=field.test(actual),
                    expected=field.expected,
                    actual=actual,
                    present=bool(found),
                )
            )


def _required(node: _Object) -> dict[EventPath, frozenset[str]]:
    required: dict[EventPath, frozenset[str]] = {}

    def keep(path: EventPath, values: frozenset[str]) -> None:
        # Both are necessary; an event array may satisfy both at once, so do not intersect.
        if path not in required or len(values) < len(required[path]):
            required[path] = values

    for field in node.fields:
        if isinstance(field, _Leaf):
            if field.strings_only is not None:
                keep(field.path, field.strings_only)
        elif isinstance(field, _Nested):
            for path, values in _required(field.node).items():
                keep(path, values)
        else:
            branches = [_required(branch) for branch in field.branches]
            common = set(branches[0]).intersection(*branches[1:])
            for path in common:
                keep(path, frozenset().union(*(branch[path] for branch in branches)))
    return required
