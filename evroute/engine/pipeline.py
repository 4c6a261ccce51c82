"""A run: sources -> router -> per-consumer queues -> sinks, and an orderly shutdown."""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shlex
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from evroute.config.model import Config
from evroute.core.lines import LineBatch
from evroute.core.parcel import Parcel, settle
from evroute.core.receipt import Receipt
from evroute.core.stats import ConsumerStats, Progress, RunStats
from evroute.engine.delivery import ConsumerWorker
from evroute.engine.queues import WAIT_SLICE_S, ConsumerQueue
from evroute.engine.router import Router, Tap
from evroute.errors import EvrouteError, InputError
from evroute.shaping.publish_policy import PublishPolicies, PublishPolicy
from evroute.sinks import SINK_KINDS, SinkFailed
from evroute.sources import OversizeLine, Source, open_sources
from evroute.sources.base import FdSource
from evroute.sources.pacing import Pacer
from evroute.sources.producers import Handoff, HandoffItem, Producer, open_producers
from evroute.sources.sealed import SealedSource, is_sealed
from evroute.storage.audit_log import AuditLog
from evroute.storage.crypto import Key, load_config_key
from evroute.storage.dead_letters import DeadLetters, check_kept_file, undelivered

# After shutdown_timeout: SIGTERM, this long, then SIGKILL (a shutdown takes at most timeout + 2 s).
TERMINATE_GRACE_S = 1.5
KILL_GRACE_S = 0.4
# A paced replay sleeps only when the next event is due later than this.
PACING_SLACK_S = 0.002


@dataclass
class RunOptions:
    inputs: list[str] = field(default_factory=list)
    pacer: Pacer | None = None
    progress: Progress | None = None
    warn: Callable[[str], None] = lambda message: None
    handle_signals: bool = True
    # (seconds, callback): every so many seconds of a run, the callback gets its stats
    watchers: list[tuple[float, Callable[[RunStats], None]]] = field(default_factory=list)
    # routes whose matches `on_tap` also sees (route, input, line, payload)
    taps: list[str] = field(default_factory=list)
    on_tap: Tap = lambda route, input_name, line, payload: None
    # how `inputs` are opened; a redrive reads them as dead letter files. None: the
    # files named, else the producers of the config's `inputs:`, else stdin
    open_inputs: Callable[[list[str]], list[Source]] | None = None


@dataclass
class RunResult:
    stats: RunStats
    dead_letters: Counter[str]
    signal: int | None = None
    errors: list[str] = field(default_factory=list)  # fatal problems, such as an unreadable input
    dead_letters_written: bool = True

    @property
    def undelivered(self) -> bool:
        """Something was not delivered: malformed, dropped by a full buffer, dead-lettered."""
        dropped = sum(s.dropped - s.dropped_by_reader for s in self.stats.consumers.values())
        return undelivered(self.dead_letters) > 0 or dropped > 0


