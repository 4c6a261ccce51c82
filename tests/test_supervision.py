"""Long-running commands under supervision: restarts with backoff, `ack: line`, their
stderr, and how they are stopped. Real processes and signals; outcomes, not speeds."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from runs import EVROUTE, id_lines, ids_in, read_stats, write_config

from evroute.processes import backoff_delay

PYTHON = json.dumps(sys.executable)

# An `ack: line` consumer: appends what it reads to OUT unbuffered, then acknowledges
# each line; records its pid in PID and its start time in STARTS. Slowed by SLEEP per read.
ACKING = """
import os, sys, time
out, pid_file, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(pid_file + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
pending = b""
while True:
    chunk = os.read(0, 4096)
    if not chunk:
        break
    lines = (pending + chunk).split(b"\\n")
    pending = lines.pop()
    if lines:
        os.write(fd, b"".join(line + b"\\n" for line in lines))
        os.write(1, b"ok\\n" * len(lines))
    if delay:
        time.sleep(delay)
"""


def first_occurrences(ids: list[int]) -> list[int]:
    seen: set[int] = set()
    order = []
    for n in ids:
        if n not in seen:
            seen.add(n)
            order.append(n)
    return order


def children_of(pid: int) -> list[tuple[int, str]]:
    out = subprocess.run(
        ["ps", "-o", "pid=,stat=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [(int(p), s) for p, s in (line.split() for line in out.splitlines())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return not state.stdout.strip().startswith("Z")


def test_backoff_doubles_up_to_its_limit_with_jitter() -> None:
    for failures, full in [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (30, 30.0)]:
        delays = [backoff_delay(failures, 0.5, 30.0) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 10  # jittered, not fixed


def test_a_command_that_exits_at_once_is_restarted_with_growing_delays_then_failed(
    tmp_path: Path,
) -> None:
    (tmp_path / "quit.py").write_text(
        "import sys, time\nopen('starts', 'a').write(f'{time.monotonic()}\\n')\nsys.exit(7)\n"
    )
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          quitter:
            command: [{PYTHON}, quit.py]
            restart: {{max: 3, backoff: 0.2s, max_backoff: 2s}}
          archive: {{file: all.jsonl}}
        routes: [{{name: all, to: [quitter, archive]}}]
        """,
    )
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats-json", str(stats_path)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    try:
        # the input stays open and idle while the command fails: restarts happen anyway
        starts_file = tmp_path / "starts"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            not starts_file.exists() or len(starts_file.read_text().split()) < 4
        ):
            time.sleep(0.05)
        time.sleep(0.5)  # time enough for a fifth start, were there one
        _, stderr = process.communicate(id_lines(100), timeout=30)
    finally:
        process.kill()
    assert b"Traceback" not in stderr
    assert process.returncode == 3, stderr.decode()
    starts = [float(t) for t in (tmp_path / "starts").read_text().split()]
    assert len(starts) == 4  # the first run and restart.max restarts: bounded
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # each wait is between half and all of 0.2 s, 0.4 s, 0.8 s: growing, never a busy loop
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps
    assert gaps[2] > gaps[0]
    quitter = read_stats(stats_path)["consumers"]["quitter"]
    assert quitter["state"] == "failed"
    assert quitter["restarts"] == 3
    assert quitter["dead_lettered"] == 100
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").open()]
    assert {letter["reason"] for letter in letters} == {"delivery_failed"}
    assert "failed 4 times in a row; last: exit status 7" in letters[0]["detail"]
    assert b"consumer 'quitter' failed" in stderr
    assert (tmp_path / "all.jsonl").read_bytes() == id_lines(100)


