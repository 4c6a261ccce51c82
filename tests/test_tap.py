"""`evroute run --tap ROUTE`: the events a route matches, shown on stderr as they flow."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from runs import EVROUTE, write_config

EVENTS = (
    b'{"id":1,"kind":"a"}\n{"id":2,"kind":"b"}\r\n{"id":3,"kind":"a","n":12345678901234567890123}\n'
)


CONFIG = """
version: 1
consumers:
  a: {file: a.jsonl}
  ids: {file: ids.jsonl}
routes:
  - {name: kind-a, filter: "kind == 'a'", to: a}
  - {name: ids, transform: "{id: id}", to: ids}
"""


def test_taps_show_what_the_consumers_get_and_change_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    result = subprocess.run(
        [*EVROUTE, "run", str(config), "--stats", "off", "--tap", "kind-a", "--tap", "ids"],
        input=EVENTS,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    # the consumers get what they would without --tap
    assert (tmp_path / "a.jsonl").read_bytes() == (
        b'{"id":1,"kind":"a"}\n{"id":3,"kind":"a","n":12345678901234567890123}\n'
    )
    assert (tmp_path / "ids.jsonl").read_bytes() == b'{"id":1}\n{"id":2}\n{"id":3}\n'
    # stderr is no terminal: one JSON line per tapped event, exact numbers kept
    shown = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(s["tap"], s["input"], s["line"], s["event"]["id"]) for s in shown] == [
        ("kind-a", "-", 1, 1),
        ("kind-a", "-", 3, 3),
        ("ids", "-", 1, 1),
        ("ids", "-", 2, 2),
        ("ids", "-", 3, 3),
    ]
    assert shown[1]["event"]["n"] == 12345678901234567890123
    assert shown[2]["event"] == {"id": 1}  # the transformed event, as the consumer gets it


def test_tapping_a_route_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    result = subprocess.run(
        [*EVROUTE, "run", str(config), "--tap", "nope"], input=b"", capture_output=True, timeout=30
    )
    assert result.returncode == 2
    assert b"no route 'nope'" in result.stderr and b"kind-a, ids" in result.stderr


def test_on_a_terminal_taps_are_pretty() -> None:
    from rich.console import Console

    from evroute.cli import tap_printer

    console = Console(force_terminal=True, width=60, record=True, color_system="standard")
    show = tap_printer(console)
    show("kind-a", "in.jsonl", 7, b'{"id":1,"tags":["x"]}')
    text = console.export_text(clear=False)
    assert text.splitlines()[0] == "tap kind-a in.jsonl:7"
    assert '  "id": 1,' in text  # indented, one field a line
    assert "\x1b[" in console.export_text(styles=True)  # coloured
