"""`validate --events FILE` and `--strict`, and constant filters."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from runs import EVROUTE, write_config

CONFIG = """\
version: 1
consumers:
  big: {file: big.jsonl}
  vip: {file: vip.jsonl}
  rare: {file: rare.jsonl}
routes:
  - name: big
    filter: "detail.amount > `100`"
    to: big
  - name: vip
    filter: "detail.tier == 'gold'"
    to: [vip, big]
  - name: rare
    filter: "source == 'nowhere'"
    to: rare
"""
SAMPLES = (
    b'{"source":"shop","detail":{"amount":250,"tier":"gold"}}\n'
    b'{"source":"shop","detail":{"amount":5}}\n'
)


def validate(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EVROUTE, "validate", str(folder / "routes.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=folder,
    )


def setup(folder: Path, config: str = CONFIG, samples: bytes = SAMPLES) -> None:
    write_config(folder, config)
    (folder / "samples.jsonl").write_bytes(samples)


def test_routes_no_sample_matches_and_consumers_none_reaches_are_warnings(tmp_path: Path) -> None:
    setup(tmp_path)
    plain = validate(tmp_path)
    assert plain.returncode == 0 and "warning" not in plain.stdout
    result = validate(tmp_path, "--events", "samples.jsonl")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if ": warning: " in line]
    config = tmp_path / "routes.yaml"
    assert lines == [
        f"{config}:5:9: warning: consumers.rare: no sample event in samples.jsonl reaches"
        " consumer 'rare'",
        f"{config}:14:13: warning: routes[2]: no sample event in samples.jsonl matches route"
        " 'rare' (2 events)",
    ]


def test_strict_makes_warnings_fail(tmp_path: Path) -> None:
    setup(tmp_path)
    result = validate(tmp_path, "--events", "samples.jsonl", "--strict", "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["errors"] == 2
    assert {issue["path"] for issue in report["issues"]} == {"routes[2]", "consumers.rare"}


def test_a_bad_sample_is_an_error_with_its_line(tmp_path: Path) -> None:
    setup(tmp_path, samples=SAMPLES + b"\n{oops\n[1]\n")
    result = validate(tmp_path, "--events", "samples.jsonl", "--format", "json")
    assert result.returncode == 1
    errors = [i for i in json.loads(result.stdout)["issues"] if i["severity"] == "error"]
    assert [(i["file"], i["line"]) for i in errors] == [("samples.jsonl", 4), ("samples.jsonl", 5)]
    assert "invalid JSON" in errors[0]["message"]
    assert "expected a JSON object" in errors[1]["message"]


def test_a_missing_sample_file_is_a_clear_error(tmp_path: Path) -> None:
    setup(tmp_path)
    result = validate(tmp_path, "--events", "nope.jsonl")
    assert result.returncode == 1
    assert "cannot read the sample events: No such file or directory" in result.stdout
    assert "Traceback" not in result.stderr


def test_constant_filters_are_warnings_at_their_place(tmp_path: Path) -> None:
    config = textwrap.dedent(
        """\
        version: 1
        consumers: {all: {file: all.jsonl}}
        routes:
          - {name: always, filter: "`true`", to: all}
          - {name: never, filter: "`1` == `2` && 'a'", to: all}
          - {name: broken, filter: "length(`null`)", to: all}
          - {name: fine, filter: "@", to: all}
        """
    )
    setup(tmp_path, config=config)
    result = validate(tmp_path, "--format", "json")
    assert result.returncode == 0
    warnings = [(i["path"], i["line"], i["message"]) for i in json.loads(result.stdout)["issues"]]
    assert warnings == [
        ("routes[0].filter", 4, "is constant and true: every event matches (drop the filter)"),
        ("routes[1].filter", 5, "is constant and false: no event will ever match"),
        (
            "routes[2].filter",
            6,
            "fails for every event (invalid-type: length() expects a string, an array or an"
            " object, got null (at position 0)): nothing will match",
        ),
    ]


def test_a_filter_with_a_slice_is_checked_without_a_crash(tmp_path: Path) -> None:
    config = textwrap.dedent(
        """\
        version: 1
        consumers: {all: {file: all.jsonl}}
        routes:
          - {name: sliced, filter: "length(`[1,2,3]`[0:2]) > `1`", to: all}
          - {name: reads, filter: "a[0:2]", to: all}
        """
    )
    setup(tmp_path, config=config)
    result = validate(tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    # a slice makes a projection over its elements: not taken for constant (the rule is
    # that a filter reads nothing of the event, and errs on the side of silence)
    assert json.loads(result.stdout)["issues"] == []


def test_a_corrupt_gzip_sample_file_is_a_clear_error(tmp_path: Path) -> None:
    import gzip

    setup(tmp_path)
    data = bytearray(gzip.compress(SAMPLES * 50))
    data[len(data) // 2] ^= 0xFF  # damage the deflate stream
    (tmp_path / "samples.jsonl.gz").write_bytes(bytes(data))
    result = validate(tmp_path, "--events", "samples.jsonl.gz")
    assert result.returncode == 1
    assert "cannot read the sample events" in result.stdout
    assert "Traceback" not in result.stderr
