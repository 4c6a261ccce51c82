"""Turning a parsed JMESPath expression into a Python function, once.

Configs are not trusted, so nothing of an expression's text ever becomes code: every
identifier, literal, index and slice is a value in the `constants` tuple, named in the
generated source only as `k<n>`; functions are named by their place in a fixed table;
every other name in the source is one this module chose. The source is built only from
the templates below.

Each node of the parse tree becomes a few statements that leave its value in a fresh
variable, so each value is computed once and short-circuits are plain `if`s. JMESPath
has no variables: a part of an expression depends only on the value it is applied to,
so any part can be moved into a function of its own. That is how expression references
(`&expr`) are built, and how deep nesting stays under CPython's limit of 20 nested blocks.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evroute.expr import runtime
from evroute.expr.errors import (
    INVALID_ARITY,
    INVALID_TYPE,
    INVALID_VALUE,
    SYNTAX,
    UNKNOWN_FUNCTION,
    ExpressionSyntaxError,
)
from evroute.expr.unparse import unparse

FUNCTION_NAMES = tuple(runtime.FUNCTIONS)
# The names the generated code may use besides its own v<n>, k<n>, f<n>, h<n>, e<n>.
HELPERS: dict[str, Any] = {
    "T": type,
    "D": dict,
    "L": list,
    "S": str,
    "B": bool,
    "NUM": runtime.NUMBER_TYPES,
    "SLD": (str, list, dict),
    "ln": len,
    "eq": runtime.json_equal,
    "EXC": Exception,
    "EN": enumerate,
    **{
        f"f{index}": runtime.FUNCTIONS[name].implementation
        for index, name in enumerate(FUNCTION_NAMES)
    },
}
_ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
# Nodes whose code opens blocks; past this many open blocks they move into a function.
_BLOCK_NODES = frozenset(
    (
        "and_expression",
        "or_expression",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
        "multi_select_list",
        "multi_select_dict",
    )
)
_MAX_BLOCKS = 12
# Fields of fields in a routing plan are read under nested type tests up to this depth.
_MAX_PROLOGUE_NESTING = 6
# Parentheses an inline condition may hold before it is put in a variable.
_MAX_PARENTHESES = 60
# Functions whose result is always a boolean.
_BOOLEAN_FUNCTIONS = frozenset(("contains", "starts_with", "ends_with"))
# Functions whose result is always a number.
_NUMBER_FUNCTIONS = frozenset(("abs", "ceil", "floor", "length", "sum"))


# The event's name in a routing plan, where it is known to be an object.
PLAN_EVENT = "r0"


class Compiled(Protocol):
    """What the generator needs of a compiled expression."""

    source: str
    tree: dict[str, Any]

    @property
    def test_function(self) -> Callable[[Any], bool]: ...


@dataclass(frozen=True)
class PlanStep:
    """A route in a routing plan: its index, its filter, and how its recorder is called."""

    route: int
    filter: Compiled | None
    takes_event: bool  # the recorder also gets the event, and says whether it matched


def _is_number(node: dict[str, Any], *values: int) -> bool:
    """Whether `node` is a number literal equal to one of `values` (true is no number)."""
    value = node.get("value")
    return node["type"] == "literal" and type(value) in (int, float) and value in values


# (operator with the length on the left, the number it is compared with) that say "more
# than none", and the same with the length on the right
_ABOVE_ZERO = {("gt", 0), ("gte", 1), ("ne", 0)}
_MIRRORED = {"gt": "lt", "gte": "lte", "ne": "ne"}


def _length_above_zero(node: dict[str, Any]) -> dict[str, Any] | None:
    """The filter projection `p` when `node` is `length(p) > `0`` (or `>= `1``, `!= `0``,
    either way round) and `p` keeps its elements themselves (`list[?condition]`)."""
    left, right = node["children"]
    for length, number, operator in (
        (left, right, node["value"]),
        (right, left, next((k for k, v in _MIRRORED.items() if v == node["value"]), None)),
    ):
        if not (
            length["type"] == "function_expression"
            and length["value"] == "length"
            and len(length["children"]) == 1
        ):
            continue
        projection = length["children"][0]
        if (
            projection["type"] == "filter_projection"
            and projection["children"][1]["type"] == "identity"
            and any(operator == op and _is_number(number, n) for op, n in _ABOVE_ZERO)
        ):
            return projection  # type: ignore[no-any-return]
    return None


def _plain(node: dict[str, Any]) -> bool:
    """Whether `node` only reads fields (`a.b`, `@`) or is a literal: it cannot raise."""
    if node["type"] == "subexpression":
        return all(map(_plain, node["children"]))
    return node["type"] in ("field", "current", "identity", "literal")


def _cannot_raise(node: dict[str, Any]) -> bool:
    """Whether evaluating `node` as a condition can never raise: it reads fields, and
    compares no two structures (json_equal recurses), with logic around."""
    kind = node["type"]
    children = node["children"]
    if kind in ("and_expression", "or_expression", "not_expression"):
        return all(map(_cannot_raise, children))
    if kind == "comparator":
        if not all(map(_plain, children)):
            return False
        if node["value"] in ("eq", "ne"):
            # equality with a scalar literal is a plain `==` or `is`
            return any(
                child["type"] == "literal" and not isinstance(child["value"], (list, dict))
                for child in children
            )
        return True  # an ordering is null unless both sides are numbers
    return _plain(node)


def field_path(node: dict[str, Any]) -> tuple[str, ...] | None:
    """("a", "b") for `a.b`; None for anything but fields joined by dots."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression":
        parts = [field_path(child) for child in node["children"]]
        if all(part is not None for part in parts):
            return tuple(name for part in parts for name in part)  # type: ignore[union-attr]
    return None


