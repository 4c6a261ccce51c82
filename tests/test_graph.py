"""`evroute graph`: golden outputs for the samples, escaping in every format, bad configs.

Golden files live in tests/golden_cli/graph/; after an intended change, regenerate them
with `EVROUTE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_graph.py` and review
the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from configs import THREE_MISTAKES
from runs import without_trailing_spaces, write_config

from evroute.cli import program
from evroute.loading import load_config
from evroute.tools import graph

pytestmark = pytest.mark.usefixtures("fixed_terminal")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).resolve().parent / "golden_cli" / "graph"
SUFFIXES = {"text": ".txt", "mermaid": ".mmd", "dot": ".dot"}
SAMPLE_CONFIGS = sorted(SAMPLES.glob("*.yaml"))

# Everything a label can hold that could break a format: quotes of both kinds,
# brackets and braces, an arrow in both syntaxes, HTML, `#`, `&`, backticks, pipes,
# backslashes; and names that are keywords in Mermaid (end, graph) or DOT (node).
HOSTILE = r"""
version: 1
dead_letter: 'out/dead "letters" -> [x].jsonl'
unmatched: end
consumers:
  node:
    file: 'out/we"ird [x] --> {{y}} <b>#1</b> & `z` \ end.jsonl'
  end:
    command: ["sh", "-c", "echo \"]\" --> x; echo '\"' -> y"]
routes:
  - name: graph
    filter: "\"we\\\"ird\" == '--> ]\"[ <b> #1 |x| `y` \\ end;' && a[0] == `1` && b != '[bold]x[/]'"
    transform: "{\"a-->b\": `\"[x]\"`, c: '\\\\n'}"
    to: [node, end]
  - name: subgraph
    to: node
"""


def graph_output(config: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert program(["graph", config.name, "--format", fmt]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return "\n".join(line.rstrip() for line in out.splitlines()) + "\n"


def test_there_are_sample_configs() -> None:
    assert SAMPLE_CONFIGS


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
@pytest.mark.parametrize("config", SAMPLE_CONFIGS, ids=lambda path: path.name)
def test_golden_graph_of_each_sample(
    config: Path, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(config.parent)  # the graph names the config as it was given
    out = graph_output(config, fmt, capsys)
    golden = GOLDEN / f"{config.stem}{SUFFIXES[fmt]}"
    if os.environ.get("EVROUTE_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8")


def test_text_is_the_default_format(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(SAMPLES)
    assert program(["graph", "routes.yaml"]) == 0
    default = without_trailing_spaces(capsys.readouterr().out)
    assert default == graph_output(SAMPLES / "routes.yaml", "text", capsys) != ""


def hostile_topology(tmp_path: Path) -> graph.Topology:
    return graph.topology(
        load_config(write_config(tmp_path, HOSTILE)), source='my "routes" [1].yaml'
    )


def test_the_topology_holds_what_the_config_says(tmp_path: Path) -> None:
    topology = hostile_topology(tmp_path)
    assert topology.inputs == (graph.INPUT_LABEL,)
    first, second = topology.routes
    assert first.name == "graph"
    assert first.filter == (
        "\"we\\\"ird\" == '--> ]\"[ <b> #1 |x| `y` \\ end;' && a[0] == `1` && b != '[bold]x[/]'"
    )
    assert first.transform == '{"a-->b": `"[x]"`, c: \'\\\\n\'}'
    assert first.to == ("node", "end")
    assert (second.filter, second.transform, second.to) == (None, None, ("node",))
    assert topology.consumers["node"] == graph.ConsumerNode(
        "node", "file", 'out/we"ird [x] --> {y} <b>#1</b> & `z` \\ end.jsonl'
    )
    assert topology.consumers["end"].kind == "command"
    assert topology.consumers["end"].target.startswith("sh -c ")
    assert topology.unmatched_consumer == "end"
    assert topology.dead_letter == 'out/dead "letters" -> [x].jsonl'


def expected_labels(topology: graph.Topology) -> list[list[str]]:
    """Every node's label lines, in the order both formats write the nodes."""
    return [
        *([label] for label in topology.inputs),
        *(graph.route_lines(route) for route in topology.routes),
        *(graph.consumer_lines(consumer) for consumer in topology.consumers.values()),
        [topology.unmatched_label],
    ]


MERMAID_NODE = re.compile(
    r"^    (?P<id>[a-z]+[0-9]*)"
    r'(?P<open>\[/|\[\(|\[|\{\{)"(?P<label>[^"]*)"(?P<close>/\]|\)\]|\]|\}\})$'
)
MERMAID_EDGE = re.compile(r"^    (?P<src>[a-z]+[0-9]*) (?:-->|-\.->) (?P<dst>[a-z]+[0-9]*)$")
MERMAID_ENTITY = re.compile(r"#(?:(\d+)|([a-z]+));")
HTML_NAMES = {"quot": '"', "lt": "<", "gt": ">", "amp": "&"}


def mermaid_decode(label: str) -> list[str]:
    # a label may hold no quote, markup or Markdown but the line breaks evroute puts there
    assert not set(label.replace("<br/>", "")) & set('"`<>&'), label
    lines = label.split("<br/>")

    def entity(match: re.Match[str]) -> str:
        return chr(int(match.group(1))) if match.group(1) else HTML_NAMES[match.group(2)]

    decoded = [MERMAID_ENTITY.sub(entity, line) for line in lines]
    # every # left in the label starts an entity: none is a bare #
    assert all("#" not in MERMAID_ENTITY.sub("", line) for line in lines), label
    return decoded


