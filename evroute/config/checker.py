"""What every part of a config is checked with: a Checker that reports every problem at
once, each with its file, line, column and config path."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evroute import expr
from evroute.config import env
from evroute.config.model import Rotation
from evroute.config.units import parse_duration, parse_size
from evroute.config.yaml_loader import Node, resolve_plain

Severity = Literal["error", "warning"]
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    column: int
    severity: Severity
    path: str
    message: str

    def format(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {where}{self.message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
        }


class Checker:
    """Collects issues with their locations; helpers read typed values from nodes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[Issue] = []

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == "error" for issue in self.issues)

    def report(
        self,
        severity: Severity,
        node: Node | None,
        path: str,
        message: str,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        if severity == "error" and node is not None and node.unresolved:
            return  # its value is a stand-in for an unset variable, already warned about
        line = line if line is not None else (node.line if node else 1)
        column = column if column is not None else (node.column if node else 1)
        self.issues.append(Issue(self.file, line, column, severity, path, message))

    def error(self, node: Node | None, path: str, message: str) -> None:
        self.report("error", node, path, message)

    def warning(self, node: Node | None, path: str, message: str) -> None:
        self.report("warning", node, path, message)

    # typed readers: each returns None after reporting when the value is wrong

    def mapping(self, node: Node, path: str) -> dict[str, Node] | None:
        if not node.is_mapping:
            self.error(node, path, f"expected a mapping, got {describe(node.value)}")
            return None
        value: dict[str, Node] = node.value
        return value

    def known_keys(self, node: Node, path: str, allowed: Iterable[str]) -> None:
        """Unknown keys are errors, with the closest known key or the list of them."""
        allowed = list(allowed)
        for key, key_node in node.keys.items():
            if key in allowed:
                continue
            key_path = join(path, key)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; expected one of: {', '.join(allowed)}"
            )
            self.error(key_node, key_path, f"unknown key {key!r}{hint}")

    def string(self, node: Node, path: str, allow_empty: bool = False) -> str | None:
        if not isinstance(node.value, str):
            self.error(node, path, f"expected a string, got {describe(node.value)}")
            return None
        if not allow_empty and not node.value:
            self.error(node, path, "must not be empty")
            return None
        if "\0" in node.value:
            self.error(node, path, "must not contain a NUL character")
            return None
        return node.value

    def boolean(self, fields: dict[str, Node], key: str, path: str) -> bool:
        """`key` of a mapping as true or false; False when it is missing or wrong."""
        node = fields.get(key)
        if node is None:
            return False
        if not isinstance(node.value, bool):
            self.error(node, join(path, key), "expected true or false")
            return False
        return node.value

    def integer(self, node: Node, path: str, minimum: int) -> int | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, path, f"expected an integer, got {describe(value)}")
            return None
        if value < minimum:
            self.error(node, path, f"must be at least {minimum}, got {value}")
            return None
        return value

    def choice(self, node: Node, path: str, choices: Iterable[str]) -> str | None:
        choices = list(choices)
        value = node.value
        if isinstance(value, str) and value in choices:
            return value
        self.error(node, path, f"expected one of {', '.join(choices)}; got {describe(value)}")
        return None

    def size(self, node: Node, path: str, minimum: int = 1) -> int | None:
        try:
            value = parse_size(node.value)
        except ValueError as error:
            self.error(node, path, str(error))
            return None
        if value < minimum:
            self.error(node, path, f"must be at least {minimum} bytes")
            return None
        return value

    def duration(self, node: Node, path: str) -> float | None:
        try:
            return parse_duration(node.value)
        except ValueError as error:
            self.error(node, path, str(error))
            return None

    def name(self, node: Node, path: str, what: str) -> str | None:
        value = self.string(node, path)
        if value is not None and not NAME_PATTERN.match(value):
            self.error(node, path, f"{what} name {value!r} may only use letters, digits, _ . -")
            return None
        return value

    def item_name(self, node: Node, fields: dict[str, Node], path: str, what: str) -> str | None:
        """The `name` of an item of a list (a route, an input), said when it is missing."""
        if "name" not in fields:
            self.error(node, join(path, "name"), f"missing; every {what} needs a name")
            return None
        return self.name(fields["name"], join(path, "name"), what)

    def expression(self, node: Node, path: str) -> expr.Expression | None:
        source = self.string(node, path)
        if source is None:
            return None
        try:
            return expr.compile(source)
        except expr.ExpressionSyntaxError as error:
            line, column = source_position(node, error.position)
            where = f" at position {error.position}" if error.position is not None else ""
            self.report(
                "error",
                node,
                path,
                f"invalid JMESPath: {error.message}{where} in {source!r}",
                line=line,
                column=column,
            )
            return None


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return f"number {value}"
    return f"string {value!r}"


