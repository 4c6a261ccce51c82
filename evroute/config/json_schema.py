"""The building blocks of the config's JSON Schema, shared by the kinds that describe their
own keys and by the schema of the whole config (loading/schema.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from evroute.config.checker import NAME_PATTERN
from evroute.config.units import _DURATION, _SIZE

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


def dataclass_keys(model: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(model))


def dataclass_defaults(model: type) -> dict[str, object]:
    """The model's own defaults, the ones a config that leaves a key out gets."""
    return {
        field.name: field.default
        for field in dataclasses.fields(model)
        if field.default is not dataclasses.MISSING and not dataclasses.is_dataclass(field.default)
    }


def object_schema(
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


# rotation of a file evroute writes: dead letters, the audit log, file consumers, archives
ROTATION_VALUES: dict[str, Schema] = {"rotate_bytes": SIZE, "rotate_keep": integer(0)}
