"""`${VAR}`, `${VAR:-default}` and `$$`: evroute.config.env.expand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evroute.config.env import BadReference, expand

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
TEXT = st.text(max_size=40)


def run(text, environ=None):
    unset: list[str] = []
    return expand(text, environ or {}, unset), unset


@pytest.mark.parametrize(
    ("text", "environ", "expanded", "unset"),
    [
        pytest.param(
            "out/${DIR}/a.jsonl",
            {"DIR": "logs"},
            "out/logs/a.jsonl",
            [],
            id="set-variable-is-substituted",
        ),
        pytest.param("${TOKEN}", {"TOKEN": "s3cret"}, "s3cret", [], id="whole-value-reference"),
        pytest.param("${A}-${B}-${A}", {"A": "x", "B": "y"}, "x-y-x", [], id="several-references"),
        pytest.param(
            "a${MISSING}b", None, "ab", ["MISSING"], id="unset-variable-becomes-empty-and-is-listed"
        ),
        pytest.param(
            "${ONE}/${TWO}",
            {"OTHER": "1"},
            "/",
            ["ONE", "TWO"],
            id="every-unset-variable-is-listed-in-order",
        ),
        pytest.param(
            "a${EMPTY}b",
            {"EMPTY": ""},
            "ab",
            [],
            id="set-but-empty-variable-without-default-is-empty-not-unset",
        ),
        pytest.param("${LEVEL:-info}", None, "info", [], id="default-when-unset"),
        pytest.param("${LEVEL:-info}", {"LEVEL": ""}, "info", [], id="default-when-empty"),
        pytest.param(
            "${LEVEL:-info}", {"LEVEL": "debug"}, "debug", [], id="default-ignored-when-set"
        ),
        pytest.param("x${LEVEL:-}y", None, "xy", [], id="empty-default"),
        pytest.param(
            "${CMD:-python3 consumers/notify.py --x=1}",
            None,
            "python3 consumers/notify.py --x=1",
            [],
            id="default-with-spaces-and-punctuation",
        ),
        pytest.param("cost: $$5", None, "cost: $5", [], id="double-dollar-is-a-dollar"),
        pytest.param(
            "$${HOME}",
            {"HOME": "/root"},
            "${HOME}",
            [],
            id="double-dollar-before-brace-is-not-a-reference",
        ),
        pytest.param(
            "price $5 and $HOME",
            {"HOME": "/root"},
            "price $5 and $HOME",
            [],
            id="lone-dollar-without-brace-is-kept",
        ),
        pytest.param("abc$", None, "abc$", [], id="trailing-dollar-is-kept"),
        pytest.param(
            "no references {here}",
            {"here": "x"},
            "no references {here}",
            [],
            id="text-without-dollar-is-returned-unchanged",
        ),
    ],
)
def test_expand(text, environ, expanded, unset):
    assert run(text, environ) == (expanded, unset)


def test_environ_is_only_read():
    environ = {"A": "1"}
    run("${A}${B:-2}", environ)
    assert environ == {"A": "1"}


@pytest.mark.parametrize(
    "text",
    [
        "${",
        "x${",
        "${}",
        "${1ABC}",
        "${A-B}",
        "${A:default}",
        "${A B}",
        "${unterminated",
        "ok ${A} then ${",
    ],
)
def test_malformed_reference_raises(text):
    with pytest.raises(BadReference, match=r"\$\$"):
        run(text, {"A": "1"})


def test_bad_reference_is_a_value_error():
    assert issubclass(BadReference, ValueError)


@given(TEXT)
def test_escaping_every_dollar_round_trips(text):
    assert run(text.replace("$", "$$")) == (text, [])


@given(TEXT.filter(lambda text: "$" not in text))
def test_text_without_dollar_property(text):
    assert run(text, {"A": "1"}) == (text, [])


@given(NAMES, TEXT)
def test_set_variable_property(name, value):
    assert run(f"<${{{name}}}>", {name: value}) == (f"<{value}>", [])


@given(NAMES, st.text(max_size=20).filter(lambda text: "}" not in text))
def test_default_property(name, default):
    assert run(f"${{{name}:-{default}}}") == (default, [])


@given(NAMES)
def test_unset_property(name):
    assert run(f"a${{{name}}}b") == ("ab", [name])
