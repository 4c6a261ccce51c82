#!/usr/bin/env python3
"""Announce orders: one line on stdout per event read from stdin.

Takes full order events (the `vip-orders` route) or the slim objects of the
`big-orders` transform ({order, customer, tier, amount}). Reads JSON lines until EOF.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

NAME = "notify"


def say(text: str) -> None:
    """One line on stdout in a single write, so lines from programs sharing it never mix."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


BIG = 100


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


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def money(amount: object) -> str:
    if isinstance(amount, (int, float)) and not isinstance(amount, bool):
        return f"{amount:.2f}"
    return "?"


def handle(event: dict[str, Any]) -> None:
    if "detail" in event:  # a full event
        detail = as_dict(event.get("detail"))
        order = detail.get("order_id")
        customer = detail.get("customer")
        currency = detail.get("currency")
    else:  # the big-orders transform
        detail = event
        order = event.get("order")
        customer = event.get("customer")
        currency = event.get("currency")
    if isinstance(customer, dict):
        name, tier = customer.get("name"), customer.get("tier")
    else:
        name, tier = customer, detail.get("tier")
    if not order:
        print(f"{NAME}: skipped an event without an order id", file=sys.stderr, flush=True)
        return
    amount = detail.get("amount")
    big = isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount > BIG
    line = (
        f"{NAME}: {'big order' if big else 'order'} {order or '?'} from {name or '?'}"
        f" ({tier or '?'}): {money(amount)} {currency or 'EUR'}"
    )
    say(line)


def main() -> int:
    try:
        for event in events():
            handle(event)
    except BrokenPipeError:
        # Whoever read our stdout has gone (`| head`): stop quietly, and keep Python's
        # final flush from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
