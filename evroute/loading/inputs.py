"""The `inputs:` section: the producers a run reads when no input is named (each of a
kind in the input registry, evroute.sources), and what event `source` values each may
publish."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import describe, join
from evroute.config.model import ConsumerConfig, InputConfig
from evroute.nats.options import subjects_overlap
from evroute.sinks.nats import NatsSinkOptions
from evroute.sources import INPUT_KINDS
from evroute.sources.nats import NatsInputOptions

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.yaml_loader import Node


def input_keys() -> tuple[str, ...]:
    """Every key an input may have: its name, its kind's keys, what it may publish."""
    kinds = INPUT_KINDS.values()
    extra = (key for kind in kinds for key in kind.keys if key not in INPUT_KINDS)
    return ("name", *INPUT_KINDS, *dict.fromkeys(extra), "publish")


def read_inputs(checker: Checker, node: Node, base_dir: Path) -> list[InputConfig]:
    """Every producer of the section; problems go to the checker."""

    if not node.is_sequence:
        checker.error(node, "inputs", f"expected a list of inputs, got {describe(node.value)}")
        return []
    inputs: list[InputConfig] = []
    names: set[str] = set()
    stdin_path: str | None = None
    for index, item in enumerate(node.value):
        path = join("inputs", index)
        producer = _read_input(checker, item, path, base_dir)
        if producer is None:
            continue
        if producer.name in names:
            checker.error(
                item.value["name"], join(path, "name"), f"input {producer.name!r} is named twice"
            )
            continue
        names.add(producer.name)
        if INPUT_KINDS[producer.kind].reads_stdin:
            if stdin_path is not None:
                checker.error(
                    item, path, f"stdin is read by {stdin_path} already; one input may read it"
                )
                continue
            stdin_path = path
        inputs.append(producer)
    return inputs


def _read_input(checker: Checker, node: Node, path: str, base_dir: Path) -> InputConfig | None:
    fields = checker.mapping(node, path)
    if fields is None:
        return None
    keys = input_keys()
    checker.known_keys(node, path, keys)
    name = checker.item_name(node, fields, path, "input")
    kinds = [kind for kind in INPUT_KINDS if kind in fields]
    if len(kinds) != 1:
        problem = "has both " + " and ".join(kinds) if kinds else "has no kind"
        checker.error(
            node, path, f"{problem}; an input has exactly one of: {', '.join(INPUT_KINDS)}"
        )
        return None
    kind = INPUT_KINDS[kinds[0]]
    ok = name is not None
    for key in fields:
        if key in keys[1:] and key not in (*kind.keys, "publish"):
            owners = [other.name for other in INPUT_KINDS.values() if key in other.keys]
            checker.error(
                fields[key],
                join(path, key),
                f"applies only to {' and '.join(owners)} inputs; remove it",
            )
            ok = False
    options = kind.parse_options(checker, fields, path, name or "", base_dir)
    ok = ok and options is not None
    publish: tuple[str, ...] | None = None
    if "publish" in fields:
        publish = _read_publish(checker, fields["publish"], join(path, "publish"))
        ok = ok and publish is not None
    if not ok or name is None or options is None:
        return None
    return InputConfig(
        name, kind.name, options, publish=publish, line=node.line, column=node.column
    )


def _read_publish(checker: Checker, node: Node, path: str) -> tuple[str, ...] | None:
    if not node.is_sequence:
        checker.error(
            node,
            path,
            "expected a list of event sources (e.g. [com.example.orders]),"
            f" got {describe(node.value)}",
        )
        return None
    sources = [checker.string(item, join(path, i)) for i, item in enumerate(node.value)]
    if any(source is None for source in sources):
        return None
    if not sources:
        checker.warning(
            node, path, "is empty: this input may publish nothing, every event is denied"
        )
    return tuple(source for source in sources if source is not None)


def check_nats_loops(
    checker: Checker,
    inputs: list[InputConfig],
    consumers: dict[str, ConsumerConfig],
    consumer_nodes: dict[str, Node],
) -> None:
    """Warn of a nats consumer that publishes where a nats input of the same config
    reads (its events would come back without end), and of a consumer whose queue holds
    more events than a nats input lets out unacked (a stopped consumer would stall the
    input before its spill takes over)."""
    readers = [i for i in inputs if isinstance(i.options, NatsInputOptions)]
    if not readers:
        return

    for name, consumer in consumers.items():
        options = consumer.options
        path = join("consumers", name)
        for reader in readers:
            read = reader.options
            assert isinstance(read, NatsInputOptions)
            if consumer.queue.buffer >= read.max_ack_pending:
                checker.warning(
                    consumer_nodes[name],
                    path,
                    f"its queue holds {consumer.queue.buffer:,} events, and input"
                    f" {reader.name!r} lets out at most {read.max_ack_pending:,} unacked:"
                    " should this consumer stop, the input stalls before its spill takes"
                    " over; give it a smaller buffer or the input a larger max_ack_pending",
                )
            if not isinstance(options, NatsSinkOptions):
                continue
            if not set(options.connection.servers) & set(read.connection.servers):
                continue
            subjects = (read.subject,) if read.subject is not None else read.stream.subjects or ()
            published = options.template.pattern("*") if options.template else options.subject
            if any(subjects_overlap(published, subject) for subject in subjects):
                checker.warning(
                    consumer_nodes[name].value["nats"],
                    join(path, "nats"),
                    f"publishes to {options.subject!r}, which input {reader.name!r} reads:"
                    " what it routes there comes back as new events, without end",
                )
