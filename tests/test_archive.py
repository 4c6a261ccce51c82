"""Archives: `archive:` consumers write segments and an index; `evroute replay --archive`
reads a time window of them back through the routes, exactly as the events came, each
event placed by its own time or, failing that, by when it was archived."""

from __future__ import annotations

import base64
import errno
import gzip
import os
import re
import signal
import stat
import subprocess
import textwrap
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from runs import EVROUTE, read_jsonl, run_evroute, write_config

from evroute.config.model import ConsumerConfig, QueueSettings
from evroute.sinks import archive as sinks_archive
from evroute.sinks.archive import ArchiveOptions, ArchiveSink
from evroute.storage.archive_format import GZIP_WBITS, archive_line, event_time, segment_name
from evroute.storage.fileio import PartialWrite, write_all

KEY = base64.b64encode(bytes(range(32))).decode()
CANARY = "canary-7f3a91e2c4"
SEGMENT = re.compile(r"^segment-\d{8}T\d{9}Z-\d+-\d+\.jsonl\.gz$")
ARCHIVED = re.compile(rb'^\{"archived":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","event":')


def write_configs(folder: Path, archive_keys: str = "", encrypt: bool = False) -> None:
    """archive.yaml archives every event to arch/; replay.yaml writes them to out.jsonl."""
    sealed = "encrypt: {key_env: EVROUTE_KEY}\n" if encrypt else ""
    (folder / "archive.yaml").write_text(
        sealed
        + textwrap.dedent(
            f"""\
            version: 1
            consumers:
              history: {{archive: arch{archive_keys}}}
            routes:
              - {{name: all, to: history}}
            """
        )
    )
    (folder / "replay.yaml").write_text(
        sealed
        + textwrap.dedent(
            """\
            version: 1
            dead_letter: dead.jsonl
            consumers:
              out: {file: out.jsonl, mode: overwrite}
            routes:
              - {name: all, to: out}
            """
        )
    )


