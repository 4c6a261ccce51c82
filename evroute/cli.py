"""The command line: parse arguments, call the library, render; `main` maps errors to exit codes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.json import JSON
from rich.markup import escape
from rich.text import Text

from evroute import __version__, expr
from evroute.config.checker import Issue
from evroute.config.model import Config
from evroute.config.units import parse_duration
from evroute.core.stats import RunStats
from evroute.engine import pipeline
from evroute.engine.router import Tap
from evroute.errors import ConfigError, EvrouteError, ExitCode
from evroute.loading import check_config, load_config
from evroute.loading.schema import config_schema
from evroute.processes import STDERR
from evroute.shaping.publish_policy import PublishPolicies
from evroute.sources.archive_replay import archive_opener
from evroute.sources.pacing import Pacer, RatePacer, SpeedPacer
from evroute.sources.redrive import REASONS, Selection, dead_letter_opener
from evroute.storage import crypto
from evroute.storage.archive_format import Window, parse_bound
from evroute.storage.audit_log import AuditQuery, read_records
from evroute.storage.crypto import Key
from evroute.tools import graph, routing_tests
from evroute.tools.explain import as_json as explain_json
from evroute.tools.explain import dumps as explain_dumps
from evroute.tools.explain import explain_input
from evroute.tools.samples import check_samples
from evroute.ui import render
from evroute.ui.live import REFRESH_S, LiveDisplay

app = typer.Typer(
    name="evroute",
    help="Route JSON lines from producers to consumers, as a YAML config says.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def stderr_console() -> Console:
    # emoji off: a message quoting ":fire:" from a config must print as written
    return render.StatusConsole(stderr=True, emoji=False)


def stdout_console() -> Console:
    return Console(emoji=False)


class AuditOutcome(str, Enum):  # audit_log.OUTCOMES, which a test holds it to
    matched = "matched"
    delivered = "delivered"
    dropped = "dropped"
    dead_lettered = "dead-lettered"
    denied = "denied"


class StatsMode(str, Enum):
    auto = "auto"
    live = "live"
    final = "final"
    json = "json"
    off = "off"


class ReportFormat(str, Enum):
    text = "text"
    json = "json"


class GraphFormat(str, Enum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"


ConfigArgument = Annotated[
    Path, typer.Argument(help="The routing config (YAML).", show_default=False)
]
StatsOption = Annotated[
    StatsMode,
    typer.Option(
        "--stats",
        help="auto: live on a terminal, else final; live: a view redrawn as the run"
        " goes; final: a table at the end; json: one JSON line; off: nothing. All on stderr.",
    ),
]
StatsJsonOption = Annotated[
    Path | None,
    typer.Option(
        "--stats-json", help="Write the final stats as JSON to this file.", show_default=False
    ),
]
StatsEveryOption = Annotated[
    str | None,
    typer.Option(
        "--stats-every",
        metavar="DURATION",
        help="Also append the stats so far to the --stats-json file every DURATION"
        " (30s, 5m): a JSON line each time, the final stats last.",
        show_default=False,
    ),
]


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"evroute {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Route JSON lines from producers to consumers, as a YAML config says."""


@app.command()
def validate(
    configs: Annotated[list[Path], typer.Argument(help="Configs to check.", show_default=False)],
    format: Annotated[ReportFormat, typer.Option("--format", help="text or json.")] = (
        ReportFormat.text
    ),
    no_env: Annotated[
        bool,
        typer.Option(
            "--no-env", help="Unset ${VAR} are warnings, not errors (CI without secrets)."
        ),
    ] = False,
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            metavar="FILE",
            help="Sample events (JSON lines, .gz too): warn about routes none of them"
            " matches and consumers none of them reaches.",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings are errors: the check fails on them.")
    ] = False,
) -> None:
    """Check configs and report every problem, not just the first.

    Example: evroute validate routes.yaml --events samples/orders.jsonl --strict
    """
    all_issues: list[Issue] = []
    console = stdout_console()
    for path in configs:
        config, issues = check_config(path, no_env=no_env)
        if config is not None and events is not None:
            issues = [*issues, *check_samples(config, events, str(path))]
        if strict:
            issues = [dataclasses.replace(issue, severity="error") for issue in issues]
        all_issues.extend(issues)
        if format is ReportFormat.text:
            render.render_issues(console, issues)
            render.render_validation_summary(console, str(path), issues)
    errors = sum(1 for issue in all_issues if issue.severity == "error")
    if format is ReportFormat.json:
        report = {
            "valid": errors == 0,
            "errors": errors,
            "warnings": len(all_issues) - errors,
            "issues": [issue.as_json() for issue in all_issues],
        }
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    raise typer.Exit(ExitCode.FAILED if errors else ExitCode.OK)


