"""`--stats-every`: the stats of a long run, appended to the --stats-json file as it goes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from configs import ONE_FILE
from runs import EVROUTE, write_config

EVERY_100MS = ["--stats-every", "100ms", "--stats-json"]


def last_report(path: Path) -> dict | None:
    """The last whole report in the file, if any (the run may be writing one)."""
    for line in reversed(path.read_text().splitlines()):
        try:
            report: dict = json.loads(line)
        except json.JSONDecodeError:
            continue
        return report
    return None


def test_stats_are_appended_while_the_run_goes_on_and_last_at_the_end(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    stats_path = tmp_path / "stats.jsonl"
    stats_path.write_text("from an earlier run\n")
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats", "off", *EVERY_100MS, str(stats_path)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    try:
        for n in range(3):
            process.stdin.write(b'{"id":%d}\n' % n)
            process.stdin.flush()
            deadline = time.monotonic() + 20
            # a report that has seen this event
            while time.monotonic() < deadline:
                report = last_report(stats_path)
                if report is not None and report["input"]["events"] == n + 1:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"no report saw event {n}")
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()
    reports = [json.loads(line) for line in stats_path.read_text().splitlines()]
    events = [report["input"]["events"] for report in reports]
    assert events == sorted(events) and events[-1] == 3  # never backwards; final last
    assert {1, 2} <= set(events)  # reports came during the run
    assert reports[-1]["consumers"]["all"]["delivered"] == 3


def test_stats_every_needs_a_stats_json_file_and_a_duration(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    for extra, message in (
        (["--stats-every", "1s"], b"--stats-json"),
        (["--stats-every", "soon", "--stats-json", "s.json"], b"--stats-every"),
        (["--stats-every", "0s", "--stats-json", "s.json"], b"more than 0"),
    ):
        result = subprocess.run(
            [*EVROUTE, "run", str(config), *extra], input=b"", capture_output=True, timeout=30
        )
        assert result.returncode == 2, extra
        assert message in result.stderr, result.stderr.decode()
