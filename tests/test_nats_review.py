"""Review of the NATS JetStream support (issue 8): each test pins a bug a review found
(each failed before its fix). Real evroute processes against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import orjson
import pytest
from nats_server import (
    NatsServer,
    consumer_info,
    create_stream,
    nats_server_fixture,  # noqa: F401 - the `nats_server` fixture, found by pytest here
    publish,
)
from runs import EVROUTE, run_evroute

STOP_TIMEOUT = 20.0


def write_config(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "routes.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether `predicate` came true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@contextmanager
def running(config: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`evroute run CONFIG` in the config's folder, and the file its stderr goes to;
    stopped at the end (SIGTERM, then SIGKILL) and checked for tracebacks."""
    folder = config.parent
    stderr_path = folder / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*EVROUTE, "run", str(config), "--stats", "off", *options],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "NO_COLOR": "1"},
        )
    try:
        yield process, stderr_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    assert b"Traceback" not in stderr_path.read_bytes()


def validate_errors(folder: Path, body: str) -> list[tuple[str, str]]:
    """(path, message) of each error `evroute validate` finds in the config."""
    config = write_config(folder, body)
    result = run_evroute(["validate", str(config), "--format", "json"], folder)
    report = json.loads(result.stdout)
    return [
        (issue["path"], issue["message"])
        for issue in report["issues"]
        if issue["severity"] == "error"
    ]