def test_mermaid_escapes_every_label(tmp_path: Path) -> None:
    topology = hostile_topology(tmp_path)
    lines = graph.to_mermaid(topology).splitlines()
    assert lines[0] == "flowchart LR"
    labels: list[list[str]] = []
    ids: set[str] = set()
    edges: list[tuple[str, str]] = []
    for line in lines[1:]:
        node, edge = MERMAID_NODE.match(line), MERMAID_EDGE.match(line)
        assert node or edge, f"not a node nor an edge: {line!r}"
        if node:
            ids.add(node["id"])
            labels.append(mermaid_decode(node["label"]))
        elif edge:
            edges.append((edge["src"], edge["dst"]))
    assert labels == expected_labels(topology)
    assert {id_ for edge in edges for id_ in edge} <= ids
    assert ("r0", "c0") in edges and ("r0", "c1") in edges and ("unmatched", "c1") in edges


DOT_STRING = r'"((?:[^"\\]|\\.)*)"'
DOT_NODE = re.compile(rf"^    (?P<id>[a-z]+[0-9]*) \[label={DOT_STRING}(?:, shape=[a-z]+)?\];$")
DOT_EDGE = re.compile(
    r"^    (?P<src>[a-z]+[0-9]*) -> (?P<dst>[a-z]+[0-9]*)(?: \[style=dashed\])?;$"
)


def dot_decode(label: str) -> list[str]:
    lines = re.split(r"(?<!\\)((?:\\\\)*)\\n", label)
    # re.split keeps the captured backslash pairs: glue them back on the line before
    joined = [lines[0]]
    for pairs, line in zip(lines[1::2], lines[2::2], strict=True):
        joined[-1] += pairs
        joined.append(line)
    return [re.sub(r"\\(.)", r"\1", line) for line in joined]


def test_dot_escapes_every_label(tmp_path: Path) -> None:
    topology = hostile_topology(tmp_path)
    lines = graph.to_dot(topology).splitlines()
    header = re.fullmatch(rf"digraph {DOT_STRING} \{{", lines[0])
    assert header and dot_decode(header[1]) == ['my "routes" [1].yaml']
    assert lines[-1] == "}"
    labels: list[list[str]] = []
    edges: list[tuple[str, str]] = []
    for line in lines[3:-1]:
        node, edge = DOT_NODE.match(line), DOT_EDGE.match(line)
        assert node or edge, f"not a node nor an edge: {line!r}"
        if node:
            labels.append(dot_decode(node[2]))
        elif edge:
            edges.append((edge["src"], edge["dst"]))
    assert labels == expected_labels(topology)
    assert ("r0", "c0") in edges and ("unmatched", "c1") in edges


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_reads_the_dot_output(tmp_path: Path) -> None:
    text = graph.to_dot(hostile_topology(tmp_path))
    result = subprocess.run(
        ["dot", "-Tplain"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    nodes = [line for line in result.stdout.splitlines() if line.startswith("node ")]
    assert len(nodes) == 1 + 2 + 2 + 1  # input, routes, consumers, unmatched


def test_text_tree_prints_labels_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # no wrapping: each label on its line
    write_config(tmp_path, HOSTILE)
    monkeypatch.chdir(tmp_path)
    assert program(["graph", "routes.yaml"]) == 0
    out = capsys.readouterr().out
    topology = hostile_topology(tmp_path)
    route = topology.routes[0]
    assert f"filter: {route.filter}" in out  # [brackets] are not taken as Rich markup
    assert f"transform: {route.transform}" in out
    assert f"node  file: {topology.consumers['node'].target}" in out
    assert "route subgraph  (every event)" in out
    assert out.splitlines()[0] == "routes.yaml"
    assert out.rstrip().endswith(
        f"unmatched: to end\n        └── end  command: {topology.consumers['end'].target}"
    )


@pytest.mark.parametrize(
    ("unmatched", "dead_letter", "label"),
    [
        ("drop", None, "unmatched: dropped (counted)"),
        ("dead_letter", "out/dead.jsonl", "unmatched: dead letters (out/dead.jsonl)"),
        ("dead_letter", None, "unmatched: dead letters (counted only: no dead_letter path)"),
        ("archive", None, "unmatched: to archive"),
    ],
)
def test_unmatched_handling_is_shown(
    tmp_path: Path, unmatched: str, dead_letter: str | None, label: str
) -> None:
    text = f"""\
        version: 1
        unmatched: {unmatched}
        dead_letter: {dead_letter or "null"}
        consumers:
          archive:
            file: out/all.jsonl
        routes:
          - name: orders
            filter: "type == 'order'"
            to: archive
        """
    topology = graph.topology(load_config(write_config(tmp_path, text)))
    assert topology.unmatched_label == label
    mermaid, dot = graph.to_mermaid(topology), graph.to_dot(topology)
    assert graph.mermaid_text(label) in mermaid and label in dot
    to_consumer = unmatched == "archive"
    assert ("unmatched -.-> c0" in mermaid) is to_consumer
    assert ("unmatched -> c0 [style=dashed];" in dot) is to_consumer


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
def test_invalid_config_gets_the_errors_of_validate(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, THREE_MISTAKES)
    assert program(["validate", str(path)]) == 1
    validate_lines = capsys.readouterr().out.splitlines()[:-1]  # less the summary line
    assert len(validate_lines) == 3
    assert program(["graph", str(path), "--format", fmt]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == validate_lines


def test_missing_config_and_bad_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert program(["graph", str(tmp_path / "nope.yaml")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "cannot read the config" in err and "Traceback" not in err
    path = write_config(tmp_path, THREE_MISTAKES)
    assert program(["graph", str(path), "--format", "svg"]) == 2
    assert "Traceback" not in capsys.readouterr().err
