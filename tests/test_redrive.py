"""Redrive: `evroute replay CONFIG --dead-letters FILE` sends dead letters' events again."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from runs import read_jsonl, run_evroute, write_config

from evroute.cli import program

ORDER_1 = b'{"type":"order","id":1,"n":123456789012345678901234567890}'
ORDER_2 = b'{"type": "order", "id": 2, "price": 1.10}'  # spaces and a float, kept as they are
LOG_3 = b'{"type":"log","id":3}'
OTHER_4 = b'{"type":"other","id":4}'
BROKEN_5 = b'{"type":"order",'
ORDER_6 = b'{"type":"order","id":6}'
OTHER_7 = b'{"type":"other","id":7,"big":98765432109876543210987654321}'
INPUT = b"\n".join([ORDER_1, ORDER_2, LOG_3, OTHER_4, BROKEN_5, ORDER_6, OTHER_7]) + b"\n"


def broken_config(folder: Path) -> Path:
    """Orders go to a file that cannot be created (its folder is a file): delivery_failed."""
    (folder / "blocker").write_text("a file, so no folder can be made here\n")
    return write_config(
        folder,
        """
        version: 1
        dead_letter: dead.jsonl
        unmatched: dead_letter
        consumers:
          orders: {file: blocker/orders.jsonl}
          logs: {file: logs.jsonl, mode: overwrite}
        routes:
          - {name: orders, filter: "type == 'order'", to: orders}
          - {name: logs, filter: "type == 'log'", to: logs}
        """,
        "broken.yaml",
    )


def fixed_config(folder: Path) -> Path:
    return write_config(
        folder,
        """
        version: 1
        dead_letter: dead.jsonl
        unmatched: dead_letter
        consumers:
          orders: {file: orders.jsonl, mode: overwrite}
          logs: {file: logs.jsonl, mode: overwrite}
        routes:
          - {name: orders, filter: "type == 'order'", to: orders}
          - {name: logs, filter: "type == 'log'", to: logs}
        """,
        "fixed.yaml",
    )


def failed_run(folder: Path) -> Path:
    """Run the broken config over INPUT, and move its dead letters aside, as a user would."""
    (folder / "in.jsonl").write_bytes(INPUT)
    run = ["run", broken_config(folder), folder / "in.jsonl", "--stats", "off"]
    result = run_evroute(run, timeout=60)
    assert result.returncode == 3
    letters = folder / "letters.jsonl"
    (folder / "dead.jsonl").rename(letters)
    return letters


def test_failed_deliveries_are_redriven_exactly_in_order(tmp_path: Path) -> None:
    letters = failed_run(tmp_path)
    reasons = [(letter["reason"], letter["line"]) for letter in read_jsonl(letters)]
    assert sorted(reasons) == [
        ("delivery_failed", 1),
        ("delivery_failed", 2),
        ("delivery_failed", 6),
        ("malformed", 5),
        ("unmatched", 4),
        ("unmatched", 7),
    ]
    stats_path = tmp_path / "stats.json"
    result = run_evroute(
        [
            "replay",
            fixed_config(tmp_path),
            "--dead-letters",
            letters,
            "--reason",
            "delivery_failed",
            "--stats-json",
            stats_path,
        ],
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    # the events as they arrived: big integers, spaces and floats untouched
    assert (tmp_path / "orders.jsonl").read_bytes() == ORDER_1 + b"\n" + ORDER_2 + b"\n" + (
        ORDER_6 + b"\n"
    )
    assert (tmp_path / "logs.jsonl").read_bytes() == b""
    assert not (tmp_path / "dead.jsonl").exists()
    assert b"hold no event" not in result.stderr  # the malformed letter was not selected
    stats = json.loads(stats_path.read_text())
    assert list(stats["inputs"]) == [str(letters)]
    assert stats["input"]["events"] == 3
    assert stats["input"]["bytes"] == letters.stat().st_size


def test_every_letter_with_an_event_goes_through_every_route(tmp_path: Path) -> None:
    letters = failed_run(tmp_path)
    line_of = {
        (letter["reason"], letter["event"]["id"]): number
        for number, letter in enumerate(read_jsonl(letters), start=1)
        if "event" in letter
    }
    replay = ["replay", fixed_config(tmp_path), "--dead-letters", letters, "--stats", "off"]
    result = run_evroute(replay, timeout=60)
    # unmatched events are unmatched again, which is no failure; the raw letter is not sent
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "orders.jsonl").read_bytes() == ORDER_1 + b"\n" + ORDER_2 + b"\n" + (
        ORDER_6 + b"\n"
    )
    message = (
        f"{letters}: 1 dead letter holds no event (reason malformed): not replayed;"
        " fix their source and run them as input"
    )
    assert result.stderr.decode().count(message) == 1
    again = read_jsonl(tmp_path / "dead.jsonl")
    # new dead letters name the letter file, and the letters' lines in it
    assert [(letter["reason"], letter["input"], letter["line"]) for letter in again] == [
        ("unmatched", str(letters), line_of[("unmatched", 4)]),
        ("unmatched", str(letters), line_of[("unmatched", 7)]),
    ]
    assert (tmp_path / "dead.jsonl").read_bytes().count(
        b'"big":98765432109876543210987654321}'
    ) == 1


def hand_letter(reason: str, route: str | None, event: bytes | None, line: int = 1) -> bytes:
    """A dead letter as evroute writes it: the event's bytes last."""
    head = json.dumps(
        {
            "time": "2026-11-28T09:00:00.000Z",
            "reason": reason,
            "detail": "...",
            "input": "in.jsonl",
            "line": line,
            "route": route,
            "consumer": None,
        },
        separators=(",", ":"),
    ).encode()
    body = b'"event":' + event if event is not None else b'"raw":"{oops"'
    return head[:-1] + b"," + body + b"}"


