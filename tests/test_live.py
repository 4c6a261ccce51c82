"""The live view (`--stats live`): what it draws, and that a run draws it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from rich.console import Console
from runs import EVROUTE, write_config

from evroute.core.stats import ConsumerStats, InputStats, RouteStats, RunStats
from evroute.loading import load_config
from evroute.ui.live import LiveView, sparkline


def test_sparkline_scales_to_the_largest_value() -> None:
    from collections import deque

    assert sparkline(deque([0.0, 0.0])) == "  "
    assert sparkline(deque([0.0, 50.0, 100.0])) == "▁▅█"


def test_the_view_shows_rates_queues_spill_restarts_and_states(tmp_path: Path) -> None:
    config_path = write_config(
        tmp_path,
        """
        version: 1
        consumers:
          archive: {file: all.jsonl, buffer: 200}
          notifier: {command: [cat]}
        routes:
          - {name: all, to: [archive, notifier]}
        """,
    )
    config = load_config(config_path)
    stats = RunStats()
    stats.input("in.jsonl").events = 0
    stats.routes["all"] = RouteStats()
    archive = stats.consumers["archive"] = ConsumerStats(state="running")
    notifier = stats.consumers["notifier"] = ConsumerStats(state="restarting", restarts=2)
    view = LiveView(config)
    view.sample(stats)
    view._last_time -= 1.0  # type: ignore[operator]  # one second later:
    stats.input("in.jsonl").events = 1000
    stats.routes["all"].matched = 1000
    archive.queued, archive.spill_bytes, archive.delivered = 50, 3 << 20, 950
    notifier.dead_lettered = 7
    view.sample(stats)
    console = Console(width=100, record=True, color_system=None)
    console.print(view.render(stats))
    text = console.export_text()
    lines = [line.rstrip() for line in text.splitlines()]
    assert any(line.startswith("1,000 events in") and "now 1,000/s" in line for line in lines)
    route = next(line for line in lines if line.lstrip().startswith("all"))
    assert route.split()[:2] == ["all", "1,000"] and route.split()[-2:] == ["1,000", "0"]
    archive_row = next(line for line in lines if line.lstrip().startswith("archive"))
    assert archive_row.split() == [
        "archive",
        "running",
        "50",
        "(25%)",
        "3.0",
        "MiB",
        "0",
        "950",
        "0",
    ]
    notifier_row = next(line for line in lines if line.lstrip().startswith("notifier"))
    assert notifier_row.split() == ["notifier", "restarting", "0", "(0%)", "2", "0", "7"]


def test_the_view_shows_the_acks_of_a_nats_input(tmp_path: Path) -> None:
    config_path = write_config(
        tmp_path,
        "version: 1\nconsumers: {out: {file: out.jsonl}}\nroutes: [{name: all, to: out}]\n",
    )
    stats = RunStats()
    stats.inputs["bus"] = InputStats(events=90, pulled=100, acked=80, redelivered=3, pending=7)
    stats.inputs["file.jsonl"] = InputStats(events=5)
    view = LiveView(load_config(config_path))
    view.sample(stats)
    console = Console(width=100, record=True, color_system=None)
    console.print(view.render(stats))
    lines = [line.split() for line in console.export_text().splitlines()]
    assert ["input", "events", "pulled", "acked", "redelivered", "pending"] in lines
    assert ["bus", "90", "100", "80", "3", "7"] in lines
    assert not any(line[:1] == ["file.jsonl"] for line in lines)


def test_a_run_with_stats_live_draws_the_view(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "version: 1\nconsumers: {all: {file: all.jsonl}}\nroutes: [{name: every, to: all}]\n",
    )
    result = subprocess.run(
        [*EVROUTE, "run", str(config), "--stats", "live"],
        input=b'{"a":1}\n' * 10,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr.decode())  # drawn for a terminal
    assert "10 events in" in err and "events/s" in err and "delivered" in err
    assert "every" in err
