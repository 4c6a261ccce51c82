"""A long-running `command:` consumer, supervised: events as JSON lines on its stdin,
restarts with backoff when it exits, and with `ack: line` one line back per event."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.processes import (
    LINGER_S,
    NEW_GROUP,
    STDERR,
    PrefixedLines,
    backoff_delay,
    describe_status,
    signal_group,
    stop_group,
)
from evroute.sinks.base import EventFailure, Sink, SinkFailed, join_lines
from evroute.storage.fileio import PartialWrite, write_all

if TYPE_CHECKING:
    from evroute.config.model import ConsumerConfig
    from evroute.core.stats import ConsumerStats
    from evroute.sinks.command import CommandOptions

# What the pipe to a command holds. With `ack: none` an event is delivered once the pipe
# has it, so this is also what a command that dies can take with it.
PIPE_BYTES = 256 << 10
# A process that ran this long, or acknowledged an event, was healthy: its exit starts
# the count of failures in a row again.
HEALTHY_AFTER_S = 10.0


class Child:
    """One run of the command: the process, its acknowledgements, its end."""

    def __init__(self, process: subprocess.Popen[bytes], started: float) -> None:
        self.process = process
        self.started = started
        self.acks = 0
        self.acks_ended = False  # its stdout is closed: no more acknowledgements
        self.sent = 0  # events written to it
        self.ended_input = False  # its stdin was closed because the input is done
        self.changed = threading.Condition()

    def count_acks(self, stream: int) -> None:
        """Read the command's stdout: each line acknowledges one event."""
        while True:
            try:
                chunk = os.read(stream, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            lines = chunk.count(b"\n")
            if lines:
                with self.changed:
                    self.acks += lines
                    self.changed.notify_all()
        os.close(stream)
        with self.changed:
            self.acks_ended = True
            self.changed.notify_all()


class LongRunningSink(Sink):
    """Events go to the process's stdin. A supervisor thread starts it, reaps it, and
    restarts it with backoff; the writer waits for it when it is between runs."""

    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.options: CommandOptions = config.options
        self.ack_lines = self.options.ack == "line"
        self._state = threading.Condition()
        self._child: Child | None = None  # the running process, if any
        self._failure: str | None = None  # set once restarts are used up: why
        self._closing = False  # the writer is done: an exit now is the end
        self._stop = threading.Event()  # terminate(): no more restarts, no more waiting
        self._killing = threading.Event()  # kill(): what is left gets SIGKILL now
        self._linger = LINGER_S  # what the command leaves running may take to finish
        self._last_status: str | None = None
        self._supervisor: threading.Thread | None = None
        self._stats: ConsumerStats | None = None
        self._on_failed: Callable[[str], None] = lambda detail: None
        self._drained: Callable[[], bool] = lambda: False
        self._prefix = f"[{self.name}] ".encode()

    def attach(
        self,
        stats: ConsumerStats,
        on_failed: Callable[[str], None],
        drained: Callable[[], bool],
    ) -> None:
        self._stats = stats
        self._on_failed = on_failed
        self._drained = drained

    # -- the supervisor ---------------------------------------------------------------

    def open(self) -> None:
        child = self._start()  # a command that cannot start at all is a config problem
        with self._state:
            self._child = child
        self._supervisor = threading.Thread(
            target=self._supervise, args=(child,), name=f"supervise-{self.name}", daemon=True
        )
        self._supervisor.start()

    def _start(self) -> Child:
        argv = list(self.options.argv)
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if self.ack_lines else None,
                stderr=subprocess.PIPE,
                cwd=self.base_dir,
                bufsize=0,
                **NEW_GROUP,
            )
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) else None
            raise SinkFailed(f"cannot start {argv[0]!r}: {reason or error}") from None
        try:
            return self._watch(process)
        except Exception as error:  # out of descriptors or threads: it must not run on
            signal_group(process, signal.SIGKILL)
            process.wait()
            raise SinkFailed(f"cannot watch {argv[0]!r}: {error}") from None

    def _watch(self, process: subprocess.Popen[bytes]) -> Child:
        """Threads that pass its stderr through and count its acknowledgements."""
        assert process.stdin is not None and process.stderr is not None
        # a batch goes into the pipe in a few writes, not one per 64 KiB read (Linux)
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(process.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        child = Child(process, time.monotonic())
        threading.Thread(
            target=PrefixedLines(self._prefix, STDERR.say).pass_through,
            args=(os.dup(process.stderr.fileno()),),
            name=f"stderr-{self.name}",
            daemon=True,
        ).start()
        process.stderr.close()
        if process.stdout is not None:
            threading.Thread(
                target=child.count_acks,
                args=(os.dup(process.stdout.fileno()),),
                name=f"acks-{self.name}",
                daemon=True,
            ).start()
            process.stdout.close()
        return child

    def _supervise(self, child: Child) -> None:
        try:
            self._restart_while_needed(child)
        except BaseException as error:  # a surprise must not leave the writer waiting
            detail = f"internal error: {type(error).__name__}: {error}"
            with self._state:
                self._failure = detail
                self._state.notify_all()
            self._on_failed(detail)

    def _restart_while_needed(self, child: Child) -> None:
        failures = 0
        policy = self.options.restart
        while True:
            returncode = child.process.wait()
            # what it left in its group gets a moment to finish, more at the end
            grace = 0.0 if self._stop.is_set() else self._linger if self._closing else LINGER_S
            stop_group(child.process.pid, grace, self._killing)
            status = describe_status(returncode)
            with child.changed:
                # it was told the input is done, and acknowledged everything: its end
                finished = child.ended_input and child.acks >= child.sent
            with self._state:
                self._last_status = status
                self._child = None
                self._state.notify_all()
                if self._closing or self._stop.is_set() or finished:
                    return
            healthy = child.acks > 0 or time.monotonic() - child.started >= HEALTHY_AFTER_S
            failures = 1 if healthy else failures + 1
            if failures > policy.max:
                detail = (
                    f"the command exited ({status})"
                    if policy.max == 0
                    else f"the command failed {failures} times in a row; last: {status}"
                )
                with self._state:
                    self._failure = detail
                    self._state.notify_all()
                self._on_failed(detail)
                return
            if self._stats is not None:
                self._stats.state = "restarting"
            delay = backoff_delay(failures, policy.backoff, policy.max_backoff)
            with self._state:
                if self._state.wait_for(lambda: self._closing or self._stop.is_set(), delay):
                    return
            try:
                child = self._start()
            except SinkFailed as error:
                with self._state:
                    self._failure = str(error)
                    self._state.notify_all()
                self._on_failed(str(error))
                return
            if self._stats is not None:
                self._stats.restarts += 1
                self._stats.state = "running"
            with self._state:
                self._child = child
                self._state.notify_all()
                if self._closing or self._stop.is_set():
                    self._close_stdin(child)  # the run ended while it was starting

    def _running(self) -> Child:
        """The running process; waits while it is between runs; SinkFailed once it is
        failed or evroute is stopping."""
        with self._state:
            while True:
                if self._failure is not None:
                    raise SinkFailed(self._failure)
                if self._stop.is_set():
                    raise SinkFailed(f"the command was stopped ({self._last_status or 'running'})")
                child = self._child
                if child is not None and child.process.returncode is None:
                    return child
                self._state.wait(0.5)

    # -- the writer -------------------------------------------------------------------

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        """Deliver every payload, to as many runs of the command as it takes; SinkFailed
        (with how many went out) once restarts are used up."""
        done = 0
        while done < len(payloads):
            try:
                child = self._running()
            except SinkFailed as failed:
                raise SinkFailed(str(failed), done) from None
            done += self._write_to(child, payloads[done:])
        return []

    def _write_to(self, child: Child, payloads: list[bytes]) -> int:
        """How many of `payloads` this run of the command took (acknowledged, with
        `ack: line`), before it ended or took them all."""
        assert child.process.stdin is not None
        with child.changed:
            acks_before = child.acks
            child.sent += len(payloads)
        try:
            write_all(child.process.stdin.fileno(), join_lines(payloads))
        except PartialWrite as partial:
            if not self.ack_lines:
                # it exited, or closed its stdin and may live on: it is done either way
                self._stop_child(child)
                self._wait_for_end(child)
                return partial.complete_lines
        if not self.ack_lines:
            return len(payloads)
        with child.changed:
            while child.acks - acks_before < len(payloads) and not child.acks_ended:
                if not child.ended_input and self._drained():
                    # the last batch: a command may acknowledge only once its input ends
                    child.ended_input = True
                    self._close_stdin(child)
                child.changed.wait(0.5)
                if self._stop.is_set():
                    break
            acknowledged = min(child.acks - acks_before, len(payloads))
        if acknowledged < len(payloads):
            # it can acknowledge no more: make sure it is gone before the rest goes again
            self._stop_child(child)
            self._wait_for_end(child)
        return acknowledged

    def _wait_for_end(self, child: Child) -> None:
        """Until the supervisor has seen this run end (it closed its stdin, so it will)."""
        with self._state:
            while self._child is child and not self._stop.is_set():
                self._state.wait(0.5)

    def _stop_child(self, child: Child) -> None:
        signal_group(child.process, signal.SIGTERM)
        try:
            child.process.wait(timeout=LINGER_S)
        except subprocess.TimeoutExpired:
            signal_group(child.process, signal.SIGKILL)

    # -- the end ----------------------------------------------------------------------

    def close(self, linger: float) -> str | None:
        """The input is done: close the command's stdin and wait for it to exit, however
        long its backlog takes (a stop cuts that short: terminate()). What it leaves in
        its group gets `linger`."""
        with self._state:
            self._closing = True
            self._linger = max(linger, LINGER_S)
            self._state.notify_all()
        # the supervisor ends once the run of the moment exits; a run it starts meanwhile
        # has its stdin closed by the supervisor itself
        while self._supervisor is not None and self._supervisor.is_alive():
            with self._state:
                child = self._child
            if child is not None:
                self._close_stdin(child)
            self._supervisor.join(0.1)
        with self._state:
            status = self._last_status
            failed = self._failure is not None
        if status is not None and not failed and status != "exit status 0":
            return f"the command ended with {status}"
        return None

    @staticmethod
    def _close_stdin(child: Child) -> None:
        if child.process.stdin is not None:
            with contextlib.suppress(OSError):
                child.process.stdin.close()

    def terminate(self) -> None:
        """Evroute is stopping and cannot wait: no more restarts, SIGTERM the command."""
        self._stop.set()
        with self._state:
            child = self._child
            self._state.notify_all()
        if child is not None:
            signal_group(child.process, signal.SIGTERM)

    def kill(self) -> None:
        self._killing.set()
        with self._state:
            child = self._child
        if child is not None:
            signal_group(child.process, signal.SIGKILL)
