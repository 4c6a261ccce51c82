"""The NATS JetStream benchmark: events/s through evroute with a nats input.

    .venv/bin/python tests/bench/bench_nats.py [--events N] [--runs R]

N W1 events (default 200,000) are published into a stream ORDERS on a nats-server of
its own (loopback port, temporary store), then routed, every event to one file:

- file -> evroute -> file: the same events read from a file, the mark without NATS;
- NATS -> evroute -> file with one instance, then with two sharing one durable;
- NATS -> evroute -> NATS: the events published again to `routed.{"detail-type"}`
  in a stream ROUTED, each publish acknowledged.

Each scenario uses a new durable, so each starts from the stream's first message. A run
with a nats input does not end by itself: its time is from the start of the processes
until the server has every message acknowledged (and, for NATS -> NATS, the target
stream holds all of them), start-up included, then they are stopped with SIGTERM. The
best of R runs is shown. Not part of the default test run: it prints figures and asserts
only that every event arrived.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # nats_server.py and runs.py, beside the tests

from bench_throughput import make_events  # noqa: E402
from nats_server import (  # noqa: E402
    NatsServer,
    consumer_info,
    create_stream,
    publish,
    running_server,
    stream_info,
)
from runs import EVROUTE  # noqa: E402

TIMEOUT = 600.0


def nats_input(url: str, durable: str) -> str:
    return f"""
inputs:
  - name: bus
    nats: {{url: {url}, stream: ORDERS, subject: "orders.>", durable: {durable}}}
"""


def file_consumer() -> str:
    return """
consumers:
  all: {file: out.jsonl, mode: overwrite}
routes: [{name: all, to: all}]
"""


def nats_consumer(url: str) -> str:
    return f"""
consumers:
  routed:
    nats:
      url: {url}
      subject: 'routed.{{"detail-type"}}'
      stream: {{name: ROUTED, subjects: ["routed.>"]}}
routes: [{{name: all, to: routed}}]
"""


def start(folder: Path, config: str, args: list[str]) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "routes.yaml").write_text("version: 1\n" + config)
    with (folder / "stderr.txt").open("wb") as stderr:
        return subprocess.Popen(
            [*EVROUTE, "run", "routes.yaml", *args, "--stats", "off"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def wait_until(done: Callable[[], bool], processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(f"evroute exited early with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"not done within {TIMEOUT}s")
        time.sleep(0.05)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def acked(url: str, durable: str, total: int) -> Callable[[], bool]:
    def check() -> bool:
        info = consumer_info(url, "ORDERS", durable)
        return info is not None and info.ack_floor.stream_seq >= total and not info.num_ack_pending

    return check


def count_lines(folders: list[Path]) -> int:
    return sum((folder / "out.jsonl").read_bytes().count(b"\n") for folder in folders)


class Bench:
    def __init__(self, server: NatsServer, work: Path, total: int) -> None:
        self.server = server
        self.work = work
        self.total = total
        self.runs = 0

    def fresh(self) -> tuple[str, Path]:
        """A durable and a folder no earlier run used."""
        self.runs += 1
        return f"bench{self.runs}", self.work / f"run{self.runs}"

    def from_file(self) -> float:
        _, folder = self.fresh()
        started = time.monotonic()
        process = start(folder, file_consumer(), [str(self.work / "events.jsonl")])
        if process.wait(TIMEOUT) != 0:
            raise SystemExit((folder / "stderr.txt").read_text())
        took = time.monotonic() - started
        assert count_lines([folder]) == self.total
        return took

    def to_files(self, instances: int) -> float:
        durable, folder = self.fresh()
        folders = [folder / f"instance{n}" for n in range(instances)]
        config = nats_input(self.server.url, durable) + file_consumer()
        started = time.monotonic()
        processes = [start(f, config, []) for f in folders]
        try:
            wait_until(acked(self.server.url, durable, self.total), processes)
            took = time.monotonic() - started
        finally:
            stop(processes)
        assert count_lines(folders) >= self.total
        return took

    def to_nats(self) -> float:
        durable, folder = self.fresh()
        url = self.server.url
        config = nats_input(url, durable) + nats_consumer(url)
        started = time.monotonic()
        processes = [start(folder, config, [])]

        def done() -> bool:
            if not acked(url, durable, self.total)():
                return False
            return bool(stream_info(url, "ROUTED").state.messages >= self.total)

        try:
            wait_until(done, processes)
            took = time.monotonic() - started
        finally:
            stop(processes)
        self.purge_routed()
        return took

    def purge_routed(self) -> None:
        import asyncio

        import nats

        async def main() -> None:
            client = await nats.connect(self.server.url)
            try:
                await client.jetstream().purge_stream("ROUTED")
            finally:
                await client.close()

        asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    total: int = args.events
    os.environ.setdefault("NO_COLOR", "1")
    with (
        tempfile.TemporaryDirectory(prefix="evroute-bench-nats-") as name,
        running_server() as (server),
    ):
        work = Path(name)
        lines = list(make_events(total))
        (work / "events.jsonl").write_bytes(b"".join(lines))
        create_stream(server.url, "ORDERS", ["orders.>"])
        started = time.monotonic()
        publish(server.url, "orders.new", lines)
        published = time.monotonic() - started
        bench = Bench(server, work, total)
        scenarios: list[tuple[str, Callable[[], float]]] = [
            ("file -> evroute -> file (no NATS)", bench.from_file),
            ("NATS -> evroute -> file, 1 instance", lambda: bench.to_files(1)),
            ("NATS -> evroute -> file, 2 instances", lambda: bench.to_files(2)),
            ("NATS -> evroute -> NATS", bench.to_nats),
        ]
        print(f"{total:,} W1 events, {os.cpu_count()} cores, nats-server at {server.url}")
        print(f"publishing them (nats-py, publish_async): {published:.2f} s")
        print(f"| scenario | seconds (best of {args.runs}) | events/s |")
        print("|---|---:|---:|")
        for title, scenario in scenarios:
            best = min(scenario() for _ in range(args.runs))
            print(f"| {title} | {best:.2f} | {total / best:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
