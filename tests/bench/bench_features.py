"""What audit, policies, archive and encryption cost on W1, as ratios in one run.

    .venv/bin/python tests/bench/bench_features.py [--events N | --quick]

N W1 events (default 1,000,000; --quick: 100,000; the events of bench_throughput.py)
are written to a temp file, then `evroute run` routes them with W1's four routes, plain
and with one feature added at a time; the runs of each round are interleaved, and each
figure is the fastest of three rounds. The report gives each run's wall time, its ratio
to plain W1 in the same run, and its peak RSS. Not part of the default test run: it
prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_throughput import CONFIG, Run, make_events, run_measured

from evroute.storage.crypto import Key

# W1 with one feature each; KEY is the variable that holds the encryption key
ENCRYPT = "encrypt: {key_env: EVROUTE_BENCH_KEY}\n"
FEATURES = {
    "plain W1": CONFIG,
    "publish policy (all allowed)": CONFIG
    + "inputs:\n  - {name: events, file: events.jsonl, publish: [shop.*]}\n",
    "fields: redact on both file consumers": CONFIG.replace(
        "mode: overwrite}", "mode: overwrite, fields: {redact: [detail.customer]}}"
    ),
    "encrypt: with both files sealed": ENCRYPT
    + CONFIG.replace("mode: overwrite}", "mode: overwrite, encrypt: true}"),
    "a file consumer of every event": CONFIG.replace(
        "routes:\n", "  every: {file: out/every.jsonl, mode: overwrite}\nroutes:\n"
    )
    + "  - {name: keep, to: every}\n",
    "an archive consumer of every event": CONFIG.replace(
        "routes:\n", "  every: {archive: out/archive}\nroutes:\n"
    )
    + "  - {name: keep, to: every}\n",
    "audit:": "audit: out/audit.jsonl\n" + CONFIG,
}
ROUNDS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, default=1_000_000, metavar="N")
    size.add_argument("--quick", action="store_true", help="100,000 events")
    args = parser.parse_args()
    count = 100_000 if args.quick else args.events
    os.environ["EVROUTE_BENCH_KEY"] = Key.generate()
    with tempfile.TemporaryDirectory(prefix="evroute-bench-") as name:
        folder = Path(name)
        print(f"writing {count:,} W1 events", file=sys.stderr)
        with (folder / "events.jsonl").open("wb") as stream:
            stream.writelines(make_events(count))
        configs = {}
        for number, (feature, text) in enumerate(FEATURES.items()):
            configs[feature] = folder / f"feature-{number}.yaml"
            configs[feature].write_text(text)
        best: dict[str, Run] = {}
        timeout = 120 + count / 5000
        for round_number in range(ROUNDS):
            for feature, config in configs.items():
                print(f"round {round_number + 1}: {feature}", file=sys.stderr)
                (folder / "out").mkdir(exist_ok=True)
                for old in (folder / "out").rglob("*"):
                    if old.is_file():
                        old.unlink()
                os.sync()
                # the inputs: run reads the config's inputs (the publish policy's producer)
                inputs = [] if "inputs:" in config.read_text() else [str(folder / "events.jsonl")]
                args_run = [sys.executable, "-m", "evroute", "run", str(config), *inputs]
                run = run_measured([*args_run, "--stats", "off"], timeout)
                if run.exit_code != 0:
                    print(f"  {feature}: exit {run.exit_code}", file=sys.stderr)
                if feature not in best or run.seconds < best[feature].seconds:
                    best[feature] = run
    plain = best["plain W1"].seconds
    print(f"\n{count:,} W1 events; the fastest of {ROUNDS} interleaved rounds\n")
    print(f"{'W1 with':<40} {'seconds':>8} {'events/s':>10} {'vs plain':>9} {'peak RSS':>9}")
    for feature, run in best.items():
        print(
            f"{feature:<40} {run.seconds:>8.2f} {count / run.seconds:>10,.0f}"
            f" {run.seconds / plain:>8.2f}x {run.peak_rss_mb:>6.0f} MB"
        )


if __name__ == "__main__":
    main()
