"""The config's JSON Schema (draft 2020-12), for editors (yaml-language-server).

Built from the tables the checker itself uses: the key lists of each section, the sink
kinds' keys, the choices and the defaults of the model's dataclasses. Only the shape of
each key's value is written here, in VALUE_SCHEMAS; a key the checker accepts without an
entry there makes `config_schema()` fail, so the schema cannot fall behind the checker.
The checker stays the authority: the schema cannot see cross-references (`to` naming a
real consumer, unique route names) nor parse JMESPath.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from evroute.config.checker import DEAD_LETTER_KEYS, NAME_PATTERN
from evroute.config.model import (
    FIELDS_MODES,
    ON_FULL_POLICIES,
    UNMATCHED_DEAD_LETTER,
    UNMATCHED_DROP,
    Config,
    QueueSettings,
)
from evroute.config.units import _DURATION, _SIZE
from evroute.loading import build as check
from evroute.loading.inputs import INPUT_KEYS, INPUT_KINDS
from evroute.nats.options import CONNECTION_KEYS, TLS_KEYS
from evroute.processes import RestartPolicy
from evroute.sinks import SINK_KINDS
from evroute.sinks.archive import ArchiveOptions
from evroute.sinks.command import ACK_MODES, LONG_RUNNING_KEYS, PER_EVENT_KEYS, CommandOptions
from evroute.sinks.file import FileOptions
from evroute.sinks.nats import NATS_CONSUMER_KEYS

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]

# A plain `${VAR}` value takes the type of what it expands to (`buffer: ${BUFFER:-100}`),
# which an editor cannot know: any string holding a reference is let through.
ENV_STRING: Schema = {"type": "string", "pattern": r"\$\{"}
SIZE: Schema = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": _SIZE.pattern},
        ENV_STRING,
    ],
    "description": "bytes, or a size such as 64KiB, 1MiB, 1GiB (also KB, MB, GB)",
}
DURATION: Schema = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": _DURATION.pattern},
        ENV_STRING,
    ],
    "description": "seconds, or a duration such as 250ms, 10s, 5m, 1h",
}
NAME: Schema = {"type": "string", "pattern": NAME_PATTERN.pattern}


def integer(minimum: int) -> Schema:
    return {"anyOf": [{"type": "integer", "minimum": minimum}, ENV_STRING]}


def choice(choices: Iterable[str]) -> Schema:
    return {"anyOf": [{"enum": list(choices)}, ENV_STRING]}


BOOLEAN: Schema = {"anyOf": [{"type": "boolean"}, ENV_STRING]}
STRING: Schema = {"type": "string", "minLength": 1}
NULLABLE_STRING: Schema = {"type": ["string", "null"], "minLength": 1}
JMESPATH: Schema = {"type": "string", "minLength": 1, "description": "a JMESPath expression"}


def _restart_schema() -> Schema:

    values = {"max": integer(0), "backoff": DURATION, "max_backoff": DURATION}
    return _object(_keys(RestartPolicy), values, _defaults(RestartPolicy))


def _keys(model: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(model))


def _defaults(model: type) -> dict[str, object]:
    """The model's own defaults, the ones a config that leaves a key out gets."""
    return {
        field.name: field.default
        for field in dataclasses.fields(model)
        if field.default is not dataclasses.MISSING and not dataclasses.is_dataclass(field.default)
    }


