"""`command:` inputs: a command whose stdout is read as events, restarted with backoff
when it fails, like a command consumer."""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join
from evroute.config.json_schema import Schema
from evroute.errors import InputError
from evroute.processes import (
    ARGV,
    LINGER_S,
    NEW_GROUP,
    STDERR,
    PrefixedLines,
    RestartPolicy,
    backoff_delay,
    describe_status,
    parse_argv,
    parse_restart,
    restart_schema,
    signal_group,
)
from evroute.sources.base import CHUNK_BYTES, InputKind, Source

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import Config, InputConfig
    from evroute.config.yaml_loader import Node


@dataclass(frozen=True)
class CommandInputOptions:
    argv: tuple[str, ...]
    restart: RestartPolicy = RestartPolicy()

    def reads(self, base_dir: Path) -> list[str]:
        return []


# A run of a command that lasted this long counts as healthy even if it printed nothing.
HEALTHY_RUN_S = 10.0


class CommandSource(Source):
    """A command's stdout. Exit 0 ends the input; any other end is a failure, and the
    command is started again after a backoff, until `restart.max` failures in a row."""

    def __init__(
        self,
        name: str,
        argv: tuple[str, ...],
        cwd: Path,
        restart: RestartPolicy,
        warn: Callable[[str], None],
    ) -> None:
        super().__init__(name, None)
        self.argv = argv
        self.cwd = cwd
        self.restart = restart
        self.warn = warn
        self._process: subprocess.Popen[bytes] | None = None
        # close() from another thread: a byte down this pipe wakes the reading thread,
        # which stops the command itself (one thread owns the process and its pipe)
        self._lock = threading.Lock()
        self._stopping = False
        self._stop_read: int | None
        self._stop_write: int | None
        self._stop_read, self._stop_write = os.pipe()

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        try:
            yield from self._runs(wakeup_fd)
        finally:
            with self._lock:
                for fd in (self._stop_read, self._stop_write):
                    if fd is not None:
                        os.close(fd)
                self._stop_read = self._stop_write = None
            if self._process is not None:
                self._stop(self._process)

    def _runs(self, wakeup_fd: int | None) -> Iterator[bytes]:
        assert self._stop_read is not None
        stops = [self._stop_read] if wakeup_fd is None else [self._stop_read, wakeup_fd]
        failures = 0
        while not self._stopping:
            process = self._start()
            started = time.monotonic()
            produced = False
            last = b"\n"
            assert process.stdout is not None
            fd = process.stdout.fileno()
            while True:
                ready, _, _ = select.select([fd, *stops], [], [])
                if fd not in ready:  # evroute is stopping
                    self._stop(process)
                    return
                try:
                    chunk = os.read(fd, CHUNK_BYTES)
                except OSError as error:
                    raise self._read_error(error) from None
                if not chunk:
                    break
                produced = True
                last = chunk
                self.position += len(chunk)
                yield chunk
            if not last.endswith(b"\n"):
                # the cut-off line is a line of its own, not glued to the next run's
                # first; not counted in `position`: the input never sent it
                yield b"\n"
            status = process.wait()
            process.stdout.close()
            self._process = None
            if status == 0 or self._stopping:
                return
            healthy = produced or time.monotonic() - started >= HEALTHY_RUN_S
            failures = 1 if healthy else failures + 1
            ended = describe_status(status)
            if failures > self.restart.max:
                raise InputError(
                    f"input {self.name}: the command failed {failures} times in a row;"
                    f" last: {ended}"
                )
            delay = backoff_delay(failures, self.restart.backoff, self.restart.max_backoff)
            self.warn(
                f"input {self.name}: the command ended ({ended}); starting it again in {delay:.1f}s"
            )
            if select.select(stops, [], [], delay)[0]:
                return
            if self.stats is not None:
                self.stats.restarts += 1

    def _start(self) -> subprocess.Popen[bytes]:
        try:
            process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                **NEW_GROUP,
            )
        except OSError as error:
            raise InputError(
                f"input {self.name}: cannot start {self.argv[0]!r}: {error.strerror or error}"
            ) from None
        assert process.stderr is not None
        prefix = f"[{self.name}] ".encode("utf-8", "surrogateescape")
        threading.Thread(
            target=PrefixedLines(prefix, STDERR.say).pass_through,
            args=(os.dup(process.stderr.fileno()),),
            name=f"input-{self.name}-stderr",
            daemon=True,
        ).start()
        process.stderr.close()
        self._process = process
        return process

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM to its group, SIGKILL after a grace; reaped either way."""
        signal_group(process, 15)
        try:
            process.wait(LINGER_S)
        except subprocess.TimeoutExpired:
            signal_group(process, 9)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self._process = None

    def close(self) -> None:
        """Stop reading: the thread reading the command stops it (SIGTERM, then SIGKILL)."""
        with self._lock:
            if self._stop_write is not None and not self._stopping:
                os.write(self._stop_write, b"!")
            self._stopping = True


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, name: str, base_dir: Path
) -> CommandInputOptions | None:
    argv = parse_argv(checker, fields["command"], join(path, "command"))
    restart: RestartPolicy | None = RestartPolicy()
    if "restart" in fields:
        restart = parse_restart(checker, fields["restart"], join(path, "restart"))
    if argv is None or restart is None:
        return None
    return CommandInputOptions(argv, restart)


def open_input(entry: InputConfig, config: Config, warn: Callable[[str], None]) -> list[Source]:
    options: CommandInputOptions = entry.options  # type: ignore[assignment]
    return [CommandSource(entry.name, options.argv, config.base_dir, options.restart, warn)]


def schema() -> dict[str, Schema]:
    return {"command": ARGV, "restart": restart_schema()}


def draw(options: CommandInputOptions) -> str:
    return "command " + shlex.join(options.argv)


KIND = InputKind(
    name="command",
    description="a command's stdout, restarted with backoff when it fails",
    keys=("command", "restart"),
    parse_options=parse_options,
    open=open_input,
    schema=schema,
    draw=draw,
)
