"""Routes with an EventBridge event pattern (`pattern:`): validate, run, explain, test, graph.

The patterns' own semantics are tested in tests/patterns/; here, how they fit in a config:
where a mistake is reported, how pattern routes and filter routes share a run, and what
explain, `evroute test` and graph say about them.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from runs import read_stats, run_evroute, write_config

from evroute import patterns
from evroute.cli import program
from evroute.config.checker import Issue
from evroute.loading import check_config, load_config
from evroute.loading.schema import config_schema
from evroute.patterns._compile import OPERATORS
from evroute.tools import explain
from evroute.tools.graph import to_dot, to_mermaid, topology


def with_routes(routes: str) -> str:
    """A config with one file consumer, `out`, and these routes (a YAML list)."""
    return HEAD + textwrap.indent(textwrap.dedent(routes), "  ")


def errors(folder: Path, text: str) -> list[Issue]:
    config, issues = check_config(write_config(folder, text), environ={})
    assert config is None
    return [issue for issue in issues if issue.severity == "error"]


def located(issues: list[Issue]) -> list[tuple[int, int, str]]:
    return [(issue.line, issue.column, issue.path) for issue in issues]


HEAD = """\
version: 1
consumers:
  out: {file: out/out.jsonl}
routes:
"""


# --- validate ----------------------------------------------------------------------------


def test_a_yaml_pattern_is_read_into_the_route(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            with_routes(
                """\
              - name: orders
                pattern:
                  source: [shop]
                  detail: {amount: [{numeric: [">", 100]}]}
                to: out
            """
            ),
        )
    )
    (route,) = config.routes
    assert route.filter is None and route.pattern is not None
    assert route.pattern.source == {
        "source": ["shop"],
        "detail": {"amount": [{"numeric": [">", 100]}]},
    }
    assert route.pattern.matches({"source": "shop", "detail": {"amount": 101}})
    assert not route.pattern.matches({"source": "shop", "detail": {"amount": 100}})
    assert (route.line, route.column) == (7, 7)  # its pattern, for what samples say


def test_a_json_string_pattern_is_read_into_the_route(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            with_routes(
                """\
              - name: orders
                pattern: '{"detail-type": [{"prefix": "Order"}]}'
                to: out
            """
            ),
        )
    )
    pattern = config.routes[0].pattern
    assert pattern is not None
    assert pattern.source == {"detail-type": [{"prefix": "Order"}]}
    assert pattern.matches({"detail-type": "OrderPlaced"})


def test_every_pattern_mistake_is_located_in_the_yaml(tmp_path: Path) -> None:
    issues = errors(
        tmp_path,
        with_routes(
            """\
          - name: a
            pattern:
              source: [shop]
              detail:
                amount: [{numeric: [">", "x"]}]
            to: out
          - name: b
            pattern: {source: []}
            to: out
          - name: c
            pattern:
              detail: {state: [{bogus: 1}]}
            to: out
          - name: d
            pattern: {source: shop}
            to: out
          - name: e
            pattern: [1]
            to: out
          - name: f
            pattern: {}
            to: out
        """
        ),
    )
    assert located(issues) == [
        (9, 34, "routes[0].pattern.detail.amount[0].numeric[1]"),
        (12, 23, "routes[1].pattern.source"),
        (16, 24, "routes[2].pattern.detail.state[0]"),
        (19, 23, "routes[3].pattern.source"),
        (22, 14, "routes[4].pattern"),
        (25, 14, "routes[5].pattern"),
    ]
    messages = [issue.message for issue in issues]
    assert "number" in messages[0]
    assert "bogus" in messages[2]
    assert "a mapping, or a JSON object in a string" in messages[4]


def test_a_mistake_in_a_json_string_pattern_is_at_the_string(tmp_path: Path) -> None:
    issues = errors(
        tmp_path,
        with_routes(
            """\
          - name: a
            pattern: '{"detail": {"tier": [{"prefix": 3}]}}'
            to: out
          - name: b
            pattern: "[1]"
            to: out
        """
        ),
    )
    assert located(issues) == [
        (6, 14, "routes[0].pattern.detail.tier[0].prefix"),
        (9, 14, "routes[1].pattern"),
    ]
    assert "must be an object" in issues[1].message


def test_a_json_string_that_is_not_json_says_where(tmp_path: Path) -> None:
    issues = errors(
        tmp_path,
        with_routes(
            """\
          - name: a
            pattern: '{"source": ["shop"],, }'
            to: out
          - name: b
            pattern: '{"detail": {"amount": [{"numeric": [">", NaN]}]}}'
            to: out
          - name: c
            pattern: '{"detail": {"amount": [{"numeric": [">", 1e999]}]}}'
            to: out
        """
        ),
    )
    # column 14 is the opening quote; position 20 of the JSON is the second comma
    assert located(issues)[0] == (6, 14 + 1 + 20, "routes[0].pattern")
    assert "not valid JSON" in issues[0].message and "position 20" in issues[0].message
    assert [issue.path for issue in issues[1:]] == ["routes[1].pattern", "routes[2].pattern"]
    assert all("not valid JSON" in issue.message for issue in issues)


def test_a_yaml_pattern_with_a_value_json_lacks_is_an_error(tmp_path: Path) -> None:
    issues = errors(
        tmp_path,
        with_routes(
            """\
          - name: a
            pattern: {detail: {amount: [{numeric: [">", .inf]}]}}
            to: out
        """
        ),
    )
    assert [issue.path for issue in issues] == ["routes[0].pattern.detail.amount[0].numeric[1]"]
    assert "not a JSON number" in issues[0].message


def test_a_route_takes_a_filter_or_a_pattern_not_both(tmp_path: Path) -> None:
    issues = errors(
        tmp_path,
        with_routes(
            """\
          - name: both
            filter: "source == 'shop'"
            pattern: {source: [shop]}
            to: out
        """
        ),
    )
    assert located(issues) == [(7, 5, "routes[0]")]
    assert "both filter and pattern" in issues[0].message


def test_pattern_errors_come_with_the_other_errors_of_the_config(tmp_path: Path) -> None:
    issues = errors(
        tmp_path,
        with_routes(
            """\
          - name: a
            pattern: {source: []}
            to: nowhere
          - name: b
            filter: "a >> b"
            to: out
        """
        ),
    )
    assert [issue.path for issue in issues] == [
        "routes[0].pattern.source",
        "routes[0].to",
        "routes[1].filter",
    ]


def test_validate_prints_pattern_errors_with_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path,
        with_routes(
            """\
          - name: a
            pattern: {source: [{prefix: 1}]}
            to: out
        """
        ),
    )
    assert program(["validate", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert f"{path}:6:33: error: routes[0].pattern.source[0].prefix: " in out


def test_an_unset_variable_in_a_pattern_is_only_warned_about_with_no_env(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        with_routes(
            """\
          - name: a
            pattern: {source: ["${SOURCE}"]}
            to: out
        """
        ),
    )
    config, issues = check_config(path, environ={}, no_env=True)
    assert config is not None
    assert [issue.severity for issue in issues] == ["warning"]
    config = load_config(path, environ={"SOURCE": "shop"})
    assert config.routes[0].pattern is not None
    assert config.routes[0].pattern.source == {"source": ["shop"]}


def test_the_schema_takes_a_pattern_but_not_with_a_filter() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(config_schema())

    def problems(route: dict[str, Any]) -> list[Any]:
        document = {"version": 1, "consumers": {"out": {"file": "o"}}, "routes": [route]}
        return list(validator.iter_errors(document))

    assert problems({"name": "a", "pattern": {"source": ["x"]}, "to": "out"}) == []
    assert problems({"name": "a", "pattern": '{"source": ["x"]}', "to": "out"}) == []
    assert problems({"name": "a", "pattern": {"source": ["x"]}, "filter": "a", "to": "out"})
    assert problems({"name": "a", "pattern": 3, "to": "out"})


# --- run -----------------------------------------------------------------------------------

RUN_CONFIG = """\
version: 1
unmatched: rest
dead_letter: out/dead.jsonl
consumers:
  orders: {file: out/orders.jsonl}
  slim: {file: out/slim.jsonl}
  alerts: {file: out/alerts.jsonl}
  rest: {file: out/rest.jsonl}
