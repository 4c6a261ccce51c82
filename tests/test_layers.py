"""evroute's modules form one-way layers: no import cycles, imports only point down the
LAYERS table, function-level imports only where DEFERRED says why, and every module's
docstring says its job. Read from source with `ast`; nothing here imports evroute."""

from __future__ import annotations

import ast
import textwrap
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TypeAlias

import pytest

Layers: TypeAlias = tuple[tuple[str, ...], ...]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "evroute"

# Lowest layer first. Each inner tuple is one layer, each string a group: a module prefix.
# A module may import its own group or any group of a lower layer, never a higher layer and
# never a neighbouring group of its own layer. The most specific matching group wins.
# "pkg.__init__" names the package's own __init__ alone (module "pkg"), not its submodules.
LAYERS: Layers = (
    ("evroute.errors", "evroute.__init__"),  # __init__ only holds __version__
    ("evroute.core",),  # the event model: JSON codec, lines, batches, Parcel, receipts, stats
    ("evroute.expr", "evroute.patterns"),
    ("evroute.config",),  # the config model and the checker primitives
    ("evroute.storage",),  # sealing, file I/O, dead letters, audit log, archive format, spill
    ("evroute.processes", "evroute.nats"),  # child-process supervision; NATS plumbing
    ("evroute.shaping",),  # filters, transforms, fields gate, publish policy, templates
    ("evroute.sources", "evroute.sinks"),
    ("evroute.loading",),  # a Config from YAML through every component's registry; the schema
    ("evroute.engine", "evroute.tools"),  # offline tools never import the engine
    ("evroute.ui",),
    # Three layers, not one: __main__ runs entry, which loads cli late (see DEFERRED), and
    # groups sharing a layer may not import each other.
    ("evroute.cli",),
    ("evroute.entry",),
    ("evroute.__main__",),
)

# A function-level import hides a dependency from whoever reads the top of the file and
# fails late, at first call. It pays only to keep something heavy off the start-up path:
# NATS/asyncio, cryptography, the whole CLI app. It is never the fix for a cycle (the cycle
# check sees through it). Every pair here needs a reason, and must still occur in the source.
DEFERRED: dict[tuple[str, str], str] = {
    ("evroute.entry", "evroute.cli"): "a Ctrl-C while the app loads must still exit 130",
    ("evroute.cli", "evroute.tools.importers.eventbridge"): "12 ms of start-up only import needs",
    ("evroute.engine.router", "evroute.patterns"): "pattern-free runs skip ~20 ms",
    ("evroute.loading.routes", "evroute.patterns"): "pattern-free configs skip ~20 ms",
    ("evroute.sinks.nats", "evroute.sinks.nats_publisher"): "a run without NATS loads no asyncio",
    ("evroute.sources.nats", "evroute.sources.nats_reader"): "a run without NATS loads no asyncio",
}


@dataclass(frozen=True)
class Import:
    """One import statement (or import_module call) of a package module."""

    target: str
    file: str  # the importer's path, relative to the root, for messages
    line: int
    in_function: bool


# importer -> imported -> the statements that import it
Graph: TypeAlias = dict[str, dict[str, list[Import]]]


@dataclass(frozen=True)
class SourceModule:
    name: str
    file: str  # relative to the root, for messages
    is_package: bool
    tree: ast.Module


def package_modules(root: Path, package: str) -> dict[str, SourceModule]:
    """Every .py file under root/package, parsed, by dotted module name."""
    found: dict[str, SourceModule] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        tree = ast.parse(path.read_bytes(), filename=str(path))
        found[name] = SourceModule(name, path.relative_to(root).as_posix(), is_package, tree)
    return found