class Pipeline:
    def __init__(self, config: Config, options: RunOptions) -> None:
        self.config = config
        self.options = options
        self.stats = RunStats()
        # before anything is written: without its key evroute refuses to start rather
        # than write plain text (KeyProblem names the variable or the file)
        self.key: Key | None = load_config_key(config)
        self.audit = (
            None
            if config.audit is None
            else AuditLog(config.audit, config.audit_rotation, self.key)
        )
        self.dead_letters = DeadLetters(
            config.dead_letter, config.dead_letter_rotation, self.key, self.audit
        )
        self.stop_signal: int | None = None
        self.stop_time: float | None = None
        self.stop_now = False
        self._wakeup_read, self._wakeup_write = os.pipe()
        self._finished = threading.Event()  # the run is over: watchers stop
        os.set_blocking(self._wakeup_write, False)
        self.queues: dict[str, ConsumerQueue] = {}
        self.workers: list[ConsumerWorker] = []
        for name, consumer in config.consumers.items():
            consumer_stats = self.stats.consumers[name] = ConsumerStats()
            queue = ConsumerQueue(
                consumer.queue,
                consumer_stats,
                self._dead_letterer(name),
                self.out_of_time,
                name=name,
                warn=options.warn,
                spill_key=self.key,
                audit=self.audit,
            )
            self.queues[name] = queue
            sink = SINK_KINDS[consumer.kind].create(consumer, config.base_dir)
            sink.key = self.key  # for the sinks that seal what they write
            self.workers.append(
                ConsumerWorker(
                    sink,
                    queue,
                    consumer_stats,
                    self.stopping,
                    options.warn,
                    linger=config.shutdown_timeout,
                    audit=self.audit,
                )
            )
        self.router = Router(config, self.queues, self.dead_letters, self.stats, audit=self.audit)
        for route in options.taps:
            self.router.tap(route, options.on_tap)

    def stopping(self) -> bool:
        return self.stop_signal is not None or self.stop_now

    def out_of_time(self) -> bool:
        """Stopping, and the drain may take no longer: what still waits is a shutdown loss."""
        if self.stop_now:
            return True
        if self.stop_time is None:
            return False
        return time.monotonic() > self.stop_time + self.config.shutdown_timeout

    def _dead_letterer(self, consumer: str) -> Callable[[str, str, list[Parcel]], None]:
        def reject(reason: str, detail: str, parcels: list[Parcel]) -> None:
            # runs of one route, so the letters stay in the order the events came
            for parcel in parcels:
                for route, letters in itertools.groupby(parcel.letters(), key=lambda x: x[0]):
                    self.dead_letters.add(
                        reason,
                        detail,
                        (letter for _, letter in letters),
                        route=route or None,
                        consumer=consumer,
                    )
            settle(parcels)

        return reject

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags and a byte to the wakeup pipe: taking a lock here could deadlock.
        if self.stop_signal is None:
            self.stop_signal = signum
            self.stop_time = time.monotonic()
        else:
            self.stop_now = True
        with contextlib.suppress(OSError):
            os.write(self._wakeup_write, b"!")

    def run(self) -> RunResult:
        errors: list[str] = []
        # Inputs are opened before the signal handlers go in: opening a FIFO with no
        # writer blocks, and Ctrl-C must still be able to end that.
        producers = self._open_inputs()
        sources = [source for producer in producers for source in producer.sources]
        previous: dict[int, Any] = {}
        try:
            self._refuse_outputs_as_inputs(sources)
            try:
                self.dead_letters.check_writable()
            except OSError as error:
                raise EvrouteError(
                    f"cannot write the dead letter file {self.config.dead_letter}: {error.strerror}"
                ) from None
            if self.config.audit is not None:
                try:
                    check_kept_file(self.config.audit, self.key)
                except OSError as error:
                    raise EvrouteError(
                        f"cannot write the audit log {self.config.audit}: {error.strerror}"
                    ) from None
            if self.options.handle_signals and (
                threading.current_thread() is threading.main_thread()
            ):
                for signum in (signal.SIGINT, signal.SIGTERM):
                    previous[signum] = signal.signal(signum, self._on_signal)
            self._prepare_sinks()
            for worker in self.workers:
                worker.start()
            watchers = self._start_watching()
            try:
                if len(producers) == 1 and producers[0].name == "":
                    self._read(sources)
                else:
                    errors.extend(self._read_producers(producers))
            except InputError as error:
                errors.append(str(error))
            finally:
                for queue in self.queues.values():
                    queue.close()
                self._drain()
                self._finished.set()
                for watcher in watchers:
                    watcher.join()
        finally:
            for restored, handler in previous.items():
                signal.signal(restored, handler)
            for source in sources:
                source.close()
            self.stats.finished = time.monotonic()
            self.dead_letters.close()
            if self.audit is not None:
                self.audit.close()
            os.close(self._wakeup_read)
            os.close(self._wakeup_write)
        if self.dead_letters.write_error:
            errors.append(self.dead_letters.write_error)
        if self.audit is not None and self.audit.write_error:
            errors.append(self.audit.write_error)
        return RunResult(
            self.stats,
            self.dead_letters.counts,
            self.stop_signal,
            errors,
            dead_letters_written=self.dead_letters.write_error is None,
        )

    def _prepare_sinks(self) -> None:
        """What consumers need before anything is read (a NATS server): a problem stops
        the run before it starts, with nothing routed."""
        prepared: list[ConsumerWorker] = []
        for worker in self.workers:
            try:
                worker.sink.prepare()
            except SinkFailed as error:
                for ready in prepared:
                    ready.sink.close(0)
                raise EvrouteError(f"consumer {worker.sink.name!r}: {error}") from None
            prepared.append(worker)

    def _open_inputs(self) -> list[Producer]:
        """The inputs as producers; the files named on the command line (or stdin) are
        one nameless producer, read one after the other."""
        names = self.options.inputs
        opener = self.options.open_inputs
        if opener is None and not names and self.config.inputs:
            return open_producers(self.config, self.options.warn)
        if opener is not None:
            # a redrive or an archive: events that passed the publish policy once (a
            # redrive leaves denied ones out), from files evroute wrote itself
            return [Producer("", opener(names))]
        sources = self._unseal(open_sources(names))
        policies = PublishPolicies(self.config)
        for source in sources:
            source.publish = policies.of_input(source.name, input_identity(source))
        return [Producer("", sources)]

    def _unseal(self, sources: list[Source]) -> list[Source]:
        """A file evroute sealed (a dead letter file with encrypt:) is read as its plain
        text with the config's key; without one it is refused, never read as garbage."""
        unsealed: list[Source] = []
        for source in sources:
            if not is_sealed(source):
                unsealed.append(source)
                continue
            if self.key is None:
                for opened in sources:
                    opened.close()
                raise InputError(
                    f"{source.name}: the file is sealed by evroute and this config has no"
                    " encrypt: key; read it with a config that has the key, or with"
                    f" `evroute decrypt {shlex.quote(source.name)} | evroute run CONFIG -`"
                )
            assert isinstance(source, FdSource)
            unsealed.append(SealedSource(source, self.key))
        return unsealed

    def _refuse_outputs_as_inputs(self, sources: list[Source]) -> None:
        """An input that is also an output would be read as it grows, without end."""
        outputs: dict[tuple[int, int], str] = {}
        named = [(w.sink.output_path(), f"consumer {w.sink.name!r}") for w in self.workers]
        named.append((self.config.dead_letter, "the dead letters"))
        named.append((self.config.audit, "the audit log"))
        for path, writer in named:
            if path is not None and path.exists():
                info = path.stat()
                outputs[(info.st_dev, info.st_ino)] = writer
        for source in sources:
            identity = source.identity()
            if identity in outputs:
                raise InputError(
                    f"{source.name}: {outputs[identity]} writes this file; it cannot be an input"
                )

    def _start_watching(self) -> list[threading.Thread]:
        """A thread for each watcher: the stats to it at its interval, until the end."""

        def watch(every: float, callback: Callable[[RunStats], None]) -> None:
            while not self._finished.wait(every):
                callback(self.stats)

        threads = [
            threading.Thread(target=watch, args=watcher, name="stats-watcher", daemon=True)
            for watcher in self.options.watchers
        ]
        for thread in threads:
            thread.start()
        return threads

    def _read(self, sources: list[Source]) -> None:
        progress = self.options.progress
        if progress is not None:
            sizes = [source.size for source in sources]
            progress.start(None if None in sizes else sum(s or 0 for s in sizes))
        done_before = 0
        for source in sources:
            splitter = source.line_splitter(self.config.max_event_bytes)
            input_stats = self.stats.input(source.name)
            for chunk in source.chunks(self._wakeup_read):
                input_stats.bytes += len(chunk)
                chunk_start = done_before + source.position - len(chunk)
                chunk_end = done_before + source.position

                def advance(routed: int, start: int = chunk_start, end: int = chunk_end) -> None:
                    if progress is not None:
                        progress.update(min(start + routed, end))

                self._route(source.name, splitter.feed(chunk), advance, source.publish)
                advance(len(chunk))
                if self._should_stop_reading():
                    return
            self._route(source.name, splitter.finish(), lambda routed: None, source.publish)
            done_before += source.position
            if self._should_stop_reading():
                return
        if progress is not None:
            progress.update(done_before)

    def _should_stop_reading(self) -> bool:
        return self.stopping() or not any(queue.has_reader for queue in self.queues.values())

    def _read_producers(self, producers: list[Producer]) -> list[str]:
        """Read every producer at once, each in a thread of its own; the batches are
        routed here, in the order they come. What failed is returned, the rest read on."""
        handoff = Handoff()
        max_bytes = self.config.max_event_bytes
        wakeup = self._wakeup_read
        for producer in producers:
            for source in producer.sources:
                source.stats = self.stats.input(source.name)

        def produce(producer: Producer) -> None:
            try:
                for source in producer.sources:

                    def give(
                        batch: LineBatch, size: int, receipt: Receipt | None, of: Source = source
                    ) -> bool:
                        return handoff.put((of, batch, size, receipt))

                    if not source.produce(give, wakeup, max_bytes):
                        return
            except InputError as error:
                handoff.put(str(error))
            except Exception as error:  # a surprise must not hang the run
                handoff.put(f"input {producer.name}: internal error: {error!r}")
            finally:
                handoff.put(None)

        def route(items: list[HandoffItem]) -> int:
            """Route what the producers gave; how many of them ended."""
            ended = 0
            for item in items:
                if item is None:
                    ended += 1
                elif isinstance(item, str):
                    errors.append(item)
                else:
                    source, batch, size, receipt = item
                    self.stats.input(source.name).bytes += size
                    if receipt is not None:  # not paced: it is a live input
                        self.router.route(source.name, batch, source.publish, receipt)
                    else:
                        self._route(source.name, batch, lambda routed: None, source.publish)
            return ended

        threads = [
            threading.Thread(target=produce, args=(p,), name=f"input-{p.name}", daemon=True)
            for p in producers
        ]
        for thread in threads:
            thread.start()
        errors: list[str] = []
        running = len(threads)
        try:
            # a quiet producer must not keep a run whose consumers have all gone: so the
            # wait is cut into slices (a few wakeups a second, no more)
            while running and not self._should_stop_reading():
                items = handoff.take(wakeup, timeout=WAIT_SLICE_S)
                if items is None:
                    break
                running -= route(items)
            if not self.stop_now:
                # lines a producer had read when reading stopped: routed, not lost
                route(handoff.take_ready())
        finally:
            handoff.close()
            for producer in producers:
                for source in producer.sources:
                    source.stop()
            for thread in threads:
                thread.join(TERMINATE_GRACE_S)
        return errors

    def _route(
        self,
        input_name: str,
        batch: LineBatch,
        advance: Callable[[int], None],
        publish: PublishPolicy | None = None,
    ) -> None:
        """Route lines; paced, in groups that are due, telling `advance` the bytes routed."""
        pacer = self.options.pacer
        if pacer is None:
            self.router.route(input_name, batch, publish)
            return
        start = 0
        routed = 0
        for position, line in enumerate(batch.lines):
            due = None if isinstance(line, OversizeLine) or not line.strip() else pacer.due(line)
            if due is not None:
                wait = due - time.monotonic()
                if wait > PACING_SLACK_S:
                    self.router.route(input_name, batch.cut(start, position), publish)
                    advance(routed)
                    start = position
                    if self._sleep_until(due):
                        return
            routed += (line.length if isinstance(line, OversizeLine) else len(line)) + 1
        self.router.route(input_name, batch.cut(start), publish)

    def _sleep_until(self, due: float) -> bool:
        """Wait, waking early for a signal; True when reading should stop instead."""
        while True:
            remaining = due - time.monotonic()
            if remaining <= 0:
                return False
            # in slices: a far-off time (an event from year 1) must not overflow select,
            # and a consumer that went away must end a slow replay
            ready, _, _ = select.select([self._wakeup_read], [], [], min(remaining, 0.25))
            if ready or self._should_stop_reading():
                return True

    def _drain(self) -> None:
        """Let the writers finish; on a stop, within shutdown_timeout, then force them."""
        while True:
            alive = [worker for worker in self.workers if worker.thread.is_alive()]
            if not alive:
                return
            if self.stop_now:
                break
            if self.stop_time is not None:
                remaining = self.stop_time + self.config.shutdown_timeout - time.monotonic()
                if remaining <= 0:
                    break
                alive[0].thread.join(min(remaining, 0.25))
            else:
                alive[0].thread.join(0.25)
        # every sink told first (SIGTERM), then the queues lettered: a writer with a
        # batch in hand letters its queue itself once that batch is settled, in order
        for worker in alive:
            worker.stop()
        for worker in alive:
            worker.letter_the_rest()
        # Processes get a grace between SIGTERM and SIGKILL, cut short by a second Ctrl-C;
        # a writer stuck on a file (a full pipe on stdout) has nothing to signal.
        self._join(alive, TERMINATE_GRACE_S)
        for worker in alive:
            if worker.thread.is_alive():
                worker.sink.kill()
        self._join(alive, KILL_GRACE_S, interruptible=False)
        for worker in alive:
            if worker.thread.is_alive():
                worker.abandon()
                worker.stats.state = "abandoned"

    def _join(
        self, workers: list[ConsumerWorker], seconds: float, interruptible: bool = True
    ) -> None:
        """Wait for the writers to end, at most `seconds`; a second Ctrl-C cuts it short."""
        deadline = time.monotonic() + seconds
        for worker in workers:
            while worker.thread.is_alive() and not (interruptible and self.stop_now):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                worker.thread.join(min(remaining, 0.1))


def input_identity(source: Source) -> tuple[int, int] | None:
    """(device, inode) of the file an input reads; None for stdin."""
    if source.name == "-" and source.path is None:
        return None
    identity = source.identity()
    if identity is None and source.path is not None:  # a FIFO, say
        with contextlib.suppress(OSError):
            info = os.stat(source.path)
            identity = (info.st_dev, info.st_ino)
    return identity if identity is not None else (-1, -1)


def run(config: Config, options: RunOptions) -> RunResult:
    """Route the inputs through the config's routes to its consumers, then shut down."""
    return Pipeline(config, options).run()
