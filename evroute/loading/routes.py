"""The `routes:` section: each route's name, filter or EventBridge pattern, transform and
consumers, checked with the position of every problem."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from evroute import expr
from evroute.config.checker import (
    INVALID,
    Checker,
    describe,
    join,
    json_value,
    source_position,
)
from evroute.config.model import (
    RouteConfig,
)
from evroute.config.yaml_loader import Node

if TYPE_CHECKING:
    from evroute.patterns import Pattern

ROUTE_KEYS = ("name", "filter", "pattern", "transform", "to")


def read_route(
    checker: Checker,
    node: Node,
    path: str,
    consumers: Mapping[str, Node],
    seen: dict[str, Node],
    fed: set[str],
) -> RouteConfig | None:
    """The route at `node`; adds the consumers it names to `fed`, even when it has errors."""
    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, ROUTE_KEYS)
    name = checker.item_name(node, fields, path, "route")
    if name is not None:
        if name in seen:
            checker.error(
                fields["name"],
                join(path, "name"),
                f"duplicate route name {name!r} (first at line {seen[name].line})",
            )
            name = None
        else:
            seen[name] = fields["name"]
    filter_ = transform = pattern = None
    ok = name is not None
    if "filter" in fields:
        filter_ = checker.expression(fields["filter"], join(path, "filter"))
        ok = ok and filter_ is not None
        if filter_ is not None and filter_.is_constant():
            warn_constant(checker, fields["filter"], join(path, "filter"), filter_)
    if "pattern" in fields:
        pattern = read_pattern(checker, fields["pattern"], join(path, "pattern"))
        ok = ok and pattern is not None
        if "filter" in fields:
            checker.error(
                node.keys["pattern"],
                path,
                "has both filter and pattern; a route takes one of them: a filter"
                " (JMESPath) or a pattern (an EventBridge event pattern)",
            )
            ok = False
    if "transform" in fields:
        transform = checker.expression(fields["transform"], join(path, "transform"))
        ok = ok and transform is not None
    targets: list[str] = []
    if "to" not in fields:
        checker.error(node, join(path, "to"), "missing; say which consumers get the events")
        ok = False
    else:
        to_node = fields["to"]
        items = to_node.value if to_node.is_sequence else [to_node]
        if to_node.is_sequence and not items:
            checker.error(to_node, join(path, "to"), "is empty; name at least one consumer")
            ok = False
        to_path = join(path, "to")
        located = [
            (item, join(to_path, index) if to_node.is_sequence else to_path)
            for index, item in enumerate(items)
        ]
        targets, all_known = read_name_list(checker, located, consumers, "consumer")
        ok = ok and all_known
    fed.update(targets)
    if not ok or name is None:
        return None
    where = fields.get("filter", fields.get("pattern", node))
    return RouteConfig(
        name=name,
        to=tuple(targets),
        filter=filter_,
        transform=transform,
        line=where.line,
        column=where.column,
        pattern=pattern,
    )


def read_pattern(checker: Checker, node: Node, path: str) -> Pattern | None:
    """A route's EventBridge event pattern: YAML, or a JSON object written as a string.

    A problem is reported where it is: at the YAML node the pattern's own path leads to
    (`routes[2].pattern.detail.amount[0].numeric`), or at the string holding the JSON.
    """
    from evroute import patterns  # configs without a pattern never load it

    if isinstance(node.value, str):
        source = checker.string(node, path)
        if source is None:
            return None
        try:
            value = json.loads(source, parse_constant=_not_json_constant, parse_float=_finite_float)
        except ValueError as error:
            offset = getattr(error, "pos", None)
            line, column = source_position(node, offset)
            where = f" at position {offset}" if offset is not None else ""
            message = getattr(error, "msg", str(error))
            checker.report(
                "error",
                node,
                path,
                f"the pattern is not valid JSON: {message}{where}; write it as a JSON object"
                " in a string, or as YAML",
                line=line,
                column=column,
            )
            return None
    elif node.is_mapping:
        value = json_value(checker, node, path)
        if value is INVALID:
            return None
    else:
        checker.error(
            node,
            path,
            "expected an event pattern (a mapping, or a JSON object in a string),"
            f" got {describe(node.value)}",
        )
        return None
    try:
        return patterns.compile(value)
    except patterns.PatternError as error:
        at, at_path = pattern_node(node, path, error.path)  # in a JSON string: the string
        checker.error(at, at_path, error.message)
        return None


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of the range of a number")
    return number


def pattern_node(node: Node, path: str, steps: tuple[str | int, ...]) -> tuple[Node, str]:
    """The deepest YAML node along a pattern's path, and the config path to it; the
    path is followed as far as the YAML goes, and the rest named after it."""
    found = True
    for step in steps:
        if isinstance(step, str):
            found = found and node.is_mapping and step in node.value
        else:
            found = found and node.is_sequence and 0 <= step < len(node.value)
        if found:
            node = node.value[step]
        # else the node reached is the closest place the YAML has
        path = join(path, step)
    return node, path


def warn_constant(checker: Checker, node: Node, path: str, filter_: expr.Expression) -> None:
    """A filter that reads nothing of the event decides the same for every event."""
    try:
        matches = filter_.test({})
    except expr.ExpressionError as error:
        checker.warning(node, path, f"fails for every event ({error}): nothing will match")
        return
    if matches:
        checker.warning(node, path, "is constant and true: every event matches (drop the filter)")
    else:
        checker.warning(node, path, "is constant and false: no event will ever match")


def read_name_list(
    checker: Checker, items: list[tuple[Node, str]], known: Iterable[str], what: str
) -> tuple[list[str], bool]:
    """The names of known routes or consumers, each once; False when one was wrong
    (said where, with the closest known name)."""
    choices = sorted(known)
    names: list[str] = []
    ok = True
    for item, item_path in items:
        name = checker.string(item, item_path)
        if name is None:
            ok = False
        elif name not in choices:
            close = difflib.get_close_matches(name, choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            checker.error(item, item_path, f"no {what} is named {name!r}{hint}")
            ok = False
        elif name in names:
            checker.error(item, item_path, f"{what} {name!r} is listed twice")
            ok = False
        else:
            names.append(name)
    return names, ok
