"""`evroute test` and the config's `tests:` section: the checker reads and locates them,
the library decides as `explain` does, the report is golden at 100 columns, JUnit parses."""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml
from configs import MINIMAL
from runs import without_trailing_spaces, write_config

from evroute.cli import program
from evroute.config.yaml_loader import CoreSchemaLoader
from evroute.loading import check_config, load_config
from evroute.loading.schema import config_schema
from evroute.tools.routing_tests import json_equal, run_tests

pytestmark = pytest.mark.usefixtures("fixed_terminal")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "routes.yaml"

SHOP = """\
version: 1
consumers:
  archive: {file: out/all.jsonl}
  notifier: {command: [python3, notify.py]}
routes:
  - name: big-orders
    filter: "\\"detail-type\\" == 'OrderPlaced' && detail.amount > `100`"
    transform: "{amount: detail.amount}"
    to: notifier
  - name: everything
    to: archive
"""

FAILING = (
    SHOP
    + """\
tests:
  - name: a big order is announced
    event: {"detail-type": "OrderPlaced", "detail": {"amount": 250}}
    routes: [big-orders, everything]
    outputs: {notifier: [{"amount": 250}]}
  - name: an order of exactly 100 is announced
    event: {"detail-type": "OrderPlaced", "detail": {"amount": 100}}
    routes: [big-orders, everything]
    outputs: {notifier: [{"amount": 100}]}
  - name: a shipment is not archived
    event: {"detail-type": "OrderShipped", "detail": {"amount": 300}}
    routes: []
    outputs: {archive: [], notifier: []}
"""
)

FAILING_REPORT = """\
✓ a big order is announced
✗ an order of exactly 100 is announced  (line 17)
    routes expected: big-orders, everything
    routes matched:  everything
      missing: big-orders
    output to notifier: expected 1 delivery, got 0 deliveries
      expected #1: {"amount":100}
    explanation:
    an order of exactly 100 is announced
    ├── big-orders  no match
    │   └── filter "detail-type" == 'OrderPlaced' && detail.amount > `100`  false
    │       ├── "detail-type" == 'OrderPlaced'  "OrderPlaced" == "OrderPlaced" -> true
    │       └── detail.amount > `100`  100 > 100 -> false
    └── -> consumers: archive
✗ a shipment is not archived  (line 21)
    routes expected: none
    routes matched:  everything
      unexpected: everything
    output to archive: expected 0 deliveries, got 1 delivery
      got #1: {"detail-type":"OrderShipped","detail":{"amount":300}}
    explanation:
    a shipment is not archived
    ├── everything  MATCHED -> archive  (no filter: matches every event)
    └── -> consumers: archive

routes.yaml: 1 passed, 2 failed
"""

SAMPLES_REPORT = """\
✓ a big order reaches finance, trimmed to the fields it reports on
✓ a gold customer's small order gets a personal message
✓ a declined card goes to the payments team
✓ a shipped order is only archived

routes.yaml: 4 passed, 0 failed
"""


def run_test_command(
    capsys: pytest.CaptureFixture[str], directory: Path, *args: str
) -> tuple[int, str, str]:
    code = program(["test", *args])
    out, err = capsys.readouterr()
    return code, without_trailing_spaces(out), err


# --- the command ---------------------------------------------------------------------------


def test_the_samples_pass(capsys, monkeypatch):
    monkeypatch.chdir(SAMPLES.parent)
    code, out, err = run_test_command(capsys, SAMPLES.parent, "routes.yaml")
    assert (code, out, err) == (0, SAMPLES_REPORT, "")


def test_failures_are_explained(tmp_path, capsys, monkeypatch):
    write_config(tmp_path, FAILING)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_test_command(capsys, tmp_path, "routes.yaml")
    assert code == 1
    assert err == ""
    assert out == FAILING_REPORT


def test_junit_has_a_testcase_per_test_and_the_failures(tmp_path, capsys, monkeypatch):
    write_config(tmp_path, FAILING)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    code, _, err = run_test_command(capsys, tmp_path, "routes.yaml", "--junit", "out/junit.xml")
    assert (code, err) == (1, "")
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    (suite,) = root.iter("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [
        "a big order is announced",
        "an order of exactly 100 is announced",
        "a shipment is not archived",
    ]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "missing routes: big-orders; outputs differ: notifier"
    assert failure.text is not None
    assert "detail.amount > `100`  100 > 100 -> false" in failure.text
    assert cases[2].find("failure").get("message") == (  # type: ignore[union-attr]
        "unexpected routes: everything; outputs differ: archive"
    )


def test_junit_of_a_passing_suite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(SAMPLES.parent)
    junit = tmp_path / "junit.xml"
    code, _, _ = run_test_command(capsys, SAMPLES.parent, "routes.yaml", "--junit", str(junit))
    assert code == 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("4", "0")
    assert not list(suite.iter("failure"))


