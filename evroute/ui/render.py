"""Drawing results for people: stats, reports, explanations, graphs, the audit, progress."""

from __future__ import annotations

import io
import re
import textwrap
from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
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
from rich.tree import Tree

from evroute import expr
from evroute.config.checker import Issue
from evroute.config.model import UNMATCHED_DEAD_LETTER, UNMATCHED_DROP
from evroute.core.stats import Progress as ProgressHook
from evroute.core.stats import RunStats
from evroute.core.wording import plural
from evroute.expr import Explanation
from evroute.tools import explain, routing_tests
from evroute.tools.graph import ConsumerNode, RouteNode, Topology

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


def input_table(stats: RunStats) -> Table | None:
    """The inputs that count acks (NATS): pulled, acked, redelivered and pending each;
    None when no input does."""
    counting = [(name, s) for name, s in list(stats.inputs.items()) if s.pulled is not None]
    if not counting:
        return None
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("input")
    for column in ("events", "pulled", "acked", "redelivered", "pending"):
        table.add_column(column, justify="right")
    for name, counts in counting:
        table.add_row(
            escape(name),
            f"{counts.events:,}",
            f"{counts.pulled or 0:,}",
            f"{counts.acked or 0:,}",
            Text(f"{counts.redelivered or 0:,}", style="yellow" if counts.redelivered else ""),
            f"{counts.pending or 0:,}",
        )
    return table


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
    inputs = input_table(stats)
    if inputs is not None:
        console.print(inputs)
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


# -- evroute explain ---------------------------------------------------------------------

# A value longer than this is cut: the tree is for reading; --format json has it whole.
EXPLAIN_VALUE_CHARS = 60
EXPLAIN_OUTPUT_CHARS = 200
COMPARATORS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
ROUTE_STATUS = {
    explain.MATCHED: ("MATCHED", "bold green"),
    explain.NO_MATCH: ("no match", "dim"),
    explain.FILTER_ERROR: ("filter_error", "bold red"),
}


def compact(value: Any, limit: int = EXPLAIN_VALUE_CHARS) -> str:
    """`value` as compact JSON, cut to `limit` characters."""
    return cut(_text(explain.dumps(value)), limit)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(text: str) -> str:
    """`text` as it can be written: a lone surrogate (from a literal `"\ud800"`) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_path(node: Explanation) -> bool:
    """A field or fields joined by dots: one value, nothing inside worth a line."""
    if node.kind in ("field", "current"):
        return True
    return node.kind == "subexpression" and all(map(_is_path, node.children))


def _is_constant(node: Explanation) -> bool:
    """A literal, or a list or object of literals: its value is its text."""
    if node.kind == "literal":
        return True
    return node.kind in ("multi_select_list", "multi_select_hash") and all(
        map(_is_constant, node.children)
    )


def _comparison(node: Explanation) -> str | None:
    """`42 > 100 -> false` for a comparison: each side's value, then the result."""
    if node.kind != "comparator" or len(node.children) != 2 or not node.values:
        return None
    left, right = node.children
    if not len(left.values) == len(right.values) == len(node.values):
        return None
    try:
        operator = COMPARATORS[expr.parse(node.expression)["value"]]
    except (expr.ExpressionSyntaxError, KeyError):
        return None
    parts = [
        f"{compact(a)} {operator} {compact(b)} -> {compact(result)}"
        for a, b, result in zip(left.values, right.values, node.values, strict=True)
    ]
    return cut("; ".join(parts), EXPLAIN_VALUE_CHARS * 2)


def _node_label(node: Explanation, failed: bool, prefix: str = "") -> Text:
    label = Text(prefix, style="bold") if prefix else Text()
    label.append(_text(node.expression), style="cyan")
    label.append("  ")
    comparison = _comparison(node)
    if comparison is not None:
        label.append(comparison)
    elif node.kind == "expref":
        label.append("(applied to each element)", style="dim")
    elif not node.values:
        label.append("(no value)" if failed else "(not evaluated)", style="dim")
    elif len(node.values) == 1:
        label.append(compact(node.value))
    else:
        label.append("each: ", style="dim")
        label.append(cut(", ".join(map(compact, node.values)), EXPLAIN_VALUE_CHARS * 2))
    return label


def _add_node(tree: Tree, node: Explanation, failed: bool, prefix: str = "") -> None:
    branch = tree.add(_node_label(node, failed, prefix))
    if _is_path(node) or _is_constant(node) or not (node.values or failed):
        return  # nothing inside a part that was skipped was evaluated either
    inline = _comparison(node) is not None
    for child in node.children:
        # constants read as their text, and a comparison's sides are in its own line
        if _is_constant(child) or (inline and _is_path(child)):
            continue
        _add_node(branch, child, failed)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@-]+")


def pattern_path(path: tuple[str, ...]) -> str:
    """A pattern's field path, its keys joined by dots; a key that is not plain (a dot
    in it, a space, empty) is written as a JSON string."""
    keys = (key if _PLAIN_KEY.fullmatch(key) else _text(explain.dumps(key)) for key in path)
    return ".".join(keys) or "(the event)"


