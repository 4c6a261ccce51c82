"""The `nats` consumer kind: its options (the connection, a subject that may be
templated from the event, `routed.{"detail-type"}`, an optional stream). A subject is
made from an event by shaping/templates.py; the writer, which needs asyncio, is
nats_publisher.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join, source_position
from evroute.config.json_schema import Schema, object_schema
from evroute.nats.options import (
    CONNECTION_KEYS,
    NatsConnection,
    StreamSpec,
    nats_schema,
    parse_connection,
    parse_stream,
    subject_problem,
    subjects_overlap,
)
from evroute.shaping.templates import PathTemplate, TemplateSyntaxError, is_template, unescape
from evroute.shaping.templates import parse as parse_template
from evroute.sinks.base import Sink, SinkKind

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node

NATS_CONSUMER_KEYS = (*CONNECTION_KEYS, "subject", "stream")
# A value in a subject: the characters that would split it into tokens or be wildcards.


@dataclass(frozen=True)
class NatsSinkOptions:
    connection: NatsConnection
    subject: str  # as written (braces unescaped when it is no template)
    template: PathTemplate | None = None
    stream: StreamSpec | None = None


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> NatsSinkOptions | None:
    node = fields["nats"]
    path = join(path, "nats")
    mapping = checker.mapping(node, path)
    if mapping is None:
        return None
    checker.known_keys(node, path, NATS_CONSUMER_KEYS)
    connection = parse_connection(checker, node, mapping, path, base_dir)
    ok = connection is not None
    stream = None
    if "stream" in mapping:
        stream = parse_stream(checker, mapping["stream"], join(path, "stream"))
        ok = ok and stream is not None
    subject = None
    template = None
    if "subject" not in mapping:
        checker.error(node, join(path, "subject"), "is missing: the subject to publish on")
        return None
    subject_node = mapping["subject"]
    subject = checker.string(subject_node, join(path, "subject"))
    if subject is None:
        return None
    if is_template(subject):
        try:
            template = parse_template(subject)
        except TemplateSyntaxError as error:
            line, column = source_position(subject_node, error.position)
            checker.report(
                "error",
                subject_node,
                join(path, "subject"),
                f"subject template: {error.message} (at position {error.position} of {subject!r})",
                line=line,
                column=column,
            )
            return None
        literal = template.pattern("x")
    else:
        subject = literal = unescape(subject)
    problem = subject_problem(literal, wildcards=False)
    if problem is None and stream is not None and stream.subjects:
        # a templated subject's values may be anything: each stands for any one token
        published = template.pattern("*") if template is not None else subject
        if not any(subjects_overlap(published, taken) for taken in stream.subjects):
            problem = (
                f"{subject!r} is not among the subjects of stream {stream.name!r}"
                f" ({', '.join(stream.subjects)}): no event would be taken"
            )
    if problem is not None:
        checker.error(subject_node, join(path, "subject"), problem)
        return None
    if not ok or connection is None:
        return None
    return NatsSinkOptions(connection, subject, template, stream)


def create(config: ConsumerConfig, base_dir: Path) -> Sink:
    # imported when used: checking a config, or a run without NATS, needs no asyncio
    from evroute.sinks.nats_publisher import NatsSink

    return NatsSink(config, base_dir)


def schema() -> Schema:
    values: dict[str, Schema] = {
        "nats": {
            **nats_schema(NATS_CONSUMER_KEYS, {}, ["url", "subject"]),
            "description": "publish each event to NATS JetStream",
        }
    }
    return object_schema(KIND.keys, values)


def draw(options: NatsSinkOptions) -> tuple[str, str]:
    return "nats", options.subject


KIND = SinkKind(
    name="nats",
    description="publish each event to NATS JetStream",
    keys=("nats",),
    parse_options=parse_options,
    create=create,
    schema=schema,
    draw=draw,
)
