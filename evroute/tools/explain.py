"""`evroute explain`: why each event goes (or does not go) where it goes.

For every event and every route: whether the filter matched, the value of each part of
the filter (expr.Expression.explain) or each field check of its event pattern
(patterns.Pattern.explain), the transform's output, and the consumers reached;
then what happens to the event overall, unmatched handling included. Lines that hold no
event are reported with their line number, and reading goes on. Decisions use the same
calls as the router (`Expression.test`, `Pattern.matches`, `encode_output`), so an
explanation says what `run` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from evroute.config.model import UNMATCHED_DEAD_LETTER, UNMATCHED_DROP, Config, RouteConfig
from evroute.core.json_codec import Malformed, parse_event
from evroute.core.lines import LineBatch
from evroute.expr import Explanation, ExpressionError
from evroute.shaping.matching import encode_output, pattern_failure
from evroute.sources import OversizeLine, Source, open_sources

if TYPE_CHECKING:
    from evroute.patterns import FieldCheck

MATCHED = "matched"
NO_MATCH = "no_match"
FILTER_ERROR = "filter_error"


@dataclass
class RouteVerdict:
    """One route's decision for one event."""

    route: str
    status: str  # MATCHED, NO_MATCH or FILTER_ERROR
    filter: Explanation | None  # None: the route has no filter and matches everything
    transform: str | None = None  # the transform's source, when the route has one
    output: Any = None  # the transform's result, when `transformed`
    transformed: bool = False
    error: str | None = None  # why the filter or transform failed
    error_in: str | None = None  # "filter", "pattern" or "transform"
    consumers: tuple[str, ...] = ()  # the consumers it reaches: none unless it matched
    pattern: PatternVerdict | None = None  # for a route with an event pattern


@dataclass
class PatternVerdict:
    """A route's event pattern and how each field it tests fared for one event."""

    source: Any  # the pattern, as a JSON value
    checks: list[FieldCheck]


@dataclass
class EventVerdict:
    """What routing one event decides."""

    input: str
    line: int
    routes: list[RouteVerdict]  # the routes asked for, in config order
    consumers: dict[str, int] = field(default_factory=dict)  # consumer: deliveries
    unmatched: str | None = None  # no route matched: config.unmatched, else None


@dataclass
class MalformedLine:
    """A line that holds no event, and why."""

    input: str
    line: int
    detail: str


Explained = EventVerdict | MalformedLine


def explain_route(route: RouteConfig, event: dict[str, Any]) -> RouteVerdict:
    """The verdict of one route on one event."""
    verdict = RouteVerdict(route.name, NO_MATCH, None)
    if route.transform is not None:
        verdict.transform = route.transform.source
    if route.pattern is not None:
        try:
            verdict.pattern = PatternVerdict(route.pattern.source, route.pattern.explain(event))
            matched = route.pattern.matches(event)
        except Exception as error:  # as the router: a filter_error of the route
            verdict.pattern = PatternVerdict(route.pattern.source, [])
            verdict.status, verdict.error, verdict.error_in = (
                FILTER_ERROR,
                pattern_failure(error),
                "pattern",
            )
            return verdict
        if not matched:
            return verdict
    if route.filter is not None:
        verdict.filter = route.filter.explain(event)
        try:
            matched = route.filter.test(event)
        except ExpressionError as error:
            verdict.status, verdict.error, verdict.error_in = FILTER_ERROR, str(error), "filter"
            return verdict
        if not matched:
            return verdict
    if route.transform is not None:
        try:
            output = route.transform.search(event)
            encode_output(output)  # what delivery does: a value it cannot write is an error
        except ExpressionError as error:
            verdict.status, verdict.error, verdict.error_in = (
                FILTER_ERROR,
                str(error),
                "transform",
            )
            return verdict
        verdict.output, verdict.transformed = output, True
    verdict.status = MATCHED
    verdict.consumers = route.to
    return verdict


