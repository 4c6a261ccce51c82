"""Properties of evroute.expr on generated expressions and documents.

1. Differential: evroute's compiled expressions give what the jmespath library's own
   interpreter gives, on generated documents and generated expressions, once the
   interpreter is made to follow the JMESPath specification where jmespath.py does not
   (the oracle below says where and why). `test` is the truthiness of that value, and a
   routing plan (expr.compile_plan) matches exactly when `test` is true and reports a
   failure exactly when `search` raises.
2. Hostile expressions: no text of an expression ever becomes code. Whatever Python an
   expression's identifiers, strings and literals hold, the generated source has no string
   or number token and names only what the generator itself names, and evaluating it runs
   none of that Python. Malformed expressions are refused with ExpressionSyntaxError only.
"""

from __future__ import annotations

import contextlib
import io
import json
import keyword
import math
import re
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from expressions import (
    ANY_NAME,
    canonical,
    compiled_or_none,
    documents,
    expressions,
    is_number,
    json_values,
    paths_in,
    plain_fields,
    plain_literals,
    raw_string,
    scalars,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath import visitor as jmespath_visitor
from jmespath.parser import Parser

from evroute import expr
from evroute.expr import codegen

# -- the oracle: jmespath.py's interpreter, with the specification's semantics -----------


def spec_equal(left: Any, right: Any) -> bool:
    """JMESPath equality: 1 equals 1.0, a boolean never equals a number, at any depth.

    jmespath.py tells true from 1 only at the top level of a comparison (`[1] == [true]`
    is true there).
    """
    if is_number(left) and is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    if type(left) is list:
        return len(left) == len(right) and all(map(spec_equal, left, right))
    if type(left) is dict:
        return left.keys() == right.keys() and all(spec_equal(v, right[k]) for k, v in left.items())
    return bool(left == right)


def spec_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    if value is None or value is False:
        return False
    if type(value) in (str, list, dict):
        return len(value) > 0
    return True


# to_number() accepts a string that is a JSON number, nothing more or less.
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


class OracleFunctions(jmespath_functions.Functions):
    """jmespath.py's built-ins, with the specification's semantics where they differ."""

    @jmespath_functions.signature({"types": ["array", "string"]}, {"types": []})
    def _func_contains(self, subject: Any, search: Any) -> bool:
        # (b) membership is JMESPath equality: contains([1], `true`) is false, and a
        # string contains only strings (jmespath.py: `search in subject`)
        if isinstance(subject, str):
            return isinstance(search, str) and search in subject
        return any(spec_equal(item, search) for item in subject)

    @jmespath_functions.signature({"types": []})
    def _func_to_number(self, value: Any) -> Any:
        # (c) jmespath.py tries int() then float(): " 1", "1_0", "01", "+1", ".5", "nan"
        # and "\u0661" (an Arabic digit) become numbers there; the specification converts
        # a JSON number
        if is_number(value):
            return value
        if type(value) is not str or not JSON_NUMBER.fullmatch(value):
            return None
        if all(mark not in value for mark in ".eE"):
            return int(value)
        number = float(value)
        return None if math.isinf(number) else number

    @jmespath_functions.signature({"types": [], "variadic": True})
    def _func_merge(self, *arguments: Any) -> dict[str, Any]:
        # (d) merge takes only objects; jmespath.py's type check lets an empty string or
        # array through (dict.update takes any empty iterable): merge(@, '') is an object
        for argument in arguments:
            if type(argument) is not dict:
                raise jmespath_errors.JMESPathTypeError(
                    "merge", argument, type(argument).__name__, ["object"]
                )
        merged: dict[str, Any] = {}
        for argument in arguments:
            merged.update(argument)
        return merged

    @jmespath_functions.signature({"types": []})
    def _func_to_string(self, value: Any) -> str:
        # Both are the JSON encoding the specification asks for; evroute keeps non-ASCII
        # characters as they are where jmespath.py writes \u escapes ("é" vs "\u00e9").
        if isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class OracleInterpreter(jmespath_visitor.TreeInterpreter):
    """jmespath.py's tree interpreter with the specification's comparisons."""

    def visit_comparator(self, node: Any, value: Any) -> Any:
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        operator = node["value"]
        if operator == "eq":
            return spec_equal(left, right)  # (b)
        if operator == "ne":
            return not spec_equal(left, right)
        # (a) ordering is for numbers only: null otherwise (jmespath.py orders strings,
        # and raises TypeError for a string against a number)
        if not (is_number(left) and is_number(right)):
            return None
        return self.COMPARATOR_FUNC[operator](left, right)


ORACLE = OracleInterpreter(jmespath_visitor.Options(custom_functions=OracleFunctions()))
ORACLE_FUNCTIONS: dict[str, dict[str, Any]] = OracleFunctions.FUNCTION_TABLE


def static_problem(node: dict[str, Any]) -> str | None:
    """A mistake certain before any data is seen, or None.

    evroute reports these at compile time, with the kind the specification names;
    jmespath.py only when (and if) the call runs, and `&a` alone gives it a Python object.
    """
    kind = node["type"]
    if kind == "expref":
        return "an expression reference that is not a function's argument"
    if kind == "slice":
        return "a slice step of 0" if node["children"][2] == 0 else None
    children = [child for child in node.get("children", []) if isinstance(child, dict)]
    if kind == "function_expression":
        spec = ORACLE_FUNCTIONS.get(node["value"])
        if spec is None:
            return "unknown function"
        signature = spec["signature"]
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if len(children) < len(signature) or (not variadic and len(children) > len(signature)):
            return "invalid arity"
        for index, child in enumerate(children):
            wants_reference = signature[min(index, len(signature) - 1)]["types"] == ["expref"]
            if (child["type"] == "expref") != wants_reference:
                return "an expression reference where a value is wanted, or the reverse"
        children = [c["children"][0] if c["type"] == "expref" else c for c in children]
    for child in children:
        problem = static_problem(child)
        if problem is not None:
            return problem
    return None


def oracle(source: str, data: Any) -> tuple[str, Any]:
    """("compile", message), ("error", exception) or ("value", value)."""
    try:
        tree: Any = Parser().parse(source).parsed  # plain dicts, whatever its stubs say
    except jmespath_errors.JMESPathError as error:
        return "compile", str(error)
    problem = static_problem(tree)
    if problem is not None:
        return "compile", problem
    try:
        return "value", ORACLE.visit(tree, data)
    except Exception as error:  # JMESPathError, and jmespath.py's own TypeErrors
        return "error", error


# -- 1. differential --------------------------------------------------------------------


def value_at(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        document = document.get(key) if type(document) is dict else None
    return document


def run_plan(
    compiled: expr.Expression, document: dict[str, Any]
) -> tuple[bool, list[Any], list[Any]]:
    """A one-step plan for `compiled` run on `document`: (result, recorded, failures)."""
    recorded: list[Any] = []
    failures: list[Any] = []

    def fail(route: int, position: int, error: Exception) -> None:
        failures.append((route, position, error))

    plan = expr.compile_plan([expr.PlanStep(5, compiled, False)], [recorded.append], fail)
    return plan(document, 7), recorded, failures


@settings(max_examples=2000, deadline=None)
@given(document=st.one_of(documents, documents, json_values), data=st.data())
def test_evroute_agrees_with_the_spec_oracle(document: Any, data: st.DataObject) -> None:
    """search, test and a routing plan agree with the oracle on any expression."""
    paths = paths_in(document)
    depth = data.draw(st.integers(1, 4), "depth")  # small ones are less often errors
    source = data.draw(
        expressions(plain_fields, plain_literals, st.sampled_from(ANY_NAME), paths, depth),
        "source",
    )
    outcome, expected = oracle(source, document)
    try:
        compiled = expr.compile(source)
    except expr.ExpressionSyntaxError:
        assert outcome == "compile", (outcome, expected)
        return
    assert outcome != "compile", expected
    try:
        value = compiled.search(document)
    except expr.ExpressionError as error:
        assert outcome == "error", (error, expected)
        with pytest.raises(expr.ExpressionError):
            compiled.test(document)
        failed = True
    else:
        assert outcome == "value", (value, expected)
        assert canonical(value) == canonical(expected)
        assert compiled.test(document) is spec_truthy(expected)
        if spec_truthy(expected):
            # the router indexes routes by these: a true filter has them all
            for path, text in compiled.required_equalities():
                assert value_at(document, path) == text, (path, text)
        failed = False
    if type(document) is dict:
        matched, recorded, failures = run_plan(compiled, document)
        if failed:
            assert (matched, recorded, [f[:2] for f in failures]) == (False, [], [(5, 7)])
            assert isinstance(compiled.error(failures[0][2]), expr.ExpressionError)
        else:
            truth = spec_truthy(expected)
            assert (matched, recorded, failures) == (truth, [7] if truth else [], [])


@settings(max_examples=300, deadline=None)
@given(
    document=documents,
    takes_event=st.lists(st.booleans(), min_size=4, max_size=4),
    data=st.data(),
)
def test_a_plan_of_several_filters_is_each_filter(
    document: dict[str, Any], takes_event: list[bool], data: st.DataObject
) -> None:
    """Filters sharing a plan (and the fields it reads once) behave as they do alone."""
    paths = paths_in(document)
    filters_text = expressions(plain_fields, plain_literals, st.sampled_from(ANY_NAME), paths, 3)
    sources = data.draw(st.lists(filters_text, min_size=2, max_size=4), "sources")
    filters = [compiled for source in sources if (compiled := compiled_or_none(source))]
    assume(filters)
    events: list[tuple[int, int, dict[str, Any]]] = []
    recorded: list[tuple[int, int]] = []
    failures: list[tuple[int, int]] = []

    def recorder(route: int, with_event: bool) -> Callable[..., Any]:
        def record(position: int, event: dict[str, Any] | None = None) -> bool:
            recorded.append((route, position))
            if with_event:
                assert event is not None
                events.append((route, position, event))
            return route % 2 == 0  # a transform that fails says so

        return record

    steps = [expr.PlanStep(10 + n, f, takes_event[n]) for n, f in enumerate(filters)]
    recorders = [recorder(10 + n, takes_event[n]) for n in range(len(filters))]
    plan = expr.compile_plan(steps, recorders, lambda route, p, error: failures.append((route, p)))
    matched = plan(document, 3)

    want_recorded, want_failures, want_matched = [], [], False
    for n, compiled in enumerate(filters):
        try:
            truth = compiled.test(document)
        except expr.ExpressionError:
            want_failures.append((10 + n, 3))
            continue
        if truth:
            want_recorded.append((10 + n, 3))
            want_matched = want_matched or not takes_event[n] or (10 + n) % 2 == 0
    assert recorded == want_recorded
    assert failures == want_failures
    assert matched is want_matched
    assert all(event is document for _, _, event in events)


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("a < b", {"a": "x", "b": "y"}, None),  # (a): jmespath.py says true
        ("a < b", {"a": "x", "b": 1}, None),  # (a): jmespath.py raises TypeError
        ("a < b", {"a": True, "b": 2}, None),  # (a): a boolean is not a number
        ("a == b", {"a": [1], "b": [True]}, False),  # (b): jmespath.py says true
        ("a == b", {"a": 1, "b": 1.0}, True),
        ("contains(a, `true`)", {"a": [1]}, False),  # (b): jmespath.py says true
        ("to_number(a)", {"a": "1e3"}, 1000.0),
        ("to_number(a)", {"a": "12"}, 12),
        ("to_number(a)", {"a": " 1"}, None),  # (c): jmespath.py says 1
        ("to_number(a)", {"a": "1_0"}, None),  # (c): jmespath.py says 10
        ("to_number(a)", {"a": "nan"}, None),  # (c): jmespath.py says NaN
        ("to_string(a)", {"a": ["é"]}, '["é"]'),  # jmespath.py says '["\\u00e9"]'
    ],
)
def test_the_oracle_fixes(source: str, data: Any, expected: Any) -> None:
    """Where the oracle departs from jmespath.py, evroute and the oracle agree."""
    outcome, value = oracle(source, data)
    assert (outcome, canonical(value)) == ("value", canonical(expected))
    assert canonical(expr.compile(source).search(data)) == canonical(expected)


