"""The `fields:` gate: what each consumer may see of the events, applied to each parcel.

A consumer lists the paths it may see (`include`) or may not (`redact`); loading/fields.py
reads them. A path is made of field names and `[*]`, every element of an array:
`detail.items[*].price`. The router applies the policy to what the consumer gets, after
the route's transform, so its queue, its spill and its sink only ever hold what it may
see; the dead letters keep the whole event, so that a redrive gives it back.

- include: the object keeps only the listed paths that it has, in its own key order, with
  the objects and arrays on the way to them. A missing path is absent, never null. An
  object on the way is kept even when none of the listed paths is in it (`{}`); an array
  on the way keeps its elements that are objects (or arrays, for `[*][*]`), each cut down
  the same way, and loses the others: a number in `items` is not `items[*].price`.
- redact: the listed paths are removed. Through `[*]` they are removed from each element
  that is an object; other elements stay as they are, having nothing by that name.

The payload must be a JSON object: a transform that gives anything else is denied for a
consumer with a policy (dead letter `denied`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from evroute.config.model import EACH, FieldsPolicy, FieldStep
from evroute.core.json_codec import encode, parse_value
from evroute.core.json_types import json_type

if TYPE_CHECKING:
    from evroute.core.parcel import Parcel
    from evroute.engine.queues import ConsumerQueue


# applying a policy


class PathTree:
    """The paths of a policy merged: `a.b` and `a.c` share `a`'s node."""

    __slots__ = ("each", "end", "names")

    def __init__(self) -> None:
        self.end = False  # a listed path ends here: the whole value is kept (or removed)
        self.names: dict[str, PathTree] = {}
        self.each: PathTree | None = None  # `[*]`: every element of an array


def path_tree(paths: tuple[tuple[FieldStep, ...], ...]) -> PathTree:
    root = PathTree()
    for path in paths:
        node = root
        for step in path:
            if step is EACH:
                node.each = node.each or PathTree()
                node = node.each
            else:
                node = node.names.setdefault(step, PathTree())
        node.end = True
    return root


_MISSING: Any = object()


def _include(value: Any, node: PathTree) -> Any:
    """`value` cut down to the paths under `node`; _MISSING when it cannot hold them."""
    if node.end:
        return value
    if isinstance(value, dict):
        if not node.names:
            return _MISSING
        kept: dict[str, Any] = {}
        for key, item in value.items():  # in the object's own order
            child = node.names.get(key)
            if child is not None:
                cut = _include(item, child)
                if cut is not _MISSING:
                    kept[key] = cut
        return kept
    if isinstance(value, list) and node.each is not None:
        each = node.each
        return [cut for item in value if (cut := _include(item, each)) is not _MISSING]
    return _MISSING


def _redact(value: Any, node: PathTree) -> Any:
    """`value` without the paths under `node` (which is not the end of one)."""
    if isinstance(value, dict) and node.names:
        kept: dict[str, Any] = {}
        for key, item in value.items():
            child = node.names.get(key)
            if child is None:
                kept[key] = item
            elif not child.end:
                kept[key] = _redact(item, child)
        return kept
    if isinstance(value, list) and node.each is not None:
        each = node.each
        return [_redact(item, each) for item in value]
    return value


@functools.lru_cache(maxsize=256)
def compile_policy(policy: FieldsPolicy) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The policy as a function from an object to what the consumer may see of it; the
    object itself is left as it was."""
    tree = path_tree(policy.paths)
    if policy.mode == "include":
        return lambda value: _include(value, tree)
    return lambda value: _redact(value, tree)


def apply_policy(policy: FieldsPolicy, value: dict[str, Any]) -> dict[str, Any]:
    """What a consumer with `policy` gets of the object `value`."""
    return compile_policy(policy)(value)


def denied_detail(consumer: str, route: str, value: Any) -> str:
    """The dead letter's detail for a payload that is not an object."""
    gave = f"the transform of route {route} gave {json_type(value)}"
    return f"consumer {consumer}'s fields policy applies to objects; {gave}"


class Gate:
    """Applies one consumer's policy to each parcel the router gives it.

    Events are parsed, cut down and written again (integers beyond 64 bits exact). A
    payload that is not an object is denied: counted as enqueued and dead-lettered by
    the consumer's queue, with the original event, as `denied`.
    """

    def __init__(self, consumer: str, policy: FieldsPolicy, queue: ConsumerQueue) -> None:
        self.consumer = consumer
        self.restrict = compile_policy(policy)
        self.queue = queue
        self.parse = parse_value
        self.encode = encode

    def __call__(self, parcel: Parcel) -> Parcel:
        """The parcel as the consumer may see it; its denied events are dead-lettered."""
        parse, encode, restrict = self.parse, self.encode, self.restrict
        payloads: list[bytes] = []
        denied: list[tuple[int, Any]] = []  # (index in the parcel, the payload's value)
        for index, payload in enumerate(parcel.payloads):
            value = parse(payload)
            if isinstance(value, dict):
                payloads.append(encode(restrict(value)))
            else:
                payloads.append(b"")
                denied.append((index, value))
        # the lines as they came, for dead letters and redrives: the whole event
        originals = parcel.originals if parcel.originals is not None else parcel.payloads
        restricted = dataclasses.replace(parcel, payloads=payloads, originals=originals, size=-1)
        if not denied:
            return restricted
        self._deny(restricted, denied)
        kept = sorted(set(range(len(parcel))) - {index for index, _ in denied})
        return restricted.pick(kept)

    def _deny(self, parcel: Parcel, denied: list[tuple[int, Any]]) -> None:
        routes = parcel.route
        route_of: Callable[[int], int] = (
            (lambda index: routes) if isinstance(routes, int) else routes.__getitem__
        )

        def detail(item: tuple[int, Any]) -> str:
            index, value = item
            return denied_detail(self.consumer, parcel.routes[route_of(index)], value)

        for text, run in itertools.groupby(denied, key=detail):
            picked = parcel.pick([index for index, _ in run])
            self.queue.stats.enqueued += len(picked)  # offered, as every event is counted
            self.queue.dead_letter("denied", text, [picked])
