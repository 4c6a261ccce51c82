"""ConsumerQueue's drop policies on parcels against a queue that takes one event at a time."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evroute.buffer import ConsumerQueue, Parcel
from evroute.config.model import QueueSettings
from evroute.stats import ConsumerStats


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