routes:
  - name: big-orders
    pattern:
      detail-type: [OrderPlaced]
      detail: {amount: [{numeric: [">", 100]}]}
    to: orders
  - name: slim-orders
    pattern: '{"detail-type": ["OrderPlaced"]}'
    transform: "{id: id, amount: detail.amount}"
    to: slim
  - name: broken-transform
    pattern: {detail-type: [OrderPlaced], detail: {note: [{exists: true}]}}
    transform: "abs(detail.note)"
    to: slim
  - name: failures
    pattern:
      $or:
        - detail-type: [{suffix: Failed}]
        - detail: {status: [{equals-ignore-case: error}]}
    to: alerts
  - name: by-filter
    filter: "detail.amount > `1000`"
    to: alerts
"""

RUN_EVENTS = [
    {"id": "e-1", "detail-type": "OrderPlaced", "detail": {"amount": 250}},
    {"id": "e-2", "detail-type": "OrderPlaced", "detail": {"amount": 50, "note": "x"}},
    {"id": "e-3", "detail-type": "PaymentFailed", "detail": {"amount": 5000}},
    {"id": "e-4", "detail-type": "Ping", "detail": {"status": "ERROR"}},
    {"id": "e-5", "detail-type": "Ping", "detail": {"status": "ok"}},
    {"id": "e-6", "detail-type": "Ping", "detail": {"amount": 2000}},
]


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_routes_events_by_their_patterns(tmp_path: Path) -> None:
    config = write_config(tmp_path, RUN_CONFIG)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(event) + "\n" for event in RUN_EVENTS))
    stats_path = tmp_path / "stats.json"
    result = run_evroute(
        ["run", str(config), str(events), "--stats", "off", "--stats-json", str(stats_path)],
        tmp_path,
    )
    assert result.returncode == 3, result.stderr  # the transform's filter_error
    out = tmp_path / "out"
    assert [event["id"] for event in lines(out / "orders.jsonl")] == ["e-1"]
    assert lines(out / "slim.jsonl") == [{"id": "e-1", "amount": 250}, {"id": "e-2", "amount": 50}]
    # e-3 twice: by its pattern and by the filter, each delivery once per route
    assert [event["id"] for event in lines(out / "alerts.jsonl")] == ["e-3", "e-3", "e-4", "e-6"]
    assert [event["id"] for event in lines(out / "rest.jsonl")] == ["e-5"]
    (letter,) = lines(out / "dead.jsonl")
    assert (letter["reason"], letter["route"], letter["event"]["id"]) == (
        "filter_error",
        "broken-transform",
        "e-2",
    )
    stats = read_stats(stats_path)
    assert {name: route["matched"] for name, route in stats["routes"].items()} == {
        "big-orders": 1,
        "slim-orders": 2,
        "broken-transform": 0,
        "failures": 2,
        "by-filter": 2,
    }
    assert stats["routes"]["broken-transform"]["errors"] == 1
    assert stats["unmatched"] == 1


def test_an_event_whose_only_pattern_route_fails_its_transform_is_unmatched(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path,
        """\
        version: 1
        unmatched: rest
        consumers:
          out: {file: out/out.jsonl}
          rest: {file: out/rest.jsonl}
        routes:
          - name: a
            pattern: {source: [shop]}
            transform: "abs(note)"
            to: out
        """,
    )
    events = tmp_path / "events.jsonl"
    events.write_text('{"source": "shop", "note": "x"}\n{"source": "shop", "note": -2}\n')
    result = run_evroute(["run", str(config), str(events), "--stats", "off"], tmp_path)
    assert result.returncode == 3
    assert lines(tmp_path / "out" / "out.jsonl") == [2]
    assert lines(tmp_path / "out" / "rest.jsonl") == [{"source": "shop", "note": "x"}]


def test_pattern_routes_reach_events_that_take_an_indexed_plan(tmp_path: Path) -> None:
    """With enough filter routes on one field, events take an indexed plan: the pattern
    routes are consulted on every plan, in config order among the filter routes."""
    filters = "".join(
        f'  - {{name: f{n}, filter: "\\"detail-type\\" == \'T{n}\'", to: out}}\n' for n in range(10)
    )
    config = write_config(
        tmp_path,
        "version: 1\nconsumers:\n  out: {file: out/out.jsonl}\nroutes:\n"
        "  - {name: p-first, pattern: {source: [shop]}, transform: \"'p-first'\", to: out}\n"
        + filters
        + "  - {name: p-last, pattern: {detail-type: [T3, Other]}, transform: \"'p-last'\","
        " to: out}\n",
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"source": "shop", "detail-type": "T3"}\n'
        '{"source": "shop", "detail-type": "Other"}\n'
        '{"source": "elsewhere", "detail-type": "T5"}\n'
    )
    stats_path = tmp_path / "stats.json"
    result = run_evroute(
        ["run", str(config), str(events), "--stats", "off", "--stats-json", str(stats_path)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    delivered = (tmp_path / "out" / "out.jsonl").read_text().splitlines()
    assert delivered == [
        '"p-first"',
        '{"source": "shop", "detail-type": "T3"}',
        '"p-last"',
        '"p-first"',
        '"p-last"',
        '{"source": "elsewhere", "detail-type": "T5"}',
    ]
    stats = read_stats(stats_path)
    assert stats["unmatched"] == 0


def test_a_thousand_pattern_routes_validate_and_run(tmp_path: Path) -> None:
    routes = "".join(
        f"  - name: r{n}\n"
        f"    pattern: {{source: [app{n % 100}], detail-type: [Type{n}]}}\n"
        f"    to: out\n"
        for n in range(1000)
    )
    config = write_config(
        tmp_path,
        "version: 1\nunmatched: rest\nconsumers:\n  out: {file: out/out.jsonl}\n"
        "  rest: {file: out/rest.jsonl}\nroutes:\n" + routes,
    )
    assert program(["validate", str(config)]) == 0
    events = tmp_path / "events.jsonl"
    wanted = [(n % 100, n) for n in range(0, 1000, 7)]
    with events.open("w") as stream:
        for source, kind in wanted:
            stream.write(
                json.dumps({"source": f"app{source}", "detail-type": f"Type{kind}"}) + "\n"
            )
        stream.write(json.dumps({"source": "app1", "detail-type": "Type2"}) + "\n")  # no rule
    stats_path = tmp_path / "stats.json"
    result = run_evroute(
        ["run", str(config), str(events), "--stats", "off", "--stats-json", str(stats_path)],
        tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    stats = read_stats(stats_path)
    matched = {name for name, route in stats["routes"].items() if route["matched"]}
    assert matched == {f"r{kind}" for _, kind in wanted}
    assert all(stats["routes"][name]["matched"] == 1 for name in matched)
    assert stats["unmatched"] == 1
    assert len((tmp_path / "out" / "out.jsonl").read_text().splitlines()) == len(wanted)


def test_an_event_a_pattern_cannot_be_matched_against_is_no_traceback(tmp_path: Path) -> None:
    """An event nested as deep as JSON parsing allows: each pattern route either decides
    or fails as a filter_error of its own, and explain says the same as the run."""
    config = write_config(
        tmp_path,
        with_routes(
            """\
            - {name: a, pattern: {source: [shop]}, to: out}
            - {name: b, pattern: {source: [{prefix: sh}]}, to: out}
            - {name: c, filter: "source == 'shop'", to: out}
            """
        ),
    )
    depth = 1000
    deep = '{"source": ' + "[" * depth + '"shop"' + "]" * depth + "}\n"
    events = tmp_path / "events.jsonl"
    events.write_text(deep + '{"source": "shop"}\n')
    stats_path = tmp_path / "stats.json"
    result = run_evroute(
        ["run", str(config), str(events), "--stats", "off", "--stats-json", str(stats_path)],
        tmp_path,
    )
    assert result.returncode in (0, 3), result.stderr
    stats = read_stats(stats_path)
    explained = list(explain.explain_input(load_config(config), str(events)))
    for name in ("a", "b", "c"):
        verdicts = [
            v for item in explained if isinstance(item, explain.EventVerdict) for v in item.routes
        ]
        mine = [v for v in verdicts if v.route == name]
        assert stats["routes"][name] == {
            "matched": sum(v.status == explain.MATCHED for v in mine),
            "errors": sum(v.status == explain.FILTER_ERROR for v in mine),
        }
        assert mine[1].status == explain.MATCHED
    failed = [v for v in explained[0].routes if v.status == explain.FILTER_ERROR]  # type: ignore[union-attr]
    assert all(v.error_in == "pattern" for v in failed if v.route != "c")


def test_a_pattern_that_fails_on_an_event_is_a_filter_error_of_its_route_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evroute.core.lines import LineBatch
    from evroute.core.stats import RunStats
    from evroute.engine.router import Router

    config = load_config(
        write_config(
            tmp_path,
            with_routes(
                """\
                - {name: fragile, pattern: {x: [1]}, to: out}
                - {name: sturdy, pattern: {x: [{exists: true}]}, to: out}
                """
            ),
        )
    )
    fragile = config.routes[0].pattern
    assert fragile is not None
    matches = fragile.matches

    def fails_on_boom(event: dict[str, Any]) -> bool:
        if "boom" in event:
            raise RecursionError("maximum recursion depth exceeded")
        return matches(event)

    monkeypatch.setattr(fragile, "matches", fails_on_boom)
    router = Router(config, {"out": None}, None, RunStats())  # type: ignore[dict-item, arg-type]
    verdict = router.evaluate(LineBatch(1, [b'{"x": 1, "boom": 1}', b'{"x": 1}'], False))
    assert verdict.positions[:2] == [[1], [0, 1]]
    assert verdict.errors == [1, 0]
    ((reason, detail, route, position),) = verdict.letters
    assert (reason, route, position) == ("filter_error", 0, 0)
    assert "could not be matched" in detail and "recursion" in detail


def test_filter_routes_keep_their_plans_when_no_route_has_a_pattern(tmp_path: Path) -> None:
    """The router consults patterns by wrapping its plans, and only when there are any."""
    from evroute.core.stats import RunStats
    from evroute.engine.router import Router

    plain = load_config(write_config(tmp_path, HEAD + "  - {name: a, filter: 'x', to: out}\n"))
    mixed = load_config(
        write_config(
            tmp_path,
            HEAD
            + "  - {name: a, filter: 'x', to: out}\n  - {name: b, pattern: {x: [1]}, to: out}\n",
            "mixed.yaml",
        )
    )

    def plan_name(config: Any) -> str:
        router = Router(config, {"out": None}, None, RunStats())  # type: ignore[dict-item, arg-type]
        return str(router.default_plan.__name__)

    assert plan_name(plain) != "plan_with_patterns"
    assert plan_name(mixed) == "plan_with_patterns"


# --- explain, test, graph --------------------------------------------------------------------


def test_explain_says_which_field_of_a_pattern_failed(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, RUN_CONFIG))
    verdict = explain.explain_event(
        config, {"detail-type": "OrderPlaced", "detail": {"amount": 50}}, routes=["big-orders"]
    )
    (route,) = verdict.routes
    assert route.status == explain.NO_MATCH
    assert route.pattern is not None
    checks = [(c.path, c.matched, c.actual, c.expected) for c in route.pattern.checks]
    assert checks == [
        (("detail-type",), True, "OrderPlaced", ["OrderPlaced"]),
        (("detail", "amount"), False, 50, [{"numeric": [">", 100]}]),
    ]
    described = explain.route_json(route)
    assert described["filter"] is None
    assert described["pattern"]["checks"][1] == {
        "path": ["detail", "amount"],
        "matched": False,
        "present": True,
        "actual": 50,
        "expected": [{"numeric": [">", 100]}],
    }


@pytest.mark.usefixtures("fixed_terminal")
def test_explain_shows_a_missing_field_as_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, RUN_CONFIG)
    events = tmp_path / "events.jsonl"
    events.write_text('{"detail-type": "OrderPlaced"}\n')
    assert program(["explain", str(config), str(events), "--route", "big-orders"]) == 0
    out, _ = capsys.readouterr()
    assert 'detail-type  matched: "OrderPlaced", wanted ["OrderPlaced"]' in out
    assert 'detail.amount  failed: missing, wanted [{"numeric":[">",100]}]' in out
    assert program(["explain", str(config), str(events), "--format", "json"]) == 0
    item = json.loads(capsys.readouterr().out)
    check = item["routes"][0]["pattern"]["checks"][1]
    assert (check["present"], check["actual"], check["matched"]) == (False, None, False)


@pytest.mark.usefixtures("fixed_terminal")
def test_evroute_test_runs_cases_on_pattern_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        RUN_CONFIG
        + """\
