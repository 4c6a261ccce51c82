"""Routing: a batch of lines in, parsed, matched and transformed; a parcel per consumer out."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import orjson

from evroute.config.model import UNMATCHED_DEAD_LETTER, UNMATCHED_DROP, Config, RouteConfig
from evroute.core.json_codec import Malformed, Unwritable, encode, parse_event
from evroute.core.lines import LineBatch, OversizeLine, has_long_digit_run
from evroute.core.parcel import Letter, Parcel
from evroute.core.stats import RouteStats, RunStats
from evroute.engine.queues import ConsumerQueue
from evroute.expr import ExpressionError, Plan, PlanStep, batch_runner, compile_plan
from evroute.expr.errors import INVALID_VALUE
from evroute.shaping.fields_gate import Gate
from evroute.shaping.matching import pattern_failure
from evroute.shaping.publish_policy import PublishPolicy
from evroute.storage.audit_log import AuditLog, Entry, id_json
from evroute.storage.dead_letters import DeadLetters

if TYPE_CHECKING:
    from evroute.core.receipt import Receipt
    from evroute.patterns import Pattern, PatternSet


def rounding_matters(config: Config) -> bool:
    """Whether routing by `config` can tell an integer beyond 64 bits read exactly from
    one orjson rounded to a float: transforms and patterns can, and a filter can unless
    its truth ignores it (expr's truth_ignores_rounding)."""
    return any(
        route.transform is not None
        or route.pattern is not None
        or (route.filter is not None and not route.filter.truth_ignores_rounding())
        for route in config.routes
    )


NO_ROUTE = -1
UNMATCHED_DROPPED = "no route matched (unmatched: drop)"


@dataclass
class Verdict:
    """What routing a batch decided, before anything is counted or delivered."""

    events: int  # lines that held an event
    malformed: int
    positions: list[list[int]]  # per route index, then for unmatched: the positions matched
    payloads: list[list[bytes] | None]  # per route with a transform: its outputs, in order
    errors: list[int]  # per route: filter and transform errors
    letters: list[tuple[str, str, int, int]]  # (reason, detail, route index, position)
    denied: int = 0  # events the input's publish policy refused


# Shown a tapped route's event: (route, input, line number, the bytes its consumers get)
Tap = Callable[[str, str, int, Any], None]

# Looking an event up in the index costs about as much as four failing equalities on a
# field the plan reads anyway, so fewer routes than this run unindexed.
INDEX_MIN_ROUTES = 8


class Router:
    """Parses each line, runs the routes' filters on it, and gives each consumer its share.

    The filters run as routing plans (expr.compile_plan): one generated function per set
    of routes an event can match. Routes whose filter requires `path == 'text'` are
    indexed by that text, for the path most routes use (when at least INDEX_MIN_ROUTES
    do), so an event only runs the filters of the routes it can match. Routes with an
    EventBridge pattern are matched together by one patterns.PatternSet, which each plan
    then consults. A batch's matches are kept as positions per route, and become one
    parcel per consumer at the end of the batch.
    """

    def __init__(
        self,
        config: Config,
        queues: dict[str, ConsumerQueue],
        dead_letters: DeadLetters,
        stats: RunStats,
        index_min_routes: int = INDEX_MIN_ROUTES,
        audit: AuditLog | None = None,
    ) -> None:
        self.audit = audit
        self.config = config
        self.index_min_routes = index_min_routes
        self.queues = queues
        self.dead_letters = dead_letters
        self.stats = stats
        routes = config.routes
        self.route_stats = [stats.routes.setdefault(r.name, RouteStats()) for r in routes]
        # the last index is for events that no route matched
        self.route_names = (*(route.name for route in routes), "")
        self.unmatched_index = len(routes)
        # what the batch being routed matched: positions per route, transformed payloads
        self.positions: list[list[int]] = [[] for _ in self.route_names]
        self.payloads: list[list[bytes] | None] = [None] * len(self.route_names)
        for index, route in enumerate(routes):
            if route.transform is not None:
                self.payloads[index] = []
        unmatched = config.unmatched
        assert unmatched in queues or unmatched in (UNMATCHED_DROP, UNMATCHED_DEAD_LETTER)
        self.feeds: dict[str, list[int]] = {name: [] for name in queues}
        for index, route in enumerate(routes):
            for name in route.to:
                self.feeds[name].append(index)
        if unmatched in queues:
            self.feeds[unmatched].append(self.unmatched_index)
        self.record_unmatched = (
            self._unmatched_letter
            if unmatched == UNMATCHED_DEAD_LETTER
            else self.positions[self.unmatched_index].append
        )
        # pattern routes are matched together by a PatternSet, beside the filters' plans
        filtered = [(index, route) for index, route in enumerate(routes) if route.pattern is None]
        recorders = [
            self.positions[index].append if route.transform is None else self._transformer(index)
            for index, route in filtered
        ]
        steps = [
            PlanStep(index, route.filter, route.transform is not None) for index, route in filtered
        ]
        self.index_path, self.plans, self.default_plan = self._plans(
            [route for _, route in filtered], steps, recorders
        )
        patterned = [
            (index, route.pattern)
            for index, route in enumerate(routes)
            if route.pattern is not None
        ]
        if patterned:
            from evroute.patterns import PatternSet  # only when needed

            # wrapping the plans, not testing in evaluate, leaves configs without a
            # pattern route to the loop as it was
            pattern_set = PatternSet(patterned)
            pattern_recorders = {
                index: self._transformer(index)
                if routes[index].transform is not None
                else self._recorder(index)
                for index, _ in patterned
            }
            one_by_one = self._pattern_by_pattern(patterned)
            self.plans = {
                key: _with_patterns(plan, pattern_set, pattern_recorders, one_by_one)
                for key, plan in self.plans.items()
            }
            self.default_plan = _with_patterns(
                self.default_plan if steps else None, pattern_set, pattern_recorders, one_by_one
            )
        # the batch being evaluated
        self._letters: list[tuple[str, str, int, int]] = []
        self._errors = [0] * len(routes)
        self._malformed = 0
        self._taps: list[tuple[int, Tap]] = []
        # consumers with a subscribe policy (fields:) get each parcel through its gate
        self.gates = {
            name: Gate(name, consumer.fields, queues[name])
            for name, consumer in config.consumers.items()
            if consumer.fields is not None and name in queues
        }

    def _plans(
        self,
        routes: list[RouteConfig],
        steps: list[PlanStep],
        recorders: list[Callable[..., Any]],
    ) -> tuple[tuple[str, ...] | None, dict[str, Plan], Plan]:
        """The path to index by, the plan for each of its values, and for other events;
        `routes` are the routes with a filter or none, one for each step.

        Plans keep the routes in config order, so an event reaches its consumers in the
        same order whichever plan it takes.
        """
        required: list[dict[tuple[str, ...], str]] = [
            dict(route.filter.required_equalities()) if route.filter is not None else {}
            for route in routes
        ]
        uses = Counter(path for paths in required for path in paths)
        path, indexed = uses.most_common(1)[0] if uses else (None, 0)
        if indexed < self.index_min_routes:
            path = None

        def plan(wanted: Callable[[dict[tuple[str, ...], str]], bool]) -> Plan:
            chosen = [n for n, paths in enumerate(required) if wanted(paths)]
            return compile_plan(
                [steps[n] for n in chosen], [recorders[n] for n in chosen], self._filter_failed
            )

        if path is None:
            return None, {}, plan(lambda paths: True)
        values = {paths[path] for paths in required if path in paths}
        plans = {
            value: plan(lambda paths, value=value: paths.get(path, value) == value)  # type: ignore[misc]
            for value in values
        }
        return path, plans, plan(lambda paths: path not in paths)

    def _pattern_by_pattern(
        self, patterned: list[tuple[int, Pattern]]
    ) -> Callable[[dict[str, Any], int], list[int]]:
        """The routes whose pattern matches, each tested alone: for an event the set of
        patterns failed on, so that a pattern that fails is a filter_error of its route."""

        def matching(event: dict[str, Any], position: int) -> list[int]:
            indexes = []
            for index, pattern in patterned:
                try:
                    if pattern.matches(event):
                        indexes.append(index)
                except Exception as error:
                    self._errors[index] += 1
                    self._letters.append(("filter_error", pattern_failure(error), index, position))
            return indexes

        return matching

    def _recorder(self, index: int) -> Callable[[int, dict[str, Any]], bool]:
        """The recorder of a pattern route without a transform."""
        append = self.positions[index].append

        def record(position: int, event: dict[str, Any]) -> bool:
            append(position)
            return True

        return record

    def _transformer(self, index: int) -> Callable[[int, dict[str, Any]], bool]:
        """The recorder of a route with a transform: False when the transform fails."""
        transform = self.config.routes[index].transform
        assert transform is not None
        search = transform.search_function
        positions = self.positions[index]
        payloads = self.payloads[index]
        assert payloads is not None

        def record(position: int, event: dict[str, Any]) -> bool:
            try:
                payload = encode(search(event))
            except Unwritable as error:  # what encode_output says, without its call per event
                self._route_error(
                    index, position, transform.error(ExpressionError(str(error), INVALID_VALUE))
                )
                return False
            except Exception as error:
                self._route_error(index, position, transform.error(error))
                return False
            positions.append(position)
            payloads.append(payload)
            return True

        return record

    def route(
        self,
        input_name: str,
        batch: LineBatch,
        publish: PublishPolicy | None = None,
        receipt: Receipt | None = None,
    ) -> None:
        """Route a batch of lines; each consumer gets its share as one parcel. Under a
        publish policy, events with a source it does not allow are denied. A receipt
        hears when every event queued is settled."""
        self.apply(input_name, batch, self.evaluate(batch, publish), receipt)

    def evaluate(self, batch: LineBatch, publish: PublishPolicy | None = None) -> Verdict:
        """Parse the batch's lines and run the routes' filters and transforms on them.

        Touches no queue, stats or dead letters, so a worker process can do it.
        """
        first = batch.first
        # an OversizeLine is no bytes, but orjson refuses it and _parse_slowly takes it
        lines = cast(list[bytes], batch.lines)
        plans, default_plan = self.plans, self.default_plan
        path = self.index_path
        key_name = path[0] if path is not None and len(path) == 1 else None
        record_unmatched = self.record_unmatched
        loads = orjson.loads
        refusal = None if publish is None else publish.refusal
        rounding = self.__dict__.get("_rounding_matters")
        if rounding is None:
            rounding = self._rounding_matters = rounding_matters(self.config)
        # Integers orjson may have rounded are read exactly only where the routes, or the
        # publish policy's detail, could tell: else no byte of the batch is scanned.
        long_digits = (rounding or refusal is not None) and bool(batch.long_digits)
        skipped = 0  # blank lines and malformed ones
        denied = 0
        simple = refusal is None and path is None and not long_digits
        run = batch_runner(default_plan) if simple else None
        if run is not None:
            # the common case: the loop below, without what cannot apply, inside the
            # plan's generated code (a call less per event)
            skips: list[int] = []

            def slow(position: int, line: bytes) -> dict[str, Any] | None:
                event = self._parse_slowly(first + position, position, line)
                if event is None:
                    skips.append(position)
                return event

            run(lines, loads, slow, record_unmatched)
            skipped = len(skips)
            lines = []  # routed: the general loop has nothing left to do
        for position, line in enumerate(lines):
            try:
                event = loads(line)
                if type(event) is not dict or (long_digits and has_long_digit_run(line)):
                    raise Malformed  # not an object, or orjson may have rounded a number
            except Exception:
                event = self._parse_slowly(first + position, position, line)
                if event is None:
                    skipped += 1
                    continue
            if refusal is not None:
                why = refusal(event.get("source"))
                if why is not None:
                    denied += 1
                    self._letters.append(("denied", why, NO_ROUTE, position))
                    continue
            if path is None:
                plan = default_plan
            else:
                key = event.get(key_name) if key_name is not None else _walk(event, path)
                plan = plans.get(key, default_plan) if type(key) is str else default_plan
            if not plan(event, position):
                record_unmatched(position)
        verdict = Verdict(
            len(batch.lines) - skipped,
            self._malformed,
            [positions.copy() for positions in self.positions],
            [None if payloads is None else payloads.copy() for payloads in self.payloads],
            self._errors,
            self._letters,
            denied,
        )
        for positions in self.positions:
            positions.clear()
        for payloads in self.payloads:
            if payloads is not None:
                payloads.clear()
        self._letters, self._malformed = [], 0
        self._errors = [0] * len(self._errors)
        return verdict

    def apply(
        self,
        input_name: str,
        batch: LineBatch,
        verdict: Verdict,
        receipt: Receipt | None = None,
    ) -> None:
        """Count what a verdict decided, write its dead letters, and queue its parcels."""
        input_stats = self.stats.input(input_name)
        input_stats.events += verdict.events
        input_stats.malformed += verdict.malformed
        input_stats.denied += verdict.denied
        for route_stats, positions, errors in zip(
            self.route_stats, verdict.positions, verdict.errors, strict=False
        ):
            route_stats.matched += len(positions)
            route_stats.errors += errors
        self.stats.unmatched += len(verdict.positions[self.unmatched_index])
        self._write_letters(input_name, batch, verdict.letters)
        ids = None if self.audit is None else self._audit(input_name, batch, verdict)
        for consumer, feeding in self.feeds.items():
            parcel = self._parcel(input_name, batch, verdict, feeding)
            if parcel is not None:
                if ids is not None:
                    parcel.ids = list(map(ids.__getitem__, parcel.positions))
                if receipt is not None:  # held before a gate, which may deny some
                    parcel.receipt = receipt
                    receipt.hold(len(parcel))
                gate = self.gates.get(consumer)
                self.queues[consumer].put(parcel if gate is None else gate(parcel))
        if receipt is not None:
            receipt.settle(1)  # the router's own hold: every parcel is out
        for index, show in self._taps:
            transformed = verdict.payloads[index]
            for n, position in enumerate(verdict.positions[index]):
                payload = batch.lines[position] if transformed is None else transformed[n]
                show(self.route_names[index], input_name, batch.first + position, payload)

    def _audit(self, input_name: str, batch: LineBatch, verdict: Verdict) -> dict[int, bytes]:
        """Record each route's matches, and events no route matched when they are
        dropped; the id of each event routed, by position, for its parcels."""
        assert self.audit is not None
        lines = cast(list[bytes], batch.lines)
        first = batch.first
        ids: dict[int, bytes] = {}
        for positions in verdict.positions:
            for p in positions:
                if p not in ids:
                    ids[p] = id_json(lines[p])
        for index, positions in enumerate(verdict.positions):
            if not positions:
                continue
            route = self.route_names[index] or None
            entries: Iterator[Entry] = (
                (input_name, first + p, lines[p], True, route, ids[p]) for p in positions
            )
            if index != self.unmatched_index:
                self.audit.record("matched", entries)
            elif self.config.unmatched == UNMATCHED_DROP:
                self.audit.record("dropped", entries, None, "unmatched", UNMATCHED_DROPPED)
        return ids

    def tap(self, route: str, show: Tap) -> None:
        """Also show each event `route` matches, as its consumers get it (`run --tap`)."""
        self._taps.append((self.route_names.index(route), show))

    def _parcel(
        self, input_name: str, batch: LineBatch, verdict: Verdict, feeding: list[int]
    ) -> Parcel | None:
        """What the routes in `feeding` matched in this batch, in line order."""
        lines = cast(list[bytes], batch.lines)
        if len(feeding) == 1:
            index = feeding[0]
            positions = verdict.positions[index]
            if not positions:
                return None
            originals = list(map(lines.__getitem__, positions))
            transformed = verdict.payloads[index]
            if transformed is None:
                return Parcel(
                    input_name, self.route_names, batch.first, originals, positions, index
                )
            return Parcel(
                input_name,
                self.route_names,
                batch.first,
                transformed,
                positions,
                index,
                originals,
            )
        entries: list[tuple[int, int, bytes]] = []
        for index in feeding:
            positions = verdict.positions[index]
            transformed = verdict.payloads[index]
            payloads = map(lines.__getitem__, positions) if transformed is None else transformed
            entries.extend(zip(positions, itertools.repeat(index), payloads))
        if not entries:
            return None
        entries.sort(key=lambda entry: entry[:2])  # stable: a route listed twice stays so
        positions = [entry[0] for entry in entries]
        any_transformed = any(verdict.payloads[index] is not None for index in feeding)
        return Parcel(
            input_name,
            self.route_names,
            batch.first,
            [entry[2] for entry in entries],
            positions,
            [entry[1] for entry in entries],
            list(map(lines.__getitem__, positions)) if any_transformed else None,
        )

    def _unmatched_letter(self, position: int) -> None:
        self.positions[self.unmatched_index].append(position)
        self._letters.append(("unmatched", "no route matched", NO_ROUTE, position))

    def _parse_slowly(
        self, number: int, position: int, line: bytes | OversizeLine
    ) -> dict[str, Any] | None:
        """The event on a line orjson alone could not read; None when there is none
        (blank, or malformed)."""
        if isinstance(line, OversizeLine):
            detail = line.detail or (
                f"line of {line.length} bytes is over max_event_bytes "
                f"({self.config.max_event_bytes})"
            )
        elif not line or line.isspace():
            return None
        else:
            try:
                return parse_event(line)
            except Malformed as error:
                detail = str(error)
        self._malformed += 1
        self._letters.append(("malformed", detail, NO_ROUTE, position))
        return None

    def _filter_failed(self, index: int, position: int, error: Exception) -> None:
        filter_expression = self.config.routes[index].filter
        assert filter_expression is not None
        self._route_error(index, position, filter_expression.error(error))

    def _route_error(self, index: int, position: int, error: ExpressionError) -> None:
        """A route's filter or transform failed on an event: a filter_error."""
        self._errors[index] += 1
        self._letters.append(("filter_error", str(error), index, position))

    def _write_letters(
        self, input_name: str, batch: LineBatch, letters: list[tuple[str, str, int, int]]
    ) -> None:
        """Write a batch's dead letters, in order, a run of the same kind at a time."""
        for (reason, detail, index), run in itertools.groupby(letters, key=lambda x: x[:3]):
            route = None if index == NO_ROUTE else self.route_names[index]
            parsed = reason != "malformed"  # a line that did not parse is written raw
            letters_of_run = (self._letter(input_name, batch, item[3], parsed) for item in run)
            self.dead_letters.add(reason, detail, letters_of_run, route)

    @staticmethod
    def _letter(input_name: str, batch: LineBatch, position: int, parsed: bool) -> Letter:
        line = batch.lines[position]
        number = batch.first + position
        if isinstance(line, OversizeLine):
            return Letter(input_name, number, line.prefix, False, line.length)
        return Letter(input_name, number, line, parsed)


def _with_patterns(
    plan: Plan | None,
    pattern_set: PatternSet,
    recorders: dict[int, Callable[[int, dict[str, Any]], bool]],
    one_by_one: Callable[[dict[str, Any], int], list[int]],
) -> Plan:
    """`plan` (None: no route has a filter), then the pattern routes: each that matches
    records the event (a recorder says False when the route's transform failed).
    `one_by_one` tests the patterns alone when the set fails on an event."""
    matching = pattern_set.matching

    def plan_with_patterns(event: dict[str, Any], position: int) -> bool:
        matched = False if plan is None else plan(event, position)
        try:
            indexes = matching(event)
        except Exception:
            indexes = one_by_one(event, position)
        for index in indexes:
            matched = recorders[index](position, event) or matched
        return matched

    return plan_with_patterns


def _walk(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for name in path:
        if type(value) is not dict:
            return None
        value = value.get(name)
    return value