def one_file_config(folder: Path) -> Path:
    return write_config(
        folder,
        """
        version: 1
        dead_letter: new-dead.jsonl
        consumers: {all: {file: out.jsonl, mode: overwrite}}
        routes: [{name: all, to: all}]
        """,
        "all.yaml",
    )


SELECTABLE = [
    hand_letter("delivery_failed", "a", b'{"id":1}'),
    hand_letter("delivery_failed", "b", b'{"id":2}'),
    hand_letter("filter_error", "a", b'{"id":3}'),
    hand_letter("unmatched", None, b'{"id":4}'),
    hand_letter("dropped", "b", b'{"id":5}'),
    hand_letter("malformed", None, None),
    hand_letter("shutdown", "c", b'{"id":7}'),
]


@pytest.mark.parametrize(
    ("selection", "ids"),
    [
        ([], [1, 2, 3, 4, 5, 7]),
        (["--reason", "delivery_failed"], [1, 2]),
        (["--reason", "delivery_failed", "--reason", "dropped"], [1, 2, 5]),
        (["--route", "a"], [1, 3]),
        (["--route", "b", "--route", "c"], [2, 5, 7]),
        (["--reason", "delivery_failed", "--route", "b"], [2]),
        (["--reason", "denied"], []),
    ],
)
def test_reason_and_route_select_letters(
    tmp_path: Path, selection: list[str], ids: list[int]
) -> None:
    letters = tmp_path / "letters.jsonl.gz"  # read through gzip like any input
    letters.write_bytes(gzip.compress(b"\n".join(SELECTABLE) + b"\n"))
    config = one_file_config(tmp_path)
    code = program(
        ["replay", str(config), "--dead-letters", str(letters), "--stats", "off", *selection]
    )
    assert code == 0
    delivered = [
        json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()
    ]
    assert delivered == ids


def test_lines_that_are_not_dead_letters_are_malformed_with_their_line_numbers(
    tmp_path: Path,
) -> None:
    letters = tmp_path / "letters.jsonl"
    lines = [
        hand_letter("delivery_failed", "a", b'{"id":1}'),
        b"garbage",
        b"[1]",
        b"",  # blank: skipped, but counted in the line numbers
        b'{"id":5}',  # an event, not a dead letter
        hand_letter("unmatched", None, b"[5]"),  # a letter whose event is no object
        # a letter reformatted by hand: its event is encoded again, big integer exact
        b'{"reason": "unmatched", "route": null, "event": {"id": 7, "n": 12345678901234567890123}}',
        hand_letter("delivery_failed", "a", b'{"id":8}')[:-10],  # cut short
        hand_letter("filter_error", "a", b'{"id":9, "event": {"deep": true}}'),
    ]
    letters.write_bytes(b"\n".join(lines))  # no final newline
    replay = ["replay", one_file_config(tmp_path), "--dead-letters", letters, "--stats", "off"]
    result = run_evroute(replay, timeout=60)
    assert result.returncode == 3
    assert (tmp_path / "out.jsonl").read_bytes() == (
        b'{"id":1}\n{"id":7,"n":12345678901234567890123}\n{"id":9, "event": {"deep": true}}\n'
    )
    again = read_jsonl(tmp_path / "new-dead.jsonl")
    assert [(letter["reason"], letter["line"], letter["raw"]) for letter in again] == [
        ("malformed", 2, "garbage"),
        ("malformed", 3, "[1]"),
        ("malformed", 5, '{"id":5}'),
        ("malformed", 6, lines[5].decode()),
        ("malformed", 8, lines[7].decode()),
    ]
    assert all(letter["input"] == str(letters) for letter in again)
    details = [letter["detail"] for letter in again]
    assert details[0].startswith("not a dead letter: invalid JSON")
    assert details[1] == "not a dead letter: expected a JSON object, got list"
    assert details[2] == 'not a dead letter: it holds neither "event" nor "raw"'
    assert details[3] == 'not a dead letter: its "event" is an array'
    assert details[4].startswith("not a dead letter: invalid JSON")


