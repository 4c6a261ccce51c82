"""A consumer's bounded queue, with the `on_full` policies.

The router puts whole batches; the consumer's writer takes whole batches. Items are
counted `enqueued` when offered, so every item ends as delivered, dropped or dead-lettered.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from evroute.config.model import QueueSettings
from evroute.stats import ConsumerStats

# While blocked, re-check for shutdown this often: waking a few times a second at most.
WAIT_SLICE_S = 0.25
SHUTDOWN_DETAIL = "evroute was stopped before delivery"


class Envelope(NamedTuple):
    """One event on its way to one consumer."""

    payload: bytes  # what the consumer gets: the original line, or the transform's output
    original: bytes  # the line as it arrived, for dead letters and redrive
    input: str
    line: int
    route: str


# Called with items the queue gives up on: (reason, detail, items)
Reject = Callable[[str, str, list[Envelope]], None]

OPEN, ENDED, FAILED = "open", "ended", "failed"


class ConsumerQueue:
    def __init__(
        self,
        settings: QueueSettings,
        stats: ConsumerStats,
        reject: Reject,
        out_of_time: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self._reject = reject
        self._out_of_time = out_of_time
        self._items: deque[Envelope] = deque()
        self._bytes = 0
        self._closed = False  # no more puts: the input is done
        self._mode = OPEN  # ENDED: the reader went away; FAILED: the sink cannot deliver
        self._mode_detail = ""
        self._mode_reason = "delivery_failed"
        # reentrant: a sink that stops accepting settles its backlog under the lock, so
        # those dead letters come before any of the events the router offers later
        self._lock = threading.RLock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_reader(self) -> bool:
        """False once the consumer's reader has gone away for good (stdout closed)."""
        return self._mode != ENDED

    def _has_room(self, payload_size: int) -> bool:
        if not self._items:
            return True  # an item larger than buffer_bytes still passes, alone
        return (
            len(self._items) < self.settings.buffer
            and self._bytes + payload_size <= self.settings.buffer_bytes
        )

    def put_many(self, items: list[Envelope]) -> None:
        """Offer items in order; what happens when full is the queue's `on_full`."""
        dropped: list[Envelope] = []
        rejected: list[Envelope] = []
        with self._lock:
            self.stats.enqueued += len(items)
            if self._mode != OPEN or self._closed:
                rejected = items
            else:
                policy = self.settings.on_full
                for index, item in enumerate(items):
                    size = len(item.payload)
                    if policy == "block":
                        while not self._has_room(size) and self._mode == OPEN:
                            if self._out_of_time():
                                break
                            # the writer may be waiting for what this batch put so far
                            self._not_empty.notify()
                            self._not_full.wait(WAIT_SLICE_S)
                        if self._mode != OPEN or not self._has_room(size):
                            rejected = items[index:]
                            break
                    elif policy == "drop_newest":
                        if not self._has_room(size):
                            dropped.append(item)
                            continue
                    else:  # drop_oldest
                        while not self._has_room(size):
                            oldest = self._items.popleft()
                            self._bytes -= len(oldest.payload)
                            dropped.append(oldest)
                    self._items.append(item)
                    self._bytes += size
                if len(self._items):
                    self._not_empty.notify()
            self.stats.dropped += len(dropped)
        if dropped:
            self._reject("dropped", f"queue full (on_full: {self.settings.on_full})", dropped)
        if rejected:
            self._settle_rejected(rejected)

    def _settle_rejected(self, items: list[Envelope]) -> None:
        if self._mode == ENDED:
            self.drop_for_reader(items)
        elif self._mode == FAILED:
            self.dead_letter(self._mode_reason, self._mode_detail, items)
        else:  # shutting down
            self.dead_letter("shutdown", SHUTDOWN_DETAIL, items)

    def drop_for_reader(self, items: list[Envelope]) -> None:
        """Items the reader will never get because it left: counted, not dead-lettered."""
        with self._lock:
            self.stats.dropped += len(items)
            self.stats.dropped_by_reader += len(items)

    def dead_letter(self, reason: str, detail: str, items: list[Envelope]) -> None:
        with self._lock:
            self.stats.dead_lettered += len(items)
        self._reject(reason, detail, items)

    def get_batch(
        self, on_take: Callable[[list[Envelope]], None], max_items: int = 4096
    ) -> list[Envelope] | None:
        """Up to max_items in order, waiting for some; None once closed and empty.

        `on_take` sees the batch before the lock is released, so a batch is always
        either queued or held by its writer, never in between.
        """
        with self._lock:
            while not self._items:
                if self._closed or self._mode != OPEN:
                    return None
                self._not_empty.wait()
            count = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            self._bytes -= sum(len(item.payload) for item in batch)
            on_take(batch)
            self._not_full.notify_all()
            return batch

    def close(self) -> None:
        """The input is done: the writer drains what is queued, then gets None."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def fail_when_idle(self, idle: Callable[[], bool], detail: str) -> bool:
        """fail(), if `idle()` holds: checked under the lock that taking a batch holds."""
        with self._lock:
            if self._closed or not idle():
                return False  # closed: the input is done, and the writer settles the rest
            self.fail(detail)
            return True

    def take_all(self, and_then: Callable[[], None] = lambda: None) -> list[Envelope]:
        """Remove and return everything queued; `and_then` runs under the same lock."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            and_then()
            self._not_full.notify_all()
            return items

    def end(self) -> None:
        """The reader went away (stdout closed): what is queued and what comes is dropped."""
        self._stop_accepting(ENDED)

    def fail(self, detail: str, reason: str = "delivery_failed") -> None:
        """The sink cannot deliver: what is queued and what comes is dead-lettered."""
        self._stop_accepting(FAILED, detail, reason)

    def _stop_accepting(self, mode: str, detail: str = "", reason: str = "") -> None:
        with self._lock:
            self._mode, self._mode_detail, self._mode_reason = mode, detail, reason
            self._not_empty.notify_all()
            self._settle_rejected(self.take_all())
