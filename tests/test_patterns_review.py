"""Review of evroute.patterns against EventBridge's documented behaviour (reviewer R4).

Passing tests pin down behaviour checked against the AWS pages; `xfail(strict=True)` tests
are disagreements found in review, each citing where EventBridge's behaviour is written
down. When a bug is fixed its test XPASSes and fails the suite: then drop the marker.

Pages cited:
- OPS: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
- NULL: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-null-values.html
- ARRAYS: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-arrays.html
- RULER: https://github.com/aws/event-ruler (README.md and src/main/.../JsonRuleCompiler.java,
  CIDR.java), the matching library EventBridge runs, as the corpus in tests/patterns/ cites it.
"""

from __future__ import annotations

from typing import Any

import pytest

from evroute import patterns
from evroute.patterns import PatternError


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return patterns.compile(pattern).matches(event)


# Behaviour checked and found in agreement with the documentation.


@pytest.mark.parametrize(
    ("value", "event_value", "expected"),
    [
        (5, 5, True),
        (5, 5.0, True),
        (5, "5", False),  # RULER "JSON text matching": a number never matches a string
        ("5", 5, False),
        (True, True, True),
        (True, "true", False),
        (True, 1, False),
        (1, True, False),
        (0, False, False),
        (None, None, True),
        (None, "", False),  # NULL: "Null values and empty strings are not interchangeable"
        ("", None, False),
        ("", "", True),
    ],
)
def test_exact_values_keep_their_json_type(value: Any, event_value: Any, expected: bool) -> None:
    assert matches({"a": [value]}, {"a": event_value}) is expected


@pytest.mark.parametrize("value", [None, ""])
def test_null_and_empty_string_do_not_match_a_missing_field(value: Any) -> None:
    assert not matches({"a": [value]}, {})


def test_event_arrays_match_on_any_element() -> None:
    # ARRAYS: "matches if the intersection of the event pattern array and the event array is
    # non-empty"
    assert matches({"a": ["x", "y"]}, {"a": ["q", "y"]})
    assert not matches({"a": ["x", "y"]}, {"a": ["q", "r"]})
    assert not matches({"a": ["x"]}, {"a": []})


