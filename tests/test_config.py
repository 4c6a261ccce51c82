"""check_config: YAML 1.2 loading, every issue with its position, the Config it builds."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from configs import MINIMAL, THREE_MISTAKES
from runs import write_config

from evroute.config.model import Config, QueueSettings
from evroute.loading import check_config


def check(folder: Path, text: str, environ=None, no_env=False):
    return check_config(
        write_config(folder, text), environ={} if environ is None else environ, no_env=no_env
    )


def errors(issues):
    return [issue for issue in issues if issue.severity == "error"]


def warnings(issues):
    return [issue for issue in issues if issue.severity == "warning"]


def only_error(issues):
    found = errors(issues)
    assert len(found) == 1, [issue.format() for issue in issues]
    return found[0]


def valid(folder: Path, text: str, environ=None) -> Config:
    config, issues = check(folder, text, environ)
    assert errors(issues) == [], [issue.format() for issue in issues]
    assert config is not None
    return config


def with_consumer_options(options: str) -> str:
    """MINIMAL with `options` (one YAML line per option) in place of the archive's file."""
    return MINIMAL.replace("    file: out/all.jsonl\n", textwrap.indent(options, "    "))


# --- the Config built from a valid file ---------------------------------------------------


def test_minimal_config_builds(tmp_path):
    path = write_config(tmp_path, MINIMAL)
    config, issues = check_config(path, environ={})
    assert issues == []
    assert isinstance(config, Config)
    assert list(config.consumers) == ["archive"]
    archive = config.consumers["archive"]
    assert archive.name == "archive"
    assert archive.kind == "file"
    assert archive.options.path == "out/all.jsonl"
    assert archive.options.mode == "append"
    assert [route.name for route in config.routes] == ["everything"]
    route = config.routes[0]
    assert route.to == ("archive",)
    assert route.filter is None
    assert route.transform is None


def test_defaults(tmp_path):
    config = valid(tmp_path, MINIMAL)
    queue = config.consumers["archive"].queue
    assert queue.buffer == 10_000
    assert queue.buffer_bytes == 64 * 1024 * 1024
    assert queue.on_full == "spill"
    assert config.max_event_bytes == 1024 * 1024
    assert config.shutdown_timeout == 10.0
    assert config.unmatched == "drop"
    assert config.dead_letter is None


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "conf"
    folder.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write_config(folder, MINIMAL + "dead_letter: dl/dead.jsonl\n")
    config, issues = check_config(Path(path), environ={})
    assert issues == []
    assert config is not None
    assert config.base_dir == folder
    assert config.path == path
    assert config.dead_letter == folder / "dl" / "dead.jsonl"


def test_relative_config_path_gives_an_absolute_base_dir(tmp_path, monkeypatch):
    write_config(tmp_path, MINIMAL)
    monkeypatch.chdir(tmp_path)
    config, _ = check_config(Path("routes.yaml"), environ={})
    assert config is not None
    assert config.base_dir == tmp_path
    assert config.base_dir.is_absolute()


def test_full_config_values(tmp_path):
    config = valid(
        tmp_path,
        """\
        version: 1
        defaults:
          buffer: 500
          buffer_bytes: 8MiB
          on_full: drop_oldest
        max_event_bytes: 64KiB
        shutdown_timeout: 250ms
        unmatched: archive
        consumers:
          archive:
            file: "-"
            mode: overwrite
          notifier:
            command: ["python3", "consumers/notify.py"]
            buffer: 7
            on_full: drop_newest
          shell:
            command: python3 'my consumer.py' --flag
        routes:
          - name: big-orders
            filter: "\\"detail-type\\" == 'OrderPlaced' && detail.amount > `100`"
            transform: "{id: id, amount: detail.amount}"
            to: [notifier, shell]
        """,
    )
    assert config.max_event_bytes == 64 * 1024
    assert config.shutdown_timeout == pytest.approx(0.25)
    assert config.unmatched == "archive"
    assert config.consumers["archive"].options.path == "-"
    assert config.consumers["archive"].options.mode == "overwrite"
    assert config.consumers["archive"].queue == QueueSettings(500, 8 << 20, "drop_oldest")
    assert config.consumers["notifier"].kind == "command"
    assert config.consumers["notifier"].options.argv == ("python3", "consumers/notify.py")
    assert config.consumers["notifier"].queue == QueueSettings(7, 8 << 20, "drop_newest")
    assert config.consumers["shell"].options.argv == ("python3", "my consumer.py", "--flag")
    route = config.routes[0]
    assert route.to == ("notifier", "shell")
    event = {"detail-type": "OrderPlaced", "id": "e1", "detail": {"amount": 250}}
    assert route.filter is not None
    assert route.filter.search(event) is True
    assert route.filter.search({"detail-type": "OrderPlaced", "detail": {"amount": 5}}) is False
    assert route.transform is not None
    assert route.transform.search(event) == {"id": "e1", "amount": 250}


def test_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    config, issues = check_config(path, environ={})
    assert issues == []
    assert config is not None


# --- YAML 1.2 core schema -----------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "OFF", "2026-01-01"])
def test_yaml_11_booleans_and_timestamps_stay_strings_as_file(tmp_path, word):
    config = valid(tmp_path, with_consumer_options(f"file: {word}\n"))
    assert config.consumers["archive"].options.path == word


