"""The `tests:` section: routing tests that `evroute test` runs, read and checked."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from evroute.config.checker import (
    Checker,
    describe,
    join,
    json_value,
)
from evroute.config.model import (
    TestCase,
)
from evroute.config.yaml_loader import Node
from evroute.loading.routes import read_name_list

TEST_KEYS = ("name", "event", "routes", "outputs")


def read_tests(
    checker: Checker, node: Node, routes: set[str], consumers: Mapping[str, Node]
) -> list[TestCase]:
    """The `tests:` section: each case's event, the routes it must match and, optionally,
    what consumers must get. `routes` and `consumers` are every name the config gives,
    so that a route with an error of its own does not also fail each test naming it."""
    if not node.is_sequence:
        checker.error(node, "tests", f"expected a list of tests, got {describe(node.value)}")
        return []
    cases: list[TestCase] = []
    names: dict[str, Node] = {}
    for index, case_node in enumerate(node.value):
        path = join("tests", index)
        fields = checker.mapping(case_node, path)
        if fields is None:
            continue
        checker.known_keys(case_node, path, TEST_KEYS)
        ok = True
        name: str | None = None
        if "name" not in fields:
            checker.error(case_node, join(path, "name"), "missing; every test needs a name")
            ok = False
        else:
            name = checker.string(fields["name"], join(path, "name"))
            if name is not None and name in names:
                checker.error(
                    fields["name"],
                    join(path, "name"),
                    f"duplicate test name {name!r} (first at line {names[name].line})",
                )
                ok = False
            elif name is not None:
                names[name] = fields["name"]
        event: dict[str, Any] | None = None
        if "event" not in fields:
            checker.error(case_node, join(path, "event"), "missing; the event to route")
        elif not fields["event"].is_mapping:
            checker.error(
                fields["event"],
                join(path, "event"),
                f"expected an event (a JSON object), got {describe(fields['event'].value)}",
            )
        else:
            value = json_value(checker, fields["event"], join(path, "event"))
            event = value if isinstance(value, dict) else None
        expected = read_test_routes(checker, case_node, fields, join(path, "routes"), routes)
        outputs: dict[str, list[Any]] | None = None
        if "outputs" in fields:
            outputs = read_test_outputs(
                checker, fields["outputs"], join(path, "outputs"), consumers
            )
            ok = ok and outputs is not None
        if ok and name is not None and event is not None and expected is not None:
            cases.append(TestCase(name, event, expected, outputs, case_node.line, case_node.column))
    return cases


def read_test_routes(
    checker: Checker, node: Node, fields: dict[str, Node], path: str, routes: set[str]
) -> frozenset[str] | None:
    if "routes" not in fields:
        checker.error(
            node, path, "missing; list exactly the routes the event must match ([] for none)"
        )
        return None
    routes_node = fields["routes"]
    if not routes_node.is_sequence:
        checker.error(
            routes_node, path, f"expected a list of route names, got {describe(routes_node.value)}"
        )
        return None
    located = [(item, join(path, index)) for index, item in enumerate(routes_node.value)]
    names, ok = read_name_list(checker, located, routes, "route")
    return frozenset(names) if ok else None


def read_test_outputs(
    checker: Checker, node: Node, path: str, consumers: Mapping[str, Node]
) -> dict[str, list[Any]] | None:
    if not node.is_mapping:
        checker.error(
            node,
            path,
            f"expected a mapping of consumer names to lists of events, got {describe(node.value)}",
        )
        return None
    outputs: dict[str, list[Any]] = {}
    ok = True
    for name, value_node in node.value.items():
        item_path = join(path, name)
        if name not in consumers:
            close = difflib.get_close_matches(name, list(consumers), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            checker.error(node.keys[name], item_path, f"no consumer is named {name!r}{hint}")
            ok = False
            continue
        if not value_node.is_sequence:
            checker.error(
                value_node,
                item_path,
                "expected a list of what the consumer gets (one item a delivery),"
                f" got {describe(value_node.value)}",
            )
            ok = False
            continue
        value = json_value(checker, value_node, item_path)
        if isinstance(value, list):
            outputs[name] = value
        else:
            ok = False
    return outputs if ok else None
