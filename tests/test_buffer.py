"""ConsumerQueue's drop policies on parcels against a queue that takes one event at a time,
and `block` (spill has tests of its own, in test_spill.py)."""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evroute.config.model import QueueSettings
from evroute.core.parcel import Parcel
from evroute.core.stats import ConsumerStats
from evroute.engine.queues import ConsumerQueue


def one_at_a_time(
    policy: str, buffer: int, buffer_bytes: int, puts: list[list[int]]
) -> tuple[list[int], list[int]]:
    """The model: (kept, dropped) event numbers, each event offered alone; an event larger
    than buffer_bytes still passes, alone, into an empty queue."""
    queue: deque[tuple[int, int]] = deque()
    dropped: list[int] = []
    number = 0
    for sizes in puts:
        for size in sizes:
            number += 1

            def full(size: int = size) -> bool:
                held = sum(s for _, s in queue)
                return bool(queue) and (len(queue) >= buffer or held + size > buffer_bytes)

            if policy == "drop_newest":
                if full():
                    dropped.append(number)
                    continue
            else:
                while full():
                    dropped.append(queue.popleft()[0])
            queue.append((number, size))
    return [n for n, _ in queue], dropped


@settings(max_examples=300, deadline=None)
@given(
    policy=st.sampled_from(["drop_newest", "drop_oldest"]),
    buffer=st.integers(1, 8),
    buffer_bytes=st.integers(1, 40),
    puts=st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=10), max_size=6),
)
# empty events make room by their count alone: only the oldest one need go
@example(policy="drop_oldest", buffer=2, buffer_bytes=1, puts=[[0, 0], [1]])
def test_parcels_are_kept_and_dropped_as_events_one_at_a_time_would_be(
    policy: str, buffer: int, buffer_bytes: int, puts: list[list[int]]
) -> None:
    dropped: list[int] = []

    def reject(reason: str, detail: str, parcels: list[Parcel]) -> None:
        assert reason == "dropped"
        dropped.extend(letter.line for parcel in parcels for _, letter in parcel.letters())

    stats = ConsumerStats()
    queue = ConsumerQueue(QueueSettings(buffer, buffer_bytes, policy), stats, reject)
    first = 1
    for sizes in puts:
        payloads = [b"x" * size for size in sizes]
        queue.put(Parcel("in", ("r",), first, payloads, list(range(len(sizes))), 0))
        first += len(sizes)
    kept = [letter.line for parcel in queue.take_all() for _, letter in parcel.letters()]
    assert (kept, dropped) == one_at_a_time(policy, buffer, buffer_bytes, puts)
    assert stats.enqueued == len(kept) + stats.dropped


def test_drop_oldest_on_a_byte_limited_queue_cuts_parcels_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cuts = 0
    original_cut = Parcel.cut

    def counting_cut(self: Parcel, start: int, stop: int | None = None) -> Parcel:
        nonlocal cuts
        cuts += 1
        return original_cut(self, start, stop)

    monkeypatch.setattr(Parcel, "cut", counting_cut)
    queue = ConsumerQueue(
        QueueSettings(buffer=100_000, buffer_bytes=64 << 10, on_full="drop_oldest"),
        ConsumerStats(),
        lambda reason, detail, parcels: None,
    )
    events = 2000

    def parcel(first: int) -> Parcel:
        return Parcel("in", ("r", ""), first, [b"x" * 100] * events, list(range(events)), 0)

    queue.put(parcel(1))
    cuts = 0
    queue.put(parcel(events + 1))  # a queue full of older events: drop the oldest
    assert queue.stats.enqueued == queue.stats.dropped + queue._events
    assert cuts < 20, f"{cuts} cuts for one put of {events} events"


def test_block_holds_the_router_until_the_writer_takes_and_never_touches_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`block` stays as it was now that `spill` is the default: a parcel larger than the
    queue waits for the writer, part by part, and nothing goes to disk."""
    monkeypatch.setenv("EVROUTE_SPILL_DIR", str(tmp_path))
    stats = ConsumerStats()
    queue = ConsumerQueue(QueueSettings(buffer=10, on_full="block"), stats, lambda *args: None)
    events = 1000
    putter = threading.Thread(
        target=queue.put,
        args=(Parcel("in", ("r",), 1, [b"%d" % n for n in range(events)], list(range(events)), 0),),
        daemon=True,
    )
    putter.start()
    putter.join(0.5)
    assert putter.is_alive()  # the queue is full and nobody takes
    assert queue._events == 10 and stats.spilled == 0
    got: list[bytes] = []
    watchdog = threading.Timer(10, queue.close)  # a take that would wait for ever returns
    watchdog.start()
    while len(got) < events:
        batch = queue.get_batch(lambda batch: None)
        assert batch is not None
        got.extend(payload for parcel in batch for payload in parcel.payloads)
    watchdog.cancel()
    putter.join(10)
    assert not putter.is_alive()
    assert got == [b"%d" % n for n in range(events)]
    assert stats.spilled == 0 and list(tmp_path.iterdir()) == []


def test_the_queue_gauges_follow_puts_takes_and_failures() -> None:
    """What the live view shows: events waiting, none once the queue gave up on them."""
    stats = ConsumerStats()
    queue = ConsumerQueue(QueueSettings(buffer=100), stats, lambda *args: None)
    queue.put(Parcel("in", ("r",), 1, [b"a", b"b", b"c"], [0, 1, 2], 0))
    queue.put(Parcel("in", ("r",), 4, [b"d"], [0], 0))
    assert stats.queued == 4
    batch = queue.get_batch(lambda batch: None, max_events=3)
    assert batch is not None and stats.queued == 1
    queue.fail("the command failed")
    assert stats.queued == 0