# -- 2. hostile expressions -------------------------------------------------------------

CANARY = "CANARY"
PAYLOADS = [
    f"__import__('os').system('touch {CANARY}')",
    f"\"); import os; os.system('touch {CANARY}'); (\"",
    f"'); open('{CANARY}', 'w'); ('",
    f"\n__import__('os').system('touch {CANARY}')\n",
    f"{{__import__('os').system('touch {CANARY}')}}",
    f"''' + open('{CANARY}', 'w').name + '''",
    f'""" + open("{CANARY}", "w").name + """',
    "\\",
    "\\'",
    "'''",
    '"""',
    "{",
    "}",
    "{k0}",
    "#",
    "# coding: latin-1",
    "\x00",
    "\r\n",
    "\t",
    "é",
    "😀",
    "\u2028",
    "\ufeff",
    "%s%r",
    "\\N{DIGIT ONE}",
    "`",
    "0x1F",
    "1e5",
    "x" * 2000,
]
# names the generated code uses, Python's, and some that are also JMESPath identifiers
PYTHON_NAMES = [
    "__class__",
    "__builtins__",
    "__import__",
    "getattr",
    "exec",
    "eval",
    "open",
    "os",
    "k0",
    "k1",
    "v0",
    "v1",
    "f3",
    "h1",
    "e1",
    "a0",
    "T",
    "D",
    "L",
    "S",
    "B",
    "NUM",
    "SLD",
    "ln",
    "eq",
    "EXC",
    "record",
    "fail",
    "build",
    "constants",
    "helpers",
    "search",
    "test",
    "plan",
    "r0",
    "m",
    "p",
    "x",
    "None",
    "True",
    "lambda",
    "import",
    "def",
    "_",
    "a" * 1500,
]
hostile_texts = st.sampled_from(PAYLOADS + PYTHON_NAMES) | st.text(max_size=8)


