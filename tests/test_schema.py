"""`evroute schema`: the JSON Schema agrees with the checker, key for key and config for config."""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from configs import MINIMAL, THREE_MISTAKES
from runs import write_config

from evroute.cli import program
from evroute.config.checker import DEAD_LETTER_KEYS
from evroute.config.model import QueueSettings
from evroute.config.yaml_loader import CoreSchemaLoader
from evroute.loading import build as checker_tables
from evroute.loading import check_config
from evroute.loading.inputs import input_keys
from evroute.loading.routes import ROUTE_KEYS
from evroute.loading.schema import config_schema
from evroute.processes import RestartPolicy
from evroute.sinks import SINK_KINDS
from evroute.sinks.command import LONG_RUNNING_KEYS, PER_EVENT_KEYS

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SCHEMA = config_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def parse(text: str) -> Any:
    # the loader evroute uses, so `on`, `yes` and dates stay strings as they do for it
    return yaml.load(text, Loader=CoreSchemaLoader)


def schema_errors(text: str) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(parse(text))]


def checker_errors(tmp_path: Path, text: str) -> list[str]:
    path = write_config(tmp_path, text)
    _, issues = check_config(path, environ={"BUFFER": "100", "TOKEN": "t"})
    return [issue.format() for issue in issues if issue.severity == "error"]


def consumer_schemas() -> dict[str, dict[str, Any]]:
    schemas = SCHEMA["properties"]["consumers"]["additionalProperties"]["oneOf"]
    return {schema["required"][0]: schema for schema in schemas}


# --- the schema is built from the checker's tables -----------------------------------------


def test_it_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_key_the_checker_accepts_is_in_the_schema_and_no_other() -> None:
    properties = SCHEMA["properties"]
    assert list(properties) == list(checker_tables.TOP_LEVEL_KEYS)
    assert list(properties["defaults"]["properties"]) == list(checker_tables.QUEUE_KEYS)
    assert list(properties["routes"]["items"]["properties"]) == list(ROUTE_KEYS)
    kinds = consumer_schemas()
    assert list(kinds) == list(SINK_KINDS)
    for name, kind in SINK_KINDS.items():
        every_kind = (*checker_tables.QUEUE_KEYS, *checker_tables.CONSUMER_KEYS)
        assert set(kinds[name]["properties"]) == {*kind.keys, *every_kind}
    for key in ("dead_letter", "audit"):  # the files evroute keeps, alike
        mapping = properties[key]["anyOf"][1]  # {path: ..., rotate_bytes: ...}
        assert list(mapping["properties"]) == list(DEAD_LETTER_KEYS)
        assert mapping["additionalProperties"] is False
    inputs = properties["inputs"]["items"]
    assert list(inputs["properties"]) == list(input_keys())
    assert inputs["additionalProperties"] is False
    # each object is closed, as the checker refuses unknown keys
    for schema in (SCHEMA, properties["defaults"], properties["routes"]["items"], *kinds.values()):
        assert schema["additionalProperties"] is False


def test_restart_keys_are_those_the_checker_reads(tmp_path: Path) -> None:
    restart = consumer_schemas()["command"]["properties"]["restart"]
    assert set(restart["properties"]) == {"max", "backoff", "max_backoff"}
    for key in restart["properties"]:
        text = CONSUMER_TEMPLATE.format(consumer=f"command: [cat]\n    restart: {{{key}: 1}}")
        assert checker_errors(tmp_path, text) == [] and schema_errors(text) == []


def test_defaults_are_the_models() -> None:
    properties = SCHEMA["properties"]
    queue = QueueSettings()
    for key, value in properties["defaults"]["properties"].items():
        assert value["default"] == getattr(queue, key)
    assert properties["unmatched"]["default"] == "drop"
    assert properties["max_event_bytes"]["default"] == 1 << 20
    assert properties["shutdown_timeout"]["default"] == 10.0
    restart = consumer_schemas()["command"]["properties"]["restart"]["properties"]
    assert {key: value["default"] for key, value in restart.items()} == {
        "max": RestartPolicy().max,
        "backoff": RestartPolicy().backoff,
        "max_backoff": RestartPolicy().max_backoff,
    }
    assert consumer_schemas()["file"]["properties"]["mode"]["default"] == "append"


def test_per_event_and_long_running_keys_exclude_each_other() -> None:
    command = consumer_schemas()["command"]
    assert command["then"] == {"not": {"anyOf": [{"required": [k]} for k in LONG_RUNNING_KEYS]}}
    assert command["else"] == {"not": {"anyOf": [{"required": [k]} for k in PER_EVENT_KEYS]}}


# --- configs: what the checker accepts, the schema accepts --------------------------------

CONSUMER_TEMPLATE = """\
version: 1
consumers:
  c:
    {consumer}
routes:
  - name: r
    to: c
"""