def test_an_unwritable_junit_path_is_an_error(tmp_path, capsys):
    path = write_config(tmp_path, FAILING)
    code, _, err = run_test_command(capsys, tmp_path, str(path), "--junit", str(tmp_path))
    assert code == 1  # a folder
    assert "cannot write --junit" in err
    assert "Traceback" not in err


def test_the_junit_folder_is_made(tmp_path, capsys):
    path = write_config(tmp_path, FAILING)
    report = tmp_path / "reports" / "ci" / "routing.xml"
    code, _, _ = run_test_command(capsys, tmp_path, str(path), "--junit", str(report))
    assert code == 1  # the suite fails, the report is written all the same
    assert ET.parse(report).getroot().find("testsuite") is not None


@pytest.mark.parametrize("tests", ["", "tests: []\n", "tests:\n"])
def test_a_config_without_tests_fails(tmp_path, capsys, tests):
    path = write_config(tmp_path, SHOP + tests)
    code, out, err = run_test_command(capsys, tmp_path, str(path))
    assert (code, out) == (1, "")
    assert "no tests in" in err and "add a tests: section" in err


def test_an_invalid_config_gets_validates_errors(tmp_path, capsys):
    path = write_config(tmp_path, FAILING.replace("routes: []", "routes: [everthing]"))
    code, out, err = run_test_command(capsys, tmp_path, str(path))
    assert (code, out) == (1, "")
    assert f"{path}:23:14: error: tests[2].routes[0]: no route is named 'everthing'" in err
    assert "did you mean 'everything'?" in err


def test_a_missing_config_is_a_usage_error(capsys):
    assert program(["test"]) == 2


# --- the library: what a consumer gets ------------------------------------------------------


def outcome(tmp_path: Path, config: str, case: str) -> tuple[bool, str]:
    """Whether the one case passes, and the summary of what failed."""
    from evroute.tools.routing_tests import summary

    result = run_tests(load_config(write_config(tmp_path, config + "tests:\n" + case)))
    (only,) = result.cases
    return only.passed, summary(only)


def case(event: str, routes: str, outputs: str | None = None) -> str:
    text = f"  - name: t\n    event: {event}\n    routes: {routes}\n"
    return text + (f"    outputs: {outputs}\n" if outputs else "")


BIG = '{"detail-type": "OrderPlaced", "detail": {"amount": 250}}'


def test_routes_are_compared_as_a_set(tmp_path):
    assert outcome(tmp_path, SHOP, case(BIG, "[everything, big-orders]")) == (True, "")
    assert outcome(tmp_path, SHOP, case(BIG, "[everything]")) == (
        False,
        "unexpected routes: big-orders",
    )


def test_outputs_are_transformed_and_compared_as_json_values(tmp_path):
    routes = "[big-orders, everything]"
    assert outcome(tmp_path, SHOP, case(BIG, routes, '{notifier: [{"amount": 250.0}]}'))[0]
    assert not outcome(tmp_path, SHOP, case(BIG, routes, '{notifier: [{"amount": "250"}]}'))[0]
    # the untransformed event, as it is
    assert outcome(tmp_path, SHOP, case(BIG, routes, f"{{archive: [{BIG}]}}"))[0]


def test_a_consumer_gets_an_event_once_per_route_in_config_order(tmp_path):
    config = SHOP + "  - name: again\n    transform: \"'second'\"\n    to: notifier\n"
    event = '{"detail-type": "OrderPlaced", "detail": {"amount": 200}}'
    routes = "[big-orders, everything, again]"
    right = '{notifier: [{"amount": 200}, "second"]}'
    wrong_order = '{notifier: ["second", {"amount": 200}]}'
    assert outcome(tmp_path, config, case(event, routes, right)) == (True, "")
    assert outcome(tmp_path, config, case(event, routes, wrong_order)) == (
        False,
        "outputs differ: notifier",
    )


def test_the_unmatched_consumer_gets_what_no_route_matches(tmp_path):
    config = SHOP.replace("routes:\n", "unmatched: archive\nroutes:\n").replace(
        "  - name: everything\n    to: archive\n", ""
    )
    small = '{"detail-type": "OrderPlaced", "detail": {"amount": 5}}'
    assert outcome(tmp_path, config, case(small, "[]", f"{{archive: [{small}]}}")) == (True, "")
    assert not outcome(tmp_path, config, case(small, "[]", "{archive: []}"))[0]


def test_a_filter_error_is_no_match(tmp_path):
    config = SHOP.replace("detail.amount > `100`", "length(detail.amount) > `1`")
    assert outcome(tmp_path, config, case(BIG, "[everything]", "{notifier: []}")) == (True, "")


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (0, False, False),
        (None, False, False),
        ({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [2, 1], False),
        ("1", 1, False),
    ],
)
def test_json_equal(a, b, equal):
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