def quoted_identifier(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)


def json_literal(value: Any) -> str:
    return "`" + json.dumps(value).replace("`", "\\`") + "`"


hostile_fields = st.one_of(
    st.sampled_from(PYTHON_NAMES),
    st.builds(quoted_identifier, hostile_texts, st.booleans()),
)
hostile_literals = st.one_of(
    hostile_texts.map(raw_string),
    hostile_texts.map(json_literal),
    st.builds(lambda key, value: json_literal({key: [value]}), hostile_texts, hostile_texts),
    st.sampled_from(["`0`", "`-1`", "`99999`", "`1.5e300`"]),
)
hostile_function_names = st.sampled_from(
    [*ANY_NAME, *PYTHON_NAMES[:-1], "__import__('os').system", "os.system"]
)
hostile_expressions = expressions(hostile_fields, hostile_literals, hostile_function_names)
hostile_documents = st.dictionaries(
    hostile_texts,
    st.recursive(hostile_texts | scalars, lambda i: st.lists(i, max_size=3)),
    max_size=6,
)

# Every name the generator writes: its own, the helpers it is handed, and its numbered ones.
GENERATOR_NAMES = frozenset(
    [
        "build",
        "constants",
        "helpers",
        "record",
        "search",
        "test",
        "plan",
        "fail",
        "m",
        "p",
        "x",
        codegen.PLAN_EVENT,
        "get",
        "append",
        "extend",
        "values",
        *codegen.HELPERS,
    ]
)
NUMBERED_NAME = re.compile(r"[vkfhea][0-9]+")
CODE_TOKENS = frozenset(
    [
        tokenize.NAME,
        tokenize.OP,
        tokenize.NEWLINE,
        tokenize.NL,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    ]
)


