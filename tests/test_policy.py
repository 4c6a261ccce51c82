"""Subscribe policy (`fields:`): include and redact, their config, validate, a real run; and
at its edges: nested arrays, quoted names, big integers and a BOM through a policy."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from runs import EVROUTE, read_stats, run_evroute, write_config

from evroute.config.model import EACH, Config, FieldsPolicy, FieldStep
from evroute.config.yaml_loader import CoreSchemaLoader
from evroute.core.lines import LineBatch
from evroute.core.parcel import Parcel
from evroute.core.stats import ConsumerStats, RunStats
from evroute.engine.queues import ConsumerQueue
from evroute.engine.router import Router
from evroute.loading import check_config
from evroute.loading.fields import PathError, never_object, parse_path, show_path
from evroute.loading.schema import config_schema
from evroute.shaping.fields_gate import apply_policy
from evroute.storage.dead_letters import DeadLetters
from evroute.tools.routing_tests import run_tests

CANARY = "CANARY-7f3a9c"


def policy(mode: str, *sources: str) -> FieldsPolicy:
    return FieldsPolicy(mode, tuple(parse_path(source) for source in sources), sources)


def include(event: dict[str, Any], *sources: str) -> dict[str, Any]:
    return apply_policy(policy("include", *sources), event)


def redact(event: dict[str, Any], *sources: str) -> dict[str, Any]:
    return apply_policy(policy("redact", *sources), event)


ORDER = {
    "id": "o-1",
    "detail-type": "OrderPlaced",
    "customer": {"name": "Ann", "email": "ann@example.com", "tier": 2},
    "detail": {
        "items": [
            {"sku": "A", "price": 3, "card": {"number": "4111"}},
            "gift-wrap",
            {"sku": "B"},
            [{"sku": "nested"}],
        ],
        "total": 3,
    },
}


# paths


@pytest.mark.parametrize(
    ("source", "steps"),
    [
        ("id", ("id",)),
        ('"detail-type"', ("detail-type",)),
        ("customer.email", ("customer", "email")),
        ("detail.items[*].price", ("detail", "items", EACH, "price")),
        ("a[*][*].b", ("a", EACH, EACH, "b")),
        ("a[*].b[*].c.d", ("a", EACH, "b", EACH, "c", "d")),
        ('a."x y"', ("a", "x y")),
    ],
)
def test_paths_are_names_and_each(source: str, steps: tuple[FieldStep, ...]) -> None:
    assert parse_path(source) == steps
    assert parse_path(show_path(steps)) == steps


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("items[0].price", "an index"),
        ("items[1:].price", "a slice"),
        ("items[?price > `1`].sku", "a filter"),
        ("items[].price", "a flatten"),
        ("customer.*", "a wildcard"),
        ("length(items)", "a function"),
        ("a | b", "a pipe"),
        ("[a, b]", "a multiselect list"),
        ("{a: a}", "a multiselect hash"),
        ("`1`", "a literal"),
        ("a == b", "a comparison"),
        ("a || b", "||"),
        ("[*].a", "[*] at the start"),
        ("items[*]", "[*] at the end"),
        ("detail-type", "invalid JMESPath"),
    ],
)
def test_anything_else_is_not_a_path(source: str, what: str) -> None:
    with pytest.raises(PathError) as raised:
        parse_path(source)
    assert what in str(raised.value)


# include and redact


def test_include_keeps_the_listed_paths_in_the_events_own_order() -> None:
    got = include(ORDER, "customer.name", "id", "detail.total")
    assert got == {"id": "o-1", "customer": {"name": "Ann"}, "detail": {"total": 3}}
    assert list(got) == ["id", "customer", "detail"]  # the event's order, not the list's


def test_include_leaves_a_missing_path_absent_never_null() -> None:
    assert include(ORDER, "id", "nope", "customer.nope", "id.deeper") == {
        "id": "o-1",
        "customer": {},  # on the way to a listed path: kept, even empty
    }
    assert include({"customer": "Ann"}, "customer.name") == {}  # not an object: no path in it


def test_include_through_each_keeps_object_elements_cut_down() -> None:
    got = include(ORDER, "detail.items[*].sku")
    # the string and the nested array are not objects with a sku: dropped
    assert got == {"detail": {"items": [{"sku": "A"}, {"sku": "B"}]}}
    assert include(ORDER, "detail.items[*][*].sku") == {"detail": {"items": [[{"sku": "nested"}]]}}
    assert include({"items": "not a list"}, "items[*].sku") == {}


def test_include_of_a_whole_value_wins_over_a_path_inside_it() -> None:
    assert include(ORDER, "customer.email", "customer") == {"customer": ORDER["customer"]}


def test_redact_removes_the_listed_paths_and_nothing_else() -> None:
    original = copy.deepcopy(ORDER)
    got = redact(ORDER, "customer.email", '"detail-type"', "detail.items[*].card", "nope.x")
    assert got == {
        "id": "o-1",
        "customer": {"name": "Ann", "tier": 2},
        "detail": {
            # non-object elements have nothing by that name: kept as they are
            "items": [{"sku": "A", "price": 3}, "gift-wrap", {"sku": "B"}, [{"sku": "nested"}]],
            "total": 3,
        },
    }
    assert original == ORDER  # the event itself is left alone
    assert redact(ORDER, "detail.items[*][*].sku")["detail"]["items"][3] == [{}]
    assert redact({"a": 1}, "a.b") == {"a": 1}


def test_redact_through_nested_arrays_and_quoted_names() -> None:
    event = {
        "a.b": 1,
        "a": {"b": 2, "c": 3},
        "items": [[{"card": 1, "k": 2}], {"card": 3}, 4],
    }
    got = apply_policy(policy("redact", '"a.b"', "items[*][*].card"), event)
    assert got == {"a": {"b": 2, "c": 3}, "items": [[{"k": 2}], {"card": 3}, 4]}
    assert event["items"] == [[{"card": 1, "k": 2}], {"card": 3}, 4]  # left as it was


def test_a_redacting_consumer_keeps_integers_exact_and_floats_as_doubles() -> None:
    """As the README says: integers of any length exact; other numbers are doubles,
    written in their shortest form, as a transform writes them."""
    from evroute.core.json_codec import encode, parse_value

    line = (
        b'{"i":123456789012345678901234567890,"f":1.0,"a":0.10000000000000000001,'
        b'"b":12345678901234567890.5,"secret":1}'
    )
    restrict = policy("redact", "secret")
    out = encode(apply_policy(restrict, parse_value(line)))
    assert out == (
        b'{"i":123456789012345678901234567890,"f":1.0,"a":0.1,"b":1.2345678901234567e+19}'
    )


def test_the_policy_module_imports_on_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import evroute.shaping.fields_gate"],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()


# the config


def issues_of(folder: Path, body: str) -> tuple[Config | None, list[str]]:
    config, issues = check_config(write_config(folder, body))
    return config, [
        f"{issue.line}:{issue.column}: {issue.severity}: {issue.path}: {issue.message}"
        for issue in issues
    ]


def consumer_config(fields: str) -> str:
    return f"""\
