"""The throughput, memory, latency and idle-CPU benchmark, measured in one run.

    .venv/bin/python tests/bench/bench_throughput.py [--events N | --quick]

N W1 events (default 1,000,000; --quick: 100,000) are written to a temp file, then timed
over that same file: reading and parsing every line with orjson (the mark to approach),
a hand-written json + jmespath loop writing each route's matches to its own file (what
a naive router costs), `tee` into four `jq` processes (when jq is installed), and
`evroute run` on W1 (four routes: two files, two `cat` commands) and on W50 (fifty
routes into four files), each with the child's peak RSS. Then: the four W1 filters
evaluated by jmespath and by evroute.expr over 20,000 parsed events, the latency of
one event through `evroute run` reading a pipe, and its CPU use while the pipe is
silent. The report compares each figure with the issue's target. Not part of the
default test run: it prints figures and asserts nothing. The evroute runs keep their
compiled bytecode, as an installed evroute does, even under PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import jmespath
import orjson

from evroute import expr

FILTERS = [
    "\"detail-type\" == 'OrderPlaced' && detail.amount > `100`",
    "contains(['gold','platinum'], detail.customer.tier)",
    "length(detail.items[?qty > `2`]) > `0`",
    "\"detail-type\" == 'PaymentFailed'",
]
ROUTE_NAMES = ["big", "vip", "bulk", "failed"]
FILE_ROUTES = ["big", "bulk"]  # the W1 routes whose consumer is a file
JQ_FILTERS = [  # FILTERS, translated by hand
    'select(."detail-type" == "OrderPlaced" and .detail.amount > 100)',
    'select(.detail.customer.tier as $t | ["gold", "platinum"] | index($t) != null)',
    "select([.detail.items[] | select(.qty > 2)] | length > 0)",
    'select(."detail-type" == "PaymentFailed")',
]

ROUTES = "\n".join(
    f"  - {{name: {name}, filter: {json.dumps(f)}, to: {name}}}"
    for name, f in zip(ROUTE_NAMES, FILTERS, strict=True)
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

# W50: route k keeps the events of its own detail-type (3 of the 50 occur) above an amount
REAL_TYPES = {10: "OrderPlaced", 25: "OrderShipped", 40: "PaymentFailed"}
W50_TYPES = [REAL_TYPES.get(k, f"Type-{k:02d}") for k in range(50)]
W50_FILTERS = [
    f"\"detail-type\" == '{detail_type}' && detail.amount > `{10 * k % 400}`"
    for k, detail_type in enumerate(W50_TYPES)
]
W50_CONSUMERS = "\n".join(f"  f{n}: {{file: out/w50-{n}.jsonl, mode: overwrite}}" for n in range(4))
W50_ROUTES = "\n".join(
    f"  - {{name: r{k:02d}, filter: {json.dumps(f)}, to: f{k % 4}}}"
    for k, f in enumerate(W50_FILTERS)
)
W50_CONFIG = f"""
version: 1
consumers:
{W50_CONSUMERS}
routes:
{W50_ROUTES}
"""

ONE_FILE_CONFIG = """
version: 1
consumers:
  sink: {file: out/one.jsonl, mode: overwrite}
routes:
  - {name: all, to: sink}
