"""A consumer's bounded queue, with the `on_full` policies.

The router puts parcels (a chunk of input's events for one consumer); the consumer's
writer takes several at once. Events are counted `enqueued` when offered, so every event
ends as delivered, dropped or dead-lettered.

With `on_full: spill`, what memory has no room for goes to disk (storage/spill.py), and once
anything is there every later parcel follows it, until the writer has read it all back
into memory: so events leave in the order they came.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from evroute.config.model import QueueSettings
from evroute.core.parcel import Parcel, count, settle
from evroute.core.stats import ConsumerStats
from evroute.sinks.base import SHUTDOWN_DETAIL
from evroute.storage.audit_log import AuditLog, parcel_entries
from evroute.storage.spill import SPILL_DIR_VARIABLE, SpillLost, SpillStore

if TYPE_CHECKING:
    from evroute.storage.crypto import Key

# While blocked, re-check for shutdown this often: waking a few times a second at most.
WAIT_SLICE_S = 0.25
READER_LEFT = "the reader of the consumer's output went away"


# Called with parcels the queue gives up on: (reason, detail, parcels)
Reject = Callable[[str, str, list[Parcel]], None]

OPEN, ENDED, FAILED = "open", "ended", "failed"


class ConsumerQueue:
    def __init__(
        self,
        settings: QueueSettings,
        stats: ConsumerStats,
        reject: Reject,
        out_of_time: Callable[[], bool] = lambda: False,
        name: str = "",
        warn: Callable[[str], None] = lambda message: None,
        spill_key: Key | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.audit = audit  # told of events dropped because the reader left
        self.settings = settings
        self.spill_key = spill_key  # seals the spill segments (the config's encrypt:)
        self.stats = stats
        self.name = name
        self._reject = reject
        self._out_of_time = out_of_time
        self._warn = warn
        self._warnings: list[str] = []  # said once the lock is released
        # on_full: spill: the backlog on disk, made at the first spill; the part of a
        # parcel read back that memory had no room for yet; whether a disk error has
        # turned spilling off (the queue then blocks when full, as `block` does)
        self._spill: SpillStore | None = None
        self._spill_head: Parcel | None = None
        self._spill_broken = False
        self._parcels: deque[Parcel] = deque()
        self._events = 0
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

    def drained(self) -> bool:
        """The input is done and nothing is left to take: the batch in hand is the last."""
        with self._lock:
            return self._closed and not self._parcels and not self._spilled_events()

    @property
    def has_reader(self) -> bool:
        """False once the consumer's reader has gone away for good (stdout closed)."""
        return self._mode != ENDED

    def _room(self, parcel: Parcel) -> int:
        """How many of the parcel's first events fit now; an event larger than
        buffer_bytes still passes, alone, into an empty queue."""
        free_bytes = self.settings.buffer_bytes - self._bytes
        fits = min(len(parcel), max(self.settings.buffer - self._events, 0))
        if fits == len(parcel) and parcel.size <= free_bytes:
            return fits
        taken = 0
        for index in range(fits):
            taken += len(parcel.payloads[index])
            if taken > free_bytes:
                return 1 if index == 0 and not self._events else index
        return fits

    def _append(self, parcel: Parcel) -> None:
        self._parcels.append(parcel)
        self._events += len(parcel)
        self._bytes += parcel.size

    def _pop_oldest(self, events: int, size: int) -> list[Parcel]:
        """Remove the oldest events, as few as frees `events` events and `size` bytes."""
        removed: list[Parcel] = []
        while (events > 0 or size > 0) and self._parcels:
            oldest = self._parcels[0]
            cut = len(oldest)
            if cut > events and oldest.size >= size:  # part of it will do
                cut = max(events, 0)
                freed = sum(map(len, oldest.payloads[:cut]))
                while freed < size:
                    freed += len(oldest.payloads[cut])
                    cut += 1
            if cut >= len(oldest):
                self._parcels.popleft()
            else:
                self._parcels[0] = oldest.cut(cut)
                oldest = oldest.cut(0, cut)
            removed.append(oldest)
            events -= len(oldest)
            size -= oldest.size
            self._events -= len(oldest)
            self._bytes -= oldest.size
        return removed

    def _put_dropping_newest(self, parcel: Parcel) -> list[Parcel]:
        """Queue what of `parcel` fits, event by event; what was dropped."""
        if self._room(parcel) == len(parcel):
            self._append(parcel)
            return []
        kept: list[int] = []
        dropped: list[int] = []
        events, size = self._events, self._bytes
        for index, payload in enumerate(parcel.payloads):
            # a smaller event may still fit where a larger one did not
            fits = events < self.settings.buffer and size + len(payload) <= (
                self.settings.buffer_bytes
            )
            if fits or not events:
                kept.append(index)
                events += 1
                size += len(payload)
            else:
                dropped.append(index)
        if kept:
            self._append(parcel.pick(kept))
        return [parcel.pick(dropped)] if dropped else []

    def _put_dropping_oldest(self, parcel: Parcel) -> list[Parcel]:
        """Queue `parcel`, dropping the oldest events to make room; what was dropped."""
        # what of the parcel an empty queue holds: its newest events (at least one)
        kept, size = 0, 0
        for payload in reversed(parcel.payloads):
            if kept and (
                kept >= self.settings.buffer or size + len(payload) > (self.settings.buffer_bytes)
            ):
                break
            kept += 1
            size += len(payload)
        if kept == len(parcel):
            newest = parcel
            dropped = self._pop_oldest(
                self._events + len(newest) - self.settings.buffer,
                self._bytes + newest.size - self.settings.buffer_bytes,
            )
        else:  # the parcel's own oldest go too, so all that came before them does
            newest = parcel.cut(len(parcel) - kept)
            dropped = self._pop_oldest(self._events, self._bytes)
            dropped.append(parcel.cut(0, len(parcel) - kept))
        self._append(newest)
        return dropped

    def _gauge(self) -> None:
        """What the live view shows of the queue: events waiting, bytes on disk."""
        self.stats.queued = self._events + self._spilled_events()
        self.stats.spill_bytes = 0 if self._spill is None else self._spill.bytes

    def _spilled_events(self) -> int:
        """Events on disk, or read back and waiting for room in memory."""
        spilled = 0 if self._spill is None else self._spill.events
        return spilled + (0 if self._spill_head is None else len(self._spill_head))

    def _spill_out(self, parcel: Parcel) -> int:
        """Write what of `parcel` the spill has room for; how many events that was."""
        try:
            if self._spill is None:
                self._spill = SpillStore(self.settings.spill_max_bytes, key=self.spill_key)
            # an acknowledging input acks what is spilled: it must be on disk first
            receipt = parcel.receipt
            written = self._spill.append(parcel, sync=receipt is not None)
        except OSError as error:
            self._spill_broken = True
            folder = self._spill.folder if self._spill is not None else None
            where = f" in {folder}" if folder else ""
            self._warnings.append(
                f"{self._who()}cannot spill its backlog to disk{where}"
                f" ({error.strerror or error}); from now on its queue holds up the input"
                f" when full (as on_full: block); set {SPILL_DIR_VARIABLE} to a folder"
                " with room"
            )
            return 0
        self.stats.spilled += written
        if receipt is not None and written:
            receipt.settle(written)
        return written

    def _refill(self, max_events: int) -> None:
        """Bring spilled parcels back into memory, oldest first, while it has room."""
        head = self._spill_head
        while self._events < max_events:
            if head is None:
                if self._spill is None or not self._spill.events:
                    break
                head = self._read_spill()
                if head is None:
                    continue
            room = self._room(head)
            if room == len(head):
                self._append(head)
                head = None
            elif room:
                self._append(head.cut(0, room))
                head = head.cut(room)
            else:
                break
        self._spill_head = head

    def _read_spill(self) -> Parcel | None:
        """The next parcel on disk; events it cannot read back are counted as dropped."""

        assert self._spill is not None
        try:
            return self._spill.read()
        except SpillLost as lost:
            self.stats.dropped += lost.events
            if self.audit is not None:
                self.audit.uncounted("dropped", lost.events, self.name, "dropped", lost.detail)
            self._warnings.append(
                f"{self._who()}{lost.events} spilled events could not be read back"
                f" ({lost.detail}); they are counted as dropped"
            )
            return None

    def _take_spilled(self) -> Iterator[Parcel]:
        """Everything spilled, read back one parcel at a time, in order; then none is."""
        try:
            if self._spill_head is not None:
                head, self._spill_head = self._spill_head, None
                yield head
            while self._spill is not None and self._spill.events:
                parcel = self._read_spill()
                if parcel is not None:
                    yield parcel
        finally:
            if self._spill is not None:
                self._spill.discard()

    def _who(self) -> str:
        return f"consumer {self.name!r}: " if self.name else ""

    def _say_warnings(self) -> None:
        """Pass on what the queue has to say, outside the lock (stderr may be slow)."""
        while self._warnings:
            try:
                message = self._warnings.pop(0)
            except IndexError:  # another thread said it
                return
            self._warn(message)

    def put(self, parcel: Parcel) -> None:
        """Offer a parcel of events; what happens when full is the queue's `on_full`."""
        if not len(parcel):
            return
        rest = self._offer(parcel, len(parcel))
        while rest is not None:  # the spill failed: say so at once, before blocking
            self._say_warnings()
            rest = self._offer(rest, 0)
        self._say_warnings()

    def _offer(self, parcel: Parcel, new_events: int) -> Parcel | None:
        """put(), counting `new_events` as enqueued; what is left of the parcel when the
        spill has just failed, for put() to offer again once it has said so."""
        dropped: list[Parcel] = []
        rejected: Parcel | None = None
        left: Parcel | None = None
        with self._lock:
            self.stats.enqueued += new_events
            policy = self.settings.on_full
            while True:
                if self._mode != OPEN or self._closed:
                    rejected = parcel
                    break
                if policy == "drop_oldest":
                    dropped = self._put_dropping_oldest(parcel)
                    break
                if policy == "drop_newest":
                    dropped = self._put_dropping_newest(parcel)
                    break
                if not self._spilled_events():  # else memory is for what comes back from disk
                    room = self._room(parcel)
                    if room == len(parcel):
                        self._append(parcel)
                        break
                    if room:
                        self._append(parcel.cut(0, room))
                        parcel = parcel.cut(room)
                if policy == "spill" and not self._spill_broken:
                    written = self._spill_out(parcel)
                    if written == len(parcel):
                        break
                    if written:
                        parcel = parcel.cut(written)
                    if self._spill_broken:
                        left = parcel
                        break
                # block (or the spill is full): the writer may be waiting for what this
                # parcel put so far
                if self._out_of_time():
                    rejected = parcel
                    break
                self._not_empty.notify()
                self._not_full.wait(WAIT_SLICE_S)
            if self._events or self._spilled_events():
                self._not_empty.notify()
            self.stats.dropped += count(dropped)
            self._gauge()
        if dropped:
            self._reject("dropped", f"queue full (on_full: {self.settings.on_full})", dropped)
        if rejected is not None:
            self._settle_rejected([rejected])
        return left

    def _settle_rejected(self, parcels: list[Parcel]) -> None:
        if self._mode == ENDED:
            self.drop_for_reader(parcels)
        elif self._mode == FAILED:
            self.dead_letter(self._mode_reason, self._mode_detail, parcels)
        else:  # shutting down
            self.dead_letter("shutdown", SHUTDOWN_DETAIL, parcels)

    def drop_for_reader(self, parcels: list[Parcel]) -> None:
        """Events the reader will never get because it left: counted, not dead-lettered."""
        with self._lock:
            events = count(parcels)
            self.stats.dropped += events
            self.stats.dropped_by_reader += events
            if self.audit is not None:
                self.audit.record(
                    "dropped", parcel_entries(parcels), self.name, "dropped", READER_LEFT
                )
        settle(parcels)

    def dead_letter(self, reason: str, detail: str, parcels: list[Parcel]) -> None:
        if not parcels:
            return
        with self._lock:
            self.stats.dead_lettered += count(parcels)
        self._reject(reason, detail, parcels)

    def get_batch(
        self, on_take: Callable[[list[Parcel]], None], max_events: int = 4096
    ) -> list[Parcel] | None:
        """Up to max_events events in order, waiting for some; None once closed and empty.

        `on_take` sees the batch before the lock is released, so a batch is always
        either queued or held by its writer, never in between.
        """
        with self._lock:
            while not self._parcels:
                if self._spilled_events() and self._mode == OPEN:
                    self._refill(max_events)
                    continue
                if self._closed or self._mode != OPEN:
                    break
                self._not_empty.wait()
            if not self._parcels:
                batch = None
            else:
                batch = self._take_batch(max_events)
                on_take(batch)
                self._not_full.notify_all()
            self._gauge()
        self._say_warnings()
        return batch

    def _take_batch(self, max_events: int) -> list[Parcel]:
        """Up to max_events events from memory, which then takes back what it can from disk."""
        batch: list[Parcel] = []
        taken = 0
        while self._parcels and taken < max_events:
            parcel = self._parcels[0]
            if taken + len(parcel) > max_events and taken:
                break
            self._parcels.popleft()
            batch.append(parcel)
            taken += len(parcel)
            self._bytes -= parcel.size
        self._events -= taken
        if self._spilled_events():
            self._refill(max_events)
        return batch

    def close(self) -> None:
        """The input is done: the writer drains what is queued, then gets None."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def fail_when_idle(
        self, idle: Callable[[], bool], detail: str, reason: str = "delivery_failed"
    ) -> bool:
        """fail(), if `idle()` holds: checked under the lock that taking a batch holds."""
        with self._lock:
            if not idle() or (self._closed and reason != "shutdown"):
                return False  # closed: the input is done, and the writer settles the rest
            self.fail(detail, reason)
            return True

    def take_all(self, and_then: Callable[[], None] = lambda: None) -> list[Parcel]:
        """Remove and return everything queued, spilled events included (read back from
        disk, all at once); `and_then` runs under the same lock."""
        with self._lock:
            parcels = self._take_memory()
            parcels.extend(self._take_spilled())
            and_then()
            self._not_full.notify_all()
            self._gauge()
        self._say_warnings()
        return parcels

    def _take_memory(self) -> list[Parcel]:
        parcels = list(self._parcels)
        self._parcels.clear()
        self._events = 0
        self._bytes = 0
        return parcels

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
            self._not_full.notify_all()
            self._settle_rejected(self._take_memory())
            if mode == ENDED:  # only counted: no need to read the disk back
                spilled = self._spilled_events()
                self.stats.dropped += spilled
                self.stats.dropped_by_reader += spilled
                if self.audit is not None and spilled:
                    self.audit.uncounted("dropped", spilled, self.name, "dropped", READER_LEFT)
                self._spill_head = None
                if self._spill is not None:
                    self._spill.discard()
            else:  # a parcel at a time, so a large backlog needs no more memory than one
                for parcel in self._take_spilled():
                    self._settle_rejected([parcel])
            self._gauge()
        self._say_warnings()