def test_yaml_11_words_stay_strings_in_argv(tmp_path):
    config = valid(
        tmp_path,
        with_consumer_options(
            "command: [echo, yes, no, on, off, 2026-01-01, 2026-01-01T10:00:00Z, 1_000]\n"
        ),
    )
    assert config.consumers["archive"].options.argv == (
        "echo",
        "yes",
        "no",
        "on",
        "off",
        "2026-01-01",
        "2026-01-01T10:00:00Z",
        "1_000",
    )


@pytest.mark.parametrize(
    ("written", "value"),
    [("0777", 777), ("0x10", 16), ("0o17", 15), ("+12", 12), ("010", 10)],
)
def test_yaml_12_integers(tmp_path, written, value):
    config = valid(tmp_path, MINIMAL + f"defaults:\n  buffer: {written}\n")
    assert config.consumers["archive"].queue.buffer == value


def test_yaml_12_true_is_a_boolean_not_a_string(tmp_path):
    config, issues = check(tmp_path, with_consumer_options("file: true\n"))
    assert config is None
    error = only_error(issues)
    assert error.path == "consumers.archive.file"
    assert "expected a string, got boolean true" in error.message


def test_yaml_12_null_is_null(tmp_path):
    config, issues = check(tmp_path, with_consumer_options("file: ~\n"))
    assert config is None
    assert "got null" in only_error(issues).message


def test_yaml_on_as_key_stays_a_string(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "on: push\n")
    error = only_error(issues)
    assert config is None
    assert error.path == "on"
    assert "unknown key 'on'" in error.message
    assert (error.line, error.column) == (8, 1)


def test_yaml_11_number_forms_are_strings(tmp_path):
    # 1_000 (and 0b1, 1:30) are YAML 1.1 integers, strings in 1.2's core schema
    config, issues = check(tmp_path, MINIMAL + "defaults:\n  buffer: 1_000\n")
    assert config is None
    assert "expected an integer, got string '1_000'" in only_error(issues).message


# --- three mistakes at once ---------------------------------------------------------------


def test_three_mistakes_three_errors_with_positions(tmp_path):
    path = write_config(tmp_path, THREE_MISTAKES)
    config, issues = check_config(path, environ={})
    assert config is None
    found = errors(issues)
    assert len(found) == 3, [issue.format() for issue in issues]
    timeout, fitler, notifer = found
    assert (timeout.line, timeout.column, timeout.path) == (2, 19, "shutdown_timeout")
    assert "10 parsecs" in timeout.message
    assert (fitler.line, fitler.column, fitler.path) == (8, 5, "routes[0].fitler")
    assert "unknown key 'fitler'" in fitler.message
    assert "did you mean 'filter'?" in fitler.message
    assert (notifer.line, notifer.column, notifer.path) == (11, 19, "routes[1].to[1]")
    assert "no consumer is named 'notifer'" in notifer.message
    for issue in found:
        assert issue.file == str(path)


def test_issue_format(tmp_path):
    path = write_config(tmp_path, THREE_MISTAKES)
    _, issues = check_config(path, environ={})
    lines = [issue.format() for issue in errors(issues)]
    assert lines[0] == (
        f"{path}:2:19: error: shutdown_timeout: "
        "expected a duration such as 10s, 250ms or 5m, got '10 parsecs'"
    )
    pattern = re.compile(r"^(.+):(\d+):(\d+): (error|warning): (\S+): (.+)$")
    for line in lines:
        assert pattern.match(line), line


def test_issue_format_without_path(tmp_path):
    path = write_config(tmp_path, "")
    _, issues = check_config(path, environ={})
    assert only_error(issues).format().startswith(f"{path}:1:1: error: the config is empty")


def test_issues_are_sorted_by_line(tmp_path):
    # the loader finds the duplicate key (line 9) before the checks find the others
    _, issues = check(
        tmp_path,
        """\
        version: 1
        max_event_bytes: lots
        consumers:
          archive:
            file: out/all.jsonl
            nope: 1
        routes:
          - name: everything
            name: again
            to: archive
          - name: bad name!
            to: archive
        """,
    )
    positions = [(issue.line, issue.column) for issue in issues]
    assert positions == sorted(positions)
    assert [issue.line for issue in issues] == [2, 6, 9, 11]


# --- each kind of problem -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "path", "message"),
    [
        (MINIMAL + "consumer: {}\n", (8, 1), "consumer", "did you mean 'consumers'?"),
        (
            MINIMAL + "colour: red\n",
            (8, 1),
            "colour",
            "expected one of: version, defaults, dead_letter",
        ),
        (
            with_consumer_options("file: x\nmdoe: append\n"),
            (5, 5),
            "consumers.archive.mdoe",
            "did you mean 'mode'?",
        ),
        (
            with_consumer_options("command: [cat]\nbufer: 10\n"),
            (5, 5),
            "consumers.archive.bufer",
            "did you mean 'buffer'?",
        ),
        (MINIMAL + "    fitler: a\n", (8, 5), "routes[0].fitler", "did you mean 'filter'?"),
        (MINIMAL + "    too: archive\n", (8, 5), "routes[0].too", "unknown key 'too'"),
        (
            MINIMAL + "defaults:\n  bufer: 3\n",
            (9, 3),
            "defaults.bufer",
            "did you mean 'buffer'?",
        ),
    ],
)
def test_unknown_keys(tmp_path, text, position, path, message):
    config, issues = check(tmp_path, text)
    assert config is None
    error = only_error(issues)
    assert (error.line, error.column) == position
    assert error.path == path
    assert message in error.message


