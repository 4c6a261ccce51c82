"""`evroute import eventbridge`: a routing config from the rules of `aws events list-rules`.

Each rule becomes a route with its event pattern as `pattern:`; each target becomes a
`file:` consumer under out/ that records what the target would receive, ready to be
swapped for a real consumer. What a target does with events beyond what it receives
(roles, retries, its own dead letters) has no place in a local router and is only noted.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evroute.errors import EvrouteError

# AWS states a rule can be in that match events
ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
TARGET_MAPPED_KEYS = ("Id", "Arn", "Input", "InputPath", "InputTransformer")
NOT_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")
PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.-]*$")
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# words some YAML reader takes for null or a boolean: such keys and names are quoted
YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}
# characters a YAML stream may not hold raw (PyYAML's reader), or that break a line
NOT_RAW_IN_YAML = re.compile(
    "[^\x09\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")
BARE_MARK = re.compile("\ue000([0-9]+)\ue001")
TEXT_MARK = re.compile("\ue002([0-9]+)\ue003")
JMESPATH_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# one step of a simple JSONPath: .name, ['name'], ["name"] or [index]
JSONPATH_STEP = re.compile(
    r"""\.(?P<name>[^.\[\]*'"\s]+)|\[(?:'(?P<single>[^']*)'|"(?P<double>[^"]*)"|(?P<index>\d+))\]"""
)


class EventBridgeImportError(EvrouteError):
    """The input is not what `aws events list-rules` or `list-targets-by-rule` print."""


@dataclass(frozen=True)
class Rule:
    """One rule of list-rules; `pattern` is None for a rule without an event pattern."""

    name: str
    pattern: dict[str, Any] | None
    arn: str = ""
    state: str = "ENABLED"
    description: str = ""
    event_bus: str = ""
    schedule: str = ""
    managed_by: str = ""


@dataclass(frozen=True)
class Target:
    """One target of a rule, with the transform that gives what it receives."""

    id: str
    arn: str
    transform: str | None = None  # JMESPath; None: the event as it is
    notes: tuple[str, ...] = ()  # how its input was mapped, or why it was not
    unmapped: str | None = None  # why its input could not be mapped, for a warning


@dataclass
class Imported:
    """The config's text, and what the user should know about it (for stderr)."""

    text: str
    warnings: list[str] = field(default_factory=list)


def load_json(data: bytes, source: str) -> Any:
    """The JSON document in `data`; an error says where it is not JSON."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise EventBridgeImportError(
            f"{source}: not UTF-8 text (byte {error.start}): expected the JSON that aws prints"
        ) from None
    try:
        return json.loads(text, parse_constant=reject_constant)
    except ValueError as error:
        where = (
            f"{source}:{error.lineno}:{error.colno}"
            if isinstance(error, json.JSONDecodeError)
            else source
        )
        message = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        raise EventBridgeImportError(
            f"{where}: not JSON ({message}); expected the JSON that aws prints"
        ) from None


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_rules(data: bytes, source: str) -> tuple[list[Rule], list[str]]:
    """The rules of list-rules output, in order, and warnings; every problem is reported
    at once."""
    document = load_json(data, source)
    if not isinstance(document, dict) or not isinstance(document.get("Rules"), list):
        found = (
            f"an object with keys {', '.join(map(repr, list(document)[:5])) or 'none'}"
            if isinstance(document, dict)
            else f"a JSON {json_kind(document)}"
        )
        raise EventBridgeImportError(
            f"{source} is not the output of `aws events list-rules`: expected an object"
            f' with a "Rules" list, found {found}'
        )
    warnings = []
    if document.get("NextToken"):
        warnings.append(
            f"{source} has a NextToken: it holds one page of the rules only; run"
            " `aws events list-rules` without --max-items to get them all"
        )
    rules, problems = [], []
    for index, entry in enumerate(document["Rules"]):
        where = f"{source}: Rules[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: a rule is an object, not a {json_kind(entry)}")
            continue
        name = entry.get("Name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: has no Name (a string)")
            continue
        where = f"{where} (rule {name!r})"
        texts = {}
        for key in ("Arn", "State", "Description", "EventBusName", "ScheduleExpression"):
            value = entry.get(key, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                problems.append(f"{where}: {key} must be a string, not a {json_kind(value)}")
                value = ""
            texts[key] = value
        pattern = None
        if entry.get("EventPattern") is not None:
            try:
                pattern = read_pattern(entry["EventPattern"])
            except ValueError as error:
                problems.append(f"{where}: EventPattern {error}")
                continue
        elif not texts["ScheduleExpression"]:
            problems.append(f"{where}: has neither EventPattern nor ScheduleExpression")
            continue
        managed_by = entry.get("ManagedBy")
        rules.append(
            Rule(
                name=name,
                pattern=pattern,
                arn=texts["Arn"],
                state=texts["State"] or "ENABLED",
                description=texts["Description"],
                event_bus=texts["EventBusName"],
                schedule=texts["ScheduleExpression"],
                managed_by=managed_by if isinstance(managed_by, str) else "",
            )
        )
    if problems:
        raise EventBridgeImportError("\n".join(problems))
    return rules, warnings


def read_pattern(value: Any) -> dict[str, Any]:
    """An EventPattern: list-rules gives it as a JSON string (an object is taken too)."""
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=reject_constant)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"is not valid JSON: {error.msg} at character {error.pos + 1}"
            ) from None
        except ValueError as error:
            raise ValueError(f"is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, not a {json_kind(value)}")
    return value


def read_targets(data: bytes, source: str) -> dict[str, list[Target]]:
    """Targets by rule name from one file. The file is the output of
    `aws events list-targets-by-rule` named `<rule name>.json`, or that output with a
    "RuleName" added, or an object {rule name: that output}."""
    document = load_json(data, source)
    expected = (
        f'{source} is not the output of `aws events list-targets-by-rule`: expected {{"Targets":'
        ' [...]}} in a file named <rule name>.json, {"RuleName": NAME, "Targets": [...]}'
        ' or {NAME: {"Targets": [...]}, ...}'
    )
    if not isinstance(document, dict):
        raise EventBridgeImportError(f"{expected}; found a JSON {json_kind(document)}")
    if "Targets" in document:
        rule = document.get("RuleName", Path(source).stem)
        if not isinstance(rule, str) or not rule:
            raise EventBridgeImportError(f'{source}: "RuleName" must be a rule\'s name')
        listings = {rule: document}
    else:
        listings = document
    by_rule: dict[str, list[Target]] = {}
    problems: list[str] = []
    for rule, listing in listings.items():
        entries = listing.get("Targets") if isinstance(listing, dict) else listing
        if not isinstance(entries, list):
            raise EventBridgeImportError(f"{expected}; {rule!r} holds no Targets list")
        targets = []
        for index, entry in enumerate(entries):
            where = f"{source}: rule {rule!r}: Targets[{index}]"
            if not isinstance(entry, dict):
                problems.append(f"{where}: a target is an object, not a {json_kind(entry)}")
                continue
            ident, arn = entry.get("Id"), entry.get("Arn")
            if not isinstance(ident, str) or not ident or not isinstance(arn, str):
                problems.append(f"{where}: needs an Id and an Arn (strings)")
                continue
            targets.append(read_target(entry, ident, arn, rule))
        by_rule[rule] = targets
    if problems:
        raise EventBridgeImportError("\n".join(problems))
    return by_rule


def read_target(entry: dict[str, Any], ident: str, arn: str, rule: str) -> Target:
    """The target, with how its input was mapped, or why not."""
    notes: list[str] = []
    transform, unmapped = None, None
    if "Input" in entry:
        notes.append(f"Input {entry['Input']}")
        try:
            transform = jmespath_literal(json.loads(entry["Input"], parse_constant=reject_constant))
        except (TypeError, ValueError):
            unmapped = "its Input is not JSON"
    elif "InputPath" in entry:
        notes.append(f"InputPath {entry['InputPath']}")
        path = entry["InputPath"]
        mapped = jsonpath_to_jmespath(path) if isinstance(path, str) else None
        if mapped is None:
            unmapped = f"its InputPath {path} is not a simple path ($.a.b, $['a-b'], $.a[0])"
        else:
            transform = None if mapped == "@" else mapped
    elif "InputTransformer" in entry:
        transformer = entry["InputTransformer"]
        if isinstance(transformer, dict):
            for key in ("InputPathsMap", "InputTemplate"):
                if key in transformer:
                    value = transformer[key]
                    shown = value if isinstance(value, str) else json.dumps(value)
                    notes.append(f"InputTransformer {key}: {shown}")
        try:
            transform = transformer_to_jmespath(transformer, rule)
        except ValueError as error:
            unmapped = f"its InputTransformer is not mapped: {error}"
    if unmapped is not None:
        unmapped += "; the target gets the whole event here: write its transform: by hand"
        notes.append(f"NOT MAPPED: {unmapped}")
    others = [key for key in entry if key not in TARGET_MAPPED_KEYS]
    if others:
        notes.append(f"not mapped (no local meaning): {', '.join(others)}")
    return Target(ident, arn, transform, tuple(notes), unmapped)


def transformer_to_jmespath(transformer: Any, rule: str) -> str | None:
    """The JMESPath giving what an InputTransformer makes of an event, for templates that
    are JSON; ValueError says why one is not mapped."""
    if not isinstance(transformer, dict) or not isinstance(transformer.get("InputTemplate"), str):
        raise ValueError("it has no InputTemplate (a string)")
    paths = transformer.get("InputPathsMap", {})
    if not isinstance(paths, dict):
        raise ValueError("the InputPathsMap is not an object")
    variables = {
        "aws.events.rule-name": jmespath_literal(rule),
        "aws.events.event": "@",
        "aws.events.event.json": "@",
    }
    for name, path in paths.items():
        mapped = jsonpath_to_jmespath(path) if isinstance(path, str) else None
        if mapped is None:
            raise ValueError(f"{name}: {path} is not a simple path ($.a.b, $['a-b'], $.a[0])")
        variables[name] = mapped
    template = transformer["InputTemplate"]
    expressions: list[str] = []
    marked, position, in_string = [], 0, False
    while position < len(template):
        character = template[position]
        placeholder = PLACEHOLDER.match(template, position)
        if placeholder is not None and placeholder[1] in variables:
            expressions.append(variables[placeholder[1]])
            number = len(expressions) - 1
            # inside a JSON string a value is put as text, outside as JSON
            marked.append(f"\ue002{number}\ue003" if in_string else f'"\ue000{number}\ue001"')
            position = placeholder.end()
            continue
        if in_string and character == "\\":
            marked.append(template[position : position + 2])
            position += 2
            continue
        if character == '"':
            in_string = not in_string
        marked.append(character)
        position += 1
    try:
        shape = json.loads("".join(marked), parse_constant=reject_constant)
    except ValueError:
        raise ValueError("the InputTemplate is not JSON (evroute delivers JSON only)") from None
    expression = template_expression(shape, expressions)
    return None if expression == "@" else expression


def template_expression(shape: Any, expressions: list[str]) -> str:
    """The JMESPath building `shape`, a parsed template with placeholders marked."""
    if not has_placeholder(shape):
        return jmespath_literal(shape)
    if isinstance(shape, dict):
        fields = (
            f"{jmespath_identifier(key)}: {template_expression(value, expressions)}"
            for key, value in shape.items()
        )
        return "{" + ", ".join(fields) + "}"
    if isinstance(shape, list):
        return "[" + ", ".join(template_expression(item, expressions) for item in shape) + "]"
    whole = BARE_MARK.fullmatch(shape)
    if whole is not None:
        return expressions[int(whole[1])]
    parts = []
    for index, piece in enumerate(TEXT_MARK.split(shape)):
        if index % 2:
            parts.append(f"to_string({expressions[int(piece)]})")
        elif piece:
            parts.append(jmespath_literal(piece))
    return f"join('', [{', '.join(parts)}])"


def has_placeholder(shape: Any) -> bool:
    if isinstance(shape, dict):
        return any(has_placeholder(value) for value in shape.values())
    if isinstance(shape, list):
        return any(has_placeholder(item) for item in shape)
    return isinstance(shape, str) and ("\ue000" in shape or "\ue002" in shape)


def jmespath_identifier(name: str) -> str:
    return name if JMESPATH_IDENTIFIER.match(name) else json.dumps(name)


def jsonpath_to_jmespath(path: str) -> str | None:
    """The JMESPath of a simple JSONPath ($, $.a.b, $['a-b'], $.a[0]); None for others."""
    if not path.startswith("$"):
        return None
    steps, position = [], 1
    while position < len(path):
        match = JSONPATH_STEP.match(path, position)
        if match is None:
            return None
        position = match.end()
        if match["index"] is not None:
            steps.append(f"[{int(match['index'])}]")
            continue
        name = next(part for part in match.group("name", "single", "double") if part is not None)
        identifier = jmespath_identifier(name)
        steps.append(f".{identifier}" if steps else identifier)
    return "".join(steps) or "@"


def jmespath_literal(value: Any) -> str:
    """A JMESPath expression whose value is `value` (a JSON literal)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "`" + text.replace("`", "\\`") + "`"


def json_kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def clean_name(text: str, fallback: str) -> str:
    """`text` made a valid evroute name: other characters become '-'."""
    name = NOT_NAME_CHARACTERS.sub("-", text).strip("-")
    if not name.strip("."):
        return fallback
    return name


class Names:
    """Unique names: a taken one gets -2, -3... Compared without case, so that the files
    named after them stay apart on case-insensitive file systems."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def unique(self, wanted: str) -> str:
        name, number = wanted, 1
        while name.lower() in self.taken:
            number += 1
            name = f"{wanted}-{number}"
        self.taken.add(name.lower())
        return name


@dataclass
class Consumer:
    name: str
    target: Target | None
    rules: list[str]


@dataclass
class Route:
    name: str
    rule: Rule
    transform: str | None
    consumers: list[Consumer]
    targets: list[Target]
    routes_of_rule: int = 1  # more when its targets receive different inputs


def build_config(
    rules: list[Rule],
    targets: dict[str, list[Target]],
    sources: list[str],
    config_name: str = "routes.yaml",
    include_disabled: bool = False,
) -> Imported:
    """The routing config for `rules`, in their order, and warnings."""
    warnings = []
    known = {rule.name for rule in rules}
    for name in targets:
        if name not in known:
            warnings.append(
                f"targets given for rule {name!r}, which the rules do not list: ignored"
            )
    # by target (Id, ARN), or ("", rule name) for a rule's own consumer
    consumers: dict[tuple[str, str], Consumer] = {}
    consumer_names, route_names = Names(), Names()
    routes: list[Route | Rule] = []  # a Rule alone: skipped, said in a comment
    for rule in rules:
        if rule.pattern is None:
            warnings.append(
                f"rule {rule.name!r} runs on a schedule ({rule.schedule}), not on events: skipped"
            )
            routes.append(rule)
            continue
        if rule.state not in ENABLED_STATES and not include_disabled:
            warnings.append(
                f"rule {rule.name!r} is {rule.state}: skipped (--include-disabled imports it)"
            )
            routes.append(rule)
            continue
        rule_targets = targets.get(rule.name, [])
        for target in rule_targets:
            if target.unmapped is not None:
                warnings.append(f"rule {rule.name!r}, target {target.id!r}: {target.unmapped}")
        groups: dict[str | None, list[Target]] = {}
        for target in rule_targets:
            groups.setdefault(target.transform, []).append(target)
        base = clean_name(rule.name, "rule")
        if not groups:
            name = route_names.unique(base)
            own = consumer_names.unique(name)
            consumer = Consumer(own, None, [rule.name])
            consumers[("", rule.name)] = consumer
            routes.append(Route(name, rule, None, [consumer], []))
            continue
        for transform, group in groups.items():
            split = len(groups) > 1
            wanted = clean_name(f"{rule.name}.{group[0].id}", base) if split else base
            if transform is None:
                wanted = base
            route = Route(route_names.unique(wanted), rule, transform, [], group, len(groups))
            for target in group:
                # the same target of several rules is one consumer: it gets all their events
                key = (target.id, target.arn)
                if key not in consumers:
                    wanted_consumer = clean_name(target.id, "target")
                    if wanted_consumer.lower() in consumer_names.taken:
                        wanted_consumer = clean_name(f"{rule.name}.{target.id}", wanted_consumer)
                    consumers[key] = Consumer(consumer_names.unique(wanted_consumer), target, [])
                consumer = consumers[key]
                if rule.name not in consumer.rules:
                    consumer.rules.append(rule.name)
                if consumer not in route.consumers:
                    route.consumers.append(consumer)
            routes.append(route)
    if not any(isinstance(route, Route) for route in routes):
        raise EventBridgeImportError(nothing_to_import(rules, sources[0]))
    return Imported(render(routes, list(consumers.values()), sources, config_name), warnings)


def nothing_to_import(rules: list[Rule], source: str) -> str:
    """Why no route came of `rules` (a config needs one)."""
    scheduled = sum(1 for rule in rules if rule.pattern is None)
    disabled = len(rules) - scheduled
    skipped = []
    if scheduled:
        skipped.append(f"{scheduled} scheduled")
    if disabled:
        skipped.append(f"{disabled} disabled: --include-disabled imports them")
    found = f"skipped {', '.join(skipped)}" if skipped else "it lists none"
    return f"{source}: no rule to import ({found}); a config needs at least one route"


def render(
    routes: list[Route | Rule], consumers: list[Consumer], sources: list[str], config_name: str
) -> str:
    """The config's YAML, written by hand for its comments; values are JSON, which is
    YAML too, so that no string can be read back as something else."""
    lines = [
        f"# Imported by `evroute import eventbridge` from {comment(sources[0])}"
        " (aws events list-rules)",
    ]
    for source in sources[1:]:
        lines.append(f"#   and {comment(source)} (aws events list-targets-by-rule)")
    lines += [
        "# Each rule is a route with its event pattern. Each target is a file consumer",
        "# under out/ that records what the target would receive (its ARN is noted above",
        "# it): swap it for a real consumer (command: ...) when you are ready.",
        f"#   evroute validate {comment(config_name)}",
        f"#   producer | evroute run {comment(config_name)}",
        "version: 1",
        "",
        "consumers:",
    ]
    for consumer in consumers:
        target = consumer.target
        if target is None:
            lines.append(f"  # rule {comment(consumer.rules[0])} has no targets")
        else:
            rules = ", ".join(consumer.rules)
            about = f"target {comment(target.id)} of rule {comment(rules)}"
            lines.append(f"  # {about}: {comment(target.arn)}")
        lines.append(f"  {yaml_name(consumer.name)}:")
        lines.append(f"    file: out/{consumer.name}.jsonl")
    lines += ["", "routes:"]
    for item in routes:
        if isinstance(item, Rule):
            why = (
                f"runs on a schedule, {item.schedule}, not on events"
                if item.pattern is None
                else f"is {item.state} (--include-disabled imports it)"
            )
            lines.append(f"  # skipped: rule {comment(item.name)} {why}")
            continue
        if lines[-1] != "routes:":
            lines.append("")
        lines += render_route(item)
    return "\n".join(lines) + "\n"


def render_route(route: Route) -> list[str]:
    rule = route.rule
    about = f"rule {comment(rule.name)}"
    if rule.arn:
        about += f": {comment(rule.arn)}"
    lines = [f"  # {about}"]
    for line in rule.description.splitlines():
        lines.append(f"  # {comment(line)}")
    if rule.state not in ENABLED_STATES:
        lines.append(f"  # {comment(rule.state)} in EventBridge: it matches nothing there")
    if rule.event_bus and rule.event_bus != "default":
        lines.append(f"  # on event bus {comment(rule.event_bus)}")
    if route.routes_of_rule > 1:
        lines.append(
            f"  # one of {route.routes_of_rule} routes of this rule: its targets receive"
            " different inputs"
        )
    if rule.managed_by:
        lines.append(f"  # managed by {comment(rule.managed_by)}")
    if rule.schedule:
        lines.append(f"  # also runs on a schedule, {comment(rule.schedule)}: not imported")
    for target in route.targets:
        for note in target.notes:
            lines.append(f"  # target {comment(target.id)}: {comment(note)}")
    lines.append(f"  - name: {yaml_name(route.name)}")
    assert rule.pattern is not None
    lines += render_mapping("pattern", rule.pattern, 4)
    if route.transform is not None:
        lines.append(f"    transform: {yaml_string(route.transform)}")
    lines.append(f"    to: [{', '.join(yaml_name(c.name) for c in route.consumers)}]")
    return lines


def render_mapping(key: str, value: dict[str, Any], indent: int) -> list[str]:
    """`key:` and `value` as a block mapping, its lists and scalars as JSON (flow style)."""
    pad = " " * indent
    if not value:
        return [f"{pad}{yaml_key(key)}: {{}}"]
    lines = [f"{pad}{yaml_key(key)}:"]
    for child_key, child in value.items():
        if isinstance(child, dict):
            lines += render_mapping(child_key, child, indent + 2)
        else:
            lines.append(f"{pad}  {yaml_key(child_key)}: {flow(child)}")
    return lines


def flow(value: Any) -> str:
    """JSON, which is YAML; string values escaped for the config's ${VAR} expansion."""
    if isinstance(value, dict):
        items = (f"{yaml_string(k, key=True)}: {flow(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(item) for item in value) + "]"
    if isinstance(value, str):
        return yaml_string(value)
    return json.dumps(value)


def yaml_string(text: str, key: bool = False) -> str:
    """A double-quoted YAML string; in values a `$` is written `$$`, since evroute
    expands ${VAR} in every string value of a config (keys are not expanded)."""
    quoted = json.dumps(text, ensure_ascii=False)
    quoted = NOT_RAW_IN_YAML.sub(escape_character, quoted)
    return quoted if key else quoted.replace("$", "$$")


def escape_character(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def yaml_key(key: str) -> str:
    plain = PLAIN_KEY.match(key) and key.lower() not in YAML_WORDS
    return key if plain else yaml_string(key, key=True)


def yaml_name(name: str) -> str:
    plain = PLAIN_NAME.match(name) and name.lower() not in YAML_WORDS
    return name if plain else yaml_string(name, key=True)


def comment(text: str) -> str:
    """`text` on one comment line: line breaks and unprintable characters escaped."""
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return NOT_RAW_IN_YAML.sub(escape_character, text)


def import_files(
    rules_file: str,
    target_paths: list[Path],
    output: Path | None = None,
    include_disabled: bool = False,
) -> Imported:
    """Read list-rules output (`-`: stdin) and list-targets-by-rule files or folders of
    them; write the config to `output` when given."""
    rules, warnings = read_rules(read_input(rules_file), rules_file)
    targets: dict[str, list[Target]] = {}
    seen_in: dict[str, str] = {}
    sources = [rules_file]
    for path in target_paths:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise EventBridgeImportError(f"--targets {path}: the folder holds no .json file")
        sources.append(str(path))
        for file in files:
            by_rule = read_targets(read_input(str(file)), str(file))
            for rule, found in by_rule.items():
                if rule in targets:
                    raise EventBridgeImportError(
                        f"{file}: targets of rule {rule!r} are given twice, here and in"
                        f" {seen_in[rule]}; keep one"
                    )
                targets[rule], seen_in[rule] = found, str(file)
    config_name = "routes.yaml" if output is None else str(output)
    imported = build_config(rules, targets, sources, config_name, include_disabled)
    imported.warnings[:0] = warnings
    if output is not None:
        try:
            output.write_text(imported.text, encoding="utf-8")
        except OSError as error:
            raise EventBridgeImportError(
                f"cannot write {output}: {error.strerror or error}"
            ) from None
    return imported


def read_input(name: str) -> bytes:
    """The bytes of a file, or of stdin for `-`."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as error:
        raise EventBridgeImportError(f"cannot read {name}: {error.strerror or error}") from None
