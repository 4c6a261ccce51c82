"""What a nats input does while its consumers hold events: a consumer that stops reading
does not stop the input (its events spill, synced, and are acked), and messages held
longer than ack_wait get in-progress acks instead of coming again, and a durable made
with ack policy `all` does not let a later ack take in what is held. Real evroute
processes against a real nats-server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from nats_server import (
    NatsServer,
    add_durable,
    consumer_info,
    create_stream,
    publish,
    read_stream,
)
from runs import (
    lines_in,
    read_jsonl,
    read_stats,
    run_evroute,
    running_evroute,
    start_evroute,
    stop_evroute,
    wait_for,
    write_config,
)


def events(count: int) -> list[bytes]:
    return [orjson.dumps({"id": n, "source": "shop", "pad": "x" * 100}) for n in range(count)]


def start(folder: Path, body: str) -> subprocess.Popen[bytes]:
    """`evroute run` of `body` in `folder`, its stats to stats.json when it stops."""
    config = write_config(folder, body)
    return start_evroute(["run", config, "--stats", "off", "--stats-json", "stats.json"], folder)


def test_a_consumer_that_stops_reading_does_not_stop_the_input(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    total = 20_000
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    assert publish(url, "orders.new", events(total)) == total
    # `stuck` never reads its stdin: its pipe fills, then its queue of 100, then its spill
    process = start(
        tmp_path,
        f"""\
        version: 1
        shutdown_timeout: 1s
        dead_letter: dead.jsonl
        inputs:
          - name: bus
            nats: {{url: {url}, stream: ORDERS, durable: router, batch: 100,
                    max_ack_pending: 2000}}
        consumers:
          all: {{file: all.jsonl}}
          stuck:
            command: ["{sys.executable}", "-c", "import time; time.sleep(60)"]
            buffer: 100
            on_full: spill
        routes:
          - {{name: all, to: [all, stuck]}}
        """,
    )
    try:
        wait_for(lambda: lines_in(tmp_path / "all.jsonl") >= total, 60, "all.jsonl complete")

        def held() -> int | None:
            info = consumer_info(url, "ORDERS", "router")
            if info is None or info.num_pending:
                return None
            count: int = info.num_ack_pending
            return count

        # all pulled, and acked but for the batches (of 100 messages, acked whole) that
        # hold what `stuck` keeps in memory (its buffer of 100) or has in hand (at most
        # one more parcel): at most four of them; the rest of its share is in its spill
        def few_held() -> bool:
            count = held()
            return count is not None and count <= 4 * 100

        wait_for(few_held, 20, "the rest acked")
    finally:
        stop_evroute(process, tmp_path)
    code = process.returncode
    info = consumer_info(url, "ORDERS", "router")
    assert info is not None and info.num_ack_pending == 0 and info.ack_floor.stream_seq == total
    stats = read_stats(tmp_path / "stats.json")
    stuck = stats["consumers"]["stuck"]
    assert stuck["spilled"] > total // 2, stuck
    assert stats["inputs"]["bus"]["acked"] == total
    # what `stuck` never took is dead-lettered at the stop, so nothing is lost (the exit
    # code is SIGTERM's all the same, as the README has it)
    assert code == 143
    assert stuck["delivered"] + stuck["dead_lettered"] == total, stuck
    letters = read_jsonl(tmp_path / "dead.jsonl")
    assert {letter["reason"] for letter in letters} == {"shutdown"}
    assert len(letters) == stuck["dead_lettered"]


def test_messages_held_longer_than_ack_wait_are_kept_and_not_delivered_again(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    total = 8
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    assert publish(url, "orders.new", events(total)) == total
    # a consumer that acknowledges each event only after 0.4 s: the batch waits for about
    # 3 s, three times ack_wait, and the server must not hand its messages out again
    slow = (
        "import sys, time\n"
        "for line in sys.stdin:\n"
        "    time.sleep(0.4); print(line, end='', flush=True)"
    )
    process = start(
        tmp_path,
        f"""\
        version: 1
        inputs:
          - name: bus
            nats: {{url: {url}, stream: ORDERS, durable: router, ack_wait: 1s}}
        consumers:
          slow:
            command: ["{sys.executable}", "-c", {json.dumps(slow)}]
            ack: line
          copy: {{file: copy.jsonl}}
        routes:
          - {{name: all, to: [slow, copy]}}
        """,
    )
    try:

        def all_acked() -> bool:
            info = consumer_info(url, "ORDERS", "router")
            return info is not None and info.ack_floor.stream_seq >= total

        wait_for(all_acked, 30, "every message acked")
        info = consumer_info(url, "ORDERS", "router")
        assert info is not None and info.num_redelivered == 0, info
    finally:
        stop_evroute(process, tmp_path)
    code = process.returncode
    assert code == 143
    stats = read_stats(tmp_path / "stats.json")
    assert stats["inputs"]["bus"]["redelivered"] == 0
    assert stats["inputs"]["bus"]["pulled"] == total
    assert lines_in(tmp_path / "copy.jsonl") == total


def test_a_nats_consumer_dead_letters_what_no_stream_takes_and_what_has_no_subject(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    create_stream(url, "ORDERS", ["orders.>"])
    config = write_config(
        tmp_path,
        f"""\
        version: 1
        dead_letter: dead.jsonl
        consumers:
          lost: {{nats: {{url: {url}, subject: nowhere.at.all}}, retries: 1}}
          sized: {{nats: {{url: {url}, subject: 'orders.{{length(v)}}'}}}}
        routes:
          - {{name: all, to: [lost, sized]}}
        """,
    )
    lines = b'{"id": 1, "v": "abc"}\n{"id": 2}\n{"id": 3, "v": [1, 2]}\n'
    result = run_evroute(
        ["run", config, "-", "--stats", "off", "--stats-json", "stats.json"],
        tmp_path,
        stdin=lines,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr.decode()
    stats = read_stats(tmp_path / "stats.json")["consumers"]
    assert (stats["lost"]["delivered"], stats["lost"]["dead_lettered"]) == (0, 3)
    assert (stats["sized"]["delivered"], stats["sized"]["dead_lettered"]) == (2, 1)
    letters = read_jsonl(tmp_path / "dead.jsonl")
    details = {(letter["consumer"], letter["event"]["id"]): letter["detail"] for letter in letters}
    assert "no stream takes subject 'nowhere.at.all'" in details[("lost", 1)]
    assert "(2 attempts)" in details[("lost", 1)]
    assert details[("sized", 2)].startswith("subject template: {length(v)} failed")
    subjects = [message.subject for message in read_stream(url, "ORDERS")]
    assert subjects == ["orders.3", "orders.2"]


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
    with running_evroute(["run", config, "--stats", "off"], tmp_path) as process:
        # events larger than the pipe to `sleep` holds: its writer keeps them in hand
        big = "x" * 100_000
        publish(url, "orders.new", [orjson.dumps({"slow": True, "pad": big}) for _ in range(3)])
        time.sleep(1.5)  # pulled, as a batch of its own
        publish(url, "orders.new", [orjson.dumps({"slow": False, "id": n}) for n in range(5)])
        out = tmp_path / "out.jsonl"
        wait_for(
            lambda: lines_in(out) == 5 or process.poll() is not None,
            10,
            "the second batch routed, or the durable refused",
        )
        time.sleep(1)  # the second batch's acks reach the server
        info = consumer_info(url, "ORDERS", "evroute")
        assert info is not None
        refused = process.poll() == 1  # refusing such a durable at the start will do
        assert refused or info.ack_floor.stream_seq == 0, info.ack_floor
