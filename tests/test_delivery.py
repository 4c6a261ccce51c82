"""The writer thread accounts for every event, whatever its sink does."""

from __future__ import annotations

from pathlib import Path

from evroute.config.model import ConsumerConfig, QueueSettings
from evroute.core.parcel import Parcel
from evroute.core.stats import ConsumerStats
from evroute.engine.delivery import ConsumerWorker
from evroute.engine.queues import ConsumerQueue
from evroute.sinks import Sink, SinkFailed


class ExplodingSink(Sink):
    """Takes two batches, then fails in a way no sink is written to expect."""

    def __init__(self) -> None:
        super().__init__(ConsumerConfig("boom", "test", None, QueueSettings()), Path("."))
        self.batches: list[list[bytes]] = []

    def write(self, payloads: list[bytes]) -> None:
        if len(self.batches) == 2:
            raise RuntimeError("unexpected")
        self.batches.append(payloads)


class HalfWaySink(Sink):
    def __init__(self) -> None:
        super().__init__(ConsumerConfig("half", "test", None, QueueSettings()), Path("."))

    def write(self, payloads: list[bytes]) -> None:
        raise SinkFailed("disk full", delivered=len(payloads) // 2)


def run_worker(sink: Sink, batches: int) -> tuple[ConsumerStats, list[tuple[str, str, int]]]:
    stats = ConsumerStats()
    rejected: list[tuple[str, str, int]] = []
    queue = ConsumerQueue(
        QueueSettings(buffer=100),
        stats,
        lambda reason, detail, parcels: rejected.extend(
            (reason, detail, letter.line) for parcel in parcels for _, letter in parcel.letters()
        ),
    )
    worker = ConsumerWorker(sink, queue, stats, lambda: False, lambda message: None)
    worker.start()
    line = 0
    for _ in range(batches):
        queue.put(Parcel("in", ("r",), line + 1, [b"{}"] * 10, list(range(10)), 0))
        line += 10
        # one batch at a time, so the sink sees them one by one
        while len(rejected) + stats.delivered < line and worker.thread.is_alive():
            worker.thread.join(0.01)
    queue.close()
    worker.thread.join(10)
    assert not worker.thread.is_alive()
    return stats, rejected


def test_an_unexpected_error_dead_letters_instead_of_losing_events() -> None:
    stats, rejected = run_worker(ExplodingSink(), batches=4)
    assert stats.delivered == 20
    assert stats.state == "failed"
    assert [line for _, _, line in rejected] == list(range(21, 41))
    assert {reason for reason, _, _ in rejected} == {"delivery_failed"}
    assert all("internal error: RuntimeError" in detail for _, detail, _ in rejected)
    assert stats.enqueued == stats.delivered + stats.dropped + stats.dead_lettered


def test_a_partly_written_batch_counts_what_got_out() -> None:
    stats, rejected = run_worker(HalfWaySink(), batches=2)
    assert stats.delivered == 5
    assert [line for _, _, line in rejected] == list(range(6, 21))
    assert stats.enqueued == stats.delivered + stats.dropped + stats.dead_lettered
