"""`evroute test`: the routing tests of a config's `tests:` section.

Each case routes one event with the same decisions `explain` (and so `run`) makes, then
compares the routes that matched with the routes listed, as a set and exactly, and, for
each consumer named in `outputs`, the list of what that consumer would receive, in order,
with the list written. Payloads are compared as JSON values: `true` is not `1`, while
`250` and `250.0` are the same number, as they are in JSON.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evroute.config.model import UNMATCHED_DEAD_LETTER, UNMATCHED_DROP, Config, TestCase
from evroute.core.json_codec import encode, parse_value
from evroute.shaping.fields_gate import apply_policy
from evroute.tools.explain import MATCHED, EventVerdict, explain_event


@dataclass
class OutputDifference:
    """A consumer that would not get exactly what the case says."""

    consumer: str
    expected: list[Any]
    actual: list[Any]


@dataclass
class CaseResult:
    case: TestCase
    expected: tuple[str, ...]  # the routes the case lists, in config order
    matched: tuple[str, ...]  # the routes the event matched, in config order
    missing: tuple[str, ...]  # listed, but not matched
    unexpected: tuple[str, ...]  # matched, but not listed
    outputs: list[OutputDifference] = field(default_factory=list)
    involved: tuple[str, ...] = ()  # the routes a failure's explanation shows
    verdict: EventVerdict | None = None  # the explanation of the event, for failures

    @property
    def passed(self) -> bool:
        return not (self.missing or self.unexpected or self.outputs)


@dataclass
class SuiteResult:
    config: Path
    cases: list[CaseResult]

    @property
    def passed(self) -> int:
        return sum(1 for case in self.cases if case.passed)

    @property
    def failed(self) -> int:
        return len(self.cases) - self.passed


def deliveries(
    config: Config, verdict: EventVerdict, event: dict[str, Any]
) -> dict[str, list[Any]]:
    """What each consumer would receive for `event`, in order, as JSON values.

    `verdict` must list every route. An event goes to a consumer once for each matching
    route that lists it, in config order, as the route's transform output or as the event
    itself; an event no route matches goes to the `unmatched` consumer, if there is one.
    A consumer with a `fields:` policy gets what the policy lets it see, and nothing for a
    payload that is not an object (the router denies it).
    """
    received: dict[str, list[Any]] = {}

    def deliver(consumer: str, payload: Any) -> None:
        policy = config.consumers[consumer].fields
        if policy is not None:
            if not isinstance(payload, dict):
                return
            payload = apply_policy(policy, payload)
        received.setdefault(consumer, []).append(payload)

    for route in verdict.routes:
        if route.status != MATCHED:
            continue
        # through the bytes the router writes, so a value is compared as delivered
        payload = parse_value(encode(route.output)) if route.transformed else event
        for consumer in route.consumers:
            deliver(consumer, payload)
    if verdict.unmatched not in (None, UNMATCHED_DROP, UNMATCHED_DEAD_LETTER):
        deliver(str(verdict.unmatched), event)
    return received


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON values: Python's `True == 1` and `1 == 1.0` mean nothing here but
    the latter, which JSON agrees with (one number type)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(json_equal, a, b))
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and bool(a == b)


def run_case(config: Config, case: TestCase) -> CaseResult:
    """One case's outcome; on failure, with the explanation of the routes involved."""
    verdict = explain_event(config, case.event, str(config.path), case.line)
    order = [route.name for route in config.routes]
    matched = tuple(v.route for v in verdict.routes if v.status == MATCHED)
    missing = tuple(name for name in order if name in case.routes and name not in matched)
    unexpected = tuple(name for name in matched if name not in case.routes)
    expected = tuple(name for name in order if name in case.routes)
    result = CaseResult(case, expected, matched, missing, unexpected)
    if case.outputs is not None:
        received = deliveries(config, verdict, case.event)
        for consumer, wanted in case.outputs.items():
            actual = received.get(consumer, [])
            if not json_equal(wanted, actual):
                result.outputs.append(OutputDifference(consumer, wanted, actual))
    if result.passed:
        return result
    involved = set(missing) | set(unexpected)
    differing = {difference.consumer for difference in result.outputs}
    involved |= {route.name for route in config.routes if differing & set(route.to)}
    # a consumer fed by no route (the unmatched one): every route explains why
    result.involved = tuple(name for name in order if name in involved) or tuple(order)
    result.verdict = explain_event(config, case.event, str(config.path), case.line, result.involved)
    return result


def run_tests(config: Config, name: Path | None = None) -> SuiteResult:
    """Every case of the config's `tests:` section, in order; `name`: the config's path
    as the user wrote it, for the report."""
    cases = [run_case(config, case) for case in config.tests]
    return SuiteResult(config.path if name is None else name, cases)


def junit_xml(result: SuiteResult, details: Callable[[CaseResult], str]) -> ET.ElementTree:
    """The suite as JUnit XML, which CI systems read: one testcase per case, a failure
    element with `details(case)`, the explanation in text, for each that failed."""
    name = str(result.config)
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(result.cases)),
        failures=str(result.failed),
        errors="0",
        skipped="0",
    )
    for case in result.cases:
        element = ET.SubElement(suite, "testcase", classname=name, name=case.case.name)
        if case.passed:
            continue
        failure = ET.SubElement(
            element, "failure", message=summary(case), type="RoutingTestFailure"
        )
        failure.text = details(case)
    suites = ET.Element("testsuites", tests=suite.get("tests", "0"), failures=str(result.failed))
    suites.append(suite)
    ET.indent(suites)
    return ET.ElementTree(suites)


def summary(case: CaseResult) -> str:
    """One line on what failed, for a report's headline and JUnit's failure message."""
    parts = []
    if case.missing:
        parts.append("missing routes: " + ", ".join(case.missing))
    if case.unexpected:
        parts.append("unexpected routes: " + ", ".join(case.unexpected))
    if case.outputs:
        parts.append("outputs differ: " + ", ".join(d.consumer for d in case.outputs))
    return "; ".join(parts)


def write_junit(result: SuiteResult, path: Path, details: Callable[[CaseResult], str]) -> None:
    """Write the JUnit XML; OSError when the file cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)  # reports/routing.xml in a fresh checkout
    junit_xml(result, details).write(path, encoding="utf-8", xml_declaration=True)
