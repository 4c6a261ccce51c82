"""The samples: samples/orders.jsonl routed by samples/routes.yaml, checked against jmespath.

evroute runs once, as a subprocess, on a copy of the samples folder. What each consumer
must get is computed here from the jmespath library directly: a route matches when its
filter's result is truthy per JMESPath; a transformed event is the transform's result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jmespath
import pytest
import yaml
from runs import EVROUTE

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CONFIG = yaml.safe_load((SAMPLES / "routes.yaml").read_text())
FILE_CONSUMERS = sorted(name for name, spec in CONFIG["consumers"].items() if "file" in spec)

# What each sample command prints for one event it handles, and the field of the event
# that the line names.
COMMAND_LINES = {
    "notifier": (re.compile(r"^notify: (?:big )?order (\S+) from "), "detail.order_id"),
    "payments": (re.compile(r"^payments: retry card for (\S+) \("), "detail.order_id"),
    "restock": (re.compile(r"^restock: order \d+ of (\S+) at "), "detail.sku"),
}


def is_truthy(value: Any) -> bool:
    """JMESPath: false, null, empty strings, arrays and objects are false; 0 is true."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (str, list, dict)) and len(value) == 0)


def targets(route: dict[str, Any]) -> list[str]:
    to = route["to"]
    return [to] if isinstance(to, str) else list(to)


def sample_lines() -> list[bytes]:
    return [line for line in (SAMPLES / "orders.jsonl").read_bytes().split(b"\n") if line.strip()]


@dataclass(frozen=True)
class Delivery:
    line: bytes  # the event as it arrived
    event: dict[str, Any]
    transformed: bool
    value: Any  # the transform's result, or the event


def expected_deliveries() -> dict[str, list[Delivery]]:
    """What every consumer gets, in order: per event, per route in the config's order."""
    result: dict[str, list[Delivery]] = {name: [] for name in CONFIG["consumers"]}
    for line in sample_lines():
        event = json.loads(line)
        for route in CONFIG["routes"]:
            source = route.get("filter")
            if source is not None and not is_truthy(jmespath.search(source, event)):
                continue
            transform = route.get("transform")
            if transform is None:
                delivery = Delivery(line, event, False, event)
            else:
                delivery = Delivery(line, event, True, jmespath.search(transform, event))
            for consumer in targets(route):
                result[consumer].append(delivery)
    return result


EXPECTED = expected_deliveries()


@dataclass(frozen=True)
class SampleRun:
    folder: Path
    returncode: int
    stdout: str
    stderr: str
    stats: dict[str, Any]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    base = tmp_path_factory.mktemp("samples")
    folder = base / "samples"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("out", "__pycache__"))
    stats_path = base / "stats.json"
    result = subprocess.run(
        [
            *EVROUTE,
            "run",
            "routes.yaml",
            "orders.jsonl",
            "--stats",
            "off",
            "--stats-json",
            str(stats_path),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    return SampleRun(folder, result.returncode, result.stdout, result.stderr, stats)


def test_the_samples_exercise_every_route() -> None:
    """A guard on the test itself: each route matches some, but not all, events."""
    total = len(sample_lines())
    assert total == 1000
    for route in CONFIG["routes"]:
        matched = {id(d) for name in targets(route) for d in EXPECTED[name]}
        assert matched, route["name"]
    assert FILE_CONSUMERS == ["archive", "big-orders", "cancellations"]
    assert 0 < len(EXPECTED["big-orders"]) < total
    assert all(d.transformed for d in EXPECTED["big-orders"])


def test_exit_code_and_quiet_stderr(sample_run: SampleRun) -> None:
    assert sample_run.returncode == 0, sample_run.stderr
    assert "Traceback" not in sample_run.stderr
    assert "skipped" not in sample_run.stderr  # the consumers got JSON objects only


def test_nothing_dead_lettered(sample_run: SampleRun) -> None:
    dead_letters = sample_run.folder / "out" / "dead-letters.jsonl"
    assert not dead_letters.exists() or dead_letters.read_bytes() == b""


@pytest.mark.parametrize("consumer", FILE_CONSUMERS)
def test_file_consumer(sample_run: SampleRun, consumer: str) -> None:
    path = sample_run.folder / CONFIG["consumers"][consumer]["file"]
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    actual = data.split(b"\n")[:-1]
    expected = EXPECTED[consumer]
    assert len(actual) == len(expected)
    for number, (line, delivery) in enumerate(zip(actual, expected, strict=True), 1):
        if delivery.transformed:
            assert json.loads(line) == delivery.value, f"line {number}"
            compact = json.dumps(delivery.value, separators=(",", ":"), ensure_ascii=False)
            assert line == compact.encode(), f"line {number} is not compact JSON"
        else:
            assert line == delivery.line, f"line {number}"


@pytest.mark.parametrize("consumer", sorted(COMMAND_LINES))
def test_command_consumer(sample_run: SampleRun, consumer: str) -> None:
    pattern, field = COMMAND_LINES[consumer]
    expected = [jmespath.search(field, d.event) for d in EXPECTED[consumer]]
    assert expected and all(isinstance(value, str) and value for value in expected)
    # the three commands share evroute's stdout; each prints its own lines in order
    lines = sample_run.stdout.splitlines()
    handled = [match.group(1) for line in lines if (match := pattern.match(line))]
    assert handled == expected


def test_payments_summary(sample_run: SampleRun) -> None:
    failed = sum(
        1
        for line in sample_lines()
        if jmespath.search('"detail-type"', json.loads(line)) == "PaymentFailed"
    )
    assert failed == len(EXPECTED["payments"])
    assert f"payments: {failed} failed payments handled" in sample_run.stdout.splitlines()


def test_stats(sample_run: SampleRun) -> None:
    consumers = sample_run.stats["consumers"]
    assert set(consumers) == set(CONFIG["consumers"])
    for name, counts in consumers.items():
        assert counts["enqueued"] == (
            counts["delivered"] + counts["dropped"] + counts["dead_lettered"]
        ), name
        assert counts["enqueued"] == counts["delivered"] == len(EXPECTED[name]), name
    assert sample_run.stats["input"]["events"] == 1000
    assert sample_run.stats["input"]["malformed"] == 0