def assert_only_generated_names(source: str) -> None:
    """No string, number or comment in `source`; every name is the generator's."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        assert token.type not in (tokenize.STRING, tokenize.NUMBER), token
        assert token.type in CODE_TOKENS, token
        if token.type == tokenize.NAME:
            name = token.string
            assert (
                keyword.iskeyword(name)
                or name in GENERATOR_NAMES
                or NUMBERED_NAME.fullmatch(name) is not None
            ), token


def expression_source(compiled: expr.Expression) -> str:
    return codegen.CodeGenerator(compiled.source, compiled.tree, False).generate().source


def plan_source(steps: list[expr.PlanStep], batch: bool = False) -> str:
    generator = codegen.CodeGenerator("", {"type": "identity", "children": []}, False)
    return generator.generate_plan(steps, batch).source


@pytest.fixture
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, where a payload that ran would leave CANARY."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sources=st.lists(hostile_expressions, min_size=1, max_size=3), document=hostile_documents)
def test_no_expression_text_becomes_code(
    in_empty_dir: Path, sources: list[str], document: dict[str, Any]
) -> None:
    """The generated code names only what the generator chose, and runs no payload."""
    filters = []
    for source in sources:
        try:
            compiled = expr.compile(source)
        except expr.ExpressionSyntaxError:
            continue
        filters.append(compiled)
        assert_only_generated_names(expression_source(compiled))
        for evaluate in (compiled.search, compiled.test):
            with contextlib.suppress(expr.ExpressionError):
                evaluate(document)
    if filters:
        steps = [expr.PlanStep(n, f, n % 2 == 1) for n, f in enumerate(filters)]
        assert_only_generated_names(plan_source(steps))
        assert_only_generated_names(plan_source(steps, batch=True))
        recorders = [lambda p, event=None: True for _ in filters]
        expr.compile_plan(steps, recorders, lambda route, p, error: None)(document, 0)
    assert list(in_empty_dir.iterdir()) == []


def test_hostile_expressions_do_compile() -> None:
    """The hostile atoms reach the generator: they are valid JMESPath, not refused early."""
    for text in PAYLOADS:
        field = quoted_identifier(text, False)
        for source, expected in (
            (f"{field} == {json_literal(text)}", True),
            (f"type({raw_string(text)})", "string"),
            (f"{{{quoted_identifier(text, True)}: {json_literal(text)}}}", {text: text}),
            (f"contains({json_literal([text])}, @.{field})", True),
            (f"[{field}, {json_literal({text: text})}.{field}]", [text, text]),
        ):
            compiled = expr.compile(source)
            assert_only_generated_names(expression_source(compiled))
            assert compiled.search({text: text}) == expected, source
    for name in PYTHON_NAMES:
        compiled = expr.compile(f"{name}.{name}[?{name} == '{name}'].{{{name}: {name}}}")
        assert_only_generated_names(expression_source(compiled))
        data = {name: {name: [{name: name}]}}
        assert compiled.search(data) == [{name: name}]


@pytest.mark.parametrize(
    "source",
    [
        '"abc',
        "'abc",
        "`abc",
        'a == "b',
        "foo(",
        "foo(a,",
        "&",
        "a[",
        "a.",
        "{a: }",
        "(" * 2000 + "a" + ")" * 2000,
        "(" * 50000 + "a" + ")" * 50000,
        "[" * 100000,
        "a." * 50000,
        '"' + "a" * 99999,
        "nosuch(a)",
        "__import__('os')",
        "eval('1')",
        "a.getattr(@, '__class__')",
        "length(a, b)",
        "sort_by(a, b)",
        "length(&a)",
        "&a",
        "[&a]",
        "a[::0]",
    ],
    ids=lambda source: repr(source[:24]) + (f"...({len(source)})" if len(source) > 24 else ""),
)
def test_malformed_expressions_are_refused_cleanly(source: str) -> None:
    with pytest.raises(expr.ExpressionSyntaxError):
        expr.compile(source)


@pytest.mark.parametrize(
    "source",
    [
        "a" * 100000,
        ".".join(["a"] * 5000),  # (50000 compile, in about 25 s: CPython on 50000 locals)
        " || ".join(["a"] * 25000),
        "a[0]" * 25000,
        "[" * 1000 + "a" + "]" * 1000,
    ],
    ids=["identifier", "dots", "ors", "indexes", "brackets"],
)
def test_very_long_expressions_compile_or_are_refused_cleanly(source: str) -> None:
    try:
        compiled = expr.compile(source)
    except expr.ExpressionSyntaxError:
        return
    compiled.search({"a": [1]})


@pytest.mark.parametrize(
    "source", ['`{"a": NaN}`', "`NaN`", "`[Infinity]`", "`-Infinity`", "`1e999`"]
)
def test_non_json_literals_are_refused(source: str) -> None:
    with pytest.raises(expr.ExpressionSyntaxError):
        expr.compile(source)


def test_a_huge_index_is_refused_cleanly() -> None:
    with pytest.raises(expr.ExpressionSyntaxError):
        expr.compile("a[" + "9" * 5000 + "]")


def test_a_filter_that_compiles_also_compiles_in_a_plan() -> None:
    source = " || ".join(f"a == 'x{n}'" for n in range(250))
    compiled = expr.compile(source)
    steps = [expr.PlanStep(0, compiled, False)]
    plan = expr.compile_plan(steps, [lambda p: None], lambda route, p, error: None)
    assert plan({"a": "x249"}, 0) is True


@pytest.mark.parametrize(
    "source",
    [
        " || ".join(f"@ == 'x{n}'" for n in range(250)),
        " && ".join(["`1`"] * 200),
        "a == `1` && (" * 100 + "a" + ")" * 100,
    ],
    ids=["ors-on-current", "ands-of-literals", "nested-ands"],
)
def test_long_conditions_compile(source: str) -> None:
    assert oracle(source, {"a": 1})[0] == "value"  # jmespath.py evaluates it
    expr.compile(source)
