"""Parcels: a batch of one input's events on its way to one consumer, and what it settles.

Also `Letter`, one event as a dead letter names it: a parcel's events become letters
when they cannot be delivered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from evroute.core.receipt import Receipt


class Letter(NamedTuple):
    """One event (or line) to dead-letter, and where it came from."""

    input: str | None
    line: int | None
    data: bytes  # a JSON object as it arrived when `parsed`, else the raw line
    parsed: bool
    total_bytes: int | None = None  # the full length, when `data` is only the start


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
