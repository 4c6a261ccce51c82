"""`command:` consumers: their options, and the sink for each: long-running or per event."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join
from evroute.config.json_schema import (
    BOOLEAN,
    DURATION,
    Schema,
    choice,
    dataclass_defaults,
    integer,
    object_schema,
)
from evroute.processes import ARGV, RestartPolicy, parse_argv, parse_restart, restart_schema
from evroute.sinks.base import Sink, SinkKind
from evroute.sinks.long_running import LongRunningSink
from evroute.sinks.per_event import PerEventSink

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node
    from evroute.expr import Expression


@dataclass(frozen=True)
class CommandOptions:
    argv: tuple[str, ...]
    restart: RestartPolicy = RestartPolicy()
    ack: str = "none"  # none | line
    per_event: bool = False
    concurrency: int = 1
    key: Expression | None = None
    timeout: float = 60.0


ACK_MODES = ("none", "line")
PER_EVENT_KEYS = ("concurrency", "key", "timeout")
LONG_RUNNING_KEYS = ("restart", "ack")


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> CommandOptions | None:
    argv = parse_argv(checker, fields["command"], join(path, "command"))
    per_event = checker.boolean(fields, "per_event", path)
    wrong = PER_EVENT_KEYS if not per_event else LONG_RUNNING_KEYS
    for key in wrong:
        if key in fields:
            checker.error(
                fields[key],
                join(path, key),
                f"applies only to per-event commands; add per_event: true or remove {key}"
                if not per_event
                else "applies only to long-running commands; remove it or per_event: true",
            )
    options = CommandOptions(argv or ("",), per_event=per_event)
    ok = argv is not None
    if "restart" in fields and not per_event:
        restart = parse_restart(checker, fields["restart"], join(path, "restart"))
        ok = ok and restart is not None
        options = replace(options, restart=restart or options.restart)
    if "ack" in fields and not per_event:
        ack = checker.choice(fields["ack"], join(path, "ack"), ACK_MODES)
        ok = ok and ack is not None
        options = replace(options, ack=ack or options.ack)
    if per_event:
        if "concurrency" in fields:
            concurrency = checker.integer(fields["concurrency"], join(path, "concurrency"), 1)
            ok = ok and concurrency is not None
            options = replace(options, concurrency=concurrency or 1)
        if "key" in fields and fields["key"].value is not None:
            key_expression = checker.expression(fields["key"], join(path, "key"))
            ok = ok and key_expression is not None
            options = replace(options, key=key_expression)
        if "timeout" in fields:
            timeout = checker.duration(fields["timeout"], join(path, "timeout"))
            if timeout is not None and timeout <= 0:
                checker.error(fields["timeout"], join(path, "timeout"), "must be more than 0")
                timeout = None
            ok = ok and timeout is not None
            options = replace(options, timeout=timeout or options.timeout)
    return options if ok else None


def create(config: ConsumerConfig, base_dir: Path) -> Sink:
    if config.options.per_event:
        return PerEventSink(config, base_dir)
    return LongRunningSink(config, base_dir)


def schema() -> Schema:
    values: dict[str, Schema] = {
        "command": ARGV,
        "per_event": BOOLEAN,
        "restart": restart_schema(),
        "ack": choice(ACK_MODES),
        "concurrency": integer(1),
        "key": {"type": ["string", "null"], "minLength": 1, "description": "a JMESPath expression"},
        "timeout": DURATION,
    }
    schema = object_schema(KIND.keys, values, dataclass_defaults(CommandOptions))
    # each kind of command has its own keys (per_event: true, or not)
    schema["if"] = {"properties": {"per_event": {"const": True}}, "required": ["per_event"]}
    schema["then"] = {"not": {"anyOf": [{"required": [k]} for k in LONG_RUNNING_KEYS]}}
    schema["else"] = {"not": {"anyOf": [{"required": [k]} for k in PER_EVENT_KEYS]}}
    return schema


def draw(options: CommandOptions) -> tuple[str, str]:
    return "per-event command" if options.per_event else "command", shlex.join(options.argv)


KIND = SinkKind(
    name="command",
    description="a long-running process fed on its stdin, or one process per event",
    keys=("command", "per_event", *LONG_RUNNING_KEYS, *PER_EVENT_KEYS),
    parse_options=parse_options,
    create=create,
    schema=schema,
    draw=draw,
)
