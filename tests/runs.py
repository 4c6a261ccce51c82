"""Running evroute as users do, in a subprocess, and reading what a run reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

EVROUTE = [sys.executable, "-m", "evroute"]


def run_evroute(
    args: list[str], cwd: Path, stdin: bytes | None = b"", timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    """`evroute ARGS` in `cwd`, without colour; whatever it ends with, never a traceback."""
    result = subprocess.run(
        [*EVROUTE, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def read_stats(path: Path) -> dict[str, Any]:
    """The stats a run wrote with --stats-json; each consumer's counts must add up."""
    stats: dict[str, Any] = json.loads(path.read_text())
    for name, consumer in stats["consumers"].items():
        assert consumer["enqueued"] == (
            consumer["delivered"] + consumer["dropped"] + consumer["dead_lettered"]
        ), name
    return stats
