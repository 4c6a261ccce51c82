"""Subscribe policy: what each consumer may see of the events (`fields:`).

A consumer lists the paths it may see (`include`) or may not (`redact`). A path is made
of field names and `[*]`, every element of an array: `detail.items[*].price`. The router
applies the policy to what the consumer gets, after the route's transform, so its queue,
its spill and its sink only ever hold what it may see; the dead letters keep the whole
event, so that a redrive gives it back.

- include: the object keeps only the listed paths that it has, in its own key order, with
  the objects and arrays on the way to them. A missing path is absent, never null. An
  object on the way is kept even when none of the listed paths is in it (`{}`); an array
  on the way keeps its elements that are objects (or arrays, for `[*][*]`), each cut down
  the same way, and loses the others: a number in `items` is not `items[*].price`.
- redact: the listed paths are removed. Through `[*]` they are removed from each element
  that is an object; other elements stay as they are, having nothing by that name.

The payload must be a JSON object: a transform that gives anything else is denied for a
consumer with a policy (dead letter `denied`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from evroute import expr
from evroute.config.checker import Checker, describe, join, source_position
from evroute.config.model import EACH, FIELDS_MODES, FieldsPolicy, FieldStep
from evroute.core.json_codec import encode, parse_value
from evroute.core.json_types import json_type

if TYPE_CHECKING:
    from evroute.config.model import ConsumerConfig, RouteConfig
    from evroute.config.yaml_loader import Node
    from evroute.core.parcel import Parcel
    from evroute.engine.queues import ConsumerQueue

PATH_HELP = (
    "; a fields path is field names joined by dots, with [*] for every element of an array"
    ' (detail.items[*].price, "detail-type")'
)

# What a part of an expression is, for the message that says it is not allowed in a path
_NOT_ALLOWED = {
    "index_expression": "an index",
    "slice": "a slice",
    "filter_projection": "a filter",
    "flatten": "a flatten ([])",
    "value_projection": "a wildcard (*)",
    "function_expression": "a function",
    "pipe": "a pipe",
    "multi_select_list": "a multiselect list",
    "multi_select_dict": "a multiselect hash",
    "current": "@",
    "literal": "a literal",
    "comparator": "a comparison",
    "and_expression": "&&",
    "or_expression": "||",
    "not_expression": "!",
    "expref": "an expression reference (&)",
}


_PLAIN = re.compile(r"[A-Za-z0-9_.\[\]*]*")


class PathError(ValueError):
    """A fields path that is not one; `position` is where, when it is known."""

    def __init__(self, message: str, position: int | None = None, hint: str = "") -> None:
        super().__init__(message + hint)
        self.message = message
        self.position = position
        self.hint = hint  # what to do, said after the path


def parse_path(source: str) -> tuple[FieldStep, ...]:
    """The steps of a fields path, read with the JMESPath parser; PathError if it is not
    one (a syntax error, or a part that is not a name or `[*]`)."""
    try:
        tree = expr.parse(source)
    except expr.ExpressionSyntaxError as error:
        hint = ""
        if '"' not in source and not _PLAIN.fullmatch(source):
            hint = '; a name that is not an identifier is quoted: "detail-type"'
        raise PathError(f"invalid JMESPath: {error.message}", error.position, hint) from None
    steps = _steps(tree)
    if steps[0] is EACH:
        raise PathError("[*] at the start is not allowed", 0, PATH_HELP)
    if steps[-1] is EACH:
        raise PathError(
            "[*] at the end is not allowed",
            len(source) - 3,
            "; name the array itself (items) or fields of its elements (items[*].price)",
        )
    return tuple(steps)


def _steps(node: dict[str, Any]) -> list[FieldStep]:
    kind = node["type"]
    if kind == "field":
        return [node["value"]]
    if kind == "subexpression":
        return [step for child in node["children"] for step in _steps(child)]
    if kind == "projection":
        # `a[*].b`; a flatten (`a[]`) or a slice (`a[1:]`) is a projection too, whose
        # left side is then not a path
        left, right = node["children"]
        before = [] if left["type"] == "identity" else _steps(left)
        after = [] if right["type"] == "identity" else _steps(right)
        return [*before, EACH, *after]
    what = _NOT_ALLOWED.get(kind, "this expression")
    if kind == "index_expression" and node["children"][1]["type"] == "slice":
        what = _NOT_ALLOWED["slice"]
    raise PathError(f"{what} is not allowed", None, PATH_HELP)


def show_path(steps: tuple[FieldStep, ...]) -> str:
    """A path as a person would write it: `detail.items[*].price`."""
    text = ""
    for step in steps:
        if step is EACH:
            text += "[*]"
        else:
            name = step if step.isidentifier() and step.isascii() else _quoted(step)
            text += f".{name}" if text else name
    return text


def _quoted(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# reading the config


def read_fields(checker: Checker, node: Node, path: str) -> FieldsPolicy | None:
    """A consumer's `fields:`: exactly one of include or redact, a non-empty list of
    paths. None after reporting what is wrong."""

    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, FIELDS_MODES)
    modes = [mode for mode in FIELDS_MODES if mode in fields]
    if len(modes) != 1:
        problem = "has both include and redact" if modes else "lists no paths"
        checker.error(
            node,
            path,
            f"{problem}; give exactly one: include: [PATH, ...] (all the consumer may see)"
            " or redact: [PATH, ...] (what it may not)",
        )
        return None
    mode = modes[0]
    list_path = join(path, mode)
    list_node = fields[mode]
    if not list_node.is_sequence or not list_node.value:
        got = "an empty list" if list_node.is_sequence else f"{_describe(list_node)}"
        checker.error(list_node, list_path, f"expected a non-empty list of paths, got {got}")
        return None
    paths: list[tuple[FieldStep, ...]] = []
    sources: list[str] = []
    ok = True
    for index, item in enumerate(list_node.value):
        item_path = join(list_path, index)
        source = checker.string(item, item_path)
        if source is None:
            ok = False
            continue
        try:
            steps = parse_path(source)
        except PathError as error:
            line, column = source_position(item, error.position)
            checker.report(
                "error", item, item_path, f"{error.message} in {source!r}{error.hint}", line, column
            )
            ok = False
            continue
        for earlier, earlier_source in zip(paths, sources, strict=True):
            if steps[: len(earlier)] == earlier:
                what = "is listed twice" if steps == earlier else f"is inside {earlier_source}"
                checker.warning(item, item_path, f"{what}, which is already listed")
                break
        paths.append(steps)
        sources.append(source)
    if not ok:
        return None
    return FieldsPolicy(mode, tuple(paths), tuple(sources))


def _describe(node: Node) -> str:

    return describe(node.value)


# applying a policy


class _Tree:
    """The paths of a policy merged: `a.b` and `a.c` share `a`'s node."""

    __slots__ = ("each", "end", "names")

    def __init__(self) -> None:
        self.end = False  # a listed path ends here: the whole value is kept (or removed)
        self.names: dict[str, _Tree] = {}
        self.each: _Tree | None = None  # `[*]`: every element of an array