# The shape of each key's value; which keys exist comes from the checker's tables.
VALUE_SCHEMAS: dict[str, Schema] = {
    # top level
    "version": {"const": 1, "description": "the config format's version: 1"},
    "dead_letter": {
        **NULLABLE_STRING,
        "description": "a path; without one, dead letters are only counted",
    },
    "unmatched": {
        "anyOf": [{"enum": [UNMATCHED_DROP, UNMATCHED_DEAD_LETTER]}, NAME],
        "description": "drop | dead_letter | a consumer's name",
    },
    "max_event_bytes": SIZE,
    "shutdown_timeout": DURATION,
    # the dead letter file as a mapping, and file rotation (dead letters, file consumers)
    "path": {**STRING, "description": "the dead letter file, relative to the config"},
    "rotate_bytes": SIZE,
    "rotate_keep": integer(0),
    # queue settings, in defaults and in each consumer
    "buffer": integer(1),
    "buffer_bytes": SIZE,
    "on_full": choice(ON_FULL_POLICIES),
    "spill_max_bytes": SIZE,
    "retries": integer(0),
    # routes
    "name": NAME,
    "filter": {**JMESPATH, "description": "JMESPath; truthy = match; none matches every event"},
    "pattern": {
        "anyOf": [{"type": "object"}, {"type": "string"}],
        "description": "an EventBridge event pattern, as YAML or a JSON string; instead of"
        " a filter",
    },
    "transform": {**JMESPATH, "description": "JMESPath; its result is delivered"},
    "to": {
        "anyOf": [NAME, {"type": "array", "items": NAME, "minItems": 1, "uniqueItems": True}],
        "description": "the consumers that get the route's events",
    },
    # file consumers
    "file": {
        **STRING,
        "description": 'a path relative to the config; "-" is stdout; {JMESPath} templates',
    },
    "mode": choice(("append", "overwrite")),  # written inline in sinks/file.py
    "max_open_files": integer(1),
    # a file consumer's `encrypt`; the top-level `encrypt:` is a mapping (config_schema())
    "encrypt": {**BOOLEAN, "description": "seal the file with the key of the top-level encrypt:"},
    # archive consumers
    "archive": {**STRING, "description": "the archive's folder, relative to the config"},
    # command consumers (ack and restart: in config_schema(), from the sink kind's tables)
    "command": {
        "anyOf": [STRING, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
        "description": "argv; a string is split like a shell would, but no shell runs",
    },
    "per_event": BOOLEAN,
    "concurrency": integer(1),
    "key": {"type": ["string", "null"], "minLength": 1, "description": "a JMESPath expression"},
    "timeout": DURATION,
    # every consumer: its subscribe policy
    "fields": {
        "type": "object",
        "properties": {
            mode: {
                "type": "array",
                "items": {**STRING, "description": "a path: names, dots and [*]"},
                "minItems": 1,
            }
            for mode in FIELDS_MODES
        },
        "additionalProperties": False,
        "oneOf": [{"required": [mode]} for mode in FIELDS_MODES],
        "description": "what the consumer sees: include (only these paths) or redact"
        " (all but these)",
    },
}


def _object(
    keys: Iterable[str], values: Mapping[str, Schema], defaults: Mapping[str, object] | None = None
) -> Schema:
    """An object with exactly `keys`, each with its value schema and its default."""
    properties: dict[str, Schema] = {}
    for key in keys:
        schema = dict(values[key])  # KeyError: the checker has a key the schema lacks
        if defaults and key in defaults:
            schema["default"] = defaults[key]
        properties[key] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _consumer_schemas(values: dict[str, Schema]) -> list[Schema]:

    option_models: dict[str, type] = {
        "file": FileOptions,
        "command": CommandOptions,
        "archive": ArchiveOptions,
    }
    schemas = []
    for kind in SINK_KINDS.values():
        model = option_models.get(kind.name)
        defaults = _defaults(model) if model is not None else {}
        # the queue settings' defaults come from `defaults:`, not from the schema
        schema = _object((*kind.keys, *check.QUEUE_KEYS, *check.CONSUMER_KEYS), values, defaults)
        schema["required"] = [kind.name]
        schema["title"] = f"a {kind.name} consumer"
        if kind.name == "command":
            # each kind of command has its own keys (per_event: true, or not)
            per_event: Schema = {
                "properties": {"per_event": {"const": True}},
                "required": ["per_event"],
            }
            schema["if"] = per_event
            schema["then"] = {"not": {"anyOf": [{"required": [k]} for k in LONG_RUNNING_KEYS]}}
            schema["else"] = {"not": {"anyOf": [{"required": [k]} for k in PER_EVENT_KEYS]}}
        schemas.append(schema)
    return schemas


def _nats_schema(for_input: bool) -> Schema:
    """A `nats:` mapping: the connection, and what an input reads or a consumer publishes."""
    from evroute.sources.nats import NATS_INPUT_KEYS, NatsInputOptions

    server: Schema = {**STRING, "description": "nats://HOST:PORT or tls://HOST:PORT"}
    file_path: Schema = {**STRING, "description": "a file, relative to the config"}
    stream_spec = _object(
        ("name", "subjects"),
        {"name": STRING, "subjects": {"type": "array", "items": STRING, "minItems": 1}},
    )
    stream_spec["required"] = ["name", "subjects"]
    shapes: dict[str, Schema] = {
        "url": {"anyOf": [server, {"type": "array", "items": server, "minItems": 1}]},
        "tls": _object(TLS_KEYS, dict.fromkeys(TLS_KEYS, file_path)),
        "creds": {**file_path, "description": "a NATS credentials file"},
        "user": STRING,
        "password": {"type": "string"},
        "stream": {
            "anyOf": [STRING, stream_spec],
            "description": "a stream that exists, or {name, subjects}: created when missing",
        },
        "subject": STRING,
        "durable": {**STRING, "description": "instances with the same durable share the messages"},
        "batch": integer(1),
        "ack_wait": DURATION,
        "max_ack_pending": integer(1),
    }
    keys = NATS_INPUT_KEYS if for_input else NATS_CONSUMER_KEYS
    defaults = _defaults(NatsInputOptions) if for_input else {}
    schema = _object(keys, shapes, defaults)
    schema["required"] = ["url", "stream"] if for_input else ["url", "subject"]
    assert set(CONNECTION_KEYS) <= set(keys)
    return schema


def _tests_schema() -> Schema:
    """`tests:`, run by `evroute test`. Its keys have their own shapes: a test's name is
    free text, and `routes` there lists route names."""
    values: dict[str, Schema] = {
        "name": {**STRING, "description": "what the test checks, in words"},
        "event": {"type": "object", "description": "the event to route"},
        "routes": {
            "type": "array",
            "items": NAME,
            "uniqueItems": True,
            "description": "exactly the routes the event must match ([] for none)",
        },
        "outputs": {
            "type": "object",
            "propertyNames": NAME,
            "additionalProperties": {"type": "array"},
            "description": "consumer: exactly what it must get, in order",
        },
    }
    case = {**_object(check.TEST_KEYS, values), "required": ["name", "event", "routes"]}
    return {
        "type": ["array", "null"],
        "items": case,
        "description": "routing tests, run by evroute test",
    }


def _inputs_schema(values: Mapping[str, Schema]) -> Schema:
    """`inputs:`, the producers: one kind each, and what sources each may publish."""

    shapes: dict[str, Schema] = {
        "name": NAME,
        "file": {**STRING, "description": "a file glob, relative to the config"},
        "stdin": {"const": True},
        "command": values["command"],
        "restart": values["restart"],
        "nats": {**_nats_schema(for_input=True), "description": "a NATS JetStream stream"},
        "publish": {
            "type": "array",
            "items": STRING,
            "description": "the event sources it may publish (globs such as com.example.*)",
        },
    }
    item = _object(INPUT_KEYS, shapes)
    item["required"] = ["name"]
    item["oneOf"] = [{"required": [kind]} for kind in INPUT_KINDS]
    return {"type": ["array", "null"], "items": item, "description": "the producers"}


def _encrypt_schema() -> Schema:
    """`encrypt:`: exactly one of key_env and key_file."""
    shapes: dict[str, Schema] = {
        "key_env": {**STRING, "description": "an environment variable holding the key"},
        "key_file": {**STRING, "description": "a file holding the key, relative to the config"},
    }
    mapping = _object(check.ENCRYPT_KEYS, shapes)
    mapping["oneOf"] = [{"required": [key]} for key in check.ENCRYPT_KEYS]
    return {
        "anyOf": [{"type": "null"}, mapping],
        "description": "encrypt the files evroute keeps (dead letters, spill, audit,"
        " archives); the key is 32 bytes in base64, made by evroute keygen",
    }


def config_schema() -> Schema:
    """The JSON Schema of a version 1 config."""

    values = {**VALUE_SCHEMAS, "ack": choice(ACK_MODES), "restart": _restart_schema()}
    values["nats"] = {
        **_nats_schema(for_input=False),
        "description": "publish each event to NATS JetStream",
    }
    values["defaults"] = _object(check.QUEUE_KEYS, values, _defaults(QueueSettings))
    values["consumers"] = {
        "type": "object",
        "minProperties": 1,
        "propertyNames": NAME,
        "additionalProperties": {"oneOf": _consumer_schemas(values)},
    }
    values["routes"] = {
        "type": "array",
        "minItems": 1,
        "items": {
            **_object(check.ROUTE_KEYS, values),
            "required": ["name", "to"],
            "not": {"required": ["filter", "pattern"]},  # one or the other
        },
    }
    mapping = {**_object(DEAD_LETTER_KEYS, values), "required": ["path"]}
    values["dead_letter"] = {
        "anyOf": [VALUE_SCHEMAS["dead_letter"], mapping],
        "description": "a path, or {path, rotate_bytes, rotate_keep}; without one,"
        " dead letters are only counted",
    }
    values["audit"] = {
        "anyOf": [NULLABLE_STRING, mapping],
        "description": "the audit log: a path, or {path, rotate_bytes, rotate_keep}",
    }
    values["tests"] = _tests_schema()
    values["encrypt"] = _encrypt_schema()
    values["inputs"] = _inputs_schema(values)
    top = _object(check.TOP_LEVEL_KEYS, values, _defaults(Config))
    return {
        "$schema": SCHEMA_DRAFT,
        "title": "evroute routing config, version 1",
        **top,
        "required": ["version", "consumers", "routes"],
    }
