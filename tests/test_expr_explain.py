"""evroute.expr beyond plain evaluation: explanations, unparse, required equalities, plans.

`Expression.explain` is checked on worked examples and, as properties, against `search`
on the JMESPath compliance suite (tests/conformance/jmespath) and on random documents.
`unparse` is checked to write every suite expression back as text meaning the same thing.
`required_equalities` and `compile_plan` are checked on examples and against
`Expression.test`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from expressions import SUITE, canonical
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evroute import expr
from evroute.expr import parse
from evroute.expr.unparse import unparse


@dataclass(frozen=True)
class SuiteCase:
    """One case of the compliance suite whose expression compiles."""

    name: str
    given: Any
    expression: str
    case: dict[str, Any]

    @property
    def compiled(self) -> expr.Expression:
        return expr.compile(self.expression)


def _suite_cases() -> list[SuiteCase]:
    cases = []
    for path in sorted(SUITE.glob("*.json")):
        for group_index, group in enumerate(json.loads(path.read_text())):
            for case_index, case in enumerate(group["cases"]):
                try:
                    expr.compile(case["expression"])
                except expr.ExpressionSyntaxError:
                    continue
                name = f"{path.stem}-{group_index}-{case_index}"
                cases.append(SuiteCase(name, group["given"], case["expression"], case))
    return cases


SUITE_CASES = _suite_cases()


def nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every node of a parse tree (a slice's children are numbers or None)."""
    if isinstance(node, dict):
        yield node
        for child in node.get("children", []):
            yield from nodes(child)


def outcome(source: str, data: Any) -> tuple[str, str]:
    """What searching `data` gives: ("value", its JSON) or ("error", the error's kind)."""
    try:
        return ("value", canonical(expr.compile(source).search(data)))
    except expr.ExpressionError as error:
        return ("error", error.kind)


# -- explain: worked examples ----------------------------------------------------------

ORDER = {"detail-type": "OrderPlaced", "detail": {"amount": 42, "id": "o-1"}}


def test_explain_shows_why_a_filter_is_false() -> None:
    """The root is false, and the comparison shows the values it compared."""
    source = "\"detail-type\" == 'OrderPlaced' && detail.amount > `100`"
    root = expr.compile(source).explain(ORDER)
    assert root.expression == source
    assert root.kind == "and_expression"
    assert root.values == [False]
    assert root.value is False
    assert root.error is None
    kind_check, amount_check = root.children
    assert kind_check.expression == "\"detail-type\" == 'OrderPlaced'"
    assert kind_check.kind == "comparator"
    assert kind_check.values == [True]
    assert [child.values for child in kind_check.children] == [["OrderPlaced"], ["OrderPlaced"]]
    assert amount_check.expression == "detail.amount > `100`"
    assert amount_check.kind == "comparator"
    assert amount_check.values == [False]
    amount, hundred = amount_check.children
    assert (amount.expression, amount.kind, amount.values) == (
        "detail.amount",
        "subexpression",
        [42],
    )
    assert (hundred.expression, hundred.kind, hundred.values) == ("`100`", "literal", [100])
    assert [child.expression for child in amount.children] == ["detail", "amount"]
    assert amount.children[0].values == [ORDER["detail"]]


def test_explain_and_skips_its_right_side_when_the_left_is_false() -> None:
    root = expr.compile("\"detail-type\" == 'Other' && detail.amount > `1`").explain(ORDER)
    assert root.values == [False]
    left, right = root.children
    assert left.values == [False]
    assert right.values == []
    assert right.value is None
    # nothing under a skipped part has values either
    assert all(child.values == [] for child in right.children)


def test_explain_or_skips_its_right_side_when_the_left_is_true() -> None:
    root = expr.compile("a || b").explain({"a": "yes", "b": "no"})
    assert root.kind == "or_expression"
    assert root.values == ["yes"]
    a, b = root.children
    assert (a.expression, a.values) == ("a", ["yes"])
    assert (b.expression, b.values) == ("b", [])


def test_explain_or_evaluates_its_right_side_when_the_left_is_false() -> None:
    root = expr.compile("a || b").explain({"a": [], "b": "no"})
    assert root.values == ["no"]
    assert [child.values for child in root.children] == [[[]], ["no"]]


