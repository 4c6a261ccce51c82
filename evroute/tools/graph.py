"""A config's topology: inputs -> routes -> consumers, and where unmatched events go.

`topology()` reads it from a Config; `to_mermaid()` and `to_dot()` write it as text for
those tools (ui/render.py draws it as a Rich tree). Route names are restricted, but filter
texts, file paths and commands may hold anything: every label is escaped for the format
it goes into, and node ids are generated, never taken from the config. A route with an
event pattern shows the pattern as compact JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from evroute.config.model import UNMATCHED_DEAD_LETTER, UNMATCHED_DROP, Config, InputConfig
from evroute.sinks import SINK_KINDS
from evroute.sources import INPUT_KINDS

# Without an `inputs:` section, events come from the INPUT files that `run` and
# `replay` are given, else from stdin.
INPUT_LABEL = "stdin / INPUT files"


def input_label(producer: InputConfig) -> str:
    """A producer as the graph shows it: its name, what it reads, what it may publish."""
    what = INPUT_KINDS[producer.kind].draw(producer.options)
    if producer.publish is not None:
        what += f" (publish: {', '.join(producer.publish) or 'nothing'})"
    return f"{producer.name}: {what}"


@dataclass(frozen=True)
class ConsumerNode:
    name: str
    kind: str  # file | command | per-event command
    target: str  # the file (stdout for "-") or the command line


@dataclass(frozen=True)
class RouteNode:
    name: str
    filter: str | None  # None: every event matches (unless it has a pattern)
    transform: str | None
    to: tuple[str, ...]
    pattern: str | None = None  # its event pattern as compact JSON, cut to PATTERN_CHARS


# A pattern is drawn on one line of the graph; a longer one is cut (validate shows it whole)
PATTERN_CHARS = 120


def pattern_label(pattern: Any) -> str:
    """An event pattern as compact JSON, cut to PATTERN_CHARS characters."""
    text = json.dumps(pattern, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= PATTERN_CHARS else text[: PATTERN_CHARS - 1] + "…"


@dataclass(frozen=True)
class Topology:
    source: str  # the config's path, as given
    inputs: tuple[str, ...]
    routes: tuple[RouteNode, ...]
    consumers: dict[str, ConsumerNode]
    unmatched: str  # drop | dead_letter | a consumer's name
    dead_letter: str | None  # the dead letter file, as written relative to the config

    @property
    def unmatched_label(self) -> str:
        if self.unmatched == UNMATCHED_DROP:
            return "unmatched: dropped (counted)"
        if self.unmatched == UNMATCHED_DEAD_LETTER:
            where = self.dead_letter or "counted only: no dead_letter path"
            return f"unmatched: dead letters ({where})"
        return f"unmatched: to {self.unmatched}"

    @property
    def unmatched_consumer(self) -> str | None:
        return self.unmatched if self.unmatched in self.consumers else None


def consumer_node(name: str, kind: str, options: object) -> ConsumerNode:
    what, target = SINK_KINDS[kind].draw(options)
    return ConsumerNode(name, what, target)


def topology(config: Config, source: str | None = None) -> Topology:
    """The topology of a valid config; `source` names it (default: its path)."""
    consumers = {
        name: consumer_node(name, consumer.kind, consumer.options)
        for name, consumer in config.consumers.items()
    }
    routes = tuple(
        RouteNode(
            route.name,
            route.filter.source if route.filter is not None else None,
            route.transform.source if route.transform is not None else None,
            route.to,
            pattern_label(route.pattern.source) if route.pattern is not None else None,
        )
        for route in config.routes
    )
    dead_letter = None
    if config.dead_letter is not None:
        try:
            dead_letter = str(config.dead_letter.relative_to(config.base_dir))
        except ValueError:
            dead_letter = str(config.dead_letter)  # an absolute path outside the folder
    return Topology(
        source=source if source is not None else str(config.path),
        inputs=tuple(map(input_label, config.inputs)) or (INPUT_LABEL,),
        routes=routes,
        consumers=consumers,
        unmatched=config.unmatched,
        dead_letter=dead_letter,
    )


def route_lines(route: RouteNode) -> list[str]:
    """The route's label, line by line: its name, its filter, its transform."""
    lines = [f"route {route.name}"]
    if route.pattern is not None:
        lines.append(f"pattern: {route.pattern}")
    else:
        lines.append(f"filter: {route.filter}" if route.filter is not None else "every event")
    if route.transform is not None:
        lines.append(f"transform: {route.transform}")
    return lines


