"""The audit log and the archive at their edges: long integers, lost spill, year 9999,
over-long events in a replay window."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from evroute.config.model import QueueSettings
from evroute.core.parcel import Parcel
from evroute.core.stats import ConsumerStats
from evroute.engine.queues import ConsumerQueue
from evroute.storage.archive_format import GZIP_WBITS, archive_line, event_time, segment_name
from evroute.storage.audit_log import AuditLog, event_id

EVROUTE = [sys.executable, "-m", "evroute"]


def evroute(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if k != "EVROUTE_KEY"}
    return subprocess.run(
        [*EVROUTE, *args], cwd=cwd, capture_output=True, env=environment, timeout=60
    )


# --- audit: event ids ---------------------------------------------------------------------


def test_a_string_id_names_the_event_whatever_its_other_numbers() -> None:
    line = b'{"id":"order-1","amount":' + b"9" * 400 + b"}"
    assert event_id(line) == "order-1"


def test_an_integer_id_beyond_64_bits_is_written_as_text() -> None:
    assert event_id(b'{"id":12345678901234567890123,"n":1}') == "12345678901234567890123"


def test_a_transformed_event_is_audited_by_its_original_id(tmp_path: Path) -> None:
    # not a bug: checked, so that a fix of the ids above keeps it
    (tmp_path / "c.yaml").write_text(
        textwrap.dedent(
            """\
            version: 1
            audit: audit.jsonl
            consumers:
              f: {file: f.out}
            routes:
              - {name: t, transform: "{id: 'renamed', n: n}", to: f}
            """
        )
    )
    (tmp_path / "in.jsonl").write_bytes(b'{"id":"e1","n":1}\n{"id":"e2","n":2}\n')
    result = evroute("run", "c.yaml", "in.jsonl", "--stats", "off", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    records = [orjson.loads(x) for x in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert sorted((r["event"], r["outcome"]) for r in records) == [
        ("e1", "delivered"),
        ("e1", "matched"),
        ("e2", "delivered"),
        ("e2", "matched"),
    ]


# --- audit: spilled events that cannot be read back ------------------------------------------


def test_spilled_events_lost_on_read_back_are_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    monkeypatch.setenv("EVROUTE_SPILL_DIR", str(spill_dir))
    audit = AuditLog(tmp_path / "audit.jsonl", None)
    stats = ConsumerStats()
    queue = ConsumerQueue(
        QueueSettings(buffer=2, on_full="spill"),
        stats,
        lambda reason, detail, parcels: None,
        name="c",
        audit=audit,
    )
    payloads = [b'{"id":"e%d"}' % n for n in range(10)]
    queue.put(Parcel("in.jsonl", ("r",), 1, payloads, list(range(10)), 0))
    spilled = [path for path in spill_dir.rglob("*") if path.is_file()]
    assert spilled, "nothing was spilled"
    for path in spilled:  # the disk lost the backlog's records
        path.write_bytes(path.read_bytes()[:20])
    queue.close()
    taken = 0
    for _ in range(20):  # bounded: 10 events at most
        batch = queue.get_batch(lambda batch: None)
        if batch is None:
            break
        taken += sum(len(parcel) for parcel in batch)
    audit.close()
    assert stats.dropped > 0 and taken + stats.dropped == 10
    audited = 0
    text = (tmp_path / "audit.jsonl").read_bytes() if (tmp_path / "audit.jsonl").exists() else b""
    for line in text.splitlines():
        record = orjson.loads(line)
        if record["outcome"] == "dropped":
            audited += record.get("events", 1)
    assert audited == stats.dropped


# --- archive: replay windows ---------------------------------------------------------------


ARCHIVE_CONFIG = """\
version: 1
consumers:
  history: {archive: arch}
routes:
  - {name: all, to: history}
"""

REPLAY_CONFIG = """\
version: 1
max_event_bytes: 100
dead_letter: dead.jsonl
consumers:
  out: {file: out.jsonl, mode: overwrite}
routes:
  - {name: all, to: out}
"""


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
    (tmp_path / "replay.yaml").write_text(REPLAY_CONFIG)
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
    result = evroute(
        "replay",
        "replay.yaml",
        "--archive",
        "arch",
        "--from",
        "2026-11-28",
        "--stats",
        "off",
        cwd=tmp_path,
    )
    assert (tmp_path / "out.jsonl").read_bytes() == new + b"\n"
    assert result.returncode == 3, result.stderr.decode()
    [letter] = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert letter["reason"] == "malformed"
    assert letter["raw"].startswith('{"id":3,"pad":"yyy')  # the event, not its archive line
    assert letter["bytes"] == len(inside)


def test_an_event_time_at_the_end_of_year_9999_does_not_fail_the_archive(
    tmp_path: Path,
) -> None:
    (tmp_path / "archive.yaml").write_text(
        ARCHIVE_CONFIG.replace("{archive: arch}", "{archive: arch, rotate_bytes: 1KiB}")
        + "dead_letter: dead.jsonl\n"
    )
    lines = [b'{"id":0,"time":"9999-12-31T23:59:59.9999Z"}']
    lines += [b'{"id":%d,"pad":"%s"}' % (n, b"x" * 50) for n in range(1, 40)]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = evroute("run", "archive.yaml", "in.jsonl", "--stats", "off", cwd=tmp_path)
    assert not (tmp_path / "dead.jsonl").exists()
    assert result.returncode == 0, result.stderr.decode()
    index = (tmp_path / "arch" / "index.jsonl").read_bytes().splitlines()
    assert sum(orjson.loads(line)["events"] for line in index) == 40


def test_the_time_of_an_event_with_a_long_integer_is_its_time_field() -> None:
    archived = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    event = b'{"time":"2026-01-01T00:00:00Z","amount":' + b"9" * 400 + b"}"
    assert event_time(event, archived) == datetime(2026, 1, 1, tzinfo=timezone.utc)
