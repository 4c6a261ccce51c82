"""The `inputs:` section: the producers a run reads when no input is named, and what
event `source` values each may publish."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from evroute.config.checker import describe, join
from evroute.config.model import ConsumerConfig, InputConfig
from evroute.nats.options import subjects_overlap
from evroute.processes import RestartPolicy, parse_argv, parse_restart
from evroute.shaping.publish_policy import glob_files
from evroute.sinks.nats import NatsSinkOptions

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.yaml_loader import Node

INPUT_KINDS = ("file", "stdin", "command", "nats")
INPUT_KEYS = ("name", *INPUT_KINDS, "restart", "publish")
INPUT_LATER: dict[str, str] = {}


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
        if producer.kind == "stdin":
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
    checker.known_keys(node, path, INPUT_KEYS, INPUT_LATER)
    name = checker.item_name(node, fields, path, "input")
    kinds = [kind for kind in INPUT_KINDS if kind in fields]
    if not kinds and any(kind in fields for kind in INPUT_LATER):
        return None  # said by known_keys
    if len(kinds) != 1:
        problem = "has both " + " and ".join(kinds) if kinds else "has no kind"
        checker.error(
            node, path, f"{problem}; an input has exactly one of: {', '.join(INPUT_KINDS)}"
        )
        return None
    kind = kinds[0]
    ok = name is not None
    pattern: str | None = None
    argv: tuple[str, ...] | None = None
    options: Any = None
    restart = RestartPolicy()
    if kind == "file":
        pattern = checker.string(fields["file"], join(path, "file"))
        ok = ok and pattern is not None
        if pattern is not None and pattern != "-" and not glob_files(base_dir, pattern):
            checker.warning(fields["file"], join(path, "file"), f"{pattern!r} matches no file now")
        if pattern == "-":
            checker.error(
                fields["file"],
                join(path, "file"),
                "stdin is an input of its own: write stdin: true",
            )
            ok = False
    elif kind == "stdin":
        if fields["stdin"].value is not True:
            checker.error(
                fields["stdin"],
                join(path, "stdin"),
                "expected true; remove the input to not read stdin",
            )
            ok = False
    elif kind == "nats":
        from evroute.sources.nats import parse_options

        options = parse_options(checker, fields["nats"], join(path, "nats"), name or "", base_dir)
        ok = ok and options is not None
    else:
        argv = parse_argv(checker, fields["command"], join(path, "command"))
        ok = ok and argv is not None
    if "restart" in fields:
        if kind != "command":
            checker.error(
                fields["restart"],
                join(path, "restart"),
                "applies only to command inputs; remove it",
            )
            ok = False
        else:
            policy = parse_restart(checker, fields["restart"], join(path, "restart"))
            ok = ok and policy is not None
            restart = policy or restart
    publish: tuple[str, ...] | None = None
    if "publish" in fields:
        publish = _read_publish(checker, fields["publish"], join(path, "publish"))
        ok = ok and publish is not None
    if not ok or name is None:
        return None
    return InputConfig(
        name,
        kind,
        pattern=pattern,
        argv=argv,
        restart=restart,
        publish=publish,
        options=options,
        line=node.line,
        column=node.column,
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
    readers = [i for i in inputs if i.kind == "nats" and i.options is not None]
    if not readers:
        return  # and nothing of NATS is imported

    for name, consumer in consumers.items():
        options = consumer.options
        path = join("consumers", name)
        for reader in readers:
            read = reader.options
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
