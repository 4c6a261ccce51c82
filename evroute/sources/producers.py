"""The producers of a config's `inputs:`: file globs, stdin, and commands whose stdout
is read as events, restarted with backoff like command consumers."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from evroute.config.model import Config, InputConfig
from evroute.core.lines import LineBatch
from evroute.errors import InputError
from evroute.processes import (
    LINGER_S,
    NEW_GROUP,
    STDERR,
    PrefixedLines,
    RestartPolicy,
    backoff_delay,
    describe_status,
    signal_group,
)
from evroute.shaping.publish_policy import PublishPolicies, glob_files
from evroute.sources.base import CHUNK_BYTES, FdSource, Source, open_sources

if TYPE_CHECKING:
    from evroute.core.receipt import Receipt

# What producers hand the router: a batch of a source (the bytes it came from, and the
# receipt of an input that acknowledges), an error, or None for a producer's end.
HandoffItem: TypeAlias = "tuple[Source, LineBatch, int, Receipt | None] | str | None"

# A run of a command that lasted this long counts as healthy even if it printed nothing.
HEALTHY_RUN_S = 10.0


@dataclass
class Producer:
    """One entry of `inputs:`: the sources it reads, one after the other."""

    name: str
    sources: list[Source] = field(default_factory=list)


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


def open_producers(config: Config, warn: Callable[[str], None]) -> list[Producer]:
    """The producers of `inputs:`, their files opened (all checked before any is read)."""
    policies = PublishPolicies(config)
    producers: list[Producer] = []
    problems: list[str] = []
    for entry in config.inputs:
        try:
            producer = Producer(entry.name, _sources(entry, config, warn))
        except InputError as error:
            problems.append(str(error))
            continue
        policy = policies.of_producer(entry)
        for source in producer.sources:
            source.publish = policy
        producers.append(producer)
    if problems:
        for producer in producers:
            for source in producer.sources:
                source.close()
        raise InputError("; ".join(problems))
    return producers


def _sources(entry: InputConfig, config: Config, warn: Callable[[str], None]) -> list[Source]:
    if entry.kind == "stdin":
        return [FdSource("-", None, 0, owns_fd=False)]
    if entry.kind == "command":
        assert entry.argv is not None
        return [CommandSource(entry.name, entry.argv, config.base_dir, entry.restart, warn)]
    if entry.kind == "nats":
        from evroute.sources.nats import NatsSource  # nats-py only when used

        return [NatsSource(entry.name, entry.options, warn)]
    assert entry.pattern is not None
    matches = glob_files(config.base_dir, entry.pattern)
    files = [m for m in matches if not os.path.isdir(m)]
    if not files:
        raise InputError(f"input {entry.name}: {entry.pattern!r} matches no file")
    # named relative to the working directory, as files named on the command line are
    return open_sources(
        [os.path.relpath(m) if not Path(entry.pattern).is_absolute() else m for m in files]
    )


class Handoff:
    """Batches from the producers' threads to the router's, bounded so that a router held
    up (on_full: block) holds the producers up too. The taker waits in select() on a
    pipe the givers write to, beside the signal wakeup pipe: push, and Ctrl-C is heard."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._items: deque[HandoffItem] = deque()
        self._lock = threading.Condition()
        self._closed = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def put(self, item: HandoffItem) -> bool:
        """Give an item, waiting for room; False once the taker has closed."""
        with self._lock:
            # the end of a producer (None) or its error always gets in
            while len(self._items) >= self.capacity and not self._closed and type(item) is tuple:
                self._lock.wait()
            if self._closed:
                return False
            self._items.append(item)
        with contextlib.suppress(BlockingIOError):
            os.write(self._write_fd, b".")
        return True

    def take(self, wakeup_fd: int | None, timeout: float | None = None) -> list[HandoffItem] | None:
        """Everything given so far, waiting for something (at most `timeout`: then []);
        None when woken to stop."""
        watched = [self._read_fd] if wakeup_fd is None else [self._read_fd, wakeup_fd]
        while True:
            items = self.take_ready()
            if items:
                return items
            ready, _, _ = select.select(watched, [], [], timeout)
            if wakeup_fd is not None and wakeup_fd in ready:
                return None
            if not ready:
                return []
            os.read(self._read_fd, 65536)

    def take_ready(self) -> list[HandoffItem]:
        """What was given so far, without waiting."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._lock.notify_all()
            return items

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._items.clear()
            self._lock.notify_all()
        os.close(self._read_fd)
        os.close(self._write_fd)