@app.command()
def explain(
    config: ConfigArgument,
    event_file: Annotated[
        str,
        typer.Argument(
            help="The events, one JSON object a line; - is stdin; .gz is read transparently.",
        ),
    ] = "-",
    format: Annotated[
        ReportFormat, typer.Option("--format", help="text (a tree) or json (JSON lines).")
    ] = ReportFormat.text,
    routes: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            metavar="NAME",
            help="Show only this route (repeatable); where the event goes still counts all.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """For each event and each route: matched or not, and why.

    Each filter is drawn as a tree of its parts with the value each part produced,
    then the transform's output and the consumers reached; malformed lines say why.

    \b
    Example:
      evroute explain samples/routes.yaml samples/orders.jsonl --route big-orders
      head -1 orders.jsonl | evroute explain routes.yaml --format json
    """
    loaded = load_config(config)
    known = [route.name for route in loaded.routes]
    unknown = [name for name in routes or [] if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"{config} has no route {', '.join(map(repr, unknown))};"
            f" its routes are {', '.join(known) or 'none'}",
            param_hint="--route",
        )
    console = render.ResultConsole(emoji=False)
    try:
        for explained in explain_input(loaded, event_file, routes or None):
            if format is ReportFormat.json:
                sys.stdout.write(explain_dumps(explain_json(explained)) + "\n")
                sys.stdout.flush()  # one line typed, one line explained
            else:
                render.render_explanation(console, explained)
    except BrokenPipeError:
        # `| head`: the reader has what it wanted. Caught here, for Click would make
        # it exit 1; stdout goes to /dev/null so that the final flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(ExitCode.OK) from None
    except OSError as error:
        raise EvrouteError(f"cannot write to stdout: {error.strerror or error}") from None
    raise typer.Exit(ExitCode.OK)


@app.command("test")
def test_command(
    config: ConfigArgument,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="PATH",
            help="Also write the results as JUnit XML to PATH, for CI.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the routing tests of the config's tests: section.

    Each test routes its event as run would, and checks exactly which routes match and,
    optionally, what consumers get. A failure shows what differs and the explanation of
    the event. Exit 0 when every test passes; 1 when one fails, the config is invalid or
    it has no tests.

    \b
    Example:
      evroute test samples/routes.yaml
      evroute test routes.yaml --junit reports/routing.xml
    """
    loaded = load_config(config)
    if not loaded.tests:
        raise EvrouteError(
            f"no tests in {config}: add a tests: section"
            " (each test: name, event, routes and, optionally, outputs)"
        )
    result = routing_tests.run_tests(loaded, config)
    try:
        render.render_test_report(render.ResultConsole(emoji=False), result)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if junit is not None:
        try:
            routing_tests.write_junit(result, junit, render.failure_text)
        except OSError as error:
            raise EvrouteError(f"cannot write --junit {junit}: {error.strerror or error}") from None
    raise typer.Exit(ExitCode.FAILED if result.failed else ExitCode.OK)


@app.command("graph")
def graph_command(
    config: ConfigArgument,
    format: Annotated[
        GraphFormat,
        typer.Option("--format", help="text (a tree), mermaid (a flowchart) or dot (Graphviz)."),
    ] = GraphFormat.text,
) -> None:
    """Show the topology: inputs -> routes (filter, transform) -> consumers.

    Also where unmatched events go. An invalid config gets the errors of validate.

    \b
    Example:
      evroute graph samples/routes.yaml
      evroute graph routes.yaml --format mermaid > routes.mmd
      evroute graph routes.yaml --format dot | dot -Tsvg > routes.svg
    """
    topology = graph.topology(load_config(config), source=str(config))
    if format is GraphFormat.text:
        render.render_graph(stdout_console(), topology)
    else:
        render_text = graph.to_mermaid if format is GraphFormat.mermaid else graph.to_dot
        sys.stdout.write(render_text(topology))
    raise typer.Exit(ExitCode.OK)


class AuditFormat(str, Enum):
    text = "text"
    json = "json"


@app.command("audit")
def audit_command(
    log: Annotated[Path, typer.Argument(help="The audit log (the config's audit: path).")],
    event: Annotated[
        str | None, typer.Option("--event", help="Trace one event: its id, or sha256:... hash.")
    ] = None,
    route: Annotated[str | None, typer.Option("--route", help="Only this route's records.")] = None,
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="Only this consumer's records.")
    ] = None,
    outcome: Annotated[
        AuditOutcome | None,
        typer.Option("--outcome", help="Only this outcome."),
    ] = None,
    format: Annotated[
        AuditFormat,
        typer.Option("--format", help="text (a table) or json (the records as JSON lines)."),
    ] = AuditFormat.text,
    key_env: Annotated[
        str, typer.Option("--key-env", help="The variable holding the key of a sealed log.")
    ] = "EVROUTE_KEY",
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="A file holding the key of a sealed log.")
    ] = None,
) -> None:
    """Show what became of events: matched, delivered, dropped, dead-lettered, denied.

    Reads the log and its rotated files (LOG.1, LOG.2...), oldest first; a sealed log
    (encrypt:) needs the key. Exits 1 when no record matches.

    \b
    Example:
      evroute audit out/audit.jsonl --event 7f3c-0001
      evroute audit out/audit.jsonl --consumer notifier --outcome dead-lettered
      evroute audit out/audit.jsonl --route big-orders --format json | jq .event
    """

    query = AuditQuery(event, route, consumer, None if outcome is None else outcome.value)
    # a plain log needs no key; a sealed one without a key is refused with how to give it
    key = Key.load(key_env, key_file) if key_file or os.environ.get(key_env) else None
    records = read_records(log, query, key)
    if format is AuditFormat.json:
        found = 0
        for found, (_, _, record) in enumerate(records, 1):  # noqa: B007
            sys.stdout.buffer.write(orjson.dumps(record) + b"\n")
    else:
        selected = [record for _, _, record in records]
        found = len(selected)
        if found:
            title = f"event {event}" if event is not None else f"audit log {log}"
            render.render_audit(stdout_console(), selected, title, show_event=event is None)
    if not found:
        report_error(f"{log}: no audit record matches")
        raise typer.Exit(ExitCode.FAILED)
    raise typer.Exit(ExitCode.OK)