def test_arrays_of_objects_match_fields_of_one_element_only() -> None:
    # RULER "JSON Array Matching": no match from fields "in different elements of the same array"
    pattern = {"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}
    split = {"employees": [{"firstName": "Anna", "lastName": "Smith"}, {"lastName": "Jones"}]}
    together = {
        "employees": [[{"firstName": "John"}], [{"firstName": "Anna", "lastName": "Jones"}]]
    }
    assert not matches(pattern, split)
    assert matches(pattern, together)


@pytest.mark.parametrize(
    ("event", "exists_true"),
    [
        ({"a": "x"}, True),
        ({"a": None}, True),  # null is a leaf value
        ({"a": ""}, True),
        ({"a": []}, False),  # an empty array holds no leaf
        ({"a": {"b": 1}}, False),  # RULER: exists "only works on the leaf nodes"
        ({}, False),
    ],
)
def test_exists(event: dict[str, Any], exists_true: bool) -> None:
    assert matches({"a": [{"exists": True}]}, event) is exists_true
    assert matches({"a": [{"exists": False}]}, event) is not exists_true


@pytest.mark.parametrize(
    "operator",
    [
        {"anything-but": "x"},
        {"anything-but": ["x", "y"]},
        {"anything-but": 5},
        {"anything-but": {"prefix": "us-"}},
        {"anything-but": {"suffix": ".png"}},
        {"anything-but": {"equals-ignore-case": "x"}},
        {"anything-but": {"wildcard": "*/lib/*"}},
    ],
)
def test_anything_but_never_matches_a_missing_field(operator: dict[str, Any]) -> None:
    assert not matches({"a": [operator]}, {})
    assert matches({"a": [operator]}, {"a": "other-value"})


def test_anything_but_on_an_event_array_needs_one_element_outside_the_list() -> None:
    pattern = {"a": [{"anything-but": ["x", "y"]}]}
    assert matches(pattern, {"a": ["x", "z"]})
    assert not matches(pattern, {"a": ["x", "y"]})


def test_anything_but_variants() -> None:
    assert not matches(
        {"a": [{"anything-but": {"equals-ignore-case": ["Init", "Run"]}}]}, {"a": "INIT"}
    )
    assert not matches({"a": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"a": "/usr/lib/x"})
    assert matches({"a": [{"anything-but": {"suffix": ".png"}}]}, {"a": "x.PNG"})
    assert not matches({"a": [{"anything-but": [100, 200]}]}, {"a": 200.0})


def test_prefix_and_suffix_ignore_case_only_match_strings() -> None:
    assert matches({"a": [{"prefix": {"equals-ignore-case": "EventB"}}]}, {"a": "eventbridge"})
    assert matches({"a": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"a": "X.PNG"})
    assert not matches({"a": [{"prefix": "1"}]}, {"a": 12})


def test_numeric_matches_only_json_numbers_within_the_documented_range() -> None:
    # RULER: "limited to value between -5.0e9 and +5.0e9 inclusive"
    assert matches({"a": [{"numeric": ["=", 5e9]}]}, {"a": 5e9})
    assert not matches({"a": [{"numeric": [">", 0]}]}, {"a": "5"})
    assert not matches({"a": [{"numeric": [">=", 0]}]}, {"a": True})
    with pytest.raises(PatternError):
        patterns.compile({"a": [{"numeric": [">", -5e9 - 1]}]})


@pytest.mark.parametrize(
    "pattern",
    [
        {},
        {"a": "x"},  # RULER: '"a" must be an object or an array'
        {"a": []},
        {"a": {}},
        {"a": [{"numeric": ["<", 5, ">", 0]}]},
        {"a": [{"numeric": ["=", 5, "<", 6]}]},
        {"a": [{"anything-but": ["x", 1]}]},
        {"a": [{"anything-but": {"prefix": ""}}]},
        {"a": [{"wildcard": "a**b"}]},
        {"a": [{"cidr": "10.0.0.0/33"}]},
        {"$or": [{"a": ["1"]}]},
    ],
)
def test_invalid_patterns_are_rejected(pattern: dict[str, Any]) -> None:
    with pytest.raises(PatternError):
        patterns.compile(pattern)


# Disagreements found in review.


@pytest.mark.xfail(
    strict=True,
    reason="BUG: no wildcard complexity limit; EventBridge rejects 4 such values in one field "
    "(doc: OPS, 'Wildcards and event pattern complexity': 'If a rule is too complex, "
    "EventBridge returns an InvalidEventPatternException')",
)
def test_too_complex_wildcards_are_rejected() -> None:
    # a real rule EventBridge refused with "Rule is too complex" (8 wildcards, one field)
    names = ["Shared", "Api", "Data", "Monitoring"]
    pattern = {"stack-id": [{"wildcard": f"*:stack/{name}/*"} for name in names]}
    with pytest.raises(PatternError, match="complex"):
        patterns.compile(pattern)


def test_or_with_an_object_value_is_a_field_name() -> None:
    pattern = {"source": ["aws.cloudwatch"], "$or": {"metricType": ["MetricType"]}}
    assert matches(pattern, {"source": "aws.cloudwatch", "$or": {"metricType": "MetricType"}})


def test_operator_names_as_fields_inside_or_are_rejected() -> None:
    with pytest.raises(PatternError):
        patterns.compile({"$or": [{"numeric": ["1"]}, {"prefix": ["2"]}]})


def test_exact_number_uses_numeric_precision() -> None:
    assert matches({"a": [{"numeric": ["=", 5]}]}, {"a": 5.0000001})  # agrees today
    assert matches({"a": [5]}, {"a": 5.0000001})


def test_anything_but_number_uses_numeric_precision() -> None:
    assert not matches({"a": [{"anything-but": 5}]}, {"a": 5.0000001})


def test_exact_ip_address_matches_any_spelling() -> None:
    assert matches({"a": ["2001:db8::1"]}, {"a": "2001:DB8:0:0::1"})


def test_cidr_with_host_bits_starts_at_the_given_address() -> None:
    assert not matches({"a": [{"cidr": "10.0.0.5/24"}]}, {"a": "10.0.0.1"})


@pytest.mark.parametrize("cidr", ["10.0.0.1/32", "2001:db8::1/128"])
def test_full_length_cidr_is_rejected(cidr: str) -> None:
    with pytest.raises(PatternError):
        patterns.compile({"a": [{"cidr": cidr}]})