def test_a_letter_whose_event_cannot_be_written_again_is_malformed(tmp_path: Path) -> None:
    # fields after the event: its own bytes cannot be cut out, so it is encoded again,
    # and nested this deep it cannot be
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    letters = tmp_path / "letters.jsonl"
    letters.write_bytes(
        b'{"reason":"unmatched","event":'
        + deep
        + b',"after":1}\n'
        + hand_letter("delivery_failed", "all", b'{"id":2}', line=2)
    )
    replay = ["replay", one_file_config(tmp_path), "--dead-letters", letters, "--stats", "off"]
    result = run_evroute(replay, timeout=60)
    assert result.returncode == 3
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":2}\n'
    [again] = read_jsonl(tmp_path / "new-dead.jsonl")
    assert (again["reason"], again["line"]) == ("malformed", 1)
    assert again["detail"].startswith("its event cannot be written as JSON: invalid-value")


def test_events_and_letters_too_long_are_malformed(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        dead_letter: new-dead.jsonl
        max_event_bytes: 64
        consumers: {all: {file: out.jsonl, mode: overwrite}}
        routes: [{name: all, to: all}]
        """,
        "small.yaml",
    )
    long_event = b'{"id":1,"pad":"' + b"x" * 100 + b'"}'
    long_letter = hand_letter("dropped", "a", b'{"id":3}').replace(b'"...', b'"' + b"y" * 70_000)
    letters = tmp_path / "letters.jsonl"
    letters.write_bytes(
        b"\n".join([hand_letter("dropped", "a", long_event), SELECTABLE[1], long_letter]) + b"\n"
    )
    code = program(["replay", str(config), "--dead-letters", str(letters), "--stats", "off"])
    assert code == 3
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":2}\n'
    again = read_jsonl(tmp_path / "new-dead.jsonl")
    assert [(letter["line"], letter["bytes"]) for letter in again] == [
        (1, len(long_event)),
        (3, len(long_letter)),
    ]
    assert again[0]["raw"] == long_event.decode()
    assert again[0]["detail"] == "its event of 117 bytes is over max_event_bytes (64)"
    assert again[1]["raw"] == long_letter[:4096].decode()
    assert again[1]["detail"].startswith(f"line of {len(long_letter)} bytes is over")


def test_pacing_and_progress_work_on_redrives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = tmp_path / "letters.jsonl"
    letters.write_bytes(
        b"".join(hand_letter("dropped", "a", b'{"id":%d}' % n, n) + b"\n" for n in range(6))
    )
    config = one_file_config(tmp_path)
    started = time.monotonic()
    paced = ["--rate", "20", "--progress", "--stats", "off"]
    code = program(["replay", str(config), "--dead-letters", str(letters), *paced])
    took = time.monotonic() - started
    assert code == 0
    assert took >= 5 / 20 * 0.9  # five gaps of 50 ms
    assert "replaying" in capsys.readouterr().err
    assert (tmp_path / "out.jsonl").read_bytes() == b"".join(b'{"id":%d}\n' % n for n in range(6))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["in.jsonl", "--dead-letters", "letters.jsonl"], "instead of FILE inputs"),
        (["-", "--dead-letters", "letters.jsonl"], "instead of FILE inputs"),
        (["--dead-letters", "-"], "not stdin"),
        (["--dead-letters", "letters.jsonl", "--reason", "bogus"], "unknown reason 'bogus'"),
        (["--reason", "dropped"], "only goes with --dead-letters"),
        (["--route", "a"], "only goes with --dead-letters"),
    ],
)
def test_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    config = one_file_config(tmp_path)
    (tmp_path / "letters.jsonl").write_bytes(SELECTABLE[0] + b"\n")
    (tmp_path / "in.jsonl").write_bytes(b'{"id":1}\n')
    capsys.readouterr()
    code = program(["replay", str(config), *arguments])
    assert code == 2
    error = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert message in error
    if "bogus" in message:
        assert "malformed, filter_error, delivery_failed, dropped, unmatched, shutdown, denied" in (
            error
        )
    assert not (tmp_path / "out.jsonl").exists()


def test_the_configs_own_dead_letter_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = one_file_config(tmp_path)
    own = tmp_path / "new-dead.jsonl"
    own.write_bytes(SELECTABLE[0] + b"\n")
    code = program(["replay", str(config), "--dead-letters", str(own), "--stats", "off"])
    assert code == 1
    assert "config's dead_letter file" in capsys.readouterr().err
    assert own.read_bytes() == SELECTABLE[0] + b"\n"


ROUTES_A_ALL = ["--route", "a", "--route", "all"]


def test_a_route_the_config_does_not_have_is_replayed_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = tmp_path / "letters.jsonl"
    letters.write_bytes(b"\n".join(SELECTABLE) + b"\n")
    config = one_file_config(tmp_path)  # its only route is `all`
    code = program(
        ["replay", str(config), "--dead-letters", str(letters), "--stats", "off", *ROUTES_A_ALL]
    )
    assert code == 0
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":1}\n{"id":3}\n'
    err = capsys.readouterr().err
    assert "--route a:" in err and "no route of that name" in err
    assert "--route all:" not in err