def _add_pattern(tree: Tree, verdict: explain.PatternVerdict) -> None:
    """The pattern, then a line for each field it tests: matched or failed, the event's
    value there (or `missing`), and what the pattern wanted."""
    label = Text("pattern ", style="bold")
    label.append(compact(verdict.source), style="cyan")
    branch = tree.add(label)
    for check in verdict.checks:
        line = Text(pattern_path(check.path), style="cyan")
        line.append("  ")
        if check.matched:
            line.append("matched", style="green")
        else:
            line.append("failed", style="bold red")
        line.append(": ")
        if check.present:
            line.append(compact(check.actual))
        else:
            line.append("missing", style="dim")
        line.append(", wanted ", style="dim")
        line.append(compact(check.expected, EXPLAIN_VALUE_CHARS * 2))
        branch.add(line)


def _route_tree(tree: Tree, verdict: explain.RouteVerdict) -> None:
    word, style = ROUTE_STATUS[verdict.status]
    label = Text(verdict.route, style="bold")
    label.append("  ")
    label.append(word, style=style)
    if verdict.consumers:
        label.append(" -> " + ", ".join(verdict.consumers))
    if verdict.filter is None and verdict.pattern is None:
        label.append("  (no filter: matches every event)", style="dim")
    branch = tree.add(label)
    if verdict.pattern is not None:
        _add_pattern(branch, verdict.pattern)
    if verdict.filter is not None:
        _add_node(branch, verdict.filter, verdict.error_in == "filter", "filter ")
    if verdict.transform is not None and verdict.status == explain.MATCHED:
        transform = Text("transform ", style="bold")
        transform.append(_text(verdict.transform), style="cyan")
        output = Text("output ", style="bold")
        output.append(compact(verdict.output, EXPLAIN_OUTPUT_CHARS))
        branch.add(transform).add(output)
    if verdict.error is not None:
        error = Text(f"{verdict.error_in} error: ", style="bold red")
        error.append(_text(verdict.error))
        branch.add(error)


def _where_it_goes(verdict: explain.EventVerdict) -> Text:
    text = Text("-> ", style="bold")
    deliveries = [
        name if count == 1 else f"{name} (x{count})" for name, count in verdict.consumers.items()
    ]
    if verdict.unmatched is None:
        text.append("consumers: " + (", ".join(deliveries) or "none"))
        return text
    text.append("no route matched: ", style="yellow")
    if verdict.unmatched == UNMATCHED_DROP:
        text.append("unmatched: drop (counted, not delivered)")
    elif verdict.unmatched == UNMATCHED_DEAD_LETTER:
        text.append("unmatched: dead_letter (dead-lettered as unmatched)")
    else:
        text.append(f"unmatched: {verdict.unmatched} (sent to that consumer)")
    return text


class ResultConsole(Console):
    """stdout for a command's result. When its reader stops reading (`| head`), Rich
    would exit 1; a BrokenPipeError lets the command end as it sees fit instead."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def render_explanation(console: Console, explained: explain.Explained) -> None:
    """One line's explanation: a tree of its routes, or why it holds no event."""
    where = "stdin" if explained.input == "-" else explained.input
    heading = Text(f"line {explained.line}", style="bold")
    heading.append(f" ({where})")
    if isinstance(explained, explain.MalformedLine):
        heading.append("  ")
        heading.append("malformed", style="bold red")
        heading.append(f": {explained.detail}")
        console.print(heading, highlight=False)
        console.print()
        return
    tree = Tree(heading, guide_style="dim")
    for verdict in explained.routes:
        _route_tree(tree, verdict)
    tree.add(_where_it_goes(explained))
    console.print(tree, highlight=False)
    console.print()  # events apart


def _route_label(route: RouteNode) -> Text:
    label = Text.assemble(("route ", "dim"), (route.name, "bold"))
    if route.pattern is not None:
        label.append("\npattern: ", style="dim")
        label.append(route.pattern)
    elif route.filter is None:
        label.append("  (every event)", style="dim")
    else:
        label.append("\nfilter: ", style="dim")
        label.append(route.filter)
    if route.transform is not None:
        label.append("\ntransform: ", style="dim")
        label.append(route.transform)
    return label


def _consumer_label(consumer: ConsumerNode) -> Text:
    label = Text.assemble((consumer.name, "cyan"), "  ", (consumer.kind, "dim"))
    if consumer.target:
        label.append(": ", style="dim")
        label.append(consumer.target)
    return label


def render_graph(console: Console, graph: Topology) -> None:
    """The topology as a tree: the config, its inputs, each route and its consumers."""
    # Text, never markup: a filter such as `[?a]` must print as written
    root = Tree(Text(graph.source, style="bold"))
    for source in graph.inputs:
        node = root.add(Text(source, style="green"))
        for route in graph.routes:
            branch = node.add(_route_label(route))
            for name in route.to:
                branch.add(_consumer_label(graph.consumers[name]))
        unmatched = node.add(Text(graph.unmatched_label, style="yellow"))
        if graph.unmatched_consumer is not None:
            unmatched.add(_consumer_label(graph.consumers[graph.unmatched_consumer]))
    console.print(root, highlight=False)