# --- the checker and the schema ------------------------------------------------------------


def test_the_tests_are_read_into_the_config(tmp_path):
    config = load_config(write_config(tmp_path, FAILING))
    first = config.tests[0]
    assert first.name == "a big order is announced"
    assert first.event == {"detail-type": "OrderPlaced", "detail": {"amount": 250}}
    assert first.routes == frozenset({"big-orders", "everything"})
    assert first.outputs == {"notifier": [{"amount": 250}]}
    assert (first.line, first.column) == (13, 5)
    assert config.tests[2].routes == frozenset()


INVALID_TESTS = """\
tests:
  - name: one
    event: [1]
    routes: [everthing]
    outputs: {archiv: []}
    colour: red
  - name: one
    routes: everything
    event: {a: .nan}
    outputs: [1]
  - event: {a: 1}
    outputs: {archive: {a: 1}}
  - 5
"""


def test_every_mistake_in_the_tests_is_located(tmp_path):
    _, issues = check_config(write_config(tmp_path, MINIMAL + INVALID_TESTS))
    found = [
        (issue.line, issue.column, issue.path, issue.message)
        for issue in issues
        if issue.severity == "error"
    ]
    assert found == [
        (10, 12, "tests[0].event", "expected an event (a JSON object), got a list"),
        (11, 14, "tests[0].routes[0]", "no route is named 'everthing'; did you mean 'everything'?"),
        (
            12,
            15,
            "tests[0].outputs.archiv",
            "no consumer is named 'archiv'; did you mean 'archive'?",
        ),
        (
            13,
            5,
            "tests[0].colour",
            "unknown key 'colour'; expected one of: name, event, routes, outputs",
        ),
        (14, 11, "tests[1].name", "duplicate test name 'one' (first at line 9)"),
        (15, 13, "tests[1].routes", "expected a list of route names, got string 'everything'"),
        (16, 16, "tests[1].event.a", ".nan is not a JSON number"),
        (
            17,
            14,
            "tests[1].outputs",
            "expected a mapping of consumer names to lists of events, got a list",
        ),
        (18, 5, "tests[2].name", "missing; every test needs a name"),
        (
            18,
            5,
            "tests[2].routes",
            "missing; list exactly the routes the event must match ([] for none)",
        ),
        (
            19,
            24,
            "tests[2].outputs.archive",
            "expected a list of what the consumer gets (one item a delivery), got a mapping",
        ),
        (20, 5, "tests[3]", "expected a mapping, got number 5"),
    ]


def test_validate_reports_the_tests_mistakes(tmp_path, capsys):
    path = write_config(tmp_path, MINIMAL + INVALID_TESTS)
    assert program(["validate", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert f"{path}:11:14: error: tests[0].routes[0]: no route is named 'everthing'" in out


def test_a_route_with_its_own_error_is_still_a_known_name(tmp_path):
    text = MINIMAL.replace("    to: archive", "    filter: 'a =='\n    to: archive")
    _, issues = check_config(
        write_config(tmp_path, text + "tests:\n" + case("{a: 1}", "[everything]"))
    )
    assert [issue.path for issue in issues if issue.severity == "error"] == ["routes[0].filter"]


def test_the_schema_accepts_the_samples_tests_and_refuses_mistakes(tmp_path):
    validator = jsonschema.Draft202012Validator(config_schema())
    samples = yaml.load(SAMPLES.read_text(), Loader=CoreSchemaLoader)
    assert samples["tests"]
    assert list(validator.iter_errors(samples)) == []
    invalid = yaml.load(MINIMAL + INVALID_TESTS, Loader=CoreSchemaLoader)
    errors = {error.json_path for error in validator.iter_errors(invalid)}
    assert {"$.tests[0].event", "$.tests[0]", "$.tests[1].routes", "$.tests[3]"} <= errors


def test_the_readme_config_reference_tests_pass(tmp_path):
    readme = (ROOT / "README.md").read_text()
    reference = next(
        block
        for block in re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
        if "version: 1" in block
    )
    result = run_tests(load_config(write_config(tmp_path, reference)))
    assert len(result.cases) >= 1
    assert result.failed == 0, textwrap.indent(str(result.cases), "  ")


def test_a_transform_with_an_integer_beyond_64_bits_compares_exactly(tmp_path, capsys):
    path = write_config(
        tmp_path,
        """
        version: 1
        consumers: {out: {file: out.jsonl}}
        routes: [{name: all, transform: "{big: big}", to: out}]
        tests:
          - name: big numbers stay exact
            event: {"big": 123456789012345678901234567890}
            routes: [all]
            outputs: {out: [{"big": 123456789012345678901234567890}]}
        """,
    )
    code, out, _ = run_test_command(capsys, tmp_path, str(path))
    assert code == 0, out
