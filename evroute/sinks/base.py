"""What every sink kind provides: a SinkKind describing it, and a Sink writing whole batches.

A SinkKind holds what the rest of evroute needs to know of a kind: its keys and options
parser, its JSON schema, how graph draws it, the files it writes, whether it needs the
encryption key. The retry backoff the sinks share is here too.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evroute.core.wording import plural
from evroute.processes import backoff_delay

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.json_schema import Schema
    from evroute.config.model import ConsumerConfig, Rotation
    from evroute.config.yaml_loader import Node
    from evroute.core.stats import ConsumerStats
    from evroute.shaping.templates import PathTemplate
    from evroute.storage.crypto import Key


# Retries of a failed delivery wait this long, doubling each time, up to the limit.
RETRY_BACKOFF_S = 0.5
RETRY_MAX_BACKOFF_S = 30.0


# The dead letter's detail of events that evroute stopped before they were delivered.
SHUTDOWN_DETAIL = "evroute was stopped before delivery"


class SinkFailed(Exception):
    """The sink cannot deliver (a command exited, a write failed).

    `delivered` is how many payloads of the batch got out before it failed.
    """

    def __init__(self, message: str, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


class SinkEnded(SinkFailed):
    """The reader went away on purpose (stdout closed by `head`)."""


# An event a sink gave up on while the rest of its batch went out:
# (its index in the batch, the dead letter's reason, its detail)
EventFailure = tuple[int, str, str]


class Sink:
    """Delivers batches of payloads to one consumer. One thread calls it."""

    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir
        self.name = config.name
        # the run's key (the config's encrypt:), set by the pipeline for sinks that seal
        self.key: Key | None = None

    def prepare(self) -> None:
        """Before the run reads anything: what must work for it to start at all (a
        server to reach); raises SinkFailed, which stops the run before it begins."""

    def open(self) -> None:
        """Get ready to write (open the file, start the process); raises SinkFailed."""

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        """Deliver the payloads in order, each as one line; raises SinkFailed or SinkEnded.

        Returns the events given up on one by one (a per-event command that kept
        failing); the others were delivered.
        """
        raise NotImplementedError

    def close(self, linger: float) -> str | None:
        """Finish after the last write, taking at most about `linger` seconds for what a
        process left behind; returns a warning for the user, if any."""
        return None

    def attach(
        self,
        stats: ConsumerStats,
        on_failed: Callable[[str], None],
        drained: Callable[[], bool],
    ) -> None:
        """Before open: the consumer's stats, whom to tell when the sink fails on its own
        (a command that used up its restarts while no batch was on its way), and whether
        the batch being written is the last one."""

    def output_path(self) -> Path | None:
        """The file this sink writes, if it writes one of its own."""
        return None

    def terminate(self) -> None:
        """Ask a process to stop now (SIGTERM); files need nothing."""

    def kill(self) -> None:
        """Stop a process that lingers (SIGKILL)."""


@dataclass(frozen=True)
class Output:
    """A file or folder a consumer writes: no two writers may share one."""

    key: str  # the consumer's key that names it ("file", "archive")
    path: str  # as written, relative to the config's folder
    form: Literal["file", "template", "folder"]
    rotation: Rotation | None = None  # a file that rotates also writes FILE.1, FILE.2...
    template: PathTemplate | None = None  # a templated path: the files it may name


def no_outputs(options: Any) -> tuple[Output, ...]:
    return ()


def no_key(options: Any) -> str | None:
    return None


@dataclass(frozen=True)
class SinkKind:
    """A consumer kind as the config names it, and all the rest of evroute needs to know
    of it: adding a kind is writing its module and registering it in sinks/__init__.py."""

    name: str
    description: str  # what it does, in a few words: the schema's title
    keys: tuple[str, ...]  # its own keys, besides the queue settings and fields:
    parse_options: Callable[[Checker, dict[str, Node], str, Path], Any]
    create: Callable[[ConsumerConfig, Path], Sink]
    # the JSON Schema of a consumer of this kind: its keys' properties, and any rules
    schema: Callable[[], Schema]
    # how graph shows one: (what it is, its target), e.g. ("file", "out/big.jsonl")
    draw: Callable[[Any], tuple[str, str]]
    outputs: Callable[[Any], tuple[Output, ...]] = no_outputs
    # the key of the consumer that asks for the top-level encrypt: key, when one does
    needs_key: Callable[[Any], str | None] = no_key


def backoff_or_give_up(attempts: int, retries: int, stop: threading.Event) -> str | None:
    """After failed attempt number `attempts` at a batch: None once the backoff is waited
    out (try again), or the dead letter's reason to give up: "delivery_failed" when
    `retries` are used up, "shutdown" when `stop` is set (evroute is stopping)."""
    delay = backoff_delay(attempts, RETRY_BACKOFF_S, RETRY_MAX_BACKOFF_S)
    # an Event, not sleep: terminate() sets `stop` to end the wait at once
    if attempts > retries or stop.wait(delay):
        return "shutdown" if stop.is_set() else "delivery_failed"
    return None


def attempts_note(attempts: int) -> str:
    """` (3 attempts)`: the end of a dead letter's detail, after how many tries it failed."""
    return f" ({plural(attempts, 'attempt', grouped=False)})"


def join_lines(payloads: list[bytes]) -> bytes:
    # the final newline joined in too: adding it after would copy the whole batch again
    return b"\n".join(itertools.chain(payloads, _END))


_END = (b"",)
