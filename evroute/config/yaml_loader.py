"""YAML 1.2 (core schema) loading that keeps the line and column of every node.

PyYAML implements YAML 1.1, where `yes`, `on` and timestamps are not strings and `0777`
is octal. Routing configs are written by people who expect 1.2, so the implicit
resolvers are replaced with the core schema's and scalars are constructed here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

TAG_NULL = "tag:yaml.org,2002:null"
TAG_BOOL = "tag:yaml.org,2002:bool"
TAG_INT = "tag:yaml.org,2002:int"
TAG_FLOAT = "tag:yaml.org,2002:float"
TAG_STR = "tag:yaml.org,2002:str"
TAG_SEQ = "tag:yaml.org,2002:seq"
TAG_MAP = "tag:yaml.org,2002:map"


class CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader whose implicit resolvers follow YAML 1.2's core schema."""

    # a fresh table: SafeLoader's YAML 1.1 resolvers must not apply
    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012


_CORE_RESOLVERS = [
    (TAG_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (TAG_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (TAG_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        TAG_FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]
for _tag, _pattern, _first in _CORE_RESOLVERS:
    CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


@dataclass
class Node:
    """A YAML value with its position (1-based line and column)."""

    value: Any  # dict[str, Node] for mappings, list[Node] for sequences, else a scalar
    line: int
    column: int
    style: str | None = None  # the scalar style: None (plain), "'", '"', "|", ">"
    source: str = ""  # the scalar's text as written in the file, for column mapping
    keys: dict[str, Node] = field(default_factory=dict)  # mapping keys, for their positions
    unresolved: bool = False  # holds an unset ${VAR} (validate --no-env): its value is a guess

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, list)


@dataclass
class LoadProblem:
    line: int
    column: int
    message: str


class YAMLLoadError(Exception):
    def __init__(self, problems: list[LoadProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def _construct_scalar(node: yaml.ScalarNode) -> Any:
    text = node.value
    if node.tag == TAG_NULL:
        return None
    if node.tag == TAG_BOOL:
        return text.lower() == "true"
    if node.tag == TAG_INT:
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)
    if node.tag == TAG_FLOAT:
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(text)
    return text


# Aliases are expanded into a tree; these bounds keep a hostile config (an alias bomb,
# a self-referring alias, thousands of nested brackets) from exhausting time or memory.
MAX_VALUES = 100_000
MAX_DEPTH = 64


class _TooLarge(Exception):
    pass


def resolve_plain(text: str) -> Any:
    """A plain scalar's value under the core schema: what `${VAR}` in `buffer: ${VAR}` gives."""
    resolver = CoreSchemaLoader.__new__(CoreSchemaLoader)
    tag = resolver.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return _construct_scalar(yaml.ScalarNode(tag, text))


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.problems: list[LoadProblem] = []
        self.values = 0
        self.open: set[int] = set()  # collections being built, to catch an alias to itself

    def build(self, node: yaml.Node, depth: int = 0) -> Node:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooLarge(f"the config expands to more than {MAX_VALUES:,} values (aliases?)")
        if depth > MAX_DEPTH:
            raise _TooLarge(f"the config is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            source = self.text[node.start_mark.index : node.end_mark.index]
            if node.tag not in (TAG_NULL, TAG_BOOL, TAG_INT, TAG_FLOAT, TAG_STR):
                self.problems.append(
                    LoadProblem(line, column, f"unsupported YAML tag {node.tag!r}")
                )
                return Node(node.value, line, column, node.style, source)
            try:
                value = _construct_scalar(node)
            except ValueError:
                kind = node.tag.rsplit(":", 1)[-1]
                self.problems.append(
                    LoadProblem(line, column, f"{node.value!r} is not a valid {kind}")
                )
                value = node.value
            return Node(value, line, column, node.style, source)
        expected_tag = TAG_SEQ if isinstance(node, yaml.SequenceNode) else TAG_MAP
        if node.tag != expected_tag:
            self.problems.append(LoadProblem(line, column, f"unsupported YAML tag {node.tag!r}"))
        if id(node) in self.open:
            raise _TooLarge(f"an alias at line {line} refers to a collection that contains it")
        self.open.add(id(node))
        try:
            return self._build_collection(node, line, column, depth)
        finally:
            self.open.discard(id(node))

    def _build_collection(self, node: yaml.Node, line: int, column: int, depth: int) -> Node:
        if isinstance(node, yaml.SequenceNode):
            return Node([self.build(item, depth + 1) for item in node.value], line, column)
        if isinstance(node, yaml.MappingNode):
            values: dict[str, Node] = {}
            keys: dict[str, Node] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, depth + 1)
                if not isinstance(key.value, str):
                    self.problems.append(
                        LoadProblem(key.line, key.column, "mapping keys must be strings")
                    )
                    continue
                if key.value in values:
                    first = keys[key.value]
                    self.problems.append(
                        LoadProblem(
                            key.line,
                            key.column,
                            f"duplicate key {key.value!r} (first at line {first.line})",
                        )
                    )
                    continue
                keys[key.value] = key
                values[key.value] = self.build(value_node, depth + 1)
            return Node(values, line, column, keys=keys)
        raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover


def load_yaml(text: str) -> tuple[Node | None, list[LoadProblem]]:
    """Parse one YAML document (None when empty) and the problems found in its structure.

    A syntax error stops parsing and raises YAMLLoadError.
    """
    try:
        root = yaml.compose(text, Loader=CoreSchemaLoader)
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        code = ord(error.character) if isinstance(error.character, str) else error.character
        message = f"YAML: the control character U+{code:04X} is not allowed; remove it"
        raise YAMLLoadError([LoadProblem(line, column, message)]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = (
            " ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
        )
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YAMLLoadError([LoadProblem(line, column, f"YAML syntax: {message}")]) from None
    except yaml.YAMLError as error:
        raise YAMLLoadError([LoadProblem(1, 1, f"YAML: {error}")]) from None
    except RecursionError:
        raise YAMLLoadError([LoadProblem(1, 1, "the config is nested too deeply")]) from None
    if root is None:
        return None, []
    builder = _Builder(text)
    try:
        node = builder.build(root)
    except _TooLarge as error:
        raise YAMLLoadError([LoadProblem(1, 1, str(error))]) from None
    return node, builder.problems
