"""Soak: route 1,000,000 events while a consumer is killed every few seconds.

Replays the events at a steady rate (`evroute replay --rate`) to a file consumer and an
`ack: line` command consumer, kills the command with SIGKILL every --kill-every seconds,
and prints evroute's RSS, open file descriptors and child processes once a second: they
must stay flat. At the end it checks that the file got every event, that the command got
every event at least once (or a dead letter), and that the stats add up.

    .venv/bin/python tests/bench/soak.py [--events N] [--rate R] [--kill-every S]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ACKING = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
pending = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    lines = (pending + chunk).split(b"\\n")
    pending = lines.pop()
    if lines:
        os.write(fd, b"".join(line + b"\\n" for line in lines))
        os.write(1, b"ok\\n" * len(lines))
"""


def sample(pid: int) -> tuple[float, int, int]:
    """RSS in MB, open descriptors, and live child processes of `pid`."""
    rss = 0.0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, len(children(pid))


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [int(p) for p in out.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=50_000, help="events a second")
    parser.add_argument("--kill-every", type=float, default=3.0, metavar="SECONDS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evroute-soak-") as name:
        folder = Path(name)
        (folder / "acking.py").write_text(ACKING)
        config = folder / "soak.yaml"
        config.write_text(
            textwrap.dedent(
                f"""
                version: 1
                dead_letter: dead.jsonl
                consumers:
                  archive: {{file: archive.jsonl}}
                  victim:
                    command: [{json.dumps(sys.executable)}, acking.py, victim.jsonl]
                    ack: line
                    restart: {{max: 5, backoff: 0.2s, max_backoff: 2s}}
                routes: [{{name: all, to: [archive, victim]}}]
                """
            )
        )
        events = folder / "events.jsonl"
        with events.open("wb") as stream:
            for n in range(args.events):
                stream.write(b'{"id":%d,"detail-type":"Soak","detail":{"n":%d}}\n' % (n, n))
        stats_path = folder / "stats.json"
        process = subprocess.Popen(
            [
                sys.executable, "-m", "evroute", "replay", str(config), str(events),
                "--rate", str(args.rate), "--stats-json", str(stats_path), "--stats", "off",
            ],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        print(f"{'seconds':>8} {'RSS MB':>8} {'fds':>5} {'children':>9} {'kills':>6}")
        started = time.monotonic()
        next_kill = started + args.kill_every
        kills = 0
        rows: list[tuple[float, int, int]] = []
        while process.poll() is None:
            time.sleep(1.0)
            try:
                row = sample(process.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            if process.poll() is not None:  # what was read may be of a process exiting
                break
            rows.append(row)
            now = time.monotonic()
            if now >= next_kill:
                for child in children(process.pid):
                    os.kill(child, signal.SIGKILL)
                    kills += 1
                next_kill = now + args.kill_every
            print(f"{now - started:8.0f} {row[0]:8.1f} {row[1]:5d} {row[2]:9d} {kills:6d}")
        process.wait()
        stats = json.loads(stats_path.read_text())
        archived = sum(1 for _ in (folder / "archive.jsonl").open("rb"))
        victim_ids = {json.loads(line)["id"] for line in (folder / "victim.jsonl").open("rb")}
        dead = folder / "dead.jsonl"
        dead_ids = (
            {json.loads(line)["event"]["id"] for line in dead.open()} if dead.exists() else set()
        )
        problems = []
        if archived != args.events:
            problems.append(f"the file got {archived:,} events of {args.events:,}")
        if len(victim_ids | dead_ids) != args.events:
            problems.append(f"the command lost {args.events - len(victim_ids | dead_ids):,} events")
        for name, consumer in stats["consumers"].items():
            if consumer["enqueued"] != (
                consumer["delivered"] + consumer["dropped"] + consumer["dead_lettered"]
            ):
                problems.append(f"{name}: the stats do not add up: {consumer}")
        steady = rows[len(rows) // 4 :] or rows
        rss_growth = max(r[0] for r in steady) - min(r[0] for r in steady)
        fds_range = max(r[1] for r in steady) - min(r[1] for r in steady)
        child_max = max(r[2] for r in steady)
        print(
            f"\nexit {process.returncode}, {kills} kills, victim restarts "
            f"{stats['consumers']['victim']['restarts']}; after the first quarter: RSS varied "
            f"{rss_growth:.1f} MB, fds varied {fds_range}, at most {child_max} children"
        )
        if fds_range > 8 or child_max > 2:
            problems.append("descriptors or children are not flat")
        for problem in problems:
            print(f"PROBLEM: {problem}")
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