"""

REPEATS = 3  # the parse-only mark and the evroute runs: the fastest of this many
FILTER_EVENTS = 20_000
LATENCY_EVENTS = 20
LATENCY_TIMEOUT = 5.0  # seconds for one event to come through
IDLE_SECONDS = 5.0
START_TIMEOUT = 10.0  # seconds for evroute to start and route its first event
STOP_TIMEOUT = 10.0  # seconds for evroute to end once its stdin is closed


def make_events(count: int) -> Iterator[bytes]:
    """Yield `count` W1 event lines, the same ones on every call."""
    rng = random.Random(7)
    for n in range(count):
        event = {
            "version": "0",
            "id": f"{n:08d}-0000-4000-8000-{rng.getrandbits(48):012x}",
            "detail-type": rng.choice(["OrderPlaced", "OrderShipped", "PaymentFailed"]),
            "source": "shop.orders",
            "time": "2026-11-01T09:00:00Z",
            "region": "eu-west-1",
            "resources": [f"arn:aws:shop:eu-west-1:123456789012:order/{n:08d}"],
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
        yield orjson.dumps(event) + b"\n"


@dataclass
class Run:
    """One timed run of a command."""

    seconds: float
    exit_code: int
    peak_rss_mb: float  # of the child (and the children it waited for), 10**6 bytes


def count_lines(path: Path) -> int:
    """The number of lines in `path`, 0 when it does not exist."""
    if not path.exists():
        return 0
    with path.open("rb") as stream:
        return sum(1 for _ in stream)


def file_size(path: Path) -> int:
    """The size of `path`, 0 when it does not exist yet."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def evroute_args(config: Path, *inputs: Path) -> list[str]:
    """The command line of `evroute run` on `config` and `inputs`, with --stats off."""
    return [
        sys.executable,
        "-m",
        "evroute",
        "run",
        str(config),
        *map(str, inputs),
        "--stats",
        "off",
    ]


def parse_only(path: Path) -> float:
    """Seconds to read every line of `path` and parse it with orjson."""
    started = time.perf_counter()
    with path.open("rb") as stream:
        for line in stream:
            orjson.loads(line)
    return time.perf_counter() - started


def hand_written_loop(path: Path, out: Path) -> float:
    """Seconds to route `path` with json + jmespath, each route's matches to out/ROUTE.jsonl."""
    compiled = [jmespath.compile(f) for f in FILTERS]
    out.mkdir()
    started = time.perf_counter()
    with ExitStack() as stack, path.open("rb") as stream:
        sinks = [stack.enter_context((out / f"{name}.jsonl").open("w")) for name in ROUTE_NAMES]
        routes = list(zip(compiled, sinks, strict=True))
        for line in stream:
            event = json.loads(line)
            for expression, sink in routes:
                if expression.search(event):
                    sink.write(json.dumps(event) + "\n")
    return time.perf_counter() - started


def tee_jq(path: Path, out: Path, timeout: float) -> float | None:
    """Seconds for `tee` into one `jq` per W1 route, each to out/ROUTE.jsonl; None if killed."""
    out.mkdir()
    substitutions = " ".join(
        f">(jq -c {shlex.quote(jq_filter)} > {shlex.quote(str(out / f'{name}.jsonl'))})"
        for name, jq_filter in zip(ROUTE_NAMES, JQ_FILTERS, strict=True)
    )
    # `wait` without arguments waits for the process substitutions too (bash >= 5.0)
    script = f"tee {substitutions} < {shlex.quote(str(path))} > /dev/null; wait"
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None
    return time.perf_counter() - started


def cache_bytecode(folder: Path, config: Path) -> None:
    """Let the evroute runs keep their compiled bytecode in `folder`, as an installed
    evroute has it, and compile it now, with a run that routes nothing.

    Where PYTHONDONTWRITEBYTECODE is set (this project's sandbox sets it), each run
    would compile evroute's modules from source again: about 0.09 s a run.
    """
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print(
            "  note: PYTHONDONTWRITEBYTECODE unset for the evroute runs: bytecode in a temp folder"
        )
    os.environ["PYTHONPYCACHEPREFIX"] = str(folder)  # the children's, not this process's
    subprocess.run(
        evroute_args(config),
        input=b"",
        stdout=subprocess.DEVNULL,
        timeout=START_TIMEOUT,
        check=False,
    )


def run_measured(args: list[str], timeout: float) -> Run:
    """Run `args` to its end (killed after `timeout` seconds): wall time, exit code, peak RSS."""
    # The child's ru_maxrss starts from this process's peak RSS (Linux carries the peak of
    # the memory an exec replaces): bring that peak down to the current RSS first (~20 MB)
    Path("/proc/self/clear_refs").write_text("5")
    started = time.perf_counter()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(seconds, process.returncode, usage.ru_maxrss * 1024 / 1e6)  # ru_maxrss: KiB