def publish_to_nats_consumer(
    server: NatsServer, folder: Path, events: list[dict[str, object]]
) -> tuple[int, list[int]]:
    """Route `events` (from a file) to a `nats` consumer publishing on
    routed.<detail-type> with retries: 0; the exit code and the ids dead-lettered."""
    config = write_config(
        folder,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          bus:
            nats:
              url: {server.url}
              subject: 'routed.{{"detail-type"}}'
              stream: {{name: ROUTED, subjects: ["routed.>"]}}
            retries: 0
        routes: [{{name: all, to: bus}}]
        """,
    )
    (folder / "in.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    result = run_evroute(["run", str(config), "in.jsonl", "--stats", "off"], folder, timeout=30)
    dead = folder / "dead.jsonl"
    lines = dead.read_bytes().splitlines() if dead.exists() else []
    return result.returncode, [json.loads(line)["event"]["id"] for line in lines]


@pytest.mark.timeout(15)
def test_a_too_long_subject_dead_letters_only_its_own_event(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    events: list[dict[str, object]] = [{"id": n, "detail-type": "ok"} for n in range(20)]
    events[5]["detail-type"] = "x" * 5000
    _, dead = publish_to_nats_consumer(nats_server, tmp_path, events)
    assert dead == [5]


@pytest.mark.timeout(15)
def test_an_event_at_max_payload_dead_letters_only_its_own_event(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    events: list[dict[str, object]] = [{"id": n, "detail-type": "ok"} for n in range(20)]
    # under max_event_bytes and nats-server's max_payload (both 1 MiB), but not with
    # the headers the consumer adds
    shell = len(orjson.dumps({"id": 5, "detail-type": "ok", "pad": ""}))
    events[5]["pad"] = "x" * ((1 << 20) - 20 - shell)
    _, dead = publish_to_nats_consumer(nats_server, tmp_path, events)
    assert dead in ([], [5])  # published, or refused alone


def delete_consumer(url: str, stream: str, durable: str) -> None:
    async def main() -> None:
        client = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
        try:
            await client.jetstream().delete_consumer(stream, durable)
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_a_deleted_durable_consumer_is_not_a_silent_stall(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    config = write_config(
        tmp_path,
        f"""
        version: 1
        inputs:
          - name: bus
            nats: {{url: {url}, stream: ORDERS, durable: evroute}}
        consumers:
          all: {{file: out.jsonl}}
        routes: [{{name: all, to: all}}]
        """,
    )
    with running(config) as (process, stderr_path):
        out = tmp_path / "out.jsonl"
        assert wait_for(lambda: consumer_info(url, "ORDERS", "evroute") is not None, 10)
        publish(url, "orders.new", [orjson.dumps({"id": n}) for n in range(10)])
        assert wait_for(lambda: lines_in(out) == 10, 5)
        delete_consumer(url, "ORDERS", "evroute")
        publish(url, "orders.new", [orjson.dumps({"id": n}) for n in range(10, 20)])

        def noticed() -> bool:
            # read on (the consumer made again), or said, or stopped with an error
            said = b"evroute" in stderr_path.read_bytes() or b"consumer" in (
                stderr_path.read_bytes()
            )
            return lines_in(out) == 20 or said or process.poll() not in (None, 0)

        assert wait_for(noticed, 6), "the input stopped reading, and nobody was told"


CONFIG_WITH = """
version: 1
%s
routes: [{name: all, to: all}]
"""
URL = "url: nats://127.0.0.1:4222"
OUT = "consumers: {all: {file: out.jsonl}}"


@pytest.mark.parametrize(
    ("section", "path"),
    [
        # a consumer name with a path separator: the run would fail without a config path
        (
            f'inputs: [{{name: bus, nats: {{{URL}, stream: S, durable: "a/b"}}}}]\n{OUT}',
            "inputs[0].nats.durable",
        ),
        # without durable:, the input's name stands for it, and may hold a '.'
        (
            f"inputs: [{{name: orders.eu, nats: {{{URL}, stream: S}}}}]\n{OUT}",
            "inputs[0].nats.durable",
        ),
        # a filter outside the subjects of the stream the config itself gives
        (
            f"inputs: [{{name: bus, nats: {{{URL}, subject: 'payments.>',"
            f" stream: {{name: S, subjects: ['orders.>']}}}}}}]\n{OUT}",
            "inputs[0].nats.subject",
        ),
        # a consumer subject its stream does not take: every event would be dead-lettered
        (
            f"consumers: {{all: {{nats: {{{URL}, subject: elsewhere.new,"
            f" stream: {{name: S, subjects: ['routed.>']}}}}}}}}",
            "consumers.all.nats.subject",
        ),
    ],
)
def test_validate_refuses_what_the_server_would(tmp_path: Path, section: str, path: str) -> None:
    errors = validate_errors(tmp_path, CONFIG_WITH % section)
    assert [found for found, _ in errors] == [path], errors


@pytest.mark.timeout(15)
def test_no_responders_names_the_subject_published_on(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    create_stream(nats_server.url, "ROUTED", ["routed.>"])
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        consumers:
          bus: {{nats: {{url: {nats_server.url}, subject: elsewhere.new}}, retries: 0}}
        routes: [{{name: all, to: bus}}]
        """,
    )
    (tmp_path / "in.jsonl").write_bytes(b'{"id": 1}\n')
    run_evroute(["run", str(config), "in.jsonl", "--stats", "off"], tmp_path, timeout=30)
    [letter] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert "elsewhere.new" in letter["detail"], letter["detail"]


