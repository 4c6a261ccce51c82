"""What the expression tests share: the official JMESPath compliance suite, how values and
compile outcomes are compared, and generated JSON documents and JMESPath expressions
(hypothesis strategies) for the property tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from evroute import expr

# The official compliance suite, copied with its licence (tests/conformance/jmespath/README.md).
SUITE = Path(__file__).resolve().parent / "conformance" / "jmespath"


def canonical(value: Any) -> str:
    """A JSON text that tells 1 from 1.0 from true, with keys in order."""
    return json.dumps(value, sort_keys=True)


def is_number(value: object) -> bool:
    return type(value) in (int, float)


def raw_string(text: str) -> str:
    """A raw string literal; jmespath.py keeps a backslash before another as it is."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def compiled_or_none(source: str) -> expr.Expression | None:
    """The compiled expression, or None when it does not compile."""
    try:
        return expr.compile(source)
    except expr.ExpressionSyntaxError:
        return None


# -- generated documents and expressions ------------------------------------------------

KEYS = ["a", "b", "c", "x-y"]
STRINGS = ["", "a", "b", "ab", "s", "raw", "x-y", "é", "1", "-0", "1.5", "1e3", "1E2"]
# strings jmespath.py's to_number() takes for numbers and the specification does not
NOT_NUMBERS = [" 1", "1_0", "nan", "01", "+1", ".5", "1.", "0x10", "\u0661", "inf"]

# few distinct values, so that comparisons are sometimes true
# (null last: hypothesis draws the first choice most)
scalars = st.one_of(
    st.integers(-2, 3),
    st.sampled_from(STRINGS),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, -1.5]),
    st.booleans(),
    st.sampled_from(STRINGS + NOT_NUMBERS),
    st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    st.none(),
)


