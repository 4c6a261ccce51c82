"""JMESPath expressions: compiled once into Python code, then evaluated many times.

jmespath's parser reads the expression; codegen.py turns the tree into a Python function
with the specification's semantics (runtime.py holds what that function calls). The
router runs the filters of many routes at once as routing plans (`compile_plan`);
`Expression.test` says whether one expression is truthy for an event, `search` gives
its value, and `explain` the value of every part of it, for `evroute explain`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jmespath import exceptions as jmespath_errors
from jmespath.parser import Parser

from evroute.expr import codegen, rounding
from evroute.expr.errors import INVALID_VALUE, ExpressionError, ExpressionSyntaxError
from evroute.expr.runtime import is_truthy, json_equal

__all__ = [
    "BatchRunner",
    "Explanation",
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "Plan",
    "PlanStep",
    "batch_runner",
    "compile",
    "compile_plan",
    "is_truthy",
    "json_equal",
]

# Compiling costs about 40 ms per 1,000 characters: a config, which is not trusted, must
# not be able to stall `validate` or a start for minutes.
MAX_EXPRESSION_CHARS = 10_000


@dataclass
class Explanation:
    """A part of an expression and every value it produced for one piece of data.

    A part inside a projection produces one value per element; a part that a
    short-circuit skipped produces none.
    """

    expression: str
    kind: str
    values: list[Any] = field(default_factory=list)
    children: list[Explanation] = field(default_factory=list)
    error: str | None = None  # set on the root when evaluating raised an error

    @property
    def value(self) -> Any:
        """The value of this part, when it produced exactly one."""
        return self.values[0] if len(self.values) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {"expression": self.expression, "values": self.values}
        if self.error is not None:
            described["error"] = self.error
        if self.children:
            described["children"] = [child.to_dict() for child in self.children]
        return described


def _noop_record(point: Any, value: Any) -> None:
    return None


def _load(generated: codegen.Generated, source: str, record: Any) -> Any:
    """Compile generated code and run its `build` with the values it refers to."""
    try:
        code = builtins.compile(generated.source, "<jmespath>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        raise ExpressionSyntaxError("the expression is too complex", source, None) from None
    # No builtins: the generated code reaches only the values it is handed.
    namespace: dict[str, Any] = {"__builtins__": {}}
    exec(code, namespace)
    return namespace["build"](generated.constants, codegen.helpers(), record)


def _build(source: str, tree: dict[str, Any], trace: bool, record: Any) -> tuple[Any, Any, Any]:
    """The generated (search, test) functions, and the trace tree when tracing."""
    generated = codegen.CodeGenerator(source, tree, trace).generate()
    search, test = _load(generated, source, record)
    return search, test, generated.trace_root


PlanStep = codegen.PlanStep
Plan = Callable[[dict[str, Any], int], bool]


def compile_plan(
    steps: Sequence[PlanStep],
    recorders: Sequence[Callable[..., Any]],
    fail: Callable[[int, int, Exception], None],
) -> Plan:
    """One function that tests an event against the filters of several routes.

    `plan(event, position)` calls `recorders[i](position)` for each step i whose filter
    matches (`recorders[i](position, event)` when the step `takes_event`, which returns
    whether it matched after all), `fail(route, position, error)` for a filter that
    raises, and returns whether anything matched. Fields the filters share are read once.
    """
    generator = codegen.CodeGenerator("", {"type": "identity", "children": []}, False)
    sources = "; ".join(step.filter.source for step in steps if step.filter is not None)
    try:
        generated = generator.generate_plan(steps)
        plan = _load(generated, sources, (fail, *recorders))
    except (ExpressionSyntaxError, RecursionError):
        # the filters compiled alone, but together they are too much for one function
        return _plan_of_tests(steps, recorders, fail)
    plan.batch_of = (steps, recorders, fail, sources)  # for batch_runner
    return plan  # type: ignore[no-any-return]


# run(lines, loads, slow, unmatched): see codegen.generate_plan
BatchRunner = Callable[
    [list[bytes], Callable[[bytes], Any], Callable[[int, bytes], Any], Callable[[int], None]], None
]


def batch_runner(plan: Plan) -> BatchRunner | None:
    """`plan` run over a batch of lines with the loop inside (codegen.generate_plan with
    batch), compiled the first time it is asked for; None for a plan without one."""
    made: Any = getattr(plan, "batch_runner", None)
    if made is None:
        spec = getattr(plan, "batch_of", None)
        if spec is None:
            return None
        steps, recorders, fail, sources = spec
        generator = codegen.CodeGenerator("", {"type": "identity", "children": []}, False)
        try:
            made = _load(generator.generate_plan(steps, batch=True), sources, (fail, *recorders))
        except (ExpressionSyntaxError, RecursionError):
            made = False  # nested too deeply with the loop around it: event by event
        plan.batch_runner = made  # type: ignore[attr-defined]
    return None if made is False else made


def _plan_of_tests(
    steps: Sequence[PlanStep],
    recorders: Sequence[Callable[..., Any]],
    fail: Callable[[int, int, Exception], None],
) -> Plan:
    """A plan that calls each filter's own compiled test, one after the other."""
    calls = [
        (step.route, None if step.filter is None else step.filter.test_function, record, step)
        for step, record in zip(steps, recorders, strict=True)
    ]

    def plan(event: dict[str, Any], position: int) -> bool:
        matched = False
        for route, test, record, step in calls:
            try:
                if test is None or test(event):
                    if step.takes_event:
                        matched = record(position, event) or matched
                    else:
                        record(position)
                        matched = True
            except Exception as error:
                fail(route, position, error)
        return matched

    return plan


