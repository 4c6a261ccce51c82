"""Hostile input too big to commit: deep nesting, huge lines, a gibibyte without a newline.

Each bad line is one malformed dead letter with its line number, the good lines around
it are delivered, nothing crashes, and memory stays bounded. The small hostile cases
are golden files (tests/golden/).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from runs import EVROUTE, read_jsonl, write_config

MIB = 1 << 20
GIB = 1 << 30
RAW_LIMIT = 4096  # a dead letter's `raw` is cut to 4 KiB
PEAK_RSS_LIMIT = 200 * MIB


CONFIG = """
version: 1
dead_letter: dead.jsonl
consumers: {all: {file: out.jsonl}}
routes: [{name: all, to: all}]
"""


DEPTH = 100_000
DEEP_LINES = [
    b"[" * DEPTH,  # never closed
    b"[" * DEPTH + b"]" * DEPTH,  # closed: valid JSON, far too deep, and no object
    b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,  # an object, far too deep
    b'{"a":' * DEPTH + b"12345678901234567890" + b"}" * DEPTH,  # read by the exact parser
    b'{"a":' * DEPTH,  # never closed
]


def test_nesting_100000_deep_is_malformed_and_the_rest_is_delivered(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    lines = [b'{"id":0}']
    for number, deep in enumerate(DEEP_LINES, start=1):
        lines += [deep, b'{"id":%d}' % number]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = subprocess.run(
        [*EVROUTE, "run", str(config), str(tmp_path / "in.jsonl"), "--stats", "off"],
        capture_output=True,
        timeout=120,
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    assert result.returncode == 3
    expected = b"".join(b'{"id":%d}\n' % number for number in range(len(DEEP_LINES) + 1))
    assert (tmp_path / "out.jsonl").read_bytes() == expected
    letters = read_jsonl(tmp_path / "dead.jsonl")
    assert [(letter["reason"], letter["line"]) for letter in letters] == [
        ("malformed", 2 * number) for number in range(1, len(DEEP_LINES) + 1)
    ]
    for letter, deep in zip(letters, DEEP_LINES, strict=True):
        assert letter["input"] == str(tmp_path / "in.jsonl")
        assert letter["raw"] == deep[:RAW_LIMIT].decode()
        assert letter["bytes"] == len(deep)


def pieces_of(total: int, head: bytes, filler: bytes) -> Iterator[bytes]:
    """`total` bytes: `head`, then `filler` repeated and cut to fit."""
    yield head
    left = total - len(head)
    while left > 0:
        piece = filler[:left]
        left -= len(piece)
        yield piece


def peak_memory(pid: int) -> int:
    """The process's peak resident memory so far, in bytes; 0 once it has ended.

    VmHWM belongs to the program now running: unlike the child's ru_maxrss, it does
    not count the pages of the (large) test process it was forked from.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # in kB
    return 0  # a zombie has no memory left to report


def stream_into_evroute(
    folder: Path, config: Path, pieces: Iterable[bytes], timeout: float
) -> tuple[int, bytes, int]:
    """Pipe the pieces into `evroute run`, never holding them all; (exit code, stderr,
    peak resident memory in bytes, as last seen before it ended)."""
    deadline = time.monotonic() + timeout
    peak = 0
    with tempfile.TemporaryFile(dir=folder) as stderr:
        process = subprocess.Popen(
            [*EVROUTE, "run", str(config), "--stats", "off"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=folder,
        )
        assert process.stdin is not None
        try:
            try:
                for count, piece in enumerate(pieces):
                    process.stdin.write(piece)
                    if count % 16 == 0:
                        peak = max(peak, peak_memory(process.pid))
                        assert time.monotonic() < deadline, "evroute reads too slowly"
                process.stdin.close()
            except BrokenPipeError:
                pass  # evroute stopped reading: its exit code and stderr say why
            while process.poll() is None:
                peak = max(peak, peak_memory(process.pid))
                assert time.monotonic() < deadline, "evroute did not finish"
                time.sleep(0.01)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        return process.returncode, stderr.read(), peak


@pytest.mark.parametrize("extra", [1, 64 * 1024])
def test_a_line_just_over_max_event_bytes(tmp_path: Path, extra: int) -> None:
    config = write_config(tmp_path, CONFIG)
    at_limit = b'{"id":2,"pad":"' + b"y" * (MIB - 17) + b'"}'
    over = b'{"id":3,"pad":"' + b"z" * (MIB + extra - 17) + b'"}'
    assert len(at_limit) == MIB and len(over) == MIB + extra
    pieces = [b'{"id":1}\n', at_limit + b"\n", over + b"\n", b'{"id":4}\n']
    code, stderr, peak = stream_into_evroute(tmp_path, config, pieces, timeout=120)
    assert b"Traceback" not in stderr, stderr.decode()
    assert code == 3
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":1}\n' + at_limit + b'\n{"id":4}\n'
    letters = read_jsonl(tmp_path / "dead.jsonl")
    assert [(letter["reason"], letter["input"], letter["line"]) for letter in letters] == [
        ("malformed", "-", 3)
    ]
    assert letters[0]["raw"] == over[:RAW_LIMIT].decode()
    assert letters[0]["bytes"] == len(over)
    assert 0 < peak < PEAK_RSS_LIMIT, f"peak memory {peak / MIB:.0f} MiB"


def test_a_gibibyte_without_a_newline_in_bounded_memory(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    head = b'{"id":1}\n{"pad":"'
    filler = b"x" * MIB
    pieces = pieces_of(len(b'{"id":1}\n') + GIB, head, filler)
    code, stderr, peak = stream_into_evroute(tmp_path, config, pieces, timeout=300)
    assert b"Traceback" not in stderr, stderr.decode()
    assert code == 3
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":1}\n'
    letters = read_jsonl(tmp_path / "dead.jsonl")
    assert [(letter["reason"], letter["line"]) for letter in letters] == [("malformed", 2)]
    assert letters[0]["raw"] == ('{"pad":"' + "x" * RAW_LIMIT)[:RAW_LIMIT]
    assert letters[0]["bytes"] == GIB
    assert 0 < peak < PEAK_RSS_LIMIT, f"peak memory {peak / MIB:.0f} MiB"
