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


def test_set_variable_is_substituted():
    assert run("out/${DIR}/a.jsonl", {"DIR": "logs"}) == ("out/logs/a.jsonl", [])


def test_whole_value_reference():
    assert run("${TOKEN}", {"TOKEN": "s3cret"}) == ("s3cret", [])


def test_several_references():
    assert run("${A}-${B}-${A}", {"A": "x", "B": "y"}) == ("x-y-x", [])


def test_unset_variable_becomes_empty_and_is_listed():
    assert run("a${MISSING}b") == ("ab", ["MISSING"])


def test_every_unset_variable_is_listed_in_order():
    assert run("${ONE}/${TWO}", {"OTHER": "1"}) == ("/", ["ONE", "TWO"])


def test_set_but_empty_variable_without_default_is_empty_not_unset():
    assert run("a${EMPTY}b", {"EMPTY": ""}) == ("ab", [])


def test_default_when_unset():
    assert run("${LEVEL:-info}") == ("info", [])


def test_default_when_empty():
    assert run("${LEVEL:-info}", {"LEVEL": ""}) == ("info", [])


def test_default_ignored_when_set():
    assert run("${LEVEL:-info}", {"LEVEL": "debug"}) == ("debug", [])


def test_empty_default():
    assert run("x${LEVEL:-}y") == ("xy", [])


def test_default_with_spaces_and_punctuation():
    assert run("${CMD:-python3 consumers/notify.py --x=1}") == (
        "python3 consumers/notify.py --x=1",
        [],
    )


def test_double_dollar_is_a_dollar():
    assert run("cost: $$5") == ("cost: $5", [])


def test_double_dollar_before_brace_is_not_a_reference():
    assert run("$${HOME}", {"HOME": "/root"}) == ("${HOME}", [])


def test_lone_dollar_without_brace_is_kept():
    assert run("price $5 and $HOME", {"HOME": "/root"}) == ("price $5 and $HOME", [])


def test_trailing_dollar_is_kept():
    assert run("abc$") == ("abc$", [])


def test_text_without_dollar_is_returned_unchanged():
    text = "no references {here}"
    assert run(text, {"here": "x"}) == (text, [])


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
