"""End-to-end runs on real processes, files, pipes and signals."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from configs import ONE_FILE
from runs import EVROUTE, lines_in, order_lines, read_stats, wait_for, write_config

from evroute.cli import program


def signal_and_wait(process: subprocess.Popen[bytes], signum: int, timeout: float) -> bytes:
    """Send a signal, wait for the exit, and return stderr, which must hold no traceback."""
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=timeout)
    assert b"Traceback" not in stderr, stderr.decode()
    return stderr


def test_inputs_in_order_with_gzip_and_stdin(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        consumers:
          all: {file: out.jsonl}
        routes:
          - {name: all, to: all}
        """,
    )
    (tmp_path / "a.jsonl").write_bytes(order_lines(3, 0))
    with gzip.open(tmp_path / "b.jsonl.gz", "wb") as stream:
        stream.write(order_lines(3, 3))
    result = subprocess.run(
        [
            *EVROUTE,
            "run",
            str(config),
            str(tmp_path / "a.jsonl"),
            str(tmp_path / "b.jsonl.gz"),
            "-",
        ],
        input=order_lines(3, 6),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == order_lines(9)


def test_missing_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_FILE)
    code = program(["run", str(config), str(tmp_path / "nope.jsonl"), "--stats", "off"])
    assert code == 1
    assert "nope.jsonl: cannot read" in capsys.readouterr().err


def test_invalid_config_exits_1_with_locations(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: nobody}]
        """,
    )
    result = subprocess.run(
        [*EVROUTE, "run", str(config)], input=b"", capture_output=True, timeout=30
    )
    assert result.returncode == 1
    assert f"{config}:4:26: error: routes[0].to: no consumer is named 'nobody'" in (
        result.stderr.decode()
    )


SLEEPER = """
import sys, time
sys.stdin.readline()
time.sleep(6)
"""


def test_a_stuck_consumer_under_drop_newest_does_not_hold_up_the_others(tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    config = write_config(
        tmp_path,
        f"""
        version: 1
        consumers:
          archive: {{file: out/all.jsonl}}
          sleeper:
            command: [{json.dumps(sys.executable)}, sleeper.py]
            buffer: 10
            on_full: drop_newest
        routes:
          - {{name: all, to: [archive, sleeper]}}
        """,
    )
    count = 20_000
    (tmp_path / "in.jsonl").write_bytes(order_lines(count))
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # every event reaches the archive while the sleeper is still asleep
        wait_for(
            lambda: lines_in(tmp_path / "out/all.jsonl") >= count, 30, "every event in the archive"
        )
        assert process.poll() is None
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert b"Traceback" not in stderr
    assert process.returncode == 3  # events dropped by a full buffer
    assert (tmp_path / "out/all.jsonl").read_bytes() == order_lines(count)
    stats = read_stats(stats_path)
    assert stats["consumers"]["archive"]["delivered"] == count
    assert stats["consumers"]["sleeper"]["dropped"] > 0
    assert stats["consumers"]["sleeper"]["enqueued"] == count


def test_a_command_that_exits_early_is_dead_lettered_and_the_rest_goes_on(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          archive: {{file: all.jsonl}}
          quitter:
            command: [{json.dumps(sys.executable)}, -c, "import sys; sys.stdin.readline()"]
            restart: {{max: 0}}
        routes:
          - {{name: all, to: [archive, quitter]}}
        """,
    )
    count = 5_000
    (tmp_path / "in.jsonl").write_bytes(order_lines(count))
    stats_path = tmp_path / "stats.json"
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        capture_output=True,
        timeout=60,
    )
    assert b"Traceback" not in result.stderr
    assert result.returncode == 3
    assert b"consumer 'quitter' failed" in result.stderr
    assert (tmp_path / "all.jsonl").read_bytes() == order_lines(count)
    stats = read_stats(stats_path)
    quitter = stats["consumers"]["quitter"]
    assert quitter["state"] == "failed"
    assert quitter["dead_lettered"] > 0
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(dead) == quitter["dead_lettered"]
    assert {letter["reason"] for letter in dead} == {"delivery_failed"}
    assert all(letter["consumer"] == "quitter" and letter["route"] == "all" for letter in dead)
    assert all(letter["event"]["id"] == letter["line"] - 1 for letter in dead)


