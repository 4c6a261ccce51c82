"""The subscribe and publish policies at their edges: symlinks and `..`, glob
characters in folder names, producers stopped or quiet, numbers through a policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from evroute.config.model import FieldsPolicy
from evroute.shaping.fields_gate import apply_policy, parse_path

EVROUTE = [sys.executable, "-m", "evroute"]
ENV = {**os.environ, "NO_COLOR": "1"}


def write_config(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "routes.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [*EVROUTE, *args], cwd=cwd, input=b"", capture_output=True, timeout=30, env=ENV
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def ids(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_bytes().splitlines()]


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


# --- publish policy: which producer a file named on the command line is --------------


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
    result = run(["run", "routes.yaml", "link/../trusted/x.jsonl", "--stats", "off"], tmp_path)
    assert ids(tmp_path / "out.jsonl") == [], "a file outside every glob was let publish"
    assert result.returncode == 3


def test_dot_and_dotdot_paths_to_a_matched_file_keep_its_policy(tmp_path: Path) -> None:
    write_config(tmp_path, BANK)
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "x.jsonl").write_text(
        '{"source": "com.bank", "id": "ok"}\n{"source": "com.evil", "id": "evil"}\n'
    )
    result = run(["run", "routes.yaml", "./trusted/../trusted/x.jsonl", "--stats", "off"], tmp_path)
    assert ids(tmp_path / "out.jsonl") == ["ok"]
    assert result.returncode == 3  # com.evil denied


def test_a_config_folder_with_glob_characters_reads_its_own_files(tmp_path: Path) -> None:
    home = tmp_path / "proj[1]"
    write_config(home, BANK.replace("trusted/*", "data/*"))
    (home / "data").mkdir()
    (home / "data" / "x.jsonl").write_text('{"source": "com.bank", "id": "mine"}\n')
    (tmp_path / "proj1" / "data").mkdir(parents=True)
    (tmp_path / "proj1" / "data" / "x.jsonl").write_text('{"source": "com.bank", "id": "forged"}\n')
    run(["run", str(home / "routes.yaml"), "--stats", "off"], tmp_path)
    assert ids(home / "out.jsonl") == ["mine"]


# --- command producers when the run stops because no consumer is left ---------------


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


def start_reading_one_line(config: Path, folder: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*EVROUTE, "run", str(config), "--stats", "off"],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b'{"id": 0}\n'
    process.stdout.close()  # as `| head -n 1` does
    return process


def test_a_producer_stopped_because_no_consumer_is_left_is_not_restarted(
    tmp_path: Path,
) -> None:
    script = STARTED + """echo '{"id": 0}'; while :; do sleep 0.2; echo '{"id": 1}'; done"""
    config = producer_config(tmp_path, script)
    process = start_reading_one_line(config, tmp_path)
    try:
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
    process = start_reading_one_line(config, tmp_path)
    started = time.monotonic()
    try:
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


# --- subscribe policy edges that hold ------------------------------------------------


def policy(mode: str, *sources: str) -> FieldsPolicy:
    return FieldsPolicy(mode, tuple(parse_path(source) for source in sources), sources)


def test_redact_through_nested_arrays_and_quoted_names() -> None:
    event = {
        "a.b": 1,
        "a": {"b": 2, "c": 3},
        "items": [[{"card": 1, "k": 2}], {"card": 3}, 4],
    }
    got = apply_policy(policy("redact", '"a.b"', "items[*][*].card"), event)
    assert got == {"a": {"b": 2, "c": 3}, "items": [[{"k": 2}], {"card": 3}, 4]}
    assert event["items"] == [[{"card": 1, "k": 2}], {"card": 3}, 4]  # left as it was


def test_a_redacting_consumer_keeps_big_integers_and_a_bom_line(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        version: 1
        consumers:
          out: {file: out.jsonl, fields: {redact: [secret]}}
          rest: {file: rest.jsonl, fields: {include: [id]}}
        unmatched: rest
        routes:
          - {name: a, filter: "kind == 'a'", to: out}
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(
        b'\xef\xbb\xbf{"kind":"a","secret":"S1","big":123456789012345678901234,"f":1.5}\n'
        b'{"kind":"b","id":2,"secret":"S2"}\n'
    )
    result = run(["run", "routes.yaml", "in.jsonl", "--stats", "off"], tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == (
        b'{"kind":"a","big":123456789012345678901234,"f":1.5}\n'
    )
    assert (tmp_path / "rest.jsonl").read_bytes() == b'{"id":2}\n'


# --- the library, and numbers through a policy ---------------------------------------


def test_the_policy_module_imports_on_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import evroute.shaping.fields_gate"],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()


def test_a_redacting_consumer_keeps_integers_exact_and_floats_as_doubles() -> None:
    """As the README says: integers of any length exact; other numbers are doubles,
    written in their shortest form, as a transform writes them."""
    from evroute.core.json_codec import encode, parse_value

    line = (
        b'{"i":123456789012345678901234567890,"f":1.0,"a":0.10000000000000000001,'
        b'"b":12345678901234567890.5,"secret":1}'
    )
    restrict = policy("redact", "secret")
    out = encode(apply_policy(restrict, parse_value(line)))
    assert out == (
        b'{"i":123456789012345678901234567890,"f":1.0,"a":0.1,"b":1.2345678901234567e+19}'
    )
