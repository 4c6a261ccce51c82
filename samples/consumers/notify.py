#!/usr/bin/env python3
"""Announce orders: one line on stdout per event read from stdin.

Takes full order events (the `vip-orders` route) or the slim objects of the
`big-orders` transform ({order, customer, tier, amount}). Reads JSON lines until EOF.
"""

from __future__ import annotations

import sys
from typing import Any

from consumer_io import say, serve

NAME = "notify"
BIG = 100


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


if __name__ == "__main__":
    sys.exit(serve(NAME, handle))
