#!/usr/bin/env python3
"""Handle failed payments: one retry line per PaymentFailed event, a summary at EOF.

Reads JSON lines from stdin until EOF; other events are ignored.
"""

from __future__ import annotations

import sys
from typing import Any

from consumer_io import say, serve

NAME = "payments"
handled = 0


def handle(event: dict[str, Any]) -> None:
    global handled
    if event.get("detail-type") != "PaymentFailed":
        return
    detail = event.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    order = detail.get("order_id") or "?"
    reason = detail.get("reason") or "unknown"
    say(f"{NAME}: retry card for {order} ({reason})")
    handled += 1


def summary() -> None:
    say(f"{NAME}: {handled} failed payments handled")


if __name__ == "__main__":
    sys.exit(serve(NAME, handle, summary))