@dataclass
class TracePoint:
    """A part of the expression, for `explain`: its text and where it sits in the tree."""

    expression: str
    kind: str
    children: list[TracePoint] = field(default_factory=list)


@dataclass
class Generated:
    source: str
    constants: tuple[Any, ...]
    trace_root: TracePoint | None


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    if isinstance(value, list):
        return all(map(_finite, value))
    return True


def plain(value: Any) -> Any:
    """A literal as plain dicts and lists (the parser may give other mappings)."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def call_positions(source: str, tree: dict[str, Any]) -> dict[int, int]:
    """Where each function call starts in the source, by id() of its node.

    The parse tree keeps no positions; calls are matched with `name(` in the text in
    the order they are written.
    """
    ordered: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "function_expression":
            ordered.append(node)
        children = node.get("children", [])
        if node.get("type") == "filter_projection":  # written left[?condition].right
            children = [children[0], children[2], children[1]]
        for child in children:
            walk(child)

    walk(tree)
    positions: dict[int, int] = {}
    seen: dict[str, int] = {}
    for node in ordered:
        name = node["value"]
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        starts = [m.start() for m in re.finditer(rf"(?<![\w@\"']){re.escape(name)}\s*\(", source)]
        if occurrence < len(starts):
            positions[id(node)] = starts[occurrence]
    return positions


class CodeGenerator:
    def __init__(self, source: str, tree: dict[str, Any], trace: bool) -> None:
        self.source = source
        self.tree = tree
        self.trace = trace
        self.constants: list[Any] = []
        self.positions = call_positions(source, tree)
        self.functions: list[list[str]] = []  # hoisted functions, each its lines
        self.lines: list[str] = []
        self.indent = 2
        self.blocks = 0
        self.counter = 0
        self.boolean: set[str] = set()  # variables known to hold only true, false or null
        self.numeric: set[str] = set()  # variables known to hold a number
        self.trace_stack: list[TracePoint] = []
        self.trace_root: TracePoint | None = None
        # In a routing plan: the paths of fields read from the event (always an object),
        # each read once, up front, for all the routes' filters.
        self.root_paths: dict[tuple[str, ...], str] | None = None

    # -- emitting ---------------------------------------------------------------------

    def name(self, prefix: str = "v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def constant(self, value: Any) -> str:
        self.constants.append(value)
        return f"k{len(self.constants) - 1}"

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    @contextlib.contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.emit(header)
        self.indent += 1
        self.blocks += 1
        try:
            yield
        finally:
            self.indent -= 1
            self.blocks -= 1

    @contextlib.contextmanager
    def function(self, name: str) -> Iterator[None]:
        saved = (self.lines, self.indent, self.blocks, self.boolean, self.numeric)
        self.lines, self.indent, self.blocks, self.boolean, self.numeric = [], 2, 0, set(), set()
        self.lines.append(f"    def {name}(v0):")
        try:
            yield
        finally:
            self.functions.append(self.lines)
            self.lines, self.indent, self.blocks, self.boolean, self.numeric = saved

    def truthy(self, value: str) -> str:
        """A Python condition that holds when `value` is true in JMESPath."""
        if value in self.boolean:
            return value
        return f"({value} or T({value}) in NUM)"  # 0 and 0.0 are true in JMESPath

    def error(self, message: str, node: dict[str, Any], kind: str) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(message, self.source, self.positions.get(id(node)), kind)

    # -- generating -------------------------------------------------------------------

    def generate(self) -> Generated:
        result = self.value(self.tree, "v0")
        returns = ["    def search(v0):", *self.lines, f"        return {result}"]
        if not self.trace:
            self.lines = []
            condition = self.condition(self.tree, "v0")
            returns += [
                "    def test(v0):",
                *self.lines,
                f"        return True if {condition} else False",
            ]
        else:
            returns += ["    test = None"]
        lines = self.preamble()
        for function in self.functions:
            lines.extend(function)
        lines.extend(returns)
        lines.append("    return search, test")
        return Generated("\n".join(lines) + "\n", tuple(self.constants), self.trace_root)

    def generate_plan(self, steps: Sequence[PlanStep], batch: bool = False) -> Generated:
        """One function that runs the filters of several routes on an event.

        `plan(event, position)` calls each matching route's recorder with the position
        (and the event, for a recorder that transforms it, whose result says whether it
        matched), calls `fail(route, position, exception)` for a filter that raises, and
        returns whether any route matched. The event must be an object.

        With `batch`, the function is instead `run(lines, loads, slow, unmatched)`: the
        same for each line of a batch, with the loop inside (a call less per event). It
        parses each line with `loads`; a line that is not an object goes to `slow(position,
        line)`, which gives the event or None (the line is skipped); `unmatched(position)`
        hears of each event no route matched.
        """
        self.root_paths = {}
        body: list[str] = []
        recorders = []
        for step_number, step in enumerate(steps):
            recorder = f"a{step_number}"
            recorders.append(recorder)
            route = self.constant(step.route)
            self.lines, self.indent, self.blocks = [], 3, 1
            condition = "True"
            if step.filter is not None:
                condition = self.condition(step.filter.tree, PLAN_EVENT)
            record = f"{recorder}(p, {PLAN_EVENT})" if step.takes_event else f"{recorder}(p)"
            if step.takes_event:
                self.emit(f"if {condition} and {record}:")
                self.emit("    m = True")
            else:
                with self.block(f"if {condition}:"):
                    self.emit(record)
                    self.emit("m = True")
            body += ["        try:", *self.lines, "        except EXC as x:"]
            body.append(f"            fail({route}, p, x)")
        prologue = self.prologue()  # before the preamble: it adds constants
        lines = self.preamble()
        lines.append(f"    ({', '.join(['fail', *recorders])},) = record")
        for function in self.functions:
            lines.extend(function)
        if not batch:
            lines.append(f"    def plan({PLAN_EVENT}, p):")
            lines.extend(prologue)
            lines.append("        m = False")
            lines.extend(body)
            lines.append("        return m")
            lines.append("    return plan")
            return Generated("\n".join(lines) + "\n", tuple(self.constants), None)
        run, batch_lines, loads, slow, unmatched, line = (
            self.name("h"),
            *(self.name() for _ in range(5)),
        )
        lines += [
            f"    def {run}({batch_lines}, {loads}, {slow}, {unmatched}):",
            f"        for p, {line} in EN({batch_lines}):",
            "            try:",
            f"                {PLAN_EVENT} = {loads}({line})",
            "            except EXC:",
            f"                {PLAN_EVENT} = None",
            f"            if T({PLAN_EVENT}) is not D:",
            f"                {PLAN_EVENT} = {slow}(p, {line})",
            f"                if {PLAN_EVENT} is None:",
            "                    continue",
            *("    " + code for code in prologue),
            "            m = False",
            *("    " + code for code in body),
            "            if not m:",
            f"                {unmatched}(p)",
            f"    return {run}",
        ]
        return Generated("\n".join(lines) + "\n", tuple(self.constants), None)

    def preamble(self) -> list[str]:
        lines = ["def build(constants, helpers, record):"]
        if self.constants:
            names = ", ".join(f"k{index}" for index in range(len(self.constants)))
            lines.append(f"    ({names},) = constants")
        lines.append(f"    ({', '.join(HELPERS)},) = helpers")
        return lines

    def condition(self, node: dict[str, Any], current: str) -> str:
        """Emit what deciding whether `node` is true needs; the Python condition.

        Where only truth matters, `a && b` is `a and b` and a comparison need not make
        its null: fewer statements than computing the value and testing it.
        """
        kind = node["type"]
        if self.blocks >= _MAX_BLOCKS:  # values know how to move into a function
            return self.truthy(self.value(node, current))
        if kind in ("and_expression", "or_expression"):
            left_node, right_node = node["children"]
            left = self.condition(left_node, current)
            joiner = "and" if kind == "and_expression" else "or"
            # generated one level in, where it goes when it needs statements
            saved, self.lines = self.lines, []
            self.indent += 1
            self.blocks += 1
            right = self.condition(right_node, current)
            self.indent -= 1
            self.blocks -= 1
            right_lines, self.lines = self.lines, saved
            if not right_lines:
                return self.bounded(f"({left} {joiner} {right})")
            # the right side needs statements: they run only when the left side says so
            result = self.name()
            self.emit(f"{result} = {left}")
            self.emit(f"if {'' if joiner == 'and' else 'not '}{result}:")
            self.lines += right_lines
            self.emit(f"    {result} = {right}")
            return result
        if kind == "not_expression":
            return self.bounded(f"(not {self.condition(node['children'][0], current)})")
        if kind == "comparator":
            found = self._any_kept(node, current)
            if found is not None:
                return found
            left_node, right_node = node["children"]
            left = self.value(left_node, current)
            right = self.value(right_node, current)
            if node["value"] in ("eq", "ne"):
                test = self._equality(left, left_node, right, right_node)
                return f"({test})" if node["value"] == "eq" else f"(not ({test}))"
            checks = self._number_checks(left, left_node, right, right_node)
            compare = f"{left} {_ORDERING[node['value']]} {right}"
            return f"({' and '.join([*checks, compare])})"
        return self.truthy(self.value(node, current))

    def _any_kept(self, node: dict[str, Any], current: str) -> str | None:
        """`length(list[?condition]) > `0``, JMESPath's way to ask whether any element
        passes, as a loop that stops at the first (the list is not built); None when
        `node` is not of that form.

        Only for conditions that cannot raise, so that skipping the rest of the elements
        skips no error; `length` of what is not a list still raises its error.
        """
        projection = _length_above_zero(node)
        if (
            projection is None
            or self.trace
            or self.blocks + 4 >= _MAX_BLOCKS
            or not _cannot_raise(projection["children"][2])
        ):
            return None
        left_node, _, condition_node = projection["children"]
        base = self.value(left_node, current)
        result = self.name()
        self.boolean.add(result)
        element = self.name()
        with self.block(f"if T({base}) is L:"):
            self.emit(f"{result} = False")
            with self.block(f"for {element} in {base}:"):
                keep = self.condition(condition_node, element)
                # a null element is not kept, whatever the condition says
                with self.block(f"if {keep} and {element} is not None:"):
                    self.emit(f"{result} = True")
                    self.emit("break")
        with self.block("else:"):  # length(null): the invalid-type error
            self.emit(f"{result} = f{FUNCTION_NAMES.index('length')}(None)")
        return result

    def bounded(self, condition: str) -> str:
        """`condition`, or a variable holding it once it nears the parser's limit of 200
        nested parentheses (a chain of 200 `||` is one Python expression)."""
        if condition.count("(") < _MAX_PARENTHESES:
            return condition
        result = self.name()
        self.emit(f"{result} = {condition}")
        return result

    def value(self, node: dict[str, Any], current: str) -> str:
        """Emit the code for `node` applied to `current`; the name holding its value."""
        kind = node["type"]
        point: TracePoint | None = None
        if self.trace:
            point = TracePoint(unparse(node), kind)
            if self.trace_stack:
                self.trace_stack[-1].children.append(point)
            else:
                self.trace_root = point
            self.trace_stack.append(point)
        try:
            if kind in _BLOCK_NODES and self.blocks >= _MAX_BLOCKS:
                result = self.hoisted(node, current)
            else:
                generate = getattr(self, f"_{kind}", None)
                if generate is None:
                    raise self.error(f"unsupported expression ({kind})", node, INVALID_VALUE)
                result = generate(node, current)
        finally:
            if point is not None:
                self.trace_stack.pop()
        if point is not None:
            self.emit(f"record({self.constant(point)}, {result})")
        return result

    def hoisted(self, node: dict[str, Any], current: str) -> str:
        helper = self.name("h")
        with self.function(helper):
            generate = getattr(self, f"_{node['type']}")
            inner = generate(node, "v0")
            self.emit(f"return {inner}")
        result = self.name()
        self.emit(f"{result} = {helper}({current})")
        return result

    def _identity(self, node: dict[str, Any], current: str) -> str:
        return current

    _current = _identity

    def _literal(self, node: dict[str, Any], current: str) -> str:
        value = plain(node["value"])
        if not _finite(value):
            # json.loads, which the parser uses, takes NaN and Infinity; JSON does not
            raise self.error("a literal must be JSON: NaN and Infinity are not", node, SYNTAX)
        return self.constant(value)

    def root_path(self, path: tuple[str, ...]) -> str:
        """The variable holding the event's field at `path`, read in the prologue."""
        assert self.root_paths is not None
        for length in range(1, len(path) + 1):
            if path[:length] not in self.root_paths:
                self.root_paths[path[:length]] = self.name()
        return self.root_paths[path]

    def prologue(self) -> list[str]:
        """Read the fields of root_paths: under one type test of each object, so the
        fields of `detail` cost one test of `detail` (nested a few levels only)."""
        assert self.root_paths is not None
        names = self.root_paths
        children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for path in self.root_paths:
            children.setdefault(path[:-1], []).append(path)
        lines: list[str] = []

        def descendants(path: tuple[str, ...]) -> list[str]:
            below = children.get(path, [])
            return [names[c] for c in below] + [name for c in below for name in descendants(c)]

        def read(parent: tuple[str, ...], indent: str, checked: bool) -> None:
            """Read the fields under `parent`, which is known to be an object if `checked`."""
            source = names[parent] if parent else PLAN_EVENT
            nested = len(indent) < 4 * (2 + _MAX_PROLOGUE_NESTING)
            for path in children.get(parent, []):
                key = self.constant(path[-1])
                name = names[path]
                get = f"{source}.get({key})"
                lines.append(
                    f"{indent}{name} = {get if checked else f'{get} if T({source}) is D else None'}"
                )
                if path in children and nested:
                    lines.append(f"{indent}if T({name}) is D:")
                    read(path, indent + "    ", True)
                    lines.append(f"{indent}else:")
                    lines.append(f"{indent}    {' = '.join(descendants(path))} = None")
                elif path in children:
                    read(path, indent, False)

        read((), "        ", True)  # the event is an object
        return lines

    def _field(self, node: dict[str, Any], current: str) -> str:
        if current == PLAN_EVENT and self.root_paths is not None:
            return self.root_path((node["value"],))
        result = self.name()
        key = self.constant(node["value"])
        self.emit(f"{result} = {current}.get({key}) if T({current}) is D else None")
        return result

    def _subexpression(self, node: dict[str, Any], current: str) -> str:
        if current == PLAN_EVENT and self.root_paths is not None:
            path = field_path(node)
            if path is not None:
                return self.root_path(path)
        for child in node["children"]:
            current = self.value(child, current)
        return current

    _index_expression = _subexpression
    _pipe = _subexpression

    def _index(self, node: dict[str, Any], current: str) -> str:
        result = self.name()
        index = node["value"]
        if index >= 0:
            bound = f"ln({current}) > {self.constant(index)}"
        else:
            bound = f"ln({current}) >= {self.constant(-index)}"
        at = self.constant(index)
        self.emit(f"{result} = {current}[{at}] if T({current}) is L and {bound} else None")
        return result

    def _slice(self, node: dict[str, Any], current: str) -> str:
        start, stop, step = node["children"]
        if step == 0:
            raise self.error("a slice's step cannot be 0", node, INVALID_VALUE)
        result = self.name()
        cut = self.constant(slice(start, stop, step))
        self.emit(f"{result} = {current}[{cut}] if T({current}) is L else None")
        return result

    def _comparator(self, node: dict[str, Any], current: str) -> str:
        left_node, right_node = node["children"]
        left = self.value(left_node, current)
        right = self.value(right_node, current)
        operator = node["value"]
        result = self.name()
        self.boolean.add(result)
        if operator in ("eq", "ne"):
            test = self._equality(left, left_node, right, right_node)
            self.emit(f"{result} = {test}" if operator == "eq" else f"{result} = not ({test})")
            return result
        checks = self._number_checks(left, left_node, right, right_node)
        compare = f"{left} {_ORDERING[operator]} {right}"
        if checks:
            compare = f"({compare}) if {' and '.join(checks)} else None"
        self.emit(f"{result} = {compare}")
        return result

    def _number_checks(self, left: str, left_node: Any, right: str, right_node: Any) -> list[str]:
        """The checks an ordering needs: it is null unless both sides are numbers."""
        return [
            f"T({operand}) in NUM"
            for operand, operand_node in ((left, left_node), (right, right_node))
            if operand not in self.numeric
            and not (operand_node["type"] == "literal" and runtime.is_number(operand_node["value"]))
        ]

    @staticmethod
    def _equality(left: str, left_node: Any, right: str, right_node: Any) -> str:
        for value, other, other_node in ((left, right, right_node), (right, left, left_node)):
            if other_node["type"] != "literal":
                continue
            literal = other_node["value"]
            if isinstance(literal, str):
                return f"{value} == {other}"  # a string equals only a string
            if literal is None or isinstance(literal, bool):
                return f"{value} is {other}"
            if runtime.is_number(literal):
                return f"({value} == {other} and T({value}) is not B)"
        return f"eq({left}, {right})"

    def _and_expression(self, node: dict[str, Any], current: str) -> str:
        return self._short_circuit(node, current, when_true=True)

    def _or_expression(self, node: dict[str, Any], current: str) -> str:
        return self._short_circuit(node, current, when_true=False)

    def _short_circuit(self, node: dict[str, Any], current: str, when_true: bool) -> str:
        """`a && b` is b when a is true, else a; `a || b` is a when a is true, else b."""
        left_node, right_node = node["children"]
        left = self.value(left_node, current)
        result = self.name()
        condition = self.truthy(left)
        with self.block(f"if {condition}:" if when_true else f"if not {condition}:"):
            right = self.value(right_node, current)
            self.emit(f"{result} = {right}")
        with self.block("else:"):
            self.emit(f"{result} = {left}")
        if left in self.boolean and right in self.boolean:
            self.boolean.add(result)
        return result

    def _not_expression(self, node: dict[str, Any], current: str) -> str:
        operand = self.value(node["children"][0], current)
        result = self.name()
        self.boolean.add(result)
        self.emit(f"{result} = not {self.truthy(operand)}")
        return result

    def _collect(self, result: str, element: str, right_node: dict[str, Any]) -> None:
        """Append `right` applied to `element` to `result`, unless it is null."""
        if right_node["type"] == "identity" and not self.trace:
            with self.block(f"if {element} is not None:"):
                self.emit(f"{result}.append({element})")
            return
        item = self.value(right_node, element)
        with self.block(f"if {item} is not None:"):
            self.emit(f"{result}.append({item})")

    def _projection(self, node: dict[str, Any], current: str) -> str:
        left_node, right_node = node["children"]
        base = self.value(left_node, current)
        return self._project(base, "", right_node, None)

    def _value_projection(self, node: dict[str, Any], current: str) -> str:
        left_node, right_node = node["children"]
        base = self.value(left_node, current)
        return self._project(base, ".values()", right_node, None)

    def _filter_projection(self, node: dict[str, Any], current: str) -> str:
        left_node, right_node, condition_node = node["children"]
        base = self.value(left_node, current)
        return self._project(base, "", right_node, condition_node)

    def _project(
        self,
        base: str,
        values: str,
        right_node: dict[str, Any],
        condition_node: dict[str, Any] | None,
    ) -> str:
        result = self.name()
        element = self.name()
        with self.block(f"if T({base}) is {'D' if values else 'L'}:"):
            if right_node["type"] == "identity" and condition_node is None and not self.trace:
                self.emit(f"{result} = [{element} for {element} in {base}{values}")
                self.lines[-1] += f" if {element} is not None]"
            else:
                self.emit(f"{result} = []")
                with self.block(f"for {element} in {base}{values}:"):
                    if condition_node is None:
                        self._collect(result, element, right_node)
                    else:
                        if self.trace:
                            keep = self.truthy(self.value(condition_node, element))
                        else:
                            keep = self.condition(condition_node, element)
                        with self.block(f"if {keep}:"):
                            self._collect(result, element, right_node)
        with self.block("else:"):
            self.emit(f"{result} = None")
        return result

    def _flatten(self, node: dict[str, Any], current: str) -> str:
        base = self.value(node["children"][0], current)
        result = self.name()
        element = self.name()
        with self.block(f"if T({base}) is L:"):
            self.emit(f"{result} = []")
            with self.block(f"for {element} in {base}:"):
                with self.block(f"if T({element}) is L:"):
                    self.emit(f"{result}.extend({element})")
                with self.block("else:"):
                    self.emit(f"{result}.append({element})")
        with self.block("else:"):
            self.emit(f"{result} = None")
        return result

    def _multi_select_list(self, node: dict[str, Any], current: str) -> str:
        result = self.name()
        with self.block(f"if {current} is None:"):
            self.emit(f"{result} = None")
        with self.block("else:"):
            items = [self.value(child, current) for child in node["children"]]
            self.emit(f"{result} = [{', '.join(items)}]")
        return result

    def _multi_select_dict(self, node: dict[str, Any], current: str) -> str:
        result = self.name()
        with self.block(f"if {current} is None:"):
            self.emit(f"{result} = None")
        with self.block("else:"):
            pairs = []
            for pair in node["children"]:
                key = self.constant(pair["value"])
                pairs.append(f"{key}: {self.value(pair, current)}")
            self.emit(f"{result} = {{{', '.join(pairs)}}}")
        return result

    def _key_val_pair(self, node: dict[str, Any], current: str) -> str:
        return self.value(node["children"][0], current)

    def _expref(self, node: dict[str, Any], current: str) -> str:
        raise self.error(
            "an expression reference (&...) can only be a function's argument", node, INVALID_TYPE
        )

    def _function_expression(self, node: dict[str, Any], current: str) -> str:
        name = node["value"]
        function = runtime.FUNCTIONS.get(name)
        if function is None:
            raise self.error(f"unknown function {name}()", node, UNKNOWN_FUNCTION)
        children = node["children"]
        expected = function.arguments
        if len(children) != len(expected) and not (
            function.variadic and len(children) >= len(expected)
        ):
            wanted = f"at least {len(expected)}" if function.variadic else str(len(expected))
            raise self.error(
                f"{name}() takes {wanted} argument(s), {len(children)} given", node, INVALID_ARITY
            )
        choices = self._string_choices(children[0]) if name == "contains" else None
        if choices is not None and not self.trace:
            # contains() on a list of strings written out: only a string can be in it,
            # so a set will do (a list written as [...] is null where the data is null)
            needle = self.value(children[1], current)
            result = self.name()
            self.boolean.add(result)
            test = f"T({needle}) is S and {needle} in {self.constant(choices)}"
            if children[0]["type"] == "multi_select_list" and current != PLAN_EVENT:
                test = f"({test}) if {current} is not None else f{FUNCTION_NAMES.index(name)}"
                test += f"({current}, {needle})"
            self.emit(f"{result} = {test}")
            return result
        arguments = []
        for index, child in enumerate(children):
            kind = expected[min(index, len(expected) - 1)]
            is_reference = child["type"] == "expref"
            if is_reference != (kind == runtime.EXPREF):
                wanted = "an expression reference (&...)" if kind == runtime.EXPREF else "a value"
                raise self.error(
                    f"{name}() expects {wanted} as argument {index + 1}", node, INVALID_TYPE
                )
            arguments.append(self.reference(child) if is_reference else self.value(child, current))
        result = self.name()
        if name in _BOOLEAN_FUNCTIONS:
            self.boolean.add(result)
        if name in _NUMBER_FUNCTIONS:
            self.numeric.add(result)
        implementation = f"f{FUNCTION_NAMES.index(name)}"
        if name == "length":
            (subject,) = arguments
            call = f"{implementation}({subject})"
            self.emit(f"{result} = ln({subject}) if T({subject}) in SLD else {call}")
        else:
            self.emit(f"{result} = {implementation}({', '.join(arguments)})")
        return result

    @staticmethod
    def _string_choices(node: dict[str, Any]) -> frozenset[str] | None:
        """The strings of a list of string literals, written `[...]` or as a literal."""
        if node["type"] == "literal":
            items = node["value"]
            if isinstance(items, list) and all(isinstance(item, str) for item in items):
                return frozenset(items)
        if node["type"] == "multi_select_list" and all(
            child["type"] == "literal" and isinstance(child["value"], str)
            for child in node["children"]
        ):
            return frozenset(child["value"] for child in node["children"])
        return None

    def reference(self, node: dict[str, Any]) -> str:
        """An expression reference: a function of the element it is applied to."""
        point: TracePoint | None = None
        if self.trace:
            point = TracePoint(unparse(node), node["type"])
            self.trace_stack[-1].children.append(point)
            self.trace_stack.append(point)
        helper = self.name("e")
        try:
            with self.function(helper):
                inner = self.value(node["children"][0], "v0")
                self.emit(f"return {inner}")
        finally:
            if point is not None:
                self.trace_stack.pop()
        return helper


def helpers() -> tuple[Any, ...]:
    return tuple(HELPERS.values())
