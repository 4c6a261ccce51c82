"""`nats:` inputs: a durable pull consumer of a NATS JetStream stream. This module holds
what checking a config needs; the reader (nats_reader.py, with nats-py and asyncio) is
imported only by runs that read NATS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join
from evroute.config.json_schema import Schema, dataclass_defaults
from evroute.nats.options import (
    CONNECTION_KEYS,
    NAME_UNSAFE,
    NatsConnection,
    StreamSpec,
    nats_schema,
    parse_connection,
    parse_stream,
    subject_problem,
    subject_within,
)
from evroute.sources.base import InputKind, Source

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import Config, InputConfig
    from evroute.config.yaml_loader import Node

NATS_INPUT_KEYS = (
    *CONNECTION_KEYS,
    "stream",
    "subject",
    "durable",
    "batch",
    "ack_wait",
    "max_ack_pending",
)


@dataclass(frozen=True)
class NatsInputOptions:
    connection: NatsConnection
    stream: StreamSpec
    durable: str
    subject: str | None = None  # the consumer's filter subject; None: the whole stream
    batch: int = 256
    ack_wait: float = 30.0
    # messages out at once without an ack, over all instances: more than a stopped
    # consumer's queue holds in memory, else the input stalls before the spill takes over
    max_ack_pending: int = 20_000

    def reads(self, base_dir: Path) -> list[str]:
        return []


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, name: str, base_dir: Path
) -> NatsInputOptions | None:
    """The `nats:` mapping of an input; problems go to the checker."""
    return read_nats_input(checker, fields["nats"], join(path, "nats"), name, base_dir)


def read_nats_input(
    checker: Checker, node: Node, path: str, name: str, base_dir: Path
) -> NatsInputOptions | None:
    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, NATS_INPUT_KEYS)
    connection = parse_connection(checker, node, fields, path, base_dir)
    ok = connection is not None
    stream = None
    if "stream" not in fields:
        checker.error(node, join(path, "stream"), "is missing: the JetStream stream to read")
        ok = False
    else:
        stream = parse_stream(checker, fields["stream"], join(path, "stream"))
        ok = ok and stream is not None
    subject = None
    if "subject" in fields:
        subject = checker.string(fields["subject"], join(path, "subject"))
        problem = None if subject is None else subject_problem(subject, wildcards=True)
        if problem is not None:
            checker.error(fields["subject"], join(path, "subject"), problem)
        ok = ok and subject is not None and problem is None
    durable = name
    if "durable" in fields:
        durable_name = checker.string(fields["durable"], join(path, "durable"))
        if durable_name is not None and any(c in NAME_UNSAFE for c in durable_name):
            checker.error(
                fields["durable"],
                join(path, "durable"),
                f"{durable_name!r} is not a consumer name: no spaces, '.', '*', '>', '/' or '\\'",
            )
            durable_name = None
        ok = ok and durable_name is not None
        durable = durable_name or name
    elif any(c in NAME_UNSAFE for c in name):
        checker.error(
            node,
            join(path, "durable"),
            f"is missing, and the input's name {name!r} cannot stand for it (a consumer"
            " name has no '.'): add durable: NAME",
        )
        ok = False
    outside = (
        stream is not None
        and stream.subjects
        and subject is not None
        and not any(subject_within(subject, outer) for outer in stream.subjects)
    )
    if outside and stream is not None and stream.subjects:
        checker.error(
            fields["subject"],
            join(path, "subject"),
            f"{subject!r} is not within the stream's subjects"
            f" ({', '.join(stream.subjects)}): the server would refuse the consumer",
        )
        ok = False
    numbers: dict[str, int] = {}
    for key, minimum in (("batch", 1), ("max_ack_pending", 1)):
        if key in fields:
            value = checker.integer(fields[key], join(path, key), minimum)
            ok = ok and value is not None
            if value is not None:
                numbers[key] = value
    ack_wait = NatsInputOptions.ack_wait
    if "ack_wait" in fields:
        seconds = checker.duration(fields["ack_wait"], join(path, "ack_wait"))
        if seconds is not None and seconds < 1:
            checker.error(fields["ack_wait"], join(path, "ack_wait"), "must be at least 1s")
            seconds = None
        ok = ok and seconds is not None
        ack_wait = seconds or ack_wait
    if not ok or connection is None or stream is None:
        return None
    return NatsInputOptions(connection, stream, durable, subject, ack_wait=ack_wait, **numbers)


def draw(options: NatsInputOptions) -> str:
    """One line for `evroute graph`: where the input reads."""
    subject = f" {options.subject}" if options.subject else ""
    return f"nats {options.stream.name}{subject} (durable {options.durable})"


def open_input(entry: InputConfig, config: Config, warn: Callable[[str], None]) -> list[Source]:
    from evroute.sources.nats_reader import NatsSource  # nats-py and asyncio only when used

    assert isinstance(entry.options, NatsInputOptions)
    return [NatsSource(entry.name, entry.options, warn)]


def schema() -> dict[str, Schema]:
    defaults = dataclass_defaults(NatsInputOptions)
    mapping = nats_schema(NATS_INPUT_KEYS, defaults, ["url", "stream"])
    return {"nats": {**mapping, "description": "a NATS JetStream stream"}}


KIND = InputKind(
    name="nats",
    description="a durable pull consumer of a NATS JetStream stream",
    keys=("nats",),
    parse_options=parse_options,
    open=open_input,
    schema=schema,
    draw=draw,
)
