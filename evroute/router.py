"""Filters, transforms and fan-out: a batch of lines in, a batch per consumer queue out."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from evroute.buffer import ConsumerQueue, Envelope
from evroute.config.model import UNMATCHED_DEAD_LETTER, UNMATCHED_DROP, Config
from evroute.deadletter import DeadLetters, Letter
from evroute.expr import ExpressionError, is_truthy
from evroute.sources.lines import Line, OversizeLine
from evroute.stats import RouteStats, RunStats


class Malformed(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# orjson reads integers beyond 64 bits as floats, losing digits; such lines (and lines with
# long digit runs in strings, harmlessly) are parsed again by the json module, exactly.
# Mapping digits to "0" and looking for 19 of them is several times faster than a regex.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def parse_event(line: bytes) -> dict[str, Any]:
    """The JSON object on a line; Malformed says why it is not one."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        # beyond a float's range orjson gives up on a number that is valid JSON
        if _LONG_DIGITS not in line.translate(_DIGITS_TO_ZERO):
            raise Malformed(f"invalid JSON: {error}") from None
        event = _parse_exactly(line)
    else:
        if _LONG_DIGITS in line.translate(_DIGITS_TO_ZERO):
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
        raise ExpressionError(f"the result cannot be written as JSON: {error}") from None


class Router:
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
        self.routes = [
            (route, stats.routes.setdefault(route.name, RouteStats())) for route in config.routes
        ]
        unmatched = config.unmatched
        self.unmatched_consumer = unmatched if unmatched in queues else None
        self.unmatched_dead_letter = unmatched == UNMATCHED_DEAD_LETTER
        assert self.unmatched_consumer or unmatched in (UNMATCHED_DROP, UNMATCHED_DEAD_LETTER)

    def route_batch(self, input_name: str, lines: list[Line]) -> None:
        """Route lines in order; every consumer gets its share as one batch."""
        outgoing: dict[str, list[Envelope]] = {}
        input_stats = self.stats.input(input_name)
        unmatched_count = 0
        for number, line in lines:
            if isinstance(line, OversizeLine):
                input_stats.malformed += 1
                self.dead_letters.add(
                    "malformed",
                    f"line of {line.length} bytes is over max_event_bytes "
                    f"({self.config.max_event_bytes})",
                    [Letter(input_name, number, line.prefix, False, line.length)],
                )
                continue
            try:
                event = parse_event(line)
            except Malformed as error:
                input_stats.malformed += 1
                self.dead_letters.add(
                    "malformed", str(error), [Letter(input_name, number, line, False)]
                )
                continue
            input_stats.events += 1
            matched = False
            for route, route_stats in self.routes:
                try:
                    if route.filter is not None and not is_truthy(route.filter.search(event)):
                        continue
                    payload = (
                        line if route.transform is None else encode(route.transform.search(event))
                    )
                except ExpressionError as error:
                    route_stats.errors += 1
                    self.dead_letters.add(
                        "filter_error",
                        str(error),
                        [Letter(input_name, number, line, True)],
                        route=route.name,
                    )
                    continue
                matched = True
                route_stats.matched += 1
                envelope = Envelope(payload, line, input_name, number, route.name)
                for consumer in route.to:
                    outgoing.setdefault(consumer, []).append(envelope)
            if not matched:
                unmatched_count += 1
                if self.unmatched_consumer is not None:
                    outgoing.setdefault(self.unmatched_consumer, []).append(
                        Envelope(line, line, input_name, number, "")
                    )
                elif self.unmatched_dead_letter:
                    self.dead_letters.add(
                        "unmatched", "no route matched", [Letter(input_name, number, line, True)]
                    )
        self.stats.unmatched += unmatched_count
        for consumer, envelopes in outgoing.items():
            self.queues[consumer].put_many(envelopes)