def _longest_module(name: str, modules: Mapping[str, object]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _relative_base(module: SourceModule, level: int) -> str | None:
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None  # climbs above the top package: not ours to check
    return ".".join(parts[: len(parts) - (level - 1)])


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _is_import_module(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id == "import_module"
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    )


def _import_nodes(node: ast.AST, in_function: bool, out: list[tuple[ast.AST, bool]]) -> None:
    """Collect import statements and import_module calls under node, each with whether it
    runs only when a function is called. Code under `if TYPE_CHECKING:` never runs."""
    if isinstance(node, ast.If):
        if _is_type_checking(node.test):
            for child in node.orelse:
                _import_nodes(child, in_function, out)
            return
        if (
            isinstance(node.test, ast.UnaryOp)
            and isinstance(node.test.op, ast.Not)
            and _is_type_checking(node.test.operand)
        ):
            for child in node.body:
                _import_nodes(child, in_function, out)
            return
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        out.append((node, in_function))
        return
    if isinstance(node, ast.Call) and _is_import_module(node.func):
        out.append((node, in_function))
    is_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    for field, value in ast.iter_fields(node):
        # Decorators, defaults and annotations run at definition time; only the body waits.
        deferred = in_function or (is_function and field == "body")
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                _import_nodes(child, deferred, out)


def _targets(node: ast.AST, module: SourceModule, modules: Mapping[str, object]) -> list[str]:
    found: list[str] = []
    if isinstance(node, ast.Import):
        found = [t for alias in node.names if (t := _longest_module(alias.name, modules))]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = _relative_base(module, node.level)
            if base is None:
                return []
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in modules:
                found.append(submodule)
            elif target := _longest_module(source, modules):
                found.append(target)
    elif isinstance(node, ast.Call):
        first = node.args[0] if node.args else None
        # Only a literal absolute name can be checked; a computed one is invisible here.
        if (
            isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and (target := _longest_module(first.value, modules))
        ):
            found.append(target)
    return list(dict.fromkeys(found))


def build_graph(modules: Mapping[str, SourceModule]) -> Graph:
    """Which of these modules each one imports."""
    graph: Graph = {name: {} for name in modules}
    for module in modules.values():
        found: list[tuple[ast.AST, bool]] = []
        _import_nodes(module.tree, False, found)
        for node, in_function in found:
            for target in _targets(node, module, modules):
                if target == module.name:
                    continue  # a module importing itself adds no dependency
                line = getattr(node, "lineno", 0)
                edge = graph[module.name].setdefault(target, [])
                edge.append(Import(target, module.file, line, in_function))
    return graph


def import_graph(root: Path, package: str) -> Graph:
    """Which package modules each module of root/package imports, read from source."""
    return build_graph(package_modules(root, package))


def _where(imports: list[Import]) -> str:
    first, *rest = sorted(imports, key=lambda i: i.line)
    text = f"{first.file}:{first.line}" + (" (in a function)" if first.in_function else "")
    if rest:
        text += f" (also line{'s' if len(rest) > 1 else ''} "
        text += ", ".join(str(i.line) for i in rest) + ")"
    return text


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative so a deep chain cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def enter(node: str) -> Iterator[str]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        return iter(sorted(graph.get(node, {})))

    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, enter(start))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    work.append((child, enter(child)))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _shortest_path(graph: Graph, start: str, goal: str, within: set[str]) -> list[str]:
    came_from: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for child in sorted(graph[node]):
            if child in within and child not in came_from:
                came_from[child] = node
                queue.append(child)
    path = [goal]
    while path[-1] != start:
        path.append(came_from[path[-1]])
    return path[::-1]


def find_cycles(graph: Graph) -> list[str]:
    """One problem per cycle: for each import edge inside a tangle, the shortest cycle
    through it, so every edge that could be cut shows up at least once."""
    cycles: set[tuple[str, ...]] = set()
    for component in _strongly_connected(graph):
        members = set(component)
        for importer in component:
            for target in graph[importer]:
                if target in members:
                    loop = [importer, *_shortest_path(graph, target, importer, members)[:-1]]
                    turn = loop.index(min(loop))
                    cycles.add(tuple(loop[turn:] + loop[:turn]))
    problems = []
    for cycle in sorted(cycles, key=lambda c: (len(c), c)):
        path = [*cycle, cycle[0]]
        hops = [f"    {_where(graph[a][b])}: {a} imports {b}" for a, b in pairwise(path)]
        problems.append(f"cycle: {' -> '.join(path)}\n" + "\n".join(hops))
    return problems


