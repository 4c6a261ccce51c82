"""evroute.expr against the JMESPath compliance suite, and the spec where jmespath.py departs."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from expressions import SUITE, canonical
from hypothesis import given
from hypothesis import strategies as st

from evroute import expr


def compliance_cases() -> list[Any]:
    cases = []
    for path in sorted(SUITE.glob("*.json")):
        for group_index, group in enumerate(json.loads(path.read_text())):
            for case_index, case in enumerate(group["cases"]):
                if "result" not in case and "error" not in case:
                    continue  # benchmarks that state neither
                case_id = f"{path.stem}-{group_index}-{case_index}"
                cases.append(pytest.param(group["given"], case, id=case_id))
    return cases


@pytest.mark.parametrize(("given_data", "case"), compliance_cases())
def test_compliance(given_data: Any, case: dict[str, Any]) -> None:
    expression = case["expression"]
    if "error" in case:
        with pytest.raises((expr.ExpressionSyntaxError, expr.ExpressionError)) as raised:
            expr.compile(expression).search(given_data)
        assert raised.value.kind == case["error"]
        if case["error"] == "syntax":
            with pytest.raises(expr.ExpressionSyntaxError):
                expr.compile(expression)
        return
    # json.dumps tells 1 from 1.0 and from true
    assert canonical(expr.compile(expression).search(given_data)) == canonical(case["result"])


def test_the_suite_is_there() -> None:
    # every case that states a result or an error; benchmarks.json states neither
    assert len(compliance_cases()) == 902


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("a < b", {"a": "x", "b": 1}, None),  # jmespath.py raises TypeError (#169)
        ("a < b", {"a": "x", "b": "y"}, None),  # ordering is for numbers only
        ("a >= b", {"a": 2, "b": 2.0}, True),
        ("a == b", {"a": 0, "b": False}, False),
        ("a != b", {"a": 1, "b": 1}, False),
    ],
)
def test_spec_comparisons(expression: str, data: Any, expected: Any) -> None:
    assert expr.compile(expression).search(data) is expected


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (0, True),
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        ("x", True),
        ([0], True),
        ({"a": None}, True),
        (0.0, True),
        (True, True),
    ],
)
def test_truthiness(value: Any, truthy: bool) -> None:
    assert expr.is_truthy(value) is truthy


@pytest.mark.parametrize(
    ("source", "position", "words"),
    [
        ("foo ==", 6, "incomplete"),
        ("a =>", 2, "Unknown token"),
        ("nosuch(a)", 0, "unknown function nosuch()"),
        ("x && length(a, b)", 5, "takes 1 argument"),
    ],
)
def test_syntax_errors_have_positions(source: str, position: int, words: str) -> None:
    with pytest.raises(expr.ExpressionSyntaxError) as raised:
        expr.compile(source)
    assert raised.value.position == position
    assert words in str(raised.value)


def test_runtime_type_errors_are_expression_errors() -> None:
    with pytest.raises(expr.ExpressionError, match="length"):
        expr.compile("length(a)").search({})


@given(st.text(max_size=40))
def test_any_text_compiles_or_fails_cleanly(source: str) -> None:
    try:
        compiled = expr.compile(source)
    except expr.ExpressionSyntaxError:
        return
    with contextlib.suppress(expr.ExpressionError):
        compiled.search({"a": [1, "x", None, {"b": 2}]})


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("a == `[1]`", {"a": [True]}, False),
        ('o == `{"x": 0}`', {"o": {"x": False}}, False),
        ('a == `[1.0, {"b": [true]}]`', {"a": [1, {"b": [True]}]}, True),
        ("contains(a, `true`)", {"a": [1]}, False),
        ("contains(a, `1`)", {"a": [1.0]}, True),
        ("contains(s, 'bc')", {"s": "abc"}, True),
        ("contains(s, `1`)", {"s": "a1"}, False),
    ],
)
def test_equality_tells_booleans_from_numbers_at_any_depth(
    expression: str, data: Any, expected: bool
) -> None:
    assert expr.compile(expression).search(data) is expected


def test_a_literal_beyond_a_double_is_not_json() -> None:
    with pytest.raises(expr.ExpressionSyntaxError, match="must be JSON") as raised:
        expr.compile("floor(`1e999`)")
    assert raised.value.kind == "syntax"


def test_an_expression_too_long_to_compile_quickly_is_refused() -> None:
    expr.compile("a" * expr.MAX_EXPRESSION_CHARS)
    with pytest.raises(expr.ExpressionSyntaxError, match="at most 10,000") as raised:
        expr.compile("a" * (expr.MAX_EXPRESSION_CHARS + 1))
    assert raised.value.kind == "syntax"


def test_a_long_dotted_path_that_compiles_also_compiles_in_a_plan() -> None:
    source = ".".join(["a"] * 1000)
    compiled = expr.compile(source)  # fine: `evroute validate` accepts the config
    steps = [expr.PlanStep(0, compiled, False)]
    plan = expr.compile_plan(steps, [lambda p: None], lambda route, p, error: None)
    assert plan({"a": 1}, 0) is False
