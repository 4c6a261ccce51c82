"""`evroute validate` and the command line around it, in-process through program()."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from configs import MINIMAL as VALID
from configs import THREE_MISTAKES
from runs import EVROUTE_BIN, environment, write_config

from evroute import __version__
from evroute.cli import program

ISSUE_LINE = re.compile(
    r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|warning): "
    r"(?P<path>\S+): (?P<message>.+)$"
)

UNSET_VARIABLE = """\
version: 1
consumers:
  notifier:
    command: "notify --token ${EVROUTE_TEST_UNSET_TOKEN}"
routes:
  - name: everything
    to: notifier
"""


def issue_lines(out: str) -> list[re.Match[str]]:
    return [match for line in out.splitlines() if (match := ISSUE_LINE.match(line))]


@pytest.fixture(autouse=True)
def token_unset(fixed_terminal: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output as on a fixed terminal, and the token of UNSET_VARIABLE unset, whatever the
    environment the tests run in."""
    monkeypatch.delenv("EVROUTE_TEST_UNSET_TOKEN", raising=False)


def test_valid_config(tmp_path, capsys):
    path = write_config(tmp_path, VALID)
    assert program(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines() == [f"{path}: valid"]
    assert err == ""


def test_three_mistakes(tmp_path, capsys):
    path = write_config(tmp_path, THREE_MISTAKES)
    assert program(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    matches = issue_lines(out)
    assert len(matches) == 3, out
    assert all(match["severity"] == "error" for match in matches)
    assert all(match["file"] == str(path) for match in matches)
    assert [(m["line"], m["column"], m["path"]) for m in matches] == [
        ("2", "19", "shutdown_timeout"),
        ("8", "5", "routes[0].fitler"),
        ("11", "19", "routes[1].to[1]"),
    ]
    assert "did you mean 'filter'?" in matches[1]["message"]
    assert f"{path}: invalid (3 errors)" in out
    assert err == ""


def test_warnings_are_reported_and_exit_zero(tmp_path, capsys):
    text = VALID.replace("consumers:\n", "consumers:\n  idle:\n    file: idle.jsonl\n")
    path = write_config(tmp_path, text)
    assert program(["validate", str(path)]) == 0
    out, _ = capsys.readouterr()
    (match,) = issue_lines(out)
    assert match["severity"] == "warning"
    assert (match["line"], match["column"], match["path"]) == ("3", "3", "consumers.idle")
    assert f"{path}: valid (1 warning)" in out


def test_several_configs_all_reported(tmp_path, capsys):
    good = write_config(tmp_path, VALID, "good.yaml")
    bad = write_config(tmp_path, THREE_MISTAKES, "bad.yaml")
    missing = tmp_path / "missing.yaml"
    assert program(["validate", str(good), str(bad), str(missing)]) == 1
    out, _ = capsys.readouterr()
    assert f"{good}: valid" in out.splitlines()
    assert f"{bad}: invalid (3 errors)" in out
    assert f"{missing}: invalid (1 error)" in out
    files = [match["file"] for match in issue_lines(out)]
    assert files.count(str(bad)) == 3
    missing_lines = [line for line in out.splitlines() if line.startswith(f"{missing}:1:1: error")]
    assert len(missing_lines) == 1
    assert "cannot read the config" in missing_lines[0]


def test_several_valid_configs_exit_zero(tmp_path, capsys):
    first = write_config(tmp_path, VALID, "a.yaml")
    second = write_config(tmp_path, VALID, "b.yaml")
    assert program(["validate", str(first), str(second)]) == 0
    out, _ = capsys.readouterr()
    assert out.strip().splitlines() == [f"{first}: valid", f"{second}: valid"]


def test_json_format(tmp_path, capsys):
    good = write_config(tmp_path, VALID, "good.yaml")
    bad = write_config(tmp_path, THREE_MISTAKES, "bad.yaml")
    assert program(["validate", "--format", "json", str(good), str(bad)]) == 1
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert set(report) >= {"valid", "errors", "warnings", "issues"}
    assert report["valid"] is False
    assert report["errors"] == 3
    assert report["warnings"] == 0
    assert [(i["file"], i["line"], i["column"], i["path"]) for i in report["issues"]] == [
        (str(bad), 2, 19, "shutdown_timeout"),
        (str(bad), 8, 5, "routes[0].fitler"),
        (str(bad), 11, 19, "routes[1].to[1]"),
    ]
    first = report["issues"][0]
    assert set(first) == {"file", "line", "column", "severity", "path", "message"}
    assert first["severity"] == "error"


def test_json_format_valid(tmp_path, capsys):
    path = write_config(tmp_path, VALID)
    assert program(["validate", "--format", "json", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"valid": True, "errors": 0, "warnings": 0, "issues": []}


def test_unset_variable_is_an_error(tmp_path, capsys):
    path = write_config(tmp_path, UNSET_VARIABLE)
    assert program(["validate", str(path)]) == 1
    (match,) = issue_lines(capsys.readouterr().out)
    assert match["severity"] == "error"
    assert "EVROUTE_TEST_UNSET_TOKEN" in match["message"]


def test_no_env_turns_unset_variable_into_a_warning(tmp_path, capsys):
    path = write_config(tmp_path, UNSET_VARIABLE)
    assert program(["validate", "--no-env", str(path)]) == 0
    out, _ = capsys.readouterr()
    (match,) = issue_lines(out)
    assert match["severity"] == "warning"
    assert (match["line"], match["column"], match["path"]) == (
        "4",
        "14",
        "consumers.notifier.command",
    )
    assert "EVROUTE_TEST_UNSET_TOKEN" in match["message"]


def test_set_variable_comes_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EVROUTE_TEST_UNSET_TOKEN", "s3cret")
    path = write_config(tmp_path, UNSET_VARIABLE)
    assert program(["validate", str(path)]) == 0
    assert issue_lines(capsys.readouterr().out) == []


def test_no_argument_is_a_usage_error(capsys):
    assert program(["validate"]) == 2
    out, err = capsys.readouterr()
    assert "Missing argument" in err
    assert out == ""


def test_bad_format_is_a_usage_error(tmp_path, capsys):
    path = write_config(tmp_path, VALID)
    assert program(["validate", "--format", "xml", str(path)]) == 2


def test_import_is_supported_now(capsys):
    assert program(["import", "--help"]) == 0
    out, _ = capsys.readouterr()
    assert "eventbridge" in out
    assert program(["import", "nowhere", "x"]) == 2  # an unknown source: a usage error


def test_version(capsys):
    assert program(["--version"]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == f"evroute {__version__}"


def test_report_prints_messages_verbatim(tmp_path, capsys):
    path = write_config(tmp_path, VALID + "    filter: \"reaction == ':fire:' ]\"\n")
    assert program(["validate", str(path)]) == 1
    (match,) = issue_lines(capsys.readouterr().out)
    assert "':fire:'" in match["message"]


def test_yaml_syntax_error_in_a_subprocess_has_no_traceback(tmp_path):
    path = write_config(tmp_path, "version: 1\nconsumers:\n  archive: {file: x\nroutes: []\n")
    result = subprocess.run(
        [str(EVROUTE_BIN), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=environment(),
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}:4:7: error: YAML syntax:")
    assert lines[-1] == f"{path}: invalid (1 error)"
