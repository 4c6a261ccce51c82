"""The writer of the `nats` consumer kind (sinks/nats.py has its options): each event
published to NATS JetStream and delivered once the stream has acknowledged it.

A batch is published pipelined (every message out, then the acknowledgements awaited);
what is not acknowledged in time is published again with the same message id, which
the stream's duplicate window turns into a no-op if the first copy did arrive. After
`retries` further attempts, an event is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from evroute.nats.client import CONNECT_TIMEOUT_S, LoopThread, connect, ensure_stream
from evroute.nats.options import NatsProblem
from evroute.shaping.templates import TemplateError, read_payload, render_subject
from evroute.sinks.base import (
    EventFailure,
    Sink,
    SinkFailed,
    attempts_note,
    backoff_or_give_up,
)

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from evroute.config.model import ConsumerConfig
    from evroute.sinks.nats import NatsSinkOptions

# How long the stream may take to acknowledge a publish before it is tried again.
PUBLISH_ACK_TIMEOUT_S = 5.0
# A subject longer than this would overflow nats-server's control line (4 KiB, with the
# reply subject and the sizes), and the server would close the connection.
MAX_SUBJECT_BYTES = 3800
# What the Nats-Msg-Id header adds to a message, besides the id itself.
HEADER_BYTES = len(b"NATS/1.0\r\nNats-Msg-Id: \r\n\r\n")
NO_RESPONDERS = "no responders"  # an answer of the server's, told apart by identity


class NatsSink(Sink):
    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.options: NatsSinkOptions = config.options
        self._loop: LoopThread | None = None
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._prefix = ""  # this run's message ids: unique, so a retry is deduplicated
        self._inbox = ""  # where acknowledgements come, each to INBOX.<its message's number>
        self._waiting: dict[str, asyncio.Future[str]] = {}

    def prepare(self) -> None:
        """Connect before the run starts: a server that cannot be reached, or a stream
        that is not there, stops the run at once rather than failing the consumer."""
        self._loop = LoopThread(f"nats-consumer-{self.name}")
        try:
            self._loop.call(self._open(), CONNECT_TIMEOUT_S + 10)
        except NatsProblem as problem:
            self.close(0)
            raise SinkFailed(str(problem)) from None
        except Exception as error:
            self.close(0)
            raise SinkFailed(f"cannot publish to NATS: {error}") from None

    def open(self) -> None:
        if self._loop is None:  # prepare() was not called (a library user)
            self.prepare()

    async def _open(self) -> None:
        import nats.nuid

        self._client = await connect(self.options.connection, f"consumer {self.name}", _ignore)
        self._js = self._client.jetstream()
        self._inbox = self._client.new_inbox() + "."
        await self._client.subscribe(
            self._inbox + "*", cb=self._on_reply, pending_msgs_limit=0, pending_bytes_limit=0
        )
        if self.options.stream is not None:
            await ensure_stream(self._js, self.options.stream, self.options.connection.shown)
        self._prefix = nats.nuid.NUID().next().decode() + "-"

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        """Publish the batch; acknowledged events are delivered, the rest given up on."""
        if self._loop is None:
            raise SinkFailed("not connected to NATS")
        failures: list[EventFailure] = []
        subjects: list[str | None] = []
        template = self.options.template
        for index, payload in enumerate(payloads):
            if template is None:
                subjects.append(self.options.subject)
                continue
            try:
                subjects.append(render_subject(template, read_payload(payload)))
            except TemplateError as error:
                failures.append((index, "delivery_failed", f"subject template: {error}"))
                subjects.append(None)
            except (ValueError, RecursionError) as error:
                detail = f"subject template: cannot read the event: {error}"
                failures.append((index, "delivery_failed", detail))
                subjects.append(None)
        assert self._client is not None
        max_payload = self._client.max_payload
        pending: list[tuple[int, str, bytes, str]] = []
        for index, (subject, payload) in enumerate(zip(subjects, payloads, strict=True)):
            if subject is None:
                continue
            message_id = f"{self._prefix}{next(self._ids)}"
            # what the server would refuse by closing the connection, which would take
            # the rest of the batch down with it: refused here, one event alone
            if len(subject.encode()) > MAX_SUBJECT_BYTES:
                detail = f"its subject is {len(subject.encode()):,} bytes, over {MAX_SUBJECT_BYTES}"
                failures.append((index, "delivery_failed", detail))
            elif len(payload) + HEADER_BYTES + len(message_id) > max_payload:
                detail = (
                    f"the event is {len(payload):,} bytes: with its header, over the"
                    f" server's max_payload ({max_payload:,})"
                )
                failures.append((index, "delivery_failed", detail))
            else:
                pending.append((index, subject, payload, message_id))
        attempts = 0
        while pending:
            errors = self._loop.call(self._publish(pending))
            failed = [item for item, error in zip(pending, errors, strict=True) if error]
            if not failed:
                break
            attempts += 1
            last_error = next(error for error in errors if error)
            reason = backoff_or_give_up(attempts, self.config.queue.retries, self._stop)
            if reason is not None:
                detail = f"cannot publish to NATS: {last_error}{attempts_note(attempts)}"
                failures.extend((index, reason, detail) for index, _, _, _ in failed)
                break
            pending = failed
        return sorted(failures)

    async def _publish(self, pending: list[tuple[int, str, bytes, str]]) -> list[str]:
        """Publish each, then await the acknowledgements; per item, the error or ''.

        Each message names a reply subject of this sink's own inbox, whose token finds
        its future again: JetStream's acknowledgement comes there.
        """
        import nats.errors

        assert self._client is not None
        publish = self._client.publish
        waiting = self._waiting
        prefix = self._inbox
        loop = asyncio.get_running_loop()
        errors = [""] * len(pending)
        futures: list[tuple[int, str, asyncio.Future[str]]] = []
        for position, (_, subject, payload, message_id) in enumerate(pending):
            token = message_id[len(self._prefix) :]
            future: asyncio.Future[str] = loop.create_future()
            waiting[token] = future
            try:
                await publish(
                    subject, payload, reply=prefix + token, headers={"Nats-Msg-Id": message_id}
                )
            except (nats.errors.Error, OSError) as error:
                del waiting[token]
                errors[position] = _describe(error)
                continue
            futures.append((position, token, future))
        if futures:
            await asyncio.wait([future for _, _, future in futures], timeout=PUBLISH_ACK_TIMEOUT_S)
        for position, token, future in futures:
            if future.done():
                errors[position] = future.result()
                if errors[position] is NO_RESPONDERS:
                    errors[position] = f"no stream takes subject {pending[position][1]!r}"
            else:
                waiting.pop(token, None)
                future.cancel()
                errors[position] = f"no acknowledgement within {PUBLISH_ACK_TIMEOUT_S:g}s"
        return errors

    async def _on_reply(self, message: Msg) -> None:
        """JetStream's answer to a publish: an acknowledgement, or why not."""
        future = self._waiting.pop(message.subject[len(self._inbox) :], None)
        if future is None or future.done():
            return  # answered after its wait ran out: it will be published again
        status = message.headers.get("Status") if message.headers else None
        if status == "503":
            future.set_result(NO_RESPONDERS)
        elif b'"error"' in message.data:
            try:
                error = orjson.loads(message.data)["error"]
                future.set_result(f"the stream refused it: {error.get('description', error)}")
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                future.set_result(f"the stream refused it: {message.data[:200]!r}")
        else:
            future.set_result("")

    def terminate(self) -> None:
        self._stop.set()

    def close(self, linger: float) -> str | None:
        if self._loop is None:
            return None
        with contextlib.suppress(Exception):
            self._loop.call(self._close(), min(max(linger, 1.0), 5.0))
        self._loop.stop()
        self._loop = None
        return None

    async def _close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            with contextlib.suppress(Exception):
                await self._client.flush(timeout=2)
            await self._client.close()


def _describe(error: BaseException | None) -> str:
    return (str(error).strip() or type(error).__name__) if error is not None else "unknown"


def _ignore(message: str) -> None:
    """A consumer's lost connection is said by the failures it causes, if any."""
