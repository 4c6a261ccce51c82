"""Reading a consumer's `fields:` (the paths it may or may not see), and checking that a
route's transform does not make keys the consumer's policy would take away again."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from evroute import expr
from evroute.config.checker import Checker, describe, join, source_position
from evroute.config.model import EACH, FIELDS_MODES, FieldsPolicy, FieldStep
from evroute.core.json_types import json_type

if TYPE_CHECKING:
    from evroute.config.model import ConsumerConfig, RouteConfig
    from evroute.config.yaml_loader import Node
from evroute.shaping.fields_gate import PathTree, path_tree

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


def _taken_keys(
    node: dict[str, Any], tree: PathTree, prefix: tuple[str, ...], include: bool
) -> list[str]:
    """The paths a multiselect hash makes that the policy of `tree` takes away: those a
    redact policy names, or those an include policy leaves out."""
    produced = _produced(node)
    if produced is None:
        return []
    found: list[str] = []
    for key, value in produced.items():
        child = tree.names.get(key)
        if child is None or child.end:
            if (child is None) == include:
                found.append(show_path((*prefix, key)))
        else:
            found.extend(_taken_keys(value, child, (*prefix, key), include))
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
        policy_tree = path_tree(policy.paths)
        if policy.mode == "redact":
            for key in _taken_keys(tree, policy_tree, (), include=False):
                checker.error(
                    item,
                    item_path,
                    f"route {route.name}'s transform produces {key}, which consumer {name}"
                    f" redacts: remove {key} from the transform, or send the route to a"
                    " consumer that may see it",
                )
        else:
            for key in _taken_keys(tree, policy_tree, (), include=True):
                checker.warning(
                    item,
                    item_path,
                    f"route {route.name}'s transform produces {key}, which consumer {name}"
                    " does not include: it will be removed",
                )
