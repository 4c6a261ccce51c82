"""Rich output compared at a fixed width (trailing spaces aside)."""

from __future__ import annotations

import io
from collections import Counter

from rich.console import Console

from evroute.config.checker import Issue
from evroute.core.stats import ConsumerStats, InputStats, RouteStats, RunStats
from evroute.ui import render

EXPECTED_STATS = """\
1,000 events, 2 malformed lines from 1 input in 2.00 s (500 events/s); 12 unmatched

 route        matched   errors
 ─────────────────────────────
 big-orders       119        0
 vip              161        3


 consumer   state    enqueued   delivered   dropped   dead-lettered
 ──────────────────────────────────────────────────────────────────
 archive    done        1,000       1,000         0               0
 notifier   failed        161         150         5               6

dead letters: 3 filter_error, 2 malformed (written to out/dead.jsonl)
"""


def rendered(draw: object) -> str:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    draw(console)  # type: ignore[operator]
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def test_final_stats_table() -> None:
    stats = RunStats(started=0.0, finished=2.0)
    stats.inputs["orders.jsonl"] = InputStats(events=1000, malformed=2, bytes=370000)
    stats.routes["big-orders"] = RouteStats(matched=119)
    stats.routes["vip"] = RouteStats(matched=161, errors=3)
    stats.unmatched = 12
    stats.consumers["archive"] = ConsumerStats(enqueued=1000, delivered=1000, state="done")
    stats.consumers["notifier"] = ConsumerStats(
        enqueued=161, delivered=150, dropped=5, dead_lettered=6, state="failed"
    )

    def draw(console: Console) -> None:
        render.render_stats(console, stats)
        render.render_dead_letter_summary(
            console, Counter({"malformed": 2, "filter_error": 3}), "out/dead.jsonl"
        )

    assert rendered(draw) == EXPECTED_STATS


def test_issues_are_one_line_each_even_when_long() -> None:
    issue = Issue("a.yaml", 3, 7, "error", "routes[0].filter", "x" * 150)

    def draw(console: Console) -> None:
        render.render_issues(console, [issue])
        render.render_validation_summary(console, "a.yaml", [issue])

    assert rendered(draw) == (
        f"a.yaml:3:7: error: routes[0].filter: {'x' * 150}\na.yaml: invalid (1 error)\n"
    )


EXPECTED_NATS_STATS = """\
2,000 events from 2 inputs in 2.00 s (1,000 events/s); 0 unmatched

 input   events   pulled   acked   redelivered   pending
 ───────────────────────────────────────────────────────
 bus      1,500    1,520   1,480            20        35


 route   matched   errors
 ────────────────────────
 all       2,000        0


 consumer   state     enqueued   delivered   dropped   dead-lettered
 ───────────────────────────────────────────────────────────────────
 archive    running      2,000       1,980         0               0

"""


def test_final_stats_show_the_acks_of_nats_inputs_only() -> None:
    stats = RunStats(started=0.0, finished=2.0)
    stats.inputs["orders.jsonl"] = InputStats(events=500, bytes=1000)
    stats.inputs["bus"] = InputStats(
        events=1500, bytes=9000, pulled=1520, acked=1480, redelivered=20, pending=35
    )
    stats.routes["all"] = RouteStats(matched=2000)
    stats.consumers["archive"] = ConsumerStats(enqueued=2000, delivered=1980, state="running")
    assert rendered(lambda console: render.render_stats(console, stats)) == EXPECTED_NATS_STATS
    bus = stats.as_json()["inputs"]
    assert set(bus["bus"]) >= {"pulled", "acked", "redelivered", "pending"}
    assert "pulled" not in bus["orders.jsonl"]
