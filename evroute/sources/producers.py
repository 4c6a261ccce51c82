"""The producers of a config's `inputs:`, and the handoff from their threads to the router.

Each producer's sources are opened by its kind (INPUT_KINDS); the Handoff is bounded, so
a router held up holds the producers up too.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from evroute.config.model import Config
from evroute.core.lines import LineBatch
from evroute.errors import InputError
from evroute.shaping.publish_policy import PublishPolicies
from evroute.sources import INPUT_KINDS
from evroute.sources.base import Source

if TYPE_CHECKING:
    from evroute.core.receipt import Receipt

# What producers hand the router: a batch of a source (the bytes it came from, and the
# receipt of an input that acknowledges), an error, or None for a producer's end.
HandoffItem: TypeAlias = "tuple[Source, LineBatch, int, Receipt | None] | str | None"


@dataclass
class Producer:
    """One entry of `inputs:`: the sources it reads, one after the other."""

    name: str
    sources: list[Source] = field(default_factory=list)


def open_producers(config: Config, warn: Callable[[str], None]) -> list[Producer]:
    """The producers of `inputs:`, their files opened (all checked before any is read)."""
    policies = PublishPolicies(config)
    producers: list[Producer] = []
    problems: list[str] = []
    for entry in config.inputs:
        try:
            producer = Producer(entry.name, INPUT_KINDS[entry.kind].open(entry, config, warn))
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
