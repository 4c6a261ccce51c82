"""What the sample consumers share: JSON lines in on stdin, whole lines out on stdout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any


def say(text: str) -> None:
    """One line on stdout in a single write, so lines from programs sharing it never mix."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def events(name: str) -> Iterator[dict[str, Any]]:
    """JSON objects from stdin, one a line; anything else is noted on stderr and skipped."""
    for raw in iter(sys.stdin.buffer.readline, b""):
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict):
            yield event
        else:
            print(f"{name}: skipped a line that is not a JSON object", file=sys.stderr, flush=True)


def serve(
    name: str, handle: Callable[[dict[str, Any]], None], at_end: Callable[[], None] | None = None
) -> int:
    """Handle every event until EOF; the exit status for sys.exit."""
    try:
        for event in events(name):
            handle(event)
        if at_end is not None:
            at_end()
    except BrokenPipeError:
        # Whoever read our stdout has gone (`| head`): stop quietly, and keep Python's
        # final flush from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return 0
