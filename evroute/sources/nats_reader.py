"""A NATS JetStream input: a durable pull consumer, read in batches, each message acked
only once every consumer it was routed to has settled it (core/receipt.py).

Several evroute processes with the same `durable` share the stream's messages. A message
held longer than a third of `ack_wait` gets in-progress acks, so the server does not
hand it to another instance meanwhile; a crash leaves it unacked, and it comes again.

nats-py is asyncio: the connection lives on a loop in a thread of its own, which pulls,
acks and keeps held messages alive; the producer's thread hands the batches on.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evroute.core.lines import RAW_LIMIT, DigitRuns, LineBatch, OversizeLine
from evroute.core.receipt import Receipt
from evroute.core.stats import InputStats
from evroute.errors import InputError
from evroute.nats.client import CONNECT_TIMEOUT_S, LoopThread, connect, ensure_stream
from evroute.nats.options import NatsProblem
from evroute.sources.base import Give, Source

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js.api import ConsumerConfig

    from evroute.sources.nats import NatsInputOptions

# A pull request the server has not filled ends after this long, and another goes out.
REQUEST_EXPIRES_S = 5.0
# Batches pulled and not yet routed: no new request goes out while this many wait.
READY_BATCHES = 4
# The producer's thread looks for a stop this often while the stream is silent.
STOP_CHECK_S = 0.25
# Sequences a batch may skip (messages of other subjects) and stay one batch.
MAX_GAP = 256
# What the server reads on a message's reply subject (JetStream's ack protocol).
ACK, NAK, IN_PROGRESS = b"+ACK", b"-NAK", b"+WPI"
# How long closing may wait for the last acks to reach the server.
CLOSE_TIMEOUT_S = 5.0


@dataclass
class _Held:
    """A batch handed on and not yet acked: its messages' reply subjects (which ack
    them), and since when it waits."""

    replies: list[str]
    since: float


# a pulled batch: its lines, the bytes they came from, its receipt, its messages
_Pulled = tuple[LineBatch, int, Receipt, _Held]


@dataclass
class _Request:
    """A pull request the server may still be filling."""

    remaining: int
    deadline: float


def reply_fields(reply: str) -> tuple[int, int, int]:
    """(times delivered, stream sequence, messages pending) from a message's ack subject:
    $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>, or with a
    domain and an account hash after ACK (12 tokens)."""
    tokens = reply.split(".")
    at = 4 if len(tokens) == 9 else 6
    return int(tokens[at]), int(tokens[at + 1]), int(tokens[at + 4])


class NatsSource(Source):
    """Messages of a JetStream stream, one event each, numbered by stream sequence.

    Pulls are pipelined: two requests stay open on the server, so it streams messages
    while the router works, and a new one goes out as one is filled, as long as fewer
    than READY_BATCHES batches wait to be routed (that is the back pressure).
    """

    def __init__(self, name: str, options: NatsInputOptions, warn: Callable[[str], None]) -> None:
        super().__init__(name, None)
        self.options = options
        self.warn = warn
        self._stopping = False
        self._max_event_bytes = 1 << 20
        # batches ready for the producer's thread
        self._ready: queue.Queue[_Pulled] = queue.Queue()
        # settled batches waiting for their acks, from any thread; drained on the loop
        self._settled: deque[_Held] = deque()
        self._ack_scheduled = False
        # on the loop only: batches out and not acked, open requests, messages gathering
        self._held: dict[int, _Held] = {}
        self._requests: deque[_Request] = deque()
        self._gathering: list[Msg] = []
        self._client: Client | None = None
        self._subscription: Subscription | None = None
        self._next_subject = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._checking = False  # whether the durable's existence is being checked
        self._failure: str | None = None  # why the input cannot go on
        self._loop = LoopThread(f"nats-input-{name}")
        try:
            self._loop.call(self._open(), CONNECT_TIMEOUT_S + 10)
        except NatsProblem as problem:
            self._loop.call(self._disconnect(), CLOSE_TIMEOUT_S)
            self._loop.stop()
            raise InputError(f"input {name}: {problem}") from None
        except Exception as error:  # a server refusing the consumer, say
            self._loop.call(self._disconnect(), CLOSE_TIMEOUT_S)
            self._loop.stop()
            raise InputError(f"input {name}: cannot read from NATS: {error}") from None

    def _counts(self) -> InputStats:
        if self.stats is None:
            self.stats = InputStats()
        if self.stats.pulled is None:
            self.stats.pulled = self.stats.acked = self.stats.redelivered = 0
            self.stats.pending = 0
        return self.stats

    async def _open(self) -> None:
        import nats.js.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        options = self.options
        self._client = await connect(
            options.connection, self.name, self.warn, on_reconnect=self._reconnected
        )
        js = self._client.jetstream()
        where = options.connection.shown
        await ensure_stream(js, options.stream, where)
        stream, durable = options.stream.name, options.durable
        try:
            info = await js.consumer_info(stream, durable)
            self._refuse_unless_fit(info.config)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=options.ack_wait,
                    max_ack_pending=options.max_ack_pending,
                    filter_subject=options.subject,
                ),
            )
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        inbox = self._client.new_inbox()
        self._subscription = await self._client.subscribe(
            inbox, cb=self._on_message, pending_msgs_limit=0, pending_bytes_limit=0
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keep_alive()), loop.create_task(self._expire())]

    def _refuse_unless_fit(self, config: ConsumerConfig) -> None:
        """An existing durable is used as it is, if it acks as evroute does and reads
        the subject the config names."""
        from nats.js.api import AckPolicy

        where = f"the durable consumer {self.options.durable!r} of stream"
        where += f" {self.options.stream.name!r}"
        if config.deliver_subject:
            raise NatsProblem(
                f"{where} is a push consumer (it delivers to {config.deliver_subject!r}):"
                " evroute pulls; delete that consumer, or name another durable"
            )
        if config.ack_policy != AckPolicy.EXPLICIT:
            policy = getattr(config.ack_policy, "value", config.ack_policy)
            raise NatsProblem(
                f"{where} acks with policy {policy}: evroute acks each message once it is"
                " safe and needs explicit; delete that consumer, or name another durable"
            )
        subject = self.options.subject
        if subject is not None and (config.filter_subject or None) != subject:
            raise NatsProblem(
                f"{where} reads {config.filter_subject or 'the whole stream'!r}, not subject:"
                f" {subject!r}; delete that consumer, or name another durable"
            )

    async def _check_consumer(self) -> None:
        """The server said a pull went nowhere: if the durable is really gone (deleted
        while the run went on), the input fails rather than waiting in silence."""
        import nats.js.errors

        assert self._client is not None
        js = self._client.jetstream()
        try:
            for attempt in range(2):  # a server still recovering may answer wrongly once
                try:
                    await js.consumer_info(self.options.stream.name, self.options.durable)
                    return
                except nats.js.errors.NotFoundError:
                    if attempt == 0:
                        await asyncio.sleep(1.0)
            self._failure = (
                f"the durable consumer {self.options.durable!r} of stream"
                f" {self.options.stream.name!r} is gone (deleted?); nothing more can be read"
            )
        except Exception:  # the server unreachable, say: reconnecting deals with it
            return
        finally:
            self._checking = False

    async def _reconnected(self) -> None:
        # the server may have restarted: the requests it held are gone
        self._requests.clear()
        await self._request_more()

    async def _request_more(self) -> None:
        """Keep two pull requests open while the router keeps up."""
        import orjson

        if self._stopping or self._client is None or self._client.is_closed:
            return
        assert self._subscription is not None
        batch = self.options.batch
        while len(self._requests) < 2 and self._ready.qsize() < READY_BATCHES:
            self._requests.append(_Request(batch, time.monotonic() + REQUEST_EXPIRES_S))
            request = {"batch": batch, "expires": int(REQUEST_EXPIRES_S * 1e9)}
            with contextlib.suppress(Exception):  # reconnecting: _expire asks again
                await self._client.publish(
                    self._next_subject, orjson.dumps(request), reply=self._subscription.subject
                )

    async def _on_message(self, message: Msg) -> None:
        if not message.reply:  # a status: a request expired, or the server refused it
            status = message.headers.get("Status", "") if message.headers else ""
            if status in ("409", "503") and not self._checking:
                # the durable deleted, or no one to answer the pull: is it still there?
                self._checking = True
                asyncio.get_running_loop().create_task(self._check_consumer())
            if status in ("408", "409") and self._requests:
                self._requests.popleft()
            elif status not in ("100", "404", "408", "409"):
                return
            self._seal()
            await self._request_more()
            return
        self._gathering.append(message)
        if self._requests:
            self._requests[0].remaining -= 1
            if self._requests[0].remaining <= 0:
                self._requests.popleft()
        assert self._subscription is not None
        if len(self._gathering) >= self.options.batch or not self._subscription.pending_msgs:
            self._seal()
            await self._request_more()

    async def _expire(self) -> None:
        """Requests the server should have answered by now count as ended, so that new
        ones go out (a lost connection loses the requests too)."""
        while True:
            await asyncio.sleep(REQUEST_EXPIRES_S / 4)
            late = time.monotonic() - REQUEST_EXPIRES_S / 4
            while self._requests and self._requests[0].deadline < late:
                self._requests.popleft()
            await self._request_more()

    def _seal(self) -> None:
        """What was gathered becomes batches of consecutive stream sequences."""
        messages, self._gathering = self._gathering, []
        if not messages:
            return
        stats = self._counts()
        assert stats.pulled is not None and stats.redelivered is not None
        stats.pulled += len(messages)
        runs: list[list[tuple[int, Msg | None]]] = []
        for message in messages:
            delivered, sequence, pending = reply_fields(message.reply)
            if delivered > 1:
                stats.redelivered += 1
            stats.pending = pending
            gap = sequence - runs[-1][-1][0] - 1 if runs else -1
            if 0 <= gap <= MAX_GAP:
                # a subject filter over a stream of many subjects skips sequences: blank
                # lines (skipped by the router) stand for them, keeping the batch whole
                last = runs[-1][-1][0]
                runs[-1].extend((last + 1 + n, None) for n in range(gap))
                runs[-1].append((sequence, message))
            else:
                runs.append([(sequence, message)])
        now = time.monotonic()
        for run in runs:
            self._ready.put(self._batch(run, now))

    def _batch(self, run: list[tuple[int, Msg | None]], now: float) -> _Pulled:
        lines: list[bytes | OversizeLine] = []
        size = 0
        max_event_bytes = self._max_event_bytes
        for _, message in run:
            if message is None:
                lines.append(b"")
                continue
            data = message.data
            size += len(data)
            if data.endswith(b"\n"):
                data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            if b"\n" in data or b"\r" in data:
                # one message is one event: its line breaks are white space between
                # JSON's tokens, and become spaces so that it stays one line
                data = data.replace(b"\r", b" ").replace(b"\n", b" ")
            if len(data) > max_event_bytes:
                lines.append(OversizeLine(data[:RAW_LIMIT], len(data)))
                continue
            lines.append(data)
        held = _Held([message.reply for _, message in run if message is not None], now)
        self._held[id(held)] = held
        receipt = Receipt(lambda: self._on_settled(held))
        # scanned for long digit runs only if the router asks
        digits = DigitRuns(b"\n".join(line for line in lines if type(line) is bytes))
        return LineBatch(run[0][0], lines, digits), size, receipt, held

    def produce(self, give: Give, wakeup_fd: int | None, max_event_bytes: int) -> bool:
        self._counts()
        self._max_event_bytes = max_event_bytes
        self._loop.submit(self._request_more())
        while not self._stopping:
            try:
                batch, size, receipt, held = self._ready.get(timeout=STOP_CHECK_S)
            except queue.Empty:
                if self._failure is not None:
                    raise InputError(f"input {self.name}: {self._failure}") from None
                continue
            if not give(batch, size, receipt):
                # the run stopped taking: what was not handed on may go elsewhere now
                self._loop.submit(self._nak([held]))
                return False
            self._loop.submit(self._request_more())
        return True

    def _on_settled(self, held: _Held) -> None:
        """From any thread: the batch is safe; its acks go out on the loop."""
        self._settled.append(held)
        if not self._ack_scheduled:
            self._ack_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to ack
                self._loop.loop.call_soon_threadsafe(self._schedule_acks)

    def _schedule_acks(self) -> None:
        self._ack_scheduled = False
        asyncio.get_running_loop().create_task(self._ack_settled())

    async def _ack_settled(self) -> None:
        stats = self._counts()
        assert self._client is not None
        publish = self._client.publish
        while self._settled:
            held = self._settled.popleft()
            self._held.pop(id(held), None)
            for reply in held.replies:
                with contextlib.suppress(Exception):  # lost: the message comes again
                    await publish(reply, ACK)
                    assert stats.acked is not None
                    stats.acked += 1

    async def _nak(self, held: list[_Held]) -> None:
        """Batches that will not be acked: the server may hand them out again now."""
        assert self._client is not None
        for item in held:
            self._held.pop(id(item), None)
            for reply in item.replies:
                with contextlib.suppress(Exception):
                    await self._client.publish(reply, NAK)

    async def _keep_alive(self) -> None:
        """In-progress acks for batches held longer than a third of ack_wait."""
        assert self._client is not None
        every = self.options.ack_wait / 3
        while True:
            await asyncio.sleep(every / 2)
            due = time.monotonic() - every
            for held in list(self._held.values()):
                if held.since <= due:
                    held.since = time.monotonic()
                    for reply in held.replies:
                        with contextlib.suppress(Exception):
                            await self._client.publish(reply, IN_PROGRESS)

    def stop(self) -> None:
        """No more pulls; what was pulled and is routed still gets its acks."""
        self._stopping = True

    def close(self) -> None:
        """After the drain: the last acks out, the rest handed back, the connection closed."""
        self.stop()
        if self._loop.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._loop.call(self._finish(), CLOSE_TIMEOUT_S)
        self._loop.stop()

    async def _finish(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        self._seal()  # messages that came meanwhile: handed back below
        while not self._ready.empty():
            self._ready.get_nowait()
        await self._ack_settled()
        await self._nak(list(self._held.values()))
        await self._disconnect()

    async def _disconnect(self) -> None:
        if self._client is not None and not self._client.is_closed:
            with contextlib.suppress(Exception):
                await self._client.flush(timeout=2)
            with contextlib.suppress(Exception):
                await self._client.close()
