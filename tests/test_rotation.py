"""Rotation by size: the dead letter file (`dead_letter: {path, rotate_bytes, rotate_keep}`)
and file consumers (`rotate_bytes`, `rotate_keep`)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from runs import EVROUTE, write_config

from evroute.loading import check_config
from evroute.storage.fileio import RotatingFile, open_private


def test_a_rotating_file_keeps_whole_buffers_and_so_many_old_files(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    rotating = RotatingFile(path, rotate_bytes=100, keep=2, opener=open_private)
    for n in range(10):
        rotating.write(b"%d:" % n + b"x" * 40 + b"\n")  # 43 bytes: two fit in 100
    rotating.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"]
    assert [line[:2] for line in path.read_bytes().splitlines()] == [b"8:", b"9:"]
    assert path.with_name("dead.jsonl.1").read_bytes().startswith(b"6:")
    assert path.with_name("dead.jsonl.2").read_bytes().startswith(b"4:")
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert stat.S_IMODE(path.with_name("dead.jsonl.2").stat().st_mode) == 0o600


def test_a_line_larger_than_the_limit_stays_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    rotating = RotatingFile(path, rotate_bytes=10, keep=0, opener=open_private)
    rotating.write(b"a" * 30 + b"\n")
    rotating.write(b"b" * 30 + b"\n")
    rotating.close()
    assert path.read_bytes() == b"b" * 30 + b"\n"  # keep 0: the old one is gone
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_one_buffer_of_many_lines_is_split_between_files_at_lines(tmp_path: Path) -> None:
    path = tmp_path / "f"
    rotating = RotatingFile(path, rotate_bytes=25, keep=9, opener=open_private)
    rotating.write(b"".join(b"line %03d\n" % n for n in range(10)))  # 9 bytes each
    rotating.close()
    parts = [path.with_name(f"f.{n}") for n in range(4, 0, -1)] + [path]
    assert b"".join(p.read_bytes() for p in parts) == b"".join(
        b"line %03d\n" % n for n in range(10)
    )
    assert all(p.stat().st_size == 18 for p in parts[:-1])  # two lines fit in 25


def test_dead_letters_rotate_in_a_run(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        dead_letter: {path: dead.jsonl, rotate_bytes: 2KiB, rotate_keep: 3}
        unmatched: dead_letter
        consumers: {none: {file: none.jsonl}}
        routes: [{name: never, filter: "nothing", to: none}]
        """,
    )
    events = b"".join(b'{"id":%d}\n' % n for n in range(100))
    result = subprocess.run(
        [*EVROUTE, "run", str(config)], input=events, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()  # unmatched: a choice
    kept = sorted(tmp_path.glob("dead.jsonl*"))
    assert [p.name for p in kept] == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2", "dead.jsonl.3"]
    letters = [
        json.loads(line)
        for p in [*reversed(kept[1:]), kept[0]]  # oldest first
        for line in p.read_bytes().splitlines()
    ]
    ids = [letter["event"]["id"] for letter in letters]
    assert ids == list(range(100 - len(ids), 100))  # the newest, in order, none cut
    assert all(p.stat().st_size <= 2048 for p in kept)


@pytest.mark.parametrize(
    ("dead_letter", "path", "message"),
    [
        ("{rotate_bytes: 1MiB}", "dead_letter.path", "missing"),
        ("{path: d.jsonl, rotate_keep: 2}", "dead_letter.rotate_keep", "without rotate_bytes"),
        ("{path: d.jsonl, rotate_bytes: 10}", "dead_letter.rotate_bytes", "at least 1024"),
        (
            "{path: d.jsonl, rotate_bytes: 1MiB, rotate_keep: -1}",
            "dead_letter.rotate_keep",
            "at least 0",
        ),
        ("{path: d.jsonl, rotate: 1MiB}", "dead_letter.rotate", "unknown"),
    ],
)
def test_dead_letter_rotation_errors_say_where(
    tmp_path: Path, dead_letter: str, path: str, message: str
) -> None:
    config = write_config(
        tmp_path,
        "version: 1\n"
        f"dead_letter: {dead_letter}\n"
        "consumers: {all: {file: all.jsonl}}\n"
        "routes: [{name: all, to: all}]\n",
    )
    built, issues = check_config(config, environ={})
    assert built is None
    errors = [issue for issue in issues if issue.severity == "error"]
    assert [issue.path for issue in errors] == [path], [i.format() for i in issues]
    assert message in errors[0].message


def test_a_file_consumer_rotates_and_keeps_its_newest_lines(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "version: 1\n"
        "consumers: {all: {file: out.jsonl, rotate_bytes: 1KiB, rotate_keep: 2}}\n"
        "routes: [{name: all, to: all}]\n",
    )
    (tmp_path / "out.jsonl").write_bytes(b'{"id":-1}\n')  # appended to, then rotated away
    events = b"".join(b'{"id":%d}\n' % n for n in range(300))
    result = subprocess.run(
        [*EVROUTE, "run", str(config)], input=events, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    kept = [tmp_path / name for name in ("out.jsonl.2", "out.jsonl.1", "out.jsonl")]
    assert sorted(p.name for p in tmp_path.glob("out.jsonl*")) == sorted(p.name for p in kept)
    ids = [json.loads(line)["id"] for p in kept for line in p.read_bytes().splitlines()]
    assert ids == list(range(300 - len(ids), 300))  # the newest lines, in order, whole
    assert all(p.stat().st_size <= 1024 for p in kept)


@pytest.mark.parametrize(
    ("file", "message"),
    [('"-"', "stdout cannot rotate"), ("'out/{source}.jsonl'", "a templated path")],
)
def test_only_a_plain_file_rotates(tmp_path: Path, file: str, message: str) -> None:
    config = write_config(
        tmp_path,
        "version: 1\n"
        f"consumers: {{all: {{file: {file}, rotate_bytes: 1MiB}}}}\n"
        "routes: [{name: all, to: all}]\n",
    )
    built, issues = check_config(config, environ={})
    assert built is None
    (error,) = [issue for issue in issues if issue.severity == "error"]
    assert error.path == "consumers.all.rotate_bytes" and message in error.message


def test_a_failed_rotation_says_how_many_lines_went_out(tmp_path: Path) -> None:
    """The retry then writes only the rest: no line twice, none counted lost."""
    from evroute.storage.fileio import PartialWrite

    opened = {"n": 0}

    def opener(path: Path) -> int:
        opened["n"] += 1
        if opened["n"] == 2:  # the file after the first rotation
            raise OSError(24, "Too many open files")
        return open_private(path)

    rotating = RotatingFile(tmp_path / "f", rotate_bytes=20, keep=3, opener=opener)
    data = b"".join(b"line %03d\n" % n for n in range(5))  # 9 bytes a line: two a file
    with pytest.raises(PartialWrite) as raised:
        rotating.write(data)
    assert raised.value.complete_lines == 2 and raised.value.partial_bytes == 0
    rotating.write(data[2 * 9 :])  # the retry
    rotating.close()
    files = [tmp_path / name for name in ("f.2", "f.1", "f")]
    assert b"".join(p.read_bytes() for p in files if p.exists()) == data