def _group_of(module: str, layers: Layers) -> tuple[int, str] | None:
    """The (layer, group) of module: the most specific group that matches it."""
    best: tuple[int, str] | None = None
    best_rank = (-1, False)
    for level, groups in enumerate(layers):
        for group in groups:
            is_root = group.endswith(".__init__")
            name = group.removesuffix(".__init__")
            # The package root is a prefix of everything, so it matches only itself.
            matches = module == name or (not is_root and module.startswith(name + "."))
            rank = (name.count("."), is_root)
            if matches and rank > best_rank:
                best, best_rank = (level, group), rank
    return best


def check_layers(graph: Graph, layers: Layers) -> list[str]:
    """Every module in one group; every import to its own group or a lower layer."""
    problems: list[str] = []
    seen: set[str] = set()
    for groups in layers:
        for group in groups:
            if group in seen:
                problems.append(f"LAYERS lists {group} twice: keep it in one layer only")
            seen.add(group)
    place = {module: _group_of(module, layers) for module in graph}
    for module, where in sorted(place.items()):
        if where is None:
            problems.append(
                f"{module} is in no layer group: add it to LAYERS, "
                "in the group of the modules it works with"
            )
    for importer, edges in sorted(graph.items()):
        source = place[importer]
        for target, imports in sorted(edges.items()):
            dest = place[target]
            if source is None or dest is None or source[1] == dest[1] or dest[0] < source[0]:
                continue
            if dest[0] > source[0]:
                problems.append(
                    f"{_where(imports)}: {importer} (layer {source[0]}, {source[1]}) imports "
                    f"{target} (layer {dest[0]}, {dest[1]}), a higher layer. Imports point "
                    f"down: move what it needs to layer {source[0]} or lower, or have the "
                    "caller pass it in"
                )
            else:
                problems.append(
                    f"{_where(imports)}: {importer} ({source[1]}) imports {target} "
                    f"({dest[1]}), a different group of the same layer {source[0]}. Groups "
                    "of one layer stay independent: move the shared code to a lower layer"
                )
    return problems


def check_deferred(graph: Graph, deferred: Mapping[tuple[str, str], str]) -> list[str]:
    """Function-level imports only where listed with a reason; no stale entries."""
    problems: list[str] = []
    in_functions: set[tuple[str, str]] = set()
    for importer, edges in sorted(graph.items()):
        for target, imports in sorted(edges.items()):
            late = [i for i in imports if i.in_function]
            if not late:
                continue
            in_functions.add((importer, target))
            if (importer, target) not in deferred:
                problems.append(
                    f"{_where(late)}: {importer} imports {target} inside a function. Move it "
                    "to the top of the module; only if it keeps something heavy (NATS/asyncio,"
                    " cryptography, the CLI app) off the start-up path, list "
                    f"({importer!r}, {target!r}) in DEFERRED with the reason"
                )
    for pair, reason in sorted(deferred.items()):
        if not reason.strip():
            problems.append(f"DEFERRED entry {pair} needs a reason")
        if pair not in in_functions:
            problems.append(
                f"DEFERRED lists {pair} but {pair[0]} no longer imports {pair[1]} inside a "
                "function: delete the entry"
            )
    return problems


def check_docstrings(modules: Mapping[str, SourceModule]) -> list[str]:
    """Each module opens with a docstring whose first line says what it is for."""
    problems: list[str] = []
    for module in modules.values():
        doc = ast.get_docstring(module.tree, clean=False)
        file = module.file
        if doc is None:
            problems.append(f"{file}:1: {module.name} has no docstring: add one saying its job")
        elif not doc.split("\n", 1)[0].strip():
            problems.append(
                f"{file}:1: {module.name}'s docstring starts with a blank line: put the "
                "one-line summary right after the opening quotes"
            )
    return problems


