"""`evroute explain`: golden output, black-style, one folder per case under tests/explain/.

A case folder holds:

- `config.yaml`, or `config`: a file naming a config of the repository (`samples/routes.yaml`);
- `events.jsonl`: the events, read as `events.jsonl` from the case folder;
- `args` (optional): more arguments, one a line (`--route`, `NAME`);
- `expected.txt`: the text output, at a width of 100 columns, without colour;
- `expected.jsonl`: the `--format json` output, byte for byte.

Each case's config with file consumers is also run by `evroute run`, and what explain
says (matches, errors, unmatched, malformed lines) must agree with the run's stats.
"""

from __future__ import annotations

import gzip
import json
import select
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from runs import EVROUTE_BIN, without_trailing_spaces, write_config

from evroute.cli import program
from evroute.loading import load_config
from evroute.tools import explain

pytestmark = pytest.mark.usefixtures("fixed_terminal")

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "explain"


def case_params() -> list[Any]:
    return [
        pytest.param(folder, id=folder.name)
        for folder in sorted(CASES.iterdir())
        if (folder / "events.jsonl").is_file()
    ]


def config_of(case: Path) -> Path:
    named = case / "config"
    return ROOT / named.read_text().strip() if named.is_file() else case / "config.yaml"


def arguments(case: Path, *more: str) -> list[str]:
    extra = case / "args"
    args = extra.read_text().splitlines() if extra.is_file() else []
    return ["explain", str(config_of(case)), "events.jsonl", *args, *more]


def explain_in(
    case: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *more: str
) -> tuple[int, str, str]:
    monkeypatch.chdir(case)
    code = program(arguments(case, *more))
    out, err = capsys.readouterr()
    return code, out, err


def test_there_are_cases() -> None:
    names = {param.id for param in case_params()}
    assert len(names) >= 6
    assert {"filter-error", "transform", "malformed-lines"} <= names
    assert any(name.startswith("samples-") for name in names)


