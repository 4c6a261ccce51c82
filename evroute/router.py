"""Filters, transforms and fan-out: a batch of lines in, a batch per consumer queue out."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import orjson

from evroute.buffer import ROUTE_BITS, ConsumerQueue, Parcel
from evroute.config.model import UNMATCHED_DEAD_LETTER, UNMATCHED_DROP, Config, RouteConfig
from evroute.deadletter import DeadLetters, Letter
from evroute.expr import ExpressionError
from evroute.sources.lines import LineBatch, OversizeLine, has_long_digit_run
from evroute.stats import RouteStats, RunStats


class Malformed(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_event(line: bytes) -> dict[str, Any]:
    """The JSON object on a line; Malformed says why it is not one."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        # beyond a float's range orjson gives up on a number that is valid JSON
        if not has_long_digit_run(line):
            raise Malformed(f"invalid JSON: {error}") from None
        event = _parse_exactly(line)
    else:
        if has_long_digit_run(line):  # orjson may have rounded an integer beyond 64 bits
            event = _parse_exactly(line)
    if not isinstance(event, dict):
        raise Malformed(f"expected a JSON object, got {type(event).__name__}")
    return event


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"number {text} is out of range")
    return number


def _parse_exactly(line: bytes) -> Any:
    """The json module's reading, held to what orjson accepts but for long integers."""
    try:
        event = json.loads(
            line.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite
        )
        # orjson refuses lone surrogates ("\ud800"); so must this, or the event could
        # not be written out again
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as error:  # UnicodeError is a ValueError
        raise Malformed(f"invalid JSON: {error}") from None
    return event


def encode(value: Any) -> bytes:
    """A transform's result as compact JSON; ExpressionError when it cannot be one."""
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, which orjson does not write
        pass
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError, UnicodeEncodeError) as error:
        raise ExpressionError(
            f"the result cannot be written as JSON: {error}", "invalid-value"
        ) from None


# How an event reaches one consumer: appends to its parcel's payloads and origins, and to
# its originals when some route to it transforms.
Appenders = tuple[Callable[[bytes], None], Callable[[int], None], Callable[[bytes], None] | None]
# A route as the hot loop uses it: (index, filter's test, transform's search, appenders)
Step = tuple[int, Callable[[Any], Any] | None, Callable[[Any], Any] | None, tuple[Appenders, ...]]


class _Outbox:
    """What one consumer gets from the batch being routed, kept from batch to batch."""

    def __init__(self, consumer: str, transformed: bool) -> None:
        self.consumer = consumer
        self.payloads: list[bytes] = []
        self.origins: list[int] = []
        self.originals: list[bytes] | None = [] if transformed else None
        self.appenders: Appenders = (
            self.payloads.append,
            self.origins.append,
            None if self.originals is None else self.originals.append,
        )

    def parcel(self, input_name: str, routes: tuple[str, ...]) -> Parcel | None:
        """The batch's events as a parcel, emptying the outbox."""
        if not self.payloads:
            return None
        originals = None if self.originals is None else self.originals.copy()
        parcel = Parcel(input_name, routes, self.payloads.copy(), self.origins.copy(), originals)
        self.payloads.clear()
        self.origins.clear()
        if self.originals is not None:
            self.originals.clear()
        return parcel