class Expression:
    """A compiled JMESPath expression."""

    __slots__ = ("_positions", "_search", "_test", "source", "tree")

    def __init__(self, source: str, tree: dict[str, Any]) -> None:
        self.source = source
        self.tree = tree
        self._search, self._test, _ = _build(source, tree, False, _noop_record)
        positions: dict[str, list[int]] = {}
        for position in sorted(codegen.call_positions(source, tree).values()):
            name = _name_at(source, position)
            positions.setdefault(name, []).append(position)
        self._positions = positions

    @property
    def test_function(self) -> Callable[[Any], bool]:
        """`test` without the error translation: for hot loops that catch Exception and
        pass it to `error`."""
        return self._test  # type: ignore[no-any-return]

    @property
    def search_function(self) -> Callable[[Any], Any]:
        """`search` without the error translation, like `test_function`."""
        return self._search  # type: ignore[no-any-return]

    def is_constant(self) -> bool:
        """Whether its value is the same for every document: it reads nothing of it."""

        def only_literals(node: Any) -> bool:
            if not isinstance(node, dict):  # a slice's bounds: numbers, not nodes
                return True
            children = node["children"]
            if not children:
                return bool(node["type"] == "literal")
            return all(only_literals(child) for child in children)

        return only_literals(self.tree)

    def truth_ignores_rounding(self) -> bool:
        """Whether `test` gives the same truth, or the same error, for every document
        whether its integers beyond 64 bits are exact or rounded to floats, as orjson
        reads them (see rounding.py; False when unsure)."""
        return rounding.truth_ignores_rounding(self.tree)

    def required_equalities(self) -> list[tuple[tuple[str, ...], str]]:
        """The (field path, string) pairs this expression is true only with.

        From `path == 'text'` terms joined by `&&` at the top: `"detail-type" ==
        'OrderPlaced' && detail.amount > `100`` gives [(("detail-type",), "OrderPlaced")].
        The router indexes routes by them.
        """
        found: list[tuple[tuple[str, ...], str]] = []
        pending = [self.tree]
        while pending:
            node = pending.pop()
            if node["type"] == "and_expression":
                pending.extend(node["children"])
            elif node["type"] == "comparator" and node["value"] == "eq":
                left, right = node["children"]
                for path_node, literal in ((left, right), (right, left)):
                    path = codegen.field_path(path_node)
                    if path and literal["type"] == "literal" and type(literal["value"]) is str:
                        found.append((path, literal["value"]))
        return found

    def search(self, data: Any) -> Any:
        """The expression's value for `data`; raises ExpressionError."""
        try:
            return self._search(data)
        except Exception as error:
            raise self.error(error) from None

    def test(self, data: Any) -> bool:
        """Whether the expression's value for `data` is true (JMESPath truthiness)."""
        try:
            return self._test(data)  # type: ignore[no-any-return]
        except Exception as error:
            raise self.error(error) from None

    def error(self, error: Exception) -> ExpressionError:
        """What an exception raised by the generated code means, located where possible."""
        if isinstance(error, ExpressionError):
            calls = self._positions.get(error.function or "", [])
            if error.position is None and len(calls) == 1:
                return ExpressionError(error.message, error.kind, error.function, calls[0])
            return error
        # arithmetic on values no JSON parser gives (a literal `1e999`), recursion depth
        return ExpressionError(f"{type(error).__name__}: {error}", INVALID_VALUE)

    def explain(self, data: Any) -> Explanation:
        """The value of each part of the expression for `data`, as a tree."""
        recorded: dict[int, list[Any]] = {}

        def record(point: Any, value: Any) -> None:
            recorded.setdefault(id(point), []).append(value)

        search, _, root = _build(self.source, self.tree, True, record)
        error: str | None = None
        try:
            search(data)
        except Exception as raised:
            error = str(self.error(raised))

        def build(point: codegen.TracePoint) -> Explanation:
            return Explanation(
                point.expression,
                point.kind,
                recorded.get(id(point), []),
                [build(child) for child in point.children],
            )

        explanation = build(root)
        explanation.error = error
        return explanation

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _name_at(source: str, position: int) -> str:
    end = source.index("(", position)
    return source[position:end].strip()


def parse(source: str) -> dict[str, Any]:
    """jmespath's parse tree for `source`; ExpressionSyntaxError with a position."""
    try:
        tree: Any = Parser().parse(source).parsed  # plain dicts, whatever its stubs say
        return dict(tree)
    except jmespath_errors.LexerError as error:
        raise ExpressionSyntaxError(error.message, source, error.lex_position) from None
    except jmespath_errors.IncompleteExpressionError:
        raise ExpressionSyntaxError("incomplete expression", source, len(source)) from None
    except jmespath_errors.ParseError as error:
        token = error.token_value
        message = f"unexpected token {token!r}" if token not in (None, "") else error.msg
        raise ExpressionSyntaxError(message, source, error.lex_position) from None
    except jmespath_errors.JMESPathError as error:
        raise ExpressionSyntaxError(str(error), source, None) from None
    except RecursionError:
        raise ExpressionSyntaxError("the expression is nested too deeply", source, None) from None
    except ValueError as error:  # an index too long for int()
        raise ExpressionSyntaxError(str(error), source, None) from None


def compile(source: str) -> Expression:
    """Compile `source`; ExpressionSyntaxError says where it is wrong.

    Mistakes that are certain before any data is seen (an unknown function, a wrong
    number of arguments) are reported here, with the kind the specification names.
    """
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionSyntaxError(
            f"the expression is {len(source):,} characters long;"
            f" at most {MAX_EXPRESSION_CHARS:,} are allowed",
            source,
            MAX_EXPRESSION_CHARS,
        )
    tree = parse(source)
    try:
        return Expression(source, tree)
    except RecursionError:
        raise ExpressionSyntaxError("the expression is nested too deeply", source, None) from None
