"""The parts of NATS support that need no server: receipts (when a batch may be acked),
subjects, ack-subject parsing, and what validate says of nats inputs and consumers."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from runs import write_config

from evroute.config.model import QueueSettings
from evroute.core.lines import LineBatch
from evroute.core.parcel import Parcel, settle, settle_except
from evroute.core.receipt import Receipt
from evroute.core.stats import ConsumerStats
from evroute.engine.pipeline import Pipeline, RunOptions
from evroute.engine.queues import ConsumerQueue
from evroute.loading import check_config
from evroute.nats.options import subject_problem, subjects_overlap
from evroute.shaping.templates import parse as parse_template
from evroute.shaping.templates import render_subject, subject_value
from evroute.sources.nats_reader import reply_fields


class Done:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def parcel(events: int, receipt: Receipt | None) -> Parcel:
    payloads = [b'{"n":%d}' % n for n in range(events)]
    return Parcel("bus", ["r"], 1, payloads, list(range(events)), 0, receipt=receipt)


def test_a_receipt_is_done_once_when_the_router_and_every_event_have_settled() -> None:
    done = Done()
    receipt = Receipt(done)
    receipt.hold(3)
    receipt.settle(1)  # the router's own hold
    assert done.calls == 0
    receipt.settle(2)
    assert done.calls == 0 and receipt.outstanding == 1
    receipt.settle(1)
    assert done.calls == 1 and receipt.settled
    receipt.settle(0)
    assert done.calls == 1


def test_settle_counts_the_first_events_of_each_parcel_by_its_own_receipt() -> None:
    first, second = Done(), Done()
    a, b = Receipt(first), Receipt(second)
    for receipt in (a, b):
        receipt.hold(3)
        receipt.settle(1)
    parcels = [parcel(3, a), parcel(3, None), parcel(3, b)]
    settle(parcels, limit=7)  # a's three, three without a receipt, one of b's
    assert (first.calls, second.calls, b.outstanding) == (1, 0, 2)
    settle_except([parcel(3, b)], failed=[0])  # two delivered, one failed
    assert second.calls == 1


def test_settle_except_counts_failures_across_parcels() -> None:
    done = Done()
    receipt = Receipt(done)
    receipt.hold(6)
    receipt.settle(1)
    parcels = [parcel(2, receipt), parcel(4, receipt)]
    settle_except(parcels, failed=[1, 2, 5])
    assert receipt.outstanding == 3
    settle([parcels[0].pick([1]), parcels[1].pick([0, 3])])  # the failures, dead-lettered
    assert done.calls == 1


def test_events_spilled_to_disk_are_settled_and_those_in_memory_are_not(tmp_path: Path) -> None:
    done = Done()
    receipt = Receipt(done)
    queue = ConsumerQueue(
        QueueSettings(buffer=2, on_full="spill", spill_max_bytes=1 << 20),
        ConsumerStats(),
        lambda reason, detail, parcels: None,
    )
    receipt.hold(5)
    queue.put(parcel(5, receipt))
    receipt.settle(1)
    assert receipt.outstanding == 2  # three went to disk (synced), two wait in memory
    batch = queue.get_batch(lambda taken: None, max_events=2)
    assert batch is not None and sum(len(p) for p in batch) == 2
    settle(batch)  # as the writer does once they are delivered
    assert done.calls == 1
    rest = queue.get_batch(lambda taken: None)
    assert rest is not None and all(p.receipt is None for p in rest)  # read back: settled


def route_with_receipt(tmp_path: Path, body: str, lines: list[bytes]) -> tuple[Done, Pipeline]:
    """Route one batch with a receipt through real queues and writers, then drain."""
    config, issues = check_config(write_config(tmp_path, body))
    assert config is not None, [issue.format() for issue in issues]
    pipeline = Pipeline(config, RunOptions(handle_signals=False))
    done = Done()
    receipt = Receipt(done)
    for worker in pipeline.workers:
        worker.start()
    try:
        pipeline.router.route("bus", LineBatch(1, list(lines), False), None, receipt)
    finally:
        for queue in pipeline.queues.values():
            queue.close()
        pipeline._drain()
        pipeline.dead_letters.close()
    return done, pipeline


def test_a_batch_is_done_once_every_consumer_has_delivered_or_dropped_its_share(
    tmp_path: Path,
) -> None:
    done, pipeline = route_with_receipt(
        tmp_path,
        """\
        version: 1
        dead_letter: dead.jsonl
        consumers:
          all: {file: all.jsonl}
          tiny: {file: tiny.jsonl, buffer: 1, on_full: drop_newest}
          objects:
            file: objects.jsonl
            fields: {include: [id]}
        routes:
          - {name: all, to: [all, tiny]}
          - {name: numbers, to: objects, transform: id}
        """,
        [b'{"id":%d}' % n for n in range(5)] + [b"not json"],
    )
    assert done.calls == 1
    assert len((tmp_path / "all.jsonl").read_bytes().splitlines()) == 5
    tiny = pipeline.stats.consumers["tiny"]
    assert tiny.delivered + tiny.dropped == 5 and tiny.dropped > 0
    letters = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    reasons = sorted({letter["reason"] for letter in letters})
    assert reasons == ["denied", "dropped", "malformed"]  # numbers are no objects: denied


def test_a_batch_with_nothing_routed_is_done_at_once(tmp_path: Path) -> None:
    done, _ = route_with_receipt(
        tmp_path,
        """\
        version: 1
        consumers:
          all: {file: all.jsonl}
        routes:
          - {name: none, filter: "id == `-1`", to: all}
        """,
        [b'{"id":1}', b"", b"{"],
    )
    assert done.calls == 1


@pytest.mark.parametrize(
    ("reply", "fields"),
    [
        ("$JS.ACK.ORDERS.evroute.1.42.40.1700000000000000000.7", (1, 42, 7)),
        ("$JS.ACK.hub.ACCHASH.ORDERS.evroute.3.9.8.1700000000000000000.0.rnd", (3, 9, 0)),
    ],
)
def test_the_ack_subject_gives_deliveries_sequence_and_pending(
    reply: str, fields: tuple[int, int, int]
) -> None:
    assert reply_fields(reply) == fields


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("orders.>", "orders.eu.new", True),
        ("orders.>", "orders", False),
        ("orders.*", "orders.eu", True),
        ("orders.*", "orders.eu.new", False),
        ("routed.*", "orders.>", False),
        (">", "anything.at.all", True),
        ("a.*.c", "a.b.*", True),
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
    ],
)
def test_subjects_overlap_as_nats_wildcards_match(first: str, second: str, overlap: bool) -> None:
    assert subjects_overlap(first, second) is overlap
    assert subjects_overlap(second, first) is overlap


@pytest.mark.parametrize(
    ("subject", "wildcards", "problem"),
    [
        ("orders.new", False, None),
        ("orders.>", True, None),
        ("orders.>", False, "has a wildcard"),
        ("orders..new", True, "empty token"),
        (".orders", True, "empty token"),
        ("orders new", True, "white space"),
        ("orders.>.x", True, "'>' may only be the last token"),
        ("orders.a*", True, "must be whole tokens"),
    ],
)
def test_subject_problems_are_named(subject: str, wildcards: bool, problem: str | None) -> None:
    found = subject_problem(subject, wildcards)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_templated_subject_keeps_each_value_one_token() -> None:
    template = parse_template('routed.{"detail-type"}.{source}')
    event = {"detail-type": "Order Placed.v2", "source": None}
    assert render_subject(template, event) == "routed.Order_Placed_v2._"
    assert subject_value(12.5) == "12_5"
    assert subject_value({"a": "*"}) == '{"a":"_"}'
    assert subject_value("") == "_"
    assert subject_value(">") == "_"


NATS_INPUT = """\
version: 1
inputs:
  - name: bus
    nats: {url: nats://127.0.0.1:4222, stream: ORDERS, subject: "orders.>"%s}
consumers:
%s
routes:
  - {name: all, to: out}
"""


def validate(tmp_path: Path, text: str) -> list[tuple[str, str, str]]:
    _, issues = check_config(write_config(tmp_path, text))
    return [(issue.severity, issue.path, issue.message) for issue in issues]


def test_validate_warns_of_a_nats_consumer_publishing_where_an_input_reads(
    tmp_path: Path,
) -> None:
    consumer = "  out:\n    nats: {url: nats://127.0.0.1:4222, subject: 'orders.{source}'}"
    issues = validate(tmp_path, NATS_INPUT % ("", consumer))
    assert [(s, p) for s, p, _ in issues] == [("warning", "consumers.out.nats")]
    assert "comes back as new events, without end" in issues[0][2]
    elsewhere = consumer.replace("orders.{source}", "routed.{source}")
    assert validate(tmp_path, NATS_INPUT % ("", elsewhere)) == []
    other_server = consumer.replace("4222", "4223")
    assert validate(tmp_path, NATS_INPUT % ("", other_server)) == []


def test_validate_warns_of_a_queue_larger_than_the_unacked_window(tmp_path: Path) -> None:
    consumer = "  out: {file: out.jsonl, buffer: 500}"
    issues = validate(tmp_path, NATS_INPUT % (", max_ack_pending: 400", consumer))
    assert [(s, p) for s, p, _ in issues] == [("warning", "consumers.out")]
    assert "lets out at most 400 unacked" in issues[0][2]
    assert validate(tmp_path, NATS_INPUT % (", max_ack_pending: 501", consumer)) == []


@pytest.mark.parametrize(
    ("options", "path", "message"),
    [
        ("url: [nats://a:1, 'http://b']", "inputs[0].nats.url[1]", "not a server URL"),
        ("url: nats://a:1, stream: 'OR DERS'", "inputs[0].nats.stream", "not a stream name"),
        ("url: nats://a:1, stream: S, batch: 0", "inputs[0].nats.batch", ""),
        ("url: nats://a:1, stream: S, ack_wait: 10ms", "inputs[0].nats.ack_wait", "at least 1s"),
        ("url: nats://a:1, stream: S, durable: a.b", "inputs[0].nats.durable", "not a consumer"),
        ("url: nats://a:1, stream: S, password: x", "inputs[0].nats.password", "needs a user"),
        ("url: nats://a:1, stream: S, tls: {cert: c.pem}", "inputs[0].nats.tls.cert", "not a file"),
        ("url: nats://a:1, stream: {name: S}", "inputs[0].nats.stream.subjects", "is missing"),
        ("url: nats://a:1, stream: S, subjet: x", "inputs[0].nats.subjet", ""),
    ],
)
def test_validate_points_at_each_bad_nats_input_option(
    tmp_path: Path, options: str, path: str, message: str
) -> None:
    text = f"""\
    version: 1
    inputs:
      - {{name: bus, nats: {{{options}}}}}
    consumers:
      out: {{file: out.jsonl}}
    routes:
      - {{name: all, to: out}}
    """
    issues = validate(tmp_path, text)
    errors = [(p, m) for s, p, m in issues if s == "error"]
    assert any(p == path and message in m for p, m in errors), errors


@pytest.mark.parametrize(
    ("options", "path", "message"),
    [
        ("url: nats://a:1", "consumers.out.nats.subject", "is missing"),
        ("url: nats://a:1, subject: 'routed.>'", "consumers.out.nats.subject", "wildcard"),
        ("url: nats://a:1, subject: 'routed.{a'", "consumers.out.nats.subject", "never closed"),
        ("url: nats://a:1, subject: 'routed..{a}'", "consumers.out.nats.subject", "empty token"),
        ("subject: x", "consumers.out.nats.url", "is missing"),
    ],
)
def test_validate_points_at_each_bad_nats_consumer_option(
    tmp_path: Path, options: str, path: str, message: str
) -> None:
    text = f"""\
    version: 1
    consumers:
      out: {{nats: {{{options}}}}}
    routes:
      - {{name: all, to: out}}
    """
    issues = validate(tmp_path, text)
    errors = [(p, m) for s, p, m in issues if s == "error"]
    assert any(p == path and message in m for p, m in errors), errors
