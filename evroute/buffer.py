"""A consumer's bounded queue, with the `on_full` policies.

The router puts parcels (a chunk of input's events for one consumer); the consumer's
writer takes several at once. Events are counted `enqueued` when offered, so every event
ends as delivered, dropped or dead-lettered.

With `on_full: spill`, what memory has no room for goes to disk (spill.py), and once
anything is there every later parcel follows it, until the writer has read it all back
into memory: so events leave in the order they came.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evroute.audit import AuditLog, parcel_entries
from evroute.config.model import QueueSettings
from evroute.deadletter import Letter
from evroute.stats import ConsumerStats

if TYPE_CHECKING:
    from evroute.crypto import Key
    from evroute.receipt import Receipt
    from evroute.spill import SpillStore

# While blocked, re-check for shutdown this often: waking a few times a second at most.
WAIT_SLICE_S = 0.25
SPILL_DIR_VARIABLE = "EVROUTE_SPILL_DIR"
SHUTDOWN_DETAIL = "evroute was stopped before delivery"
READER_LEFT = "the reader of the consumer's output went away"


@dataclass(slots=True)
class Parcel:
    """Events on their way to one consumer, in order, from one batch of one input.

    Kept as parallel lists rather than an object per event, which the router builds
    and the writer joins at C speed.
    """

    input: str
    routes: Sequence[str]  # route names by index; "" for events no route matched
    first: int  # the line number of position 0
    payloads: list[bytes]  # what the consumer gets: the line as it came, or the transform's
    positions: list[int]  # per payload: its line number, less `first`
    route: int | list[int]  # the route index of every payload, or of each
    originals: list[bytes] | None = None  # the lines as they came, where payloads differ
    size: int = -1  # bytes of payload; worked out when left at -1
    # with an audit log: each event's id as JSON, worked out once by the router (not
    # spilled: a parcel read back from disk has none, and the audit works them out again)
    ids: list[bytes] | None = None
    # from an input that acknowledges (NATS): told when each event is settled
    receipt: Receipt | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = sum(map(len, self.payloads))

    def __len__(self) -> int:
        return len(self.payloads)

    def cut(self, start: int, stop: int | None = None) -> Parcel:
        """The events from `start` to `stop`, as a parcel of their own."""
        return Parcel(
            self.input,
            self.routes,
            self.first,
            self.payloads[start:stop],
            self.positions[start:stop],
            self.route if isinstance(self.route, int) else self.route[start:stop],
            None if self.originals is None else self.originals[start:stop],
            ids=None if self.ids is None else self.ids[start:stop],
            receipt=self.receipt,
        )

    def pick(self, indexes: list[int]) -> Parcel:
        """The events at `indexes` (in order), as a parcel of their own."""
        route = self.route
        return Parcel(
            self.input,
            self.routes,
            self.first,
            [self.payloads[i] for i in indexes],
            [self.positions[i] for i in indexes],
            route if isinstance(route, int) else [route[i] for i in indexes],
            None if self.originals is None else [self.originals[i] for i in indexes],
            ids=None if self.ids is None else [self.ids[i] for i in indexes],
            receipt=self.receipt,
        )

    def letters(self) -> Iterator[tuple[str, Letter]]:
        """Each event as a dead letter, with the name of the route it came by."""
        originals = self.originals if self.originals is not None else self.payloads
        routes = (
            itertools.repeat(self.route, len(self)) if isinstance(self.route, int) else self.route
        )
        for position, route, original in zip(self.positions, routes, originals, strict=True):
            yield self.routes[route], Letter(self.input, self.first + position, original, True)


def count(parcels: Iterable[Parcel]) -> int:
    return sum(len(parcel) for parcel in parcels)


def settle(parcels: Iterable[Parcel], limit: int | None = None) -> None:
    """The parcels' events (the first `limit` of them) are settled: their receipts hear."""
    for parcel in parcels:
        events = len(parcel) if limit is None else min(len(parcel), limit)
        if parcel.receipt is not None and events:
            parcel.receipt.settle(events)
        if limit is not None:
            limit -= events
            if limit <= 0:
                return


def settle_except(parcels: list[Parcel], failed: Iterable[int]) -> None:
    """Settle every event but those at `failed` (ascending, counted across `parcels`),
    which are settled where they are dead-lettered."""
    failed_per_parcel: dict[int, int] = {}
    start, number = 0, 0
    for index in failed:
        while index >= start + len(parcels[number]):
            start += len(parcels[number])
            number += 1
        failed_per_parcel[number] = failed_per_parcel.get(number, 0) + 1
    for number, parcel in enumerate(parcels):
        events = len(parcel) - failed_per_parcel.get(number, 0)
        if parcel.receipt is not None and events:
            parcel.receipt.settle(events)


def skip(parcels: list[Parcel], events: int) -> list[Parcel]:
    """What remains of `parcels` after their first `events` events."""
    rest: list[Parcel] = []
    for parcel in parcels:
        if events >= len(parcel):
            events -= len(parcel)
            continue
        rest.append(parcel.cut(events) if events else parcel)
        events = 0
    return rest


def pick(parcels: list[Parcel], indexes: Iterable[int]) -> list[Parcel]:
    """The events at `indexes` (ascending, counted across `parcels`), as parcels."""
    wanted = iter(indexes)
    picked: list[Parcel] = []
    start = 0
    index = next(wanted, None)
    for parcel in parcels:
        mine: list[int] = []
        while index is not None and index < start + len(parcel):
            mine.append(index - start)
            index = next(wanted, None)
        if mine:
            picked.append(parcel.pick(mine))
        start += len(parcel)
    return picked


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
                from evroute.spill import SpillStore  # spill.py builds on Parcel, above

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
        from evroute.spill import SpillLost

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
