"""Writing a parsed expression back as JMESPath text, to name its parts in explanations."""

from __future__ import annotations

import json
import re
from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
# How tightly each kind of node binds; a part that binds less tightly than the place it
# sits in is written in parentheses.
_PRECEDENCE = {
    "pipe": 1,
    "or_expression": 2,
    "and_expression": 3,
    "comparator": 5,
    "not_expression": 6,
}
_TIGHT = 9
_PROJECTIONS = ("projection", "value_projection", "filter_projection", "flatten")
# Nodes whose first child is written first, and the rest after it.
_CHAINS = (
    "subexpression",
    "index_expression",
    "projection",
    "value_projection",
    "filter_projection",
    "flatten",
)
# Operands `!` takes without parentheses.
_ATOMS = (
    "field",
    "literal",
    "current",
    "identity",
    "function_expression",
    "multi_select_list",
    "multi_select_dict",
)


def _precedence(node: dict[str, Any]) -> int:
    return _PRECEDENCE.get(node["type"], _TIGHT)


def _wrapped(node: dict[str, Any], at_least: int) -> str:
    text = unparse(node)
    return f"({text})" if _precedence(node) < at_least else text


def _field(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _literal(value: Any) -> str:
    # a raw string unescapes only \'; a string with a backslash is written as JSON
    if isinstance(value, str) and "\\" not in value:
        return "'" + value.replace("'", "\\'") + "'"
    return "`" + json.dumps(value, ensure_ascii=False).replace("`", "\\`") + "`"


def _left(node: dict[str, Any]) -> str:
    """A part that something follows: a projection is closed off with parentheses, or
    what follows would be projected too."""
    if node["type"] == "identity":
        return ""
    text = _wrapped(node, _TIGHT)
    return f"({text})" if node["type"] in _PROJECTIONS else text


def _leftmost(node: dict[str, Any]) -> dict[str, Any]:
    while node["type"] in _CHAINS and node["children"]:
        node = node["children"][0]
    return node


def _rest(node: dict[str, Any]) -> str:
    """What follows a projection: nothing, `[...]`, or `.name`."""
    if node["type"] == "identity":
        return ""
    text = _wrapped(node, _TIGHT)
    leftmost = _leftmost(node)
    bracketed = leftmost["type"] in ("identity", "index", "slice") and text.startswith("[")
    return text if bracketed else "." + text


def unparse(node: dict[str, Any]) -> str:
    """JMESPath text for a node of jmespath's parse tree."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        return _field(node["value"])
    if kind in ("identity", "current"):
        return "@"
    if kind == "literal":
        return _literal(node["value"])
    if kind == "index_expression":
        return _left(children[0]) + "".join(unparse(child) for child in children[1:])
    if kind == "subexpression":
        text = _left(children[0]) or "@"
        return text + "".join("." + _wrapped(child, _TIGHT) for child in children[1:])
    if kind == "index":
        return f"[{node['value']}]"
    if kind == "slice":
        start, stop, step = ("" if part is None else str(part) for part in children)
        return f"[{start}:{stop}:{step}]" if step else f"[{start}:{stop}]"
    if kind == "comparator":
        left, right = children
        symbol = _SYMBOLS[node["value"]]
        return f"{_wrapped(left, _TIGHT)} {symbol} {_wrapped(right, _TIGHT)}"
    if kind in ("and_expression", "or_expression", "pipe"):
        left, right = children
        symbol = {"and_expression": "&&", "or_expression": "||", "pipe": "|"}[kind]
        level = _PRECEDENCE[kind]
        return f"{_wrapped(left, level)} {symbol} {_wrapped(right, level + 1)}"
    if kind == "not_expression":
        operand = unparse(children[0])
        return "!" + (operand if children[0]["type"] in _ATOMS else f"({operand})")
    if kind == "flatten":
        return _left(children[0]) + "[]"
    if kind == "projection":
        left, right = children
        # a slice projects by itself, as a flatten does
        sliced = left["type"] == "index_expression" and left["children"][-1]["type"] == "slice"
        if left["type"] == "flatten" or sliced:
            return unparse(left) + _rest(right)
        return _left(left) + "[*]" + _rest(right)
    if kind == "value_projection":
        left, right = children
        head = _left(left)
        return (head + ".*" if head else "*") + _rest(right)
    if kind == "filter_projection":
        left, right, condition = children
        return f"{_left(left)}[?{unparse(condition)}]{_rest(right)}"
    if kind == "multi_select_list":
        return "[" + ", ".join(unparse(child) for child in children) + "]"
    if kind == "multi_select_dict":
        pairs = (f"{_field(pair['value'])}: {unparse(pair['children'][0])}" for pair in children)
        return "{" + ", ".join(pairs) + "}"
    if kind == "key_val_pair":
        return unparse(children[0])
    if kind == "function_expression":
        return f"{node['value']}(" + ", ".join(unparse(child) for child in children) + ")"
    if kind == "expref":
        return "&" + _wrapped(children[0], _TIGHT)
    return str(kind)