@pytest.mark.parametrize(
    ("text", "position", "path", "message"),
    [
        (
            MINIMAL + "defaults:\n  buffer: lots\n",
            (9, 11),
            "defaults.buffer",
            "expected an integer",
        ),
        (MINIMAL + "defaults:\n  buffer: 0\n", (9, 11), "defaults.buffer", "at least 1"),
        (MINIMAL + "defaults:\n  buffer: true\n", (9, 11), "defaults.buffer", "boolean"),
        (MINIMAL + "defaults: [1]\n", (8, 11), "defaults", "expected a mapping, got a list"),
        (
            MINIMAL + "defaults:\n  on_full: sometimes\n",
            (9, 12),
            "defaults.on_full",
            "expected one of block, drop_newest, drop_oldest",
        ),
        (MINIMAL + "dead_letter: 5\n", (8, 14), "dead_letter", "expected a string"),
        (MINIMAL + "unmatched: 5\n", (8, 12), "unmatched", "expected a string"),
        (
            with_consumer_options("file: x\nmode: sideways\n"),
            (5, 11),
            "consumers.archive.mode",
            "expected one of append, overwrite",
        ),
        (with_consumer_options("file: 5\n"), (4, 11), "consumers.archive.file", "number 5"),
        (
            with_consumer_options("command: 5\n"),
            (4, 14),
            "consumers.archive.command",
            "expected an argv list or a string",
        ),
        (
            with_consumer_options("command: [echo, 5]\n"),
            (4, 21),
            "consumers.archive.command[1]",
            "expected a string",
        ),
        (MINIMAL.replace("    to: archive", "    to: 5"), (7, 9), "routes[0].to", "number 5"),
        (
            MINIMAL.replace("    to: archive", "    to: [archive, archive]"),
            (7, 19),
            "routes[0].to[1]",
            "listed twice",
        ),
        (MINIMAL.replace("    to: archive", "    to: []"), (7, 9), "routes[0].to", "is empty"),
        (MINIMAL + "    filter: 5\n", (8, 13), "routes[0].filter", "expected a string"),
        (MINIMAL + "    filter: ''\n", (8, 13), "routes[0].filter", "must not be empty"),
        (
            MINIMAL.replace("  - name: everything\n    to: archive\n", "  - everything\n"),
            (6, 5),
            "routes[0]",
            "expected a mapping",
        ),
        (
            MINIMAL.replace("    to: archive\n", ""),
            (6, 5),
            "routes[0].to",
            "missing",
        ),
        (
            MINIMAL.replace("  - name: everything\n", "  - to: archive\n").replace(
                "    to: archive\n", "", 1
            ),
            (6, 5),
            "routes[0].name",
            "missing",
        ),
    ],
)
def test_wrong_types_and_values(tmp_path, text, position, path, message):
    config, issues = check(tmp_path, text)
    assert config is None
    error = only_error(issues)
    assert (error.path, (error.line, error.column)) == (path, position)
    assert message in error.message


def test_routes_must_be_a_list(tmp_path):
    config, issues = check(
        tmp_path,
        """\
        version: 1
        consumers:
          archive: {file: x}
        routes:
          everything: {to: archive}
        """,
    )
    assert config is None
    found = errors(issues)
    assert [(issue.path, issue.line, issue.column) for issue in found] == [("routes", 5, 3)]
    assert "expected a list of routes" in found[0].message


def test_consumers_must_be_a_mapping(tmp_path):
    config, issues = check(
        tmp_path,
        """\
        version: 1
        consumers: [archive]
        routes:
          - {name: everything, to: archive}
        """,
    )
    assert config is None
    paths = [(issue.path, issue.line, issue.column) for issue in errors(issues)]
    assert ("consumers", 2, 12) in paths
    assert "expected a mapping, got a list" in errors(issues)[0].message


def test_whole_config_must_be_a_mapping(tmp_path):
    config, issues = check(tmp_path, "- version: 1\n")
    assert config is None
    error = only_error(issues)
    assert (error.line, error.column) == (1, 1)
    assert "expected a mapping" in error.message


def test_duplicate_route_names(tmp_path):
    config, issues = check(
        tmp_path,
        MINIMAL + "  - name: everything\n    to: archive\n",
    )
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("routes[1].name", 8, 11)
    assert "duplicate route name 'everything' (first at line 6)" in error.message


def test_duplicate_yaml_keys(tmp_path):
    config, issues = check(
        tmp_path,
        """\
        version: 1
        consumers:
          archive:
            file: out/a.jsonl
          archive:
            file: out/b.jsonl
        routes:
          - name: everything
            to: archive
            to: elsewhere
        """,
    )
    assert config is None
    found = errors(issues)
    assert [(issue.line, issue.column) for issue in found] == [(5, 3), (10, 5)]
    assert "duplicate key 'archive' (first at line 3)" in found[0].message
    assert "duplicate key 'to' (first at line 9)" in found[1].message


def test_non_string_mapping_key(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "1: one\n")
    assert config is None
    error = only_error(issues)
    assert (error.line, error.column) == (8, 1)
    assert "mapping keys must be strings" in error.message


@pytest.mark.parametrize("name", ["bad name!", "a/b", "ünïcode", "semi;colon"])
def test_invalid_route_name(tmp_path, name):
    config, issues = check(tmp_path, MINIMAL.replace("name: everything", f"name: '{name}'"))
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("routes[0].name", 6, 11)
    assert "may only use letters, digits, _ . -" in error.message


def test_invalid_consumer_name(tmp_path):
    config, issues = check(
        tmp_path,
        """\
        version: 1
        consumers:
          bad name!:
            file: x
          archive:
            file: y
        routes:
          - {name: everything, to: archive}
        """,
    )
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("consumers.bad name!", 3, 3)
    assert "consumer name 'bad name!'" in error.message


