"""Checks that turn a YAML tree into a Config, reporting every problem, not just the first."""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evroute import expr
from evroute.config.checker import (
    INVALID,
    Checker,
    KeptFile,
    Severity,
    describe,
    expand_environment,
    join,
    json_value,
    read_kept_file,
    source_position,
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
    Rotation,
    RouteConfig,
    TestCase,
)
from evroute.config.yaml_loader import Node
from evroute.loading.fields import check_route as check_route_fields
from evroute.loading.fields import read_fields
from evroute.loading.inputs import check_nats_loops, read_inputs
from evroute.sinks import SINK_KINDS  # the sink kinds own their options
from evroute.storage.crypto import (
    KEYGEN_HINT,
    NOT_A_NAME,
    Key,
    KeyProblem,
    is_variable_name,
    key_file_warning,
)

if TYPE_CHECKING:
    from evroute.patterns import Pattern


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
ROUTE_KEYS = ("name", "filter", "pattern", "transform", "to")
TEST_KEYS = ("name", "event", "routes", "outputs")


ENCRYPT_KEYS = ("key_env", "key_file")


def read_encrypt(
    checker: Checker, node: Node, base_dir: Path, environ: Mapping[str, str], no_env: bool
) -> EncryptSettings | None:
    """`encrypt: {key_env: NAME}` or `{key_file: PATH}`; the key must be there and be a
    key (with --no-env, a missing one is a warning: CI has no secrets)."""
    fields = checker.mapping(node, "encrypt")
    if fields is None:
        return None
    checker.known_keys(node, "encrypt", ENCRYPT_KEYS)
    given = [key for key in ENCRYPT_KEYS if key in fields]
    if len(given) != 1:
        problem = "has both key_env and key_file" if given else "is empty"
        checker.error(
            node,
            "encrypt",
            f"{problem}; give exactly one: key_env: NAME (an environment variable holding"
            " the key) or key_file: PATH",
        )
        return None
    path = join("encrypt", given[0])
    value_node = fields[given[0]]
    text = checker.string(value_node, path)
    if text is None:
        return None
    missing: Severity = "warning" if no_env else "error"
    if given[0] == "key_env":
        if not is_variable_name(text):
            checker.error(value_node, path, NOT_A_NAME)
            return None
        value = environ.get(text)
        if not value:
            checker.report(
                missing,
                value_node,
                path,
                f"environment variable {text} is not set: it must hold the encryption key;"
                f" {KEYGEN_HINT} (export {text}=$(evroute keygen))",
            )
        else:
            try:
                Key.from_text(value, f"environment variable {text}")
            except KeyProblem as error:
                checker.error(value_node, path, str(error))
        return EncryptSettings(key_env=text)
    key_file = base_dir / text
    try:
        content = key_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        severity: Severity = missing if isinstance(error, FileNotFoundError) else "error"
        checker.report(severity, value_node, path, f"cannot read the key file {key_file}: {reason}")
    else:
        try:
            Key.from_text(content, f"the key file {key_file}")
        except KeyProblem as error:
            checker.error(value_node, path, str(error))
        unsafe = key_file_warning(key_file)
        if unsafe is not None:
            checker.warning(value_node, path, unsafe)
    return EncryptSettings(key_file=key_file)


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
    # imported when used, as these modules import the config package themselves

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


def rotated_names(path: Path, rotation: Rotation | None) -> list[Path]:
    """The old files a rotating file is renamed to: FILE.1 to FILE.keep."""
    if rotation is None:
        return []
    return [path.with_name(f"{path.name}.{number}") for number in range(1, rotation.keep + 1)]