def objects(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with most or all of the keys, so that paths usually lead somewhere."""
    every_key = st.fixed_dictionaries({key: values for key in KEYS})
    return every_key | st.dictionaries(st.sampled_from(KEYS), values, min_size=2, max_size=4)


def json_documents(depth: int) -> st.SearchStrategy[Any]:
    """JSON values nested up to `depth` deep."""
    if depth == 0:
        return scalars
    inner = json_documents(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=4),
        st.lists(st.integers(-2, 3) | st.sampled_from([0.5, -1.0, True]), max_size=4),
        st.lists(st.sampled_from(STRINGS), max_size=4),
        objects(inner),
        objects(inner),
        st.lists(objects(inner), max_size=3),
        # records to sort and pick by: a field that is a number, or a string, in each
        st.lists(objects(st.integers(-2, 3) | st.sampled_from([0.5, -1.0])), max_size=4),
        st.lists(objects(st.sampled_from(STRINGS)), max_size=4),
        # to flatten, and to tell [1] from [true]
        st.lists(
            st.lists(st.integers(0, 1) | st.booleans() | st.sampled_from(STRINGS)), max_size=3
        ),
    )


json_values = json_documents(3)
documents = objects(json_documents(2))

UNARY = [
    "length",
    "keys",
    "values",
    "sort",
    "reverse",
    "to_string",
    "to_array",
    "to_number",
    "type",
    "not_null",
    "abs",
    "floor",
    "ceil",
    "sum",
    "avg",
    "max",
    "min",
    "merge",
]
BINARY = ["contains", "starts_with", "ends_with", "join", "not_null", "merge"]
BY = ["sort_by", "max_by", "min_by"]
ANY_NAME = [*UNARY, *BINARY, *BY, "map", "nosuch"]
POSTFIXES = [".*", "[*]", "[]", "[0]", "[1]", "[-1]", "[1:]", "[:2]", "[::-1]", "[::2]", "[::0]"]
COMPARATORS = ["==", "!=", "<", "<=", ">", ">="]


# The forms an expression is built from, each as often as it is listed.
FORMS = [
    *["field"] * 3,
    *["postfix"] * 3,
    *["filter"] * 2,
    *["compare"] * 2,
    *["logic"] * 2,
    "pipe",
    "not",
    "list",
    "hash",
    "dot-select",
    *["call"] * 4,
    "dot-call",
]


@st.composite
def expressions(
    draw: st.DrawFn,
    fields: st.SearchStrategy[str],
    literals: st.SearchStrategy[str],
    function_names: st.SearchStrategy[str],
    paths: dict[str, list[str]] | None = None,
    depth: int = 4,
) -> str:
    """JMESPath expression text from the grammar, built from the given atoms.

    `paths` lead somewhere in the document (see `paths_in`): they are leaves, and the
    arguments of `typed_expressions`. Operands are parenthesized or not at random: the
    text is valid far more often than not, and when it is not, both sides must refuse it.
    """
    if paths is not None and draw(st.integers(0, 9)) < 3:
        return draw(typed_expressions(paths))
    if depth == 0 or draw(st.integers(0, 9)) < 3:
        kind = draw(st.sampled_from(["field"] * 3 + ["literal"] * 2 + ["current", "projection"]))
        if kind == "field":
            if paths is not None and draw(st.integers(0, 2)) > 0:
                return draw(st.sampled_from(paths["any"]))
            return draw(fields)
        if kind == "literal":
            return draw(literals)
        if kind == "current":
            return "@"
        return draw(st.sampled_from(["*", "[*]", "[]", "[0]", "[-1]", "[1:]", "[::-1]"]))

    def inner() -> str:
        return draw(expressions(fields, literals, function_names, paths, depth - 1))

    def operand() -> str:
        text = inner()
        return f"({text})" if draw(st.booleans()) else text

    def some(item: Callable[[], str]) -> str:
        return ", ".join(item() for _ in range(draw(st.integers(1, 3))))

    def multi_select() -> str:
        if draw(st.booleans()):
            return f"[{some(inner)}]"
        return "{" + some(lambda: f"{draw(fields)}: {inner()}") + "}"

    def call() -> str:
        shape = draw(st.sampled_from(["unary", "unary", "binary", "by", "map", "any"]))
        if shape == "unary":
            return f"{draw(st.sampled_from(UNARY))}({inner()})"
        if shape == "binary":
            return f"{draw(st.sampled_from(BINARY))}({inner()}, {inner()})"
        if shape == "by":
            return f"{draw(st.sampled_from(BY))}({inner()}, &{inner()})"
        if shape == "map":
            return f"map(&{inner()}, {inner()})"
        count = draw(st.integers(0, 3))
        arguments = [("&" if draw(st.booleans()) else "") + inner() for _ in range(count)]
        return f"{draw(function_names)}({', '.join(arguments)})"

    form = draw(st.sampled_from(FORMS))
    if form == "field":
        return f"{operand()}.{draw(fields)}"
    if form == "postfix":
        return f"{operand()}{draw(st.sampled_from(POSTFIXES))}"
    if form == "filter":
        return f"{operand()}[?{inner()}]"
    if form == "compare":
        return f"{operand()} {draw(st.sampled_from(COMPARATORS))} {operand()}"
    if form == "logic":
        return f"{operand()} {draw(st.sampled_from(['&&', '||']))} {operand()}"
    if form == "pipe":
        return f"{operand()} | {operand()}"
    if form == "not":
        return f"!{operand()}"
    if form in ("list", "hash"):
        return multi_select()
    if form == "dot-select":
        return f"{operand()}.{multi_select()}"
    if form == "call":
        return call()
    return f"{operand()}.{call()}"


plain_fields = st.sampled_from(["a", "b", "c", '"a"', '"x-y"', '"b"'])
plain_literals = st.sampled_from(
    [
        "`1`",
        "`0`",
        "`-1`",
        "`2.5`",
        "`1.0`",
        '`"s"`',
        '`"a"`',
        '`"é"`',
        "`[1,2]`",
        "`[1, true]`",
        "`[1]`",
        "`[true]`",
        '`{"a": true}`',
        '`{"a": 1.0}`',
        '`["a","b"]`',
        '`{"a": 1}`',
        "`[]`",
        "`{}`",
        "`null`",
        "`true`",
        "`false`",
        "'raw'",
        "'a'",
        "'1e3'",
        "'12'",
        "'-0.5'",
        "' 1'",
        "'1_0'",
        "'nan'",
        "'01'",
        "''",
    ]
)


def kinds_of(value: Any) -> list[str]:
    """The kinds of value the typed templates below ask for that `value` is."""
    kinds = ["any"]
    if is_number(value):
        kinds.append("number")
    elif type(value) is str:
        kinds.append("string")
    elif type(value) is dict:
        kinds.append("object")
    elif type(value) is list:
        kinds.append("array")
        if all(is_number(item) for item in value):
            kinds.append("numbers")
        if all(type(item) is str for item in value):
            kinds.append("strings")
        if value and all(type(item) is dict for item in value):
            kinds.append("records")
    return kinds


def paths_in(document: Any, limit: int = 40) -> dict[str, list[str]]:
    """Paths to values in `document` (`a."x-y"[0]`, `b[*].c`) by the kinds of their values,
    so that leaves lead somewhere and functions get arguments they take."""
    found: dict[str, list[str]] = {"any": []}
    pending: list[tuple[str, Any, bool]] = [("", document, False)]
    while pending and len(found["any"]) < limit:
        path, value, projected = pending.pop(0)
        if type(value) is dict:
            for key, item in value.items():
                name = key if key.isidentifier() else json.dumps(key)
                pending.append((f"{path}.{name}" if path else name, item, projected))
        elif type(value) is list and value:
            path = path or "@"
            pending += [(f"{path}[0]", value[0], projected), (f"{path}[-1]", value[-1], projected)]
            if type(value[0]) is dict:
                pending.append((f"{path}[*]", value[0], True))
        if path:
            # a path through [*] gives a list of values: only "any" of those is known
            for kind in ["any"] if projected else kinds_of(value):
                found.setdefault(kind, []).append(path)
            if type(value) is str and not projected:
                # the terms required_equalities() finds, true here, and false
                literal = raw_string(value)
                found.setdefault("equality", []).extend(
                    [f"{path} == {literal}", f"{literal} == {path}"]
                )
                found.setdefault("inequality", []).append(f"{path} == {raw_string(value + 'z')}")
    if not found["any"]:
        found["any"].append("@")
    return found


# Expressions whose arguments are paths of the kinds named, as {0}, {1}; {key} is a key
# of the records, {op} a comparator, {slice} a slice.
TEMPLATES: list[tuple[str, tuple[str, ...]]] = [
    ("{0} {op} {1}", ("number", "number")),
    ("{0} {op} `1`", ("number",)),
    ("`0.5` {op} {0}", ("number",)),
    ("{0} {op} {1}", ("any", "any")),
    ("{0} == {1}", ("any", "any")),
    ("{0}[?{key} {op} `1`]", ("records",)),
    ("{0}[?{key} == {1}].{key}", ("records", "any")),
    ("{0}[?{key} > {1}]", ("records", "number")),
    ("sort_by({0}, &{key})", ("records",)),
    ("max_by({0}, &{key})", ("records",)),
    ("min_by({0}, &{key})", ("records",)),
    ("map(&{key}, {0})", ("records",)),
    ("{0}[*].{key}", ("records",)),
    ("{0}[].{key}", ("records",)),
    ("{0}[{slice}].{key}", ("records",)),
    ("{0}[]", ("array",)),
    ("{0}[][]", ("array",)),
    ("{0}[{slice}]", ("array",)),
    ("contains({0}, {1})", ("array", "any")),
    ("reverse({0})", ("array",)),
    ("sum({0})", ("numbers",)),
    ("avg({0})", ("numbers",)),
    ("max({0})", ("numbers",)),
    ("min({0})", ("numbers",)),
    ("sort({0})", ("numbers",)),
    ("sort({0})", ("strings",)),
    ("max({0})", ("strings",)),
    ("min({0})", ("strings",)),
    ("join(', ', {0})", ("strings",)),
    ("abs({0})", ("number",)),
    ("floor({0})", ("number",)),
    ("ceil({0})", ("number",)),
    ("to_string({0})", ("any",)),
    ("to_number({0})", ("any",)),
    ("type({0})", ("any",)),
    ("length({0})", ("any",)),
    ("to_array({0})", ("any",)),
    ("not_null({0}, {1})", ("any", "any")),
    ("starts_with({0}, {1})", ("string", "string")),
    ("ends_with({0}, {1})", ("string", "string")),
    ("contains({0}, {1})", ("string", "string")),
    ("reverse({0})", ("string",)),
    ("keys({0})", ("object",)),
    ("values({0})", ("object",)),
    ("merge({0}, {1})", ("object", "object")),
    ("{0}.*", ("object",)),
    ("!{0}", ("any",)),
    ("{0} && {1}", ("any", "any")),
    ("{0} && {1}", ("equality", "any")),
    ("{0} && {1} && {2}", ("any", "equality", "equality")),
    ("{0} && ({1} || {2})", ("equality", "equality", "any")),
    ("{0} || {1}", ("inequality", "any")),
    ("{0} && {1}", ("any", "inequality")),
    ("{0} || {1}", ("any", "any")),
]
SLICES = ["1:", ":2", "::-1", "::2", "-2:", "1:-1", "::-2", "5:"]


@st.composite
def typed_expressions(draw: st.DrawFn, paths: dict[str, list[str]]) -> str:
    """An expression of a template whose arguments are paths of the kinds it asks for."""
    usable = [(text, kinds) for text, kinds in TEMPLATES if all(k in paths for k in kinds)]
    text, kinds = draw(st.sampled_from(usable))
    arguments = [draw(st.sampled_from(paths[kind])) for kind in kinds]
    return text.format(
        *arguments,
        key=draw(plain_fields),
        op=draw(st.sampled_from(COMPARATORS)),
        slice=draw(st.sampled_from(SLICES)),
    )