def test_explain_gives_a_filter_condition_one_value_per_element() -> None:
    items = [{"qty": 1, "sku": "a"}, {"qty": 3, "sku": "b"}, {"qty": 5}, {"sku": "d"}]
    root = expr.compile("items[?qty > `2`].sku").explain({"items": items})
    assert root.kind == "filter_projection"
    assert root.values == [["b"]]
    base, condition, right = root.children
    assert (base.expression, base.values) == ("items", [items])
    assert condition.expression == "qty > `2`"
    assert condition.kind == "comparator"
    assert condition.values == [False, True, True, None]  # null: `qty` is missing
    assert condition.value is None  # more than one value
    qty, two = condition.children
    assert qty.values == [1, 3, 5, None]
    assert two.values == [2, 2, 2, 2]
    # the right side runs only for the elements kept; its nulls are left out of the result
    assert (right.expression, right.values) == ("sku", ["b", None])


def test_explain_gives_a_projection_one_value_per_element() -> None:
    root = expr.compile("people[*].name").explain({"people": [{"name": "x"}, {}, 3]})
    assert root.values == [["x"]]
    assert root.children[1].values == ["x", None, None]


def test_explain_reports_a_function_type_error_on_the_root() -> None:
    root = expr.compile("detail.id == 'o-1' && abs(detail.id) > `1`").explain(ORDER)
    assert root.error is not None
    assert "invalid-type" in root.error
    assert "abs" in root.error
    assert root.values == []
    assert root.value is None
    left, right = root.children
    assert left.values == [True]
    call = right.children[0]
    assert (call.expression, call.kind, call.values) == (
        "abs(detail.id)",
        "function_expression",
        [],
    )
    assert call.children[0].values == ["o-1"]  # what the function refused
    assert root.to_dict()["error"] == root.error
    with pytest.raises(expr.ExpressionError) as raised:
        expr.compile("detail.id == 'o-1' && abs(detail.id) > `1`").search(ORDER)
    assert str(raised.value) == root.error


def test_explain_shows_an_expression_reference() -> None:
    people = [{"name": "b", "age": 30}, {"name": "a", "age": 20}]
    root = expr.compile("sort_by(people, &age)").explain({"people": people})
    assert root.kind == "function_expression"
    assert root.values == [[people[1], people[0]]]
    argument, reference = root.children
    assert (argument.expression, argument.values) == ("people", [people])
    assert reference.expression == "&age"
    assert reference.kind == "expref"
    assert reference.values == []  # a reference is not a value
    (age,) = reference.children
    assert (age.expression, age.kind) == ("age", "field")
    assert age.values == [30, 20]  # once per element it was applied to


def test_explanation_to_dict() -> None:
    described = expr.compile("a || b").explain({"a": 1}).to_dict()
    assert described == {
        "expression": "a || b",
        "values": [1],
        "children": [
            {"expression": "a", "values": [1]},
            {"expression": "b", "values": []},
        ],
    }
    json.dumps(described)  # plain JSON


def test_explanation_of_a_literal_alone() -> None:
    root = expr.compile("`[1, 2]`").explain(None)
    assert (root.kind, root.values, root.children, root.error) == ("literal", [[1, 2]], [], None)
    assert root.to_dict() == {"expression": "`[1, 2]`", "values": [[1, 2]]}


# -- explain: properties ---------------------------------------------------------------


def test_the_suite_cases_are_there() -> None:
    assert len(SUITE_CASES) > 700


def check_explain_against_the_suite(case: SuiteCase) -> None:
    """The root of the explanation has the suite's result, or the error it names."""
    root = case.compiled.explain(case.given)
    if "result" in case.case:
        assert root.error is None, root.error
        assert canonical(root.values) == canonical([case.case["result"]])
    elif "error" in case.case:
        try:
            case.compiled.search(case.given)
        except expr.ExpressionError:
            assert root.error is not None
            assert root.error.startswith(case.case["error"] + ":")
            assert root.values == []
        else:
            pytest.fail(f"{case.expression!r} did not raise")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SUITE_CASES))
def test_explain_root_is_the_suite_result(case: SuiteCase) -> None:
    check_explain_against_the_suite(case)


def test_explain_root_is_the_suite_result_for_every_case() -> None:
    """The property above on every case, not a sample of them."""
    failures = []
    for case in SUITE_CASES:
        try:
            check_explain_against_the_suite(case)
        except AssertionError as error:
            failures.append(f"{case.name} {case.expression!r}: {error}")
    assert failures == []


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 5)
    | st.sampled_from([0.5, -1.5, 2.0])
    | st.sampled_from(["", "a", "b", "foo", "bar"])
)


