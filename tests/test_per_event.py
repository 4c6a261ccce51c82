"""Per-event commands (`per_event: true`): real processes, one per event."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runs import EVROUTE, read_stats, write_config

from evroute import expr
from evroute import processes as child_process
from evroute.config.model import ConsumerConfig, QueueSettings
from evroute.sinks import per_event
from evroute.sinks.command import CommandOptions
from evroute.sinks.per_event import PerEventSink

# Appends the event's id to attempts.log; exits 3 (with a word on stderr) when the event
# says "bad", else appends the id to delivered.log.
HANDLER = """
import json, sys
event = json.loads(sys.stdin.read())
with open("attempts.log", "a") as log:
    log.write(f"{event['id']}\\n")
if event.get("bad"):
    sys.stderr.write(f"cannot handle {event['id']}\\n")
    sys.exit(3)
with open("delivered.log", "a") as log:
    log.write(f"{event['id']}\\n")
"""


def make_sink(
    folder: Path,
    script: str,
    retries: int = 1,
    concurrency: int = 1,
    key: str | None = None,
    timeout: float = 60.0,
    argv: tuple[str, ...] | None = None,
) -> PerEventSink:
    (folder / "handler.py").write_text(textwrap.dedent(script))
    options = CommandOptions(
        argv or (sys.executable, "handler.py"),
        per_event=True,
        concurrency=concurrency,
        key=expr.compile(key) if key is not None else None,
        timeout=timeout,
    )
    config = ConsumerConfig("handler", "command", options, QueueSettings(retries=retries))
    return PerEventSink(config, folder)


def payloads(*events: dict[str, Any]) -> list[bytes]:
    return [json.dumps(event).encode() for event in events]


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def gone(pid: int) -> bool:
    """Whether the process has ended (a zombie of someone else's counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(per_event, "BACKOFF_START_S", 0.01)


def test_failing_events_are_retried_then_given_up_and_the_rest_delivered(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sink = make_sink(tmp_path, HANDLER, retries=1)
    batch = payloads(*({"id": n, "bad": n in (1, 4)} for n in range(6)))
    failures = sink.write(batch)
    assert [(index, reason) for index, reason, _ in failures] == [
        (1, "delivery_failed"),
        (4, "delivery_failed"),
    ]
    assert failures[0][2] == "exit status 3 after 2 attempts; stderr: cannot handle 1"
    assert failures[1][2] == "exit status 3 after 2 attempts; stderr: cannot handle 4"
    # concurrency 1: one at a time, in order
    assert log_lines(tmp_path / "delivered.log") == ["0", "2", "3", "5"]
    assert log_lines(tmp_path / "attempts.log") == ["0", "1", "1", "2", "3", "4", "4", "5"]
    # what a command says on stderr reaches evroute's, named
    assert "[handler] cannot handle 1\n" in capfd.readouterr().err


def test_the_dead_letter_keeps_the_end_of_stderr(tmp_path: Path) -> None:
    script = """
    import sys
    sys.stdin.read()
    sys.stderr.write("x" * 5000 + "\\nthe real error\\n")
    sys.exit(1)
    """
    sink = make_sink(tmp_path, script, retries=0)
    [(_, reason, detail)] = sink.write(payloads({"id": 1}))
    assert reason == "delivery_failed"
    prefix = "exit status 1 after 1 attempt; stderr: ..."
    assert detail.startswith(prefix)
    assert detail.endswith("xxx\nthe real error")
    assert len(detail) - len(prefix) <= per_event.STDERR_TAIL_BYTES


# Records "start KEY ID" and "end KEY ID". The first event of keys a and b each waits for
# the other to have started, so they can only succeed if they run side by side; then they
# linger, while the workers that ran c and d are free: a later event of a or b would start
# then if keys did not hold it back.
KEYED = """
import json, os, sys, time
event = json.loads(sys.stdin.read())
key, n = event["k"], event["id"]
def record(what):
    with open("order.log", "a") as log:
        log.write(f"{what} {key} {n}\\n")
record("start")
if event.get("first"):
    open(f"started-{key}", "w").close()
    other = {"a": "b", "b": "a"}.get(key)
    deadline = time.monotonic() + 20
    while other and not os.path.exists(f"started-{other}"):
        if time.monotonic() > deadline:
            sys.exit(9)
        time.sleep(0.01)
    time.sleep(0.5 if other else 0)
time.sleep(event.get("sleep", 0))
record("end")
"""


def test_concurrency_keeps_order_per_key_and_runs_keys_side_by_side(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, KEYED, retries=0, concurrency=4, key="k")
    keys = "abcd"
    batch = payloads(*({"id": n, "k": keys[n % 4], "first": n < 4} for n in range(12)))
    assert sink.write(batch) == []  # a and b met: they ran at the same time
    entries = [line.split() for line in log_lines(tmp_path / "order.log")]
    assert len(entries) == 24
    for key in keys:
        mine = [(what, int(n)) for what, k, n in entries if k == key]
        ids = [n for n in range(12) if keys[n % 4] == key]
        # one at a time, in batch order
        assert mine == [(what, n) for n in ids for what in ("start", "end")], key


def test_concurrency_1_runs_everything_in_order_whatever_the_key(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, KEYED, concurrency=1, key="k")
    batch = payloads(*({"id": n, "k": "abc"[n % 3], "sleep": 0.1} for n in range(6)))
    assert sink.write(batch) == []
    entries = [line.split() for line in log_lines(tmp_path / "order.log")]
    assert [(what, int(n)) for what, _, n in entries] == [
        (what, n) for n in range(6) for what in ("start", "end")
    ]


def test_a_command_over_its_timeout_is_killed_and_fails(tmp_path: Path) -> None:
    script = """
    import os, sys, time
    sys.stdin.read()
    with open("pids.log", "a") as log:
        log.write(f"{os.getpid()}\\n")
    time.sleep(60)
    """
    sink = make_sink(tmp_path, script, retries=1, timeout=0.5)
    [(index, reason, detail)] = sink.write(payloads({"id": 1}))
    assert (index, reason) == (0, "delivery_failed")
    assert detail == "timed out (0.5s) after 2 attempts"
    pids = [int(pid) for pid in log_lines(tmp_path / "pids.log")]
    assert len(pids) == 2
    assert all(gone(pid) for pid in pids)


def test_what_a_command_leaves_running_is_stopped(tmp_path: Path) -> None:
    script = """
    import subprocess, sys
    sys.stdin.read()
    child = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    with open("child.pid", "w") as out:
        out.write(str(child.pid))
    """
    sink = make_sink(tmp_path, script, retries=0)
    assert sink.write(payloads({"id": 1})) == []
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def test_a_command_that_cannot_start_fails_each_event_without_retrying(tmp_path: Path) -> None:
    sink = make_sink(tmp_path, HANDLER, retries=3, argv=("./no-such-program",))
    failures = sink.write(payloads({"id": 1}, {"id": 2}))
    detail = "cannot start './no-such-program': No such file or directory after 1 attempt"
    assert failures == [(0, "delivery_failed", detail), (1, "delivery_failed", detail)]


def test_terminate_ends_backoff_and_running_commands_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = """
    import json, os, sys, time
    event = json.loads(sys.stdin.read())
    with open("attempts.log", "a") as log:
        log.write(f"{event['id']} {os.getpid()}\\n")
    if event["bad"]:
        sys.exit(3)
    time.sleep(60)
    """
    monkeypatch.setattr(per_event, "BACKOFF_START_S", 30.0)
    sink = make_sink(tmp_path, script, retries=3, concurrency=2)
    # event 0 fails and waits 15-30 s to be retried; event 1 runs for a minute; 2 and 3
    # wait for a worker
    batch = payloads(*({"id": n, "bad": n == 0} for n in range(4)))
    result: list[list[tuple[int, str, str]]] = []
    writer = threading.Thread(target=lambda: result.append(sink.write(batch)), daemon=True)
    writer.start()
    deadline = time.monotonic() + 20
    while len(log_lines(tmp_path / "attempts.log")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(log_lines(tmp_path / "attempts.log")) == 2
    sink.terminate()
    writer.join(timeout=10)
    assert not writer.is_alive()
    [failures] = result
    assert [(index, reason) for index, reason, _ in failures] == [(n, "shutdown") for n in range(4)]
    assert failures[1][2] == "evroute was stopped before delivery: killed by SIGTERM"
    pids = [int(line.split()[1]) for line in log_lines(tmp_path / "attempts.log")]
    assert len(pids) == 2  # nothing started after terminate()
    assert all(gone(pid) for pid in pids)


def test_a_full_stderr_is_given_up_on_instead_of_holding_up_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(child_process, "STDERR_STALL_S", 0.05)
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(write_end, b"x" * 4096)  # fill it: nobody reads
        os.set_blocking(write_end, True)
        raised: list[OSError] = []

        def write() -> None:
            try:
                child_process.write_fully(write_end, b"[handler] a line\n")
            except OSError as error:
                raised.append(error)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(timeout=10)
        assert not writer.is_alive()  # it did not block
        assert len(raised) == 1
    finally:
        os.close(read_end)
        os.close(write_end)


def handler_config(folder: Path, script: str, extra: str = "") -> Path:
    """A config sending every event to `script` as a per-event command (retries: 1), then
    `extra`."""
    (folder / "handler.py").write_text(textwrap.dedent(script))
    return write_config(
        folder,
        textwrap.dedent(
            f"""
            version: 1
            dead_letter: dead.jsonl
            defaults: {{retries: 1}}
            consumers:
              handler:
                command: [{json.dumps(sys.executable)}, handler.py]
                per_event: true
            routes: [{{name: all, to: handler}}]
            """
        )
        + extra,
    )


def test_run_dead_letters_the_failing_events_and_delivers_the_rest(tmp_path: Path) -> None:
    config = handler_config(tmp_path, HANDLER)
    lines = [json.dumps({"id": n, "bad": n in (2, 3)}) for n in range(6)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [*EVROUTE, "run", str(config), "in.jsonl", "--stats-json", "stats.json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr.decode()
    assert log_lines(tmp_path / "delivered.log") == ["0", "1", "4", "5"]
    letters = [json.loads(line) for line in log_lines(tmp_path / "dead.jsonl")]
    assert [(letter["reason"], letter["event"]["id"], letter["line"]) for letter in letters] == [
        ("delivery_failed", 2, 3),
        ("delivery_failed", 3, 4),
    ]
    assert letters[0]["detail"] == "exit status 3 after 2 attempts; stderr: cannot handle 2"
    assert letters[0]["consumer"] == "handler"
    stats = read_stats(tmp_path / "stats.json")["consumers"]["handler"]
    assert (stats["delivered"], stats["dead_lettered"], stats["restarts"]) == (4, 2, 0)
    # the command's stderr, passed on and named; evroute's stdout stays for events
    assert b"[handler] cannot handle 2\n" in result.stderr
    assert result.stdout == b""


SLOW = """
import json, os, sys, time
event = json.loads(sys.stdin.read())
with open("pids.log", "a") as log:
    log.write(f"{os.getpid()}\\n")
time.sleep(event["sleep"])
with open("delivered.log", "a") as log:
    log.write(f"{event['id']}\\n")
"""


def test_sigterm_during_a_slow_run_dead_letters_the_rest_as_shutdown(tmp_path: Path) -> None:
    config = handler_config(tmp_path, SLOW, "shutdown_timeout: 1s\n")
    lines = [json.dumps({"id": n, "sleep": 0 if n == 0 else 60}) for n in range(5)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "in.jsonl", "--stats-json", "stats.json"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while len(log_lines(tmp_path / "pids.log")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(log_lines(tmp_path / "pids.log")) == 2  # the first done, the second running
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 143, stderr.decode()
    assert b"Traceback" not in stderr
    assert log_lines(tmp_path / "delivered.log") == ["0"]
    letters = [json.loads(line) for line in log_lines(tmp_path / "dead.jsonl")]
    assert sorted(letter["event"]["id"] for letter in letters) == [1, 2, 3, 4]
    assert {letter["reason"] for letter in letters} == {"shutdown"}
    stats = read_stats(tmp_path / "stats.json")["consumers"]["handler"]
    assert (stats["delivered"], stats["dead_lettered"]) == (1, 4)
    pids = [int(pid) for pid in log_lines(tmp_path / "pids.log")]
    assert len(pids) == 2
    assert all(gone(pid) for pid in pids)
