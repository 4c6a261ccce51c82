"""`per_event: true` command consumers: one process per event, the event on its stdin,
exit status 0 = delivered; retries with backoff, a timeout, and `concurrency` with
per-`key` order."""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from evroute.core.json_codec import parse_event
from evroute.core.wording import plural
from evroute.processes import (
    LINGER_S,
    NEW_GROUP,
    POLL_S,
    STDERR,
    PrefixedLines,
    backoff_delay,
    describe_status,
    signal_group,
    stop_group,
)
from evroute.sinks.base import (
    RETRY_BACKOFF_S,
    RETRY_MAX_BACKOFF_S,
    SHUTDOWN_DETAIL,
    EventFailure,
    Sink,
)

if TYPE_CHECKING:
    from evroute.config.model import ConsumerConfig
    from evroute.sinks.command import CommandOptions

# Backoff between attempts at one event: from 0.5s, doubling up to 30s, with jitter;
# module constants so that tests can make them short.
BACKOFF_START_S = RETRY_BACKOFF_S
BACKOFF_MAX_S = RETRY_MAX_BACKOFF_S
# How much of a command's stderr a dead letter keeps: its end, where the error usually is.
STDERR_TAIL_BYTES = 1024
READ_BYTES = 64 << 10

# Errors that starting the command again cannot cure: not retried.
LASTING_START_ERRORS = {errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.ENOEXEC, errno.EISDIR}


@dataclass
class Attempt:
    """How one run of the command for one event ended."""

    delivered: bool
    outcome: str = ""  # "exit status 3", "killed by SIGKILL", "timed out (2s)", ...
    stderr_tail: str = ""
    lasting: bool = False  # retrying cannot help (the command cannot be started)


