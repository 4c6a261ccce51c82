"""Child processes, as command inputs and command consumers both run them.

Their `command` and `restart` options, their own process group, backoff with jitter
between attempts (retried deliveries use it too), how they ended, stopping what they
leave behind, and passing their output to stderr with their name in front.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evroute.config.checker import Checker, join
from evroute.config.json_schema import (
    DURATION,
    Schema,
    dataclass_defaults,
    dataclass_keys,
    integer,
    object_schema,
)
from evroute.config.yaml_loader import Node

# its own process group, so a terminal's Ctrl-C reaches evroute alone
NEW_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
)


def backoff_delay(failures: int, first: float, limit: float) -> float:
    """The wait before attempt number `failures` + 1: doubling, capped, with jitter (half
    to all of it), so that consumers failing together do not retry in step."""
    delay: float = min(limit, first * 2.0 ** max(failures - 1, 0))
    return delay * random.uniform(0.5, 1.0)


# How long a process that should end may take, before SIGTERM, and again before SIGKILL.
LINGER_S = 1.0


@dataclass(frozen=True)
class RestartPolicy:
    """How a long-running command that exits is started again."""

    max: int = 5  # failures in a row before the consumer is failed
    backoff: float = 0.5  # the first delay; each failure in a row doubles it...
    max_backoff: float = 30.0  # ...up to this


# the JSON Schema of a command: argv, or a string split like a shell would
ARGV: Schema = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ],
    "description": "argv; a string is split like a shell would, but no shell runs",
}


def restart_schema() -> Schema:
    """The JSON Schema of `restart:`, for command inputs and consumers alike."""
    values = {"max": integer(0), "backoff": DURATION, "max_backoff": DURATION}
    return object_schema(dataclass_keys(RestartPolicy), values, dataclass_defaults(RestartPolicy))


def parse_argv(checker: Checker, node: Node, command_path: str) -> tuple[str, ...] | None:
    if isinstance(node.value, str):
        text = checker.string(node, command_path)
        if text is None:
            return None
        try:
            argv = shlex.split(text)
        except ValueError as error:
            checker.error(node, command_path, f"cannot split the command: {error}")
            return None
        if not argv:
            checker.error(node, command_path, "must not be empty")
            return None
        return tuple(argv)
    if node.is_sequence:
        words = [checker.string(item, join(command_path, i)) for i, item in enumerate(node.value)]
        if not words:
            checker.error(node, command_path, "must not be empty")
            return None
        if any(word is None for word in words):
            return None
        return tuple(word for word in words if word is not None)
    checker.error(node, command_path, "expected an argv list or a string")
    return None


def parse_restart(checker: Checker, node: Node, path: str) -> RestartPolicy | None:
    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, ("max", "backoff", "max_backoff"))
    policy = RestartPolicy()
    limit, backoff, max_backoff = policy.max, policy.backoff, policy.max_backoff
    if "max" in fields:
        value = checker.integer(fields["max"], join(path, "max"), 0)
        limit = limit if value is None else value
    for key in ("backoff", "max_backoff"):
        if key in fields:
            seconds = checker.duration(fields[key], join(path, key))
            if seconds is not None and key == "backoff":
                backoff = seconds
            elif seconds is not None:
                max_backoff = seconds
    if backoff > max_backoff:
        checker.error(
            fields.get("backoff", node),
            join(path, "backoff"),
            f"is longer than max_backoff ({max_backoff:g}s); make max_backoff at least backoff",
        )
        return None
    return RestartPolicy(limit, backoff, max_backoff)


POLL_S = 0.05
# A line a command prints without a newline is passed on in pieces of this size.
MAX_LINE_BYTES = 64 << 10
# evroute's stderr that stays full this long is taken to have no reader: it falls silent
# rather than hold up delivery. Written in pieces of PIPE_BUF, which a pipe with room
# takes without blocking.
STDERR_STALL_S = 1.0
PIPE_PIECE = 4096


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the process's whole group; only while its leader is not reaped, so that
    the number cannot belong to someone else."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(pgid: int, grace: float = 0.0, hurry: threading.Event | None = None) -> None:
    """Stop what a reaped command left in its group (`tee >(...)`, `job &`): `grace` to
    finish its work, then SIGTERM, then SIGKILL after LINGER_S; `hurry` cuts it short."""
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        if hurry is not None and hurry.is_set():
            break
        time.sleep(POLL_S)
    if not group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + LINGER_S
    while group_alive(pgid):
        if time.monotonic() > deadline or (hurry is not None and hurry.is_set()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(POLL_S)


def write_fully(fd: int, data: bytes) -> None:
    """Write it all, in pieces a pipe takes whole once it has room; raises OSError (EAGAIN)
    when the reader has left no room for STDERR_STALL_S."""
    view = memoryview(data)
    while view:
        _, writable, _ = select.select([], [fd], [], STDERR_STALL_S)
        if not writable:
            raise BlockingIOError(errno.EAGAIN, "stderr is full")
        view = view[os.write(fd, view[:PIPE_PIECE]) :]


class Stderr:
    """evroute's stderr, as the commands' output reaches it: whole lines, and silence
    once nobody reads it (closed, or full for a while), so delivery never waits on it."""

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.quiet = False
        self._lock = threading.Lock()  # lines from commands running side by side stay whole

    def say(self, lines: bytes) -> None:
        if self.quiet:
            return
        with self._lock:
            try:
                write_fully(self.fd, lines)
            except OSError:
                self.quiet = True


STDERR = Stderr()


class PrefixedLines:
    """One output pipe of a command, passed on line by line with the consumer's name in
    front; with `keep_tail`, its last bytes are kept (for a dead letter's detail)."""

    def __init__(self, prefix: bytes, say: Callable[[bytes], None], keep_tail: int = 0) -> None:
        self.prefix = prefix
        self.say = say
        self.keep_tail = keep_tail
        self.pending = b""
        self.tail = bytearray()
        self.cut = False  # the tail lost its beginning
        self.ended = False

    def feed(self, chunk: bytes) -> None:
        """Take what was read; b"" is the end."""
        if self.ended:
            return
        if self.keep_tail and chunk:
            self.tail += chunk
            if len(self.tail) > self.keep_tail:
                del self.tail[: len(self.tail) - self.keep_tail]
                self.cut = True
        if not chunk:
            self.ended = True
            if self.pending:
                self.say(self.prefix + self.pending + b"\n")
                self.pending = b""
            return
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        while len(self.pending) > MAX_LINE_BYTES:
            lines.append(self.pending[:MAX_LINE_BYTES])
            self.pending = self.pending[MAX_LINE_BYTES:]
        if lines:
            self.say(b"".join(self.prefix + line + b"\n" for line in lines))

    def text(self) -> str:
        text = bytes(self.tail).decode("utf-8", "backslashreplace").strip()
        return f"...{text}" if self.cut and text else text

    def pass_through(self, fd: int) -> None:
        """Read `fd` to its end, passing each line on; closes it."""
        try:
            while chunk := _read(fd):
                self.feed(chunk)
        finally:
            self.feed(b"")
            os.close(fd)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""
