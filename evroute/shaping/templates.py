"""Templated file paths and NATS subjects: `out/{source}/{"detail-type"}.jsonl`.

Each `{expr}` is a JMESPath expression over the event; `{{` and `}}` are literal braces.
In a path, a value is made safe for a file name before it joins the path, so that no
event can write outside the folder the template's literal parts name: strings as they
are, numbers and booleans as JSON, null as `_`, objects and arrays as compact JSON;
then `/`, `\\`, NUL and control characters become `_`, a value of `.` or `..` becomes
`_`, and it is cut to 200 bytes. A folder or file name made of values and literal text
that still ends up empty, `.` or `..` becomes `_` too, since `{a}{b}` or `x/{a}/y`
could otherwise join into one. In a subject, each value is made one token: white
space, `.`, `*`, `>` and control characters become `_`, and null is `_`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from evroute import expr
from evroute.core.json_codec import parse_value
from evroute.expr import Expression, ExpressionError
from evroute.nats.options import SUBJECT_UNSAFE

MAX_VALUE_BYTES = 200
NULL_VALUE = "_"

# `/` and `\` (folders on some systems), and every control character: C0, DEL, C1.
# Lone surrogates too: a name with one cannot be encoded for the file system.
_UNSAFE = re.compile("[/\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_NAMES = ("", ".", "..")


class TemplateSyntaxError(ValueError):
    """The template cannot be parsed; `position` is a 0-based offset in its text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


class TemplateError(Exception):
    """A value of the template could not be worked out for one event."""


# A path component: a fixed name, or literal text and expressions joined.
Component = str | tuple[str | Expression, ...]


@dataclass(frozen=True)
class PathTemplate:
    text: str  # as written in the config
    components: tuple[Component, ...]  # the path split at its literal `/`

    @property
    def expressions(self) -> list[Expression]:
        return [
            part
            for component in self.components
            if isinstance(component, tuple)
            for part in component
            if isinstance(part, Expression)
        ]

    def pattern(self, placeholder: str) -> str:
        """The path with `placeholder` for each value (for comparing with other paths)."""
        names = []
        for component in self.components:
            if isinstance(component, str):
                names.append(component)
            else:
                names.append("".join(p if isinstance(p, str) else placeholder for p in component))
        return "/".join(names)

    def render(self, data: Any) -> str:
        """The path for `data`, every value made safe; TemplateError when an
        expression fails for it."""
        names = []
        for component in self.components:
            if isinstance(component, str):
                names.append(component)
                continue
            name = "".join(
                part if isinstance(part, str) else _value(part, data) for part in component
            )
            names.append("_" if name in _UNSAFE_NAMES else name)
        return "/".join(names)


def _value(expression: Expression, data: Any) -> str:
    try:
        value = expression.search_function(data)
    except Exception as raised:
        error: ExpressionError = expression.error(raised)
        raise TemplateError(f"{{{expression.source}}} failed: {error}") from None
    return safe_value(value)


def safe_value(value: Any) -> str:
    """A JSON value as text that is safe as (part of) one file name."""
    if isinstance(value, str):
        text = value
    elif value is None:
        return NULL_VALUE
    elif value is True:
        return "true"
    elif value is False:
        return "false"
    else:
        text = _compact_json(value)
    text = _UNSAFE.sub("_", text)
    if text in (".", ".."):
        return "_"
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_VALUE_BYTES:
        # a character cut in two is dropped whole
        text = encoded[:MAX_VALUE_BYTES].decode("utf-8", "ignore")
    return text


def _compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # integers beyond 64 bits, which orjson does not write
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def read_payload(payload: bytes) -> Any:
    """The JSON value of a delivered line (the event, or its transform's result), exact,
    so that `{id}` names the file with the exact number. ValueError when it is not JSON."""
    return parse_value(payload)


def is_template(text: str) -> bool:
    """Whether `text` has a `{` or `}` that is not doubled."""
    stripped = text.replace("{{", "").replace("}}", "")
    return "{" in stripped or "}" in stripped


def unescape(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


def parse(text: str) -> PathTemplate:
    """Split `text` into literal parts and compiled expressions; TemplateSyntaxError
    says where it is wrong."""
    parts: list[str | Expression] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in "{}" and text.startswith(char * 2, index):
            literal.append(char)
            index += 2
        elif char == "}":
            raise TemplateSyntaxError("'}' without its '{' (write }} for a literal brace)", index)
        elif char == "{":
            end = _expression_end(text, index + 1)
            source = text[index + 1 : end]
            if not source.strip():
                raise TemplateSyntaxError("empty expression {}", index)
            try:
                compiled = expr.compile(source)
            except expr.ExpressionSyntaxError as error:
                offset = index + 1 + (error.position or 0)
                raise TemplateSyntaxError(
                    f"invalid JMESPath in {{{source}}}: {error.message}", offset
                ) from None
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(compiled)
            index = end + 1
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    return PathTemplate(text, _components(parts))


def _expression_end(text: str, start: int) -> int:
    """The index of the `}` that closes the expression starting at `start`.

    JMESPath has braces of its own (`{a: b}`) and quoted text that may hold any
    character, so quotes are skipped and braces counted."""
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char in "'\"`":
            index = _quote_end(text, index)
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    raise TemplateSyntaxError("'{' is never closed (write {{ for a literal brace)", start - 1)


def _quote_end(text: str, start: int) -> int:
    quote = text[start]
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            return index
        index += 1
    return len(text)  # unclosed: the brace check reports it


def _components(parts: list[str | Expression]) -> tuple[Component, ...]:
    """The parts split at the `/` of their literal text (values never hold one)."""
    components: list[Component] = []
    current: list[str | Expression] = []
    for part in parts:
        if isinstance(part, Expression):
            current.append(part)
            continue
        pieces = part.split("/")
        for piece in pieces[:-1]:
            if piece:
                current.append(piece)
            components.append(_component(current))
            current = []
        if pieces[-1]:
            current.append(pieces[-1])
    components.append(_component(current))
    return tuple(components)


def _component(parts: list[str | Expression]) -> Component:
    if all(isinstance(part, str) for part in parts):
        return "".join(part for part in parts if isinstance(part, str))
    return tuple(parts)


# what a token of a subject may not hold, and the token for null
_SUBJECT_UNSAFE = str.maketrans(dict.fromkeys(SUBJECT_UNSAFE, "_"))
NULL_TOKEN = "_"


def subject_value(value: Any) -> str:
    """A JSON value as one token of a subject: no dots, wildcards or white space."""
    if value is None:
        return NULL_TOKEN
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = _compact_json(value)
    text = text.translate(_SUBJECT_UNSAFE)
    if not text.isprintable():  # control characters and the like: rare, so checked once
        text = "".join(char if char.isprintable() else "_" for char in text)
    return text or NULL_TOKEN


def render_subject(template: PathTemplate, data: Any) -> str:
    """The subject for `data`; TemplateError when an expression fails for it."""
    names = []
    for component in template.components:
        if isinstance(component, str):
            names.append(component)
            continue
        parts = []
        for part in component:
            if isinstance(part, str):
                parts.append(part)
                continue
            try:
                value = part.search_function(data)
            except Exception as raised:
                raise TemplateError(f"{{{part.source}}} failed: {part.error(raised)}") from None
            parts.append(subject_value(value))
        names.append("".join(parts))
    return "/".join(names)
