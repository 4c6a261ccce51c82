"""EventBridge event patterns: the conformance corpus in tests/patterns/, and the API around it.

A case folder under tests/patterns/ holds `pattern.json` and `source.txt` (the AWS page
the case is written from), then either:

- `events.jsonl` and `expected.jsonl`: one event a line, and `true` / `false` on the same
  line of `expected.jsonl` for whether the pattern matches it; or
- `invalid.txt`: the pattern is rejected; line 1 is a substring of the error message,
  line 2 the JSON array of the path to the offending part of the pattern.

Expected results are written by hand from the documentation, never generated: adding a
case is adding a folder.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evroute import patterns
from evroute.patterns import MISSING, FieldCheck, PatternError, PatternSet

CASES = Path(__file__).parent / "patterns"


def case_folders() -> list[Any]:
    return [
        pytest.param(folder, id=folder.name)
        for folder in sorted(CASES.iterdir())
        if (folder / "pattern.json").is_file()
    ]


def read_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_corpus_is_complete() -> None:
    folders = [param.values[0] for param in case_folders()]
    assert len(folders) >= 60
    invalid = [folder for folder in folders if (folder / "invalid.txt").is_file()]
    assert len(invalid) >= 20
    for folder in folders:
        assert (folder / "source.txt").read_text().startswith("https://"), folder.name
        has_events = (folder / "events.jsonl").is_file()
        assert has_events != (folder / "invalid.txt").is_file(), folder.name
    # every operator has matching and non-matching cases
    text = " ".join((folder / "pattern.json").read_text() for folder in folders)
    for operator in (
        "prefix",
        "suffix",
        "anything-but",
        "numeric",
        "exists",
        "equals-ignore-case",
        "wildcard",
        "cidr",
        "$or",
    ):
        assert f'"{operator}"' in text, operator


@pytest.mark.parametrize("folder", case_folders())
def test_case(folder: Path) -> None:
    source = json.loads((folder / "pattern.json").read_text())
    invalid = folder / "invalid.txt"
    if invalid.is_file():
        message, path_text = invalid.read_text().splitlines()[:2]
        with pytest.raises(PatternError) as caught:
            patterns.compile(source)
        assert message in caught.value.message
        assert list(caught.value.path) == json.loads(path_text)
        return
    pattern = patterns.compile(source)
    events = read_lines(folder / "events.jsonl")
    expected = read_lines(folder / "expected.jsonl")
    assert len(events) == len(expected), "one expected result per event"
    actual = [pattern.matches(event) for event in events]
    assert actual == expected, [
        (n + 1, event)
        for n, (event, want) in enumerate(zip(events, expected, strict=True))
        if want != actual[n]
    ]
    # the index finds the same matches as the pattern alone
    both = PatternSet([(0, pattern), (1, pattern)])
    assert [bool(both.matching(event)) for event in events] == expected


def test_a_json_string_is_a_pattern() -> None:
    pattern = patterns.compile('{"source": ["aws.ec2"]}')
    assert pattern.matches({"source": "aws.ec2"})
    assert pattern.source == '{"source": ["aws.ec2"]}'
    with pytest.raises(PatternError, match="not valid JSON"):
        patterns.compile('{"source": [')


def test_error_message_says_where() -> None:
    with pytest.raises(PatternError) as caught:
        patterns.compile({"detail": {"n": [{"numeric": [">", "5"]}]}})
    assert str(caught.value).startswith("detail.n[0].numeric[1]: ")


def test_non_object_events_never_match() -> None:
    pattern = patterns.compile({"a": [{"exists": False}]})
    assert pattern.matches({})
    assert not pattern.matches([])  # type: ignore[arg-type]
    assert PatternSet([(0, pattern)]).matching("x") == []  # type: ignore[arg-type]


# explain


def test_explain_reports_each_leaf_in_pattern_order() -> None:
    pattern = patterns.compile(
        {
            "source": ["aws.ec2"],
            "detail": {"state": [{"anything-but": "running"}], "n": [{"numeric": [">", 1]}]},
            "$or": [{"a": ["1"]}, {"b": ["2"]}],
        }
    )
    event = {"source": "aws.ec2", "detail": {"state": "running", "n": 5}, "b": "2"}
    checks = pattern.explain(event)
    assert [check.path for check in checks] == [
        ("source",),
        ("detail", "state"),
        ("detail", "n"),
        ("a",),
        ("b",),
    ]
    assert checks[0] == FieldCheck(("source",), True, ["aws.ec2"], "aws.ec2", True)
    assert checks[1].matched is False  # the field that failed
    assert checks[1].expected == [{"anything-but": "running"}]
    assert checks[2].matched is True
    assert checks[3] == FieldCheck(("a",), False, ["1"], MISSING, False)
    assert checks[4].matched is True
    assert not pattern.matches(event)


def test_explain_through_arrays() -> None:
    pattern = patterns.compile({"items": {"sku": ["B"]}})
    checks = pattern.explain({"items": [{"sku": "A"}, {"sku": "B"}]})
    assert checks == [FieldCheck(("items", "sku"), True, ["B"], ["A", "B"], True)]


# required_values


def test_required_values() -> None:
    pattern = patterns.compile(
        {
            "source": ["a", "b"],
            "detail-type": ["T", {"prefix": "U"}],  # an operator: not an exact-value field
            "n": [1],  # not a string
            "detail": {"kind": ["k"]},
            "$or": [{"x": ["1"], "y": ["2"]}, {"x": ["3"]}],
        }
    )
    assert pattern.required_values() == {
        ("source",): frozenset({"a", "b"}),
        ("detail", "kind"): frozenset({"k"}),
        ("x",): frozenset({"1", "3"}),  # every branch requires x; y only one of them
    }


def test_required_values_of_an_or_keeps_only_common_paths() -> None:
    pattern = patterns.compile({"$or": [{"a": ["1"]}, {"b": ["2"]}]})
    assert pattern.required_values() == {}


# PatternSet


def test_pattern_set_returns_ascending_route_indexes() -> None:
    by_type = patterns.compile({"detail-type": ["T"]})
    by_source = patterns.compile({"source": ["s"]})
    anything = patterns.compile({"id": [{"exists": True}]})
    routes = [(5, by_type), (2, by_source), (9, anything), (1, by_type)]
    pattern_set = PatternSet(routes)
    assert pattern_set.matching({"detail-type": "T", "source": "s", "id": 1}) == [1, 2, 5, 9]
    assert pattern_set.matching({"source": "s"}) == [2]
    assert pattern_set.matching({}) == []


def test_pattern_set_looks_through_event_arrays() -> None:
    routes = [(k, patterns.compile({"tags": [f"t{k}"], "source": ["s"]})) for k in range(20)]
    pattern_set = PatternSet(routes)
    assert pattern_set.matching({"source": "s", "tags": ["t3", "t17", "zz"]}) == [3, 17]
    assert pattern_set.matching({"source": "s", "tags": [["t4"]]}) == [4]


FIELD_VALUES = st.one_of(
    st.sampled_from(["a", "b", "c", "ab", "", "A"]),
    st.integers(-2, 3),
    st.sampled_from([None, True, 1.5]),
)
EVENT_VALUES = st.recursive(
    FIELD_VALUES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2),
    ),
    max_leaves=6,
)
EVENTS = st.dictionaries(st.sampled_from(["source", "kind", "x", "detail"]), EVENT_VALUES)
LEAVES = st.lists(
    st.one_of(
        st.sampled_from(["a", "b", "c", "ab", ""]),
        st.sampled_from(
            [
                {"prefix": "a"},
                {"anything-but": "a"},
                {"numeric": [">", 0]},
                {"exists": False},
                {"exists": True},
                {"equals-ignore-case": "a"},
                {"wildcard": "*b"},
                None,
                2,
            ]
        ),
    ),
    min_size=1,
    max_size=3,
)
PATTERNS = st.recursive(
    st.dictionaries(st.sampled_from(["source", "kind", "x"]), LEAVES, min_size=1, max_size=2),
    lambda inner: st.one_of(
        st.builds(lambda fields, sub: {**fields, "detail": sub}, inner, inner),
        st.builds(lambda fields, a, b: {**fields, "$or": [a, b]}, inner, inner, inner),
    ),
    max_leaves=4,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=12), st.lists(EVENTS, min_size=1, max_size=8))
def test_pattern_set_agrees_with_each_pattern_alone(
    sources: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    compiled = [(index, patterns.compile(source)) for index, source in enumerate(sources)]
    pattern_set = PatternSet(compiled)
    for event in events:
        alone = [index for index, pattern in compiled if pattern.matches(event)]
        assert pattern_set.matching(event) == alone


@settings(max_examples=100, deadline=None)
@given(PATTERNS, EVENTS)
def test_required_values_are_necessary(source: dict[str, Any], event: dict[str, Any]) -> None:
    pattern = patterns.compile(source)
    if pattern.matches(event):
        for path, values in pattern.required_values().items():
            found = patterns._compile.values_at(event, path)
            flat: list[Any] = []
            stack = list(found)
            while stack:
                value = stack.pop()
                if isinstance(value, list):
                    stack.extend(value)
                else:
                    flat.append(value)
            assert values & {value for value in flat if isinstance(value, str)}


def test_many_routes_cost_about_the_same_as_one() -> None:
    """The index: 1,000 routes on their own detail-type cost about what one route does."""

    def route(k: int) -> patterns.Pattern:
        return patterns.compile(
            {"source": [f"app.{k % 10}"], "detail-type": [f"Type-{k}"], "detail": {"n": [k]}}
        )

    one = PatternSet([(0, route(0))])
    many = PatternSet([(k, route(k)) for k in range(1000)])

    def event(k: int) -> dict[str, Any]:
        return {"source": f"app.{k % 10}", "detail-type": f"Type-{k}", "detail": {"n": k}}

    # the same work for both sets: half the events match route 0, half match no route
    events = [event(0), event(5000)] * 100

    def seconds(pattern_set: PatternSet) -> float:
        # CPU time, the best of several runs: other processes' load does not count
        best = float("inf")
        for _ in range(7):
            start = time.process_time()
            for _ in range(50):
                for item in events:
                    pattern_set.matching(item)
            best = min(best, time.process_time() - start)
        return best

    assert [many.matching(event(k)) for k in range(0, 1000, 7)] == [[k] for k in range(0, 1000, 7)]
    assert many.matching(event(5000)) == []
    # generous, so that a loaded machine does not fail it; a linear scan is ~1000x slower
    assert seconds(many) < 5 * seconds(one)


# wildcard


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "*", "\\*", "\\\\", "."]), max_size=6),
    st.text(alphabet="ab*\\.", max_size=8),
)
def test_wildcard_agrees_with_a_regular_expression(parts: list[str], value: str) -> None:
    if any(a == b == "*" for a, b in itertools.pairwise(parts)):
        return  # consecutive wildcards are rejected, as the corpus tests
    pattern = patterns.compile({"v": [{"wildcard": "".join(parts)}]})
    literal = {"\\*": "*", "\\\\": "\\"}
    reference = "".join(
        ".*" if part == "*" else re.escape(literal.get(part, part)) for part in parts
    )
    assert pattern.matches({"v": value}) == (re.fullmatch(reference, value, re.DOTALL) is not None)


def test_wildcard_does_not_backtrack() -> None:
    pattern = patterns.compile({"v": [{"wildcard": "*a*a*a*a*a*a*a*b"}]})
    start = time.perf_counter()
    assert not pattern.matches({"v": "a" * 200_000})
    assert time.perf_counter() - start < 1.0
