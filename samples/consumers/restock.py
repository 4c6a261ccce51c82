#!/usr/bin/env python3
"""Reorder stock: one purchase line per InventoryLow event read from stdin.

Orders enough to bring the warehouse back to TARGET units. Reads JSON lines until EOF;
events without a SKU are ignored.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

NAME = "restock"


def say(text: str) -> None:
    """One line on stdout in a single write, so lines from programs sharing it never mix."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


TARGET = 20


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
    try:
        for event in events():
            detail = event.get("detail")
            detail = detail if isinstance(detail, dict) else {}
            sku = detail.get("sku")
            if not sku:
                continue
            remaining = detail.get("remaining")
            if not isinstance(remaining, int) or isinstance(remaining, bool):
                remaining = 0
            quantity = max(TARGET - remaining, 1)
            warehouse = detail.get("warehouse") or "?"
            say(f"{NAME}: order {quantity} of {sku} at {warehouse}")
    except BrokenPipeError:
        # Whoever read our stdout has gone (`| head`): stop quietly, and keep Python's
        # final flush from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
