"""NATS JetStream as input and consumer, on real `evroute run` processes against
a real nats-server on a loopback port: scaling out over a shared durable, a crash, a
server restart, publishing, and what the server refuses or loses. No mocks.

A run with a nats input runs until it is signalled, so each test waits (bounded) until
the server says the durable consumer has every message acknowledged, then sends SIGTERM
and expects 143 (all delivered) before it reads the outputs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import nats_server as harness
import orjson
import pytest
from nats_server import (
    NatsServer,
    add_durable,
    consumer_info,
    create_stream,
    delete_consumer,
    free_port,
    publish,
    read_stream,
    stream_info,
)
from runs import (
    EVROUTE,
    environment,
    lines_in,
    read_jsonl,
    read_stats,
    run_evroute,
    running_evroute,
    start_evroute,
    stop_evroute,
    validate_issues,
    wait_for,
    write_config,
)

TYPES = ("OrderPlaced", "OrderShipped", "PaymentFailed")
DURABLE = "evroute"
MAX_EVENTS = 100_000


@cache
def _events() -> tuple[bytes, ...]:
    return tuple(
        orjson.dumps(
            {
                "version": "0",
                "id": f"ev-{n:07d}",
                "detail-type": TYPES[n * 7 % 11 % 3],
                "source": "shop.orders",
                "time": "2026-11-01T09:00:00Z",
                "detail": {"n": n, "amount": n % 500 + 0.25, "tier": ("gold", "standard")[n % 2]},
            }
        )
        + b"\n"
        for n in range(MAX_EVENTS)
    )


def event_lines(count: int) -> tuple[bytes, ...]:
    """`count` EventBridge-shaped events, each with a unique id, as JSON lines (made once
    for the whole module)."""
    assert count <= MAX_EVENTS
    return _events()[:count]


def ids_of(count: int) -> list[str]:
    return [f"ev-{n:07d}" for n in range(count)]


def input_config(url: str, batch: int = 256, ack_wait: str = "30s", extra: str = "") -> str:
    """One nats input on ORDERS, every event to out.jsonl."""
    return f"""
    version: 1
    inputs:
      - name: bus
        nats:
          url: {url}
          stream: ORDERS
          subject: "orders.>"
          durable: {DURABLE}
          batch: {batch}
          ack_wait: {ack_wait}{extra}
    consumers:
      all: {{file: out.jsonl}}
    routes: [{{name: all, to: all}}]
    """


def output_ids(path: Path, torn_tail: bool = False) -> list[str]:
    """The ids in a JSON-lines output; with `torn_tail`, a last line cut off by kill -9
    is left out (its event was not acknowledged, so it comes again)."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    if lines[-1] == b"" or torn_tail:  # the end of the last line, or a torn last line
        lines.pop()
    return [json.loads(line)["id"] for line in lines]


def all_acknowledged(url: str, total: int) -> Callable[[], bool]:
    """Whether the durable has acknowledged every one of the stream's `total` messages,
    as the server sees it."""

    def check() -> bool:
        info = consumer_info(url, "ORDERS", DURABLE)
        return (
            info is not None
            and info.ack_floor.stream_seq >= total
            and info.num_pending == 0
            and info.num_ack_pending == 0
        )

    return check