def documents(names: Sequence[str]) -> st.SearchStrategy[Any]:
    """JSON documents whose keys are mostly the names the expression reads."""
    keys = st.sampled_from(names) if names else st.sampled_from(["a", "b"])
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=12,
    )


def field_names(tree: dict[str, Any]) -> list[str]:
    return sorted({node["value"] for node in nodes(tree) if node["type"] == "field"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_explain_root_is_search_on_random_documents(data: st.DataObject) -> None:
    """For any document, the root's values are [search's value], or its error is search's."""
    case = data.draw(st.sampled_from(SUITE_CASES), label="case")
    compiled = case.compiled
    document = data.draw(documents(field_names(compiled.tree)), label="document")
    root = compiled.explain(document)
    try:
        result = compiled.search(document)
    except expr.ExpressionError as error:
        assert root.error == str(error)
        assert root.values == []
    else:
        assert root.error is None
        assert canonical(root.values) == canonical([result])


def test_explain_a_three_part_path() -> None:
    root = expr.compile("detail.order.amount > `1`").explain({"detail": {"order": {"amount": 2}}})
    assert root.values == [True]
    assert root.children[0].expression == "detail.order.amount"


def test_explain_two_indexes() -> None:
    assert expr.compile("a[0][1]").explain({"a": [[1, 2]]}).values == [2]


# -- unparse ---------------------------------------------------------------------------


def round_trip_failure(case: SuiteCase) -> str | None:
    """Why unparse's text for the case's expression does not mean the same; None if it does."""
    tree = case.compiled.tree
    try:
        text = unparse(tree)
    except Exception as error:
        return f"unparse raised {error!r}"
    try:
        again = parse(text)
    except expr.ExpressionSyntaxError as error:
        return f"{text!r} does not parse: {error}"
    if again == tree:
        return None
    try:
        before, after = outcome(case.expression, case.given), outcome(text, case.given)
    except expr.ExpressionSyntaxError as error:
        return f"{text!r} does not compile: {error}"
    return None if before == after else f"{text!r} gives {after}, not {before}"


def round_trip_failures(cases: Sequence[SuiteCase]) -> list[str]:
    return [
        f"{case.name} {case.expression!r}: {failure}"
        for case in cases
        if (failure := round_trip_failure(case)) is not None
    ]


def test_unparse_round_trips_on_the_suite() -> None:
    """Every suite expression, written back by unparse, parses and means the same on the
    case's document."""
    assert round_trip_failures(SUITE_CASES) == []


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("\"detail-type\" == 'OrderPlaced'", "\"detail-type\" == 'OrderPlaced'"),
        ('"a b".c', '"a b".c'),
        ("a||b&&c", "a || b && c"),
        ("(a||b)&&c", "(a || b) && c"),
        ("a || (b || c)", "a || (b || c)"),
        ("(a | b).c", "(a | b).c"),
        ("!a", "!a"),
        ("!(a == b)", "!(a == b)"),
        ("(a == b) == c", "(a == b) == c"),
        ("a[*].b", "a[*].b"),
        ("a[].b", "a[].b"),
        ("a.*.b", "a.*.b"),
        ("*.b", "*.b"),
        ("[*]", "[*]"),
        ("a[?b == `1`].c", "a[?b == `1`].c"),
        ("a[?b]", "a[?b]"),
        ("a[-1]", "a[-1]"),
        ("[0]", "[0]"),
        ("a[*].[b, c]", "a[*].[b, c]"),
        ('{x: a, "y z": b}', '{x: a, "y z": b}'),
        ("sort_by(a, &b)", "sort_by(a, &b)"),
        ('`"it\'s"`', "'it\\'s'"),
        ('`["a\\`b"]`', '`["a\\`b"]`'),
        ('`{"k": [1, true, null]}`', '`{"k": [1, true, null]}`'),
        ("@", "@"),
    ],
)
def test_unparse_text(source: str, text: str) -> None:
    """What unparse writes, and that it parses back to the same tree."""
    tree = parse(source)
    assert unparse(tree) == text
    assert parse(text) == tree