class Router:
    """Parses each line, tests it against the routes, and fills each consumer's parcel.

    Routes whose filter requires `path == 'text'` are indexed by that text (for the path
    most routes use), so an event is tested only against the routes it can match.
    """

    def __init__(
        self,
        config: Config,
        queues: dict[str, ConsumerQueue],
        dead_letters: DeadLetters,
        stats: RunStats,
    ) -> None:
        self.config = config
        self.queues = queues
        self.dead_letters = dead_letters
        self.stats = stats
        routes = config.routes
        self.route_stats = [stats.routes.setdefault(r.name, RouteStats()) for r in routes]
        # the last index is for events that no route matched
        self.route_names = (*(route.name for route in routes), "")
        self.unmatched_index = len(routes)
        unmatched = config.unmatched
        self.unmatched_dead_letter = unmatched == UNMATCHED_DEAD_LETTER
        assert unmatched in queues or unmatched in (UNMATCHED_DROP, UNMATCHED_DEAD_LETTER)
        transformed = {name for route in routes if route.transform for name in route.to}
        self.outboxes = {name: _Outbox(name, name in transformed) for name in queues}
        self.unmatched_appenders = (
            self.outboxes[unmatched].appenders if unmatched in self.outboxes else None
        )
        steps = [
            (
                index,
                None if route.filter is None else route.filter.test_function,
                None if route.transform is None else route.transform.search_function,
                tuple(self.outboxes[name].appenders for name in route.to),
            )
            for index, route in enumerate(routes)
        ]
        self.index_path, self.plans, self.default_plan = _index(routes, steps)
        # dead letters of the batch being routed, in the order of its lines
        self._letters: list[tuple[str, str, str | None, Letter]] = []

    def route(self, input_name: str, batch: LineBatch) -> None:
        """Route a batch of lines; each consumer gets its share as one parcel."""
        first, long_digits = batch.first, batch.long_digits
        # an OversizeLine is no bytes, but orjson refuses it and _parse_slowly takes it
        lines = cast(list[bytes], batch.lines)
        hits = [0] * len(self.route_names)
        plans, default_plan = self.plans, self.default_plan
        path = self.index_path
        key_name = path[0] if path is not None and len(path) == 1 else None
        unmatched_appenders = self.unmatched_appenders
        unmatched_dead_letter = self.unmatched_dead_letter
        unmatched_origin = self.unmatched_index
        loads = orjson.loads
        skipped = 0  # blank lines and malformed ones
        for position, line in enumerate(lines):
            try:
                event = loads(line)
                if type(event) is not dict or (long_digits and has_long_digit_run(line)):
                    raise Malformed  # not an object, or orjson may have rounded a number
            except Exception:
                event = self._parse_slowly(input_name, first + position, line)
                if event is None:
                    skipped += 1
                    continue
            if path is None:
                plan = default_plan
            else:
                key = event.get(key_name) if key_name is not None else _walk(event, path)
                plan = plans.get(key, default_plan) if type(key) is str else default_plan
            matched = False
            for index, test, transform, targets in plan:
                if test is not None:
                    try:
                        if not test(event):
                            continue
                    except Exception as error:
                        self._filter_error(input_name, first + position, line, index, error)
                        continue
                if transform is None:
                    payload = line
                else:
                    try:
                        payload = encode(transform(event))
                    except Exception as error:
                        self._filter_error(input_name, first + position, line, index, error, True)
                        continue
                matched = True
                hits[index] += 1
                origin = ((first + position) << ROUTE_BITS) | index
                for append_payload, append_origin, append_original in targets:
                    append_payload(payload)
                    append_origin(origin)
                    if append_original is not None:
                        append_original(line)
            if not matched:
                hits[unmatched_origin] += 1
                if unmatched_appenders is not None:
                    append_payload, append_origin, append_original = unmatched_appenders
                    append_payload(line)
                    append_origin(((first + position) << ROUTE_BITS) | unmatched_origin)
                    if append_original is not None:
                        append_original(line)
                elif unmatched_dead_letter:
                    letter = Letter(input_name, first + position, line, True)
                    self._letters.append(("unmatched", "no route matched", None, letter))
        self.stats.input(input_name).events += len(lines) - skipped
        self.stats.unmatched += hits[unmatched_origin]
        for route_stats, count in zip(self.route_stats, hits[:-1], strict=True):
            route_stats.matched += count
        self._flush_letters()
        for outbox in self.outboxes.values():
            parcel = outbox.parcel(input_name, self.route_names)
            if parcel is not None:
                self.queues[outbox.consumer].put(parcel)

    def _parse_slowly(
        self, input_name: str, number: int, line: bytes | OversizeLine
    ) -> dict[str, Any] | None:
        """The event on a line orjson alone could not read; None when there is none
        (blank, or malformed and dead-lettered)."""
        if isinstance(line, OversizeLine):
            detail = (
                f"line of {line.length} bytes is over max_event_bytes "
                f"({self.config.max_event_bytes})"
            )
            letter = Letter(input_name, number, line.prefix, False, line.length)
        elif not line or line.isspace():
            return None
        else:
            try:
                return parse_event(line)
            except Malformed as error:
                detail = str(error)
                letter = Letter(input_name, number, line, False)
        self.stats.input(input_name).malformed += 1
        self._letters.append(("malformed", detail, None, letter))
        return None

    def _filter_error(
        self,
        input_name: str,
        number: int,
        line: bytes,
        index: int,
        error: Exception,
        in_transform: bool = False,
    ) -> None:
        route = self.config.routes[index]
        self.route_stats[index].errors += 1
        expression = route.transform if in_transform else route.filter
        assert expression is not None
        # the expression locates the error and names what generated code raised
        detail = str(expression.error(error))
        letter = Letter(input_name, number, line, True)
        self._letters.append(("filter_error", detail, route.name, letter))

    def _flush_letters(self) -> None:
        """Write the batch's dead letters, in order, a run of the same kind at a time."""
        if not self._letters:
            return
        letters, self._letters = self._letters, []
        for (reason, detail, route), run in itertools.groupby(letters, key=lambda x: x[:3]):
            self.dead_letters.add(reason, detail, (item[3] for item in run), route=route)


def _walk(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for name in path:
        if type(value) is not dict:
            return None
        value = value.get(name)
    return value


def _index(
    routes: list[RouteConfig], steps: list[Step]
) -> tuple[tuple[str, ...] | None, dict[str, tuple[Step, ...]], tuple[Step, ...]]:
    """The path to index by, the routes to try for each of its values, and for others.

    Plans keep the routes in config order, so an event reaches its consumers in the same
    order whichever plan it takes.
    """
    required: list[dict[tuple[str, ...], str]] = [
        dict(route.filter.required_equalities()) if route.filter is not None else {}
        for route in routes
    ]
    uses = Counter(path for paths in required for path in paths)
    if not uses:
        return None, {}, tuple(steps)
    path = uses.most_common(1)[0][0]
    values = {paths[path] for paths in required if path in paths}
    pairs = list(zip(steps, required, strict=True))
    plans = {
        value: tuple(step for step, paths in pairs if paths.get(path, value) == value)
        for value in values
    }
    default_plan = tuple(step for step, paths in pairs if path not in paths)
    return path, plans, default_plan