def _tree(paths: tuple[tuple[FieldStep, ...], ...]) -> _Tree:
    root = _Tree()
    for path in paths:
        node = root
        for step in path:
            if step is EACH:
                node.each = node.each or _Tree()
                node = node.each
            else:
                node = node.names.setdefault(step, _Tree())
        node.end = True
    return root


_MISSING: Any = object()


def _include(value: Any, node: _Tree) -> Any:
    """`value` cut down to the paths under `node`; _MISSING when it cannot hold them."""
    if node.end:
        return value
    if isinstance(value, dict):
        if not node.names:
            return _MISSING
        kept: dict[str, Any] = {}
        for key, item in value.items():  # in the object's own order
            child = node.names.get(key)
            if child is not None:
                cut = _include(item, child)
                if cut is not _MISSING:
                    kept[key] = cut
        return kept
    if isinstance(value, list) and node.each is not None:
        each = node.each
        return [cut for item in value if (cut := _include(item, each)) is not _MISSING]
    return _MISSING


def _redact(value: Any, node: _Tree) -> Any:
    """`value` without the paths under `node` (which is not the end of one)."""
    if isinstance(value, dict) and node.names:
        kept: dict[str, Any] = {}
        for key, item in value.items():
            child = node.names.get(key)
            if child is None:
                kept[key] = item
            elif not child.end:
                kept[key] = _redact(item, child)
        return kept
    if isinstance(value, list) and node.each is not None:
        each = node.each
        return [_redact(item, each) for item in value]
    return value