def _fail_if(problems: list[str], heading: str) -> None:
    if problems:
        pytest.fail(f"{heading} ({len(problems)}):\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def modules() -> dict[str, SourceModule]:
    return package_modules(ROOT, PACKAGE)


@pytest.fixture(scope="module")
def graph(modules: dict[str, SourceModule]) -> Graph:
    return build_graph(modules)


def test_the_package_is_found(graph: Graph) -> None:
    assert PACKAGE in graph and len(graph) > 10


def test_no_cycles(graph: Graph) -> None:
    _fail_if(
        find_cycles(graph),
        "import cycles; break each by moving the shared code down a layer (a function-level"
        " import does not count as a fix)",
    )


def test_layers_import_downward(graph: Graph) -> None:
    _fail_if(check_layers(graph, LAYERS), "imports against the LAYERS table")


def test_function_level_imports_only_defer_heavy_dependencies(graph: Graph) -> None:
    _fail_if(check_deferred(graph, DEFERRED), "function-level imports not matching DEFERRED")


def test_every_module_says_its_job(modules: dict[str, SourceModule]) -> None:
    _fail_if(check_docstrings(modules), "modules without a docstring summary")


# The checker itself, on small packages written to tmp_path.

TOY_LAYERS: Layers = (
    ("pkg.__init__", "pkg.base"),
    ("pkg.left", "pkg.right"),
    ("pkg.top",),
)


def toy(tmp_path: Path, files: dict[str, str]) -> Graph:
    files = {"pkg/__init__.py": '"""A toy."""\n', **files}
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return import_graph(tmp_path, "pkg")


def test_graph_reads_every_kind_of_import(tmp_path: Path) -> None:
    graph = toy(
        tmp_path,
        {
            "pkg/a.py": """\
                import os
                import pkg.sub.deep.Name
                from pkg import b, __doc__
                from . import c as renamed
                try:
                    from .sub import x
                except ImportError:
                    pass
                class K:
                    def m(self) -> None:
                        if True:
                            importlib.import_module("pkg.sub.y")
                """,
            "pkg/b.py": "",
            "pkg/c.py": "",
            "pkg/sub/__init__.py": "from .. import b\n",
            "pkg/sub/deep.py": "",
            "pkg/sub/x.py": "from ..sub import y\n",
            "pkg/sub/y.py": "",
        },
    )
    edges = {t: [(i.line, i.in_function) for i in imps] for t, imps in graph["pkg.a"].items()}
    assert edges == {
        "pkg.sub.deep": [(2, False)],
        "pkg.b": [(3, False)],
        "pkg": [(3, False)],
        "pkg.c": [(4, False)],
        "pkg.sub.x": [(6, False)],
        "pkg.sub.y": [(12, True)],
    }
    assert set(graph["pkg.sub"]) == {"pkg.b"}
    assert set(graph["pkg.sub.x"]) == {"pkg.sub.y"}


def test_a_two_module_cycle_is_reported(tmp_path: Path) -> None:
    graph = toy(tmp_path, {"pkg/a.py": "from pkg import b\n", "pkg/b.py": "import pkg.a\n"})
    [problem] = find_cycles(graph)
    assert "pkg.a -> pkg.b -> pkg.a" in problem
    assert "pkg/a.py:1" in problem and "pkg/b.py:1" in problem


def test_a_cycle_through_a_function_level_import_is_reported(tmp_path: Path) -> None:
    graph = toy(
        tmp_path,
        {
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "def f() -> None:\n    from pkg.a import thing\n",
        },
    )
    [problem] = find_cycles(graph)
    assert "pkg.a -> pkg.b -> pkg.a" in problem
    assert "pkg/b.py:2 (in a function)" in problem


def test_a_cycle_through_import_module_is_reported(tmp_path: Path) -> None:
    graph = toy(
        tmp_path,
        {
            "pkg/a.py": "from importlib import import_module\nimport_module('pkg.b')\n",
            "pkg/b.py": "import importlib\ndef f():\n    importlib.import_module('pkg.a')\n",
        },
    )
    [problem] = find_cycles(graph)
    assert "pkg.a -> pkg.b -> pkg.a" in problem


@pytest.mark.parametrize("guard", ["TYPE_CHECKING", "typing.TYPE_CHECKING"])
def test_a_type_checking_import_is_no_cycle_but_its_else_is(tmp_path: Path, guard: str) -> None:
    back_edge = f"import typing\nif {guard}:\n    from pkg.a import A\n"
    graph = toy(tmp_path, {"pkg/a.py": "import pkg.b\n", "pkg/b.py": back_edge})
    assert find_cycles(graph) == []
    graph = toy(tmp_path, {"pkg/b.py": back_edge + "else:\n    from pkg.a import A as B\n"})
    assert len(find_cycles(graph)) == 1


def test_a_relative_import_cycle_is_reported(tmp_path: Path) -> None:
    graph = toy(
        tmp_path,
        {
            "pkg/sub/__init__.py": "from . import file\n",
            "pkg/sub/file.py": "from . import REGISTRY\n",  # the package's own __init__
            "pkg/sub/other.py": "from ..sub import file\n",
        },
    )
    [problem] = find_cycles(graph)
    assert "pkg.sub -> pkg.sub.file -> pkg.sub" in problem


def test_a_three_module_tangle_reports_every_cut(tmp_path: Path) -> None:
    graph = toy(
        tmp_path,
        {
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "import pkg.c\nimport pkg.a\n",
            "pkg/c.py": "import pkg.a\n",
        },
    )
    problems = find_cycles(graph)
    assert [p.splitlines()[0] for p in problems] == [
        "cycle: pkg.a -> pkg.b -> pkg.a",
        "cycle: pkg.a -> pkg.b -> pkg.c -> pkg.a",
    ]


def test_an_upward_layer_import_is_reported(tmp_path: Path) -> None:
    graph = toy(tmp_path, {"pkg/base.py": "\nfrom pkg.top import x\n", "pkg/top.py": ""})
    [problem] = check_layers(graph, TOY_LAYERS)
    assert problem.startswith("pkg/base.py:2: pkg.base (layer 0, pkg.base) imports pkg.top")
    assert "a higher layer" in problem


def test_a_same_layer_cross_group_import_is_reported(tmp_path: Path) -> None:
    graph = toy(tmp_path, {"pkg/left/x.py": "from pkg.right import y\n", "pkg/right.py": ""})
    [problem] = check_layers(graph, TOY_LAYERS)
    assert problem.startswith("pkg/left/x.py:1: pkg.left.x (pkg.left) imports pkg.right")
    assert "same layer" in problem


def test_downward_and_own_group_imports_pass(tmp_path: Path) -> None:
    graph = toy(
        tmp_path,
        {
            "pkg/top.py": "import pkg.left.x\nimport pkg\nfrom pkg import base\n",
            "pkg/left/__init__.py": "from . import x\n",
            "pkg/left/x.py": "import pkg.base\nfrom pkg import __doc__\n",
            "pkg/base.py": "",
        },
    )
    assert check_layers(graph, TOY_LAYERS) == []


def test_the_package_root_matches_only_itself(tmp_path: Path) -> None:
    graph = toy(tmp_path, {"pkg/stray.py": ""})
    [problem] = check_layers(graph, TOY_LAYERS)
    assert problem.startswith("pkg.stray is in no layer group: add it to LAYERS")


def test_unlisted_and_stale_deferred_imports_are_reported(tmp_path: Path) -> None:
    graph = toy(
        tmp_path,
        {"pkg/top.py": "def f():\n    import pkg.base\n", "pkg/base.py": "import pkg\n"},
    )
    assert check_deferred(graph, {("pkg.top", "pkg.base"): "cryptography is slow"}) == []
    [unlisted] = check_deferred(graph, {})
    assert unlisted.startswith("pkg/top.py:2 (in a function): pkg.top imports pkg.base")
    [stale] = check_deferred(graph, {("pkg.top", "pkg.base"): "x", ("pkg.base", "pkg"): "x"})
    assert "no longer imports pkg inside a function" in stale


def test_missing_and_blank_first_line_docstrings_are_reported(tmp_path: Path) -> None:
    toy(tmp_path, {"pkg/a.py": "x = 1\n", "pkg/b.py": '"""\nLate summary."""\n'})
    problems = check_docstrings(package_modules(tmp_path, "pkg"))
    assert [p.split(":")[0] for p in problems] == ["pkg/a.py", "pkg/b.py"]
