"""Many routes' patterns matched together, through an index on the exact values they require.

Each node of the index splits its patterns on the one path most of them require to be one of
a few exact strings (say `detail-type`): an event only meets the patterns filed under its own
value there, plus those that do not require that path. A large bucket is split again on
another path, so the cost per event does not grow with the number of rules that cannot match.
The index only narrows the candidates; every candidate is then matched in full.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evroute.patterns._compile import EventPath, Pattern, values_at

# Below this many patterns, testing each is cheaper than one more index lookup.
LEAF_SIZE = 4


@dataclass(frozen=True)
class _Entry:
    route: int
    test: Callable[[dict[str, Any]], bool]
    required: dict[EventPath, frozenset[str]]


@dataclass
class _Node:
    entries: list[_Entry] = field(default_factory=list)  # tested in full at this node
    path: EventPath | None = None
    children: dict[str, _Node] = field(default_factory=dict)
    rest: _Node | None = None  # the patterns that do not require `path`

    def collect(self, event: dict[str, Any], out: list[_Entry]) -> None:
        out.extend(self.entries)
        if self.path is None:
            return
        if len(self.path) == 1:
            value = event.get(self.path[0])
            values = value if type(value) is list else (value,)
        else:
            values = values_at(event, self.path)
        seen: set[str] = set()
        for value in _strings(values):
            if value not in seen:
                seen.add(value)
                child = self.children.get(value)
                if child is not None:
                    child.collect(event, out)
        if self.rest is not None:
            self.rest.collect(event, out)


def _strings(values: Sequence[Any]) -> list[str]:
    found: list[str] = []
    for value in values:
        if type(value) is str:
            found.append(value)
        elif type(value) is list:
            found.extend(_strings(value))
    return found


def _build(entries: list[_Entry], used: frozenset[EventPath]) -> _Node:
    if len(entries) <= LEAF_SIZE:
        return _Node(entries=entries)
    counts: Counter[EventPath] = Counter(
        path for entry in entries for path in entry.required if path not in used
    )
    if not counts:
        return _Node(entries=entries)
    # the path most patterns require; among those, the one that spreads them widest
    distinct = {
        path: len({value for entry in entries for value in entry.required.get(path, ())})
        for path in counts
    }
    path = max(counts, key=lambda p: (counts[p], distinct[p], [str(part) for part in p]))
    buckets: dict[str, list[_Entry]] = {}
    rest: list[_Entry] = []
    for entry in entries:
        values = entry.required.get(path)
        if values is None:
            rest.append(entry)
        else:
            for value in values:
                buckets.setdefault(value, []).append(entry)
    deeper = used | {path}
    return _Node(
        path=path,
        children={value: _build(bucket, deeper) for value, bucket in buckets.items()},
        rest=_build(rest, deeper) if rest else None,
    )


class PatternSet:
    """Route patterns matched together: `matching(event)` gives the routes that match."""

    def __init__(self, patterns: Sequence[tuple[int, Pattern]]) -> None:
        entries = [
            _Entry(route, pattern.matches, pattern.required_values()) for route, pattern in patterns
        ]
        self._root = _build(entries, frozenset())

    def matching(self, event: dict[str, Any]) -> list[int]:
        """The indexes of the routes whose pattern matches `event`, ascending."""
        if not isinstance(event, dict):
            return []
        candidates: list[_Entry] = []
        self._root.collect(event, candidates)
        if not candidates:
            return []
        if len(candidates) == 1:
            entry = candidates[0]
            return [entry.route] if entry.test(event) else []
        return sorted({entry.route for entry in candidates if entry.test(event)})