@functools.lru_cache(maxsize=256)
def compile_policy(policy: FieldsPolicy) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The policy as a function from an object to what the consumer may see of it; the
    object itself is left as it was."""
    tree = _tree(policy.paths)
    if policy.mode == "include":
        return lambda value: _include(value, tree)
    return lambda value: _redact(value, tree)


def apply_policy(policy: FieldsPolicy, value: dict[str, Any]) -> dict[str, Any]:
    """What a consumer with `policy` gets of the object `value`."""
    return compile_policy(policy)(value)


def denied_detail(consumer: str, route: str, value: Any) -> str:
    """The dead letter's detail for a payload that is not an object."""
    gave = f"the transform of route {route} gave {json_type(value)}"
    return f"consumer {consumer}'s fields policy applies to objects; {gave}"


class Gate:
    """Applies one consumer's policy to each parcel the router gives it.

    Events are parsed, cut down and written again (integers beyond 64 bits exact). A
    payload that is not an object is denied: counted as enqueued and dead-lettered by
    the consumer's queue, with the original event, as `denied`.
    """

    def __init__(self, consumer: str, policy: FieldsPolicy, queue: ConsumerQueue) -> None:
        # the router imports this module, so its codec is imported when a gate is built

        self.consumer = consumer
        self.restrict = compile_policy(policy)
        self.queue = queue
        self.parse = parse_value
        self.encode = encode

    def __call__(self, parcel: Parcel) -> Parcel:
        """The parcel as the consumer may see it; its denied events are dead-lettered."""
        parse, encode, restrict = self.parse, self.encode, self.restrict
        payloads: list[bytes] = []
        denied: list[tuple[int, Any]] = []  # (index in the parcel, the payload's value)
        for index, payload in enumerate(parcel.payloads):
            value = parse(payload)
            if isinstance(value, dict):
                payloads.append(encode(restrict(value)))
            else:
                payloads.append(b"")
                denied.append((index, value))
        # the lines as they came, for dead letters and redrives: the whole event
        originals = parcel.originals if parcel.originals is not None else parcel.payloads
        restricted = dataclasses.replace(parcel, payloads=payloads, originals=originals, size=-1)
        if not denied:
            return restricted
        self._deny(restricted, denied)
        kept = sorted(set(range(len(parcel))) - {index for index, _ in denied})
        return restricted.pick(kept)

    def _deny(self, parcel: Parcel, denied: list[tuple[int, Any]]) -> None:
        routes = parcel.route
        route_of: Callable[[int], int] = (
            (lambda index: routes) if isinstance(routes, int) else routes.__getitem__
        )

        def detail(item: tuple[int, Any]) -> str:
            index, value = item
            return denied_detail(self.consumer, parcel.routes[route_of(index)], value)

        for text, run in itertools.groupby(denied, key=detail):
            picked = parcel.pick([index for index, _ in run])
            self.queue.stats.enqueued += len(picked)  # offered, as every event is counted
            self.queue.dead_letter("denied", text, [picked])


# what validate can tell from a route's transform

# functions whose result is never an object, and what it is
_FUNCTION_RESULTS = {
    **dict.fromkeys(("abs", "avg", "ceil", "floor", "length", "sum", "to_number"), "a number"),
    **dict.fromkeys(("join", "to_string", "type"), "a string"),
    **dict.fromkeys(("contains", "ends_with", "starts_with"), "a boolean"),
    **dict.fromkeys(("keys", "map", "sort", "sort_by", "to_array", "values"), "an array"),
    "max": "a number or a string",
    "min": "a number or a string",
    "reverse": "an array or a string",
}
_ARRAYS = ("projection", "filter_projection", "value_projection", "flatten", "multi_select_list")