def consumer_lines(consumer: ConsumerNode) -> list[str]:
    return [
        consumer.name,
        f"{consumer.kind}: {consumer.target}" if consumer.target else consumer.kind,
    ]


# --- Mermaid -----------------------------------------------------------------------------

# Mermaid reads a quoted label up to the next `"`, and turns `#name;` into a character:
# so `"` and `#` are written as entity codes, and so is everything that could start
# markup inside a label (`<b>`, `&`, a backtick for Markdown strings).
_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
    "\n": " ",
    "\r": " ",
}


def mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in text)


def mermaid_label(lines: list[str]) -> str:
    return '"' + "<br/>".join(mermaid_text(line) for line in lines) + '"'


def to_mermaid(graph: Topology) -> str:
    """A Mermaid flowchart, left to right."""
    ids = _ids(graph)
    out = ["flowchart LR"]
    for index, label in enumerate(graph.inputs):
        out.append(f"    in{index}[/{mermaid_label([label])}/]")
    for index, route in enumerate(graph.routes):
        out.append(f"    {ids.route[index]}[{mermaid_label(route_lines(route))}]")
    for name, consumer in graph.consumers.items():
        out.append(f"    {ids.consumer[name]}[({mermaid_label(consumer_lines(consumer))})]")
    out.append(f"    unmatched{{{{{mermaid_label([graph.unmatched_label])}}}}}")
    for start, end, dashed in _edges(graph, ids):
        out.append(f"    {start} {'-.->' if dashed else '-->'} {end}")
    return "\n".join(out) + "\n"


# --- Graphviz DOT ------------------------------------------------------------------------


def dot_text(text: str) -> str:
    """A DOT string's content: backslashes and quotes escaped; newlines become spaces,
    since DOT's own escapes (\\n, \\l) are what break its lines."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("\r", " ").replace("\n", " ")


def dot_label(lines: list[str]) -> str:
    return '"' + "\\n".join(dot_text(line) for line in lines) + '"'


def to_dot(graph: Topology) -> str:
    """A Graphviz digraph, left to right."""
    ids = _ids(graph)
    out = [
        f"digraph {dot_label([graph.source])} {{",
        "    rankdir=LR;",
        '    node [shape=box, fontname="Helvetica"];',
    ]
    for index, label in enumerate(graph.inputs):
        out.append(f"    in{index} [label={dot_label([label])}, shape=parallelogram];")
    for index, route in enumerate(graph.routes):
        out.append(f"    {ids.route[index]} [label={dot_label(route_lines(route))}];")
    for name, consumer in graph.consumers.items():
        label = dot_label(consumer_lines(consumer))
        out.append(f"    {ids.consumer[name]} [label={label}, shape=cylinder];")
    out.append(f"    unmatched [label={dot_label([graph.unmatched_label])}, shape=hexagon];")
    for start, end, dashed in _edges(graph, ids):
        out.append(f"    {start} -> {end}{' [style=dashed]' if dashed else ''};")
    out.append("}")
    return "\n".join(out) + "\n"


def _edges(graph: Topology, ids: _Ids) -> list[tuple[str, str, bool]]:
    """(from, to, dashed) for every arrow: inputs to routes and to the unmatched node,
    routes to consumers, and the unmatched node to its consumer; dashed: unmatched."""
    edges: list[tuple[str, str, bool]] = []
    for index in range(len(graph.inputs)):
        edges.extend((f"in{index}", route_id, False) for route_id in ids.route)
        edges.append((f"in{index}", "unmatched", True))
    for index, route in enumerate(graph.routes):
        edges.extend((ids.route[index], ids.consumer[name], False) for name in route.to)
    if graph.unmatched_consumer is not None:
        edges.append(("unmatched", ids.consumer[graph.unmatched_consumer], True))
    return edges


@dataclass(frozen=True)
class _Ids:
    route: list[str]
    consumer: dict[str, str]


def _ids(graph: Topology) -> _Ids:
    # generated: a name like `end` or `graph` is a keyword in Mermaid or DOT
    return _Ids(
        route=[f"r{index}" for index in range(len(graph.routes))],
        consumer={name: f"c{index}" for index, name in enumerate(graph.consumers)},
    )