version: 1
consumers:
  out:
    file: out.jsonl
    fields: {fields}
routes:
  - name: all
    to: out
"""


def test_a_valid_policy_is_in_the_config(tmp_path: Path) -> None:
    config, issues = issues_of(
        tmp_path, consumer_config("""{include: [id, "detail.items[*].sku"]}""")
    )
    assert issues == []
    assert config is not None
    fields = config.consumers["out"].fields
    assert fields == FieldsPolicy(
        "include",
        (("id",), ("detail", "items", EACH, "sku")),
        ("id", "detail.items[*].sku"),
    )


def test_every_kind_of_consumer_takes_fields(tmp_path: Path) -> None:
    config, issues = issues_of(
        tmp_path,
        """\
        version: 1
        consumers:
          a: {command: cat, fields: {redact: [x]}}
          b: {command: cat, per_event: true, fields: {redact: [x]}}
          c: {file: c.jsonl, fields: {include: [x]}}
        routes:
          - {name: all, to: [a, b, c]}
        """,
    )
    assert issues == []
    assert config is not None
    assert all(consumer.fields is not None for consumer in config.consumers.values())


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            '{include: [id, "items[0].price"]}',
            "5:28: error: consumers.out.fields.include[1]: an index is not allowed in"
            " 'items[0].price'; a fields path is field names joined by dots, with [*] for every"
            ' element of an array (detail.items[*].price, "detail-type")',
        ),
        (
            '{redact: ["length(a)"]}',
            "5:23: error: consumers.out.fields.redact[0]: a function is not allowed",
        ),
        (
            "{redact: [detail-type]}",
            "5:29: error: consumers.out.fields.redact[0]: invalid JMESPath: Unknown token '-'"
            " in 'detail-type'; a name that is not an identifier is quoted: \"detail-type\"",
        ),
        (
            "{include: [a], redact: [b]}",
            "5:13: error: consumers.out.fields: has both include and redact; give exactly one",
        ),
        ("{}", "5:13: error: consumers.out.fields: lists no paths; give exactly one"),
        (
            "{include: []}",
            "5:23: error: consumers.out.fields.include: expected a non-empty list of paths,"
            " got an empty list",
        ),
        (
            "{include: id}",
            "5:23: error: consumers.out.fields.include: expected a non-empty list of paths,"
            " got string 'id'",
        ),
        ("{exclude: [a]}", "5:14: error: consumers.out.fields.exclude: unknown key 'exclude'"),
        ("[id]", "5:13: error: consumers.out.fields: expected a mapping"),
        ('{include: ["`1`"]}', "5:24: error: consumers.out.fields.include[0]: a literal is not"),
        ("{include: [a, 5]}", "5:27: error: consumers.out.fields.include[1]: expected a string"),
    ],
)
def test_bad_policies_are_errors_at_their_path(tmp_path: Path, fields: str, expected: str) -> None:
    config, _ = check_config(write_config(tmp_path, consumer_config(fields)))
    assert config is None
    _, issues = check_config(tmp_path / "routes.yaml")
    found = [issue.format() for issue in issues]
    assert any(expected in line for line in found), found


def test_a_path_listed_twice_or_inside_another_is_a_warning(tmp_path: Path) -> None:
    config, issues = issues_of(tmp_path, consumer_config("{redact: [a, a.b, a]}"))
    assert config is not None
    assert issues == [
        "5:26: warning: consumers.out.fields.redact[1]: is inside a, which is already listed",
        "5:31: warning: consumers.out.fields.redact[2]: is listed twice, which is already listed",
    ]


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        ('{include: [id, "items[*].sku"]}', True),
        ("{redact: [a]}", True),
        ("{include: [a], redact: [b]}", False),
        ("{include: []}", False),
        ("{}", False),
        ("{exclude: [a]}", False),
        ("{include: id}", False),
    ],
)
def test_the_schema_agrees_with_the_checker(tmp_path: Path, fields: str, valid: bool) -> None:
    text = consumer_config(fields)
    document = yaml.load(text, Loader=CoreSchemaLoader)
    schema_valid = jsonschema.Draft202012Validator(config_schema()).is_valid(document)
    config, _ = check_config(write_config(tmp_path, text))
    assert schema_valid is valid
    assert (config is not None) is valid


# validate: routes against the policies of their consumers


def route_config(transform: str, fields: str) -> str:
    return f"""\
