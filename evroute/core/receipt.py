"""Receipts: how an input that acknowledges what it hands over (NATS JetStream) learns
that a batch is safe.

The router holds a batch's receipt once for every event it queues to a consumer; each
event settles once, when it is delivered, spilled to disk (synced), dead-lettered or
dropped by policy. When nothing is held any more, the input may acknowledge the batch:
a crash before that point loses nothing, as the messages are delivered again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Receipt:
    """Counts what a batch still waits for; `done` runs once, when that reaches 0."""

    __slots__ = ("_done", "_lock", "_outstanding")

    def __init__(self, done: Callable[[], None]) -> None:
        self._done: Callable[[], None] | None = done
        self._lock = threading.Lock()
        # the router's own hold, released once it has queued every parcel: a consumer
        # settling the first parcel must not finish a batch whose others are not out yet
        self._outstanding = 1

    def hold(self, events: int) -> None:
        with self._lock:
            self._outstanding += events

    def settle(self, events: int) -> None:
        with self._lock:
            self._outstanding -= events
            if self._outstanding > 0 or self._done is None:
                return
            done, self._done = self._done, None
        done()

    @property
    def outstanding(self) -> int:
        return self._outstanding

    @property
    def settled(self) -> bool:
        return self._done is None