def check_shared_files(
    checker: Checker,
    base_dir: Path,
    consumers: Mapping[str, ConsumerConfig],
    nodes: Mapping[str, Node],
    kept: list[KeptFile],
) -> None:
    """Two writers of one file interleave and, in overwrite mode, erase each other.
    `kept` are the files evroute keeps for itself (dead letters, audit log).

    A templated path is compared by its pattern: the same template twice is an error;
    a literal file that the template could produce is a warning, since whether an
    event's values ever name it is up to the events."""
    writers: dict[Path, str] = {}
    templates: dict[str, tuple[str, str, re.Pattern[str]]] = {}
    folders: dict[Path, str] = {}
    for name, consumer in consumers.items():
        for output in SINK_KINDS[consumer.kind].outputs(consumer.options):
            node = nodes[name].value[output.key]
            node_path = join(join("consumers", name), output.key)
            if output.form == "folder":
                folder = Path(os.path.normpath(base_dir / output.path))
                if folder in folders:
                    checker.error(
                        node,
                        node_path,
                        f"consumer {folders[folder]!r} archives to this folder too; a replay"
                        " would give their events twice: give each archive its own folder",
                    )
                folders.setdefault(folder, name)
            elif output.template is not None:
                # NUL cannot be in a config's string: it stands for the values
                key = os.path.normpath(os.path.join(base_dir, output.template.pattern("\0")))
                if key in templates:
                    checker.error(
                        node,
                        node_path,
                        f"consumer {templates[key][0]!r} writes these files too (the same"
                        " template); give each its own folder or template",
                    )
                    continue
                regex = "[^/]+".join(re.escape(piece) for piece in key.split("\0"))
                templates[key] = (name, output.key, re.compile(regex))
            else:
                path = Path(os.path.normpath(base_dir / output.path))
                # FILE.1... when it rotates
                for written in [path, *rotated_names(path, output.rotation)]:
                    if written in writers:
                        what = (
                            "this file"
                            if written == path
                            else f"{written.name}, a rotated name of it,"
                        )
                        checker.error(
                            node,
                            node_path,
                            f"consumer {writers[written]!r} writes {what} too; give each its"
                            " own file (a rotating file also writes FILE.1, FILE.2...)",
                        )
                        break
                    writers[written] = name
    writer_names = {path: f"consumer {name!r}" for path, name in writers.items()}
    for key, kept_path, kept_node, kept_rotation, what_it_is in kept:
        path = Path(os.path.normpath(kept_path))
        for written in [path, *rotated_names(path, kept_rotation)]:
            if written in writer_names:
                what = "this file" if written == path else f"{written.name}, a rotated name of it"
                checker.error(
                    kept_node,
                    key,
                    f"{writer_names[written]} writes {what}; {what_it_is} needs a file of its own",
                )
                break
            writer_names[written] = what_it_is  # compared with the templates below
    for template_name, template_key, pattern in templates.values():
        for path, writer in writer_names.items():
            if not pattern.fullmatch(str(path)):
                continue
            whose = f"{writer} writes"
            shown = os.path.relpath(path, base_dir)
            checker.warning(
                nodes[template_name].value[template_key],
                join(join("consumers", template_name), template_key),
                f"an event's values could make this template name {shown!r}, which"
                f" {whose}; keep them in separate folders",
            )


def read_route(
    checker: Checker,
    node: Node,
    path: str,
    consumers: Mapping[str, Node],
    seen: dict[str, Node],
    fed: set[str],
) -> RouteConfig | None:
    """The route at `node`; adds the consumers it names to `fed`, even when it has errors."""
    fields = checker.mapping(node, path)
    if fields is None:
        return None
    checker.known_keys(node, path, ROUTE_KEYS)
    name = checker.item_name(node, fields, path, "route")
    if name is not None:
        if name in seen:
            checker.error(
                fields["name"],
                join(path, "name"),
                f"duplicate route name {name!r} (first at line {seen[name].line})",
            )
            name = None
        else:
            seen[name] = fields["name"]
    filter_ = transform = pattern = None
    ok = name is not None
    if "filter" in fields:
        filter_ = checker.expression(fields["filter"], join(path, "filter"))
        ok = ok and filter_ is not None
        if filter_ is not None and filter_.is_constant():
            warn_constant(checker, fields["filter"], join(path, "filter"), filter_)
    if "pattern" in fields:
        pattern = read_pattern(checker, fields["pattern"], join(path, "pattern"))
        ok = ok and pattern is not None
        if "filter" in fields:
            checker.error(
                node.keys["pattern"],
                path,
                "has both filter and pattern; a route takes one of them: a filter"
                " (JMESPath) or a pattern (an EventBridge event pattern)",
            )
            ok = False
    if "transform" in fields:
        transform = checker.expression(fields["transform"], join(path, "transform"))
        ok = ok and transform is not None
    targets: list[str] = []
    if "to" not in fields:
        checker.error(node, join(path, "to"), "missing; say which consumers get the events")
        ok = False
    else:
        to_node = fields["to"]
        items = to_node.value if to_node.is_sequence else [to_node]
        if to_node.is_sequence and not items:
            checker.error(to_node, join(path, "to"), "is empty; name at least one consumer")
            ok = False
        to_path = join(path, "to")
        located = [
            (item, join(to_path, index) if to_node.is_sequence else to_path)
            for index, item in enumerate(items)
        ]
        targets, all_known = read_name_list(checker, located, consumers, "consumer")
        ok = ok and all_known
    fed.update(targets)
    if not ok or name is None:
        return None
    where = fields.get("filter", fields.get("pattern", node))
    return RouteConfig(
        name=name,
        to=tuple(targets),
        filter=filter_,
        transform=transform,
        line=where.line,
        column=where.column,
        pattern=pattern,
    )