def test_valid_names_with_dots_dashes_underscores(tmp_path):
    config = valid(
        tmp_path,
        MINIMAL.replace("archive", "a.b-c_D9").replace("everything", "r.1-x_Y"),
    )
    assert list(config.consumers) == ["a.b-c_D9"]
    assert config.routes[0].name == "r.1-x_Y"


def test_unknown_consumer_in_to_with_hint(tmp_path):
    config, issues = check(tmp_path, MINIMAL.replace("    to: archive", "    to: archiv"))
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("routes[0].to", 7, 9)
    assert error.message == "no consumer is named 'archiv'; did you mean 'archive'?"


def test_consumer_with_neither_file_nor_command(tmp_path):
    config, issues = check(tmp_path, with_consumer_options("mode: append\n"))
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("consumers.archive", 4, 5)
    assert "has no kind" in error.message
    assert "exactly one of: file, command" in error.message


def test_consumer_with_both_file_and_command(tmp_path):
    config, issues = check(tmp_path, with_consumer_options("file: x\ncommand: [cat]\n"))
    assert config is None
    error = only_error(issues)
    assert error.path == "consumers.archive"
    assert "has both file and command" in error.message


@pytest.mark.parametrize("command", ["[]", "''", "'   '"])
def test_empty_command(tmp_path, command):
    config, issues = check(tmp_path, with_consumer_options(f"command: {command}\n"))
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("consumers.archive.command", 4, 14)
    assert "must not be empty" in error.message


def test_command_string_that_shlex_cannot_split(tmp_path):
    config, issues = check(tmp_path, with_consumer_options('command: "echo \'unclosed"\n'))
    assert config is None
    assert "cannot split the command" in only_error(issues).message


# --- JMESPath ------------------------------------------------------------------------------


def test_jmespath_syntax_error_in_plain_scalar_points_into_the_expression(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "    filter: foo ==\n")
    assert config is None
    error = only_error(issues)
    # the scalar starts at column 13; the expression is incomplete at offset 6 (its end)
    assert (error.path, error.line, error.column) == ("routes[0].filter", 8, 13 + 6)
    assert "invalid JMESPath" in error.message
    assert "'foo =='" in error.message


def test_jmespath_unexpected_token_in_plain_scalar(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "    filter: a == b c\n")
    assert config is None
    error = only_error(issues)
    assert (error.line, error.column) == (8, 13 + 7)  # the `c`
    assert "unexpected token 'c'" in error.message


def test_jmespath_syntax_error_in_double_quoted_scalar_maps_escapes(tmp_path):
    #        column 13 is the opening quote; value offset 11 is the `]`, which is
    #        14 characters into the scalar as written because of the two \" escapes
    line = '    filter: "\\"x\\" == \'a\' ]"\n'
    assert line.index("]") + 1 == 13 + 14
    config, issues = check(tmp_path, MINIMAL + line)
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("routes[0].filter", 8, 13 + 14)
    assert "unexpected token ']'" in error.message


def test_jmespath_syntax_error_in_double_quoted_scalar_without_escapes(tmp_path):
    config, issues = check(tmp_path, MINIMAL + '    filter: "a == b c"\n')
    error = only_error(issues)
    assert config is None
    assert (error.line, error.column) == (8, 13 + 1 + 7)  # the quote, then offset 7


def test_jmespath_syntax_error_in_single_quoted_scalar_maps_doubled_quotes(tmp_path):
    line = "    filter: 'a == ''x'' ]'\n"
    config, issues = check(tmp_path, MINIMAL + line)
    error = only_error(issues)
    assert config is None
    assert (error.line, error.column) == (8, line.index("]") + 1)


def test_jmespath_error_after_env_expansion_points_at_the_scalar(tmp_path):
    # offsets in the expanded value do not map to the file: the scalar's own position
    text = MINIMAL + "    filter: \"source == '${EVR_SOURCE}' ]\"\n"
    config, issues = check(tmp_path, text, {"EVR_SOURCE": "a-much-longer-source-name"})
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("routes[0].filter", 8, 13)
    assert "unexpected token ']'" in error.message


def test_jmespath_error_in_transform(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "    transform: '{id: id'\n")
    assert config is None
    error = only_error(issues)
    assert error.path == "routes[0].transform"
    assert error.line == 8
    assert error.column > 16  # inside the expression, not at its start


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        pytest.param("nosuch(a)", "unknown function nosuch()", id="unknown-function"),
        pytest.param("length(a, b)", "length() takes 1 argument(s), 2 given", id="wrong-arity"),
    ],
)
def test_a_bad_jmespath_function_call_is_an_error_at_the_expression(tmp_path, expression, says):
    config, issues = check(tmp_path, MINIMAL + f"    filter: {expression}\n")
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("routes[0].filter", 8, 13)
    assert says in error.message


def test_unknown_jmespath_function_inside_the_expression(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "    filter: a && nosuch(a)\n")
    error = only_error(issues)
    assert config is None
    assert (error.line, error.column) == (8, 13 + 5)


def test_jmespath_variadic_arity(tmp_path):
    config = valid(tmp_path, MINIMAL + "    filter: not_null(a, b, c)\n")
    assert config.routes[0].filter is not None
    config, issues = check(tmp_path, MINIMAL + "    filter: merge()\n")
    assert config is None
    assert "merge() takes at least 1 argument(s), 0 given" in only_error(issues).message