version: 1
consumers:
  plain: {{file: plain.jsonl}}
  guarded:
    file: guarded.jsonl
    fields: {fields}
routes:
  - name: r
    transform: "{transform}"
    to: [plain, guarded]
"""


@pytest.mark.parametrize(
    ("transform", "gives"),
    [
        ("length(items)", "a number"),
        ("[id, name]", "an array"),
        ("items[*].sku", "an array"),
        ("a == b", "a boolean"),
        ("`1`", "a number"),
        ("'text'", "a string"),
        ("x | to_string(@)", "a string"),
        ("a.keys(@)", "an array"),
        ("a.b || `[]`", None),
        ("@", None),
        ("detail", None),
        ("merge(a, b)", None),
    ],
)
def test_a_transform_that_never_gives_an_object_is_an_error(
    tmp_path: Path, transform: str, gives: str | None
) -> None:
    config, issues = issues_of(tmp_path, route_config(transform, "{redact: [x]}"))
    if gives is None:
        assert issues == [] and config is not None
        return
    assert config is None
    assert issues == [
        f"10:17: error: routes[0].to[1]: consumer guarded has a fields policy, which applies"
        f" to objects only, but the transform of route r ({transform}) gives {gives}: every"
        " event would be denied; make the transform give an object or send it elsewhere"
    ]


def test_a_transform_that_makes_a_redacted_key_is_an_error(tmp_path: Path) -> None:
    config, issues = issues_of(
        tmp_path,
        route_config(
            "{id: id, email: customer.email, who: {name: n, card: c}}",
            "{redact: [email, who.card, id.deeper]}",
        ),
    )
    assert config is None
    assert issues == [
        "10:17: error: routes[0].to[1]: route r's transform produces email, which consumer"
        " guarded redacts: remove email from the transform, or send the route to a consumer"
        " that may see it",
        "10:17: error: routes[0].to[1]: route r's transform produces who.card, which consumer"
        " guarded redacts: remove who.card from the transform, or send the route to a"
        " consumer that may see it",
    ]


def test_a_transform_key_outside_an_include_list_is_a_warning(tmp_path: Path) -> None:
    config, issues = issues_of(
        tmp_path,
        route_config("x | {id: id, extra: e, who: {name: n, age: a}}", "{include: [id, who.name]}"),
    )
    assert config is not None
    assert issues == [
        "10:17: warning: routes[0].to[1]: route r's transform produces extra, which consumer"
        " guarded does not include: it will be removed",
        "10:17: warning: routes[0].to[1]: route r's transform produces who.age, which consumer"
        " guarded does not include: it will be removed",
    ]


def test_never_object_follows_pipes_and_alternatives() -> None:
    from evroute.expr import parse

    assert never_object(parse("a | length(@)")) == "a number"
    assert never_object(parse("a == b || length(c)")) == "a boolean or a number"
    assert never_object(parse("a && {b: b}")) is None


# the router


def test_the_router_gives_the_queue_only_what_the_policy_allows(tmp_path: Path) -> None:
    config, issues = issues_of(
        tmp_path,
        """\
        version: 1
        consumers:
          guarded: {file: g.jsonl, fields: {redact: [secret]}}
          plain: {file: p.jsonl}
        routes:
          - {name: all, to: [guarded, plain]}
          - {name: inner, filter: inner, transform: inner, to: guarded}
        """,
    )
    assert config is not None, issues
    stats = RunStats()
    letters: list[tuple[str, str, list[Parcel]]] = []
    queues = {
        name: ConsumerQueue(
            consumer.queue,
            stats.consumers.setdefault(name, ConsumerStats()),
            lambda reason, detail, parcels: letters.append((reason, detail, parcels)),
        )
        for name, consumer in config.consumers.items()
    }
    router = Router(config, queues, DeadLetters(None), stats)
    lines = [
        b'{"id": 1, "secret": "%s", "n": 123456789012345678901234567890}' % CANARY.encode(),
        b'{"id": 2, "inner": {"secret": "%s", "keep": 1}}' % CANARY.encode(),
        b'{"id": 3, "inner": 7}',
    ]
    router.route("in", LineBatch(1, list(lines)))
    guarded = [p for parcel in queues["guarded"].take_all() for p in parcel.payloads]
    assert guarded == [
        b'{"id":1,"n":123456789012345678901234567890}',
        b'{"id":2,"inner":{"secret":"%s","keep":1}}' % CANARY.encode(),
        b'{"keep":1}',
        b'{"id":3,"inner":7}',
    ]
    plain = [p for parcel in queues["plain"].take_all() for p in parcel.payloads]
    assert plain == lines  # the exact bytes
    # the number of route inner is denied, with the whole event kept for its dead letter
    [(reason, detail, [denied])] = letters
    assert reason == "denied"
    assert detail == (
        "consumer guarded's fields policy applies to objects; the transform of route inner"
        " gave a number"
    )
    assert denied.originals == [lines[2]] and denied.positions == [2]
    consumer = stats.consumers["guarded"]
    assert (consumer.enqueued, consumer.dead_lettered) == (5, 1)


def test_evroute_test_compares_outputs_after_the_policy(tmp_path: Path) -> None:
    config, issues = issues_of(
        tmp_path,
        """\
        version: 1
        consumers:
          guarded: {file: g.jsonl, fields: {include: [id, "items[*].sku"]}}
        routes:
          - {name: all, to: guarded}
          - {name: count, filter: items, transform: "items[0].sku", to: guarded}
        tests:
          - name: cut down, and the string is denied
            event: {"id": 1, "secret": "s", "items": [{"sku": "A", "price": 2}, 5]}
            routes: [all, count]
            outputs: {guarded: [{"id": 1, "items": [{"sku": "A"}]}]}
          - name: the whole event is not what it gets
            event: {"id": 2, "secret": "s"}
            routes: [all]
            outputs: {guarded: [{"id": 2, "secret": "s"}]}
        """,
    )
    assert config is not None, issues
    result = run_tests(config)
    assert [case.passed for case in result.cases] == [True, False]
    assert result.cases[1].outputs[0].actual == [{"id": 2}]


# a real run


RUN_CONFIG = """\
version: 1
dead_letter: dead.jsonl
consumers:
  redacting:
    file: redacted.jsonl
    fields:
      redact: [customer.card, "detail.items[*].secret"]
  including:
    command: ["{python}", "-c", "{copy}"]
    fields:
      include: [id, customer.name, "detail.items[*].sku"]
  plain:
    file: plain.jsonl