def never_object(node: dict[str, Any]) -> str | None:
    """What an expression gives when it can never give an object (`an array`); None
    when it can, or when that cannot be known before the data is seen."""
    kind = node["type"]
    if kind == "literal":
        value = node["value"]
        return None if isinstance(value, dict) else json_type(value)
    if kind in _ARRAYS:
        return "an array"
    if kind in ("comparator", "not_expression"):
        return "a boolean"
    if kind == "function_expression":
        return _FUNCTION_RESULTS.get(node["value"])
    if kind in ("subexpression", "pipe"):  # the value of the last part
        return never_object(node["children"][-1])
    if kind in ("or_expression", "and_expression"):
        left, right = (never_object(child) for child in node["children"])
        if left is None or right is None:
            return None
        return left if left == right else f"{left} or {right}"
    return None


def _produced(node: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The keys a transform's object is made of, with the expression of each, when it
    is a multiselect hash (`{id: id, email: user.email}`)."""
    while node["type"] in ("subexpression", "pipe"):
        node = node["children"][-1]
    if node["type"] != "multi_select_dict":
        return None
    return {pair["value"]: pair["children"][0] for pair in node["children"]}


def _redacted_keys(node: dict[str, Any], tree: _Tree, prefix: tuple[str, ...]) -> list[str]:
    """The paths a multiselect hash makes that `tree` (a redact policy) removes."""
    produced = _produced(node)
    if produced is None:
        return []
    found: list[str] = []
    for key, value in produced.items():
        child = tree.names.get(key)
        if child is None:
            continue
        if child.end:
            found.append(show_path((*prefix, key)))
        else:
            found.extend(_redacted_keys(value, child, (*prefix, key)))
    return found


def _excluded_keys(node: dict[str, Any], tree: _Tree, prefix: tuple[str, ...]) -> list[str]:
    """The paths a multiselect hash makes that `tree` (an include policy) leaves out."""
    produced = _produced(node)
    if produced is None:
        return []
    found: list[str] = []
    for key, value in produced.items():
        child = tree.names.get(key)
        if child is None:
            found.append(show_path((*prefix, key)))
        elif not child.end:
            found.extend(_excluded_keys(value, child, (*prefix, key)))
    return found


def check_route(
    checker: Checker,
    node: Node,
    path: str,
    route: RouteConfig,
    consumers: Mapping[str, ConsumerConfig],
) -> None:
    """Errors for a route that would break a consumer's policy, where its transform
    tells: it never gives an object, or it makes a field the consumer redacts; warnings
    for fields it makes that an include list leaves out. Each is reported at the
    consumer's name in the route's `to`."""

    if route.transform is None:
        return  # the event itself: an object, and what it holds is up to the events
    to_node: Node = node.value["to"]
    items = to_node.value if to_node.is_sequence else [to_node]
    tree = route.transform.tree
    gives = never_object(tree)
    shown = route.transform.source
    for index, item in enumerate(items):
        consumer = consumers.get(item.value)
        if consumer is None or consumer.fields is None:
            continue
        item_path = join(join(path, "to"), index) if to_node.is_sequence else join(path, "to")
        policy = consumer.fields
        name = consumer.name
        if gives is not None:
            checker.error(
                item,
                item_path,
                f"consumer {name} has a fields policy, which applies to objects only, but"
                f" the transform of route {route.name} ({shown}) gives {gives}: every event"
                " would be denied; make the transform give an object or send it elsewhere",
            )
            continue
        policy_tree = _tree(policy.paths)
        if policy.mode == "redact":
            for key in _redacted_keys(tree, policy_tree, ()):
                checker.error(
                    item,
                    item_path,
                    f"route {route.name}'s transform produces {key}, which consumer {name}"
                    f" redacts: remove {key} from the transform, or send the route to a"
                    " consumer that may see it",
                )
        else:
            for key in _excluded_keys(tree, policy_tree, ()):
                checker.warning(
                    item,
                    item_path,
                    f"route {route.name}'s transform produces {key}, which consumer {name}"
                    " does not include: it will be removed",
                )
