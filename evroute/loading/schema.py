"""The config's JSON Schema (draft 2020-12), for editors (yaml-language-server).

Built from the tables the checker itself uses: the key lists of each section, the schemas
the input and sink kinds give of their own keys (their registrations), the choices and
the defaults of the model's dataclasses. Only the shape of each key's value is written
here, in VALUE_SCHEMAS; a key the checker accepts without an entry there makes
`config_schema()` fail, so the schema cannot fall behind the checker.
The checker stays the authority: the schema cannot see cross-references (`to` naming a
real consumer, unique route names) nor parse JMESPath.
"""

from __future__ import annotations

from evroute.config.checker import DEAD_LETTER_KEYS
from evroute.config.json_schema import (
    DURATION,
    JMESPATH,
    NAME,
    NULLABLE_STRING,
    SIZE,
    STRING,
    Schema,
    choice,
    dataclass_defaults,
    integer,
    object_schema,
)
from evroute.config.model import (
    FIELDS_MODES,
    ON_FULL_POLICIES,
    UNMATCHED_DEAD_LETTER,
    UNMATCHED_DROP,
    Config,
    QueueSettings,
)
from evroute.loading.build import CONSUMER_KEYS, QUEUE_KEYS, TOP_LEVEL_KEYS
from evroute.loading.inputs import input_keys
from evroute.loading.kept_files import ENCRYPT_KEYS
from evroute.loading.routes import ROUTE_KEYS
from evroute.loading.tests_section import TEST_KEYS
from evroute.sinks import SINK_KINDS
from evroute.sources import INPUT_KINDS

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"

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


def _consumer_schemas(values: dict[str, Schema]) -> list[Schema]:
    """One schema per sink kind: the kind's own keys (from its registration), then the
    queue settings and what every consumer takes."""
    schemas = []
    for kind in SINK_KINDS.values():
        schema = kind.schema()
        # the queue settings' defaults come from `defaults:`, not from the schema
        common = object_schema((*QUEUE_KEYS, *CONSUMER_KEYS), values)
        schema["properties"] = {**schema["properties"], **common["properties"]}
        schema["required"] = [kind.name]
        schema["title"] = f"a {kind.name} consumer"
        schema["description"] = kind.description
        schemas.append(schema)
    return schemas


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
    case = {**object_schema(TEST_KEYS, values), "required": ["name", "event", "routes"]}
    return {
        "type": ["array", "null"],
        "items": case,
        "description": "routing tests, run by evroute test",
    }


def _inputs_schema() -> Schema:
    """`inputs:`, the producers: one kind each, and what sources each may publish."""
    shapes: dict[str, Schema] = {"name": NAME}
    for kind in INPUT_KINDS.values():
        shapes.update(kind.schema())
    shapes["publish"] = {
        "type": "array",
        "items": STRING,
        "description": "the event sources it may publish (globs such as com.example.*)",
    }
    item = object_schema(input_keys(), shapes)
    item["required"] = ["name"]
    item["oneOf"] = [{"required": [kind]} for kind in INPUT_KINDS]
    return {"type": ["array", "null"], "items": item, "description": "the producers"}


def _encrypt_schema() -> Schema:
    """`encrypt:`: exactly one of key_env and key_file."""
    shapes: dict[str, Schema] = {
        "key_env": {**STRING, "description": "an environment variable holding the key"},
        "key_file": {**STRING, "description": "a file holding the key, relative to the config"},
    }
    mapping = object_schema(ENCRYPT_KEYS, shapes)
    mapping["oneOf"] = [{"required": [key]} for key in ENCRYPT_KEYS]
    return {
        "anyOf": [{"type": "null"}, mapping],
        "description": "encrypt the files evroute keeps (dead letters, spill, audit,"
        " archives); the key is 32 bytes in base64, made by evroute keygen",
    }


def config_schema() -> Schema:
    """The JSON Schema of a version 1 config."""

    values = dict(VALUE_SCHEMAS)
    values["defaults"] = object_schema(QUEUE_KEYS, values, dataclass_defaults(QueueSettings))
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
            **object_schema(ROUTE_KEYS, values),
            "required": ["name", "to"],
            "not": {"required": ["filter", "pattern"]},  # one or the other
        },
    }
    mapping = {**object_schema(DEAD_LETTER_KEYS, values), "required": ["path"]}
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
    values["inputs"] = _inputs_schema()
    top = object_schema(TOP_LEVEL_KEYS, values, dataclass_defaults(Config))
    return {
        "$schema": SCHEMA_DRAFT,
        "title": "evroute routing config, version 1",
        **top,
        "required": ["version", "consumers", "routes"],
    }
