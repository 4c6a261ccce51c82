"""One writer thread per consumer: takes batches from its queue and hands them to its sink."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from evroute.core.parcel import Parcel, count, pick, settle, settle_except, skip
from evroute.core.stats import ConsumerStats
from evroute.engine.queues import ConsumerQueue
from evroute.sinks import Sink, SinkEnded, SinkFailed
from evroute.sinks.base import SHUTDOWN_DETAIL, EventFailure
from evroute.storage.audit_log import AuditLog, parcel_entries


class ConsumerWorker:
    def __init__(
        self,
        sink: Sink,
        queue: ConsumerQueue,
        stats: ConsumerStats,
        stopping: Callable[[], bool],
        warn: Callable[[str], None],
        linger: float = 10.0,
        audit: AuditLog | None = None,
    ) -> None:
        self.audit = audit
        self.sink = sink
        self.linger = linger  # how long what a command left running may take at the end
        self.queue = queue
        self.stats = stats
        self.stopping = stopping
        self.warn = warn
        self._inflight: list[Parcel] | None = None
        # (detail, reason) of a failure or shutdown that came while a batch was in hand
        self._later: tuple[str, str] | None = None
        self._settle_lock = threading.Lock()
        self._failed = False
        self.thread = threading.Thread(target=self._run, name=f"consumer-{sink.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _hold(self, batch: list[Parcel]) -> None:
        self._inflight = batch

    def _settle(self, batch: list[Parcel], delivered: int, outcome: str, detail: str) -> None:
        """Account for the in-flight batch once, whoever gets there first: its first
        `delivered` events went out, the rest end as `outcome`."""
        with self._settle_lock:
            if self._inflight is not batch:
                return
            self.stats.delivered += delivered
            if self.audit is not None and delivered:
                self.audit.record(
                    "delivered", parcel_entries(batch, limit=delivered), self.sink.name
                )
            settle(batch, limit=delivered)
            rest = skip(batch, delivered)
            if rest and outcome == "ended":
                self.queue.drop_for_reader(rest)
            elif rest:
                self.queue.dead_letter(outcome, detail, rest)
            # cleared last: until its letters are out the consumer is not idle, so nobody
            # fails the queue and letters the (newer) backlog before them
            self._inflight = None

    def abandon(self) -> None:
        """The writer is stuck past the deadline: what it holds and what is queued is lost
        to the shutdown."""
        held: list[list[Parcel]] = []
        queued = self.queue.take_all(lambda: held.append(self._inflight or []))
        if held[0]:  # older than the queue's: its letters first
            self._settle(held[0], 0, "shutdown", SHUTDOWN_DETAIL)
        self.queue.dead_letter("shutdown", SHUTDOWN_DETAIL, queued)

    def _fail(self, detail: str, reason: str = "delivery_failed") -> None:
        """The consumer cannot take more: its backlog and later events are dead letters."""
        with self._settle_lock:
            if self._failed:
                return
            self._failed = True
        # the queue first: telling the user may itself fail (stderr closed)
        self.queue.fail(detail, reason)
        if reason == "delivery_failed":
            self.stats.state = "failed"
            self.warn(
                f"consumer {self.sink.name!r} failed: {detail};"
                " what it has not taken goes to the dead letters"
            )

    def _run(self) -> None:
        try:
            self._deliver()
        except BaseException as error:  # a surprise must not lose events or hang the run
            detail = f"internal error: {type(error).__name__}: {error}"
            batch = self._inflight
            if batch is not None:
                self._settle(batch, 0, "delivery_failed", detail)
            self._fail(detail)
        try:
            warning = self.sink.close(self.linger)
        except BaseException as error:
            warning = f"{type(error).__name__}: {error}"
        if warning and not self.stopping():
            self.warn(f"consumer {self.sink.name!r}: {warning}")
        if self.stats.state in ("running", "restarting"):
            self.stats.state = "stopped" if self.stopping() else "done"

    def _failed_on_its_own(self, detail: str) -> None:
        """The sink gave up on its own (restarts used up). With a batch in hand, the
        writer fails the queue once that batch is settled, so that its dead letters come
        before the (newer) backlog's."""
        self._later = (detail, "delivery_failed")
        if self.queue.fail_when_idle(lambda: self._inflight is None, detail):
            self._fail(detail)  # the queue is failed already: this tells the user

    def stop(self) -> None:
        """Shutdown past its deadline: the sink is told to stop now, and what is queued
        goes to the dead letters after the batch in hand, which it then settles at once."""
        self._later = (SHUTDOWN_DETAIL, "shutdown")
        self.sink.terminate()

    def letter_the_rest(self) -> None:
        """After stop(): an idle writer has no batch to settle first, so the queue's
        events are dead-lettered now."""
        if self.queue.fail_when_idle(
            lambda: self._inflight is None, SHUTDOWN_DETAIL, reason="shutdown"
        ):
            self._fail(SHUTDOWN_DETAIL, reason="shutdown")

    def _deliver(self) -> None:
        self.sink.attach(self.stats, self._failed_on_its_own, self.queue.drained)
        try:
            self.sink.open()
        except SinkFailed as error:
            self._fail(str(error))
            return
        self.stats.state = "running"
        while (batch := self.queue.get_batch(self._hold)) is not None:
            payloads = (
                batch[0].payloads
                if len(batch) == 1
                else list(itertools.chain.from_iterable(parcel.payloads for parcel in batch))
            )
            try:
                failures = self.sink.write(payloads)
            except SinkEnded as ended:
                self._settle(batch, ended.delivered, "ended", str(ended))
                self.stats.state = "closed"
                self.queue.end()
                return
            except SinkFailed as failed:
                if self.stopping():
                    detail = f"{SHUTDOWN_DETAIL}: {failed}"
                    self._settle(batch, failed.delivered, "shutdown", detail)
                    self._fail(detail, reason="shutdown")
                else:
                    self._settle(batch, failed.delivered, "delivery_failed", str(failed))
                    self._fail(str(failed))
                return
            if failures:
                self._settle_failures(batch, failures)
            else:
                self._settle(batch, count(batch), "", "")
            if self._later is not None:
                self._fail(*self._later)
                return

    def _settle_failures(self, batch: list[Parcel], failures: list[EventFailure]) -> None:
        """Dead-letter the events the sink gave up on, by reason; the rest were delivered."""
        with self._settle_lock:
            if self._inflight is not batch:
                return
            self.stats.delivered += count(batch) - len(failures)
            failures = sorted(failures)
            settle_except(batch, (index for index, _, _ in failures))
            if self.audit is not None:
                failed = (index for index, _, _ in failures)
                self.audit.record("delivered", parcel_entries(batch, skip=failed), self.sink.name)
            for (reason, detail), group in itertools.groupby(failures, key=lambda f: f[1:]):
                indexes = [index for index, _, _ in group]
                self.queue.dead_letter(reason, detail, pick(batch, indexes))
            self._inflight = None