_ESCAPE_LENGTHS = {"x": 4, "u": 6, "U": 10}


def source_position(node: Node, offset: int | None) -> tuple[int, int]:
    """The file line and column of character `offset` of a scalar's value.

    Exact for one-line plain, single- and double-quoted scalars; otherwise the scalar's
    own position, since folding and block styles do not map characters one to one.
    """
    raw = node.source
    if offset is None or "\n" in raw or "$" in raw:
        return node.line, node.column
    if node.style is None:
        return node.line, node.column + offset
    if node.style not in ("'", '"'):
        return node.line, node.column
    index, remaining = 1, offset  # skip the opening quote
    while remaining > 0 and index < len(raw) - 1:
        if node.style == "'" and raw.startswith("''", index):
            index += 2
        elif node.style == '"' and raw[index] == "\\" and index + 1 < len(raw):
            index += _ESCAPE_LENGTHS.get(raw[index + 1], 2)
        else:
            index += 1
        remaining -= 1
    return node.line, node.column + index


def expand_environment(
    node: Node, path: str, checker: Checker, environ: Mapping[str, str], no_env: bool
) -> None:
    """Replace `${VAR}` references in every string value, in place."""
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            expand_environment(child, join(path, key), checker, environ, no_env)
    elif isinstance(node.value, list):
        for index, child in enumerate(node.value):
            expand_environment(child, join(path, index), checker, environ, no_env)
    elif isinstance(node.value, str) and "$" in node.value:
        unset: list[str] = []
        try:
            expanded = env.expand(node.value, environ, unset, keep_unset=no_env)
        except env.BadReference as error:
            checker.error(node, path, str(error))
            return
        # `buffer: ${BUFFER:-100}` is a number, as if the value had been written there
        node.value = resolve_plain(expanded) if node.style is None else expanded
        for name in unset:
            message = (
                f"environment variable {name} is not set; set it or write ${{{name}:-default}}"
            )
            checker.report("warning" if no_env else "error", node, path, message)
        # with --no-env the value is a stand-in: what it breaks is not the config's fault
        node.unresolved = no_env and bool(unset)


# a file evroute keeps for itself: (its config key, path, node, rotation, what it is)
KeptFile = tuple[str, Path, Node, Rotation | None, str]


def read_rotation(checker: Checker, fields: dict[str, Node], path: str) -> Rotation | None:
    """`rotate_bytes` and `rotate_keep` (default 5): None without rotate_bytes."""
    keep = 5
    if "rotate_keep" in fields:
        value = checker.integer(fields["rotate_keep"], join(path, "rotate_keep"), 0)
        keep = keep if value is None else value
        if "rotate_bytes" not in fields:
            checker.error(
                fields["rotate_keep"],
                join(path, "rotate_keep"),
                "has no effect without rotate_bytes; add rotate_bytes or remove it",
            )
    if "rotate_bytes" not in fields:
        return None
    size = checker.size(fields["rotate_bytes"], join(path, "rotate_bytes"), 1024)
    return None if size is None else Rotation(size, keep)


DEAD_LETTER_KEYS = ("path", "rotate_bytes", "rotate_keep")  # and any file evroute keeps


def read_kept_file(
    checker: Checker, node: Node | None, key: str, what: str, base_dir: Path
) -> tuple[Path | None, Rotation | None]:
    """A file evroute keeps for itself: a path, or {path, rotate_bytes, rotate_keep}."""
    if node is None or node.value is None:
        return None, None
    rotation: Rotation | None = None
    path_node: Node | None = node
    if node.is_mapping:
        fields = checker.mapping(node, key) or {}
        checker.known_keys(node, key, DEAD_LETTER_KEYS)
        path_node = fields.get("path")
        if path_node is None:
            checker.error(node, join(key, "path"), f"missing; {what}")
        rotation = read_rotation(checker, fields, key)
    if path_node is None:
        return None, rotation
    text = checker.string(path_node, join(key, "path") if path_node is not node else key)
    return (None if text is None else base_dir / text), rotation


INVALID = object()  # json_value: a value JSON cannot hold, already reported


def json_value(checker: Checker, node: Node, path: str) -> Any:
    """The plain value of `node`, or INVALID after reporting what JSON cannot hold."""
    if isinstance(node.value, dict):
        mapping = {
            key: json_value(checker, child, join(path, key)) for key, child in node.value.items()
        }
        return INVALID if any(v is INVALID for v in mapping.values()) else mapping
    if isinstance(node.value, list):
        items = [json_value(checker, child, join(path, i)) for i, child in enumerate(node.value)]
        return INVALID if any(item is INVALID for item in items) else items
    if isinstance(node.value, float) and not math.isfinite(node.value):
        checker.error(node, path, f"{node.source or node.value} is not a JSON number")
        return INVALID
    return node.value
