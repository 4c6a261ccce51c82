"""One writer thread per consumer: takes batches from its queue and hands them to its sink."""

from __future__ import annotations

import threading
from collections.abc import Callable

from evroute.buffer import ConsumerQueue, Envelope
from evroute.sinks import Sink, SinkEnded, SinkFailed
from evroute.stats import ConsumerStats


class ConsumerWorker:
    def __init__(
        self,
        sink: Sink,
        queue: ConsumerQueue,
        stats: ConsumerStats,
        stopping: Callable[[], bool],
        warn: Callable[[str], None],
    ) -> None:
        self.sink = sink
        self.queue = queue
        self.stats = stats
        self.stopping = stopping
        self.warn = warn
        self._inflight: list[Envelope] | None = None
        self._settle_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"consumer-{sink.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _settle(self, batch: list[Envelope], outcome: str, detail: str = "") -> bool:
        """Account for the in-flight batch once, whoever gets there first."""
        with self._settle_lock:
            if self._inflight is not batch:
                return False
            self._inflight = None
        if outcome == "delivered":
            self.stats.delivered += len(batch)
        else:
            self.queue.dead_letter(outcome, detail, batch)
        return True

    def abandon(self) -> None:
        """The writer is stuck past the deadline: its in-flight batch is a shutdown loss."""
        batch = self._inflight
        if batch is not None:
            self._settle(batch, "shutdown", "evroute was stopped before delivery")

    def _run(self) -> None:
        name = self.sink.name
        try:
            self.sink.open()
        except SinkFailed as error:
            self.stats.state = "failed"
            self.warn(f"consumer {name!r} failed: {error}; its events go to the dead letters")
            self.queue.fail(str(error))
            return
        self.stats.state = "running"
        while (batch := self.queue.get_batch()) is not None:
            self._inflight = batch
            try:
                self.sink.write([envelope.payload for envelope in batch])
            except SinkEnded:
                with self._settle_lock:
                    if self._inflight is batch:
                        self._inflight = None
                        self.stats.dropped += len(batch)
                        self.stats.dropped_by_reader += len(batch)
                self.stats.state = "closed"
                self.queue.end()
                break
            except SinkFailed as error:
                if self.stopping():
                    self._settle(batch, "shutdown", f"evroute was stopped: {error}")
                    self.queue.fail(f"evroute was stopped: {error}", reason="shutdown")
                else:
                    self._settle(batch, "delivery_failed", str(error))
                    self.stats.state = "failed"
                    self.warn(
                        f"consumer {name!r} failed: {error}; its events go to the dead letters"
                    )
                    self.queue.fail(str(error))
                break
            self._settle(batch, "delivered")
        try:
            warning = self.sink.close()
        except OSError as error:
            warning = str(error)
        if warning and not self.stopping():
            self.warn(f"consumer {name!r}: {warning}")
        if self.stats.state == "running":
            self.stats.state = "done"