routes:
  - name: all
    to: [redacting, including, plain]
  - name: inner
    filter: "kind == 'wrapped'"
    transform: inner
    to: including
"""


def test_a_real_run_keeps_the_canary_from_the_redacting_consumer(tmp_path: Path) -> None:
    config = tmp_path / "routes.yaml"
    copy = "import sys, shutil; shutil.copyfileobj(sys.stdin, open('included.jsonl', 'w'))"
    config.write_text(RUN_CONFIG.replace("{python}", sys.executable).replace("{copy}", copy))
    events = [
        {
            "id": n,
            "customer": {"name": f"c{n}", "card": f"{CANARY}-{n}"},
            "detail": {"items": [{"sku": "A", "secret": CANARY}, "note"]},
        }
        for n in range(200)
    ]
    lines = [json.dumps(event).encode() for event in events]  # spaces: not orjson's bytes
    wrapped = b'{"id": 200, "kind": "wrapped", "inner": 5}'
    (tmp_path / "in.jsonl").write_bytes(b"\n".join([*lines, wrapped]) + b"\n")
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", "stats.json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr.decode()  # the denied event
    redacted = (tmp_path / "redacted.jsonl").read_bytes()
    assert CANARY.encode() not in redacted
    assert [orjson.loads(line) for line in redacted.splitlines()] == [
        {"id": n, "customer": {"name": f"c{n}"}, "detail": {"items": [{"sku": "A"}, "note"]}}
        for n in range(200)
    ] + [{"id": 200, "kind": "wrapped", "inner": 5}]
    included = (tmp_path / "included.jsonl").read_bytes()
    assert CANARY.encode() not in included
    assert [orjson.loads(line) for line in included.splitlines()] == [
        {"id": n, "customer": {"name": f"c{n}"}, "detail": {"items": [{"sku": "A"}]}}
        for n in range(200)
    ] + [{"id": 200}]
    assert (tmp_path / "plain.jsonl").read_bytes() == b"\n".join([*lines, wrapped]) + b"\n"
    [letter] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert letter["reason"] == "denied"
    assert (letter["route"], letter["consumer"], letter["line"]) == ("inner", "including", 201)
    assert letter["event"] == json.loads(wrapped)  # the whole event, for a redrive
    stats = read_stats(tmp_path / "stats.json")
    assert stats["consumers"]["including"]["dead_lettered"] == 1


def test_a_redacting_consumer_keeps_big_integers_and_a_bom_line(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        version: 1
        consumers:
          out: {file: out.jsonl, fields: {redact: [secret]}}
          rest: {file: rest.jsonl, fields: {include: [id]}}
        unmatched: rest
        routes:
          - {name: a, filter: "kind == 'a'", to: out}
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(
        b'\xef\xbb\xbf{"kind":"a","secret":"S1","big":123456789012345678901234,"f":1.5}\n'
        b'{"kind":"b","id":2,"secret":"S2"}\n'
    )
    result = run_evroute(["run", "routes.yaml", "in.jsonl", "--stats", "off"], tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == (
        b'{"kind":"a","big":123456789012345678901234,"f":1.5}\n'
    )
    assert (tmp_path / "rest.jsonl").read_bytes() == b'{"id":2}\n'


# property: redact removes exactly the listed paths

NAMES = ["a", "b", "d-e"]
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3))
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)
    ),
    max_leaves=25,
)
objects = st.dictionaries(st.sampled_from(NAMES), json_values, min_size=1, max_size=3)
random_paths = st.lists(st.sampled_from([*NAMES, EACH]), min_size=1, max_size=4).filter(
    lambda steps: steps[0] is not EACH and steps[-1] is not EACH
)


def paths_in(value: Any, prefix: tuple[FieldStep, ...] = ()) -> list[list[FieldStep]]:
    """Every path the value has, ending with a name, with EACH through its arrays."""
    found: list[list[FieldStep]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append([*prefix, key])
            found.extend(paths_in(item, (*prefix, key)))
    elif isinstance(value, list) and prefix:
        for item in value:
            found.extend(paths_in(item, (*prefix, EACH)))
    return found


def reference_redact(value: Any, path: list[FieldStep]) -> Any:
    """The oracle: one path at a time, written as plainly as it can be."""
    step, rest = path[0], path[1:]
    if step is EACH:
        return (
            [reference_redact(item, rest) for item in value] if isinstance(value, list) else value
        )
    if not isinstance(value, dict) or step not in value:
        return value
    if not rest:
        return {key: item for key, item in value.items() if key != step}
    return {
        key: reference_redact(item, rest) if key == step else item for key, item in value.items()
    }


def present(value: Any, path: list[FieldStep]) -> bool:
    if not path:
        return True
    step, rest = path[0], path[1:]
    if step is EACH:
        return isinstance(value, list) and any(present(item, rest) for item in value)
    return isinstance(value, dict) and step in value and present(value[step], rest)


@settings(max_examples=300, deadline=None)
@given(event=objects, data=st.data())
def test_redact_removes_exactly_the_listed_paths(
    event: dict[str, Any], data: st.DataObject
) -> None:
    # mostly paths the event has, so that the removals are put to the test
    own = st.sampled_from(paths_in(event))
    redacted = data.draw(st.lists(own | own | random_paths, min_size=1, max_size=4))
    sources = [show_path(tuple(path)) for path in redacted]
    before = copy.deepcopy(event)
    got = redact(event, *sources)
    assert event == before
    for path in redacted:
        assert not present(got, path), show_path(tuple(path))
    expected: Any = event
    for path in redacted:
        expected = reference_redact(expected, path)
    assert got == expected
    assert list(got) == [key for key in event if key in got]  # order kept