def test_jmespath_wrong_arity_points_at_the_faulty_call(tmp_path):
    line = "    filter: length(tags) > `0` && length(items, x)\n"
    config, issues = check(tmp_path, MINIMAL + line)
    assert config is None
    error = only_error(issues)
    assert (error.line, error.column) == (8, line.index("length(items") + 1)


# --- durations and sizes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("shutdown_timeout", "10 parsecs", "expected a duration"),
        ("shutdown_timeout", "-1", "cannot be negative"),
        ("shutdown_timeout", "true", "boolean"),
        ("shutdown_timeout", "'10'", "expected a duration"),
        ("max_event_bytes", "lots", "expected a size"),
        ("max_event_bytes", "-1", "cannot be negative"),
        ("max_event_bytes", "8", "at least 16 bytes"),
        ("max_event_bytes", "1.5", "expected a size"),
    ],
)
def test_bad_top_level_durations_and_sizes(tmp_path, option, value, message):
    config, issues = check(tmp_path, MINIMAL + f"{option}: {value}\n")
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == (option, 8, len(option) + 3)
    assert message in error.message


@pytest.mark.parametrize(
    ("value", "message"),
    [("64 parsecs", "expected a size"), ("0", "at least 1 bytes"), ("no", "expected a size")],
)
def test_bad_buffer_bytes(tmp_path, value, message):
    config, issues = check(tmp_path, with_consumer_options(f"file: x\nbuffer_bytes: {value}\n"))
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("consumers.archive.buffer_bytes", 5, 19)
    assert message in error.message


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("250ms", 0.25), ("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("3", 3.0), ("0.5", 0.5)],
)
def test_good_durations(tmp_path, written, seconds):
    config = valid(tmp_path, MINIMAL + f"shutdown_timeout: {written}\n")
    assert config.shutdown_timeout == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("written", "size"),
    [("64KiB", 64 << 10), ("2MiB", 2 << 20), ("1GiB", 1 << 30), ("10MB", 10**7), ("4096", 4096)],
)
def test_good_sizes(tmp_path, written, size):
    config = valid(tmp_path, MINIMAL + f"max_event_bytes: {written}\n")
    assert config.max_event_bytes == size
    config = valid(tmp_path, MINIMAL + f"defaults:\n  buffer_bytes: {written}\n")
    assert config.consumers["archive"].queue.buffer_bytes == size


def test_nan_shutdown_timeout_is_an_error(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "shutdown_timeout: .nan\n")
    assert config is None
    assert only_error(issues).path == "shutdown_timeout"


# --- version, missing sections ----------------------------------------------------------------


def test_missing_version(tmp_path):
    config, issues = check(tmp_path, MINIMAL.replace("version: 1\n", ""))
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("version", 1, 1)
    assert "version: 1" in error.message


@pytest.mark.parametrize("version", ["2", "0", "'1'", "true", "null"])
def test_unsupported_version(tmp_path, version):
    config, issues = check(tmp_path, MINIMAL.replace("version: 1", f"version: {version}"))
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("version", 1, 10)
    assert "unsupported version" in error.message


def test_missing_consumers_and_routes(tmp_path):
    config, issues = check(tmp_path, "version: 1\n")
    assert config is None
    found = errors(issues)
    assert [issue.path for issue in found] == ["consumers", "routes"]
    assert all("missing" in issue.message for issue in found)


@pytest.mark.parametrize(
    ("routes", "says"),
    [
        # `routes:` with nothing after it is null, not a list
        pytest.param("routes:\n", "expected a list of routes, got null", id="null"),
        pytest.param("routes: []\n", "is empty", id="empty"),
    ],
)
def test_routes_must_be_a_list_of_some(tmp_path, routes, says):
    text = MINIMAL.replace("routes:\n  - name: everything\n    to: archive\n", routes)
    config, issues = check(tmp_path, text)
    assert config is None
    route_errors = [issue for issue in errors(issues) if issue.path == "routes"]
    assert len(route_errors) == 1
    assert says in route_errors[0].message


# --- inputs and templated paths ---------------------------------------------------------


def test_a_nats_input_reports_each_problem_at_its_key(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "inputs: [{name: bus, nats: {url: x}}]\n")
    assert config is None
    found = {issue.path: issue.message for issue in errors(issues)}
    assert set(found) == {"inputs[0].nats.url", "inputs[0].nats.stream"}
    assert "'x' is not a server URL; write nats://HOST:PORT" in found["inputs[0].nats.url"]
    assert found["inputs[0].nats.stream"].startswith("is missing")


def test_templated_file_path_is_accepted(tmp_path):
    config = valid(tmp_path, with_consumer_options("file: out/{source}.jsonl\n"))
    assert config.consumers["archive"].options.template.text == "out/{source}.jsonl"


@pytest.mark.parametrize("path", ["out/}.jsonl", "out/{.jsonl", "out/{x}}.jsonl"])
def test_lone_braces_in_file_path_are_rejected(tmp_path, path):
    config, issues = check(tmp_path, with_consumer_options(f"file: '{path}'\n"))
    assert config is None
    assert only_error(issues).path == "consumers.archive.file"


def test_doubled_braces_are_literal_braces(tmp_path):
    config = valid(tmp_path, with_consumer_options("file: out/{{x}}.jsonl\n"))
    assert config.consumers["archive"].options.path == "out/{x}.jsonl"