class Instances:
    """evroute processes of one test, killed at its end whatever happened."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, config: Path) -> subprocess.Popen[bytes]:
        folder = config.parent
        stats = folder / "stats.json"
        process = start_evroute(["run", config, "--stats", "off", "--stats-json", stats], folder)
        self.processes.append(process)
        return process

    def terminate(self, process: subprocess.Popen[bytes], folder: Path) -> str:
        """SIGTERM, and the run must drain and exit 143; its stderr."""
        stderr = stop_evroute(process, folder)
        assert process.returncode == 128 + signal.SIGTERM, stderr
        return stderr

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def instances() -> Iterator[Instances]:
    running = Instances()
    try:
        yield running
    finally:
        running.kill_all()


def bus_stats(folder: Path) -> dict[str, Any]:
    stats = read_stats(folder / "stats.json")
    bus: dict[str, Any] = stats["inputs"]["bus"]
    return bus


def max_ack_pending(url: str) -> int:
    info = consumer_info(url, "ORDERS", DURABLE)
    assert info is not None
    limit: int = info.config.max_ack_pending
    return limit


# --- the issue's four tests -------------------------------------------------------


def test_two_instances_with_one_durable_share_the_stream_exactly_once(
    nats_server: NatsServer, instances: Instances, tmp_path: Path
) -> None:
    total = 100_000
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    folders = [tmp_path / "a", tmp_path / "b"]
    processes = [instances.start(write_config(folder, input_config(url))) for folder in folders]
    wait_for(lambda: consumer_info(url, "ORDERS", DURABLE) is not None, 20, "the durable made")
    # published while both pull, so that neither has the stream to itself at the start
    assert publish(url, "orders.new", event_lines(total)) == total
    wait_for(all_acknowledged(url, total), 40, "every message acknowledged")
    for process, folder in zip(processes, folders, strict=True):
        instances.terminate(process, folder)

    outputs = [output_ids(folder / "out.jsonl") for folder in folders]
    union = Counter(outputs[0] + outputs[1])
    assert set(union) == set(ids_of(total))
    assert max(union.values()) == 1, [i for i, n in union.items() if n > 1][:10]
    # each did part of the work: at least 1% of it, not a token event
    assert min(len(output) for output in outputs) >= total // 100, [len(o) for o in outputs]
    for folder, output in zip(folders, outputs, strict=True):
        bus = bus_stats(folder)
        assert bus["events"] == bus["acked"] == len(output), bus
        assert bus["pulled"] >= bus["acked"], bus
        assert bus["redelivered"] == 0, bus
        # no `pending` check here: each instance's figure is the server's count at its own
        # last pull, before the other instance took the rest


def test_an_instance_killed_mid_stream_loses_nothing_and_the_other_goes_on(
    nats_server: NatsServer, instances: Instances, tmp_path: Path
) -> None:
    total, batch, window = 60_000, 100, 1000
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    # all published first: the instances read a full stream, so it is surely not read to
    # its end when the victim has routed its first few thousand
    assert publish(url, "orders.new", event_lines(total)) == total
    victim_dir, survivor_dir = tmp_path / "victim", tmp_path / "survivor"
    # a short ack_wait: what the killed instance held is redelivered only after it; a
    # window of max_ack_pending well below the default, to bound the duplicates tightly
    limit = f"\n          max_ack_pending: {window}"
    config = input_config(url, batch=batch, ack_wait="2s", extra=limit)
    victim = instances.start(write_config(victim_dir, config))
    survivor = instances.start(write_config(survivor_dir, config))
    victim_out = victim_dir / "out.jsonl"
    wait_for(
        lambda: victim_out.exists() and victim_out.stat().st_size > 300_000,
        30,
        "the victim routing a part",
    )
    victim.kill()  # SIGKILL: no drain, no acks, no stats
    victim.wait(10)
    left = consumer_info(url, "ORDERS", DURABLE)
    assert left is not None and left.num_pending > 0, "killed after the stream was read"
    wait_for(all_acknowledged(url, total), 40, "every message acknowledged by the survivor")
    instances.terminate(survivor, survivor_dir)

    victim_ids = output_ids(victim_out, torn_tail=True)
    survivor_ids = output_ids(survivor_dir / "out.jsonl")
    assert victim_ids, "the victim routed nothing before it was killed"
    union = Counter(victim_ids + survivor_ids)
    assert set(union) == set(ids_of(total))  # every event at least once
    duplicates = sum(union.values()) - total
    # The bound: an event comes twice only when the victim wrote it and was killed before
    # its ack reached the server. The server never lets more than the durable's
    # max_ack_pending messages be delivered and unacknowledged at once (across both
    # instances), so no more than that many can be written twice. The survivor keeps
    # its own held messages alive with in-progress acks, so it adds none of its own.
    bound = max_ack_pending(url)
    assert bound == window
    assert duplicates <= bound, (duplicates, bound)
    assert max(union.values()) <= 2, union.most_common(3)
    bus = bus_stats(survivor_dir)
    assert bus["events"] == bus["acked"] == len(survivor_ids), bus
    # every duplicate reached the survivor as a redelivery
    assert bus["redelivered"] >= duplicates, (bus, duplicates)
    assert bus["pending"] == 0, bus


def test_a_restarted_server_is_reconnected_to_and_nothing_is_lost(
    nats_server: NatsServer, instances: Instances, tmp_path: Path
) -> None:
    # most of the first part is still to route when the server stops: some of it is
    # held, unacknowledged, across the restart
    before, after = 20_000, 5_000
    total = before + after
    url = nats_server.url
    events = event_lines(total)
    create_stream(url, "ORDERS", ["orders.>"])
    assert publish(url, "orders.new", events[:before]) == before
    folder = tmp_path / "one"
    # the stream written as a mapping: it exists, so it is used as it is
    window = "\n          max_ack_pending: 1000"  # for a tight bound on what comes twice
    config = input_config(url, ack_wait="2s", extra=window).replace(
        "stream: ORDERS", 'stream: {name: ORDERS, subjects: ["orders.>"]}'
    )
    process = instances.start(write_config(folder, config))
    out = folder / "out.jsonl"
    wait_for(lambda: out.exists() and out.stat().st_size > 100_000, 30, "routing under way")
    nats_server.stop()
    time.sleep(1.0)  # an outage the client notices, longer than its reconnect wait
    assert process.poll() is None, (folder / "stderr.txt").read_text()
    nats_server.start()  # same port, same store
    assert publish(url, "orders.new", events[before:]) == after
    wait_for(all_acknowledged(url, total), 40, "every message acknowledged after the restart")
    stderr = instances.terminate(process, folder)

    assert "reconnect" in stderr.lower(), stderr
    union = Counter(output_ids(out))
    assert set(union) == set(ids_of(total))  # nothing lost
    # acks lost with the connection come again: at most the unacknowledged window
    duplicates = sum(union.values()) - total
    assert max_ack_pending(url) == 1000
    assert duplicates <= 1000, duplicates
    bus = bus_stats(folder)
    assert bus["events"] == bus["acked"] == sum(union.values()), bus
    assert bus["redelivered"] >= duplicates, (bus, duplicates)
    assert bus["pending"] == 0, bus


def test_a_nats_consumer_publishes_exactly_the_routed_events_in_order_per_subject(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    total = 100_000
    lines = event_lines(total)
    (tmp_path / "events.jsonl").write_bytes(b"".join(lines))
    config = write_config(
        tmp_path,
        f"""
        version: 1
        consumers:
          routed:
            nats:
              url: {nats_server.url}
              subject: 'routed.{{"detail-type"}}'
              stream: {{name: ROUTED, subjects: ["routed.>"]}}
        routes:
          - {{name: not-shipped, filter: "\\"detail-type\\" != 'OrderShipped'", to: routed}}
        """,
    )
    result = run_evroute(
        ["run", str(config), "events.jsonl", "--stats", "off", "--stats-json", "stats.json"],
        tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()

    expected: dict[str, list[bytes]] = {}
    for line in lines:
        detail_type = orjson.loads(line)["detail-type"]
        if detail_type != "OrderShipped":
            expected.setdefault(f"routed.{detail_type}", []).append(line.rstrip(b"\n"))
    messages = read_stream(nats_server.url, "ROUTED")
    got: dict[str, list[bytes]] = {}
    for message in messages:
        got.setdefault(message.subject, []).append(message.data.rstrip(b"\n"))
    assert sorted(got) == sorted(expected)
    for subject, events in expected.items():
        # exactly these events, as they came, none twice, in input order
        assert len(got[subject]) == len(events), subject
        assert got[subject] == events, subject
    assert stream_info(nats_server.url, "ROUTED").state.messages == sum(map(len, expected.values()))
    consumer = read_stats(tmp_path / "stats.json")["consumers"]["routed"]
    assert consumer["delivered"] == sum(map(len, expected.values())), consumer
    assert consumer["dead_lettered"] == 0, consumer


# --- a nats consumer: what the server refuses -----------------------------------


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
    return result.returncode, [
        letter["event"]["id"] for letter in read_jsonl(folder / "dead.jsonl")
    ]


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
    [letter] = read_jsonl(tmp_path / "dead.jsonl")
    assert "elsewhere.new" in letter["detail"], letter["detail"]


# --- a nats input: durables deleted or made by others, a subject filter ------------


def durable_input_config(url: str) -> str:
    """One nats input on ORDERS with the durable `evroute`, every event to out.jsonl."""
    return f"""
    version: 1
    inputs:
      - name: bus
        nats: {{url: {url}, stream: ORDERS, durable: evroute}}
    consumers:
      all: {{file: out.jsonl}}
    routes: [{{name: all, to: all}}]
    """


@pytest.mark.timeout(30)
def test_a_deleted_durable_consumer_is_not_a_silent_stall(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    config = write_config(tmp_path, durable_input_config(url))
    stderr_path = tmp_path / "stderr.txt"
    with running_evroute(["run", config, "--stats", "off"], tmp_path) as process:
        out = tmp_path / "out.jsonl"
        wait_for(lambda: consumer_info(url, "ORDERS", "evroute") is not None, 10, "the durable")
        publish(url, "orders.new", [orjson.dumps({"id": n}) for n in range(10)])
        wait_for(lambda: lines_in(out) == 10, 5, "the first 10 events routed")
        delete_consumer(url, "ORDERS", "evroute")
        publish(url, "orders.new", [orjson.dumps({"id": n}) for n in range(10, 20)])

        def noticed() -> bool:
            # read on (the consumer made again), or said, or stopped with an error
            said = b"evroute" in stderr_path.read_bytes() or b"consumer" in (
                stderr_path.read_bytes()
            )
            return lines_in(out) == 20 or said or process.poll() not in (None, 0)

        wait_for(noticed, 6, "the input stopped reading, and nobody was told")


@pytest.mark.timeout(30)
def test_an_existing_push_durable_is_refused_not_spun_on(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    add_durable(url, "ORDERS", "evroute", "explicit", deliver_subject="pushed.here")
    publish(url, "orders.new", [orjson.dumps({"id": n}) for n in range(10)])
    config = write_config(tmp_path, durable_input_config(url))
    stderr_path = tmp_path / "stderr.txt"
    with running_evroute(["run", config, "--stats", "off"], tmp_path) as process:
        # refused at the start (exit 1 with a message), or read anyway: not silence
        def answered() -> bool:
            return process.poll() == 1 or lines_in(tmp_path / "out.jsonl") == 10

        wait_for(answered, 5, lambda: stderr_path.read_text(errors="replace"))
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
    run = ["run", config, "--stats", "off", "--stats-json", "stats.json"]
    with running_evroute(run, tmp_path):
        wait_for(lambda: lines_in(tmp_path / "out.jsonl") == 299, 15, "299 events routed")
    ids = [event["id"] for event in read_jsonl(tmp_path / "out.jsonl")]
    assert ids == [f"a{n}" for n in range(300) if n != 100]
    [letter] = read_jsonl(tmp_path / "dead.jsonl")
    # the 101st orders.a message is stream sequence 202: b, a, b, a...
    assert (letter["reason"], letter["input"], letter["line"]) == ("malformed", "bus", 202)
    bus = json.loads((tmp_path / "stats.json").read_text())["inputs"]["bus"]
    assert (bus["events"], bus["malformed"], bus["pulled"], bus["acked"]) == (299, 1, 300, 300)


# --- errors at the start ----------------------------------------------------------


def test_a_server_not_reachable_at_start_is_a_clear_error(tmp_path: Path) -> None:
    """For an input and for a consumer; both runs at once, as each mostly waits for its
    connect timeout."""
    ports = {"input": free_port(), "consumer": free_port()}  # nobody listens there
    urls = {side: f"nats://127.0.0.1:{port}" for side, port in ports.items()}
    bodies = {
        "input": input_config(urls["input"]),
        "consumer": f"""
        version: 1
        consumers:
          routed: {{nats: {{url: {urls["consumer"]}, subject: routed.all}}}}
        routes: [{{name: all, to: routed}}]
        """,
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    try:
        for side, body in bodies.items():
            config = write_config(tmp_path / side, body)
            processes[side] = subprocess.Popen(
                [*EVROUTE, "run", str(config), "--stats", "off"],
                cwd=config.parent,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=environment(),
            )
        results = {
            side: process.communicate(b'{"id": 1}\n', timeout=30)[1].decode()
            for side, process in processes.items()
        }
        took = time.monotonic() - started
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
    for side, stderr in results.items():
        assert "Traceback" not in stderr, stderr
        assert processes[side].returncode == 1, (side, stderr)
        assert f"127.0.0.1:{ports[side]}" in stderr, (side, stderr)  # says where it tried
    assert took < 15, took


def test_a_missing_stream_named_without_subjects_is_a_clear_error(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, input_config(nats_server.url))
    started = time.monotonic()
    result = run_evroute(["run", str(config), "--stats", "off"], tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "ORDERS" in stderr, stderr
    assert time.monotonic() - started < 15


# --- validate ---------------------------------------------------------------------


def test_validate_accepts_the_nats_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_PASSWORD", "s3cret")
    code, issues = validate_issues(
        tmp_path,
        """
        version: 1
        inputs:
          - name: bus
            nats:
              url: [nats://127.0.0.1:4222, nats://127.0.0.1:4223]
              stream: {name: ORDERS, subjects: ["orders.>"]}
              subject: "orders.>"
              durable: evroute
              batch: 256
              ack_wait: 30s
              user: router
              password: ${NATS_PASSWORD}
          - name: other
            nats: {url: nats://127.0.0.1:4222, stream: PAYMENTS}
        consumers:
          routed:
            nats:
              url: nats://127.0.0.1:4222
              subject: 'routed.{"detail-type"}'
              stream: ROUTED
        routes: [{name: all, to: routed}]
        """,
    )
    assert code == 0, issues
    assert [issue for issue in issues if issue[0] == "error"] == []


def test_validate_points_at_a_bad_nats_key_by_its_path(tmp_path: Path) -> None:
    code, issues = validate_issues(
        tmp_path,
        """
        version: 1
        inputs:
          - name: bus
            nats:
              url: nats://127.0.0.1:4222
              stream: ORDERS
              durabel: evroute
              batch: many
        consumers:
          routed:
            nats: {url: nats://127.0.0.1:4222, subjet: routed.all}
        routes: [{name: all, to: routed}]
        """,
    )
    assert code == 1
    errors = {
        path: (line, message) for severity, path, line, message in issues if severity == "error"
    }
    assert "inputs[0].nats.durabel" in errors, issues
    assert errors["inputs[0].nats.durabel"][0] == 8
    assert "durable" in errors["inputs[0].nats.durabel"][1]  # did you mean
    assert errors["inputs[0].nats.batch"][0] == 9, issues
    assert "consumers.routed.nats.subjet" in errors, issues
    assert errors["consumers.routed.nats.subjet"][0] == 12


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
    _, issues = validate_issues(tmp_path, CONFIG_WITH % section)
    errors = [(found, message) for severity, found, _, message in issues if severity == "error"]
    assert [found for found, _ in errors] == [path], errors


# --- the harness itself -----------------------------------------------------------


def test_without_nats_server_the_tests_skip_but_fail_where_it_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(harness, "find_nats_server", lambda: None)
    monkeypatch.delenv("EVROUTE_REQUIRE_NATS", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"\(Debian package nats-server\)"):
        harness.require_nats_server()
    monkeypatch.setenv("EVROUTE_REQUIRE_NATS", "1")  # as .ci/run sets it
    with pytest.raises(pytest.fail.Exception, match="nats-server is not installed"):
        harness.require_nats_server()
