"""`command:` consumers: a long-running process that gets events as JSON lines on stdin."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evroute.fileio import PartialWrite, write_all
from evroute.sinks.base import LINGER_S, EventFailure, Sink, SinkFailed, SinkKind, join_lines

# What the pipe to a command holds. With `ack: none` an event is delivered once the pipe
# has it, so this is also what a command that dies can take with it.
PIPE_BYTES = 256 << 10

if TYPE_CHECKING:
    from evroute.config.check import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node
    from evroute.expr import Expression


@dataclass(frozen=True)
class RestartPolicy:
    """How a long-running command that exits is started again."""

    max: int = 5  # failures in a row before the consumer is failed
    backoff: float = 0.5  # the first delay; each failure in a row doubles it...
    max_backoff: float = 30.0  # ...up to this


@dataclass(frozen=True)
class CommandOptions:
    argv: tuple[str, ...]
    restart: RestartPolicy = RestartPolicy()
    ack: str = "none"  # none | line
    per_event: bool = False
    concurrency: int = 1
    key: Expression | None = None
    timeout: float = 60.0


ACK_MODES = ("none", "line")
PER_EVENT_KEYS = ("concurrency", "key", "timeout")
LONG_RUNNING_KEYS = ("restart", "ack")


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
        from evroute.config.check import join

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
    from evroute.config.check import join

    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, ("max", "backoff", "max_backoff"), {})
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


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> CommandOptions | None:
    from evroute.config.check import join

    argv = parse_argv(checker, fields["command"], join(path, "command"))
    per_event = False
    if "per_event" in fields:
        node = fields["per_event"]
        if isinstance(node.value, bool):
            per_event = node.value
        else:
            checker.error(node, join(path, "per_event"), "expected true or false")
    wrong = PER_EVENT_KEYS if not per_event else LONG_RUNNING_KEYS
    for key in wrong:
        if key in fields:
            checker.error(
                fields[key],
                join(path, key),
                f"applies only to per-event commands; add per_event: true or remove {key}"
                if not per_event
                else "applies only to long-running commands; remove it or per_event: true",
            )
    options = CommandOptions(argv or ("",), per_event=per_event)
    ok = argv is not None
    if "restart" in fields and not per_event:
        restart = parse_restart(checker, fields["restart"], join(path, "restart"))
        ok = ok and restart is not None
        options = replace(options, restart=restart or options.restart)
    if "ack" in fields and not per_event:
        ack = checker.choice(fields["ack"], join(path, "ack"), ACK_MODES)
        ok = ok and ack is not None
        options = replace(options, ack=ack or options.ack)
    if per_event:
        if "concurrency" in fields:
            concurrency = checker.integer(fields["concurrency"], join(path, "concurrency"), 1)
            ok = ok and concurrency is not None
            options = replace(options, concurrency=concurrency or 1)
        if "key" in fields and fields["key"].value is not None:
            key_expression = checker.expression(fields["key"], join(path, "key"))
            ok = ok and key_expression is not None
            options = replace(options, key=key_expression)
        if "timeout" in fields:
            timeout = checker.duration(fields["timeout"], join(path, "timeout"))
            if timeout is not None and timeout <= 0:
                checker.error(fields["timeout"], join(path, "timeout"), "must be more than 0")
                timeout = None
            ok = ok and timeout is not None
            options = replace(options, timeout=timeout or options.timeout)
    return options if ok else None


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class CommandSink(Sink):
    """Events go to the process's stdin; its stdout and stderr are the terminal's."""

    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.options: CommandOptions = config.options
        self.process: subprocess.Popen[bytes] | None = None
        self.failed = False
        self._group_gone = False

    def open(self) -> None:
        group: dict[str, Any] = (
            {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        )
        try:
            # its own process group, so a terminal's Ctrl-C reaches evroute alone
            self.process = subprocess.Popen(
                list(self.options.argv),
                stdin=subprocess.PIPE,
                cwd=self.base_dir,
                bufsize=0,
                **group,
            )
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) else None
            raise SinkFailed(f"cannot start {self.options.argv[0]!r}: {reason or error}") from None
        if self.process.stdin is not None:
            # a batch goes into the pipe in a few writes, not one per 64 KiB read (Linux)
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(self.process.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        process = self.process
        if process is None or process.stdin is None:
            raise SinkFailed("the command is not running")
        try:
            write_all(process.stdin.fileno(), join_lines(payloads))
        except PartialWrite as partial:
            self.failed = True
            raise SinkFailed(self._gone(), partial.complete_lines) from None
        return []

    @property
    def has_process(self) -> bool:
        return True

    def wait_for_exit(self) -> str | None:
        if self.process is None:
            return None
        return describe_status(self.process.wait())

    def _gone(self) -> str:
        assert self.process is not None
        try:
            returncode = self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "the command closed its stdin"
        return f"the command exited ({describe_status(returncode)})"

    def close(self, linger: float) -> str | None:
        process = self.process
        if process is None:
            return None
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if self.failed:
            # it closed its stdin but lives on: nothing more will reach it, so stop it
            self._stop_lingering(process)
        returncode = process.wait()
        # What it started in its group (`tee >(...)`, `cmd &`) may finish its work within
        # `linger`; then it is stopped, so nothing the command started outlives the run.
        deadline = time.monotonic() + (0.0 if self.failed else linger)
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.end_group()
        if returncode != 0:
            return f"the command ended with {describe_status(returncode)}"
        return None

    def end_group(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left after a grace."""
        if not self._group_alive():
            return
        self.terminate()
        deadline = time.monotonic() + LINGER_S
        while self._group_alive():
            if time.monotonic() > deadline:
                self.kill()
                return
            time.sleep(0.05)

    def _group_alive(self) -> bool:
        """Whether anything is left in the group; once it is empty it is never signalled
        again, since its number may then be reused."""
        if self.process is None or self._group_gone:
            return False
        try:
            os.killpg(self.process.pid, 0)
        except (ProcessLookupError, PermissionError):
            self._group_gone = True
            return False
        return True

    def _stop_lingering(self, process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(timeout=LINGER_S)
        except subprocess.TimeoutExpired:
            self.terminate()
            try:
                process.wait(timeout=LINGER_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def _signal(self, signum: int) -> None:
        """Signal the command's whole process group, which outlives its leader."""
        if self._group_alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


def create(config: ConsumerConfig, base_dir: Path) -> Sink:
    return CommandSink(config, base_dir)


KIND = SinkKind(
    name="command",
    keys=("command", "per_event", *LONG_RUNNING_KEYS, *PER_EVENT_KEYS),
    later={"fields": "fields (subscribe policy)"},
    parse_options=parse_options,
    create=create,
)
