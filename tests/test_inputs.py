"""Producers of a config's `inputs:` (file globs, stdin, commands) and their publish
policy, on real runs: processes, pipes and signals; and at their edges: symlinks and `..`,
glob characters in folder names, producers stopped or quiet."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from runs import (
    EVROUTE,
    environment,
    ids_in,
    lines_in,
    read_jsonl,
    read_stats,
    run_evroute,
    validate_issues,
    wait_for,
    write_config,
)


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def in_order(seen: list[Any], wanted: list[Any]) -> bool:
    """`wanted` appears in `seen` in this order (others may come between)."""
    position = {value: n for n, value in enumerate(seen)}
    return all(position[a] < position[b] for a, b in itertools.pairwise(wanted))


# --- reading every producer ---------------------------------------------------------


def test_run_without_inputs_named_reads_every_producer(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    (config_dir / "data").mkdir(parents=True)
    (config_dir / "data" / "a.jsonl").write_bytes(jsonl({"id": "a1"}, {"id": "a2"}))
    (config_dir / "data" / "b.jsonl").write_bytes(jsonl({"id": "b1"}))
    (config_dir / "data" / "c.txt").write_bytes(b"not matched by the glob\n")
    (config_dir / "gen.jsonl").write_bytes(jsonl({"id": "g1"}, {"id": "g2"}, {"id": "g3"}))
    config = write_config(
        config_dir,
        """
        version: 1
        audit: audit.jsonl
        inputs:
          - {name: files, file: "data/*.jsonl"}
          - {name: gen, command: ["cat", "gen.jsonl"]}
          - {name: console, stdin: true}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    work = tmp_path / "work"
    work.mkdir()
    # run from elsewhere: the glob and the command's working folder follow the config
    result = run_evroute(
        ["run", str(config), "--stats", "off", "--stats-json", "stats.json"],
        work,
        stdin=jsonl({"id": "s1"}, {"id": "s2"}),
    )
    assert result.returncode == 0, result.stderr.decode()
    delivered = ids_in(config_dir / "out.jsonl")
    assert Counter(delivered) == Counter(["a1", "a2", "b1", "g1", "g2", "g3", "s1", "s2"])
    # each producer's own order holds; the files of a glob are read in name order
    assert in_order(delivered, ["a1", "a2", "b1"])
    assert in_order(delivered, ["g1", "g2", "g3"])
    assert in_order(delivered, ["s1", "s2"])
    stats = read_stats(work / "stats.json")
    assert stats["input"]["events"] == 8
    per_input = {name: s["events"] for name, s in stats["inputs"].items()}
    a_name = os.path.relpath(config_dir / "data" / "a.jsonl", work)
    b_name = os.path.relpath(config_dir / "data" / "b.jsonl", work)
    assert per_input == {a_name: 2, b_name: 1, "gen": 3, "-": 2}
    assert all(s["denied"] == 0 for s in stats["inputs"].values())
    # the audit names each event's input and line there
    where = {
        r["event"]: (r["input"], r["line"])
        for r in read_jsonl(config_dir / "audit.jsonl")
        if r["outcome"] == "matched"
    }
    assert where["b1"] == (b_name, 1)
    assert where["g3"] == ("gen", 3)
    assert where["s2"] == ("-", 2)