tests:
  - name: a big order
    event: {"id": "e-1", "detail-type": "OrderPlaced", "detail": {"amount": 250}}
    routes: [big-orders, slim-orders]
    outputs: {slim: [{"id": "e-1", "amount": 250}]}
  - name: a failure by status
    event: {"detail-type": "Ping", "detail": {"status": "Error"}}
    routes: [failures]
  - name: wrongly expects a big order
    event: {"detail-type": "OrderPlaced", "detail": {"amount": 100}}
    routes: [big-orders, slim-orders]
""",
    )
    monkeypatch.chdir(tmp_path)  # the report names the config as given: keep it short
    assert program(["test", config.name]) == 1
    out, _ = capsys.readouterr()
    assert "2 passed" in out and "1 failed" in out
    assert "missing: big-orders" in out
    assert 'detail.amount  failed: 100, wanted [{"numeric":[">",100]}]' in out


def test_graph_shows_a_route_s_pattern(tmp_path: Path) -> None:
    graph = topology(load_config(write_config(tmp_path, RUN_CONFIG)))
    route = graph.routes[0]
    assert route.filter is None
    assert (
        route.pattern
        == '{"detail-type":["OrderPlaced"],"detail":{"amount":[{"numeric":[">",100]}]}}'
    )
    assert "pattern: {#quot;detail-type#quot;:[#quot;OrderPlaced#quot;]" in to_mermaid(graph)
    assert 'pattern: {\\"detail-type\\":[\\"OrderPlaced\\"]' in to_dot(graph)
    assert graph.routes[4].filter == "detail.amount > `1000`" and graph.routes[4].pattern is None


def test_graph_cuts_a_long_pattern(tmp_path: Path) -> None:
    values = ", ".join(f"source-{n}" for n in range(100))
    config = load_config(
        write_config(
            tmp_path, HEAD + f"  - {{name: a, pattern: {{source: [{values}]}}, to: out}}\n"
        )
    )
    (route,) = topology(config).routes
    assert route.pattern is not None
    assert len(route.pattern) == 120 and route.pattern.endswith("…")


# --- the README ------------------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_operator_rows() -> list[tuple[str, str, str, str]]:
    section = README.read_text().split("## Event patterns (EventBridge)", 1)[1]
    table = section.split("| operator | pattern | matches | does not match |", 1)[1]
    rows = []
    for line in table.strip().splitlines()[1:]:
        if not line.startswith("|"):
            break
        name, pattern, match, other = (cell.strip().strip("`") for cell in line[1:-1].split("|"))
        rows.append((name, pattern, match, other))
    return rows


def test_the_readme_shows_every_operator() -> None:
    text = " ".join(row[1] for row in readme_operator_rows())
    for operator in (*sorted(OPERATORS), "$or"):
        assert f'"{operator}"' in text, operator


@pytest.mark.parametrize("row", readme_operator_rows(), ids=lambda row: row[0])
def test_each_readme_example_matches_as_it_says(row: tuple[str, str, str, str]) -> None:
    _, pattern, match, other = row
    compiled = patterns.compile(json.loads(pattern))
    assert compiled.matches(json.loads(match))
    assert not compiled.matches(json.loads(other))


def test_the_readme_pattern_example_validates(tmp_path: Path) -> None:
    section = README.read_text().split("## Event patterns (EventBridge)", 1)[1]
    routes = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    text = "version: 1\nconsumers:\n  orders: {file: o.jsonl}\n  audit: {file: a.jsonl}\n" + routes
    config = load_config(write_config(tmp_path, text))
    assert [route.pattern is not None for route in config.routes] == [True, True]


def test_explain_writes_a_key_that_is_not_plain_as_a_json_string() -> None:
    from evroute.ui.render import pattern_path

    assert pattern_path(("detail-type",)) == "detail-type"
    assert pattern_path(("detail", "a.b", "", "c d")) == 'detail."a.b".""."c d"'


def test_validate_events_matches_pattern_routes_by_their_patterns(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        with_routes(
            """
              - name: orders
                pattern: {source: [shop.orders], detail: {amount: [{numeric: [">", 100]}]}}
                to: out
              - name: never
                pattern: {source: [nothing]}
                to: out
            """
        ),
    )
    events = tmp_path / "events.jsonl"
    events.write_text('{"source": "shop.orders", "detail": {"amount": 150}}\n')
    result = run_evroute(["validate", str(config), "--events", str(events)], tmp_path)
    stderr, stdout = result.stderr.decode(), result.stdout.decode()
    assert "no sample event in" in stdout + stderr
    assert "route 'never'" in stdout + stderr
    assert "route 'orders'" not in stdout + stderr