def test_a_tls_problem_names_the_input_once(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    config = write_config(
        tmp_path,
        """
        version: 1
        inputs:
          - name: bus
            nats: {url: nats://127.0.0.1:4222, stream: ORDERS, tls: {ca: ca.pem}}
        consumers:
          all: {file: out.jsonl}
        routes: [{name: all, to: all}]
        """,
    )
    result = run_evroute(["run", str(config), "--stats", "off"], tmp_path, timeout=30)
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "cannot load the TLS files" in stderr, stderr
    assert "bus: bus:" not in stderr, stderr


def add_durable(url: str, stream: str, durable: str, ack_policy: str) -> None:
    """A pull consumer made by someone else, with the ack policy given."""
    from nats.js.api import AckPolicy, ConsumerConfig

    async def main() -> None:
        client = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
        try:
            await client.jetstream().add_consumer(
                stream, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy(ack_policy))
            )
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_an_existing_durable_with_ack_all_does_not_ack_what_is_held(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    add_durable(url, "ORDERS", "evroute", "all")
    config = write_config(
        tmp_path,
        f"""
        version: 1
        inputs:
          - name: bus
            nats: {{url: {url}, stream: ORDERS, durable: evroute}}
        consumers:
          stuck: {{command: [sleep, "60"], buffer: 10}}
          fast: {{file: out.jsonl}}
        routes:
          - {{name: slow, pattern: {{slow: [true]}}, to: stuck}}
          - {{name: rest, pattern: {{slow: [false]}}, to: fast}}
        """,
    )
    with running(config) as (process, _):
        # events larger than the pipe to `sleep` holds: its writer keeps them in hand
        big = "x" * 100_000
        publish(url, "orders.new", [orjson.dumps({"slow": True, "pad": big}) for _ in range(3)])
        time.sleep(1.5)  # pulled, as a batch of its own
        publish(url, "orders.new", [orjson.dumps({"slow": False, "id": n}) for n in range(5)])
        out = tmp_path / "out.jsonl"
        assert wait_for(lambda: lines_in(out) == 5 or process.poll() is not None, 10)
        time.sleep(1)  # the second batch's acks reach the server
        info = consumer_info(url, "ORDERS", "evroute")
        assert info is not None
        refused = process.poll() == 1  # refusing such a durable at the start will do
        assert refused or info.ack_floor.stream_seq == 0, info.ack_floor


@pytest.mark.timeout(30)
def test_an_existing_push_durable_is_refused_not_spun_on(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    from nats.js.api import AckPolicy, ConsumerConfig

    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])

    async def add_push_durable() -> None:
        client = await nats.connect(url, connect_timeout=5, allow_reconnect=False)
        try:
            await client.jetstream().add_consumer(
                "ORDERS",
                ConsumerConfig(
                    durable_name="evroute",
                    deliver_subject="pushed.here",
                    ack_policy=AckPolicy.EXPLICIT,
                ),
            )
        finally:
            await client.close()

    asyncio.run(add_push_durable())
    publish(url, "orders.new", [orjson.dumps({"id": n}) for n in range(10)])
    config = write_config(
        tmp_path,
        f"""
        version: 1
        inputs:
          - name: bus
            nats: {{url: {url}, stream: ORDERS, durable: evroute}}
        consumers:
          all: {{file: out.jsonl}}
        routes: [{{name: all, to: all}}]
        """,
    )
    with running(config) as (process, stderr_path):
        # refused at the start (exit 1 with a message), or read anyway: not silence
        def answered() -> bool:
            return process.poll() == 1 or lines_in(tmp_path / "out.jsonl") == 10

        assert wait_for(answered, 5), stderr_path.read_text(errors="replace")
        assert process.poll() != 1 or b"push" in stderr_path.read_bytes()


@pytest.mark.timeout(30)
def test_a_subject_filter_over_a_mixed_stream_keeps_batches_whole_and_numbers_exact(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    # orders.a and orders.b by turns: the input reads every second stream sequence
    for n in range(300):
        publish(url, "orders.b", [orjson.dumps({"id": f"b{n}"})])
        payload = b"not json" if n == 100 else orjson.dumps({"id": f"a{n}"})
        publish(url, "orders.a", [payload])
    config = write_config(
        tmp_path,
        f"""
        version: 1
        dead_letter: dead.jsonl
        inputs:
          - name: bus
            nats: {{url: {url}, stream: ORDERS, subject: orders.a, durable: only-a}}
        consumers:
          all: {{file: out.jsonl}}
        routes: [{{name: all, to: all}}]
        """,
    )
    with running(config, "--stats-json", "stats.json"):
        assert wait_for(lambda: lines_in(tmp_path / "out.jsonl") == 299, 15)
    ids = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert ids == [f"a{n}" for n in range(300) if n != 100]
    [letter] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    # the 101st orders.a message is stream sequence 202: b, a, b, a...
    assert (letter["reason"], letter["input"], letter["line"]) == ("malformed", "bus", 202)
    bus = json.loads((tmp_path / "stats.json").read_text())["inputs"]["bus"]
    assert (bus["events"], bus["malformed"], bus["pulled"], bus["acked"]) == (299, 1, 300, 300)