@app.command()
def schema() -> None:
    """Print the config's JSON Schema (draft 2020-12), for editors.

    Save it beside your configs, and start each config with this line to point
    yaml-language-server at it: # yaml-language-server: $schema=./evroute.schema.json

    \b
    Example:
      evroute schema > evroute.schema.json
    """
    sys.stdout.write(orjson.dumps(config_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    raise typer.Exit(ExitCode.OK)


@app.command()
def keygen() -> None:
    """Print a new key for the config's encrypt: section (32 random bytes, base64).

    Keep it secret, and keep a copy: without it, what evroute encrypted cannot
    be read.

    \b
    Example:
      export EVROUTE_KEY=$(evroute keygen)
      (umask 077 && evroute keygen > evroute.key)   # readable by you alone from the start
    """
    sys.stdout.write(crypto.Key.generate() + "\n")
    raise typer.Exit(ExitCode.OK)


@app.command()
def decrypt(
    file: Annotated[Path, typer.Argument(help="A file evroute encrypted.", show_default=False)],
    key_env: Annotated[
        str,
        typer.Option("--key-env", metavar="NAME", help="The variable holding the key."),
    ] = crypto.DEFAULT_KEY_ENV,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            metavar="PATH",
            help="A file holding the key (instead of --key-env).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the plain lines of a file evroute encrypted.

    Dead letters, audit logs, spill segments, encrypt: true files; archive
    segments come out decompressed. A changed record is reported with its
    number and byte offset after the records before it are printed: exit 1.

    \b
    Example:
      evroute decrypt out/dead.jsonl | jq .
      evroute decrypt archive/orders/segment-20261128T090000123Z-4242-1.jsonl.gz \\
        --key-file evroute.key
    """
    key = crypto.Key.load(key_env, key_file)
    out = sys.stdout.buffer
    for plain in crypto.decrypted(file, key):
        out.write(plain)
        out.flush()  # what came before a bad record is out before it is reported
    raise typer.Exit(ExitCode.OK)


import_app = typer.Typer(
    help="""Write a routing config from another router's rules.

    \b
    Example:
      evroute import eventbridge rules.json --targets targets/ -o routes.yaml
    """,
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")


@import_app.command("eventbridge")
def import_eventbridge(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="The JSON of `aws events list-rules`; - is stdin.",
            show_default=False,
        ),
    ],
    targets: Annotated[
        list[Path] | None,
        typer.Option(
            "--targets",
            metavar="PATH",
            help="The JSON of `aws events list-targets-by-rule`, in a file named <rule>.json"
            ' (or holding "RuleName"), or a folder of them (repeatable).',
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the config here, not to stdout.",
            show_default=False,
        ),
    ] = None,
    include_disabled: Annotated[
        bool,
        typer.Option("--include-disabled", help="Import DISABLED rules too (skipped otherwise)."),
    ] = False,
) -> None:
    """Write a routing config from EventBridge rules (aws events list-rules).

    A route per rule, with its event pattern as pattern:, and a file consumer
    out/<target-id>.jsonl per target, recording what the target would receive.
    Scheduled rules are skipped, and said on stderr, as is any target input that
    could not be mapped to a transform.

    \b
    Example:
      aws events list-rules > rules.json
      aws events list-targets-by-rule --rule orders > targets/orders.json
      evroute import eventbridge rules.json --targets targets/ -o routes.yaml
    """

    from evroute.tools.importers import eventbridge  # 12 ms that no other command needs

    imported = eventbridge.import_files(file, targets or [], output, include_disabled)
    console = stderr_console()
    for warning in imported.warnings:
        console.print(f"[yellow]warning[/]: {escape(warning)}", highlight=False, soft_wrap=True)
    if output is None:
        sys.stdout.write(imported.text)
    raise typer.Exit(ExitCode.OK)


@app.command()
def run(
    config: ConfigArgument,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Input files; - is stdin; .gz is read transparently. Default: stdin.",
            show_default=False,
        ),
    ] = None,
    stats: StatsOption = StatsMode.auto,
    stats_json: StatsJsonOption = None,
    stats_every: StatsEveryOption = None,
    taps: Annotated[
        list[str] | None,
        typer.Option(
            "--tap",
            metavar="ROUTE",
            help="Also show on stderr each event this route matches, as its consumers get"
            " it (repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Route events from the INPUT files, else the config's inputs:, else stdin.

    Example: tail -f app.jsonl | evroute run routes.yaml --tap big-orders
    """
    interval = stats_interval(stats_every, stats_json)
    raise typer.Exit(
        route_events(
            config, inputs or [], stats, stats_json, None, False, None, interval, taps or []
        )
    )


@app.command()
def replay(
    config: ConfigArgument,
    files: Annotated[
        list[str] | None,
        typer.Argument(help="Recorded event files; - is stdin.", show_default=False),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed",
            help="Replay the gaps between the events' times, X times faster.",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="N events a second.", show_default=False),
    ] = None,
    time_field: Annotated[
        str, typer.Option("--time-field", help="JMESPath to each event's time (RFC 3339).")
    ] = "time",
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="A progress bar on stderr; default: when stderr is a terminal.",
            show_default=False,
        ),
    ] = None,
    stats: StatsOption = StatsMode.auto,
    stats_json: StatsJsonOption = None,
    stats_every: StatsEveryOption = None,
    dead_letters: Annotated[
        str | None,
        typer.Option(
            "--dead-letters",
            metavar="FILE",
            help="Redrive: replay the events held by this dead letter file (.gz too),"
            " instead of FILEs.",
            show_default=False,
        ),
    ] = None,
    reasons: Annotated[
        list[str] | None,
        typer.Option(
            "--reason",
            metavar="REASON",
            help="With --dead-letters: only the letters of this reason (repeatable).",
            show_default=False,
        ),
    ] = None,
    routes: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            metavar="NAME",
            help="With --dead-letters: only the letters of this route (repeatable).",
            show_default=False,
        ),
    ] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            metavar="DIR",
            help="Replay the events an archive consumer wrote to DIR, instead of FILEs.",
            show_default=False,
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="TIME",
            help="With --archive: only events from TIME on (RFC 3339, or a date: midnight UTC).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="TIME",
            help="With --archive: only events before TIME (RFC 3339, or a date).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replay recorded events (files, an archive, dead letters) through the routes, paced or not.

    \b
    Example:
      evroute replay routes.yaml monday.jsonl --speed 10
      evroute replay routes.yaml --archive archive/orders --from 2026-11-28
    """
    window = archive_window(files or [], dead_letters, archive, from_, until)
    redrive = redrive_selection(files or [], dead_letters, reasons, routes)
    if speed is not None and rate is not None:
        raise typer.BadParameter("cannot be used with --rate; choose one", param_hint="--speed")
    for value, flag in ((speed, "--speed"), (rate, "--rate")):
        if value is not None and not value > 0:
            raise typer.BadParameter("must be more than 0", param_hint=flag)
    pacer: Pacer | None = None
    if rate is not None:
        pacer = RatePacer(rate)
    elif speed is not None:
        try:
            pacer = SpeedPacer(speed, expr.compile(time_field))
        except expr.ExpressionSyntaxError as error:
            raise typer.BadParameter(
                f"invalid JMESPath: {error}", param_hint="--time-field"
            ) from None
    show_progress = stderr_console().is_terminal if progress is None else progress
    inputs = (files or []) if dead_letters is None else [dead_letters]
    interval = stats_interval(stats_every, stats_json)
    replayed = None if archive is None or window is None else (archive, window)
    raise typer.Exit(
        route_events(
            config,
            inputs,
            stats,
            stats_json,
            pacer,
            show_progress,
            redrive,
            interval,
            archive=replayed,
        )
    )


def archive_window(
    files: list[str],
    dead_letters: str | None,
    archive: str | None,
    from_: str | None,
    until: str | None,
) -> Window | None:
    """The time window of `--archive`; None without it. Usage errors say why."""
    if archive is None:
        for given, flag in ((from_, "--from"), (until, "--until")):
            if given is not None:
                raise typer.BadParameter("only goes with --archive DIR", param_hint=flag)
        return None
    if files:
        raise typer.BadParameter(
            f"replays an archive instead of FILE inputs; drop {' '.join(files)} or --archive",
            param_hint="--archive",
        )
    if dead_letters is not None:
        raise typer.BadParameter(
            "cannot be used with --dead-letters; replay one or the other",
            param_hint="--archive",
        )
    bounds = []
    for given, flag in ((from_, "--from"), (until, "--until")):
        try:
            bounds.append(None if given is None else parse_bound(given))
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint=flag) from None
    start, end = bounds
    if start is not None and end is not None and not start < end:
        raise typer.BadParameter(
            f"{until} is not after --from {from_}: the window holds nothing",
            param_hint="--until",
        )
    return Window(start, end)


def stats_interval(stats_every: str | None, stats_json: Path | None) -> float | None:
    """--stats-every in seconds; usage errors say why."""
    if stats_every is None:
        return None
    if stats_json is None:
        raise typer.BadParameter(
            "needs --stats-json PATH, the file the stats are appended to",
            param_hint="--stats-every",
        )
    try:
        seconds = parse_duration(stats_every)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--stats-every") from None
    if not seconds > 0:
        raise typer.BadParameter("must be more than 0", param_hint="--stats-every")
    return seconds


def redrive_selection(
    files: list[str], dead_letters: str | None, reasons: list[str] | None, routes: list[str] | None
) -> Selection | None:
    """The letters `--dead-letters` replays; None without it. Usage errors say why."""
    if dead_letters is None:
        for given, flag in ((reasons, "--reason"), (routes, "--route")):
            if given:
                raise typer.BadParameter("only goes with --dead-letters FILE", param_hint=flag)
        return None
    if files:
        raise typer.BadParameter(
            f"replays a dead letter file instead of FILE inputs; drop {' '.join(files)}"
            " or --dead-letters",
            param_hint="--dead-letters",
        )
    if dead_letters == "-":
        raise typer.BadParameter(
            "needs a file, not stdin: save the dead letters to a file first",
            param_hint="--dead-letters",
        )
    unknown = [reason for reason in reasons or [] if reason not in REASONS]
    if unknown:
        raise typer.BadParameter(
            f"unknown {'reason' if len(unknown) == 1 else 'reasons'}"
            f" {', '.join(map(repr, unknown))}; the reasons are {', '.join(REASONS)}",
            param_hint="--reason",
        )
    return Selection(frozenset(reasons) if reasons else None, frozenset(routes) if routes else None)


def route_events(
    config_path: Path,
    inputs: list[str],
    stats_mode: StatsMode,
    stats_json: Path | None,
    pacer: Pacer | None,
    progress: bool,
    redrive: Selection | None = None,
    stats_every: float | None = None,
    taps: list[str] | None = None,
    archive: tuple[str, Window] | None = None,
) -> int:
    config = load_config(config_path)
    console = stderr_console()
    if stats_mode is StatsMode.auto:
        # the live view on a terminal, unless a replay's progress bar has the screen
        live_view = console.is_terminal and not progress
        stats_mode = StatsMode.live if live_view else StatsMode.final
    live: LiveDisplay | None = None
    if stats_mode is StatsMode.live:
        if not console.is_terminal:  # asked for: drawn all the same (to a log, say)
            console = render.StatusConsole(stderr=True, emoji=False, force_terminal=True)
        live = LiveDisplay(console, config)
        progress = False  # one live display at a time: the view shows the progress
    progress_bar = render.ProgressBar(console) if progress else None

    def warn(message: str) -> None:
        console.print(f"[yellow]evroute[/]: {escape(message)}", highlight=False, soft_wrap=True)

    options = pipeline.RunOptions(inputs=inputs, pacer=pacer, progress=progress_bar, warn=warn)
    if taps:
        names = [route.name for route in config.routes]
        for route in taps:
            if route not in names:
                raise typer.BadParameter(
                    f"no route {route!r} in {config_path}; its routes: {', '.join(names)}",
                    param_hint="--tap",
                )
        options.taps = list(dict.fromkeys(taps))
        options.on_tap = tap_printer(console)
    if stats_every is not None and stats_json is not None:  # after the usage errors: it
        options.watchers.append((stats_every, stats_appender(stats_json, warn)))  # empties
    if redrive is not None:
        if PublishPolicies(config).enforced:
            redrive = dataclasses.replace(redrive, redrive_denied=False)
        options.open_inputs = dead_letter_opener(
            redrive, warn, config.dead_letter, crypto.load_config_key(config)
        )
        known = {route.name for route in config.routes}
        for name in sorted((redrive.routes or set()) - known):
            # letters name the routes of the run that wrote them, which may be renamed
            warn(
                f"--route {name}: {config_path} has no route of that name;"
                " its letters are replayed all the same"
            )
    if archive is not None:
        options.open_inputs = archive_opener(*archive, warn, config)
    if live is not None:
        options.watchers.append((REFRESH_S, live.update))
        live.start()
    try:
        result = pipeline.run(config, options)
        if live is not None:
            live.stop(result.stats)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
        if live is not None:
            live.stop()
    report_run(console, config, result, stats_mode, stats_json, append=stats_every is not None)
    if result.errors:
        return ExitCode.FAILED
    if result.signal is not None:
        return ExitCode.SIGINT if result.signal == 2 else ExitCode.SIGTERM
    return ExitCode.UNDELIVERED if result.undelivered else ExitCode.OK


def tap_printer(console: Console) -> Tap:
    """--tap: each event pretty and coloured on a terminal, else one JSON line (with the
    route, input and line) that jq can read."""
    if console.is_terminal:

        def show(route: str, input_name: str, line: int, payload: bytes) -> None:
            console.print(
                Text.assemble(("tap ", "dim"), (route, "bold cyan"), f" {input_name}:{line}")
            )
            console.print(JSON(payload.decode("utf-8", "replace")))

        return show

    def write(route: str, input_name: str, line: int, payload: bytes) -> None:
        head = orjson.dumps({"tap": route, "input": input_name, "line": line})
        # a stderr that stays full (nobody reads it) falls silent: routing goes on
        STDERR.say(head[:-1] + b',"event":' + payload.strip() + b"}\n")

    return write


def stats_appender(path: Path, warn: Callable[[str], None]) -> Callable[[RunStats], None]:
    """What --stats-every does each time: the stats so far, one JSON line at the end of
    `path`, which the run starts empty."""
    failed: list[str] = []

    def append(stats: RunStats) -> None:
        try:
            with path.open("ab") as stream:
                stream.write(orjson.dumps(stats.as_json()) + b"\n")
        except OSError as error:
            if not failed:  # said once: the run goes on
                failed.append(error.strerror or str(error))
                warn(f"cannot append to --stats-json {path}: {failed[0]}")

    with contextlib.suppress(OSError):
        path.write_bytes(b"")
    return append


def report_run(
    console: Console,
    config: Config,
    result: pipeline.RunResult,
    stats_mode: StatsMode,
    stats_json: Path | None,
    append: bool = False,
) -> None:
    data = result.stats.as_json()
    if stats_json is not None:
        try:
            with stats_json.open("ab" if append else "wb") as stream:
                stream.write(orjson.dumps(data) + b"\n")
        except OSError as error:
            result.errors.append(f"cannot write --stats-json {stats_json}: {error.strerror}")
    if stats_mode is StatsMode.json:
        try:
            sys.stderr.write(orjson.dumps(data).decode() + "\n")
            sys.stderr.flush()
        except OSError:
            pass  # nobody reads stderr any more; the exit code still tells
    elif stats_mode is StatsMode.final:  # (the live view's last frame stays on screen)
        render.render_stats(console, result.stats)
    if stats_mode is not StatsMode.off:
        dead_letter = str(config.dead_letter) if config.dead_letter else None
        render.render_dead_letter_summary(
            console, result.dead_letters, dead_letter, written=result.dead_letters_written
        )
    for message in result.errors:
        report_error(message, console)


def report_error(message: str, console: Console | None = None) -> None:
    console = console or stderr_console()
    console.print(f"[bold red]error[/]: {escape(message)}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """The console script: exit with the code `program` gives."""
    ensure_standard_streams()
    sys.exit(program(sys.argv[1:] if argv is None else argv))


def ensure_standard_streams() -> None:
    """Give closed stdin, stdout or stderr (`<&-`) /dev/null instead.

    Otherwise the next file evroute opens takes their number and is read or written
    as if it were one of them.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # takes the lowest free number: this one
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115


def program(args: list[str]) -> int:
    """Run the app and turn every outcome into an exit code, here and nowhere else.

    Typer reports usage errors itself (exit 2); commands end with typer.Exit(code);
    the library's errors arrive here as EvrouteError.
    """
    try:
        app(args=args, prog_name="evroute")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else ExitCode.FAILED
    except ConfigError as error:
        render.render_issues(stderr_console(), [i for i in error.issues if isinstance(i, Issue)])
        return ExitCode.FAILED
    except EvrouteError as error:
        report_error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        return ExitCode.SIGINT
    except BrokenPipeError:
        # stdout closed by its reader while a command printed its result
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    return ExitCode.OK
