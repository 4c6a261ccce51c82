"""Input and sink kinds are registries: a kind written in one module and registered by
its name works in validate, schema, graph and run with no change anywhere else.

The kinds here are real (a sink that writes what it gets into a file, an input that
reads the events listed in the config); only their registration is done by the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evroute.cli import program
from evroute.config.checker import INVALID, Checker, join, json_value
from evroute.config.json_schema import STRING, Schema, object_schema
from evroute.config.model import Config, InputConfig
from evroute.config.yaml_loader import Node
from evroute.loading import check_config, load_config
from evroute.loading.schema import config_schema
from evroute.sinks import SINK_KINDS
from evroute.sinks.base import Output, Sink, SinkKind
from evroute.sources import INPUT_KINDS
from evroute.sources.base import InputKind, Source
from evroute.tools.graph import to_mermaid, topology

# --- a sink kind: `upper: PATH` writes each event upper-cased to PATH ---------------------


@dataclass(frozen=True)
class UpperOptions:
    path: str


class UpperSink(Sink):
    def write(self, payloads: list[bytes]) -> list[tuple[int, str, str]]:
        with open(self.base_dir / self.config.options.path, "ab") as out:
            out.write(b"".join(payload.upper() + b"\n" for payload in payloads))
        return []


def parse_upper(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> UpperOptions | None:
    target = checker.string(fields["upper"], join(path, "upper"))
    return None if target is None else UpperOptions(target)


def upper_schema() -> Schema:
    return object_schema(("upper",), {"upper": STRING})


UPPER = SinkKind(
    name="upper",
    description="each event upper-cased into a file",
    keys=("upper",),
    parse_options=parse_upper,
    create=UpperSink,
    schema=upper_schema,
    draw=lambda options: ("upper", options.path),
    outputs=lambda options: (Output("upper", options.path, "file"),),
)

# --- an input kind: `literal: [EVENT...]` reads the events the config lists --------------


@dataclass(frozen=True)
class LiteralOptions:
    events: tuple[str, ...]

    def reads(self, base_dir: Path) -> list[str]:
        return []


class LiteralSource(Source):
    def __init__(self, name: str, events: tuple[str, ...]) -> None:
        super().__init__(name, None)
        self.events = events

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        yield "".join(event + "\n" for event in self.events).encode()


def parse_literal(
    checker: Checker, fields: dict[str, Node], path: str, name: str, base_dir: Path
) -> LiteralOptions | None:
    node = fields["literal"]
    if not node.is_sequence:
        checker.error(node, join(path, "literal"), "expected a list of events")
        return None
    events = [
        json_value(checker, item, join(join(path, "literal"), index))
        for index, item in enumerate(node.value)
    ]
    if any(event is INVALID for event in events):
        return None
    return LiteralOptions(tuple(json.dumps(event, separators=(",", ":")) for event in events))


def open_literal(entry: InputConfig, config: Config, warn: Callable[[str], None]) -> list[Source]:
    options: Any = entry.options
    return [LiteralSource(entry.name, options.events)]


LITERAL = InputKind(
    name="literal",
    description="the events the config lists",
    keys=("literal",),
    parse_options=parse_literal,
    open=open_literal,
    schema=lambda: {"literal": {"type": "array", "items": {"type": "object"}}},
    draw=lambda options: f"literal ({len(options.events)} events)",
)

CONFIG = """\
version: 1
inputs:
  - {name: given, literal: [{"kind": "a"}, {"kind": "b"}, {"kind": "a", "n": 2}]}
consumers:
  shout: {upper: out.txt}
routes:
  - {name: only-a, filter: "kind == 'a'", to: shout}
"""


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SINK_KINDS, "upper", UPPER)
    monkeypatch.setitem(INPUT_KINDS, "literal", LITERAL)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(CONFIG)
    return path


@pytest.mark.usefixtures("registered")
def test_a_registered_kind_runs_end_to_end(config_file: Path) -> None:
    assert program(["run", str(config_file), "--stats", "off"]) == 0
    lines = (config_file.parent / "out.txt").read_text().splitlines()
    assert [json.loads(line.lower()) for line in lines] == [
        {"kind": "a"},
        {"kind": "a", "n": 2},
    ]
    assert lines[0] == '{"KIND":"A"}'


@pytest.mark.usefixtures("registered")
def test_a_registered_kind_is_checked_drawn_and_in_the_schema(config_file: Path) -> None:
    config = load_config(config_file)
    assert [producer.kind for producer in config.inputs] == ["literal"]
    drawn = to_mermaid(topology(config))
    assert "literal (3 events)" in drawn and "upper: out.txt" in drawn
    schema = config_schema()
    kinds = schema["properties"]["consumers"]["additionalProperties"]["oneOf"]
    assert any("upper" in kind["properties"] for kind in kinds)
    assert "literal" in schema["properties"]["inputs"]["items"]["properties"]


@pytest.mark.usefixtures("registered")
def test_a_registered_kind_gets_the_shared_checks(tmp_path: Path) -> None:
    # two writers of one file: the check reads the kind's outputs, whatever its kind
    text = CONFIG.replace(
        "  shout: {upper: out.txt}\n", "  shout: {upper: out.txt}\n  again: {upper: out.txt}\n"
    )
    (tmp_path / "c.yaml").write_text(text.replace("to: shout", "to: [shout, again]"))
    _, issues = check_config(tmp_path / "c.yaml")
    assert [issue.path for issue in issues if issue.severity == "error"] == [
        "consumers.again.upper"
    ]
    # its keys are known keys, with suggestions
    (tmp_path / "d.yaml").write_text(CONFIG.replace("literal:", "literall:"))
    _, issues = check_config(tmp_path / "d.yaml")
    assert any("did you mean 'literal'" in issue.message for issue in issues)


def test_without_registration_the_kind_is_unknown(config_file: Path) -> None:
    _, issues = check_config(config_file)
    messages = [issue.message for issue in issues if issue.severity == "error"]
    assert any("unknown key 'literal'" in message for message in messages)
    assert any("a consumer has exactly one of: file," in message for message in messages)