# -- evroute test ----------------------------------------------------------------------


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"


def _deliveries(values: list[Any]) -> str:
    return f"{len(values)} {'delivery' if len(values) == 1 else 'deliveries'}"


def _failure_lines(case: routing_tests.CaseResult) -> list[Text]:
    """What a failed case expected and got: routes, then each consumer's deliveries."""
    lines: list[Text] = []
    if case.missing or case.unexpected:
        lines.append(Text.assemble(("routes expected: ", "bold"), _names(case.expected)))
        lines.append(Text.assemble(("routes matched:  ", "bold"), _names(case.matched)))
        if case.missing:
            lines.append(Text.assemble(("  missing: ", "red"), ", ".join(case.missing)))
        if case.unexpected:
            lines.append(Text.assemble(("  unexpected: ", "red"), ", ".join(case.unexpected)))
    for difference in case.outputs:
        lines.append(
            Text.assemble(
                ("output to ", "bold"),
                (difference.consumer, "bold cyan"),
                f": expected {_deliveries(difference.expected)},"
                f" got {_deliveries(difference.actual)}",
            )
        )
        for word, values in (("expected", difference.expected), ("got", difference.actual)):
            for index, value in enumerate(values, 1):
                line = Text(f"  {word} #{index}: ", style="red" if word == "got" else "green")
                line.append(compact(value, EXPLAIN_OUTPUT_CHARS), style="")
                lines.append(line)
    return lines


def _render_failure(console: Console, case: routing_tests.CaseResult) -> None:
    for line in _failure_lines(case):
        console.print(Padding(line, (0, 0, 0, 4), expand=False), highlight=False)
    if case.verdict is not None:
        console.print(Padding(Text("explanation:", style="bold"), (0, 0, 0, 4), expand=False))
        tree = Tree(_text(case.case.name), guide_style="dim")
        for verdict in case.verdict.routes:
            _route_tree(tree, verdict)
        tree.add(_where_it_goes(case.verdict))
        console.print(Padding(tree, (0, 0, 0, 4), expand=False), highlight=False)


def render_test_report(console: Console, result: routing_tests.SuiteResult) -> None:
    """A line per case, ✓ or ✗; under each failure what differs and the explanation of
    the event for the routes involved; then how many passed and failed."""
    for case in result.cases:
        mark, style = ("✓", "green") if case.passed else ("✗", "bold red")
        line = Text.assemble((mark, style), " ", _text(case.case.name))
        if not case.passed:
            line.append(f"  (line {case.case.line})", style="dim")
        console.print(line, highlight=False)
        if not case.passed:
            _render_failure(console, case)
    console.print()
    counts = Text.assemble(
        (f"{result.passed} passed", "green" if result.passed else ""),
        ", ",
        (f"{result.failed} failed", "bold red" if result.failed else ""),
    )
    console.print(Text(f"{result.config}: ") + counts, highlight=False)


def failure_text(case: routing_tests.CaseResult) -> str:
    """A failed case's report without colour, for JUnit's failure element."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, no_color=True, emoji=False, color_system=None)
    _render_failure(console, case)
    text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
    return textwrap.dedent(text)


OUTCOME_STYLES = {
    "matched": "cyan",
    "delivered": "green",
    "dropped": "yellow",
    "dead-lettered": "red",
    "denied": "bold red",
}


def render_audit(
    console: Console, records: list[dict[str, Any]], title: str, show_event: bool = True
) -> None:
    """Audit records, oldest first, one line each, with a count per outcome under them;
    without the event's id on each when they are all of one event (in the title)."""
    days = {str(record.get("time", ""))[:10] for record in records}
    one_day = len(days) == 1  # then the title has the date, the lines only the time
    console.print(Text(f"{title}, {days.pop()} (UTC)" if one_day else title, style="bold"))
    outcomes: Counter[str] = Counter()
    for record in records:
        outcome = str(record.get("outcome"))
        events = record.get("events")
        outcomes[outcome] += events if isinstance(events, int) else 1
        time = str(record.get("time", ""))
        line = Text.assemble(
            (time[11:] if one_day else time, "dim"),
            "  ",
            (f"{outcome:<13}", OUTCOME_STYLES.get(outcome, "")),
        )
        if show_event or record.get("event") is None:
            event = record.get("event")
            line.append(f"  {event}" if event is not None else f"  ({events} events)", "bold")
        if record.get("input") is not None:
            line.append(f"  {record['input']}:{record.get('line')}")
        for key in ("route", "consumer"):
            if record.get(key):
                line.append(f"  {key} ")
                line.append(str(record[key]), "cyan")
        why = ": ".join(str(record[k]) for k in ("reason", "detail") if record.get(k) is not None)
        if why:
            line.append(f"  {why}", "yellow")
        console.print(line)
    summary = ", ".join(f"{count:,} {name}" for name, count in sorted(outcomes.items()))
    console.print(f"{len(records):,} records: {summary}")