# (source, a document on which a careless writer's text would give another result)
UNPARSE_TRAPS = [
    # ValueError: a subexpression / index_expression of three children
    pytest.param("a.b.c", {"a": {"b": {"c": 1}}}, id="three-fields"),
    pytest.param("a[0][1]", {"a": [[1, 2]]}, id="two-indexes"),
    # `a[1:]` is written `a[1:][*]`: [2, 3] becomes []
    pytest.param("a[1:]", {"a": [1, 2, 3]}, id="slice"),
    pytest.param("a[:2].b", {"a": [{"b": 1}, {"b": 2}]}, id="slice-then-field"),
    # `'\z'` (a backslash and z) is written `'\\z'`, which is two backslashes and z
    pytest.param("'\\z'", None, id="raw-string-backslash"),
    pytest.param('`"\\\\"`', None, id="json-string-backslash"),
    # `!(a.b)` is written `!a.b`, which jmespath reads as `(!a).b`: true becomes null
    pytest.param("!(a.b)", {"a": {"b": False}}, id="not-of-path"),
    # `(!a)[0]` is written `!a[0]`, read as `!(a[0])`: null becomes true
    pytest.param("(!a)[0]", {"a": []}, id="index-of-not"),
    # a projection on the left of `.`/`[]` loses its parentheses, so the rest projects
    pytest.param("(a[*]).b", {"a": [{"b": 1}]}, id="field-of-projection"),
    pytest.param("(a[])[0]", {"a": [[1, 2], [3]]}, id="index-of-flatten"),
    pytest.param("(*).b", {"x": {"b": 1}}, id="field-of-values"),
    pytest.param("(a[?b])[0]", {"a": [{"b": [7]}]}, id="index-of-filter"),
    # `a[*][0].b` is written `a[*].[0].b`, which is a syntax error
    pytest.param("a[*][0].b", {"a": [[{"b": 1}]]}, id="projected-index-then-field"),
]


@pytest.mark.parametrize(("source", "data"), UNPARSE_TRAPS)
def test_unparse_keeps_the_meaning(source: str, data: Any) -> None:
    """unparse's text for `source` parses and gives the same result on `data`."""
    text = unparse(parse(source))
    assert outcome(text, data) == outcome(source, data)


def test_unparse_traps_are_valid_jmespath() -> None:
    """The examples above compile and give a value."""
    for param in UNPARSE_TRAPS:
        source, data = param.values
        assert outcome(str(source), data)[0] == "value"


# -- required_equalities ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("\"detail-type\" == 'X' && a > `1`", [(("detail-type",), "X")]),
        ("'x' == a.b", [(("a", "b"), "x")]),
        ("a.b.c == 'x'", [(("a", "b", "c"), "x")]),
        ('a == `"x"`', [(("a",), "x")]),
        ("\"a.b\" == 'x'", [(("a.b",), "x")]),
        ("a == 'x' && (b == 'y' && c)", [(("a",), "x"), (("b",), "y")]),
        ("a == 'x' && (b == 'y' || c)", [(("a",), "x")]),
        ("a == 'x' || b", []),
        ("a == `1`", []),
        ("a == `null`", []),
        ("!(a == 'x')", []),
        ("a != 'x'", []),
        ("a == b", []),
        ("'x' == 'x'", []),
        ("a[0] == 'x'", []),
        ("@ == 'x'", []),
        ("a == 'x' | b", []),
        ("items[?a == 'x']", []),
    ],
)
def test_required_equalities(source: str, expected: list[tuple[tuple[str, ...], str]]) -> None:
    assert sorted(expr.compile(source).required_equalities()) == sorted(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            "\"detail-type\" == 'X' && a > `1`",
            "'x' == a.b && c",
            "a == 'x' && b.c == 'y' && !d",
            "a == 'x' && (b == `1` || a == 'z')",
        ]
    ),
    documents(["detail-type", "a", "b", "c", "d", "x", "X"]),
)
def test_required_equalities_hold_whenever_the_expression_is_true(source: str, data: Any) -> None:
    """What the router relies on: a true expression means every pair holds."""
    compiled = expr.compile(source)
    if not compiled.test(data):
        return
    for path, text in compiled.required_equalities():
        value = data
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        assert value == text


# -- compile_plan ----------------------------------------------------------------------


