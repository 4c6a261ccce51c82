#!/usr/bin/env python3
"""Write samples/orders.jsonl: 1,000 EventBridge-shaped events from a small web shop.

The output is deterministic: the same seed, the same fixed start time, no clock, so
running this again rewrites the file byte for byte. Standard library only.

    python3 samples/generate_orders.py
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SEED = 42
COUNT = 1000
BASE_TIME = datetime(2026, 11, 1, 9, 0, 0, tzinfo=timezone.utc)
OUT = Path(__file__).resolve().parent / "orders.jsonl"

ACCOUNT = "123456789012"
REGION = "eu-west-1"
CURRENCY = "EUR"
MAX_ORDER_CENTS = 500_00

# detail-type -> weight (percent)
EVENT_TYPES = {
    "OrderPlaced": 55,
    "OrderShipped": 20,
    "PaymentFailed": 10,
    "OrderCancelled": 10,
    "InventoryLow": 5,
}
SOURCES = {"PaymentFailed": "shop.payments", "InventoryLow": "shop.inventory"}

NAMES = [
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Linus Nilsson",
    "Margaret Hamilton",
    "Sofía Martínez",
    "Liam O'Brien",
    "Chloé Dubois",
    "Lukas Müller",
    "Giulia Rossi",
    "Noah Jansen",
    "Emma Johansson",
    "Mateo García",
    "Aoife Byrne",
    "Jakub Nowak",
    "Freya Andersen",
    "Oliver Smith",
    "Amélie Laurent",
    "Finn Schneider",
    "Isabel Costa",
    "Hannah Becker",
    "Tomás Ferreira",
    "Zoë Williams",
    "Elias Virtanen",
    "Maja Kowalska",
    "Ciarán Murphy",
    "Léa Moreau",
    "Henrik Larsen",
    "Ana Popescu",
    "Marco Bianchi",
    "Niamh Kelly",
    "Björn Eriksson",
    "Eva Novák",
    "Daniel Schmidt",
    "Ines Almeida",
    "Katarzyna Wiśniewska",
    "Pieter de Vries",
    "Saoirse Walsh",
    "Jonas Weber",
    "Clara Fischer",
]
TIERS = {"standard": 70, "gold": 22, "platinum": 8}

# (sku, name, unit price in cents, popularity): cheap things sell most
CATALOG = [
    ("SKU-1001", "Espresso beans 1kg", 24_90, 14),
    ("SKU-1002", "Filter coffee 500g", 11_50, 16),
    ("SKU-1003", "Green tea 100g", 7_90, 10),
    ("SKU-1004", "Ceramic mug", 12_00, 10),
    ("SKU-1005", "Travel mug", 19_95, 8),
    ("SKU-1006", "Pour-over dripper", 27_00, 5),
    ("SKU-1007", "Paper filters x100", 5_49, 12),
    ("SKU-1008", "Burr grinder", 129_00, 2),
    ("SKU-1009", "Gooseneck kettle", 64_90, 3),
    ("SKU-1010", "Milk frother", 39_99, 4),
    ("SKU-1011", "Moka pot 6 cups", 34_50, 5),
    ("SKU-1012", "Cold brew jar", 22_00, 5),
    ("SKU-1013", "Digital scale", 29_90, 4),
    ("SKU-1014", "Espresso machine", 449_00, 1),
    ("SKU-1015", "Descaler 250ml", 8_95, 7),
    ("SKU-1016", "Chai spice mix", 6_75, 8),
]
QUANTITIES = {1: 55, 2: 25, 3: 10, 4: 6, 5: 4}
WAREHOUSES = ["WH-DUB-1", "WH-AMS-2", "WH-FRA-1"]
PAYMENT_FAILURES = ["card_declined", "insufficient_funds", "expired_card"]


def money(cents: int) -> float:
    """Cents as a JSON number with at most 2 decimals (1250 -> 12.5)."""
    return round(cents / 100, 2)


def weighted(rng: random.Random, table: dict[T, int]) -> T:
    return rng.choices(list(table), weights=list(table.values()))[0]


def make_items(rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    """1-3 distinct products; drawn again until the total is at most 500 EUR."""
    while True:
        products: list[tuple[str, str, int, int]] = []
        for _ in range(rng.randint(1, 3)):
            left = [p for p in CATALOG if p not in products]
            products.append(rng.choices(left, weights=[p[3] for p in left])[0])
        lines = [(sku, name, weighted(rng, QUANTITIES), price) for sku, name, price, _ in products]
        total = sum(qty * price for _, _, qty, price in lines)
        if total <= MAX_ORDER_CENTS:  # every unit price is >= 5 EUR, so total >= 5
            items = [
                {"sku": sku, "name": name, "qty": qty, "price": money(price)}
                for sku, name, qty, price in lines
            ]
            return items, total


def generate(rng: random.Random) -> list[dict[str, Any]]:
    customers = [
        {"id": f"cus-{n:04d}", "name": name, "tier": weighted(rng, TIERS)}
        for n, name in enumerate(NAMES, start=1)
    ]
    open_orders: list[dict[str, Any]] = []  # placed, neither shipped nor cancelled yet
    placed = 0
    when = BASE_TIME
    events = []
    for _ in range(COUNT):
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        kind = weighted(rng, EVENT_TYPES)
        if kind in ("OrderShipped", "OrderCancelled", "PaymentFailed") and not open_orders:
            kind = "OrderPlaced"  # nothing to ship, cancel or charge yet

        if kind == "OrderPlaced":
            placed += 1
            items, total = make_items(rng)
            order = {
                "order_id": f"ord-{placed:04d}",
                "customer": rng.choice(customers),
                "amount": money(total),
                "currency": CURRENCY,
                "items": items,
            }
            open_orders.append(order)
            detail = order
        elif kind == "InventoryLow":
            sku, name, _, _ = rng.choice(CATALOG)
            detail = {
                "sku": sku,
                "name": name,
                "remaining": rng.randint(0, 9),
                "warehouse": rng.choice(WAREHOUSES),
            }
        else:
            order = rng.choice(open_orders[-40:])  # mostly recent orders
            if kind == "PaymentFailed":
                detail = {
                    "order_id": order["order_id"],
                    "customer": order["customer"],
                    "amount": order["amount"],
                    "reason": rng.choice(PAYMENT_FAILURES),
                }
            else:
                open_orders.remove(order)
                detail = order

        events.append(
            {
                "version": "0",
                "id": event_id,
                "detail-type": kind,
                "source": SOURCES.get(kind, "shop.orders"),
                "account": ACCOUNT,
                "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": [],
                "detail": detail,
            }
        )
        when += timedelta(milliseconds=rng.randint(100, 3000))
    return events


def main() -> None:
    events = generate(random.Random(SEED))
    with OUT.open("w", encoding="utf-8", newline="\n") as f:
        for event in events:
            f.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {len(events)} events to {OUT}")


if __name__ == "__main__":
    main()
