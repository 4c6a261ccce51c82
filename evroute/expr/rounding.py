"""Whether an expression's truth can depend on integers beyond 64 bits being exact.

orjson reads an integer beyond 64 bits as the nearest float. The router re-parses such
lines exactly, which costs a scan of every byte for runs of digits; a config whose every
filter gives the same truth (and the same errors) on either reading can skip that scan.

The analysis is conservative: anything it does not know is "may depend". It tracks, for
each part of the expression, what its value can be under the two readings:

- SAME_SMALL: the same under both readings, and holding no number of magnitude 2**53 or
  more (a comparison with it cannot tell a rounded integer from an exact one);
- SAME: the same under both readings, but a literal may hold a big number;
- EVENT: read from the event: the same structure, types and strings under both readings;
  only numbers of magnitude 2**63 or more may differ, and they keep their sign and stay
  that big (JMESPath gives every number the type "number" and every number is true).

Comparing EVENT with SAME_SMALL, or SAME with SAME, decides alike under both readings;
comparing EVENT with EVENT, or with a big literal, may not. Functions that compute with
numbers (sum, sort, to_string...) may not either.
"""

from __future__ import annotations

from typing import Any

SAME_SMALL = 0
SAME = 1
EVENT = 2

# A number this small in magnitude never equals, and sits on the same side of, an
# integer beyond 64 bits whether read exactly or rounded (both are 2**63 or more).
SMALL = 2**53

# Structure-preserving: the value is made of the arguments' parts.
_PASS_THROUGH = frozenset(["not_null", "to_array", "values", "reverse", "merge"])
# Results built from types, sizes and strings only: the same under both readings.
_SAME_RESULT = frozenset(["length", "type", "keys", "starts_with", "ends_with", "join"])
_COMPARED = frozenset(["contains"])  # decides by equality, like ==
_STRUCTURAL = frozenset(
    [
        "field",
        "current",
        "identity",
        "index",
        "slice",
        "subexpression",
        "index_expression",
        "pipe",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
        "and_expression",
        "or_expression",
    ]
)


class _Depends(Exception):
    """The expression's truth may depend on exact big integers."""


def truth_ignores_rounding(tree: dict[str, Any]) -> bool:
    """Whether the truth of the expression `tree` (jmespath's parse tree), and any error
    it raises, are the same when integers beyond 64 bits are read as floats."""
    try:
        _kind(tree)
    except (_Depends, RecursionError):
        return False
    return True


def _small(value: Any) -> bool:
    """Whether a literal holds no number of magnitude SMALL or more, at any depth."""
    if type(value) in (int, float):
        return bool(abs(value) < SMALL)
    if type(value) is list:
        return all(map(_small, value))
    if type(value) is dict:
        return all(map(_small, value.values()))
    return True


def _compared(left: int, right: int) -> int:
    """The kind of a comparison's result (a boolean or null) from its operands' kinds."""
    if max(left, right) == EVENT and min(left, right) != SAME_SMALL:
        raise _Depends
    return SAME_SMALL


def _kind(node: Any) -> int:
    if not isinstance(node, dict):  # a slice's bounds, or an index: numbers of the text
        return SAME_SMALL
    kind = node.get("type")
    children = node.get("children", [])
    if kind == "literal":
        return SAME_SMALL if _small(node.get("value")) else SAME
    if kind == "comparator":
        left, right = children
        return _compared(_kind(left), _kind(right))
    if kind == "not_expression":
        _kind(children[0])  # truthiness is the same under both readings
        return SAME_SMALL
    if kind in _STRUCTURAL:
        kinds = [_kind(child) for child in children]
        reads_event = kind in ("field", "current", "identity", "index", "slice")
        return max([EVENT if reads_event else SAME_SMALL, *kinds])
    if kind == "function_expression":
        name = node.get("value")
        kinds = [_kind(child) for child in children]
        if name in _SAME_RESULT:
            return SAME_SMALL
        if name in _PASS_THROUGH:
            return max([SAME_SMALL, *kinds])
        if name in _COMPARED and len(kinds) == 2:
            return _compared(*kinds)
    raise _Depends  # arithmetic, sorting, expression references, and the unknown