def test_ack_line_resends_what_a_crashed_command_had_not_acknowledged(tmp_path: Path) -> None:
    # The first run acknowledges 5 events, takes the 6th without acknowledging it, and
    # dies; the restarted run must get the 6th and everything after it.
    (tmp_path / "flaky.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            first = not os.path.exists("ran")
            open("ran", "a").close()
            for n, line in enumerate(sys.stdin):
                with open("got.jsonl", "a") as out:
                    out.write(line)
                if first and n == 5:
                    os._exit(9)
                print("ok", flush=True)
            """
        )
    )
    config = write_config(
        tmp_path,
        f"""
        version: 1
        consumers:
          flaky:
            command: [{PYTHON}, flaky.py]
            ack: line
            restart: {{max: 2, backoff: 0.05s}}
        routes: [{{name: all, to: flaky}}]
        """,
    )
    stats_path = tmp_path / "stats.json"
    (tmp_path / "in.jsonl").write_bytes(id_lines(50))
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    got = ids_in(tmp_path / "got.jsonl")
    assert got == list(range(6)) + list(range(5, 50))  # event 5: taken, lost, sent again
    flaky = read_stats(stats_path)["consumers"]["flaky"]
    assert flaky["delivered"] == 50 and flaky["restarts"] == 1


def test_ack_line_counts_only_acknowledged_events_as_delivered(tmp_path: Path) -> None:
    # reads everything, acknowledges nothing, then exits 0: nothing was delivered
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          silent:
            command: [{PYTHON}, -c, "import sys; sys.stdin.read()"]
            ack: line
            restart: {{max: 1, backoff: 0.05s}}
        routes: [{{name: all, to: silent}}]
        """,
    )
    stats_path = tmp_path / "stats.json"
    result = subprocess.run(
        [*EVROUTE, "run", str(config), "--stats-json", str(stats_path)],
        input=id_lines(20),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr.decode()
    silent = read_stats(stats_path)["consumers"]["silent"]
    assert silent["delivered"] == 0 and silent["dead_lettered"] == 20
    assert silent["restarts"] == 1


def test_three_kills_of_an_ack_line_consumer_lose_nothing(tmp_path: Path) -> None:
    """kill -9 one of three `ack: line` consumers three times during a 200,000-event run."""
    count = 200_000
    (tmp_path / "acking.py").write_text(ACKING)
    consumers = "".join(
        f"""
          {name}:
            command: [{PYTHON}, acking.py, {name}.jsonl, {name}.pid, "{delay}"]
            ack: line
            restart: {{max: 10, backoff: 0.05s, max_backoff: 0.2s}}"""
        for name, delay in (("a", 0), ("b", 0), ("victim", 0.002))
    )
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:{consumers}
        routes: [{{name: all, to: [a, b, victim]}}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(id_lines(count))
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        stderr=subprocess.PIPE,
    )
    pid_file = tmp_path / "victim.pid"
    killed: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(killed) < 3 and time.monotonic() < deadline and process.poll() is None:
            pid = int(pid_file.read_text()) if pid_file.exists() else None
            if pid is None or pid in killed:
                time.sleep(0.02)
                continue
            # let this run take some events, then kill it
            size = (tmp_path / "victim.jsonl").stat().st_size if killed else 0
            while (
                time.monotonic() < deadline
                and (tmp_path / "victim.jsonl").exists()
                and (tmp_path / "victim.jsonl").stat().st_size < size + 20_000
            ):
                time.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert len(killed) == 3, "the run ended before three kills: make the victim slower"
    assert b"Traceback" not in stderr
    stats = read_stats(stats_path)
    # the other two got all of their events, in order
    assert ids_in(tmp_path / "a.jsonl") == list(range(count))
    assert ids_in(tmp_path / "b.jsonl") == list(range(count))
    # the victim: each event delivered at least once (in order of first arrival) or a
    # dead letter; none of them lost
    victim = stats["consumers"]["victim"]
    assert victim["restarts"] == 3
    letters = (
        [json.loads(line) for line in (tmp_path / "dead.jsonl").open()]
        if (tmp_path / "dead.jsonl").exists()
        else []
    )
    dead_ids = {letter["event"]["id"] for letter in letters if letter["consumer"] == "victim"}
    got = first_occurrences(ids_in(tmp_path / "victim.jsonl"))
    assert got == sorted(got)
    assert set(got) | dead_ids == set(range(count))
    assert victim["delivered"] + victim["dead_lettered"] == count
    assert process.returncode == (3 if dead_ids else 0)


def test_stderr_is_passed_through_with_the_consumer_name(tmp_path: Path) -> None:
    (tmp_path / "talk.py").write_text(
        "import sys\nfor line in sys.stdin:\n    print('saw', line.strip(), file=sys.stderr)\n"
    )
    config = write_config(
        tmp_path,
        f"""
        version: 1
        consumers:
          talker: {{command: [{PYTHON}, talk.py]}}
        routes: [{{name: all, to: talker}}]
        """,
    )
    result = subprocess.run(
        [*EVROUTE, "run", str(config)], input=id_lines(2), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stderr.decode().splitlines()
    assert '[talker] saw {"id":0}' in lines
    assert '[talker] saw {"id":1}' in lines


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_dead_letters_the_rest_and_leaves_no_process(
    tmp_path: Path, signum: int, code: int
) -> None:
    (tmp_path / "acking.py").write_text(ACKING)
    config = write_config(
        tmp_path,
        f"""
        version: 1
        shutdown_timeout: 1s
        dead_letter: dead.jsonl
        consumers:
          slow:
            command: [{PYTHON}, acking.py, slow.jsonl, slow.pid, "0.05"]
            ack: line
          fast: {{file: all.jsonl}}
        routes: [{{name: all, to: [slow, fast]}}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(id_lines(100_000))
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "slow.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None
        pid = int((tmp_path / "slow.pid").read_text())
        zombies = [p for p, state in children_of(process.pid) if state.startswith("Z")]
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == code, stderr.decode()
    assert b"Traceback" not in stderr
    assert zombies == []
    assert not alive(pid)
    stats = read_stats(stats_path)
    slow = stats["consumers"]["slow"]
    assert slow["dead_lettered"] > 0
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").open()]
    assert {letter["reason"] for letter in letters} == {"shutdown"}
    assert len(letters) == slow["dead_lettered"] + stats["consumers"]["fast"]["dead_lettered"]


def test_a_slow_command_gets_its_whole_backlog_at_the_end(tmp_path: Path) -> None:
    """The end of the input is not a shutdown: the backlog in the pipe is not cut short
    by shutdown_timeout, however long it takes."""
    (tmp_path / "slow.py").write_text(
        "import sys, time\n"
        "for line in sys.stdin:\n"
        "    time.sleep(0.005)\n"
        "    open('got.jsonl', 'a').write(line)\n"
    )
    config = write_config(
        tmp_path,
        f"""
        version: 1
        shutdown_timeout: 0.2s
        consumers:
          slow: {{command: [{PYTHON}, slow.py]}}
        routes: [{{name: all, to: slow}}]
        """,
    )
    result = subprocess.run(
        [*EVROUTE, "run", str(config)], input=id_lines(300), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    assert ids_in(tmp_path / "got.jsonl") == list(range(300))


def test_a_command_that_closes_its_stdin_and_lives_on_is_stopped(tmp_path: Path) -> None:
    (tmp_path / "deaf.py").write_text(
        "import os, time\nopen('deaf.pid', 'w').write(str(os.getpid()))\n"
        "os.close(0)\ntime.sleep(60)\n"
    )
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          deaf: {{command: [{PYTHON}, deaf.py], restart: {{max: 0}}}}
        routes: [{{name: all, to: deaf}}]
        """,
    )
    stats_path = tmp_path / "stats.json"
    started = time.monotonic()
    result = subprocess.run(
        [*EVROUTE, "run", str(config), "--stats-json", str(stats_path)],
        input=id_lines(200_000),  # more than its pipe holds: writes find it deaf
        capture_output=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 3, result.stderr.decode()
    deaf = read_stats(stats_path)["consumers"]["deaf"]
    assert deaf["state"] == "failed" and deaf["dead_lettered"] > 0
    assert not alive(int((tmp_path / "deaf.pid").read_text()))


READ_ONE_AND_WAIT = "import sys, time; sys.stdin.readline(); time.sleep(30)"


@pytest.mark.parametrize("per_event", [False, True])
def test_shutdown_dead_letters_come_in_input_order(tmp_path: Path, per_event: bool) -> None:
    """The batch in hand is older than the queue: its letters come first."""
    command = (
        f"{{command: [{PYTHON}, -c, 'import time; time.sleep(30)'], per_event: true}}"
        if per_event
        else f"{{command: [{PYTHON}, -c, '{READ_ONE_AND_WAIT}'], ack: line}}"
    )
    config = write_config(
        tmp_path,
        f"""
        version: 1
        shutdown_timeout: 0.5s
        dead_letter: dead.jsonl
        consumers:
          stuck: {command}
        routes: [{{name: all, to: stuck}}]
        """,
    )
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(id_lines(1))
        process.stdin.flush()
        time.sleep(1.0)  # the first event is in hand; the next ones queue behind it
        process.stdin.write(id_lines(3)[len(id_lines(1)) :])
        process.stdin.flush()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143, stderr.decode()
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").open()]
    assert [letter["line"] for letter in letters] == [1, 2, 3]
    assert {letter["reason"] for letter in letters} == {"shutdown"}
