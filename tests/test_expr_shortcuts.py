"""Shortcuts of the filters, each against the long way round on generated data.

- truth_ignores_rounding: a filter it clears decides alike (same truth, same error) on
  integers beyond 64 bits read exactly and rounded to floats as orjson reads them, so
  that the router may skip reading them exactly.
- `length(list[?condition]) > `0`` stops at the first element kept; `test` must agree
  with `search`, which builds the whole list.
- batch_runner: a plan's loop over a batch of lines, inside its generated code, does
  what calling the plan for each line does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from expressions import (
    compiled_or_none,
    expressions,
    objects,
    plain_fields,
    plain_literals,
    scalars,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from evroute import expr
from evroute.config.model import Config, ConsumerConfig, QueueSettings, RouteConfig
from evroute.core.lines import LineSplitter
from evroute.core.stats import RunStats
from evroute.engine.router import Router, Verdict, rounding_matters
from evroute.expr import codegen
from evroute.storage.dead_letters import DeadLetters

W1_FILTERS = [
    "\"detail-type\" == 'OrderPlaced' && detail.amount > `100`",
    "contains(['gold','platinum'], detail.customer.tier)",
    "length(detail.items[?qty > `2`]) > `0`",
    "\"detail-type\" == 'PaymentFailed'",
]
BIG = [2**64, 2**64 + 1, 2**64 - 1, -(2**63) - 1, -(2**63), 10**20 + 7, -(10**25), 2**70]
BIG_LITERALS = [
    "`18446744073709551617`",
    "`-9223372036854775809`",
    "`1e20`",
    "`[18446744073709551616]`",
]


def rounded(value: Any) -> Any:
    """`value` as orjson reads it: integers beyond 64 bits become the nearest float."""
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    if type(value) is list:
        return [rounded(item) for item in value]
    if type(value) is dict:
        return {key: rounded(item) for key, item in value.items()}
    return value


def test_rounded_is_what_orjson_reads() -> None:
    document = {"a": BIG, "b": {"c": 2**64 + 1}}
    assert orjson.loads(orjson.dumps(rounded(document))) == rounded(document)
    text = (
        b'{"a": ['
        + b",".join(str(n).encode() for n in BIG)
        + b'], "b": {"c": 18446744073709551617}}'
    )
    assert orjson.loads(text) == rounded(document)


def outcome(expression: expr.Expression, document: Any) -> tuple[str, Any]:
    try:
        return "truth", expression.test(document)
    except expr.ExpressionError as error:
        return "error", str(error)


values = st.recursive(
    st.sampled_from(BIG) | scalars,
    lambda inner: st.lists(inner, max_size=3) | objects(inner),
    max_leaves=10,
)
documents = objects(values)


@settings(max_examples=1500, deadline=None)
@given(
    source=expressions(
        plain_fields,
        plain_literals | st.sampled_from(BIG_LITERALS),
        st.sampled_from(["length", "contains", "type", "keys", "sum", "max", "to_string"]),
    ),
    document=documents,
)
def test_a_filter_that_ignores_rounding_decides_alike_on_rounded_integers(
    source: str, document: dict[str, Any]
) -> None:
    expression = compiled_or_none(source)
    if expression is None or not expression.truth_ignores_rounding():
        return
    assert outcome(expression, document) == outcome(expression, rounded(document))


@pytest.mark.parametrize("source", W1_FILTERS)
def test_the_w1_filters_ignore_rounding(source: str) -> None:
    assert expr.compile(source).truth_ignores_rounding()


@pytest.mark.parametrize(
    ("source", "document"),
    [  # each decides otherwise on the rounded document: the analysis must say so
        ("a == `18446744073709551617`", {"a": 2**64 + 1}),
        ("a > `18446744073709551616`", {"a": 2**64 + 1}),
        ("a == b", {"a": 2**64 + 1, "b": 2**64}),
        ("a[0] < a[1]", {"a": [2**64, 2**64 + 1]}),
        ("contains(a, b)", {"a": [2**64 + 1], "b": 2**64}),
        ("to_string(a) == '18446744073709551617'", {"a": 2**64 + 1}),
        ("sum(a) == `1`", {"a": [2**64 + 1, -(2**64)]}),
        ("sort(a)[1] == `18446744073709551617`", {"a": [2**64 + 1, 2**64]}),
        (
            "max_by(a, &n).k == 'second'",
            {"a": [{"n": 2**64, "k": "first"}, {"n": 2**64 + 1, "k": "second"}]},
        ),
    ],
)
def test_a_filter_that_can_tell_is_flagged(source: str, document: dict[str, Any]) -> None:
    expression = expr.compile(source)
    assert outcome(expression, document) != outcome(expression, rounded(document))
    assert not expression.truth_ignores_rounding()


def config_of(**route: Any) -> Config:
    return Config(
        path=Path("routes.yaml"),
        base_dir=Path("."),
        consumers={"out": ConsumerConfig("out", "file", None, QueueSettings())},
        routes=[RouteConfig(name="r", to=("out",), **route)],
    )


def test_the_router_reads_exactly_when_a_route_can_tell() -> None:
    assert not rounding_matters(config_of(filter=expr.compile(W1_FILTERS[0])))
    assert not rounding_matters(config_of())  # no filter: everything
    assert rounding_matters(config_of(filter=expr.compile("a == `18446744073709551617`")))
    assert rounding_matters(config_of(transform=expr.compile("{n: n}")))  # writes numbers


ANY_FORMS = [
    "length({}) > `0`",
    "length({}) >= `1`",
    "length({}) != `0`",
    "`0` < length({})",
    "`1` <= length({})",
    "`0` != length({})",
    "`0.0` < length({})",
]
plain_conditions = st.sampled_from(
    ["a > `1`", "a", "!a", "@ == `1`", "a == 'x' && b > `0`", "a.b || c", "@ != `null`", "`true`"]
)
other_conditions = st.sampled_from(
    ["a == b", "length(@) > `1`", "to_number(@) > `1`", "@ == `[1]`"]
)
subjects = st.sampled_from(["@", "a", "b", "a.b", "c[*]", "a[]"])
list_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | objects(inner), max_leaves=12
)


@settings(max_examples=800, deadline=None)
@given(
    form=st.sampled_from(ANY_FORMS),
    subject=subjects,
    condition=plain_conditions | other_conditions,
    document=list_values,
)
def test_any_element_kept_agrees_with_building_the_list(
    form: str, subject: str, condition: str, document: Any
) -> None:
    expression = expr.compile(form.format(f"{subject}[?{condition}]"))
    try:
        expected: tuple[str, Any] = "truth", expr.is_truthy(expression.search(document))
    except expr.ExpressionError as error:
        expected = "error", str(error)
    assert outcome(expression, document) == expected


@pytest.mark.parametrize("form", ANY_FORMS)
def test_any_element_kept_stops_at_the_first(form: str) -> None:
    source = form.format("items[?qty > `2`]")
    generated = codegen.CodeGenerator(source, expr.parse(source), False).generate().source
    assert "break" in generated


@pytest.mark.parametrize(
    "source",
    [
        "length(items[?a == b]) > `0`",  # json_equal recurses: a later element may raise
        "length(items[?length(@) > `1`]) > `0`",  # a function may raise
        "length(items[?qty > `2`]) > `1`",
        "length(items[?qty > `2`].sku) > `0`",
    ],
)
def test_other_forms_build_the_list(source: str) -> None:
    generated = codegen.CodeGenerator(source, expr.parse(source), False).generate().source
    assert "break" not in generated


batch_lines = st.lists(
    st.one_of(
        st.builds(orjson.dumps, objects(list_values)),
        st.sampled_from([b"", b"  ", b"{", b"[1]", b"null", b'"s"', b"{}", b'{"a": {"b": 1}}']),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    sources=st.lists(
        expressions(plain_fields, plain_literals, st.sampled_from(["length", "contains", "abs"])),
        min_size=1,
        max_size=4,
    ),
    lines=batch_lines,
)
def test_a_batch_runner_does_what_the_plan_does_line_by_line(
    sources: list[str], lines: list[bytes]
) -> None:
    filters = [f for f in map(compiled_or_none, sources) if f is not None]
    steps = [expr.PlanStep(n, f, False) for n, f in enumerate(filters)]

    def routed(use_runner: bool) -> list[Any]:
        heard: list[Any] = []
        recorders = [lambda p, n=n: heard.append(("match", n, p)) for n in range(len(steps))]
        plan = expr.compile_plan(
            steps, recorders, lambda route, p, error: heard.append(("fail", route, p, str(error)))
        )

        def slow(position: int, line: bytes) -> Any:
            heard.append(("slow", position))
            return {"slow": True} if line == b"{}" else None

        if use_runner:
            run = expr.batch_runner(plan)
            assert run is not None
            run(lines, orjson.loads, slow, lambda p: heard.append(("none", p)))
        else:
            for position, line in enumerate(lines):
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    event = None
                if type(event) is not dict:
                    event = slow(position, line)
                    if event is None:
                        continue
                if not plan(event, position):
                    heard.append(("none", position))
        return heard

    assert routed(True) == routed(False)


def routed(routes: list[RouteConfig], lines: list[bytes]) -> Verdict:
    """The verdict of a router with `routes` on `lines`."""
    config = Config(
        path=Path("routes.yaml"),
        base_dir=Path("."),
        consumers={"out": ConsumerConfig("out", "file", None, QueueSettings())},
        routes=routes,
    )
    queues: dict[str, Any] = {"out": None}  # evaluate touches no queue
    batch = LineSplitter(1 << 20).feed(b"\n".join(lines) + b"\n")
    return Router(config, queues, DeadLetters(None), RunStats()).evaluate(batch)


def test_the_router_skips_exact_reading_only_where_it_cannot_tell() -> None:
    """Routed without reading big integers exactly, the lines go where the exact reading
    sends them; with a transform, the payload keeps every digit."""
    lines = [
        b'{"n": 18446744073709551617, "t": "x"}',
        b'{"n": 5, "t": "x"}',
        b'{"n": -9223372036854775809, "t": "y"}',
        b'{"n": [18446744073709551616, 3], "t": "x"}',
    ]
    exact = [json.loads(line) for line in lines]
    filters = ["n > `4`", "t == 'x' && length(n[?@ > `2`]) > `0`", "!n", "n"]
    routes = [
        RouteConfig(name=f"r{i}", to=("out",), filter=expr.compile(source))
        for i, source in enumerate(filters)
    ]
    verdict = routed(routes, lines)
    assert verdict.positions[: len(filters)] == [
        [p for p, event in enumerate(exact) if outcome(expr.compile(source), event)[1] is True]
        for source in filters
    ]
    assert verdict.errors == [0, 2, 0, 0]  # length(null): lines 1 and 2 have t x, n no list
    transform = RouteConfig(name="t", to=("out",), transform=expr.compile("n"))
    verdict = routed([*routes, transform], lines)
    assert verdict.payloads[len(filters)] == [
        b"18446744073709551617",
        b"5",
        b"-9223372036854775809",
        b"[18446744073709551616,3]",
    ]
