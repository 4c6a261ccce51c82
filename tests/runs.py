"""Writing a config, running evroute as users do (in a subprocess), and reading what a run
leaves behind: the helpers the test modules share, imported by name. The shared fixtures
are in conftest.py, the config texts several modules use in configs.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EVROUTE = [sys.executable, "-m", "evroute"]
# the console script installed beside the Python running the tests
EVROUTE_BIN = Path(sys.executable).parent / "evroute"
# how long a signalled run may take to stop: a shutdown_timeout (10 s) and its grace, with
# room to spare
STOP_TIMEOUT = 20.0


def write_config(folder: Path, body: str, name: str = "routes.yaml") -> Path:
    """`body`, dedented, as the file `name` in `folder` (made if need be); its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment evroute runs in: this one without colour and without the
    developer's EVROUTE_KEY, then `env`."""
    return {
        **{name: value for name, value in os.environ.items() if name != "EVROUTE_KEY"},
        "NO_COLOR": "1",
        **(env or {}),
    }


def run_evroute(
    args: Sequence[str | Path],
    cwd: Path | None = None,
    stdin: bytes | None = b"",
    timeout: float = 30,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`evroute ARGS` in `cwd`, in `environment(env)`; whatever it ends with, never a
    traceback."""
    result = subprocess.run(
        [*EVROUTE, *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=environment(env),
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def validate_issues(folder: Path, body: str) -> tuple[int, list[tuple[str, str, int, str]]]:
    """`evroute validate --format json` of `body` written as `folder`/routes.yaml: its
    exit code, and (severity, path, line, message) of each issue it found."""
    config = write_config(folder, body)
    result = run_evroute(["validate", str(config), "--format", "json"], folder)
    report = json.loads(result.stdout)
    return result.returncode, [
        (issue["severity"], issue["path"], issue["line"], issue["message"])
        for issue in report["issues"]
    ]


def start_evroute(
    args: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`evroute ARGS` in `cwd`, left running: no stdin, its stdout dropped, its stderr
    to `cwd`/stderr.txt. Stop it with stop_evroute()."""
    with (cwd / "stderr.txt").open("wb") as stderr:
        return subprocess.Popen(
            [*EVROUTE, *map(str, args)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=environment(env),
        )


def stop_evroute(process: subprocess.Popen[bytes], cwd: Path) -> str:
    """SIGTERM to a run start_evroute() started, and wait (SIGKILL if it lingers); its
    stderr, which must hold no traceback. Its exit code is then process.returncode."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(STOP_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    stderr = (cwd / "stderr.txt").read_text(errors="replace")
    assert "Traceback" not in stderr, stderr
    return stderr


@contextmanager
def running_evroute(
    args: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """start_evroute() for the block, stop_evroute() after it."""
    process = start_evroute(args, cwd, env)
    try:
        yield process
    finally:
        stop_evroute(process, cwd)


def read_stats(path: Path) -> dict[str, Any]:
    """The stats a run wrote with --stats-json; each consumer's counts must add up."""
    stats: dict[str, Any] = json.loads(path.read_text())
    for name, consumer in stats["consumers"].items():
        assert consumer["enqueued"] == (
            consumer["delivered"] + consumer["dropped"] + consumer["dead_lettered"]
        ), name
    return stats


def read_jsonl(path: Path) -> list[Any]:
    """Every line of a JSON-lines file a run wrote (outputs, dead letters, an audit log);
    none when there is no such file."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def ids_in(path: Path) -> list[Any]:
    """The `id` of every event in a JSON-lines output, in order."""
    return [event["id"] for event in read_jsonl(path)]


def lines_in(path: Path) -> int:
    """How many whole lines the file holds so far (0 before it exists)."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str | Callable[[], str]
) -> None:
    """Wait until `predicate` is true; fail, saying `what` was awaited, after `timeout`
    seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"not within {timeout}s: {said}")
        time.sleep(0.05)


def id_lines(count: int, start: int = 0) -> bytes:
    """`count` events `{"id":N}` from N = `start`, as JSON lines."""
    return b"".join(b'{"id":%d}\n' % n for n in range(start, start + count))


def order_lines(count: int, start: int = 0) -> bytes:
    """`count` EventBridge-shaped orders numbered from `start` (`id`, a `detail-type` of
    OrderPlaced or OrderShipped by turns, an amount), as JSON lines."""
    return b"".join(
        b'{"id": %d, "detail-type": "%s", "detail": {"amount": %d}}\n'
        % (n, b"OrderPlaced" if n % 2 else b"OrderShipped", n % 300)
        for n in range(start, start + count)
    )


def without_trailing_spaces(text: str) -> str:
    """Text a terminal-width report printed, each line cut at its last non-space."""
    return "".join(line.rstrip() + "\n" for line in text.splitlines())