class PerEventSink(Sink):
    """Each event goes to a process of its own; `write` returns once all are settled."""

    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.options: CommandOptions = config.options
        self.retries: int = config.queue.retries
        self.prefix = f"[{self.name}] ".encode()
        self._stopping = threading.Event()  # terminate(): no new attempt, no more waiting
        self._killing = threading.Event()  # kill(): what still runs gets SIGKILL
        self._lock = threading.Lock()  # guards _running, and reaping against signalling
        self._running: set[subprocess.Popen[bytes]] = set()

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        schedule = Schedule(self._lanes(payloads))
        failures: list[EventFailure] = []
        workers = min(self.options.concurrency, schedule.lane_count)

        def work() -> None:
            while (index := schedule.take()) is not None:
                try:
                    failure = self._deliver(payloads[index])
                except Exception as error:  # one event's surprise must not stall the batch
                    failure = (
                        "delivery_failed",
                        f"internal error: {type(error).__name__}: {error}",
                    )
                finally:
                    schedule.done(index)
                if failure is not None:
                    with self._lock:
                        failures.append((index, *failure))

        if workers <= 1:
            work()
        else:
            threads = [
                threading.Thread(target=work, name=f"per-event-{self.name}-{n}", daemon=True)
                for n in range(workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return sorted(failures)

    def _lanes(self, payloads: list[bytes]) -> list[Any]:
        """Each payload's lane: events of one lane run one at a time, in order."""
        if self.options.concurrency <= 1:
            return [None] * len(payloads)  # one lane: everything in order
        key = self.options.key
        if key is None:
            return list(range(len(payloads)))  # a lane each: no order kept
        return [event_key(key, payload) for payload in payloads]

    def _deliver(self, payload: bytes) -> tuple[str, str] | None:
        """Attempt until delivered or out of retries: None, or (reason, detail)."""
        attempts = 0
        while True:
            if self._stopping.is_set():
                return "shutdown", SHUTDOWN_DETAIL
            attempt = self._attempt(payload)
            attempts += 1
            if attempt.delivered:
                return None
            if self._stopping.is_set():
                return "shutdown", f"{SHUTDOWN_DETAIL}: {attempt.outcome}"
            if attempt.lasting or attempts > self.retries:
                detail = f"{attempt.outcome} after {plural(attempts, 'attempt', grouped=False)}"
                if attempt.stderr_tail:
                    detail += f"; stderr: {attempt.stderr_tail}"
                return "delivery_failed", detail
            # an Event, not sleep: terminate() must end the wait at once
            if self._stopping.wait(backoff_delay(attempts, BACKOFF_START_S, BACKOFF_MAX_S)):
                return "shutdown", f"{SHUTDOWN_DETAIL}: {attempt.outcome}"

    def _attempt(self, payload: bytes) -> Attempt:
        """Run the command once with the event on its stdin."""
        argv = self.options.argv
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.base_dir,
                bufsize=0,
                **NEW_GROUP,
            )
        except (OSError, ValueError) as error:
            return cannot_start(argv[0], error)
        with self._lock:
            self._running.add(process)
            # terminate() may have come between the check before this attempt and now
            if self._killing.is_set():
                signal_group(process, signal.SIGKILL)
            elif self._stopping.is_set():
                signal_group(process, signal.SIGTERM)
        try:
            return self._supervise(process, payload + b"\n")
        finally:
            with self._lock:
                self._running.discard(process)

    def _supervise(self, process: subprocess.Popen[bytes], data: bytes) -> Attempt:
        """Feed the process, pass its output on, enforce the timeout, reap it."""
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        timeout = self.options.timeout
        deadline = time.monotonic() + timeout
        selector = selectors.DefaultSelector()
        exit_fd = pidfd(process.pid)  # readable once the process has exited
        errors = PrefixedLines(self.prefix, STDERR.say, keep_tail=STDERR_TAIL_BYTES)
        streams = {
            process.stdout.fileno(): PrefixedLines(self.prefix, STDERR.say),
            process.stderr.fileno(): errors,
        }
        stdin = process.stdin.fileno()
        view = memoryview(data)
        written = 0
        timed_out = False
        exit_seen = exit_fd is None  # without pidfd, nothing signals the exit: poll
        exited_at: float | None = None
        try:
            for fd in (stdin, *streams):
                os.set_blocking(fd, False)
            selector.register(stdin, selectors.EVENT_WRITE)
            for fd in streams:
                selector.register(fd, selectors.EVENT_READ)
            if exit_fd is not None:
                selector.register(exit_fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if exited_at is None:
                    if now >= deadline and not timed_out:
                        timed_out = True
                        signal_group(process, signal.SIGKILL)  # not reaped yet: its own group
                    wait = max(deadline - now, 0.0) if not timed_out else POLL_S
                    if exit_seen:
                        wait = min(wait, POLL_S)
                elif not streams or now - exited_at >= LINGER_S:
                    break  # output done, or held open by something it left running
                else:
                    wait = exited_at + LINGER_S - now
                for key, _ in selector.select(wait):
                    fd = key.fd
                    if fd == stdin:
                        try:
                            written += os.write(fd, view[written:])
                        except BlockingIOError:
                            continue
                        except OSError:  # it exited, or closed its stdin: its status tells
                            written = len(data)
                        if written >= len(data):
                            selector.unregister(fd)
                            process.stdin.close()
                    elif fd == exit_fd:
                        selector.unregister(fd)
                        exit_seen = True
                    else:
                        try:
                            chunk = os.read(fd, READ_BYTES)
                        except BlockingIOError:
                            continue
                        except OSError:
                            chunk = b""
                        streams[fd].feed(chunk)
                        if not chunk:
                            selector.unregister(fd)
                            del streams[fd]
                if exited_at is None and self._reap(process):
                    exited_at = time.monotonic()
        finally:
            selector.close()
            if exit_fd is not None:
                os.close(exit_fd)
            for output in streams.values():
                output.feed(b"")
            for pipe in (process.stdin, process.stdout, process.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()
            if process.returncode is None:  # an error above: it must not outlive this
                with self._lock:
                    signal_group(process, signal.SIGKILL)
                    process.wait()
            stop_group(process.pid, hurry=self._killing)  # what it left running
        tail = errors.text()
        if timed_out:
            return Attempt(False, f"timed out ({timeout:g}s)", tail)
        assert process.returncode is not None
        if process.returncode == 0:
            return Attempt(True)
        return Attempt(False, describe_status(process.returncode), tail)

    def _reap(self, process: subprocess.Popen[bytes]) -> bool:
        # under the lock, so that terminate() never signals a group whose leader is reaped
        with self._lock:
            return process.poll() is not None

    def terminate(self) -> None:
        self._stopping.set()
        self._signal_running(signal.SIGTERM)

    def kill(self) -> None:
        self._stopping.set()
        self._killing.set()
        self._signal_running(signal.SIGKILL)

    def _signal_running(self, signum: int) -> None:
        with self._lock:
            for process in self._running:
                if process.returncode is None:
                    signal_group(process, signum)


class Schedule:
    """Hands out a batch's events to the workers: the earliest waiting event whose lane
    is not busy, so a lane's events run one at a time and in batch order."""

    def __init__(self, lanes: list[Any]) -> None:
        self._condition = threading.Condition()
        self._lane_of: list[int] = []
        self._queues: list[deque[int]] = []
        ids: dict[Any, int] = {}
        for index, lane in enumerate(lanes):
            lane_id = ids.setdefault(lane, len(ids))
            if lane_id == len(self._queues):
                self._queues.append(deque())
            self._queues[lane_id].append(index)
            self._lane_of.append(lane_id)
        # (the index of the lane's next event, the lane) for each lane free to go
        self._ready = [(queue[0], lane_id) for lane_id, queue in enumerate(self._queues)]
        heapq.heapify(self._ready)
        self._waiting = len(lanes)  # events not taken yet
        self.lane_count = len(self._queues)

    def take(self) -> int | None:
        """The next event to deliver; None when none is left to take."""
        with self._condition:
            while not self._ready:
                if self._waiting == 0:
                    return None
                self._condition.wait()  # what is left waits for a busy lane
            _, lane_id = heapq.heappop(self._ready)
            self._waiting -= 1
            return self._queues[lane_id].popleft()

    def done(self, index: int) -> None:
        """The event is settled: its lane may go on."""
        with self._condition:
            lane_id = self._lane_of[index]
            queue = self._queues[lane_id]
            if queue:
                heapq.heappush(self._ready, (queue[0], lane_id))
            self._condition.notify_all()


def event_key(key: Any, payload: bytes) -> Any:
    """The event's `key` as canonical JSON; an event it cannot be worked out for goes
    with those whose key is null."""
    try:
        value = key.search(parse_event(payload))
    except Exception:  # not JSON (Malformed), or the key's expression failed for it
        return b"null"
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, which orjson does not write
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def cannot_start(program: str, error: OSError | ValueError) -> Attempt:
    """An attempt that failed before the command ran; lasting when retrying cannot help."""
    if not isinstance(error, OSError):  # a NUL in an argument
        return Attempt(False, f"cannot start {program!r}: {error}", lasting=True)
    reason = error.strerror or str(error)
    if error.filename is not None and str(error.filename) != program:
        reason += f": {error.filename}"  # the working directory, not the program
    lasting = error.errno in LASTING_START_ERRORS
    return Attempt(False, f"cannot start {program!r}: {reason}", lasting=lasting)


def pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