VALID = {
    "minimal": MINIMAL,
    "every option": """\
version: 1
defaults: {buffer: 10, buffer_bytes: 1MiB, on_full: drop_oldest, spill_max_bytes: 100, retries: 0}
dead_letter: out/dead.jsonl
unmatched: dead_letter
max_event_bytes: 64KiB
shutdown_timeout: 250ms
consumers:
  a:
    file: "-"
    mode: overwrite
    on_full: block
  b:
    command: python3 b.py
    restart: {max: 0, backoff: 1, max_backoff: 1m}
    ack: line
    buffer_bytes: 1000
  c:
    command: [python3, c.py]
    per_event: true
    concurrency: 4
    key: detail.id
    timeout: 1.5
    retries: 2
routes:
  - name: r.1
    filter: "a == `1`"
    transform: "{a: a}"
    to: [a, b, c]
""",
    "unmatched to a consumer": """\
version: 1
unmatched: rest
consumers:
  rest:
    file: rest.jsonl
  x:
    command: "x"
    per_event: false
routes:
  - name: r
    to: x
""",
    "environment variables in typed values": """\
version: 1
defaults:
  buffer: ${BUFFER:-100}
consumers:
  c:
    command: "notify --token ${TOKEN}"
routes:
  - name: r
    to: c
""",
}

INVALID = {
    "unknown top-level key": MINIMAL + "verbose: true\n",
    "wrong on_full": MINIMAL.replace("    file:", "    on_full: dorp_newest\n    file:"),
    "unknown consumer key": MINIMAL.replace("    file:", "    fiel: x\n    file:"),
    "unknown route key": THREE_MISTAKES,
    "inputs as a list of strings": MINIMAL + "inputs: [a.jsonl]\n",
    "version 2": MINIMAL.replace("version: 1", "version: 2"),
    "version as a string": MINIMAL.replace("version: 1", 'version: "1"'),
    "bad size": MINIMAL + "max_event_bytes: 1 parsec\n",
    "bad duration": MINIMAL + "shutdown_timeout: soon\n",
    "negative retries": MINIMAL + "defaults: {retries: -1}\n",
    "both kinds": CONSUMER_TEMPLATE.format(consumer="{file: a, command: b}"),
    "no kind": CONSUMER_TEMPLATE.format(consumer="{mode: append}"),
    "restart on a per-event command": CONSUMER_TEMPLATE.format(
        consumer="{command: b, per_event: true, restart: {max: 1}}"
    ),
    "timeout on a long-running command": CONSUMER_TEMPLATE.format(
        consumer="{command: b, timeout: 5s}"
    ),
    "unknown restart key": CONSUMER_TEMPLATE.format(consumer="{command: b, restart: {tries: 1}}"),
    "bad ack": CONSUMER_TEMPLATE.format(consumer="{command: b, ack: all}"),
    "bad name": MINIMAL.replace("  archive:", "  my archive:").replace(
        "to: archive", "to: my archive"
    ),
    "route without to": MINIMAL.replace("    to: archive\n", ""),
    "no routes": MINIMAL.split("routes:")[0] + "routes: []\n",
    "no consumers": "version: 1\nconsumers: {}\nroutes: [{name: r, to: c}]\n",
}


def test_the_sample_configs_validate() -> None:
    samples = sorted((ROOT / "samples").glob("*.yaml"))
    assert samples
    for path in samples:
        assert schema_errors(path.read_text(encoding="utf-8")) == [], path


def readme_config_reference() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    return next(block for block in blocks if "version: 1" in block)


def test_the_readme_config_reference_validates_and_names_the_schema() -> None:
    reference = readme_config_reference()
    assert schema_errors(reference) == []
    assert reference.startswith("# yaml-language-server: $schema=./evroute.schema.json\n")


@pytest.mark.parametrize("name", sorted(VALID))
def test_configs_the_checker_accepts_validate(tmp_path: Path, name: str) -> None:
    assert checker_errors(tmp_path, VALID[name]) == []
    assert schema_errors(VALID[name]) == []


@pytest.mark.parametrize("name", sorted(INVALID))
def test_configs_the_checker_refuses_are_refused(tmp_path: Path, name: str) -> None:
    assert checker_errors(tmp_path, INVALID[name]) != []
    assert schema_errors(INVALID[name]) != []


def configs_in_the_test_suite() -> list[tuple[str, str]]:
    """Every YAML config written as a string literal in the tests."""
    found: list[tuple[str, str]] = []
    for path in [*sorted(TESTS.glob("test_*.py")), TESTS / "configs.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "version: 1" in node.value
                and "routes:" in node.value
            ):
                found.append((f"{path.name}:{node.lineno}", textwrap.dedent(node.value)))
    for path in sorted((TESTS / "golden").glob("*/config.yaml")):
        found.append((str(path.relative_to(TESTS)), path.read_text(encoding="utf-8")))
    return found


def test_every_valid_config_of_the_test_suite_validates(tmp_path: Path) -> None:
    checked = 0
    for where, text in configs_in_the_test_suite():
        try:
            data = parse(text)
        except yaml.YAMLError:
            continue  # a test of broken YAML
        if not isinstance(data, dict) or checker_errors(tmp_path, text):
            continue  # the checker refuses it: the schema may or may not see why
        errors = [error.message for error in VALIDATOR.iter_errors(data)]
        assert errors == [], f"{where}: the checker accepts it, the schema does not"
        checked += 1
    assert checked >= 20


# --- the command ---------------------------------------------------------------------------


def test_schema_command_prints_the_schema_as_indented_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert program(["schema"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == SCHEMA
    assert out == json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n"


def test_schema_command_takes_no_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert program(["schema", "routes.yaml"]) == 2
    assert "Traceback" not in capsys.readouterr().err
