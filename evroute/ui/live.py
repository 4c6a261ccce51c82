"""The live view of a run (`--stats live`): per route its rate with a sparkline, per
consumer its queue, spill, restarts and state, redrawn a few times a second."""

from __future__ import annotations

import threading
import time
from collections import deque

from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from evroute.config.model import Config
from evroute.core.stats import RunStats
from evroute.ui.render import input_table

REFRESH_S = 0.25
HISTORY = 24  # samples a sparkline shows: six seconds at REFRESH_S
BARS = "▁▂▃▄▅▆▇█"
STATE_STYLES = {"failed": "red", "abandoned": "red", "restarting": "yellow", "closed": "dim"}


def sparkline(values: deque[float]) -> str:
    """The values as bars, scaled to the largest (blank when all are 0)."""
    top = max(values, default=0.0)
    if top <= 0:
        return " " * len(values)
    return "".join(
        BARS[min(int(value / top * (len(BARS) - 1) + 0.5), len(BARS) - 1)] for value in values
    )


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


class LiveView:
    """Rates come from the difference between two looks at the counters."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._last: dict[str, int] = {}
        self._last_time: float | None = None
        self._rates: dict[str, deque[float]] = {}
        self._events_rate: deque[float] = deque([0.0], maxlen=HISTORY)
        self._last_events = 0

    def sample(self, stats: RunStats) -> None:
        """Take the counters' change since the last sample as the current rates."""
        now = time.monotonic()
        elapsed = None if self._last_time is None else now - self._last_time
        events = stats.total.events
        for name, route in list(stats.routes.items()):
            history = self._rates.setdefault(name, deque(maxlen=HISTORY))
            if elapsed:
                history.append((route.matched - self._last.get(name, 0)) / elapsed)
            self._last[name] = route.matched
        if elapsed:
            self._events_rate.append((events - self._last_events) / elapsed)
        self._last_events = events
        self._last_time = now

    def render(self, stats: RunStats) -> RenderableType:
        total = stats.total
        header = Text.assemble(
            (f"{total.events:,} events", "bold"),
            f" in {stats.elapsed:.1f} s, now {self._events_rate[-1]:,.0f}/s  ",
            (sparkline(self._events_rate).ljust(HISTORY), "cyan"),
            f"  {total.malformed:,} malformed, {stats.unmatched:,} unmatched",
        )
        routes = table(
            ("route", "left"),
            ("events/s", "right"),
            ("last 6 s", "left"),
            ("matched", "right"),
            ("errors", "right"),
        )
        for name, route in list(stats.routes.items()):
            history = self._rates.get(name) or deque([0.0])
            routes.add_row(
                escape(name),
                f"{history[-1]:,.0f}",
                Text(sparkline(history).ljust(HISTORY), style="cyan"),
                f"{route.matched:,}",
                Text(f"{route.errors:,}", style="red" if route.errors else ""),
            )
        consumers = table(
            ("consumer", "left"),
            ("state", "left"),
            ("queue", "right"),
            ("spilled", "right"),
            ("restarts", "right"),
            ("delivered", "right"),
            ("dead-lettered", "right"),
        )
        for name, consumer in list(stats.consumers.items()):
            settings = self.config.consumers.get(name)
            capacity = settings.queue.buffer if settings is not None else 0
            fill = f"{consumer.queued:,}"
            if capacity:
                fill += f" ({min(consumer.queued / capacity, 9.99):.0%})"
            consumers.add_row(
                escape(name),
                Text(consumer.state, style=STATE_STYLES.get(consumer.state, "")),
                fill,
                size_text(consumer.spill_bytes) if consumer.spill_bytes else "",
                Text(f"{consumer.restarts:,}", style="yellow" if consumer.restarts else ""),
                f"{consumer.delivered:,}",
                Text(f"{consumer.dead_lettered:,}", style="red" if consumer.dead_lettered else ""),
            )
        inputs = input_table(stats)
        return (
            Group(header, routes, consumers)
            if inputs is None
            else Group(header, inputs, routes, consumers)
        )


def table(*columns: tuple[str, JustifyMethod]) -> Table:
    """An empty table of the view, with these (heading, justification) columns."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    for heading, justify in columns:
        table.add_column(heading, justify=justify)
    return table


class LiveDisplay:
    """The view on a console while the run goes on; its last frame stays."""

    def __init__(self, console: Console, config: Config) -> None:
        self.view = LiveView(config)
        self._live = Live(console=console, auto_refresh=False, transient=False)
        self._lock = threading.Lock()
        self._stats: RunStats | None = None
        self._stopped = False

    def start(self) -> None:
        self._live.start()

    def update(self, stats: RunStats) -> None:
        """A watcher of the run: called every REFRESH_S with its stats."""
        with self._lock:
            self._stats = stats
            self.view.sample(stats)
            self._live.update(self.view.render(stats), refresh=True)

    def stop(self, stats: RunStats | None = None) -> None:
        """The final frame, with the final counts (once; later calls do nothing)."""
        with self._lock:
            stats = stats or self._stats
            if self._stopped:
                return
            self._stopped = True
            if stats is not None:
                self.view.sample(stats)
                self._live.update(self.view.render(stats), refresh=True)
            self._live.stop()