def test_inputs_named_on_the_command_line_win_over_the_producers(tmp_path: Path) -> None:
    (tmp_path / "mine.jsonl").write_bytes(jsonl({"id": "mine"}))
    (tmp_path / "theirs.jsonl").write_bytes(jsonl({"id": "theirs"}))
    config = write_config(
        tmp_path,
        """
        version: 1
        inputs:
          - {name: theirs, file: theirs.jsonl}
          - {name: gen, command: ["echo", '{"id": "gen"}']}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(["run", str(config), "mine.jsonl", "--stats", "off"], tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert ids_in(tmp_path / "out.jsonl") == ["mine"]


def test_a_producer_whose_glob_matches_nothing_stops_the_run_before_reading(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl({"id": "a"}))
    config = write_config(
        tmp_path,
        """
        version: 1
        inputs:
          - {name: present, file: a.jsonl}
          - {name: ghost, file: "missing-*.jsonl"}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(["run", str(config), "--stats", "off"], tmp_path)
    assert result.returncode == 1
    assert "input ghost: 'missing-*.jsonl' matches no file" in result.stderr.decode()
    assert ids_in(tmp_path / "out.jsonl") == []


# --- command producers: restarts, failures, cut-off lines, Ctrl-C -------------------

# Prints one event numbered by its run; fails (exit 3) but on its third run.
FLAKY = (
    "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; "
    'echo "{\\"id\\": \\"run$n\\"}"; [ $n -ge 3 ] && exit 0; exit 3'
)


def flaky_config(folder: Path, audit: str = "") -> Path:
    """FLAKY as the one producer, restarted twice at most; every event to out.jsonl."""
    return write_config(
        folder,
        f"""
        version: 1
        {audit}
        inputs:
          - name: flaky
            command: ["sh", "-c", {json.dumps(FLAKY)}]
            restart: {{max: 2, backoff: 10ms}}
        consumers: {{all: {{file: out.jsonl}}}}
        routes: [{{name: all, to: all}}]
        """,
    )


def test_a_failing_command_producer_is_restarted_and_its_lines_numbered_on(
    tmp_path: Path,
) -> None:
    config = flaky_config(tmp_path, audit="audit: audit.jsonl")
    result = run_evroute(
        ["run", str(config), "--stats", "off", "--stats-json", "stats.json"], tmp_path
    )
    assert result.returncode == 0, result.stderr.decode()
    assert ids_in(tmp_path / "out.jsonl") == ["run1", "run2", "run3"]
    stderr = result.stderr.decode()
    assert stderr.count("input flaky: the command ended (exit status 3)") == 2, stderr
    lines = [
        (r["event"], r["line"])
        for r in read_jsonl(tmp_path / "audit.jsonl")
        if r["outcome"] == "matched"
    ]
    assert lines == [("run1", 1), ("run2", 2), ("run3", 3)]
    stats = read_stats(tmp_path / "stats.json")
    assert stats["inputs"]["flaky"]["events"] == 3


def test_a_command_producer_reports_its_restarts_in_the_stats(tmp_path: Path) -> None:
    config = flaky_config(tmp_path)
    result = run_evroute(
        ["run", str(config), "--stats", "off", "--stats-json", "stats.json"], tmp_path
    )
    assert result.returncode == 0, result.stderr.decode()
    assert read_stats(tmp_path / "stats.json")["inputs"]["flaky"].get("restarts") == 2


def test_a_command_producer_that_keeps_failing_ends_the_run_with_an_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl({"id": "file"}))
    config = write_config(
        tmp_path,
        """
        version: 1
        inputs:
          - name: broken
            command: ["sh", "-c", "echo oops >&2; exit 7"]
            restart: {max: 2, backoff: 10ms}
          - {name: files, file: a.jsonl}
          - name: slow
            command: ["sh", "-c", "for n in 1 2 3 4; do sleep 0.1; echo '{\\"id\\": '$n'}'; done"]
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(
        ["run", str(config), "--stats", "off", "--stats-json", "stats.json"], tmp_path
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "input broken: the command failed 3 times in a row; last: exit status 7" in stderr
    assert "[broken] oops" in stderr  # its stderr, marked as its own
    # the other producers went on, the slow one past the failure
    assert Counter(ids_in(tmp_path / "out.jsonl")) == Counter(["file", 1, 2, 3, 4])
    stats = read_stats(tmp_path / "stats.json")
    assert stats["consumers"]["all"]["delivered"] == 5


def test_a_command_producer_killed_without_restarts_left_fails_at_once(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        inputs:
          - {name: killed, command: ["sh", "-c", "kill -9 $$$$"], restart: {max: 0}}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(["run", str(config), "--stats", "off"], tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "input killed:" in stderr and "killed by SIGKILL" in stderr
    assert "starting it again" not in stderr


def test_a_command_producer_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        inputs:
          - {name: missing, command: ["./no-such-program"]}
          - {name: fine, command: ["echo", '{"id": 1}']}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(["run", str(config), "--stats", "off"], tmp_path)
    assert result.returncode == 1
    assert "input missing: cannot start './no-such-program'" in result.stderr.decode()
    assert ids_in(tmp_path / "out.jsonl") == [1]


# Prints {"id": "before"} and half a line, then crashes; prints {"id": "after"} and
# ends well on its second run: 17 + 11 + 16 bytes in all.
CRASHY = (
    "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; "
    'if [ $n -ge 2 ]; then echo \'{"id": "after"}\'; exit 0; fi; '
    'echo \'{"id": "before"}\'; printf \'{"id": "cut\'; exit 9'
)


def crashy_config(folder: Path) -> Path:
    return write_config(
        folder,
        f"""
        version: 1
        dead_letter: dead.jsonl
        inputs:
          - name: crashy
            command: ["sh", "-c", {json.dumps(CRASHY)}]
            restart: {{max: 3, backoff: 10ms}}
        consumers: {{all: {{file: out.jsonl}}}}
        routes: [{{name: all, to: all}}]
        """,
    )


def test_a_line_cut_off_by_a_crash_is_malformed_and_the_next_run_starts_clean(
    tmp_path: Path,
) -> None:
    config = crashy_config(tmp_path)
    result = run_evroute(
        ["run", str(config), "--stats", "off", "--stats-json", "stats.json"], tmp_path
    )
    assert result.returncode == 3, result.stderr.decode()
    assert ids_in(tmp_path / "out.jsonl") == ["before", "after"]
    (letter,) = read_jsonl(tmp_path / "dead.jsonl")
    assert letter["reason"] == "malformed"
    assert (letter["input"], letter["line"], letter["raw"]) == ("crashy", 2, '{"id": "cut')
    stats = read_stats(tmp_path / "stats.json")
    assert stats["inputs"]["crashy"]["malformed"] == 1
    assert stats["inputs"]["crashy"]["events"] == 2


def test_the_bytes_of_a_command_producer_are_what_it_wrote(tmp_path: Path) -> None:
    config = crashy_config(tmp_path)
    result = run_evroute(
        ["run", str(config), "--stats", "off", "--stats-json", "stats.json"], tmp_path
    )
    assert result.returncode == 3, result.stderr.decode()
    stats = read_stats(tmp_path / "stats.json")
    assert stats["inputs"]["crashy"]["bytes"] == 17 + 11 + 16


def group_alive(pgid: int) -> bool:
    """A process of the group still runs (zombies, which init may be slow to reap, aside)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # after the command's name in parentheses: state, ppid, pgrp
        state, _, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            return True
    return False


@pytest.mark.parametrize(
    ("signum", "code", "trap"),
    [
        (signal.SIGINT, 130, ""),
        (signal.SIGTERM, 143, ""),
        # a producer deaf to SIGTERM is killed after a grace
        (signal.SIGINT, 130, "trap '' TERM; "),
    ],
)
def test_a_signal_stops_a_producer_that_runs_forever(
    tmp_path: Path, signum: int, code: int, trap: str
) -> None:
    script = trap + "echo $$$$ > pid; while :; do echo '{\"id\": 1}'; sleep 0.05; done"
    config = write_config(
        tmp_path,
        f"""
        version: 1
        inputs:
          - {{name: forever, command: ["sh", "-c", {json.dumps(script)}]}}
        consumers: {{all: {{file: out.jsonl}}}}
        routes: [{{name: all, to: all}}]
        """,
    )
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats", "off"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        out = tmp_path / "out.jsonl"
        wait_for(lambda: lines_in(out) >= 3, 20, "three events routed")
        producer = int((tmp_path / "pid").read_text())
        assert group_alive(producer)
        process.send_signal(signum)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert b"Traceback" not in stderr, stderr.decode()
    assert process.returncode == code, stderr.decode()
    assert took < 4, took
    with pytest.raises(ProcessLookupError):
        os.kill(producer, 0)  # reaped
    assert not group_alive(producer)  # its sleeps too


def producer_config(folder: Path, script: str) -> Path:
    """A config whose one producer runs `script` with sh; its one consumer is stdout."""
    return write_config(
        folder,
        f"""
        version: 1
        inputs:
          - {{name: gen, command: ["sh", "-c", {json.dumps(script)}]}}
        consumers: {{out: {{file: "-"}}}}
        routes: [{{name: all, to: out}}]
        """,
    )


def start_reading_one_line(config: Path, folder: Path) -> tuple[subprocess.Popen[bytes], bytes]:
    """`evroute run CONFIG` in `folder`, and the first line of its stdout, which is then
    closed, as `| head -n 1` does."""
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats", "off"],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    process.stdout.close()
    return process, line


def test_reading_stops_when_the_reader_of_stdout_leaves(tmp_path: Path) -> None:
    script = "echo $$$$ > pid; while :; do echo '{\"id\": 1}'; sleep 0.01; done"
    config = producer_config(tmp_path, script)
    process, line = start_reading_one_line(config, tmp_path)
    try:
        assert line == b'{"id": 1}\n'
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert b"Traceback" not in stderr, stderr.decode()
    assert process.returncode == 0, stderr.decode()
    assert not group_alive(int((tmp_path / "pid").read_text()))


def stop_producers(folder: Path) -> None:
    """End the producer processes this test caused to start (their pids are in
    `starts`, each the leader of its own group), should evroute have left any."""
    starts = folder / "starts"
    for pid in map(int, starts.read_text().split()) if starts.exists() else []:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"starts" in cmdline:  # still that shell, not a process that took its pid
            os.killpg(pid, signal.SIGKILL)


# each start of the producer adds its pid to `starts` ($$ is written $$$$ in a config)
STARTED = "echo $$$$ >> starts; "


def test_a_producer_stopped_because_no_consumer_is_left_is_not_restarted(
    tmp_path: Path,
) -> None:
    script = STARTED + """echo '{"id": 0}'; while :; do sleep 0.2; echo '{"id": 1}'; done"""
    config = producer_config(tmp_path, script)
    process, line = start_reading_one_line(config, tmp_path)
    try:
        assert line == b'{"id": 0}\n'
        _, stderr = process.communicate(timeout=15)
        time.sleep(2)  # a restart, if any, comes within the backoff (0.5 s) and the join
        starts = (tmp_path / "starts").read_text().split()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        stop_producers(tmp_path)
    assert b"Traceback" not in stderr, stderr.decode()
    assert b"starting it again" not in stderr, stderr.decode()
    assert len(starts) == 1, f"the producer was started {len(starts)} times"


def test_a_quiet_producer_does_not_keep_a_run_without_consumers_alive(tmp_path: Path) -> None:
    # two lines (the second finds stdout closed), then silence for 30 s
    script = STARTED + """echo '{"id": 0}'; sleep 1; echo '{"id": 1}'; sleep 30"""
    config = producer_config(tmp_path, script)
    process, line = start_reading_one_line(config, tmp_path)
    started = time.monotonic()
    try:
        assert line == b'{"id": 0}\n'
        try:
            process.wait(timeout=8)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # evroute stops its producer itself
            process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        stop_producers(tmp_path)
    took = time.monotonic() - started
    assert took < 6, f"the run went on {took:.1f}s after its last consumer left"


# --- publish policy -----------------------------------------------------------------

PUBLISHED = [
    {"id": "orders", "source": "com.example.orders"},
    {"id": "orders2", "source": "com.example.orders2"},
    {"id": "users", "source": "com.example.users"},
    {"id": "deep", "source": "com.example.eu.users"},
    {"id": "other", "source": "org.other"},
    {"id": "upper", "source": "COM.EXAMPLE.ORDERS"},
    {"id": "number", "source": 5},
    {"id": "none"},
]
ALL_IDS = [event["id"] for event in PUBLISHED]

POLICY_CONFIG = """
version: 1
dead_letter: dead.jsonl
inputs:
  - {name: orders, file: "data/orders-*.jsonl", publish: [com.example.orders, org.other]}
  - {name: console, stdin: true, publish: ["com.example.*"]}
  - {name: legacy, command: ["cat", "data/legacy.jsonl"]}
consumers: {all: {file: out.jsonl}}
routes: [{name: all, to: all}]
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    config_dir = tmp_path / "conf"
    write_config(config_dir, POLICY_CONFIG)
    data = config_dir / "data"
    data.mkdir()
    for name in ("orders-1.jsonl", "legacy.jsonl", "stray.jsonl"):
        (data / name).write_bytes(jsonl(*PUBLISHED))
    (tmp_path / "work").mkdir()
    return config_dir


def denied_by_input(dead: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for letter in read_jsonl(dead):
        assert letter["reason"] == "denied", letter
        assert (letter["route"], letter["consumer"]) == (None, None)
        found.setdefault(letter["input"], []).append(letter["event"]["id"])
    return found


def test_publish_policy_of_the_producers(policy_dir: Path) -> None:
    work = policy_dir.parent / "work"
    result = run_evroute(
        ["run", str(policy_dir / "routes.yaml"), "--stats", "off", "--stats-json", "stats.json"],
        work,
        stdin=jsonl(*PUBLISHED),
    )
    assert result.returncode == 3, result.stderr.decode()
    orders_file = os.path.relpath(policy_dir / "data" / "orders-1.jsonl", work)
    allowed_orders = ["orders", "other"]  # exact names only: not orders2, not the upper case
    allowed_console = ["orders", "orders2", "users", "deep"]  # com.example.*
    assert Counter(ids_in(policy_dir / "out.jsonl")) == Counter(allowed_orders + allowed_console)
    denied = denied_by_input(policy_dir / "dead.jsonl")
    assert denied == {
        orders_file: [i for i in ALL_IDS if i not in allowed_orders],
        "-": [i for i in ALL_IDS if i not in allowed_console],
        "legacy": ALL_IDS,  # no publish list while others have one: deny by default
    }
    details = {
        (x["input"], x["event"]["id"]): x["detail"] for x in read_jsonl(policy_dir / "dead.jsonl")
    }
    assert "producer orders" in details[(orders_file, "users")]
    assert "com.example.users" in details[(orders_file, "users")]
    assert "producer console" in details[("-", "other")]
    assert "no source" in details[("-", "none")]
    assert "producer legacy has no publish list" in details[("legacy", "orders")]
    stats = read_stats(work / "stats.json")
    assert {name: s["denied"] for name, s in stats["inputs"].items()} == {
        orders_file: 6,
        "-": 4,
        "legacy": 8,
    }
    assert stats["consumers"]["all"]["delivered"] == 6


def test_publish_policy_of_inputs_named_on_the_command_line(policy_dir: Path) -> None:
    work = policy_dir.parent / "work"
    data = policy_dir / "data"
    # named from elsewhere: matched to the config's globs by where they are
    orders = os.path.relpath(data / "orders-1.jsonl", work)
    stray = os.path.relpath(data / "stray.jsonl", work)
    legacy = os.path.relpath(data / "legacy.jsonl", work)
    result = run_evroute(
        [
            "run",
            str(policy_dir / "routes.yaml"),
            orders,
            stray,
            legacy,
            "-",
            "--stats",
            "off",
            "--stats-json",
            "stats.json",
        ],
        work,
        stdin=jsonl(*PUBLISHED),
    )
    assert result.returncode == 3, result.stderr.decode()
    assert ids_in(policy_dir / "out.jsonl") == [
        "orders",
        "other",
        "orders",
        "orders2",
        "users",
        "deep",
    ]
    denied = denied_by_input(policy_dir / "dead.jsonl")
    assert denied[orders] == ["orders2", "users", "deep", "upper", "number", "none"]
    assert denied[stray] == ALL_IDS  # no glob of inputs: matches it
    assert denied[legacy] == ALL_IDS  # a command's file is no file producer
    assert denied["-"] == ["other", "upper", "number", "none"]
    details = {
        (x["input"], x["event"]["id"]): x["detail"] for x in read_jsonl(policy_dir / "dead.jsonl")
    }
    assert f"input {stray} matches no producer" in details[(stray, "orders")]
    stats = read_stats(work / "stats.json")
    assert stats["inputs"][stray]["denied"] == 8


BANK = """
version: 1
dead_letter: dead.jsonl
inputs:
  - name: bank
    file: trusted/*.jsonl
    publish: [com.bank]
consumers:
  out: {file: out.jsonl}
routes:
  - {name: all, to: out}
"""


def test_a_path_through_a_symlink_and_dotdot_does_not_borrow_a_policy(tmp_path: Path) -> None:
    write_config(tmp_path, BANK)
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "x.jsonl").write_text('{"source": "com.bank", "id": "real"}\n')
    # what the path really opens: <elsewhere>/trusted/x.jsonl, which no glob matches
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "trusted").mkdir()
    (elsewhere / "trusted" / "x.jsonl").write_text('{"source": "com.bank", "id": "forged"}\n')
    (tmp_path / "link").symlink_to(elsewhere / "deep")
    result = run_evroute(
        ["run", "routes.yaml", "link/../trusted/x.jsonl", "--stats", "off"], tmp_path
    )
    assert ids_in(tmp_path / "out.jsonl") == [], "a file outside every glob was let publish"
    assert result.returncode == 3


def test_dot_and_dotdot_paths_to_a_matched_file_keep_its_policy(tmp_path: Path) -> None:
    write_config(tmp_path, BANK)
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "x.jsonl").write_text(
        '{"source": "com.bank", "id": "ok"}\n{"source": "com.evil", "id": "evil"}\n'
    )
    result = run_evroute(
        ["run", "routes.yaml", "./trusted/../trusted/x.jsonl", "--stats", "off"], tmp_path
    )
    assert ids_in(tmp_path / "out.jsonl") == ["ok"]
    assert result.returncode == 3  # com.evil denied


def test_a_config_folder_with_glob_characters_reads_its_own_files(tmp_path: Path) -> None:
    home = tmp_path / "proj[1]"
    write_config(home, BANK.replace("trusted/*", "data/*"))
    (home / "data").mkdir()
    (home / "data" / "x.jsonl").write_text('{"source": "com.bank", "id": "mine"}\n')
    (tmp_path / "proj1" / "data").mkdir(parents=True)
    (tmp_path / "proj1" / "data" / "x.jsonl").write_text('{"source": "com.bank", "id": "forged"}\n')
    run_evroute(["run", str(home / "routes.yaml"), "--stats", "off"], tmp_path)
    assert ids_in(home / "out.jsonl") == ["mine"]


def test_a_file_named_through_a_symlink_gets_its_producers_policy(policy_dir: Path) -> None:
    work = policy_dir.parent / "work"
    (work / "link").symlink_to(policy_dir / "data")
    result = run_evroute(
        ["run", str(policy_dir / "routes.yaml"), "link/orders-1.jsonl", "--stats", "off"],
        work,
    )
    assert ids_in(policy_dir / "out.jsonl") == ["orders", "other"]
    assert result.returncode == 3, result.stderr.decode()


def test_stdin_named_without_a_stdin_producer_may_publish_nothing(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_bytes(jsonl(*PUBLISHED))
    config = write_config(
        tmp_path,
        """
        version: 1
        dead_letter: dead.jsonl
        inputs: [{name: files, file: "data/*.jsonl", publish: ["*"]}]
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(
        ["run", str(config), "-", "--stats", "off"], tmp_path, stdin=jsonl(*PUBLISHED)
    )
    assert result.returncode == 3, result.stderr.decode()
    assert ids_in(tmp_path / "out.jsonl") == []
    assert denied_by_input(tmp_path / "dead.jsonl") == {"-": ALL_IDS}
    # the same events from the file: "*" allows every string source, not a missing one
    (tmp_path / "dead.jsonl").unlink()
    result = run_evroute(["run", str(config), "--stats", "off"], tmp_path)
    assert result.returncode == 3, result.stderr.decode()
    assert ids_in(tmp_path / "out.jsonl") == [i for i in ALL_IDS if i not in ("number", "none")]
    assert denied_by_input(tmp_path / "dead.jsonl") == {"data/a.jsonl": ["number", "none"]}


def test_without_any_publish_list_nothing_is_denied(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl(*PUBLISHED))
    config = write_config(
        tmp_path,
        """
        version: 1
        dead_letter: dead.jsonl
        inputs:
          - {name: files, file: "a.jsonl"}
          - {name: console, stdin: true}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(["run", str(config), "--stats", "off"], tmp_path, stdin=jsonl(*PUBLISHED))
    assert result.returncode == 0, result.stderr.decode()
    assert Counter(ids_in(tmp_path / "out.jsonl")) == Counter(ALL_IDS * 2)
    (tmp_path / "b.jsonl").write_bytes(jsonl(*PUBLISHED))
    result = run_evroute(["run", str(config), "b.jsonl", "--stats", "off"], tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert not (tmp_path / "dead.jsonl").exists()


# --- validate -----------------------------------------------------------------------


def test_validate_reports_every_problem_of_inputs_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"")
    code, issues = validate_issues(
        tmp_path,
        """
        version: 1
        inputs:
          - {name: both, file: a.jsonl, stdin: true}
          - {name: kindless}
          - {file: a.jsonl}
          - {name: once, stdin: true}
          - {name: once, command: [cat]}
          - {name: again, stdin: true}
          - {name: filed, file: a.jsonl, restart: {max: 1}}
          - {name: loose, file: a.jsonl, publish: com.example}
          - {name: bus, nats: {subject: orders}}
          - {name: ghost, file: "none-*.jsonl"}
          - {name: dash, file: "-"}
          - {name: "bad name", stdin: true}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    assert code == 1
    by_path = {path: (severity, line, message) for severity, path, line, message in issues}
    expected = {
        "inputs[0]": ("error", 4, "has both file and stdin"),
        "inputs[1]": ("error", 5, "has no kind"),
        "inputs[2].name": ("error", 6, "missing"),
        "inputs[4].name": ("error", 8, "'once' is named twice"),
        "inputs[5]": ("error", 9, "stdin is read by inputs[3] already"),
        "inputs[6].restart": ("error", 10, "applies only to command inputs"),
        "inputs[7].publish": ("error", 11, "expected a list of event sources"),
        "inputs[8].nats.url": ("error", 12, "is missing: the server"),
        "inputs[9].file": ("warning", 13, "'none-*.jsonl' matches no file"),
        "inputs[10].file": ("error", 14, "stdin: true"),
        "inputs[11].name": ("error", 15, ""),
    }
    for path, (severity, line, message) in expected.items():
        assert path in by_path, (path, issues)
        assert by_path[path][:2] == (severity, line), (path, by_path[path])
        assert message in by_path[path][2], (path, by_path[path])
    # inputs[8] has two: no url and no stream
    assert len([i for i in issues if i[0] == "error"]) == 11, issues


def test_validate_accepts_good_inputs_and_warns_of_an_empty_publish_list(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"")
    code, issues = validate_issues(
        tmp_path,
        """
        version: 1
        inputs:
          - {name: files, file: "*.jsonl", publish: [com.example.orders, "com.example.*"]}
          - {name: console, stdin: true, publish: []}
          - name: gen
            command: "python3 -c 'print(1)'"
            restart: {max: 2, backoff: 10ms, max_backoff: 1s}
        consumers: {all: {file: out.jsonl}}
        routes: [{name: all, to: all}]
        """,
    )
    assert code == 0, issues
    assert [(s, p) for s, p, _, _ in issues] == [("warning", "inputs[1].publish")]
    assert "may publish nothing" in issues[0][3]