def read_pattern(checker: Checker, node: Node, path: str) -> Pattern | None:
    """A route's EventBridge event pattern: YAML, or a JSON object written as a string.

    A problem is reported where it is: at the YAML node the pattern's own path leads to
    (`routes[2].pattern.detail.amount[0].numeric`), or at the string holding the JSON.
    """
    from evroute import patterns  # configs without a pattern never load it

    if isinstance(node.value, str):
        source = checker.string(node, path)
        if source is None:
            return None
        try:
            value = json.loads(source, parse_constant=_not_json_constant, parse_float=_finite_float)
        except ValueError as error:
            offset = getattr(error, "pos", None)
            line, column = source_position(node, offset)
            where = f" at position {offset}" if offset is not None else ""
            message = getattr(error, "msg", str(error))
            checker.report(
                "error",
                node,
                path,
                f"the pattern is not valid JSON: {message}{where}; write it as a JSON object"
                " in a string, or as YAML",
                line=line,
                column=column,
            )
            return None
    elif node.is_mapping:
        value = json_value(checker, node, path)
        if value is INVALID:
            return None
    else:
        checker.error(
            node,
            path,
            "expected an event pattern (a mapping, or a JSON object in a string),"
            f" got {describe(node.value)}",
        )
        return None
    try:
        return patterns.compile(value)
    except patterns.PatternError as error:
        at, at_path = pattern_node(node, path, error.path)  # in a JSON string: the string
        checker.error(at, at_path, error.message)
        return None


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of the range of a number")
    return number


def pattern_node(node: Node, path: str, steps: tuple[str | int, ...]) -> tuple[Node, str]:
    """The deepest YAML node along a pattern's path, and the config path to it; the
    path is followed as far as the YAML goes, and the rest named after it."""
    found = True
    for step in steps:
        if isinstance(step, str):
            found = found and node.is_mapping and step in node.value
        else:
            found = found and node.is_sequence and 0 <= step < len(node.value)
        if found:
            node = node.value[step]
        # else the node reached is the closest place the YAML has
        path = join(path, step)
    return node, path


def warn_constant(checker: Checker, node: Node, path: str, filter_: expr.Expression) -> None:
    """A filter that reads nothing of the event decides the same for every event."""
    try:
        matches = filter_.test({})
    except expr.ExpressionError as error:
        checker.warning(node, path, f"fails for every event ({error}): nothing will match")
        return
    if matches:
        checker.warning(node, path, "is constant and true: every event matches (drop the filter)")
    else:
        checker.warning(node, path, "is constant and false: no event will ever match")


