#!/usr/bin/env python3
"""Handle failed payments: one retry line per PaymentFailed event, a summary at EOF.

Reads JSON lines from stdin until EOF; other events are ignored.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

NAME = "payments"


def say(text: str) -> None:
    """One line on stdout in a single write, so lines from programs sharing it never mix."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def events() -> Iterator[dict[str, Any]]:
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
            print(f"{NAME}: skipped a line that is not a JSON object", file=sys.stderr, flush=True)


def main() -> int:
    handled = 0
    try:
        for event in events():
            if event.get("detail-type") != "PaymentFailed":
                continue
            detail = event.get("detail")
            detail = detail if isinstance(detail, dict) else {}
            order = detail.get("order_id") or "?"
            reason = detail.get("reason") or "unknown"
            say(f"{NAME}: retry card for {order} ({reason})")
            handled += 1
        say(f"{NAME}: {handled} failed payments handled")
    except BrokenPipeError:
        # Whoever read our stdout has gone (`| head`): stop quietly, and keep Python's
        # final flush from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