# --- unmatched --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["drop", "dead_letter", "archive"])
def test_unmatched_values(tmp_path, value):
    config = valid(tmp_path, MINIMAL + f"dead_letter: dl.jsonl\nunmatched: {value}\n")
    assert config.unmatched == value


def test_unmatched_naming_a_missing_consumer(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "unmatched: leftovers\n")
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("unmatched", 8, 12)
    assert "no consumer is named 'leftovers'" in error.message


def test_unmatched_dead_letter_without_path_is_a_warning(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "unmatched: dead_letter\n")
    assert config is not None
    assert errors(issues) == []
    (warning,) = warnings(issues)
    assert warning.path == "unmatched"


# --- warnings ---------------------------------------------------------------------------------


def test_consumer_no_route_feeds_is_a_warning(tmp_path):
    config, issues = check(tmp_path, MINIMAL)
    assert config is not None and issues == []  # control: fed consumers give no warning
    text = MINIMAL.replace("consumers:\n", "consumers:\n  idle:\n    file: idle.jsonl\n")
    config, issues = check(tmp_path, text)
    assert config is not None
    assert list(config.consumers) == ["idle", "archive"]
    (warning,) = issues
    assert warning.severity == "warning"
    assert (warning.path, warning.line, warning.column) == ("consumers.idle", 3, 3)
    assert "no route sends events to this consumer" in warning.message
    assert warning.format().startswith(f"{tmp_path / 'routes.yaml'}:3:3: warning: consumers.idle:")


def test_consumer_named_by_unmatched_counts_as_fed(tmp_path):
    text = MINIMAL.replace("consumers:\n", "consumers:\n  leftovers:\n    file: l.jsonl\n")
    config, issues = check(tmp_path, text)
    assert [issue.path for issue in warnings(issues)] == ["consumers.leftovers"]  # control
    config, issues = check(tmp_path, text + "unmatched: leftovers\n")
    assert config is not None
    assert issues == []
    assert config.unmatched == "leftovers"


def test_invalid_route_still_counts_as_feeding_its_consumers(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "    filter: foo ==\n")
    assert config is None
    assert len(errors(issues)) == 1
    assert warnings(issues) == []


# --- ${VAR} -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "environ", "path"),
    [
        pytest.param(
            "out/${EVR_DIR}/a.jsonl", {"EVR_DIR": "logs"}, "out/logs/a.jsonl", id="expanded"
        ),
        pytest.param(
            "${EVR_OUT:-out/default.jsonl}", {}, "out/default.jsonl", id="default-when-unset"
        ),
        pytest.param(
            "${EVR_OUT:-out/default.jsonl}",
            {"EVR_OUT": ""},
            "out/default.jsonl",
            id="default-when-empty",
        ),
        pytest.param(
            "${EVR_OUT:-out/default.jsonl}",
            {"EVR_OUT": "out/set.jsonl"},
            "out/set.jsonl",
            id="default-ignored-when-set",
        ),
        pytest.param(
            "out/$$HOME/a$$b.jsonl", {"HOME": "h"}, "out/$HOME/a$b.jsonl", id="double-dollar"
        ),
    ],
)
def test_env_variables_in_a_file_path(tmp_path, file, environ, path):
    config = valid(tmp_path, with_consumer_options(f"file: {file}\n"), environ)
    assert config.consumers["archive"].options.path == path


@pytest.mark.parametrize(
    ("command", "environ", "argv"),
    [
        pytest.param(
            '[notify, "--token=${EVR_TOKEN}"]',
            {"EVR_TOKEN": "s3cret"},
            ("notify", "--token=s3cret"),
            id="expanded",
        ),
        pytest.param(
            '[echo, "$${X}"]', {"X": "no"}, ("echo", "${X}"), id="double-dollar-before-a-brace"
        ),
    ],
)
def test_env_variables_in_a_command(tmp_path, command, environ, argv):
    config = valid(tmp_path, with_consumer_options(f"command: {command}\n"), environ)
    assert config.consumers["archive"].options.argv == argv


def test_env_variable_in_filter(tmp_path):
    config = valid(
        tmp_path, MINIMAL + "    filter: \"source == '${EVR_SOURCE}'\"\n", {"EVR_SOURCE": "shop"}
    )
    route_filter = config.routes[0].filter
    assert route_filter is not None
    assert route_filter.search({"source": "shop"}) is True
    assert route_filter.search({"source": "other"}) is False


def test_unset_variable_is_an_error_naming_it(tmp_path):
    config, issues = check(tmp_path, with_consumer_options("file: out/${EVR_UNSET}.jsonl\n"), {})
    assert config is None
    error = only_error(issues)
    assert (error.path, error.line, error.column) == ("consumers.archive.file", 4, 11)
    assert "EVR_UNSET" in error.message
    assert "not set" in error.message


def test_environ_defaults_to_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("EVR_FROM_OS", "from-os.jsonl")
    path = write_config(tmp_path, with_consumer_options("file: ${EVR_FROM_OS}\n"))
    config, issues = check_config(path)
    assert issues == []
    assert config is not None
    assert config.consumers["archive"].options.path == "from-os.jsonl"


def test_no_env_turns_unset_variable_into_a_warning(tmp_path):
    text = with_consumer_options('command: "notify --token ${EVR_TOKEN}"\n')
    config, issues = check(tmp_path, text, {}, no_env=True)
    assert config is not None
    (warning,) = issues
    assert warning.severity == "warning"
    assert (warning.path, warning.line, warning.column) == ("consumers.archive.command", 4, 14)
    assert "EVR_TOKEN" in warning.message
    # the variable's name stands in for its value, so the rest of the config is checked
    assert config.consumers["archive"].options.argv == ("notify", "--token", "EVR_TOKEN")
    # the same config without no_env: an error
    config, issues = check(tmp_path, text, {})
    assert config is None
    assert only_error(issues).severity == "error"


