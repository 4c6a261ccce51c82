"""Checks that turn a YAML tree into a Config, reporting every problem, not just the first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from evroute.config.checker import (
    Checker,
    KeptFile,
    describe,
    expand_environment,
    join,
    read_kept_file,
)
from evroute.config.model import (
    ON_FULL_POLICIES,
    UNMATCHED_DEAD_LETTER,
    UNMATCHED_DROP,
    Config,
    ConsumerConfig,
    EncryptSettings,
    InputConfig,
    QueueSettings,
    RouteConfig,
    TestCase,
)
from evroute.config.yaml_loader import Node
from evroute.loading.fields import check_route as check_route_fields
from evroute.loading.fields import read_fields
from evroute.loading.inputs import check_nats_loops, read_inputs
from evroute.loading.kept_files import check_shared_files, read_encrypt
from evroute.loading.routes import read_route
from evroute.loading.tests_section import read_tests
from evroute.sinks import SINK_KINDS  # the sink kinds own their options

TOP_LEVEL_KEYS = (
    "version",
    "defaults",
    "dead_letter",
    "unmatched",
    "max_event_bytes",
    "shutdown_timeout",
    "consumers",
    "routes",
    "tests",
    "inputs",
    "audit",
    "encrypt",
)
QUEUE_KEYS = ("buffer", "buffer_bytes", "on_full", "spill_max_bytes", "retries")
CONSUMER_KEYS = ("fields",)  # what every kind of consumer takes, besides its queue settings


def read_queue_settings(
    checker: Checker, fields: dict[str, Node], path: str, base: QueueSettings
) -> QueueSettings:
    buffer, buffer_bytes, on_full = base.buffer, base.buffer_bytes, base.on_full
    spill_max_bytes, retries = base.spill_max_bytes, base.retries
    if "buffer" in fields:
        buffer = checker.integer(fields["buffer"], join(path, "buffer"), 1) or buffer
    if "buffer_bytes" in fields:
        buffer_bytes = (
            checker.size(fields["buffer_bytes"], join(path, "buffer_bytes")) or buffer_bytes
        )
    if "on_full" in fields:
        on_full = (
            checker.choice(fields["on_full"], join(path, "on_full"), ON_FULL_POLICIES) or on_full
        )
    if "spill_max_bytes" in fields:
        spill_max_bytes = (
            checker.size(fields["spill_max_bytes"], join(path, "spill_max_bytes"))
            or spill_max_bytes
        )
    if "retries" in fields:
        value = checker.integer(fields["retries"], join(path, "retries"), 0)
        retries = retries if value is None else value
    return QueueSettings(buffer, buffer_bytes, on_full, spill_max_bytes, retries)


def build_config(
    root: Node | None,
    config_path: Path,
    checker: Checker,
    environ: Mapping[str, str],
    no_env: bool = False,
) -> Config | None:
    """The Config, or None when there are errors (all of them in `checker.issues`)."""
    base_dir = config_path.parent
    if root is None or root.value is None:
        checker.error(
            None, "", "the config is empty; it needs at least version: 1, consumers and routes"
        )
        return None
    expand_environment(root, "", checker, environ, no_env)
    top = checker.mapping(root, "")
    if top is None:
        return None
    checker.known_keys(root, "", TOP_LEVEL_KEYS)

    if "version" not in top:
        checker.error(root, "version", "missing; add `version: 1` at the top of the config")
    elif type(top["version"].value) is not int or top["version"].value != 1:
        written = top["version"].value
        hint = (
            "write version: 1 (the number, not quoted)"
            if written == "1"
            else ("this evroute reads version 1")
        )
        checker.error(top["version"], "version", f"unsupported version {written!r}; {hint}")

    defaults = QueueSettings()
    if "defaults" in top:
        fields = checker.mapping(top["defaults"], "defaults")
        if fields is not None:
            checker.known_keys(top["defaults"], "defaults", QUEUE_KEYS)
            defaults = read_queue_settings(checker, fields, "defaults", defaults)

    dead_letter, dead_letter_rotation = read_kept_file(
        checker, top.get("dead_letter"), "dead_letter", "the dead letter file's path", base_dir
    )
    audit, audit_rotation = read_kept_file(
        checker, top.get("audit"), "audit", "the audit log's path", base_dir
    )
    encrypt: EncryptSettings | None = None
    has_encrypt = "encrypt" in top and top["encrypt"].value is not None  # null: none
    if has_encrypt:
        encrypt = read_encrypt(checker, top["encrypt"], base_dir, environ, no_env)
    inputs: list[InputConfig] = []
    if "inputs" in top and top["inputs"].value is not None:
        inputs = read_inputs(checker, top["inputs"], base_dir)

    max_event_bytes = 1 << 20
    if "max_event_bytes" in top:
        max_event_bytes = (
            checker.size(top["max_event_bytes"], "max_event_bytes", 16) or max_event_bytes
        )
    shutdown_timeout = 10.0
    if "shutdown_timeout" in top:
        timeout = checker.duration(top["shutdown_timeout"], "shutdown_timeout")
        shutdown_timeout = timeout if timeout is not None else shutdown_timeout

    consumers: dict[str, ConsumerConfig] = {}
    consumer_nodes: dict[str, Node] = {}
    section: dict[str, Node] | None = None
    if "consumers" not in top:
        checker.error(root, "consumers", "missing; a config needs at least one consumer")
    else:
        section = checker.mapping(top["consumers"], "consumers")
        for name, node in (section or {}).items():
            path = join("consumers", name)
            if checker.name(top["consumers"].keys[name], path, "consumer") is None:
                continue
            consumer_nodes[name] = node
            fields = checker.mapping(node, path)
            if fields is None:
                continue
            kinds = [kind for kind in SINK_KINDS if kind in fields]
            if len(kinds) != 1:
                problem = "has both " + " and ".join(kinds) if kinds else "has no kind"
                checker.error(
                    node,
                    path,
                    f"{problem}; a consumer has exactly one of: {', '.join(SINK_KINDS)}",
                )
                continue
            kind = SINK_KINDS[kinds[0]]
            checker.known_keys(node, path, (*kind.keys, *QUEUE_KEYS, *CONSUMER_KEYS))
            options = kind.parse_options(checker, fields, path, base_dir)
            queue = read_queue_settings(checker, fields, path, defaults)
            policy = None
            if "fields" in fields:
                policy = read_fields(checker, fields["fields"], join(path, "fields"))
            if options is not None:
                consumers[name] = ConsumerConfig(
                    name, kind.name, options, queue, node.line, node.column, policy
                )

    if section is not None and not section:
        checker.error(top["consumers"], "consumers", "is empty; a config needs a consumer")
    if not has_encrypt:
        for name, consumer in consumers.items():
            asking = SINK_KINDS[consumer.kind].needs_key(consumer.options)
            if asking is not None:
                checker.error(
                    consumer_nodes[name].value[asking],
                    join(join("consumers", name), asking),
                    "needs a key: add a top-level encrypt: {key_env: NAME} or {key_file: PATH}",
                )
    kept: list[KeptFile] = []
    if dead_letter is not None:
        kept.append(
            (
                "dead_letter",
                dead_letter,
                top["dead_letter"],
                dead_letter_rotation,
                "the dead letter file",
            )
        )
    if audit is not None:
        kept.append(("audit", audit, top["audit"], audit_rotation, "the audit log"))
    check_shared_files(checker, base_dir, consumers, consumer_nodes, kept)
    check_nats_loops(checker, inputs, consumers, consumer_nodes)

    unmatched = UNMATCHED_DROP
    if "unmatched" in top:
        node = top["unmatched"]
        value = checker.string(node, "unmatched")
        if value is not None:
            if value in (UNMATCHED_DROP, UNMATCHED_DEAD_LETTER) or value in consumer_nodes:
                unmatched = value
            else:
                checker.error(
                    node,
                    "unmatched",
                    "expected drop, dead_letter or a consumer's name;"
                    f" no consumer is named {value!r}",
                )

    routes: list[RouteConfig] = []
    seen_routes: dict[str, Node] = {}  # every route named, even one with errors
    fed: set[str] = {unmatched} if unmatched in consumer_nodes else set()
    if "routes" not in top:
        checker.error(root, "routes", "missing; a config needs at least one route")
    elif not top["routes"].is_sequence:
        checker.error(
            top["routes"],
            "routes",
            f"expected a list of routes, got {describe(top['routes'].value)}",
        )
    else:
        for index, node in enumerate(top["routes"].value):
            route = read_route(
                checker, node, join("routes", index), consumer_nodes, seen_routes, fed
            )
            if route is not None:
                routes.append(route)
                check_route_fields(checker, node, join("routes", index), route, consumers)
        if not top["routes"].value:
            checker.error(top["routes"], "routes", "is empty; a config needs at least one route")

    for name in consumer_nodes:
        if name not in fed:
            checker.warning(
                top["consumers"].keys[name],
                join("consumers", name),
                "no route sends events to this consumer",
            )
    if unmatched == UNMATCHED_DEAD_LETTER and dead_letter is None:
        checker.warning(
            top["unmatched"],
            "unmatched",
            "unmatched events go to the dead letters, but no dead_letter path is set:"
            " they are only counted",
        )

    tests: list[TestCase] = []
    if "tests" in top and top["tests"].value is not None:
        tests = read_tests(checker, top["tests"], set(seen_routes), consumer_nodes)

    if checker.has_errors:
        return None
    return Config(
        path=config_path,
        base_dir=base_dir,
        consumers=consumers,
        routes=routes,
        dead_letter=dead_letter,
        dead_letter_rotation=dead_letter_rotation,
        unmatched=unmatched,
        max_event_bytes=max_event_bytes,
        shutdown_timeout=shutdown_timeout,
        tests=tests,
        encrypt=encrypt,
        inputs=inputs,
        audit=audit,
        audit_rotation=audit_rotation,
    )
