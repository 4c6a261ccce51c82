"""The `nats` consumer kind: each event published to NATS JetStream, on a subject that
may be templated from the event (`routed.{"detail-type"}`), delivered once the stream
has acknowledged it.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from evroute.natsconn import (
    CONNECT_TIMEOUT_S,
    CONNECTION_KEYS,
    LoopThread,
    NatsConnection,
    NatsProblem,
    StreamSpec,
    connect,
    ensure_stream,
    parse_connection,
    parse_stream,
    subject_problem,
)
from evroute.sinks.base import (
    RETRY_BACKOFF_S,
    RETRY_MAX_BACKOFF_S,
    EventFailure,
    Sink,
    SinkFailed,
    SinkKind,
    backoff_delay,
)
from evroute.sinks.path_template import (
    PathTemplate,
    TemplateError,
    TemplateSyntaxError,
    is_template,
    read_payload,
    unescape,
)
from evroute.sinks.path_template import parse as parse_template

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

    from evroute.config.check import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node

NATS_CONSUMER_KEYS = (*CONNECTION_KEYS, "subject", "stream")
# How long the stream may take to acknowledge a publish before it is tried again.
PUBLISH_ACK_TIMEOUT_S = 5.0
# A value in a subject: the characters that would split it into tokens or be wildcards.
_SUBJECT_UNSAFE = str.maketrans({char: "_" for char in " \t\r\n.*>"})
NULL_TOKEN = "_"


@dataclass(frozen=True)
class NatsSinkOptions:
    connection: NatsConnection
    subject: str  # as written (braces unescaped when it is no template)
    template: PathTemplate | None = None
    stream: StreamSpec | None = None


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> NatsSinkOptions | None:
    from evroute.config.check import join, source_position

    node = fields["nats"]
    path = join(path, "nats")
    mapping = checker.mapping(node, path)
    if mapping is None:
        return None
    checker.known_keys(node, path, NATS_CONSUMER_KEYS, {})
    connection = parse_connection(checker, node, mapping, path, base_dir)
    ok = connection is not None
    stream = None
    if "stream" in mapping:
        stream = parse_stream(checker, mapping["stream"], join(path, "stream"))
        ok = ok and stream is not None
    subject = None
    template = None
    if "subject" not in mapping:
        checker.error(node, join(path, "subject"), "is missing: the subject to publish on")
        return None
    subject_node = mapping["subject"]
    subject = checker.string(subject_node, join(path, "subject"))
    if subject is None:
        return None
    if is_template(subject):
        try:
            template = parse_template(subject)
        except TemplateSyntaxError as error:
            line, column = source_position(subject_node, error.position)
            checker.report(
                "error",
                subject_node,
                join(path, "subject"),
                f"subject template: {error.message} (at position {error.position} of {subject!r})",
                line=line,
                column=column,
            )
            return None
        literal = template.pattern("x")
    else:
        subject = literal = unescape(subject)
    problem = subject_problem(literal, wildcards=False)
    if problem is not None:
        checker.error(subject_node, join(path, "subject"), problem)
        return None
    if not ok or connection is None:
        return None
    return NatsSinkOptions(connection, subject, template, stream)


def subject_value(value: Any) -> str:
    """A JSON value as one token of a subject: no dots, wildcards or white space."""
    if value is None:
        return NULL_TOKEN
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        from evroute.sinks.path_template import _compact_json

        text = _compact_json(value)
    text = text.translate(_SUBJECT_UNSAFE)
    if not text.isprintable():  # control characters and the like: rare, so checked once
        text = "".join(char if char.isprintable() else "_" for char in text)
    return text or NULL_TOKEN


def render_subject(template: PathTemplate, data: Any) -> str:
    """The subject for `data`; TemplateError when an expression fails for it."""
    names = []
    for component in template.components:
        if isinstance(component, str):
            names.append(component)
            continue
        parts = []
        for part in component:
            if isinstance(part, str):
                parts.append(part)
                continue
            try:
                value = part.search_function(data)
            except Exception as raised:
                raise TemplateError(f"{{{part.source}}} failed: {part.error(raised)}") from None
            parts.append(subject_value(value))
        names.append("".join(parts))
    return "/".join(names)


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
        self._loop = LoopThread(f"consumer-{self.name}")
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
        pending = [
            (index, subject, payload, f"{self._prefix}{next(self._ids)}")
            for index, (subject, payload) in enumerate(zip(subjects, payloads, strict=True))
            if subject is not None
        ]
        attempts = 0
        while pending:
            errors = self._loop.call(self._publish(pending))
            failed = [item for item, error in zip(pending, errors, strict=True) if error]
            if not failed:
                break
            attempts += 1
            last_error = next(error for error in errors if error)
            delay = backoff_delay(attempts, RETRY_BACKOFF_S, RETRY_MAX_BACKOFF_S)
            if attempts > self.config.queue.retries or self._stop.wait(delay):
                reason = "shutdown" if self._stop.is_set() else "delivery_failed"
                detail = f"cannot publish to NATS: {last_error}"
                detail += f" ({attempts} attempt{'s' if attempts > 1 else ''})"
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
            subject = message.subject
            future.set_result(f"no stream takes the subject (no responders for {subject!r})")
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


def create(config: ConsumerConfig, base_dir: Path) -> Sink:
    return NatsSink(config, base_dir)


KIND = SinkKind(
    name="nats",
    keys=("nats",),
    later={},
    parse_options=parse_options,
    create=create,
)
