#!/usr/bin/env python3
"""Reorder stock: one purchase line per InventoryLow event read from stdin.

Orders enough to bring the warehouse back to TARGET units. Reads JSON lines until EOF;
events without a SKU are ignored.
"""

from __future__ import annotations

import sys
from typing import Any

from consumer_io import say, serve

NAME = "restock"
TARGET = 20


def handle(event: dict[str, Any]) -> None:
    detail = event.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    sku = detail.get("sku")
    if not sku:
        return
    remaining = detail.get("remaining")
    if not isinstance(remaining, int) or isinstance(remaining, bool):
        remaining = 0
    quantity = max(TARGET - remaining, 1)
    warehouse = detail.get("warehouse") or "?"
    say(f"{NAME}: order {quantity} of {sku} at {warehouse}")


if __name__ == "__main__":
    sys.exit(serve(NAME, handle))