def test_stdout_closed_by_head_ends_quietly(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        consumers:
          out: {file: "-"}
        routes:
          - {name: all, to: out}
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(order_lines(200_000))
    command = (
        f"{' '.join(EVROUTE)} run {config} {tmp_path / 'in.jsonl'} --stats json | head -1;"
        " exit ${PIPESTATUS[0]}"
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60)
    assert result.stdout == order_lines(1)
    assert b"Traceback" not in result.stderr
    assert result.returncode == 0
    stats = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert stats["consumers"]["out"]["state"] == "closed"
    assert stats["consumers"]["out"]["dropped"] > 0


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_reading_drains_and_writes_stats(
    tmp_path: Path, signum: int, code: int
) -> None:
    config = write_config(
        tmp_path,
        f"""
        version: 1
        consumers:
          copy:
            command: [{json.dumps(sys.executable)}, copy.py]
          archive: {{file: all.jsonl}}
        routes:
          - {{name: all, to: [copy, archive]}}
        """,
    )
    (tmp_path / "copy.py").write_text(
        "import shutil, sys\nshutil.copyfileobj(sys.stdin, open('copy.jsonl', 'w'))\n"
    )
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats-json", str(stats_path)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(order_lines(5))
        process.stdin.flush()
        wait_for(lambda: lines_in(tmp_path / "all.jsonl") >= 5, 20, "5 events in all.jsonl")
        stderr = signal_and_wait(process, signum, timeout=20)
    finally:
        process.kill()
    assert process.returncode == code, stderr.decode()
    assert (tmp_path / "copy.jsonl").read_bytes() == order_lines(5)
    stats = read_stats(stats_path)
    assert stats["consumers"]["copy"]["delivered"] == 5


def start_stuck_run(tmp_path: Path, shutdown_timeout: str) -> tuple[subprocess.Popen[bytes], Path]:
    """evroute run feeding a command that never reads, with plenty of input queued."""
    config = write_config(
        tmp_path,
        f"""
        version: 1
        shutdown_timeout: {shutdown_timeout}
        dead_letter: dead.jsonl
        consumers:
          stuck:
            command: [{json.dumps(sys.executable)}, -c, "import time; time.sleep(60)"]
        routes:
          - {{name: all, to: stuck}}
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(order_lines(100_000))
    stats_path = tmp_path / "stats.json"
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        stderr=subprocess.PIPE,
    )
    return process, stats_path


def test_shutdown_of_a_stuck_consumer_is_bounded_and_dead_letters_the_rest(
    tmp_path: Path,
) -> None:
    process, stats_path = start_stuck_run(tmp_path, "1s")
    try:
        time.sleep(1.0)
        assert process.poll() is None  # held up by the stuck consumer, as `block` says
        started = time.monotonic()
        stderr = signal_and_wait(process, signal.SIGTERM, timeout=20)
        took = time.monotonic() - started
    finally:
        process.kill()
    assert process.returncode == 143, stderr.decode()
    assert took < 1.0 + 2.0 + 1.0  # shutdown_timeout + 2 s, with a second of slack
    stats = read_stats(stats_path)
    stuck = stats["consumers"]["stuck"]
    assert stuck["dead_lettered"] > 0
    reasons = {json.loads(line)["reason"] for line in (tmp_path / "dead.jsonl").open()}
    assert reasons == {"shutdown"}


def test_replay_rate_paces_events(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    (tmp_path / "in.jsonl").write_bytes(order_lines(11))
    started = time.monotonic()
    code = program(
        ["replay", str(config), str(tmp_path / "in.jsonl"), "--rate", "50", "--stats", "off"]
    )
    took = time.monotonic() - started
    assert code == 0
    assert took >= 10 / 50 * 0.9  # ten gaps of 20 ms
    assert (tmp_path / "out.jsonl").read_bytes() == order_lines(11)


def test_replay_speed_follows_event_times(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    lines = [json.dumps({"id": n, "meta": {"at": f"2026-11-01T09:00:0{n}Z"}}) for n in range(5)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    code = program(
        [
            "replay",
            str(config),
            str(tmp_path / "in.jsonl"),
            "--speed",
            "10",
            "--time-field",
            "meta.at",
            "--stats",
            "off",
        ]
    )
    took = time.monotonic() - started
    assert code == 0
    assert took >= 0.4 * 0.9  # four one-second gaps, ten times faster
    assert (tmp_path / "out.jsonl").read_text().splitlines() == lines


def test_replay_rejects_speed_with_rate(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    assert program(["replay", str(config), "--rate", "5", "--speed", "2"]) == 2
    assert program(["replay", str(config), "--rate", "0"]) == 2


def test_stats_json_on_stderr_and_interactive_prompt_routing(tmp_path: Path) -> None:
    """One line typed is one line routed, before the input ends."""
    config = write_config(
        tmp_path,
        """
        version: 1
        consumers: {out: {file: "-"}}
        routes: [{name: all, to: out}]
        """,
    )
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b'{"a": 1}\n')
        process.stdin.flush()
        assert process.stdout.readline() == b'{"a": 1}\n'
        process.stdin.close()
        process.wait(timeout=20)
        stderr = process.stderr.read() if process.stderr else b""
    finally:
        process.kill()
    assert process.returncode == 0
    stats = json.loads(stderr.decode().strip().splitlines()[-1])
    assert stats["input"] == {"events": 1, "malformed": 0, "bytes": 9}
    assert stats["routes"]["all"]["matched"] == 1


def test_an_unwritable_output_file_dead_letters_that_consumers_events_only(
    tmp_path: Path,
) -> None:
    if os.geteuid() == 0:
        target = "/proc/version"  # not writable, even by root
    else:
        target = str(tmp_path / "locked" / "x.jsonl")
        (tmp_path / "locked").mkdir(mode=0o500)
    config = write_config(
        tmp_path,
        f"""
        version: 1
        consumers:
          broken: {{file: {json.dumps(target)}, retries: 0}}
          good: {{file: good.jsonl}}
        routes: [{{name: all, to: [broken, good]}}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(order_lines(10))
    stats_path = tmp_path / "stats.json"
    code = program(
        [
            "run",
            str(config),
            str(tmp_path / "in.jsonl"),
            "--stats",
            "off",
            "--stats-json",
            str(stats_path),
        ]
    )
    assert code == 3
    assert (tmp_path / "good.jsonl").read_bytes() == order_lines(10)
    stats = read_stats(stats_path)
    broken = stats["consumers"]["broken"]
    assert (broken["delivered"], broken["dead_lettered"]) == (0, 10)
    # root can open /proc/version, and then each write fails; others cannot open the file
    assert broken["state"] == ("done" if os.geteuid() == 0 else "failed")


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    process, stats_path = start_stuck_run(tmp_path, "60s")
    try:
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.poll() is None  # draining, within a 60 s shutdown_timeout
        stderr = signal_and_wait(process, signal.SIGINT, timeout=10)  # far less than 60 s
    finally:
        process.kill()
    assert process.returncode == 130, stderr.decode()
    stuck = read_stats(stats_path)["consumers"]["stuck"]
    assert stuck["dead_lettered"] > 0
    reasons = {json.loads(line)["reason"] for line in (tmp_path / "dead.jsonl").open()}
    assert reasons == {"shutdown"}


def small_events(count: int) -> bytes:
    return b"".join(b'{"n":%d}\n' % n for n in range(count))


@pytest.mark.parametrize("policy", ["block", "spill"])
@pytest.mark.parametrize("buffer", ["", ", buffer: 100"])
def test_batches_larger_than_the_queue(tmp_path: Path, buffer: str, policy: str) -> None:
    """A read batch holds more events than the queue: the writer must be woken meanwhile."""
    config = write_config(
        tmp_path,
        f"""
        version: 1
        defaults: {{on_full: {policy}{buffer}}}
        consumers:
          all: {{file: out.jsonl}}
        routes: [{{name: all, to: all}}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(small_events(100_000))
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl")],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == small_events(100_000)


def test_a_consumer_failing_while_the_input_is_blocked_on_it(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          quitter:
            command: [{json.dumps(sys.executable)}, -c, "import sys; sys.stdin.readline()"]
            restart: {{max: 0}}
            buffer: 10
        routes: [{{name: all, to: quitter}}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(order_lines(50_000))
    stats_path = tmp_path / "stats.json"
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 3, result.stderr.decode()
    quitter = read_stats(stats_path)["consumers"]["quitter"]
    assert quitter["enqueued"] == 50_000
    assert quitter["dead_lettered"] > 0


def test_events_the_pipe_took_before_a_command_died_count_as_delivered(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        dead_letter: dead.jsonl
        consumers:
          three: {command: [head, -n, "3"], restart: {max: 0}}
        routes: [{name: all, to: three}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(order_lines(20_000))
    stats_path = tmp_path / "stats.json"
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats-json", str(stats_path)],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert result.stdout == order_lines(3)
    three = read_stats(stats_path)["consumers"]["three"]
    assert three["delivered"] >= 3
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").open()]
    assert len(dead) == three["dead_lettered"]
    # nothing head read is called undelivered, and the rest is there in order
    assert [letter["line"] for letter in dead] == list(range(three["delivered"] + 1, 20_001))


def test_a_folder_as_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, ONE_FILE)
    (tmp_path / "logs.gz").mkdir()
    code = program(["run", str(config), str(tmp_path), str(tmp_path / "logs.gz")])
    assert code == 1
    err = capsys.readouterr().err
    assert "is a folder" in err and "logs.gz" in err
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").read_bytes() == b""


def test_closed_standard_streams(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    command = f"{' '.join(EVROUTE)} run {config} --stats json <&- 2>&-"
    result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=30)
    assert result.returncode == 0
    assert (tmp_path / "out.jsonl").read_bytes() == b""


def test_ctrl_c_while_waiting_for_a_fifo_writer(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen([*EVROUTE, "run", str(config), str(fifo)], stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        signal_and_wait(process, signal.SIGINT, timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130


def test_a_full_stderr_does_not_stop_the_run(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          early:
            command: [{json.dumps(sys.executable)}, -c, "import sys; sys.stdin.readline()"]
            restart: {{max: 0}}
            buffer: 100
          archive: {{file: all.jsonl}}
        routes: [{{name: all, to: [early, archive]}}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(small_events(50_000))
    stats_path = tmp_path / "stats.json"
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [
                *EVROUTE,
                "run",
                str(config),
                str(tmp_path / "in.jsonl"),
                "--stats-json",
                str(stats_path),
            ],
            stderr=full,
            timeout=30,
        )
    assert result.returncode == 3
    assert (tmp_path / "all.jsonl").read_bytes() == small_events(50_000)
    assert read_stats(stats_path)["consumers"]["early"]["state"] == "failed"


def test_hostile_lines_are_dead_letters_not_tracebacks(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        dead_letter: dead.jsonl
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, transform: "@", to: all}]
        """,
    )
    lines = [
        '{"a":' * 1010 + "12345678901234567890" + "}" * 1010,  # too deep for the exact parser
        '{"a":' * 1000 + "1" + "}" * 1000,  # parses, but its transform cannot be written
        '{"a":"\\ud800","n":12345678901234567890}',  # a lone surrogate
        '{"x":1e999,"id":"1234567890123456789"}',  # out of a double's range
        '{"ok":1}',
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl")],
        capture_output=True,
        timeout=30,
    )
    assert b"Traceback" not in result.stderr
    assert result.returncode == 3
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"ok":1}\n'
    # orjson: the second letter's event is deeper than the json module reads
    reasons = [orjson.loads(line)["reason"] for line in (tmp_path / "dead.jsonl").open("rb")]
    assert reasons == ["malformed", "filter_error", "malformed", "malformed"]


def test_a_corrupt_gzip_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, ONE_FILE)
    good = gzip.compress(b'{"a":1}\n' * 1000)
    (tmp_path / "bad.jsonl.gz").write_bytes(good[:10] + b"\xff" * 40 + good[50:])
    code = program(["run", str(config), str(tmp_path / "bad.jsonl.gz"), "--stats", "off"])
    assert code == 1
    assert "bad.jsonl.gz: cannot decompress" in capsys.readouterr().err


def test_an_input_that_is_also_an_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        consumers: {all: {file: loop.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    (tmp_path / "loop.jsonl").write_bytes(order_lines(3))
    code = program(["run", str(config), str(tmp_path / "loop.jsonl"), "--stats", "off"])
    assert code == 1
    assert "consumer 'all' writes this file" in capsys.readouterr().err
    assert (tmp_path / "loop.jsonl").read_bytes() == order_lines(3)


def test_a_far_off_event_time_waits_without_crashing(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_FILE)
    (tmp_path / "in.jsonl").write_text('{"time": 0}\n{"time": 1e20}\n')
    process = subprocess.Popen(
        [*EVROUTE, "replay", str(config), str(tmp_path / "in.jsonl"), "--speed", "1"],
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: lines_in(tmp_path / "out.jsonl") >= 1, 20, "the first event routed")
        time.sleep(0.5)
        assert process.poll() is None  # waiting for the second event, as asked
        signal_and_wait(process, signal.SIGINT, timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130


def test_a_consumer_that_dies_while_idle_is_noticed_and_reaped(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""
        version: 1
        consumers:
          quitter: {{command: [{json.dumps(sys.executable)}, -c, "pass"], restart: {{max: 0}}}}
          archive: {{file: all.jsonl}}
        routes:
          - {{name: never, filter: "nothing", to: quitter}}
          - {{name: all, to: archive}}
        """,
    )
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats", "json"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None and process.stderr is not None
        line = process.stderr.readline()  # the warning comes while the run goes on
        assert b"consumer 'quitter' failed" in line
        children = subprocess.run(
            ["ps", "-o", "stat=", "--ppid", str(process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert not any(state.startswith("Z") for state in children)
        process.stdin.write(order_lines(2))
        process.stdin.close()
        stderr = process.stderr.read()
        process.wait(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0  # nothing was for it, so nothing was lost
    stats = json.loads(stderr.decode().strip().splitlines()[-1])
    assert stats["consumers"]["quitter"]["state"] == "failed"
    assert (tmp_path / "all.jsonl").read_bytes() == order_lines(2)


def test_what_a_command_leaves_running_is_stopped_with_it(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        shutdown_timeout: 1s
        consumers:
          spawner: {command: [sh, -c, "sleep 30 & echo $! > sleeper.pid; exec cat > /dev/null"]}
        routes: [{name: all, to: spawner}]
        """,
    )
    result = subprocess.run(
        [*EVROUTE, "run", str(config)], input=order_lines(3), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    pid = int((tmp_path / "sleeper.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True)
        if state.stdout.strip().startswith(b"Z"):
            break  # dead, waiting for its new parent to reap it
        time.sleep(0.1)
    else:
        pytest.fail("the command's background process outlived evroute")


def test_helpers_a_command_started_may_finish_their_work(tmp_path: Path) -> None:
    """A leader that exits before its helpers (`tee >(...)`) does not cut their work short."""
    config = write_config(
        tmp_path,
        """
        version: 1
        consumers:
          counter: {command: [bash, -c, "cat > >(sleep 0.3; wc -l > count.txt)"]}
        routes: [{name: all, to: counter}]
        """,
    )
    result = subprocess.run(
        [*EVROUTE, "run", str(config)], input=order_lines(10), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "count.txt").read_text().strip() == "10"


def test_a_command_exiting_with_the_input_is_not_a_failure(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        consumers:
          one: {command: [head, -n, "1"]}
          none: {command: [python3, -c, "pass"]}
        routes: [{name: all, to: [one]}, {name: never, filter: nothing, to: none}]
        """,
    )
    for _ in range(15):
        result = subprocess.run(
            [*EVROUTE, "run", str(config), "--stats", "json"],
            input=order_lines(1),
            capture_output=True,
            timeout=30,
        )
        stats = json.loads(result.stderr.decode().strip().splitlines()[-1])
        assert stats["consumers"]["one"]["state"] == "done", result.stderr.decode()
        assert result.returncode == 0
