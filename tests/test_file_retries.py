"""A file consumer whose writes fail (a full disk) retries, then dead-letters; the
others go on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from runs import EVROUTE, id_lines, write_config

from evroute.config.model import ConsumerConfig, QueueSettings
from evroute.sinks.file import FileOptions, FileSink

FULL = Path("/dev/full")

needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


@needs_dev_full
def test_a_full_disk_is_retried_then_dead_lettered_while_the_others_go_on(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        version: 1
        dead_letter: dead.jsonl
        consumers:
          full: {file: /dev/full, retries: 1}
          fine: {file: fine.jsonl}
        routes: [{name: all, to: [full, fine]}]
        """,
    )
    stats_path = tmp_path / "stats.json"
    result = subprocess.run(
        [*EVROUTE, "run", str(config), "--stats-json", str(stats_path)],
        input=id_lines(5),
        capture_output=True,
        timeout=60,
    )
    assert b"Traceback" not in result.stderr
    assert result.returncode == 3, result.stderr.decode()
    assert (tmp_path / "fine.jsonl").read_bytes() == id_lines(5)
    full = json.loads(stats_path.read_text())["consumers"]["full"]
    assert (full["delivered"], full["dead_lettered"]) == (0, 5)
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").open()]
    assert [letter["event"]["id"] for letter in letters] == list(range(5))
    assert {letter["reason"] for letter in letters} == {"delivery_failed"}
    assert letters[0]["detail"] == "cannot write /dev/full: No space left on device (2 attempts)"


def test_a_retried_write_leaves_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part of a line written before a failure is taken back, so the retry writes
    every line whole, once."""
    import evroute.storage.fileio as fileio

    real_write = fileio.os.write
    calls = {"n": 0}

    def flaky_write(fd: int, data: memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, data[:15])  # a line and a half
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(fileio.os, "write", flaky_write)
    monkeypatch.setattr("evroute.sinks.base.RETRY_BACKOFF_S", 0.01)
    consumer = ConsumerConfig(
        "out", "file", FileOptions("out.jsonl", "overwrite"), QueueSettings(retries=2)
    )
    sink = FileSink(consumer, tmp_path)
    sink.open()
    try:
        assert sink.write([b'{"id":0}', b'{"id":1}', b'{"id":2}']) == []
    finally:
        sink.close(0)
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"id":0}\n{"id":1}\n{"id":2}\n'
