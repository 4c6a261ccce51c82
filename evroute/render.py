"""Drawing results for people: stats tables, validation reports, progress."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from evroute.config import Issue
from evroute.pipeline import Progress as ProgressHook
from evroute.stats import RunStats

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow"}


class StatusConsole(Console):
    """Where a run talks to its user: when nobody listens any more (stderr closed or
    full), it falls silent instead of ending the run, whose events matter more."""

    def on_broken_pipe(self) -> None:
        self.quiet = True

    def print(self, *objects: Any, **options: Any) -> None:
        try:
            super().print(*objects, **options)
        except OSError:
            self.quiet = True


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def render_issues(console: Console, issues: list[Issue]) -> None:
    for issue in issues:
        # Issue.format() is the one spelling of the line; only the severity gets a colour
        line = Text(issue.format())
        start = len(f"{issue.file}:{issue.line}:{issue.column}: ")
        line.stylize(SEVERITY_STYLE[issue.severity], start, start + len(issue.severity))
        console.print(line, soft_wrap=True, highlight=False)


def render_validation_summary(console: Console, file: str, issues: list[Issue]) -> None:
    errors = sum(1 for issue in issues if issue.severity == "error")
    warnings = len(issues) - errors
    verdict = "[bold red]invalid[/]" if errors else "[green]valid[/]"
    details = ", ".join(
        part
        for part in (
            plural(errors, "error") if errors else "",
            plural(warnings, "warning") if warnings else "",
        )
        if part
    )
    console.print(
        f"{escape(file)}: {verdict}" + (f" ({details})" if details else ""),
        soft_wrap=True,
        highlight=False,
        emoji=False,
    )


def render_stats(console: Console, stats: RunStats) -> None:
    total = stats.total
    elapsed = stats.elapsed
    rate = total.events / elapsed if elapsed > 0 else 0.0
    malformed = f", {plural(total.malformed, 'malformed line')}" if total.malformed else ""
    console.print(
        f"[bold]{plural(total.events, 'event')}[/]{malformed} from "
        f"{plural(len(stats.inputs), 'input')} in {elapsed:.2f} s ({rate:,.0f} events/s); "
        f"{stats.unmatched:,} unmatched",
        highlight=False,
    )
    routes = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    routes.add_column("route")
    routes.add_column("matched", justify="right")
    routes.add_column("errors", justify="right")
    for name, route in stats.routes.items():
        routes.add_row(
            escape(name),
            f"{route.matched:,}",
            f"[red]{route.errors:,}[/]" if route.errors else "0",
        )
    consumers = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    consumers.add_column("consumer")
    consumers.add_column("state")
    for column in ("enqueued", "delivered", "dropped", "dead-lettered"):
        consumers.add_column(column, justify="right")
    for name, consumer in stats.consumers.items():
        state_style = "red" if consumer.state in ("failed", "abandoned") else ""
        consumers.add_row(
            escape(name),
            f"[{state_style}]{consumer.state}[/]" if state_style else consumer.state,
            f"{consumer.enqueued:,}",
            f"{consumer.delivered:,}",
            f"[yellow]{consumer.dropped:,}[/]" if consumer.dropped else "0",
            f"[red]{consumer.dead_lettered:,}[/]" if consumer.dead_lettered else "0",
        )
    console.print(routes)
    console.print(consumers)


def render_dead_letter_summary(
    console: Console, counts: Counter[str], path: str | None, written: bool = True
) -> None:
    if not counts:
        return
    parts = ", ".join(f"{count:,} {reason}" for reason, count in sorted(counts.items()))
    if path is None:
        where = "counted only: set dead_letter to keep them"
    elif written:
        where = f"written to {escape(path)}"
    else:
        where = f"NOT written to {escape(path)}: see the error below"
    console.print(f"[yellow]dead letters[/]: {parts} ({where})", highlight=False, soft_wrap=True)


class ProgressBar(ProgressHook):
    """A Rich progress bar over the input bytes, on stderr."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("replaying"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("replay", total=None)

    def start(self, total_bytes: int | None) -> None:
        self.progress.update(self.task, total=total_bytes)
        self.progress.start()

    def update(self, done_bytes: int) -> None:
        self.progress.update(self.task, completed=done_bytes)

    def stop(self) -> None:
        self.progress.stop()