def explain_event(
    config: Config,
    event: dict[str, Any],
    input_name: str = "-",
    line: int = 1,
    routes: Iterable[str] | None = None,
) -> EventVerdict:
    """Every route's verdict on `event`, and where it goes overall.

    `routes` limits the routes listed; where the event goes is decided by all of them.
    """
    shown = None if routes is None else set(routes)
    verdicts = [explain_route(route, event) for route in config.routes]
    consumers: dict[str, int] = {}
    for verdict in verdicts:
        for name in verdict.consumers:
            consumers[name] = consumers.get(name, 0) + 1
    unmatched = None
    if not any(verdict.status == MATCHED for verdict in verdicts):
        unmatched = config.unmatched
        if unmatched not in (UNMATCHED_DROP, UNMATCHED_DEAD_LETTER):
            consumers[unmatched] = 1
    listed = [v for v in verdicts if shown is None or v.route in shown]
    return EventVerdict(input_name, line, listed, consumers, unmatched)


def explain_input(
    config: Config, name: str = "-", routes: Iterable[str] | None = None
) -> Iterator[Explained]:
    """An explanation for each line of the input named (`-` is stdin; `.gz` too).

    InputError, before anything is read, when it cannot be opened.
    """
    (source,) = open_sources([name])
    return explain_lines(config, source, routes)


def explain_lines(
    config: Config,
    source: Source,
    routes: Iterable[str] | None = None,
) -> Iterator[Explained]:
    """An explanation for each line of `source` that is not blank, as it is read."""
    splitter = source.line_splitter(config.max_event_bytes)
    shown = None if routes is None else list(routes)
    try:
        for chunk in source.chunks(None):
            yield from _explain_batch(config, source.name, splitter.feed(chunk), shown)
        yield from _explain_batch(config, source.name, splitter.finish(), shown)
    finally:
        source.close()


def _explain_batch(
    config: Config, input_name: str, batch: LineBatch, routes: list[str] | None
) -> Iterator[Explained]:
    for number, line in batch.numbered():
        if isinstance(line, OversizeLine):
            detail = line.detail or (
                f"line of {line.length} bytes is over max_event_bytes ({config.max_event_bytes})"
            )
            yield MalformedLine(input_name, number, detail)
            continue
        try:
            event = parse_event(line)
        except Malformed as error:
            yield MalformedLine(input_name, number, str(error))
            continue
        yield explain_event(config, event, input_name, number, routes)


# -- JSON ------------------------------------------------------------------------------


def node_json(node: Explanation) -> dict[str, Any]:
    """A part of a filter: its text, kind, values (one per evaluation) and parts."""
    return {
        "expression": node.expression,
        "kind": node.kind,
        "values": node.values,
        "children": [node_json(child) for child in node.children],
    }


def pattern_json(verdict: PatternVerdict) -> dict[str, Any]:
    """A route's pattern (`expression`, as filters and transforms have) and its field
    checks: the path (a list of keys), whether the event's value matched, that value
    (`present` false, and null, when missing) and what the pattern wanted there."""
    return {
        "expression": verdict.source,
        "checks": [
            {
                "path": list(check.path),
                "matched": check.matched,
                "present": check.present,
                "actual": check.actual if check.present else None,
                "expected": check.expected,
            }
            for check in verdict.checks
        ],
    }


def route_json(verdict: RouteVerdict) -> dict[str, Any]:
    error = None
    if verdict.error is not None:
        error = {"in": verdict.error_in, "message": verdict.error}
    transform = None
    if verdict.transform is not None:
        transform = {"expression": verdict.transform, "output": verdict.output}
    return {
        "route": verdict.route,
        "status": verdict.status,
        "filter": None if verdict.filter is None else node_json(verdict.filter),
        "pattern": None if verdict.pattern is None else pattern_json(verdict.pattern),
        "transform": transform,
        "error": error,
        "consumers": list(verdict.consumers),
    }


def as_json(explained: Explained) -> dict[str, Any]:
    """The JSON object `evroute explain --format json` writes for a line (README)."""
    if isinstance(explained, MalformedLine):
        return {
            "input": explained.input,
            "line": explained.line,
            "status": "malformed",
            "detail": explained.detail,
            "routes": [],
            "consumers": {},
            "unmatched": None,
        }
    return {
        "input": explained.input,
        "line": explained.line,
        "status": "unmatched" if explained.unmatched is not None else "matched",
        "detail": None,
        "routes": [route_json(verdict) for verdict in explained.routes],
        "consumers": explained.consumers,
        "unmatched": explained.unmatched,
    }


def dumps(value: Any) -> str:
    """Compact JSON; integers beyond 64 bits, which orjson refuses, stay exact."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate (from a literal such as `"\ud800"`) cannot be written as UTF-8.
    # It can only sit in a string, where its backslash escape is the JSON escape.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
