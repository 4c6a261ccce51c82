"""One writer thread per consumer: takes batches from its queue and hands them to its sink."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from evroute.buffer import SHUTDOWN_DETAIL, ConsumerQueue, Parcel, count, pick, skip
from evroute.sinks import Sink, SinkEnded, SinkFailed
from evroute.sinks.base import LINGER_S, EventFailure
from evroute.stats import ConsumerStats

EXIT_SETTLE_S = 0.2


class ConsumerWorker:
    def __init__(
        self,
        sink: Sink,
        queue: ConsumerQueue,
        stats: ConsumerStats,
        stopping: Callable[[], bool],
        warn: Callable[[str], None],
        linger: float = 10.0,
    ) -> None:
        self.sink = sink
        self.linger = linger  # how long what a command left running may take at the end
        self.queue = queue
        self.stats = stats
        self.stopping = stopping
        self.warn = warn
        self._inflight: list[Parcel] | None = None
        self._settle_lock = threading.Lock()
        self._failed = False
        self._closing = False
        self._watcher: threading.Thread | None = None
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
            self._inflight = None
        self.stats.delivered += delivered
        rest = skip(batch, delivered)
        if not rest:
            return
        if outcome == "ended":
            self.queue.drop_for_reader(rest)
        else:
            self.queue.dead_letter(outcome, detail, rest)

    def abandon(self) -> None:
        """The writer is stuck past the deadline: what it holds and what is queued is lost
        to the shutdown."""
        held: list[list[Parcel]] = []
        queued = self.queue.take_all(lambda: held.append(self._inflight or []))
        self.queue.dead_letter("shutdown", SHUTDOWN_DETAIL, queued)
        if held[0]:
            self._settle(held[0], 0, "shutdown", SHUTDOWN_DETAIL)

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
        self._closing = True
        try:
            warning = self.sink.close(self.linger)
        except BaseException as error:
            warning = f"{type(error).__name__}: {error}"
        if self._watcher is not None:
            self._watcher.join()  # the process is gone: it returns at once
        if warning and not self.stopping():
            self.warn(f"consumer {self.sink.name!r}: {warning}")
        if self.stats.state == "running":
            self.stats.state = "stopped" if self.stopping() else "done"

    def _watch(self) -> None:
        """Notice a process that exits while no event is on its way to it, and reap it."""
        detail = self.sink.wait_for_exit()
        if detail is None:
            return
        # While the writer holds a batch, its own failed write reports the exit, with the
        # batch's dead letters before the backlog's; so fail only an idle consumer.
        message = f"the command exited ({detail})"
        exited = time.monotonic()
        group_ended = False
        while not (self._closing or self._failed or self.queue.closed):
            # a command that ends as its input ends is not a failure: give the input a
            # moment to be seen ending before calling the exit early
            settled = time.monotonic() - exited > EXIT_SETTLE_S
            if settled and self.queue.fail_when_idle(lambda: self._inflight is None, message):
                self._fail(message)  # the queue is failed already: this tells the user
                return
            if not group_ended and time.monotonic() - exited > LINGER_S:
                # what it started still holds the pipe without reading: the write only
                # ends when they do
                self.sink.end_group()
                group_ended = True
            time.sleep(0.05)

    def _deliver(self) -> None:
        try:
            self.sink.open()
        except SinkFailed as error:
            self._fail(str(error))
            return
        self.stats.state = "running"
        if self.sink.has_process:
            self._watcher = threading.Thread(
                target=self._watch, name=f"watch-{self.sink.name}", daemon=True
            )
            self._watcher.start()
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

    def _settle_failures(self, batch: list[Parcel], failures: list[EventFailure]) -> None:
        """Dead-letter the events the sink gave up on, by reason; the rest were delivered."""
        with self._settle_lock:
            if self._inflight is not batch:
                return
            self._inflight = None
        self.stats.delivered += count(batch) - len(failures)
        failures = sorted(failures)
        for (reason, detail), group in itertools.groupby(failures, key=lambda f: f[1:]):
            self.queue.dead_letter(reason, detail, pick(batch, [index for index, _, _ in group]))