def best_run(args: list[str], timeout: float) -> Run:
    """The fastest of REPEATS runs, each started after the disk has caught up with the
    files written before it (the writeback would otherwise compete for the CPU)."""
    runs = []
    for _ in range(REPEATS):
        os.sync()
        runs.append(run_measured(args, timeout))
    return min(runs, key=lambda run: run.seconds)


def time_searches(searches: list[Callable[[Any], Any]], events: list[Any]) -> float:
    """Microseconds per search per event, the best of 3 passes over all of them."""
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        for search in searches:
            for event in events:
                search(event)
        best = min(best, time.perf_counter() - started)
    return best / (len(searches) * len(events)) * 1e6


def filter_evaluation(path: Path) -> tuple[float, float]:
    """Microseconds per filter per event of jmespath and of evroute.expr on the first events."""
    with path.open("rb") as stream:
        events = [orjson.loads(line) for line in islice(stream, FILTER_EVENTS)]
    library = time_searches([jmespath.compile(f).search for f in FILTERS], events)
    ours = time_searches([expr.compile(f).search for f in FILTERS], events)
    return library, ours


def stop(process: subprocess.Popen[bytes], what: str) -> None:
    """Close the stdin of `process` and wait for it to end, killing it after a timeout."""
    assert process.stdin is not None
    with suppress(BrokenPipeError):  # it is gone already, with a line unsent
        process.stdin.close()
    try:
        code = process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        print(f"  note: {what}: evroute did not end within {STOP_TIMEOUT:.0f} s of EOF, killed")
        return
    if code != 0:
        print(f"  note: {what}: evroute exited with {code}")


def wait_for_growth(path: Path, size: int, timeout: float) -> int | None:
    """Poll until `path` is larger than `size`: its new size, or None after `timeout` s."""
    deadline = time.perf_counter() + timeout
    while (now_size := file_size(path)) <= size:
        if time.perf_counter() > deadline:
            return None
        time.sleep(0.0005)
    return now_size