@pytest.mark.parametrize("case", case_params())
def test_text(case: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    code, out, err = explain_in(case, monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert without_trailing_spaces(out) == (case / "expected.txt").read_text()


@pytest.mark.parametrize("case", case_params())
def test_json(case: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    code, out, err = explain_in(case, monkeypatch, capsys, "--format", "json")
    assert (code, err) == (0, "")
    assert out == (case / "expected.jsonl").read_text()


@pytest.mark.parametrize("case", case_params())
def test_every_json_line_has_the_documented_keys(case: Path) -> None:
    """The README's keys, in its order, on every line and every route."""
    for line in (case / "expected.jsonl").read_text().splitlines():
        item = json.loads(line)
        assert list(item) == [
            "input",
            "line",
            "status",
            "detail",
            "routes",
            "consumers",
            "unmatched",
        ]
        for route in item["routes"]:
            assert list(route) == [
                "route",
                "status",
                "filter",
                "pattern",
                "transform",
                "error",
                "consumers",
            ]


def file_consumer_config(case: Path, folder: Path) -> Path:
    """The case's config with every consumer a file in `folder`, dead letters counted."""
    config = load_config(config_of(case))
    consumers = {name: {"file": f"out/{name}.jsonl"} for name in config.consumers}
    routes = []
    for route in config.routes:
        described: dict[str, Any] = {"name": route.name, "to": list(route.to)}
        if route.filter is not None:
            described["filter"] = route.filter.source
        if route.pattern is not None:
            described["pattern"] = route.pattern.source
        if route.transform is not None:
            described["transform"] = route.transform.source
        routes.append(described)
    document = {
        "version": 1,
        "unmatched": config.unmatched,
        "max_event_bytes": config.max_event_bytes,
        "consumers": consumers,
        "routes": routes,
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


@pytest.mark.parametrize("case", case_params())
def test_explain_agrees_with_run(case: Path, tmp_path: Path) -> None:
    """Per route, the events explain calls matched and failed are those `run` counts;
    so are the unmatched events and the malformed lines."""
    config = file_consumer_config(case, tmp_path)
    events = tmp_path / "events.jsonl"
    shutil.copy(case / "events.jsonl", events)
    stats_path = tmp_path / "stats.json"
    run = ["run", str(config), str(events), "--stats", "off", "--stats-json", str(stats_path)]
    assert program(run) in (0, 3)
    stats = json.loads(stats_path.read_text())

    matched: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    unmatched = malformed = 0
    for item in explain.explain_input(load_config(config), str(events)):
        if isinstance(item, explain.MalformedLine):
            malformed += 1
            continue
        unmatched += item.unmatched is not None
        for verdict in item.routes:
            matched[verdict.route] += verdict.status == explain.MATCHED
            errors[verdict.route] += verdict.status == explain.FILTER_ERROR
    assert {name: route["matched"] for name, route in stats["routes"].items()} == dict(matched)
    assert {name: route["errors"] for name, route in stats["routes"].items()} == dict(errors)
    assert (stats["unmatched"], stats["input"]["malformed"]) == (unmatched, malformed)


def test_explain_agrees_with_run_on_the_sample_file(tmp_path: Path) -> None:
    """The whole samples/orders.jsonl: explain's matches are the run's."""
    config = file_consumer_config(CASES / "samples-big-gold-order", tmp_path)
    stats_path = tmp_path / "stats.json"
    orders = ROOT / "samples" / "orders.jsonl"
    run = ["run", str(config), str(orders), "--stats", "off", "--stats-json", str(stats_path)]
    assert program(run) == 0
    stats = json.loads(stats_path.read_text())
    matched: Counter[str] = Counter()
    for item in explain.explain_input(load_config(config), str(orders)):
        assert isinstance(item, explain.EventVerdict)
        matched.update(v.route for v in item.routes if v.status == explain.MATCHED)
    assert dict(matched) == {name: route["matched"] for name, route in stats["routes"].items()}
    assert matched["big-orders"] > 0 and matched["vip-orders"] > 0


def test_stdin_is_the_default(tmp_path: Path) -> None:
    case = CASES / "samples-payment-failed"
    result = subprocess.run(
        [str(EVROUTE_BIN), "explain", str(config_of(case)), "--format", "json"],
        input=(case / "events.jsonl").read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = (
        (case / "expected.jsonl").read_text().replace('"input":"events.jsonl"', '"input":"-"')
    )
    assert result.stdout.decode() == expected


def test_gzip_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "transform"
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress((case / "events.jsonl").read_bytes()))
    monkeypatch.chdir(tmp_path)
    code = program(["explain", str(config_of(case)), "events.jsonl.gz", "--format", "json"])
    out, _ = capsys.readouterr()
    assert code == 0
    expected = (case / "expected.jsonl").read_text()
    assert out == expected.replace('"input":"events.jsonl"', '"input":"events.jsonl.gz"')


def test_an_invalid_config_fails_with_the_errors_of_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        """\
        version: 1
        consumers:
          sink: {file: out.jsonl}
        routes:
          - name: broken
            filter: "detail.amount >> `100`"
            to: [sink, nowhere]
        """,
    )
    assert program(["validate", str(config)]) == 1
    validate_out, _ = capsys.readouterr()
    events = tmp_path / "events.jsonl"
    events.write_text('{"a": 1}\n')
    assert program(["explain", str(config), str(events)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    issues = [line for line in validate_out.splitlines() if ": error: " in line]
    assert len(issues) == 2
    assert err.splitlines() == issues


def test_an_unknown_route_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "samples-payment-failed"
    code, out, err = explain_in(case, monkeypatch, capsys, "--route", "big-ordres")
    assert code == 2
    assert out == ""
    assert "big-ordres" in err and "big-orders" in err  # the routes it has


@pytest.mark.parametrize(
    "more", [["--format", "yaml"], ["--bogus"], ["events.jsonl"]], ids=["format", "option", "extra"]
)
def test_usage_errors(
    more: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = explain_in(CASES / "transform", monkeypatch, capsys, *more)
    assert (code, out) == (2, "")


def test_a_missing_event_file_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(CASES / "transform")
    code = program(["explain", "config.yaml", "missing.jsonl"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.strip() == "error: missing.jsonl: cannot read: No such file or directory"


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert program(["explain", "--help"]) == 0
    out, _ = capsys.readouterr()
    assert "evroute explain samples/routes.yaml samples/orders.jsonl" in out


def test_long_values_are_cut_in_text_but_whole_in_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        tmp_path,
        "version: 1\nconsumers: {sink: {file: out.jsonl}}\n"
        "routes: [{name: long, filter: 'note', transform: 'note', to: sink}]\n",
    )
    note = "n" * 500
    (tmp_path / "events.jsonl").write_text(json.dumps({"note": note}) + "\n")
    monkeypatch.chdir(tmp_path)
    assert program(["explain", "routes.yaml", "events.jsonl"]) == 0
    out, _ = capsys.readouterr()
    assert note not in out.replace("\n", "").replace("│", "").replace(" ", "")
    assert '"' + "n" * 58 + "…" in out  # the filter's value: 60 characters
    assert program(["explain", "routes.yaml", "events.jsonl", "--format", "json"]) == 0
    out, _ = capsys.readouterr()
    (route,) = json.loads(out)["routes"]
    assert route["filter"]["values"] == [note]
    assert route["transform"]["output"] == note


@pytest.mark.parametrize("format", ["text", "json"])
def test_a_reader_that_stops_early_ends_it_quietly(format: str) -> None:
    """`evroute explain ... | head -1`: exit 0, nothing on stderr."""
    config = ROOT / "samples" / "routes.yaml"
    orders = ROOT / "samples" / "orders.jsonl"
    with subprocess.Popen(
        [str(EVROUTE_BIN), "explain", str(config), str(orders), "--format", format],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # as head does after its line
        code = process.wait(timeout=60)
        err = process.stderr.read()
    assert first.startswith(b'{"input"' if format == "json" else b"line 1 ")
    assert (code, err) == (0, b"")


def test_one_line_typed_is_one_line_explained() -> None:
    """On a pipe that stays open, each line is explained as soon as it arrives."""
    case = CASES / "samples-payment-failed"
    with subprocess.Popen(
        [str(EVROUTE_BIN), "explain", str(config_of(case)), "--format", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write((case / "events.jsonl").read_bytes())
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], 30)
            assert ready, "no explanation while stdin is still open"
            line = process.stdout.readline()
        finally:
            process.stdin.close()
            process.wait(timeout=60)
    assert json.loads(line)["routes"][3]["status"] == "matched"  # payment-failed
    assert process.returncode == 0


def test_ctrl_c_while_waiting_for_stdin_exits_130() -> None:
    case = CASES / "samples-payment-failed"
    with subprocess.Popen(
        [str(EVROUTE_BIN), "explain", str(config_of(case)), "--format", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((case / "events.jsonl").read_bytes())
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready
        process.stdout.readline()  # explained: it now waits for the next line
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        err = process.stderr.read() if process.stderr is not None else b""
        process.stdin.close()
    assert (code, err) == (130, b"")
