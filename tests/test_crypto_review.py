"""Encryption at rest under attack and accident: writers sharing a file, torn records,
tampered archives, keys pasted where their names belong."""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import sys
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from evroute.core.parcel import Letter
from evroute.storage.archive_format import GZIP_WBITS, IndexEntry, archive_line, segment_name
from evroute.storage.crypto import Key, Sealer, Tampered, read_lines
from evroute.storage.dead_letters import DeadLetters

EVROUTE = [sys.executable, "-m", "evroute"]
TEXT_KEY = Key.generate()
KEY = Key.from_text(TEXT_KEY, "the review key")
ARCHIVED = b"2026-11-28T09:00:00.000Z"

ARCHIVE_CONFIG = """\
version: 1
encrypt: {key_env: EVROUTE_KEY}
consumers:
  out: {file: out.jsonl}
routes:
  - name: all
    to: out
"""


def evroute(
    *args: str, cwd: Path, key: str | None = TEXT_KEY
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "EVROUTE_KEY"}
    if key is not None:
        env["EVROUTE_KEY"] = key
    return subprocess.run(
        [*EVROUTE, *args], input=b"", capture_output=True, env=env, timeout=60, cwd=cwd
    )


def readable_lines(path: Path) -> list[bytes]:
    """The lines that decrypt before the first record that fails."""
    lines: list[bytes] = []
    with contextlib.suppress(Tampered):
        lines.extend(read_lines(path, KEY))
    return lines


def letter(input_name: str, number: int) -> Letter:
    return Letter(input_name, number, b"not json %d" % number, False)


def replay_archive(folder: Path, segment: bytes) -> subprocess.CompletedProcess[bytes]:
    """Replay an archive of one closed (indexed) segment through a config with a key."""
    (folder / "routes.yaml").write_text(ARCHIVE_CONFIG)
    archive = folder / "archive"
    archive.mkdir()
    name = segment_name(datetime(2026, 11, 28, 9, tzinfo=timezone.utc), 4242, 1)
    (archive / name).write_bytes(segment)
    stamp = ARCHIVED.decode()
    (archive / "index.jsonl").write_bytes(IndexEntry(name, stamp, stamp, 40, 1000).line())
    return evroute(
        "replay",
        "routes.yaml",
        "--archive",
        "archive",
        "--stats",
        "off",
        "--no-progress",
        cwd=folder,
    )


def sealed_segment() -> tuple[bytes, list[int]]:
    """A closed sealed archive segment of 4 batches of 10 events (as ArchiveSink writes
    them: one Z_SYNC_FLUSH chunk a record, then the gzip trailer), and where each
    record starts."""
    sealer = Sealer(KEY)
    compressor = zlib.compressobj(wbits=GZIP_WBITS)
    data = sealer.header()
    starts = []
    for batch in range(4):
        lines = b"".join(archive_line(ARCHIVED, b'{"n":%d}' % (batch * 10 + n)) for n in range(10))
        starts.append(len(data))
        data += sealer.record(compressor.compress(lines) + compressor.flush(zlib.Z_SYNC_FLUSH))
    starts.append(len(data))
    data += sealer.record(compressor.flush(zlib.Z_FINISH))
    return data, starts


def test_an_untouched_sealed_archive_replays_whole(tmp_path: Path) -> None:
    """The control for the archive tests below: their fixture replays as it should."""
    data, _ = sealed_segment()
    result = replay_archive(tmp_path, data)
    assert result.returncode == 0, result.stderr.decode()
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 40


def test_two_writers_appending_to_one_sealed_file_both_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    first, second = DeadLetters(path, None, KEY), DeadLetters(path, None, KEY)
    for number in range(3):
        first.add("malformed", "bad json", [letter("first", number)])
        second.add("malformed", "bad json", [letter("second", number)])
    first.close()
    second.close()
    assert first.write_error is None and second.write_error is None
    assert len(readable_lines(path)) == 6


def test_a_run_appending_after_a_torn_record_leaves_its_letters_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead.jsonl"
    crashed = DeadLetters(path, None, KEY)
    for number in range(3):
        crashed.add("malformed", "bad json", [letter("crashed", number)])
    crashed.close()
    os.truncate(path, path.stat().st_size - 5)  # the crash: the last write torn
    after = DeadLetters(path, None, KEY)
    after.check_writable()
    for number in range(3):
        after.add("malformed", "bad json", [letter("after", number)])
    after.close()
    assert after.write_error is None
    lines = readable_lines(path)
    # either way is fine: the torn record cut back, or the next run refusing to append
    assert sum(b'"input":"after"' in line for line in lines) == 3


def test_a_flipped_length_byte_in_an_archive_segment_is_tampering(tmp_path: Path) -> None:
    data, starts = sealed_segment()
    changed = bytearray(data)
    changed[starts[1] + 1] ^= 0x01  # the length of record 2 now runs past the file's end
    result = replay_archive(tmp_path, bytes(changed))
    stderr = result.stderr.decode()
    # the index lists the segment as closed whole: that it ends early is a change
    assert result.returncode != 0, stderr
    assert "lists it as closed by its run: the file was cut or changed" in stderr, stderr


def test_an_encrypted_archive_replay_refuses_an_unsealed_segment(tmp_path: Path) -> None:
    forged = gzip.compress(archive_line(ARCHIVED, b'{"forged": true}'))
    result = replay_archive(tmp_path, forged)
    out = tmp_path / "out.jsonl"
    assert not out.exists() or b"forged" not in out.read_bytes()
    assert result.returncode != 0


def test_a_key_given_as_key_env_is_never_printed(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(
        ARCHIVE_CONFIG.replace("{key_env: EVROUTE_KEY}", '{key_env: "${EVROUTE_KEY}"}')
    )
    for command in ("validate", "run"):
        result = evroute(command, "routes.yaml", cwd=tmp_path)
        assert result.returncode == 1
        assert b"key_env" in result.stderr + result.stdout  # it does say what is wrong
        assert TEXT_KEY.encode() not in result.stderr + result.stdout, command


def test_a_key_given_to_key_env_on_the_command_line_is_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    letters = DeadLetters(path, None, KEY)
    letters.add("malformed", "bad json", [letter("in", 1)])
    letters.close()
    result = evroute("decrypt", str(path), "--key-env", TEXT_KEY, cwd=tmp_path)
    assert result.returncode == 1
    assert TEXT_KEY.encode() not in result.stderr + result.stdout


def test_a_file_sealed_with_another_key_is_not_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "letters.jsonl"
    first = DeadLetters(path, None, KEY)
    first.add("malformed", "bad json", [letter("first", 1)])
    first.close()
    other = Key.from_text(Key.generate(), "another key")
    with pytest.raises(OSError, match="encrypted with another key"):
        DeadLetters(path, None, other).check_writable()
    # the same key goes on appending
    again = DeadLetters(path, None, KEY)
    again.check_writable()
    again.add("malformed", "bad json", [letter("again", 2)])
    again.close()
    assert len(readable_lines(path)) == 2
