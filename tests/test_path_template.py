"""Templated file paths: the rules for values, no way out of the folder, an LRU of
open files bounded by max_open_files, and the file sink's per-file writes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runs import EVROUTE, write_config

import evroute.storage.fileio as fileio
from evroute.config.model import ConsumerConfig, QueueSettings
from evroute.loading import check_config
from evroute.shaping.templates import (
    TemplateError,
    TemplateSyntaxError,
    parse,
    read_payload,
    safe_value,
)
from evroute.sinks.file import FileOptions, FileSink


def render(template: str, event: object) -> str:
    return parse(template).render(event)


def run(folder: Path, config: str, events: list[object], stats: str = "off", **kwargs: object):
    """`evroute run` of `config` over `events`, as JSON lines on its stdin."""
    path = write_config(folder, config)
    lines = b"".join(json.dumps(event).encode() + b"\n" for event in events)
    return subprocess.run(
        [*EVROUTE, "run", str(path), "--stats", stats],
        input=lines,
        capture_output=True,
        timeout=120,
        **kwargs,  # type: ignore[call-overload]
    )


def sink(folder: Path, template: str, mode: str = "append", max_open: int = 256, retries=3):
    options = FileOptions(template, mode, parse(template), max_open)
    return FileSink(
        ConsumerConfig("split", "file", options, QueueSettings(retries=retries)), folder
    )


# --- the rules for values (README: templated paths) ------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("OrderPlaced", "OrderPlaced"),  # strings as they are
        ("héllo wörld", "héllo wörld"),
        (42, "42"),  # numbers as JSON
        (-1.5, "-1.5"),
        (2**70, "1180591620717411303424"),  # exactly, beyond 64 bits
        (True, "true"),  # booleans as JSON
        (False, "false"),
        (None, "_"),  # null as _
        ({"a": [1, "b"]}, '{"a":[1,"b"]}'),  # objects and arrays as compact JSON
        ([1, 2], "[1,2]"),
        ("a/b\\c", "a_b_c"),  # / and \ become _
        ("a\x00b\nc\x1fd\x7fe\x85f", "a_b_c_d_e_f"),  # NUL and control characters
        (".", "_"),  # a value of . or .. becomes _
        ("..", "_"),
        ("...", "..."),  # not a way up: left as it is
        ("../../etc/x", ".._.._etc_x"),
        ("/etc/passwd", "_etc_passwd"),
        ({"k": "/"}, '{"k":"_"}'),  # the compact JSON is made safe too
    ],
)
def test_values_follow_the_rules(value: object, expected: str) -> None:
    assert safe_value(value) == expected


def test_a_missing_value_is_an_underscore() -> None:
    assert render("out/{source}/{detail.kind}.jsonl", {"detail": {}}) == "out/_/_.jsonl"


def test_values_are_cut_to_200_bytes_on_a_character_boundary() -> None:
    assert safe_value("x" * 300) == "x" * 200
    cut = safe_value("x" * 199 + "é" * 10)  # é is 2 bytes: the one across byte 200 goes
    assert cut == "x" * 199 and len(cut.encode()) <= 200


def test_a_json_number_beyond_64_bits_names_its_file_exactly() -> None:
    value = read_payload(b'{"id": 1180591620717411303424}')
    assert render("{id}", value) == "1180591620717411303424"


def test_values_that_end_up_equal_share_a_file() -> None:
    assert render("out/{v}", {"v": "a/b"}) == render("out/{v}", {"v": "a\\b"}) == "out/a_b"


def test_names_joined_from_several_values_cannot_make_a_way_up() -> None:
    """`{a}{b}` or an empty string could join into `..` or an empty folder name."""
    assert render("out/{a}{b}/x", {"a": "", "b": ""}) == "out/_/x"
    assert render("out/.{a}/x", {"a": "."}) == "out/._/x"
    assert render("out/.{a}/x", {"a": ""}) == "out/_/x"
    assert render("out/{a}/x", {"a": ""}) == "out/_/x"


# --- parsing ----------------------------------------------------------------------------------


def test_doubled_braces_are_literal_braces() -> None:
    assert render("out/{{x}}-{v}.jsonl", {"v": 1}) == "out/{x}-1.jsonl"
    assert render("{{{v}}}", {"v": "a"}) == "{a}"


def test_expressions_may_hold_braces_and_quoted_text() -> None:
    assert render('out/{"detail-type"}.jsonl', {"detail-type": "A"}) == "out/A.jsonl"
    assert render("out/{ {k: v} }", {"v": 1}) == 'out/{"k":1}'
    assert render("out/{'}{'}", {}) == "out/}{"
    assert render("out/{join('/', [a, b])}", {"a": "x", "b": "y"}) == "out/x_y"


@pytest.mark.parametrize(
    ("template", "position", "message"),
    [
        ("out/{source.jsonl", 4, "never closed"),
        ("out/source}.jsonl", 10, "without its '{'"),
        ("out/{}.jsonl", 4, "empty expression"),
        ("out/{source.}.jsonl", 12, "invalid JMESPath"),
        ("out/{nope(a)}.jsonl", 5, "unknown function"),
    ],
)
def test_bad_templates_say_where(template: str, position: int, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as raised:
        parse(template)
    assert raised.value.position == position
    assert message in raised.value.message


def test_an_expression_that_fails_for_an_event_says_which() -> None:
    with pytest.raises(TemplateError, match=r"\{length\(v\)\} failed: invalid-type"):
        render("out/{length(v)}.jsonl", {})


# --- the config -------------------------------------------------------------------------------


def check(folder: Path, consumers: str, dead_letter: str = "null"):
    text = f"version: 1\ndead_letter: {dead_letter}\nconsumers:\n{consumers}"
    text += "routes:\n  - name: all\n    to: [a, b]\n"
    config, issues = check_config(write_config(folder, text))
    return config, [(i.severity, i.line, i.column, i.path, i.message) for i in issues]


def test_a_template_is_read_with_its_max_open_files(tmp_path: Path) -> None:
    config, issues = check(
        tmp_path,
        "  a: {file: 'out/{source}.jsonl', max_open_files: 64}\n  b: {file: b.jsonl}\n",
    )
    assert issues == []
    assert config is not None
    options = config.consumers["a"].options
    assert (options.max_open_files, options.template.text) == (64, "out/{source}.jsonl")
    assert config.consumers["b"].options.template is None


def test_a_bad_expression_is_located_in_the_config(tmp_path: Path) -> None:
    _, issues = check(tmp_path, "  a: {file: 'out/{source.}.jsonl'}\n  b: {file: b}\n")
    [(severity, line, column, path, message)] = issues
    # line 4 is `  a: {file: 'out/{source.}.jsonl'}`: the quote is column 13, and the
    # expression is cut short at the `}` at position 12 of the template
    assert (severity, line, column, path) == ("error", 4, 13 + 1 + 12, "consumers.a.file")
    assert "invalid JMESPath in {source.}" in message


def test_unbalanced_braces_are_located_in_the_config(tmp_path: Path) -> None:
    _, issues = check(tmp_path, "  a:\n    file: out/x}.jsonl\n  b: {file: b}\n")
    [(severity, line, column, path, message)] = issues
    assert (severity, line, column, path) == ("error", 5, 11 + 5, "consumers.a.file")
    assert "without its '{'" in message


def test_max_open_files_is_at_least_1(tmp_path: Path) -> None:
    _, issues = check(tmp_path, "  a: {file: 'o/{x}', max_open_files: 0}\n  b: {file: b}\n")
    assert [(i[0], i[3]) for i in issues] == [("error", "consumers.a.max_open_files")]
    assert "at least 1" in issues[0][4]


def test_max_open_files_without_a_template_is_a_warning(tmp_path: Path) -> None:
    config, issues = check(tmp_path, "  a: {file: o.jsonl, max_open_files: 9}\n  b: {file: b}\n")
    assert config is not None
    assert [(i[0], i[3]) for i in issues] == [("warning", "consumers.a.max_open_files")]


def test_the_same_template_twice_is_an_error(tmp_path: Path) -> None:
    _, issues = check(tmp_path, "  a: {file: 'out/{x}.jsonl'}\n  b: {file: 'out/./{y}.jsonl'}\n")
    [(severity, line, _, path, message)] = issues
    assert (severity, line, path) == ("error", 5, "consumers.b.file")
    assert "consumer 'a' writes these files too" in message


def test_a_literal_file_a_template_could_name_is_a_warning(tmp_path: Path) -> None:
    config, issues = check(
        tmp_path, "  a: {file: 'out/{x}.jsonl'}\n  b: {file: out/all.jsonl}\n", "out/dead.jsonl"
    )
    assert config is not None
    assert [(i[0], i[3]) for i in issues] == [("warning", "consumers.a.file")] * 2
    assert "'out/all.jsonl', which consumer 'b' writes" in issues[0][4]
    assert "'out/dead.jsonl', which the dead letter file writes" in issues[1][4]


def test_literal_files_a_template_cannot_name_are_fine(tmp_path: Path) -> None:
    config, issues = check(
        tmp_path, "  a: {file: 'out/{x}.jsonl'}\n  b: {file: out/a/b.jsonl}\n", "out/dead.txt"
    )
    assert (config is not None, issues) == (True, [])


def test_literal_paths_that_are_the_same_file_are_still_an_error(tmp_path: Path) -> None:
    _, issues = check(
        tmp_path, "  a: {file: 'out/{{x}}.jsonl'}\n  b: {file: 'out/./{{x}}.jsonl'}\n"
    )
    assert [(i[0], i[3]) for i in issues] == [("error", "consumers.b.file")]


# --- writing ----------------------------------------------------------------------------------


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


HOSTILE = [
    "../../etc/x",
    "/etc/passwd",
    "..",
    ".",
    "",
    "a\x00b",
    "line\nbreak",
    "\\..\\..\\x",
    "x" * 300,
    {"path": "../../x"},
    ["..", "/"],
]


def test_hostile_values_stay_inside_the_folder(tmp_path: Path) -> None:
    config = """\
        version: 1
        consumers:
          split: {file: 'out/{v}/{w}.jsonl'}
        routes: [{name: all, to: split}]
        """
    events = [{"v": value, "w": value} for value in HOSTILE]
    result = run(tmp_path, config, events)
    assert result.returncode == 0, result.stderr.decode()
    out = (tmp_path / "out").resolve()
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert sorted(p.name for p in written if out not in p.resolve().parents) == ["routes.yaml"]
    files = [path for path in written if out in path.resolve().parents]
    for path in files:  # each file is two levels down: out/V/W.jsonl
        assert path.resolve().parent.parent == out
        assert len(path.resolve().parent.name.encode()) <= 200
    assert sorted(str(path.relative_to(out)) for path in files) == sorted(
        [
            ".._.._etc_x/.._.._etc_x.jsonl",
            "_etc_passwd/_etc_passwd.jsonl",
            "_/_.jsonl",  # "." and ".." share it
            "_/.jsonl",  # "": an empty folder name becomes _ too
            "a_b/a_b.jsonl",
            "line_break/line_break.jsonl",
            "_.._.._x/_.._.._x.jsonl",
            f"{'x' * 200}/{'x' * 200}.jsonl",
            '{"path":".._.._x"}/{"path":".._.._x"}.jsonl',
            '["..","_"]/["..","_"].jsonl',
        ]
    )
    lines = sorted(line for path in files for line in path.read_bytes().splitlines())
    assert lines == sorted(json.dumps({"v": v, "w": v}).encode() for v in HOSTILE)


def test_an_absolute_template_stays_in_its_own_folder(tmp_path: Path) -> None:
    folder = tmp_path / "abs"
    config = f"""\
        version: 1
        consumers:
          split: {{file: '{folder}/{{v}}.jsonl'}}
        routes: [{{name: all, to: split}}]
        """
    result = run(tmp_path, config, [{"v": "../../../../tmp/escape"}, {"v": "/etc/passwd"}])
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(files_under(folder)) == [".._.._.._.._tmp_escape.jsonl", "_etc_passwd.jsonl"]


def test_a_batch_is_written_with_one_write_per_file_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = fileio.os.write
    writes: list[bytes] = []

    def counting_write(fd: int, data: memoryview) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(fileio.os, "write", counting_write)
    split = sink(tmp_path, "out/{k}.jsonl")
    payloads = [b'{"k":"a","n":%d}' % n if n % 3 else b'{"k":"b","n":%d}' % n for n in range(9)]
    assert split.write(payloads) == []
    split.close(0)
    assert len(writes) == 2
    assert files_under(tmp_path) == {
        "out/a.jsonl": b"".join(p + b"\n" for p in payloads if b'"a"' in p),
        "out/b.jsonl": b"".join(p + b"\n" for p in payloads if b'"b"' in p),
    }


def test_the_lru_keeps_at_most_max_open_files_open(tmp_path: Path) -> None:
    split = sink(tmp_path, "out/{n}.jsonl", max_open=8)
    before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else None
    most = 0
    for start in range(0, 200, 10):
        assert split.write([b'{"n":%d}' % n for n in range(start, start + 10)]) == []
        most = max(most, len(split._open_files))
        if before is not None:
            assert len(os.listdir("/proc/self/fd")) <= before + 8
    assert most == 8
    split.close(0)
    assert len(files_under(tmp_path)) == 200


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("append", b"old\na1\na2\na3\n"), ("overwrite", b"a1\na2\na3\n")],
)
def test_a_file_reopened_after_eviction_is_appended_to(
    tmp_path: Path, mode: str, expected: bytes
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_bytes(b"old\n")
    split = sink(tmp_path, "out/{k}", mode, max_open=1)
    for batch in ([b'{"k":"a","n":1}', b'{"k":"b"}'], [b'{"k":"a","n":2}'], [b'{"k":"c"}']):
        assert split.write(batch) == []
    assert split.write([b'{"k":"a","n":3}']) == []
    split.close(0)
    lines = (tmp_path / "out" / "a").read_bytes().replace(b'{"k":"a","n":', b"a")
    assert lines.replace(b"}", b"") == expected


def test_overwrite_truncates_again_in_the_next_run(tmp_path: Path) -> None:
    for n in (1, 2):
        split = sink(tmp_path, "out/{k}", "overwrite", max_open=1)
        assert split.write([b'{"k":"a","n":%d}' % n, b'{"k":"b"}', b'{"k":"a","n":%d}' % n]) == []
        split.close(0)
    assert (tmp_path / "out" / "a").read_bytes() == b'{"k":"a","n":2}\n' * 2


def test_a_file_that_cannot_be_opened_fails_only_its_events(tmp_path: Path) -> None:
    (tmp_path / "out" / "b.jsonl").mkdir(parents=True)  # a folder where the file should be
    split = sink(tmp_path, "out/{k}.jsonl")
    failures = split.write([b'{"k":"a"}', b'{"k":"b"}', b'{"k":"a"}', b'{"k":"b"}'])
    split.close(0)
    assert failures == [
        (index, "delivery_failed", "cannot open out/b.jsonl: Is a directory (1 attempt)")
        for index in (1, 3)
    ]
    assert (tmp_path / "out" / "a.jsonl").read_bytes() == b'{"k":"a"}\n' * 2


def test_a_failing_write_is_retried_then_fails_only_its_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = fileio.os.write
    calls = {"b": 0}

    def full_for_b(fd: int, data: memoryview) -> int:
        if b'"b"' in bytes(data):
            calls["b"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(fileio.os, "write", full_for_b)
    monkeypatch.setattr("evroute.sinks.base.RETRY_BACKOFF_S", 0.01)
    split = sink(tmp_path, "{k}", retries=2)
    failures = split.write([b'{"k":"a"}', b'{"k":"b"}', b'{"k":"a"}'])
    split.close(0)
    assert calls["b"] == 3
    assert failures == [
        (1, "delivery_failed", "cannot write b: No space left on device (3 attempts)")
    ]
    assert files_under(tmp_path) == {"a": b'{"k":"a"}\n' * 2, "b": b""}


def test_an_expression_error_dead_letters_that_event_and_the_rest_go_on(tmp_path: Path) -> None:
    config = """\
        version: 1
        dead_letter: dead.jsonl
        consumers:
          split: {file: 'out/{length(v)}.jsonl'}
        routes: [{name: all, to: split}]
        """
    result = run(tmp_path, config, [{"v": "ab"}, {"n": 1}, {"v": [1, 2, 3]}])
    assert result.returncode == 3, result.stderr.decode()
    assert sorted(files_under(tmp_path / "out")) == ["2.jsonl", "3.jsonl"]
    [letter] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert (letter["reason"], letter["event"], letter["consumer"]) == (
        "delivery_failed",
        {"n": 1},
        "split",
    )
    assert letter["detail"].startswith("path template: {length(v)} failed: invalid-type")


def test_with_a_transform_the_template_sees_what_is_delivered(tmp_path: Path) -> None:
    config = """\
        version: 1
        consumers:
          split: {file: 'out/{kind}.jsonl'}
        routes: [{name: all, transform: '{kind: type, id: id}', to: split}]
        """
    result = run(tmp_path, config, [{"type": "a", "id": 1}, {"type": "b", "id": 2}])
    assert result.returncode == 0, result.stderr.decode()
    assert files_under(tmp_path / "out") == {
        "a.jsonl": b'{"kind":"a","id":1}\n',
        "b.jsonl": b'{"kind":"b","id":2}\n',
    }


# --- 100,000 files within the process's file limit --------------------------------------------


@pytest.fixture
def fast_folder() -> Iterator[Path]:
    """A folder in memory where there is one: creating 100,000 files is then quick."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="evroute-test-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def lower_file_limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_100000_files_within_a_file_limit_of_128(fast_folder: Path) -> None:
    count = 100_000
    config = """\
        version: 1
        consumers:
          split: {file: 'out/{id}.jsonl', max_open_files: 64, mode: overwrite}
        routes: [{name: all, to: split}]
        """
    # every value twice, far apart: the second write reopens an evicted file
    events = [{"id": n} for n in range(count)] + [{"id": n} for n in range(0, count, 1000)]
    result = run(
        fast_folder,
        config,
        events,
        stats="json",
        preexec_fn=lower_file_limit,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    stats = json.loads(result.stderr.decode().strip().splitlines()[-1])["consumers"]["split"]
    assert (stats["delivered"], stats["dead_lettered"]) == (len(events), 0)
    out = fast_folder / "out"
    names = os.listdir(out)
    assert len(names) == count
    assert (out / "0.jsonl").read_bytes() == b'{"id": 0}\n' * 2
    assert (out / "1.jsonl").read_bytes() == b'{"id": 1}\n'
    assert (out / "99999.jsonl").read_bytes() == b'{"id": 99999}\n'