def test_no_env_unset_variable_as_whole_argv_word(tmp_path):
    text = with_consumer_options('command: [notify, --token, "${EVR_TOKEN}"]\n')
    config, issues = check(tmp_path, text, {}, no_env=True)
    assert errors(issues) == []
    assert config is not None


def test_malformed_reference_is_an_error(tmp_path):
    config, issues = check(tmp_path, with_consumer_options("file: 'out/${.jsonl'\n"))
    assert config is None
    found = errors(issues)
    assert found
    assert found[0].path == "consumers.archive.file"
    assert (found[0].line, found[0].column) == (4, 11)
    assert "$$" in found[0].message


# --- files that cannot be read or parsed: issues, never exceptions --------------------------


def test_yaml_syntax_error(tmp_path):
    path = write_config(
        tmp_path,
        """\
        version: 1
        consumers:
          archive: {file: x
        routes: []
        """,
    )
    config, issues = check_config(path, environ={})
    assert config is None
    error = only_error(issues)
    assert len(issues) == 1
    assert (error.line, error.column) == (4, 7)
    assert error.message.startswith("YAML syntax:")
    assert error.file == str(path)


def test_yaml_syntax_error_bad_indentation(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "   oops: 1\n")
    assert config is None
    error = only_error(issues)
    assert error.line == 8
    assert error.column >= 1


def test_yaml_unterminated_quote(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "    filter: 'abc\n")
    assert config is None
    assert only_error(issues).message.startswith("YAML syntax:")


def test_multiple_documents_are_an_error(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "---\nversion: 1\n")
    assert config is None
    error = only_error(issues)
    assert error.line == 8


def test_unsupported_tag(tmp_path):
    config, issues = check(tmp_path, with_consumer_options("file: !!binary aGVsbG8=\n"))
    assert config is None
    error = only_error(issues)
    assert (error.line, error.column) == (4, 11)
    assert "unsupported YAML tag" in error.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    config, issues = check(tmp_path, text)
    assert config is None
    error = only_error(issues)
    assert (error.line, error.column) == (1, 1)
    assert "empty" in error.message


@pytest.mark.parametrize("text", ["---\n", "null\n", "~\n"])
def test_document_that_is_null(tmp_path, text):
    config, issues = check(tmp_path, text)
    assert config is None
    assert "the config is empty" in only_error(issues).message


