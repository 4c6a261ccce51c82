"""W1 throughput of this tree against another checkout of evroute, in one sitting.

    git worktree add /tmp/evroute-before HEAD~1
    .venv/bin/python tests/bench/bench_versions.py /tmp/evroute-before [--events N] [--runs K]

N W1 events (default 500,000) are written to a temp file once; then `evroute run` on W1
(the same config as bench_throughput.py) runs K times (default 5) from each tree,
interleaved (this tree, the other, this tree...), so that the machine's drift touches
both alike. Each tree runs with its own source first on PYTHONPATH and keeps its compiled
bytecode, as an installed evroute does. The report gives the median seconds of each and
their ratio; it asserts nothing. For a refactoring, a ratio within 5% of 1.00 is the mark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_throughput import (
    CONFIG,
    START_TIMEOUT,
    cache_bytecode,
    evroute_args,
    make_events,
    run_measured,
)

HERE = Path(__file__).resolve().parents[2]


def timed(tree: Path, config: Path, events: Path) -> float:
    """Seconds of one `evroute run` of W1 with `tree`'s evroute; it must exit 0."""
    os.environ["PYTHONPATH"] = str(tree)
    os.sync()  # the files the last run wrote are not flushed during this one
    run = run_measured(evroute_args(config, events), START_TIMEOUT * 60)
    if run.exit_code != 0:
        sys.exit(f"evroute from {tree} exited {run.exit_code}")
    return run.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="another checkout of evroute (its root)")
    parser.add_argument("--events", type=int, default=500_000, metavar="N")
    parser.add_argument("--runs", type=int, default=5, metavar="K")
    args = parser.parse_args()
    trees = {"this tree": HERE, "other": args.other.resolve()}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        events = folder / "w1.jsonl"
        with events.open("wb") as out:
            out.writelines(make_events(args.events))
        config = folder / "w1.yaml"
        config.write_text(CONFIG)
        os.chdir(folder)  # the config's outputs land here
        for tree in trees.values():
            os.environ["PYTHONPATH"] = str(tree)
            cache_bytecode(folder / "pycache", config)
        seconds: dict[str, list[float]] = {name: [] for name in trees}
        for number in range(args.runs):
            for name, tree in trees.items():
                seconds[name].append(timed(tree, config, events))
            timings = ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items())
            print(f"  run {number + 1}: {timings}")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"{name:>10}: median {median:.2f}s, {args.events / median:,.0f} events/s")
    ratio = medians["this tree"] / medians["other"]
    print(f"this tree / other (time): {ratio:.3f}")


if __name__ == "__main__":
    main()
