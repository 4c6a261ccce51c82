"""Throughput of `evroute run` on workload W1, as a ratio to baselines measured in the same run.

    .venv/bin/python tests/bench/bench_throughput.py [EVENTS]

W1: EventBridge-shaped events of about 370 bytes and four routes (two files, two
commands). Baselines: reading and parsing every line with orjson (the mark to
approach), and a hand-written json + jmespath loop (what a naive router costs).
Not part of the default test run: it prints figures and asserts nothing about time.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jmespath
import orjson

FILTERS = [
    "\"detail-type\" == 'OrderPlaced' && detail.amount > `100`",
    "contains(['gold','platinum'], detail.customer.tier)",
    "length(detail.items[?qty > `2`]) > `0`",
    "\"detail-type\" == 'PaymentFailed'",
]

ROUTES = "\n".join(
    f"  - {{name: {name}, filter: {json.dumps(f)}, to: {name}}}"
    for name, f in zip(["big", "vip", "bulk", "failed"], FILTERS, strict=True)
)
CONFIG = f"""
version: 1
consumers:
  big: {{file: out/big.jsonl, mode: overwrite}}
  vip: {{command: [cat]}}
  bulk: {{file: out/bulk.jsonl, mode: overwrite}}
  failed: {{command: [cat]}}
routes:
{ROUTES}
"""


def make_events(count: int) -> bytes:
    rng = random.Random(7)
    lines = []
    for n in range(count):
        event = {
            "version": "0",
            "id": f"{n:08d}-0000-4000-8000-{rng.getrandbits(48):012x}",
            "detail-type": rng.choice(["OrderPlaced", "OrderShipped", "PaymentFailed"]),
            "source": "shop.orders",
            "time": "2026-11-01T09:00:00Z",
            "region": "eu-west-1",
            "detail": {
                "customer": {
                    "id": f"cus-{rng.randrange(100):04d}",
                    "tier": rng.choice(["standard", "gold", "platinum"]),
                },
                "amount": round(rng.uniform(5, 500), 2),
                "items": [
                    {"sku": f"SKU-{rng.randrange(1000, 1020)}", "qty": rng.randrange(1, 6)}
                    for _ in range(rng.randrange(1, 4))
                ],
            },
        }
        lines.append(orjson.dumps(event))
    return b"\n".join(lines) + b"\n"


def parse_only(path: Path) -> float:
    started = time.perf_counter()
    with path.open("rb") as stream:
        for line in stream:
            orjson.loads(line)
    return time.perf_counter() - started


def naive_router(path: Path) -> float:
    compiled = [jmespath.compile(f) for f in FILTERS]
    started = time.perf_counter()
    with path.open("rb") as stream, open("/dev/null", "w") as sink:
        for line in stream:
            event = json.loads(line)
            for expression in compiled:
                if expression.search(event):
                    sink.write(json.dumps(event) + "\n")
    return time.perf_counter() - started


def evroute_run(folder: Path, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "evroute",
            "run",
            str(folder / "routes.yaml"),
            str(path),
            "--stats",
            "off",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    return time.perf_counter() - started


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        (folder / "routes.yaml").write_text(CONFIG)
        path = folder / "events.jsonl"
        path.write_bytes(make_events(count))
        size = path.stat().st_size
        timings = {
            "parse only (orjson)": parse_only(path),
            "naive router (json + jmespath)": naive_router(path),
            "evroute run": evroute_run(folder, path),
        }
    print(f"W1: {count:,} events, {size / count:.0f} bytes each")
    mark = timings["parse only (orjson)"]
    for name, seconds in timings.items():
        print(
            f"  {name:32} {count / seconds:>12,.0f} events/s"
            f"   {seconds / mark:6.1f}x parse-only time"
        )


if __name__ == "__main__":
    main()