def read_tests(
    checker: Checker, node: Node, routes: set[str], consumers: Mapping[str, Node]
) -> list[TestCase]:
    """The `tests:` section: each case's event, the routes it must match and, optionally,
    what consumers must get. `routes` and `consumers` are every name the config gives,
    so that a route with an error of its own does not also fail each test naming it."""
    if not node.is_sequence:
        checker.error(node, "tests", f"expected a list of tests, got {describe(node.value)}")
        return []
    cases: list[TestCase] = []
    names: dict[str, Node] = {}
    for index, case_node in enumerate(node.value):
        path = join("tests", index)
        fields = checker.mapping(case_node, path)
        if fields is None:
            continue
        checker.known_keys(case_node, path, TEST_KEYS)
        ok = True
        name: str | None = None
        if "name" not in fields:
            checker.error(case_node, join(path, "name"), "missing; every test needs a name")
            ok = False
        else:
            name = checker.string(fields["name"], join(path, "name"))
            if name is not None and name in names:
                checker.error(
                    fields["name"],
                    join(path, "name"),
                    f"duplicate test name {name!r} (first at line {names[name].line})",
                )
                ok = False
            elif name is not None:
                names[name] = fields["name"]
        event: dict[str, Any] | None = None
        if "event" not in fields:
            checker.error(case_node, join(path, "event"), "missing; the event to route")
        elif not fields["event"].is_mapping:
            checker.error(
                fields["event"],
                join(path, "event"),
                f"expected an event (a JSON object), got {describe(fields['event'].value)}",
            )
        else:
            value = json_value(checker, fields["event"], join(path, "event"))
            event = value if isinstance(value, dict) else None
        expected = read_test_routes(checker, case_node, fields, join(path, "routes"), routes)
        outputs: dict[str, list[Any]] | None = None
        if "outputs" in fields:
            outputs = read_test_outputs(
                checker, fields["outputs"], join(path, "outputs"), consumers
            )
            ok = ok and outputs is not None
        if ok and name is not None and event is not None and expected is not None:
            cases.append(TestCase(name, event, expected, outputs, case_node.line, case_node.column))
    return cases


def read_test_routes(
    checker: Checker, node: Node, fields: dict[str, Node], path: str, routes: set[str]
) -> frozenset[str] | None:
    if "routes" not in fields:
        checker.error(
            node, path, "missing; list exactly the routes the event must match ([] for none)"
        )
        return None
    routes_node = fields["routes"]
    if not routes_node.is_sequence:
        checker.error(
            routes_node, path, f"expected a list of route names, got {describe(routes_node.value)}"
        )
        return None
    located = [(item, join(path, index)) for index, item in enumerate(routes_node.value)]
    names, ok = read_name_list(checker, located, routes, "route")
    return frozenset(names) if ok else None


def read_name_list(
    checker: Checker, items: list[tuple[Node, str]], known: Iterable[str], what: str
) -> tuple[list[str], bool]:
    """The names of known routes or consumers, each once; False when one was wrong
    (said where, with the closest known name)."""
    choices = sorted(known)
    names: list[str] = []
    ok = True
    for item, item_path in items:
        name = checker.string(item, item_path)
        if name is None:
            ok = False
        elif name not in choices:
            close = difflib.get_close_matches(name, choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            checker.error(item, item_path, f"no {what} is named {name!r}{hint}")
            ok = False
        elif name in names:
            checker.error(item, item_path, f"{what} {name!r} is listed twice")
            ok = False
        else:
            names.append(name)
    return names, ok


def read_test_outputs(
    checker: Checker, node: Node, path: str, consumers: Mapping[str, Node]
) -> dict[str, list[Any]] | None:
    if not node.is_mapping:
        checker.error(
            node,
            path,
            f"expected a mapping of consumer names to lists of events, got {describe(node.value)}",
        )
        return None
    outputs: dict[str, list[Any]] = {}
    ok = True
    for name, value_node in node.value.items():
        item_path = join(path, name)
        if name not in consumers:
            close = difflib.get_close_matches(name, list(consumers), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            checker.error(node.keys[name], item_path, f"no consumer is named {name!r}{hint}")
            ok = False
            continue
        if not value_node.is_sequence:
            checker.error(
                value_node,
                item_path,
                "expected a list of what the consumer gets (one item a delivery),"
                f" got {describe(value_node.value)}",
            )
            ok = False
            continue
        value = json_value(checker, value_node, item_path)
        if isinstance(value, list):
            outputs[name] = value
        else:
            ok = False
    return outputs if ok else None