def latency(config: Path, output: Path, lines: list[bytes]) -> list[float]:
    """Milliseconds for each of lines[1:] to reach `output` through `evroute run` on a pipe.

    lines[0] warms up (and waits out the start). A line that does not come through
    within LATENCY_TIMEOUT ends the measurement with an infinite sample.
    """
    process = subprocess.Popen(
        evroute_args(config), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert process.stdin is not None
    samples: list[float] = []
    size = 0
    try:
        for n, line in enumerate(lines):
            started = time.perf_counter()
            process.stdin.write(line)
            process.stdin.flush()
            grown = wait_for_growth(output, size, LATENCY_TIMEOUT if n else START_TIMEOUT)
            if grown is None:
                samples.append(math.inf)
                break
            size = grown
            if n:
                samples.append((time.perf_counter() - started) * 1000)
    except BrokenPipeError:
        samples.append(math.inf)
    finally:
        stop(process, "latency")
    if math.inf in samples:
        print("  note: latency: an event did not come through")
    return samples


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd on; comm may hold spaces
    return int(fields[14 - 3]) + int(fields[15 - 3])


def idle_cpu(config: Path) -> float:
    """CPU percentage of `evroute run` over IDLE_SECONDS while its stdin pipe stays silent."""
    process = subprocess.Popen(
        evroute_args(config), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(1)
        started, ticks = time.perf_counter(), cpu_ticks(process.pid)
        time.sleep(IDLE_SECONDS)
        ticks = cpu_ticks(process.pid) - ticks
        seconds = time.perf_counter() - started
        if process.poll() is not None:
            print(f"  note: idle CPU: evroute ended early, with {process.returncode}")
    finally:
        stop(process, "idle CPU")
    return ticks / os.sysconf("SC_CLK_TCK") / seconds * 100


def check_counts(what: str, expected: dict[str, int], actual: dict[str, int]) -> None:
    """Print a warning for each route whose line count differs from the hand-written loop's."""
    for name, count in actual.items():
        if count != expected[name]:
            print(
                f"  WARNING: {what}: {name} has {count:,} lines,"
                f" the hand-written loop's {expected[name]:,}"
            )


def note_exit(what: str, run: Run) -> None:
    """Print a warning when a run did not exit with 0."""
    if run.exit_code != 0:
        print(f"  WARNING: {what} exited with {run.exit_code}")


def step(text: str) -> None:
    """Say on stderr what is being measured (a full run takes minutes)."""
    print(f"... {text}", file=sys.stderr, flush=True)


def parse_args() -> int:
    """The number of events to route."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, default=1_000_000, metavar="N", help="default 1M")
    size.add_argument("--quick", action="store_true", help="100,000 events")
    args = parser.parse_args()
    if args.events <= LATENCY_EVENTS:
        parser.error(f"--events: at least {LATENCY_EVENTS + 1}")
    return 100_000 if args.quick else int(args.events)


@dataclass
class Results:
    """Everything one benchmark run measured."""

    count: int
    size: int  # of the events file, in bytes
    parse_seconds: float
    loop_seconds: float
    jq_seconds: float | None  # None: jq absent, or killed
    w1: Run
    w50: Run
    jmespath_us: float
    expr_us: float
    latencies: list[float]  # milliseconds
    idle_cpu: float  # percent


def measure(count: int, folder: Path) -> Results:
    """Run every measurement on `count` W1 events, in `folder`."""
    timeout = 60 + count / 2000  # seconds for one whole run; evroute used to do 40k events/s
    path = folder / "events.jsonl"
    step(f"writing {count:,} W1 events")
    with path.open("wb") as stream:
        stream.writelines(make_events(count))
    w1, w50, one = folder / "w1.yaml", folder / "w50.yaml", folder / "one.yaml"
    w1.write_text(CONFIG)
    w50.write_text(W50_CONFIG)
    one.write_text(ONE_FILE_CONFIG)

    step(f"parse only (best of {REPEATS})")
    os.sync()
    parse_seconds = min(parse_only(path) for _ in range(REPEATS))
    step("hand-written loop")
    loop_seconds = hand_written_loop(path, folder / "loop")
    expected = {name: count_lines(folder / "loop" / f"{name}.jsonl") for name in ROUTE_NAMES}
    jq_seconds = None
    if shutil.which("jq") is None:
        print("  note: jq is not on PATH: no tee + jq baseline")
    else:
        step("tee + jq")
        jq_seconds = tee_jq(path, folder / "jq", timeout)
        if jq_seconds is None:
            print(f"  WARNING: tee + jq did not end within {timeout:.0f} s, killed")
        jq_counts = {name: count_lines(folder / "jq" / f"{name}.jsonl") for name in ROUTE_NAMES}
        check_counts("tee + jq", expected, jq_counts)
    cache_bytecode(folder / "pycache", one)
    step(f"evroute run W1 (best of {REPEATS})")
    run_w1 = best_run(evroute_args(w1, path), timeout)
    note_exit("evroute run W1", run_w1)
    ours = {name: count_lines(folder / "out" / f"{name}.jsonl") for name in FILE_ROUTES}
    check_counts("evroute run W1", expected, ours)
    step(f"evroute run W50 (best of {REPEATS})")
    run_w50 = best_run(evroute_args(w50, path), timeout)
    note_exit("evroute run W50", run_w50)
    step("filter evaluation")
    jmespath_us, expr_us = filter_evaluation(path)
    step("latency")
    with path.open("rb") as stream:
        lines = list(islice(stream, LATENCY_EVENTS + 1))
    latencies = latency(one, folder / "out" / "one.jsonl", lines)
    step(f"idle CPU ({IDLE_SECONDS:.0f} s)")
    idle = idle_cpu(one)
    return Results(
        count=count,
        size=path.stat().st_size,
        parse_seconds=parse_seconds,
        loop_seconds=loop_seconds,
        jq_seconds=jq_seconds,
        w1=run_w1,
        w50=run_w50,
        jmespath_us=jmespath_us,
        expr_us=expr_us,
        latencies=latencies,
        idle_cpu=idle,
    )


def report(r: Results) -> None:
    """Print each run's figures, then each target of the issue with ok or MISSED."""
    print(f"\nW1: {r.count:,} events, {r.size / r.count:.0f} bytes each ({r.size / 1e6:.1f} MB)\n")
    print(f"  {'run':36} {'events/s':>10} {'seconds':>9} {'peak RSS':>11}")
    rows: list[tuple[str, float | None, Run | None]] = [
        ("parse only (orjson)", r.parse_seconds, None),
        ("hand-written loop (json + jmespath)", r.loop_seconds, None),
        ("tee + 4 jq", r.jq_seconds, None),
        ("evroute run W1", r.w1.seconds, r.w1),
        ("evroute run W50", r.w50.seconds, r.w50),
    ]
    for name, seconds, run in rows:
        if seconds is None:
            print(f"  {name:36} {'-':>10} {'-':>9}")
            continue
        rss = f" {run.peak_rss_mb:8.1f} MB" if run else ""
        print(f"  {name:36} {r.count / seconds:>10,.0f} {seconds:>9.2f}{rss}")
    speed_up = r.jmespath_us / r.expr_us
    events = min(r.count, FILTER_EVENTS)
    print(f"\n  filter evaluation ({events:,} events x {len(FILTERS)} filters, best of 3):")
    print(f"    jmespath      {r.jmespath_us:7.2f} us per filter per event")
    print(f"    evroute.expr  {r.expr_us:7.2f} us per filter per event ({speed_up:.1f}x)")
    worst = max(r.latencies)
    print(
        f"  latency ({len(r.latencies)} events): median {statistics.median(r.latencies):.2f} ms,"
        f" max {worst:.2f} ms"
    )
    print(f"  idle CPU ({IDLE_SECONDS:.0f} s): {r.idle_cpu:.2f}%")

    vs_loop = r.loop_seconds / r.w1.seconds
    vs_parse = r.parse_seconds / r.w1.seconds
    w50_share = r.w1.seconds / r.w50.seconds
    rss_w1, rss_w50 = r.w1.peak_rss_mb, r.w50.peak_rss_mb
    targets = [
        ("evroute W1 / hand-written loop", f"{vs_loop:.2f}x", ">= 12x", vs_loop >= 12),
        ("evroute W1 / parse only", f"{vs_parse:.0%}", ">= 40%", vs_parse >= 0.4),
        ("filter evaluation speed-up", f"{speed_up:.1f}x", ">= 15x", speed_up >= 15),
        ("evroute W50 / W1", f"{w50_share:.2f}", ">= 0.5", w50_share >= 0.5),
        ("evroute W1 peak RSS", f"{rss_w1:.1f} MB", "< 100 MB", rss_w1 < 100),
        ("evroute W50 peak RSS", f"{rss_w50:.1f} MB", "< 100 MB", rss_w50 < 100),
        ("latency max", f"{worst:.2f} ms", "< 50 ms", worst < 50),
        ("idle CPU", f"{r.idle_cpu:.2f}%", "< 1%", r.idle_cpu < 1),
    ]
    print("\n  target")
    for name, value, target, ok in targets:
        print(f"    {name:32} {value:>10}   {target:9} {'ok' if ok else 'MISSED'}")
    if r.jq_seconds is not None:
        print(
            f"    {'evroute W1 / tee + jq':32} {r.jq_seconds / r.w1.seconds:>9.2f}x   (no target)"
        )


def main() -> None:
    """Measure in a temp folder, then print the report."""
    count = parse_args()
    with tempfile.TemporaryDirectory(prefix="evroute-bench-") as folder:
        results = measure(count, Path(folder))
    report(results)


if __name__ == "__main__":
    main()