def test_not_utf8(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_bytes(b"version: 1\nconsumers:\n  caf\xe9: {file: x}\n")
    config, issues = check_config(path, environ={})
    assert config is None
    error = only_error(issues)
    assert error.line == 3
    assert "not UTF-8" in error.message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    config, issues = check_config(path, environ={})
    assert config is None
    error = only_error(issues)
    assert error.file == str(path)
    assert (error.line, error.column) == (1, 1)
    assert "cannot read the config" in error.message


def test_directory_instead_of_file(tmp_path):
    config, issues = check_config(tmp_path, environ={})
    assert config is None
    assert "cannot read the config" in only_error(issues).message


def test_control_character_is_an_issue(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "# \x07 bell\n")
    assert config is None
    assert len(errors(issues)) == 1


@pytest.mark.parametrize("tag", ["!!int", "!!float"])
def test_explicit_number_tag_on_a_word_is_an_issue(tmp_path, tag):
    config, issues = check(tmp_path, MINIMAL + f"defaults:\n  buffer: {tag} lots\n")
    assert config is None
    assert errors(issues)
    assert errors(issues)[0].line == 9


def test_recursive_alias_is_an_issue(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "x: &loop [*loop]\n")
    assert config is None
    assert errors(issues)


def test_deep_nesting_is_an_issue(tmp_path):
    config, issues = check(tmp_path, MINIMAL + "x: " + "[" * 2000 + "]" * 2000 + "\n")
    assert config is None
    assert errors(issues)


@pytest.mark.timeout(2)
def test_alias_bomb_is_rejected_quickly(tmp_path):
    lines = ["a0: &a0 [x]"]
    for level in range(1, 7):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    config, issues = check(tmp_path, MINIMAL + "\n".join(lines) + "\n")
    assert config is None
    assert errors(issues)


@pytest.mark.parametrize(
    ("written", "environ", "expected"),
    [
        ("${BUF:-100}", {}, 100),
        ("${BUF}", {"BUF": "0x10"}, 16),
        ('"${BUF:-100}"', {}, "100"),  # quoted: a string, as YAML would have it
    ],
)
def test_a_plain_reference_takes_the_type_its_value_would_have(
    tmp_path, written, environ, expected
):
    text = MINIMAL + f"defaults:\n  buffer: {written}\n"
    config, issues = check(tmp_path, text, environ)
    if isinstance(expected, int):
        assert errors(issues) == []
        assert config.consumers["archive"].queue.buffer == expected
    else:
        assert "expected an integer" in only_error(issues).message


@pytest.mark.parametrize("version", ["1.0", "true", "'1'"])
def test_version_must_be_the_integer_1(tmp_path, version):
    config, issues = check(tmp_path, MINIMAL.replace("version: 1", f"version: {version}"))
    assert config is None
    assert only_error(issues).path == "version"


@pytest.mark.parametrize(
    "option",
    [
        "file: ${OUTDIR}/x.jsonl",
        "file: ${OUT}",
        "buffer: ${BUF}",
        "on_full: ${POLICY}",
    ],
)
def test_no_env_checks_the_rest_of_a_config_without_its_secrets(tmp_path, option):
    text = MINIMAL.replace("    file: out/all.jsonl\n", f"    file: out/all.jsonl\n    {option}\n")
    if option.startswith("file"):
        text = MINIMAL.replace("file: out/all.jsonl", option)
    config, issues = check(tmp_path, text, {}, no_env=True)
    assert errors(issues) == []
    assert [issue.severity for issue in issues] == ["warning"]
    # without --no-env, the same config is an error
    config, issues = check(tmp_path, text, {})
    assert config is None


def test_two_consumers_writing_one_file_is_an_error(tmp_path):
    text = MINIMAL.replace(
        "    file: out/all.jsonl\n",
        "    file: out/all.jsonl\n  copy:\n    file: ./out/../out/all.jsonl\n",
    ).replace("to: archive", "to: [archive, copy]")
    config, issues = check(tmp_path, text)
    assert config is None
    error = only_error(issues)
    assert error.path == "consumers.copy.file"
    assert "'archive' writes this file too" in error.message


def test_dead_letters_cannot_share_a_consumer_file(tmp_path):
    _config, issues = check(tmp_path, MINIMAL + "dead_letter: out/all.jsonl\n")
    assert only_error(issues).path == "dead_letter"


@pytest.mark.parametrize("value", ['"a\\0b"', '["cat", "a\\0b"]'])
def test_nul_characters_are_refused(tmp_path, value):
    text = MINIMAL.replace("file: out/all.jsonl", f"command: {value}")
    _config, issues = check(tmp_path, text)
    assert "NUL" in only_error(issues).message


def test_empty_consumers_section_is_an_error(tmp_path):
    text = "version: 1\nconsumers: {}\nroutes:\n  - {name: r, to: x}\n"
    _config, issues = check(tmp_path, text)
    assert any(issue.path == "consumers" and "empty" in issue.message for issue in issues)


def test_tags_on_collections_are_refused(tmp_path):
    _config, issues = check(tmp_path, MINIMAL + "defaults: !custom {buffer: 5}\n")
    assert "unsupported YAML tag" in only_error(issues).message


def test_control_characters_are_located(tmp_path):
    _config, issues = check(tmp_path, MINIMAL.replace("out/all", "out/a\x01ll"))
    error = only_error(issues)
    assert (error.line, error.column) == (4, 16)
    assert "U+0001" in error.message


# --- supervision, acknowledgements, per-event commands, retries ----------------------------


def test_command_supervision_options_are_read(tmp_path):
    config = valid(
        tmp_path,
        with_consumer_options(
            "command: [cat]\nrestart: {max: 2, backoff: 100ms, max_backoff: 1s}\nack: line\n"
            "retries: 0\n"
        ),
    )
    consumer = config.consumers["archive"]
    assert consumer.options.restart.max == 2
    assert (consumer.options.restart.backoff, consumer.options.restart.max_backoff) == (0.1, 1.0)
    assert consumer.options.ack == "line"
    assert consumer.queue.retries == 0


def test_per_event_options_are_read(tmp_path):
    config = valid(
        tmp_path,
        with_consumer_options(
            "command: cat\nper_event: true\nconcurrency: 4\nkey: detail.id\ntimeout: 2s\n"
        ),
    )
    options = config.consumers["archive"].options
    assert (options.per_event, options.concurrency, options.timeout) == (True, 4, 2.0)
    assert options.key.search({"detail": {"id": 7}}) == 7


@pytest.mark.parametrize(
    ("options", "path", "message"),
    [
        ("command: [cat]\nconcurrency: 2\n", "consumers.archive.concurrency", "per_event: true"),
        ("command: [cat]\nkey: a\n", "consumers.archive.key", "per_event: true"),
        ("command: [cat]\ntimeout: 1s\n", "consumers.archive.timeout", "per_event: true"),
        ("command: [cat]\nper_event: true\nack: line\n", "consumers.archive.ack", "long-running"),
        (
            "command: [cat]\nper_event: true\nrestart: {max: 1}\n",
            "consumers.archive.restart",
            "long-running",
        ),
        ("command: [cat]\nper_event: yes\n", "consumers.archive.per_event", "true or false"),
        ("command: [cat]\nack: always\n", "consumers.archive.ack", "none, line"),
        ("command: [cat]\nrestart: {max: -1}\n", "consumers.archive.restart.max", "at least 0"),
        ("command: [cat]\nrestart: {tries: 1}\n", "consumers.archive.restart.tries", "unknown"),
        (
            "command: [cat]\nrestart: {backoff: 5s, max_backoff: 1s}\n",
            "consumers.archive.restart.backoff",
            "max_backoff",
        ),
        (
            "command: [cat]\nper_event: true\nconcurrency: 0\n",
            "consumers.archive.concurrency",
            "at least 1",
        ),
        ("command: [cat]\nper_event: true\nkey: 'a['\n", "consumers.archive.key", "JMESPath"),
        ("command: [cat]\nper_event: true\ntimeout: 0s\n", "consumers.archive.timeout", "more"),
        ("file: x\nretries: -1\n", "consumers.archive.retries", "at least 0"),
    ],
)
def test_command_options_errors_say_where_and_what(tmp_path, options, path, message):
    config, issues = check(tmp_path, with_consumer_options(options))
    assert config is None
    error = only_error(issues)
    assert error.path == path
    assert message in error.message
