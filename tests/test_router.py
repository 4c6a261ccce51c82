"""The router against the jmespath library as an oracle, on generated events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jmespath
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from evroute import expr
from evroute.config.model import Config, ConsumerConfig, QueueSettings, RouteConfig
from evroute.core.lines import LineBatch
from evroute.core.stats import ConsumerStats, RunStats
from evroute.engine.queues import ConsumerQueue
from evroute.engine.router import INDEX_MIN_ROUTES, Router
from evroute.storage.dead_letters import DeadLetters

FILTERS = [
    "a > `2`",
    "b == 'x'",
    "contains(tags, 'x')",
    "a",
    "!c",
    "length(tags) > `1` && a != `0`",
    "tags[?@ == 'y'] | length(@) == `1`",
    "c || b == 'y'",
    # equalities the router indexes routes by
    "b == 'x' && a > `1`",
    "'y' == b",
    "b == 'x'",
    "d.e == 'x' && b == 'y'",
]
TRANSFORM = "{a: a, n: length(tags || `[]`), first: tags[0]}"

events = st.fixed_dictionaries(
    {},
    optional={
        "a": st.integers(-3, 5),
        "b": st.sampled_from(["x", "y", ""]),
        "c": st.one_of(st.booleans(), st.none(), st.just(0), st.just([])),
        "tags": st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
        "d": st.fixed_dictionaries({}, optional={"e": st.sampled_from(["x", "y", 1])}),
    },
)


def truthy(value: Any) -> bool:
    return not (value is None or value is False or value in ("", [], {}))


def matches(source: str, event: dict[str, Any]) -> bool:
    """The oracle: a filter that raises does not match (it is a filter_error)."""
    try:
        return truthy(jmespath.search(source, event))
    except jmespath.exceptions.JMESPathError:
        return False


@settings(max_examples=150, deadline=None)
@given(
    batch=st.lists(events, max_size=20),
    filters=st.lists(st.sampled_from(FILTERS), min_size=1, max_size=5),
    transformed=st.booleans(),
    index_min_routes=st.sampled_from([1, INDEX_MIN_ROUTES]),
)
def test_each_consumer_gets_what_jmespath_says_in_order(
    batch: list[dict[str, Any]], filters: list[str], transformed: bool, index_min_routes: int
) -> None:
    routes = [
        RouteConfig(
            name=f"r{i}",
            to=("out",),
            filter=expr.compile(source),
            transform=expr.compile(TRANSFORM) if transformed else None,
        )
        for i, source in enumerate(filters)
    ]
    config = Config(
        path=Path("routes.yaml"),
        base_dir=Path("."),
        consumers={"out": ConsumerConfig("out", "file", None, QueueSettings())},
        routes=routes,
    )
    stats = RunStats()
    consumer_stats = ConsumerStats()
    queue = ConsumerQueue(QueueSettings(buffer=10_000), consumer_stats, lambda *args: None)
    router = Router(config, {"out": queue}, DeadLetters(None), stats, index_min_routes)
    lines = [orjson.dumps(event) for event in batch]
    router.route("in", LineBatch(1, list(lines), long_digits=True))

    expected: list[Any] = []
    for line, event in zip(lines, batch, strict=True):
        for source in filters:
            if matches(source, event):
                expected.append(jmespath.search(TRANSFORM, event) if transformed else line)
    got = [payload for parcel in queue.take_all() for payload in parcel.payloads]
    if transformed:
        assert [json.loads(payload) for payload in got] == expected
    else:
        assert got == expected
    assert consumer_stats.enqueued == len(expected)
    assert stats.unmatched == sum(
        1 for event in batch if not any(matches(f, event) for f in filters)
    )
    errors = sum(route.errors for route in stats.routes.values())
    assert errors == sum(
        1 for event in batch for f in filters if not matches(f, event) and not _evaluates(f, event)
    )


def _evaluates(source: str, event: dict[str, Any]) -> bool:
    try:
        jmespath.search(source, event)
    except jmespath.exceptions.JMESPathError:
        return False
    return True
