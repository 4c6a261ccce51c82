"""Record the live view of a real run as an SVG for the README (docs/live-view.svg).

Replays samples/orders.jsonl through samples/routes.yaml at 400 events a second and
keeps the view as it stands two seconds in.

    .venv/bin/python docs/record_live_view.py
"""

from __future__ import annotations

import threading
from pathlib import Path

from rich.console import Console

from evroute.core.stats import RunStats
from evroute.engine import pipeline
from evroute.loading import load_config
from evroute.sources.pacing import RatePacer
from evroute.ui.live import REFRESH_S, LiveView

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 2.0


def main() -> None:
    config = load_config(ROOT / "samples" / "routes.yaml")
    view = LiveView(config)
    console = Console(record=True, width=100, force_terminal=True)
    frame: list[RunStats] = []
    taken = threading.Event()
    samples = 0

    def watch(stats: RunStats) -> None:
        nonlocal samples
        view.sample(stats)
        samples += 1
        if samples * REFRESH_S >= SECONDS and not taken.is_set():
            console.print(view.render(stats))
            taken.set()
        frame.append(stats)

    options = pipeline.RunOptions(
        inputs=[str(ROOT / "samples" / "orders.jsonl")],
        pacer=RatePacer(400),
        watchers=[(REFRESH_S, watch)],
    )
    pipeline.run(config, options)
    path = ROOT / "docs" / "live-view.svg"
    console.save_svg(str(path), title="evroute run --stats live")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
