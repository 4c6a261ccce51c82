"""Publish policy as a library: who may publish which event sources."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from runs import run_evroute

from evroute.config.model import Config, InputConfig
from evroute.shaping.publish_policy import CACHE_LIMIT, PublishPolicies, PublishPolicy
from evroute.sources.file import FileInputOptions, glob_files
from evroute.sources.producers import Handoff
from evroute.sources.stdin import StdinOptions


def test_exact_sources_and_globs() -> None:
    policy = PublishPolicy("orders", ("com.shop.orders", "com.shop.pay.*", "x?"))
    assert policy.refusal("com.shop.orders") is None
    assert policy.refusal("com.shop.pay.card") is None
    assert policy.refusal("xy") is None
    refused = policy.refusal("com.shop.ordersX")
    assert refused == (
        "producer orders: it may not publish source 'com.shop.ordersX'"
        " (publish: com.shop.orders, com.shop.pay.*, x?)"
    )
    assert policy.refusal("com.shop.pay") is not None  # the glob needs the dot and more


@pytest.mark.parametrize("source", [None, 5, ["com.shop.orders"], {"a": 1}, True])
def test_a_source_that_is_no_string_is_refused(source: object) -> None:
    refused = PublishPolicy("orders", ("*",)).refusal(source)
    assert refused is not None
    assert "the event has" in refused


def test_an_empty_list_publishes_nothing() -> None:
    assert PublishPolicy("quiet", ()).refusal("anything") is not None


def test_judgements_are_cached_within_bounds() -> None:
    policy = PublishPolicy("p", ("a*",))
    for n in range(CACHE_LIMIT + 100):
        assert (policy.refusal(f"a{n}") is None) and (policy.refusal(f"b{n}") is not None)
    assert len(policy._judged) == CACHE_LIMIT


def config(tmp_path: Path, *inputs: InputConfig) -> Config:
    return Config(path=tmp_path / "c.yaml", base_dir=tmp_path, inputs=list(inputs))


def identity(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def test_glob_characters_in_the_config_folder_are_taken_literally(tmp_path: Path) -> None:
    folder = tmp_path / "proj[1]"
    (folder / "data").mkdir(parents=True)
    (tmp_path / "proj1" / "data").mkdir(parents=True)
    (folder / "data" / "mine.jsonl").write_text("")
    (tmp_path / "proj1" / "data" / "other.jsonl").write_text("")
    files = InputConfig("files", "file", FileInputOptions("data/*.jsonl"), publish=("shop",))
    policies = PublishPolicies(config(folder, files))
    assert glob_files(folder, "data/*.jsonl") == [str(folder / "data" / "mine.jsonl")]
    other = policies.of_input("x", identity(tmp_path / "proj1" / "data" / "other.jsonl"))
    assert other is not None and other.refusal("shop") is not None


def test_without_any_list_nothing_is_checked(tmp_path: Path) -> None:
    policies = PublishPolicies(config(tmp_path, InputConfig("a", "stdin", StdinOptions())))
    assert policies.of_input("x.jsonl", (1, 2)) is None
    assert policies.of_producer(InputConfig("a", "stdin", StdinOptions())) is None


def test_deny_by_default_once_any_producer_has_a_list(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text("")
    files = InputConfig("files", "file", FileInputOptions("in/*.jsonl"), publish=("shop",))
    terminal = InputConfig("terminal", "stdin", StdinOptions())
    policies = PublishPolicies(config(tmp_path, files, terminal))
    matched = policies.of_input("in/a.jsonl", identity(tmp_path / "in" / "a.jsonl"))
    assert matched is not None and matched.refusal("shop") is None
    # the same file by another way: through a symlinked folder, with `..` in it
    (tmp_path / "link").symlink_to(tmp_path / "in")
    again = policies.of_input("link/../in/a.jsonl", identity(tmp_path / "link" / "a.jsonl"))
    assert again is not None and again.refusal("shop") is None
    stranger = policies.of_input("b.jsonl", identity(tmp_path / "b.jsonl"))
    assert stranger is not None
    assert "matches no producer" in (stranger.refusal("shop") or "")
    stdin = policies.of_input("-", None)
    assert stdin is not None
    assert "producer terminal has no publish list" in (stdin.refusal("shop") or "")


def test_handoff_bounds_givers_and_wakes_the_taker() -> None:
    handoff = Handoff(capacity=2)
    given: list[int] = []

    def give() -> None:
        for n in range(5):
            assert handoff.put((None, None, n))  # type: ignore[arg-type]
            given.append(n)

    thread = threading.Thread(target=give)
    thread.start()
    taken: list[object] = []
    while len(taken) < 5:
        items = handoff.take(None)
        assert items is not None
        assert len(items) <= 2  # never more than its capacity waits
        taken.extend(items)
    thread.join(5)
    assert [item[2] for item in taken] == list(range(5))  # type: ignore[index]
    handoff.close()
    assert handoff.put("late") is False


def test_handoff_take_returns_none_on_the_wakeup_pipe() -> None:
    import os

    handoff = Handoff()
    read, write = os.pipe()
    try:
        os.write(write, b"!")
        assert handoff.take(read) is None
    finally:
        handoff.close()
        os.close(read)
        os.close(write)


def test_a_redrive_under_a_policy_leaves_denied_letters_out(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(
        b'{"source":"shop","n":1}\n{"source":"evil","n":2}\n{"source":"shop","n":3}\n'
    )
    config = tmp_path / "routes.yaml"
    body = (
        "version: 1\ndead_letter: dead.jsonl\n"
        "inputs:\n  - {name: files, file: 'in/*.jsonl', publish: [shop]}\n"
        "consumers:\n  out: {file: out.jsonl}\n"
        "  fussy: {command: [./no-such-command], restart: {max: 0}}\n"
        "routes:\n  - {name: all, to: TARGET}\n"
    )
    config.write_text(body.replace("TARGET", "fussy"))
    first = run_evroute(["run", "routes.yaml", "--stats", "off"], tmp_path, timeout=60)
    assert first.returncode == 3, first.stderr.decode()
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert sorted(letter["reason"] for letter in letters) == [
        "delivery_failed",
        "delivery_failed",
        "denied",
    ]
    (tmp_path / "dead.jsonl").rename(tmp_path / "redrive.jsonl")
    config.write_text(body.replace("TARGET", "out"))
    replay = ["replay", "routes.yaml", "--dead-letters", "redrive.jsonl", "--stats", "off"]
    redrive = run_evroute(replay, tmp_path, timeout=60)
    assert redrive.returncode == 0, redrive.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == (
        b'{"source":"shop","n":1}\n{"source":"shop","n":3}\n'
    )
    assert "1 dead letter of denied events not replayed" in redrive.stderr.decode()
