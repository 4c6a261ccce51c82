"""What every sink kind provides: its config options and a writer of whole batches."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node
    from evroute.core.stats import ConsumerStats


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
class SinkKind:
    """A consumer kind as the config names it: its keys, its options parser, its Sink."""

    name: str
    keys: tuple[str, ...]
    later: Mapping[str, str]  # keys that later versions of evroute support
    parse_options: Callable[[Checker, dict[str, Node], str, Path], Any]
    create: Callable[[ConsumerConfig, Path], Sink]


def join_lines(payloads: list[bytes]) -> bytes:
    # the final newline joined in too: adding it after would copy the whole batch again
    return b"\n".join(itertools.chain(payloads, _END))


_END = (b"",)
