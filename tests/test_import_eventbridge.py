"""`evroute import eventbridge`: golden cases, one folder each under tests/import_cases/.

A case folder holds:

- `rules.json`: what `aws events list-rules` prints;
- `targets/` (optional): what `aws events list-targets-by-rule` prints, one file a rule;
- `args` (optional): further arguments, one a line;
- `expected.yaml`: the exact config written on stdout, read and checked by hand;
- `warnings.txt` (optional): the exact stderr; without it, stderr must be empty;
- `events.jsonl` and `expected_out/` (optional): the generated config, run on the events,
  must write exactly these files under out/.

Adding a case is adding a folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from runs import run_evroute

from evroute import expr
from evroute.loading import load_config
from evroute.tools.importers import eventbridge

CASES = Path(__file__).parent / "import_cases"
FOLDERS = sorted(folder for folder in CASES.iterdir() if (folder / "rules.json").is_file())


def import_args(folder: Path) -> list[str]:
    args = ["import", "eventbridge", "rules.json"]
    if (folder / "targets").is_dir():
        args += ["--targets", "targets"]
    if (folder / "args").is_file():
        args += (folder / "args").read_text().split("\n")[:-1]
    return args


def test_there_are_cases() -> None:
    assert len(FOLDERS) >= 6


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: folder.name)
def test_import_writes_the_expected_config(folder: Path) -> None:
    result = run_evroute(import_args(folder), cwd=folder)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == (folder / "expected.yaml").read_text()
    warnings = folder / "warnings.txt"
    assert result.stderr.decode() == (warnings.read_text() if warnings.exists() else "")


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: folder.name)
def test_the_config_validates(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "expected.yaml", tmp_path / "routes.yaml")
    result = run_evroute(["validate", "routes.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout.decode()
    assert result.stdout.decode() == "routes.yaml: valid\n"


RUN_FOLDERS = [folder for folder in FOLDERS if (folder / "events.jsonl").is_file()]


@pytest.mark.parametrize("folder", RUN_FOLDERS, ids=lambda folder: folder.name)
def test_the_config_routes_events_to_the_targets_files(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "expected.yaml", tmp_path / "routes.yaml")
    shutil.copy(folder / "events.jsonl", tmp_path / "events.jsonl")
    result = run_evroute(["run", "routes.yaml", "events.jsonl", "--stats", "off"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    expected = {path.name: path.read_text() for path in (folder / "expected_out").iterdir()}
    written = {path.name: path.read_text() for path in (tmp_path / "out").iterdir()}
    assert written == expected


def test_several_cases_run_events() -> None:
    assert len(RUN_FOLDERS) >= 4


def rules_file(folder: Path, *rules: dict[str, Any], name: str = "rules.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"Rules": list(rules)}))
    return path


def rule(name: str, pattern: Any, **more: Any) -> dict[str, Any]:
    text = pattern if isinstance(pattern, str) else json.dumps(pattern)
    return {"Name": name, "EventPattern": text, "State": "ENABLED", **more}


def import_error(tmp_path: Path, *args: str) -> str:
    result = run_evroute(["import", "eventbridge", *args], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == b""
    return result.stderr.decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "rules.json:1:1: not JSON (Expecting value)"),
        ('{"Targets": []}', "rules.json is not the output of `aws events list-rules`"),
        ("[1, 2]", 'expected an object with a "Rules" list, found a JSON array'),
        ('{"Rules": [{"EventPattern": "{}"}]}', "rules.json: Rules[0]: has no Name"),
        ('{"Rules": [{"Name": "x"}]}', "has neither EventPattern nor ScheduleExpression"),
        ('{"Rules": [{"Name": "x", "EventPattern": "[1]"}]}', "must be a JSON object"),
    ],
)
def test_what_is_not_list_rules_output_is_said(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "rules.json").write_text(text)
    assert message in import_error(tmp_path, "rules.json")


def test_a_bad_event_pattern_is_named_by_its_rule_and_every_one_is_said(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        rule("good", {"source": ["a"]}),
        rule("broken", '{"source": ["a"'),
        rule("also-broken", "{'source': 1}"),
    )
    err = import_error(tmp_path, "rules.json")
    assert "Rules[1] (rule 'broken'): EventPattern is not valid JSON" in err
    assert "Rules[2] (rule 'also-broken'): EventPattern is not valid JSON" in err


def test_nothing_to_import_is_said(tmp_path: Path) -> None:
    rules_file(tmp_path)
    assert "rules.json: no rule to import (it lists none)" in import_error(tmp_path, "rules.json")
    scheduled = {"Name": "tick", "ScheduleExpression": "rate(5 minutes)", "State": "ENABLED"}
    rules_file(tmp_path, scheduled)
    assert "(skipped 1 scheduled)" in import_error(tmp_path, "rules.json")


def test_a_missing_file_is_said(tmp_path: Path) -> None:
    assert "cannot read nowhere.json: No such file or directory" in import_error(
        tmp_path, "nowhere.json"
    )


def test_targets_that_are_not_list_targets_output_are_said(tmp_path: Path) -> None:
    rules_file(tmp_path, rule("a", {"source": ["a"]}))
    (tmp_path / "a.json").write_text('{"Targets": [{"Id": "x"}]}')
    err = import_error(tmp_path, "rules.json", "--targets", "a.json")
    assert "a.json: rule 'a': Targets[0]: needs an Id and an Arn" in err
    (tmp_path / "a.json").write_text("[]")
    err = import_error(tmp_path, "rules.json", "--targets", "a.json")
    assert "a.json is not the output of `aws events list-targets-by-rule`" in err


def test_targets_given_twice_are_refused(tmp_path: Path) -> None:
    rules_file(tmp_path, rule("a", {"source": ["a"]}))
    listing = {"Targets": [{"Id": "x", "Arn": "arn:x"}]}
    (tmp_path / "a.json").write_text(json.dumps(listing))
    (tmp_path / "more.json").write_text(json.dumps({"a": listing}))
    err = import_error(tmp_path, "rules.json", "--targets", "a.json", "--targets", "more.json")
    assert "targets of rule 'a' are given twice" in err


def test_stdin_and_output_file_and_targets_by_rule_name(tmp_path: Path) -> None:
    rules = {"Rules": [rule("orders", {"source": ["shop"]}), rule("users", {"source": ["u"]})]}
    (tmp_path / "all-targets.json").write_text(
        json.dumps(
            {
                "orders": {"Targets": [{"Id": "t1", "Arn": "arn:aws:sqs:1"}]},
                "gone": {"Targets": [{"Id": "t2", "Arn": "arn:aws:sqs:2"}]},
            }
        )
    )
    result = run_evroute(
        ["import", "eventbridge", "-", "--targets", "all-targets.json", "-o", "conf.yaml"],
        cwd=tmp_path,
        stdin=json.dumps(rules).encode(),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "warning: targets given for rule 'gone', which the rules do not list: ignored\n"
    )
    text = (tmp_path / "conf.yaml").read_text()
    assert "#   evroute validate conf.yaml\n" in text
    config = load_config(tmp_path / "conf.yaml")
    assert [(route.name, route.to) for route in config.routes] == [
        ("orders", ("t1",)),
        ("users", ("users",)),
    ]


def test_include_disabled_imports_disabled_rules(tmp_path: Path) -> None:
    rules_file(tmp_path, rule("old", {"source": ["a"]}, State="DISABLED"))
    assert (
        "rules.json: no rule to import (skipped 1 disabled: --include-disabled imports them)"
    ) in import_error(tmp_path, "rules.json")
    result = run_evroute(
        ["import", "eventbridge", "rules.json", "--include-disabled", "-o", "r.yaml"],
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stderr == b""
    assert (
        "  # DISABLED in EventBridge: it matches nothing there\n"
        in (tmp_path / "r.yaml").read_text()
    )
    assert [route.name for route in load_config(tmp_path / "r.yaml").routes] == ["old"]


NASTY = [
    "$",
    "${HOME}",
    "$$",
    "a\u2028b\x85c\x7f",
    "tab\tand\nnewline",
    "yes",
    "0777",
    "1e3",
    "# not a comment",
    'back`tick\\slash"quote',
    "emoji \U0001f600",
    "",
]


@pytest.mark.parametrize("value", NASTY)
def test_strings_survive_yaml_and_variable_expansion(tmp_path: Path, value: str) -> None:
    pattern = {"detail": {value or "empty": [value], "null": [value]}}
    rules_file(tmp_path, rule("r", pattern))
    listing = {"Targets": [{"Id": "t", "Arn": "arn:t", "Input": json.dumps({value: value})}]}
    (tmp_path / "r.json").write_text(json.dumps(listing))
    result = run_evroute(
        ["import", "eventbridge", "rules.json", "--targets", "r.json", "-o", "routes.yaml"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    (route,) = load_config(tmp_path / "routes.yaml", environ={"HOME": "/home/x"}).routes
    assert route.pattern is not None and route.transform is not None
    event = {"detail": {value or "empty": value, "null": value}}
    assert route.pattern.matches(event)
    assert not route.pattern.matches({"detail": {**event["detail"], "null": value + "!"}})
    assert route.transform.search({}) == {value: value}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", "@"),
        ("$.detail", "detail"),
        ("$.detail.instance-id", 'detail."instance-id"'),
        ("$.detail['a b']", 'detail."a b"'),
        ('$["detail"].items[2]', "detail.items[2]"),
        ("$[0]", "[0]"),
        ("$.detail.*", None),
        ("$..id", None),
        ("$.a[?(@.b)]", None),
        ("detail", None),
    ],
)
def test_simple_jsonpaths_become_jmespath(path: str, expected: str | None) -> None:
    assert eventbridge.jsonpath_to_jmespath(path) == expected


EVENT = {"detail": {"id": "i-1", "state": "on", "tags": {"a": 1}}, "source": "ec2"}
PATHS = {"id": "$.detail.id", "state": "$.detail.state", "tags": "$.detail.tags"}


@pytest.mark.parametrize(
    ("template", "delivered"),
    [
        ('{"id": <id>, "n": 1}', {"id": "i-1", "n": 1}),
        ('"<id> is <state>: <tags>"', 'i-1 is on: {"a":1}'),
        ("[<tags>, <id>]", [{"a": 1}, "i-1"]),
        ('{"rule": <aws.events.rule-name>, "e": <aws.events.event>}', {"rule": "r", "e": EVENT}),
        ('"<unknown> \\"<id>\\""', '<unknown> "i-1"'),
        ("<aws.events.event>", EVENT),
    ],
)
def test_input_transformers_with_json_templates_are_mapped(template: str, delivered: Any) -> None:
    transformer = {"InputPathsMap": PATHS, "InputTemplate": template}
    transform = eventbridge.transformer_to_jmespath(transformer, "r")
    result = EVENT if transform is None else expr.compile(transform).search(EVENT)
    assert result == delivered


def test_input_transformers_with_text_templates_are_not() -> None:
    with pytest.raises(ValueError, match="the InputTemplate is not JSON"):
        eventbridge.transformer_to_jmespath(
            {"InputPathsMap": PATHS, "InputTemplate": "Instance <id> is <state>"}, "r"
        )


def test_names_are_cleaned_and_made_unique() -> None:
    names = eventbridge.Names()
    cleaned = [eventbridge.clean_name(text, "rule") for text in ["a b", "a-b", "A-B", "..", "é"]]
    assert cleaned == ["a-b", "a-b", "A-B", "rule", "rule"]
    assert [names.unique(name) for name in cleaned] == ["a-b", "a-b-2", "A-B-3", "rule", "rule-2"]