class Calls:
    """Records what a plan calls."""

    def __init__(self, takes_event_answer: bool = False) -> None:
        self.matched: dict[int, list[int]] = {}
        self.events: list[tuple[int, Any]] = []
        self.failures: list[tuple[int, int, Exception]] = []
        self.takes_event_answer = takes_event_answer

    def recorder(self, step: int) -> Callable[[int], None]:
        return lambda position: self.matched.setdefault(step, []).append(position)

    def event_recorder(self) -> Callable[[int, Any], bool]:
        def record(position: int, event: Any) -> bool:
            self.events.append((position, event))
            return self.takes_event_answer

        return record

    def fail(self, route: int, position: int, error: Exception) -> None:
        self.failures.append((route, position, error))


def three_route_plan(calls: Calls) -> expr.Plan:
    """Route 10 has no filter; route 20's filter raises for a number; route 30 takes the
    event and its recorder says whether it matched."""
    steps = [
        expr.PlanStep(10, None, False),
        expr.PlanStep(20, expr.compile("starts_with(detail.name, 'a')"), False),
        expr.PlanStep(30, expr.compile("detail.amount > `1`"), True),
    ]
    return expr.compile_plan(
        steps, [calls.recorder(0), calls.recorder(1), calls.event_recorder()], calls.fail
    )


def test_plan_calls_recorders_with_the_position_in_route_order() -> None:
    calls = Calls()
    order: list[str] = []
    steps = [
        expr.PlanStep(5, expr.compile("a == `1`"), False),
        expr.PlanStep(6, None, False),
        expr.PlanStep(7, expr.compile("a > `0`"), False),
    ]
    recorders = [lambda position, name=name: order.append(f"{name}@{position}") for name in "xyz"]
    plan = expr.compile_plan(steps, recorders, calls.fail)
    assert plan({"a": 1}, 4) is True
    assert plan({"a": 2}, 9) is True
    assert order == ["x@4", "y@4", "z@4", "y@9", "z@9"]
    assert calls.failures == []


def test_plan_with_three_routes() -> None:
    calls = Calls()
    plan = three_route_plan(calls)
    event = {"detail": {"name": "apple", "amount": 5}}
    assert plan(event, 0) is True
    assert calls.matched == {0: [0], 1: [0]}
    assert calls.events == [(0, event)]  # the event itself
    assert calls.failures == []


def test_plan_reports_a_raising_filter_and_runs_the_other_routes() -> None:
    calls = Calls()
    plan = three_route_plan(calls)
    event = {"detail": {"name": 7, "amount": 5}}
    assert plan(event, 3) is True  # route 10 matched
    assert calls.matched == {0: [3]}
    assert calls.events == [(3, event)]  # route 30 ran after route 20 failed
    ((route, position, error),) = calls.failures
    assert (route, position) == (20, 3)  # the route, not the step's index
    assert isinstance(error, expr.ExpressionError)
    assert error.kind == "invalid-type"
    assert error.function == "starts_with"


def test_plan_skips_the_recorder_of_a_filter_that_is_false() -> None:
    calls = Calls()
    plan = three_route_plan(calls)
    assert plan({"detail": {"name": "b", "amount": 0}}, 1) is True
    assert calls.matched == {0: [1]}
    assert calls.events == []
    assert plan({"detail": {"name": "b"}}, 2) is True  # null > `1` is null: no error
    assert calls.matched == {0: [1, 2]}
    assert calls.failures == []


@pytest.mark.parametrize("takes_event_answer", [False, True])
def test_plan_returns_whether_any_route_matched(takes_event_answer: bool) -> None:
    """A recorder that takes the event decides whether its route matched."""
    calls = Calls(takes_event_answer)
    steps = [
        expr.PlanStep(20, expr.compile("starts_with(detail.name, 'a')"), False),
        expr.PlanStep(30, expr.compile("detail.amount > `1`"), True),
    ]
    plan = expr.compile_plan(steps, [calls.recorder(0), calls.event_recorder()], calls.fail)
    assert plan({"detail": {"name": 1, "amount": 5}}, 0) is takes_event_answer
    assert [failure[:2] for failure in calls.failures] == [(20, 0)]
    assert plan({"detail": {"name": "x", "amount": 0}}, 1) is False
    assert plan({"detail": {"name": "ab", "amount": 0}}, 2) is True
    assert calls.matched == {0: [2]}
    assert [position for position, _ in calls.events] == [0]