def archive_events(folder: Path, lines: list[bytes], env: dict[str, str] | None = None) -> None:
    (folder / "in.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    run = ["run", "archive.yaml", "in.jsonl", "--stats", "off"]
    result = run_evroute(run, folder, timeout=60, env=env)
    assert result.returncode == 0, result.stderr.decode()


def replay(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    replay = ["replay", "replay.yaml", "--archive", "arch", "--stats", "off", *args]
    return run_evroute(replay, folder, timeout=60, env=env)


def segments(folder: Path) -> list[Path]:
    return sorted(path for path in (folder / "arch").iterdir() if SEGMENT.match(path.name))


def index(folder: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line) for line in (folder / "arch" / "index.jsonl").read_bytes().splitlines()
    ]


def timed(number: int, moment: str) -> bytes:
    return b'{"id":%d,"time":"%s","detail":{"n":%d}}' % (number, moment.encode(), number)


EXACT = [
    b'{"id":1,"big":12345678901234567890123,"price":1.0}',
    b'{"id": 2, "price": 1, "note": "spaces kept"}',
    b'{"id":3,"nested":{"f":1.10,"e":1e3},"s":"caf\\u00e9"}',
]


def test_round_trip_keeps_exact_bytes(tmp_path: Path) -> None:
    write_configs(tmp_path)
    archive_events(tmp_path, EXACT)
    [segment] = segments(tmp_path)
    assert stat.S_IMODE((tmp_path / "arch").stat().st_mode) == 0o700
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "arch" / "index.jsonl").stat().st_mode) == 0o600
    # a complete .gz whose lines wrap the events' own bytes (`zcat | jq .event`)
    lines = gzip.decompress(segment.read_bytes()).splitlines()
    assert all(ARCHIVED.match(line) for line in lines)
    assert [line[line.index(b'"event":') + 8 : -1] for line in lines] == EXACT
    [entry] = index(tmp_path)
    assert entry["segment"] == segment.name
    assert entry["events"] == 3
    assert entry["bytes"] == sum(len(line) + 1 for line in lines)

    result = replay(tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == b"".join(line + b"\n" for line in EXACT)


def test_segments_rotate_by_size_each_with_an_index_line(tmp_path: Path) -> None:
    write_configs(tmp_path, ", rotate_bytes: 1KiB")
    events = [timed(n, f"2026-11-28T09:{n:02d}:00Z") for n in range(60)]
    archive_events(tmp_path, events)
    names = segments(tmp_path)
    assert len(names) > 3
    entries = index(tmp_path)
    assert sorted(str(entry["segment"]) for entry in entries) == [path.name for path in names]
    assert sum(int(entry["events"]) for entry in entries) == 60  # type: ignore[call-overload]
    for path in names:
        plain = gzip.decompress(path.read_bytes())  # each one closed: a whole .gz
        assert len(plain) <= 1024
    first = min(entries, key=lambda entry: str(entry["from"]))
    assert first["from"] == "2026-11-28T09:00:00.000Z"
    assert max(str(entry["until"]) for entry in entries) == "2026-11-28T09:59:00.000Z"

    result = replay(tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == events


def test_a_window_by_event_time(tmp_path: Path) -> None:
    write_configs(tmp_path, ", rotate_bytes: 1KiB")
    events = [timed(n, f"2026-11-2{7 + n // 24}T{n % 24:02d}:30:00+00:00") for n in range(48)]
    archive_events(tmp_path, events)

    result = replay(tmp_path, "--from", "2026-11-27T10:30:00Z", "--until", "2026-11-27T13:30:00Z")
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == events[10:13]
    # offsets and dates: 2026-11-28T00:30+01:00 is 2026-11-27T23:30Z
    result = replay(tmp_path, "--from", "2026-11-28T00:30:00+01:00", "--until", "2026-11-28")
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == events[23:24]
    result = replay(tmp_path, "--from", "2026-11-28T22:00:00Z")
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == events[46:]


def test_events_without_a_time_use_their_archived_time(tmp_path: Path) -> None:
    write_configs(tmp_path)
    untimed = b'{"id":"no time here"}'
    not_rfc3339 = b'{"id":"bad time","time":"yesterday"}'
    old = timed(1, "2020-01-01T00:00:00Z")
    archive_events(tmp_path, [untimed, old, not_rfc3339])
    now = datetime.now(timezone.utc)
    an_hour_ago = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    in_an_hour = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    result = replay(tmp_path, "--from", an_hour_ago, "--until", in_an_hour)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == [untimed, not_rfc3339]
    result = replay(tmp_path, "--until", "2021-01-01")
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == [old]


def test_segments_outside_the_window_are_not_opened(tmp_path: Path) -> None:
    write_configs(tmp_path)
    january = [timed(1, "2026-01-01T10:00:00Z"), timed(2, "2026-01-02T10:00:00Z")]
    june = [timed(3, "2026-06-01T10:00:00Z")]
    archive_events(tmp_path, january)
    [skipped] = segments(tmp_path)
    archive_events(tmp_path, june)
    # not gzip any more: reading it would fail (a chmod would not stop root)
    skipped.write_bytes(b"this is no segment")

    result = replay(tmp_path, "--from", "2026-05-01")
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == june
    # the window that needs it does read it
    result = replay(tmp_path, "--until", "2026-01-02")
    assert result.returncode == 1
    assert f"arch/{skipped.name}: corrupt at byte" in result.stderr.decode()


def test_a_segment_cut_short_by_a_crash_replays_what_it_holds(tmp_path: Path) -> None:
    write_configs(tmp_path)
    (tmp_path / "arch").mkdir()
    name = "segment-20261128T090000000Z-99-1.jsonl.gz"
    stamp = b"2026-11-28T09:00:00.000Z"
    events = [timed(n, "2026-11-28T09:00:00Z") for n in range(3)]
    compressor = zlib.compressobj(wbits=31)
    data = b""
    for event in events:  # a batch each, as the consumer writes them
        line = b'{"archived":"%s","event":%s}\n' % (stamp, event)
        data += compressor.compress(line) + compressor.flush(zlib.Z_SYNC_FLUSH)
    data += compressor.compress(b'{"archived":"%s","event":{"id":' % stamp)
    data += compressor.flush(zlib.Z_SYNC_FLUSH)  # and no Z_FINISH: the crash
    (tmp_path / "arch" / name).write_bytes(data)

    result = replay(tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == events
    stderr = result.stderr.decode()
    assert f"arch/{name}: ends early" in stderr
    assert "read the 3 whole events it holds" in stderr


def test_a_damaged_segment_is_an_error_naming_where(tmp_path: Path) -> None:
    write_configs(tmp_path)
    archive_events(tmp_path, [timed(n, "2026-11-28T09:00:00Z") for n in range(200)])
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = b"\xff" * 16
    segment.write_bytes(bytes(data))
    result = replay(tmp_path)
    assert result.returncode == 1
    assert re.search(rf"arch/{segment.name}: corrupt at byte \d+", result.stderr.decode())

    # a line that is not an archive line: its number, after the events before it
    lines = b'{"archived":"2026-11-28T09:00:00.000Z","event":{"id":1}}\n{"id":2}\n'
    segment.write_bytes(gzip.compress(lines))
    result = replay(tmp_path)
    assert result.returncode == 1
    assert f"arch/{segment.name}: line 2 is not an archive line" in result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":1}\n'


def test_dead_letters_name_the_segment_and_its_line(tmp_path: Path) -> None:
    write_configs(tmp_path)
    (tmp_path / "replay.yaml").write_text(
        "version: 1\ndead_letter: dead.jsonl\nunmatched: dead_letter\n"
        "consumers:\n  out: {file: out.jsonl}\n"
        "routes:\n  - {name: twos, filter: 'id == `2`', to: out}\n"
    )
    archive_events(tmp_path, [b'{"id":1}', b'{"id":2}', b'{"id":3}'])
    [segment] = segments(tmp_path)
    result = replay(tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    letters = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert [(letter["input"], letter["line"]) for letter in letters] == [
        (f"arch/{segment.name}", 1),
        (f"arch/{segment.name}", 3),
    ]


def test_an_encrypted_archive_holds_no_plain_text_and_replays(tmp_path: Path) -> None:
    write_configs(tmp_path, ", rotate_bytes: 1KiB", encrypt=True)
    env = {"EVROUTE_KEY": KEY}
    events = [
        b'{"id":%d,"secret":"%s","big":12345678901234567890123}' % (n, CANARY.encode())
        for n in range(40)
    ]
    archive_events(tmp_path, events, env=env)
    assert len(segments(tmp_path)) > 1
    for path in (tmp_path / "arch").iterdir():
        assert CANARY.encode() not in path.read_bytes(), path.name
    assert len(index(tmp_path)) == len(segments(tmp_path))  # the index stays plain

    result = replay(tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == events
    # and for a person with the key: `evroute decrypt` prints a segment's lines
    decrypted = b""
    for segment in segments(tmp_path):
        result = run_evroute(["decrypt", segment], tmp_path, timeout=60, env=env)
        assert result.returncode == 0, result.stderr.decode()
        decrypted += result.stdout
    lines = decrypted.splitlines()
    assert all(ARCHIVED.match(line) for line in lines)
    assert [line[line.index(b'"event":') + 8 : -1] for line in lines] == events

    # without the key: refused, saying why
    result = replay(tmp_path)
    assert result.returncode == 1
    assert "EVROUTE_KEY" in result.stderr.decode()
    (tmp_path / "plain.yaml").write_text(
        "version: 1\nconsumers:\n  out: {file: out.jsonl}\nroutes:\n  - {name: all, to: out}\n"
    )
    result = run_evroute(["replay", "plain.yaml", "--archive", "arch"], tmp_path, timeout=60)
    assert result.returncode == 1
    assert "is encrypted" in result.stderr.decode() and "encrypt:" in result.stderr.decode()


def test_a_flipped_byte_in_an_encrypted_segment_is_tampering(tmp_path: Path) -> None:
    write_configs(tmp_path, ", rotate_bytes: 1KiB", encrypt=True)
    env = {"EVROUTE_KEY": KEY}
    events = [timed(n, "2026-11-28T09:00:00Z") for n in range(40)]
    archive_events(tmp_path, events, env=env)
    first = segments(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[-5] ^= 0x01  # in the last record: the trailer
    first.write_bytes(bytes(data))
    result = replay(tmp_path, env=env)
    assert result.returncode == 1
    assert re.search(
        rf"arch/{first.name}: record \d+ at byte \d+ fails authentication", result.stderr.decode()
    )


def test_a_sealed_segment_cut_short_replays_what_it_holds(tmp_path: Path) -> None:
    write_configs(tmp_path, encrypt=True)
    env = {"EVROUTE_KEY": KEY}
    archive_events(tmp_path, [timed(1, "2026-11-28T09:00:00Z")], env=env)
    [segment] = segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # inside the last record: the gzip trailer's
    # a closed segment is in the index, and one of those that ends early was changed
    result = replay(tmp_path, env=env)
    assert result.returncode == 1
    assert "lists it as closed by its run: the file was cut or changed" in result.stderr.decode()
    # a crash leaves no index line: then it is read as far as it goes, with a warning
    (tmp_path / "arch" / "index.jsonl").unlink()
    result = replay(tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == [timed(1, "2026-11-28T09:00:00Z")]
    assert f"arch/{segment.name}: ends early" in result.stderr.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["in.jsonl", "--from", "2026-11-28"], "only goes with --archive"),
        (["--until", "2026-11-28"], "only goes with --archive"),
        (["in.jsonl", "--archive", "arch"], "instead of FILE inputs"),
        (["--archive", "arch", "--dead-letters", "dead.jsonl"], "--dead-letters"),
        (["--archive", "arch", "--from", "last tuesday"], "is not a time"),
        (["--archive", "arch", "--from", "2026-11-28", "--until", "2026-11-28"], "holds nothing"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    write_configs(tmp_path)
    (tmp_path / "in.jsonl").write_bytes(b'{"id":1}\n')
    result = run_evroute(["replay", "replay.yaml", *args], tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr.decode()
    assert message in " ".join(result.stderr.decode().split())
    assert not (tmp_path / "out.jsonl").exists()


def test_a_missing_or_empty_archive_is_an_error(tmp_path: Path) -> None:
    write_configs(tmp_path)
    result = replay(tmp_path)
    assert result.returncode == 1
    assert "arch: no such archive folder" in result.stderr.decode()
    (tmp_path / "arch").mkdir()
    result = replay(tmp_path)
    assert result.returncode == 1
    assert "arch: no archive segments" in result.stderr.decode()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("{archive: 5}", "consumers.history.archive: expected a string, got number 5"),
        (
            "{archive: arch, rotate_bytes: 10}",
            "consumers.history.rotate_bytes: must be at least 1024",
        ),
        ("{archive: arch, max_open_files: 3}", "consumers.history.max_open_files: unknown key"),
    ],
)
def test_validate_reports_bad_archive_keys(tmp_path: Path, keys: str, message: str) -> None:
    config = write_config(
        tmp_path,
        f"version: 1\nconsumers:\n  history: {keys}\nroutes:\n  - {{name: all, to: history}}\n",
    )
    result = run_evroute(["validate", config], tmp_path, timeout=60)
    assert result.returncode == 1
    assert message in result.stdout.decode() + result.stderr.decode()


def archive_sink(folder: Path, retries: int) -> ArchiveSink:
    options = ArchiveOptions("arch", 1024)
    config = ConsumerConfig("history", "archive", options, QueueSettings(retries=retries))
    sink = ArchiveSink(config, folder)
    sink.open()
    return sink


def failing_writes(monkeypatch: pytest.MonkeyPatch, fail: Callable[[int], bool]) -> None:
    """write_all of the archive sink fails (a full disk, after 3 bytes) when `fail` says
    so of the call's number, from 1."""
    calls = [0]

    def write(fd: int, data: bytes) -> None:
        calls[0] += 1
        if fail(calls[0]):
            os.write(fd, data[:3])
            raise PartialWrite(OSError(errno.ENOSPC, "No space left on device"), data, 3)
        write_all(fd, data)

    monkeypatch.setattr(sinks_archive, "write_all", write)
    monkeypatch.setattr("evroute.sinks.base.backoff_delay", lambda *args: 0.0)


def test_a_failed_write_is_retried_in_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_writes(monkeypatch, lambda call: call == 2)
    sink = archive_sink(tmp_path, retries=1)
    assert sink.write([b'{"id":1}']) == []
    assert sink.write([b'{"id":2}']) == []  # the first try fails; the retry goes through
    assert sink.close(0) is None
    first, second = segments(tmp_path)
    # the first ends where its last whole batch does, as after a crash
    assert zlib.decompressobj(wbits=31).decompress(first.read_bytes()).endswith(b'{"id":1}}\n')
    assert gzip.decompress(second.read_bytes()).endswith(b'{"id":2}}\n')
    assert [entry["events"] for entry in index(tmp_path)] == [1, 1]

    write_configs(tmp_path)
    result = replay(tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":1}\n{"id":2}\n'
    assert f"arch/{first.name}: ends early" in result.stderr.decode()


def test_a_write_that_keeps_failing_gives_its_events_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_writes(monkeypatch, lambda call: True)
    sink = archive_sink(tmp_path, retries=2)
    failures = sink.write([b'{"id":1}', b'{"id":2}'])
    detail = f"cannot write to {tmp_path / 'arch'}: No space left on device (3 attempts)"
    assert failures == [(0, "delivery_failed", detail), (1, "delivery_failed", detail)]
    assert sink.close(0) is None
    assert segments(tmp_path) == []  # no empty segments left behind


def test_graph_shows_the_archive_folder(tmp_path: Path) -> None:
    write_configs(tmp_path)
    result = run_evroute(["graph", "archive.yaml"], tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert "history  archive: arch" in result.stdout.decode()


def test_events_over_max_event_bytes_are_malformed(tmp_path: Path) -> None:
    write_configs(tmp_path)
    small, just_over, far_over = (
        b'{"id":1}',
        b'{"pad":"%s"}' % (b"x" * 55),
        b'{"pad":"%s"}' % (b"y" * 300),
    )
    assert len(just_over) == 65
    archive_events(tmp_path, [small, just_over, far_over])
    (tmp_path / "replay.yaml").write_text(
        "version: 1\ndead_letter: dead.jsonl\nmax_event_bytes: 64\n"
        "consumers:\n  out: {file: out.jsonl}\nroutes:\n  - {name: all, to: out}\n"
    )
    result = replay(tmp_path)
    assert result.returncode == 3, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == small + b"\n"
    letters = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert [(letter["reason"], letter["line"], letter["detail"]) for letter in letters] == [
        ("malformed", 2, "its event of 65 bytes is over max_event_bytes (64)"),
        ("malformed", 3, f"its event of {len(far_over)} bytes is over max_event_bytes (64)"),
    ]


def write_segment(folder: Path, lines: list[tuple[bytes, bytes]]) -> None:
    """A closed segment, written by hand: (archived time, event) per line."""
    folder.mkdir(mode=0o700)
    compressor = zlib.compressobj(wbits=GZIP_WBITS)
    data = b"".join(archive_line(stamp, event) for stamp, event in lines)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    (folder / segment_name(start, 1, 1)).write_bytes(compressor.compress(data) + compressor.flush())


def test_an_oversize_event_is_judged_by_its_archived_time(tmp_path: Path) -> None:
    """An event too long for the replay's max_event_bytes is not read whole, so its
    archived time (at the start of its line) places it in or out of the window."""
    write_config(
        tmp_path,
        """\
        version: 1
        max_event_bytes: 100
        dead_letter: dead.jsonl
        consumers:
          out: {file: out.jsonl, mode: overwrite}
        routes:
          - {name: all, to: out}
        """,
        "replay.yaml",
    )
    old = b'{"id":1,"time":"2026-11-28T10:00:00Z","pad":"%s"}' % (b"x" * 200)
    inside = b'{"id":3,"pad":"%s"}' % (b"y" * 200)
    new = b'{"id":2,"time":"2026-11-28T09:00:00Z"}'
    write_segment(
        tmp_path / "arch",
        [
            (b"2026-01-01T00:00:00.000Z", old),
            (b"2026-11-28T09:00:00.000Z", new),
            (b"2026-11-28T09:00:01.000Z", inside),
        ],
    )
    result = replay(tmp_path, "--from", "2026-11-28")
    assert (tmp_path / "out.jsonl").read_bytes() == new + b"\n"
    assert result.returncode == 3, result.stderr.decode()
    [letter] = read_jsonl(tmp_path / "dead.jsonl")
    assert letter["reason"] == "malformed"
    assert letter["raw"].startswith('{"id":3,"pad":"yyy')  # the event, not its archive line
    assert letter["bytes"] == len(inside)


def test_an_event_time_at_the_end_of_year_9999_does_not_fail_the_archive(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        """\
        version: 1
        consumers:
          history: {archive: arch, rotate_bytes: 1KiB}
        routes:
          - {name: all, to: history}
        dead_letter: dead.jsonl
        """,
        "archive.yaml",
    )
    lines = [b'{"id":0,"time":"9999-12-31T23:59:59.9999Z"}']
    lines += [b'{"id":%d,"pad":"%s"}' % (n, b"x" * 50) for n in range(1, 40)]
    archive_events(tmp_path, lines)
    assert not (tmp_path / "dead.jsonl").exists()
    assert sum(int(entry["events"]) for entry in index(tmp_path)) == 40  # type: ignore[call-overload]


def test_the_time_of_an_event_with_a_long_integer_is_its_time_field() -> None:
    archived = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    event = b'{"time":"2026-01-01T00:00:00Z","amount":' + b"9" * 400 + b"}"
    assert event_time(event, archived) == datetime(2026, 1, 1, tzinfo=timezone.utc)


def running_archiver(folder: Path, events: list[bytes]) -> tuple[subprocess.Popen[bytes], Path]:
    """`evroute run` archiving events from a pipe that stays open, once they are on disk."""
    process = subprocess.Popen(
        [*EVROUTE, "run", "archive.yaml", "--stats", "off"],
        cwd=folder,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(b"".join(event + b"\n" for event in events))
    process.stdin.flush()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = segments(folder) if (folder / "arch").exists() else []
        if found:
            plain = zlib.decompressobj(wbits=31).decompress(found[0].read_bytes())
            if plain.count(b"\n") == len(events):
                return process, found[0]
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the events were not archived in time")


def test_sigterm_closes_the_segment(tmp_path: Path) -> None:
    write_configs(tmp_path)
    events = [timed(n, "2026-11-28T09:00:00Z") for n in range(5)]
    process, segment = running_archiver(tmp_path, events)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr.decode()
    assert gzip.decompress(segment.read_bytes()).count(b"\n") == 5  # a complete .gz
    assert [entry["segment"] for entry in index(tmp_path)] == [segment.name]


def test_a_killed_run_leaves_a_segment_that_replays(tmp_path: Path) -> None:
    write_configs(tmp_path)
    events = [timed(n, "2026-11-28T09:00:00Z") for n in range(5)]
    process, segment = running_archiver(tmp_path, events)
    process.kill()  # SIGKILL: no trailer, no index line
    process.communicate(timeout=30)
    assert not (tmp_path / "arch" / "index.jsonl").exists()
    result = replay(tmp_path, "--from", "2026-11-28T09:00:00Z", "--until", "2026-11-28T09:00:01Z")
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes().splitlines() == events
    assert f"arch/{segment.name}: ends early" in result.stderr.decode()


def test_two_archives_in_one_folder_are_an_error(tmp_path: Path) -> None:
    from evroute.loading import check_config

    config = write_config(
        tmp_path,
        "version: 1\nconsumers:\n  a: {archive: arch}\n  b: {archive: ./arch/}\n"
        "routes:\n  - {name: all, to: [a, b]}\n",
    )
    loaded, issues = check_config(config)
    assert loaded is None
    [issue] = issues
    assert (issue.path, issue.line, issue.column) == ("consumers.b.archive", 4, 16)
    assert "archives to this folder too" in issue.message


def test_an_unsealed_segment_is_refused_when_the_config_encrypts(tmp_path: Path) -> None:
    write_configs(tmp_path)
    archive_events(tmp_path, [timed(1, "2026-11-28T09:00:00Z")])  # plain
    write_configs(tmp_path, encrypt=True)
    result = replay(tmp_path, env={"EVROUTE_KEY": KEY})
    assert result.returncode == 1
    assert "is not encrypted, and this config encrypts" in result.stderr.decode()
    assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_bytes()
