"""The pattern index benchmark: 1 pattern route against 1,000.

    .venv/bin/python tests/bench/bench_patterns.py [--events N]

N W1 events (default 100,000; from bench_throughput.make_events) are parsed once, then
pushed through PatternSet.matching with one route (the big orders of W1, as a pattern),
and with 1,000 routes: that one plus 999 each on its own source/detail-type pair. Then
the same two configs route the events end to end with `evroute run` (to one file; the
fastest of three runs each). It prints events/s for each and the ratios; the target is
at least 0.5. Not part of the default test run: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from bench_throughput import make_events, run_measured

from evroute import patterns
from evroute.patterns import PatternSet

BIG_ORDERS = {
    "source": ["shop.orders"],
    "detail-type": ["OrderPlaced"],
    "detail": {"amount": [{"numeric": [">", 100]}]},
}
TARGET_RATIO = 0.5


def other_route(k: int) -> dict[str, Any]:
    """A route on its own source/detail-type pair, which W1 events never have."""
    return {
        "source": [f"shop.service-{k % 25}"],
        "detail-type": [f"Type-{k:04d}"],
        "detail": {"amount": [{"numeric": [">", k % 400]}]},
    }


def events_per_second(pattern_set: PatternSet, events: list[dict[str, Any]]) -> tuple[float, int]:
    """The best of three passes, and the number of matches in one."""
    best = float("inf")
    matches = 0
    for _ in range(3):
        matches = 0
        start = time.perf_counter()
        for event in events:
            matches += len(pattern_set.matching(event))
        best = min(best, time.perf_counter() - start)
    return len(events) / best, matches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()

    events = [orjson.loads(line) for line in make_events(args.events)]
    one = PatternSet([(0, patterns.compile(BIG_ORDERS))])
    many = PatternSet(
        [(0, patterns.compile(BIG_ORDERS))]
        + [(k, patterns.compile(other_route(k))) for k in range(1, 1000)]
    )
    one_rate, one_matches = events_per_second(one, events)
    many_rate, many_matches = events_per_second(many, events)
    assert one_matches == many_matches, "the same routes must match"
    ratio = many_rate / one_rate
    print(f"events: {len(events):,}, matches: {one_matches:,}")
    print(f"1 pattern route:      {one_rate:12,.0f} events/s")
    print(f"1,000 pattern routes: {many_rate:12,.0f} events/s")
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"ratio: {ratio:.2f} (target >= {TARGET_RATIO}): {verdict}")
    run_end_to_end(args.events)


def config_text(routes: list[dict[str, Any]]) -> str:
    lines = ["version: 1", "consumers:", "  out: {file: out.jsonl, mode: overwrite}", "routes:"]
    for k, pattern in enumerate(routes):
        lines.append(f"  - {{name: r{k:04d}, pattern: {json.dumps(json.dumps(pattern))}, to: out}}")
    return "\n".join(lines) + "\n"


def run_end_to_end(count: int) -> None:
    """`evroute run` with 1 and with 1,000 pattern routes, over the same events."""
    with tempfile.TemporaryDirectory(prefix="evroute-patterns-") as name:
        folder = Path(name)
        events = folder / "events.jsonl"
        with events.open("wb") as stream:
            stream.writelines(make_events(count))
        seconds = {}
        for label, routes in (
            ("1 pattern route", [BIG_ORDERS]),
            ("1,000 pattern routes", [BIG_ORDERS] + [other_route(k) for k in range(1, 1000)]),
        ):
            config = folder / "routes.yaml"
            config.write_text(config_text(routes))
            args = [sys.executable, "-m", "evroute", "run", str(config), str(events)]
            runs = [run_measured([*args, "--stats", "off"], 600) for _ in range(3)]
            seconds[label] = min(run.seconds for run in runs)
            print(f"evroute run, {label + ':':<22} {count / seconds[label]:10,.0f} events/s")
        ratio = seconds["1 pattern route"] / seconds["1,000 pattern routes"]
        verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(f"evroute run ratio: {ratio:.2f} (target >= {TARGET_RATIO}): {verdict}")


if __name__ == "__main__":
    main()