def test_an_empty_plan_matches_nothing() -> None:
    assert expr.compile_plan([], [], Calls().fail)({"a": 1}, 0) is False


SHARED = [
    "detail.amount > `1`",
    "detail.amount < `5`",
    "detail.amount == `3` || detail.kind == 'x'",
    "detail.kind == 'x' && length(detail.tags) > `0`",
    "contains(['x', 'y'], detail.kind)",
    "!detail",
]
DETAILS = st.fixed_dictionaries(
    {},
    optional={
        "amount": st.none() | st.booleans() | st.integers(-1, 7) | st.sampled_from([2.5, "3"]),
        "kind": st.sampled_from(["x", "y", "z", "", 1]),
        "tags": st.sampled_from([[], ["t"], "t", {}, 3]),
    },
)
EVENTS = st.fixed_dictionaries({}, optional={"detail": DETAILS | SCALARS, "other": SCALARS})


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_plan_with_shared_fields_agrees_with_test(event: dict[str, Any]) -> None:
    """Filters reading the same fields: each route matches when its `test` is true, and
    fails when its `test` raises."""
    compiled = [expr.compile(source) for source in SHARED]
    calls = Calls()
    steps = [expr.PlanStep(100 + n, filter_, False) for n, filter_ in enumerate(compiled)]
    plan = expr.compile_plan(steps, [calls.recorder(n) for n in range(len(steps))], calls.fail)
    matched = plan(event, 11)
    failed = {route - 100: error for route, _, error in calls.failures}
    expected_any = False
    for n, filter_ in enumerate(compiled):
        try:
            expected = filter_.test(event)
        except expr.ExpressionError as error:
            assert str(filter_.error(failed[n])) == str(error)
            assert n not in calls.matched
            continue
        assert n not in failed
        assert calls.matched.get(n) == ([11] if expected else None)
        expected_any = expected_any or expected
    assert matched is expected_any


# paths deeper than the prologue nests its type tests, sharing their first fields
DEEP = ["a.b.c.d.e.f.g.h.i == `1`", "a.b.x", "a.b.c.d.e.f.y || a.z", "a.b.c.d.e.f.g.h"]
NESTED: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.dictionaries(st.sampled_from("abcdefghixyz"), inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("ab"), NESTED, max_size=2), st.randoms())
def test_plan_of_deep_paths_agrees_with_test(event: dict[str, Any], random: Any) -> None:
    # the fields of DEEP in order, so that the deep paths exist often
    if random.random() < 0.7:
        node = event
        for key in "abcdefgh":
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node["i"] = random.choice([1, 2, None])
    compiled = [expr.compile(source) for source in DEEP]
    calls = Calls()
    steps = [expr.PlanStep(n, filter_, False) for n, filter_ in enumerate(compiled)]
    plan = expr.compile_plan(steps, [calls.recorder(n) for n in range(len(steps))], calls.fail)
    plan(event, 0)
    assert calls.failures == []
    expected = {n: [0] for n, filter_ in enumerate(compiled) if filter_.test(event)}
    assert calls.matched == expected


def test_plans_of_the_suite_groups_agree_with_test() -> None:
    """Each group of the suite whose document is an object, as one plan of all its
    expressions: every route matches or fails as its own `test` does."""
    by_given: dict[str, list[SuiteCase]] = {}
    for case in SUITE_CASES:
        if isinstance(case.given, dict):
            by_given.setdefault(canonical(case.given), []).append(case)
    checked = 0
    for cases in by_given.values():
        compiled = [case.compiled for case in cases]
        calls = Calls()
        steps = [expr.PlanStep(n, filter_, False) for n, filter_ in enumerate(compiled)]
        recorders = [calls.recorder(n) for n in range(len(steps))]
        plan = expr.compile_plan(steps, recorders, calls.fail)
        given_data = cases[0].given
        matched = plan(given_data, 0)
        failed = {route for route, _, _ in calls.failures}
        expected_any = False
        for n, filter_ in enumerate(compiled):
            try:
                expected: bool | str = filter_.test(given_data)
            except expr.ExpressionError:
                expected = "error"
            got: bool | str = "error" if n in failed else n in calls.matched
            assert got == expected, cases[n].expression
            expected_any = expected_any or expected is True
            checked += 1
        assert matched is expected_any
    assert checked > 600
