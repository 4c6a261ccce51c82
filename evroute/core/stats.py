"""Counters of a run, drawn by ui/: each is written by one thread, or under a queue's lock.

The router's thread writes the input and route counts and a consumer's `enqueued` and
`spilled`; the consumer's writer its `delivered`; a command's supervisor (or a command
input's thread) its `restarts`; a NATS input's loop its `pulled`, `acked`... A
consumer's `dropped` and `dead_lettered` are written by several threads, always under
its queue's lock. Everything else only reads them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from evroute import __version__


@dataclass
class InputStats:
    events: int = 0
    malformed: int = 0
    bytes: int = 0
    denied: int = 0  # events its producer may not publish (publish policy)
    restarts: int = 0  # of a command producer
    # of a NATS input: messages pulled, acked, pulled again (redelivered), and left in
    # the stream for its durable consumer (as the server last said); None for others
    pulled: int | None = None
    acked: int | None = None
    redelivered: int | None = None
    pending: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


# what the stats' `input` sums over the inputs; `inputs` has every count of each
TOTALS = ("events", "malformed", "bytes")


@dataclass
class RouteStats:
    matched: int = 0
    errors: int = 0


@dataclass
class ConsumerStats:
    enqueued: int = 0
    delivered: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    spilled: int = 0
    restarts: int = 0
    state: str = "starting"
    # drops because the reader closed the consumer's stdout: a reader's choice, not a failure
    dropped_by_reader: int = field(default=0, repr=False)
    # gauges for the live view, kept by the queue: events waiting, bytes spilled on disk
    queued: int = field(default=0, repr=False)
    spill_bytes: int = field(default=0, repr=False)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for gauge in ("dropped_by_reader", "queued", "spill_bytes"):
            del data[gauge]
        return data


@dataclass
class RunStats:
    inputs: dict[str, InputStats] = field(default_factory=dict)
    routes: dict[str, RouteStats] = field(default_factory=dict)
    consumers: dict[str, ConsumerStats] = field(default_factory=dict)
    unmatched: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def input(self, name: str) -> InputStats:
        stats = self.inputs.get(name)
        if stats is None:
            stats = self.inputs[name] = InputStats()
        return stats

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    @property
    def total(self) -> InputStats:
        inputs = list(self.inputs.values())
        return InputStats(
            events=sum(s.events for s in inputs),
            malformed=sum(s.malformed for s in inputs),
            bytes=sum(s.bytes for s in inputs),
            denied=sum(s.denied for s in inputs),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "evroute": __version__,
            "elapsed_s": round(self.elapsed, 6),
            "input": {key: value for key, value in asdict(self.total).items() if key in TOTALS},
            # copies: a report during the run may meet an input being added
            "inputs": {name: s.as_json() for name, s in list(self.inputs.items())},
            "routes": {name: asdict(s) for name, s in list(self.routes.items())},
            "unmatched": self.unmatched,
            "consumers": {name: s.as_json() for name, s in list(self.consumers.items())},
        }


class Progress:
    """What a progress display is told of a run's reading; the terminal UI draws it."""

    def start(self, total_bytes: int | None) -> None: ...

    def update(self, done_bytes: int) -> None: ...

    def stop(self) -> None: ...
