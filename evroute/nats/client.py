"""Talking to NATS: connecting with a clear error, making a stream, and the asyncio loop
that nats-py needs, in a thread of its own. Imported only by runs that use NATS."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from evroute.nats.options import NatsConnection, NatsProblem, StreamSpec, TlsFiles

if TYPE_CHECKING:
    import ssl

    from nats.aio.client import Client
    from nats.js import JetStreamContext

# A server that cannot be reached at start is an error after this long; once connected,
# a lost connection is tried again without end, as the run must not lose its place.
CONNECT_TIMEOUT_S = 5.0
RECONNECT_WAIT_S = 0.5
# Attempts failed outright (refused, a login refused) after which connecting gives up.
FAILURES_TO_GIVE_UP = 3

T = TypeVar("T")


def tls_context(tls: TlsFiles | None) -> ssl.SSLContext:
    import ssl

    context = ssl.create_default_context(
        cafile=None if tls is None or tls.ca is None else str(tls.ca)
    )
    if tls is not None and tls.cert is not None and tls.key is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    return context


async def connect(
    settings: NatsConnection,
    name: str,
    warn: Callable[[str], None],
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """A connection to the servers, reconnecting without end once made; NatsProblem when
    none can be reached within CONNECT_TIMEOUT_S."""
    import nats

    errors: list[BaseException] = []
    connection_errors = (
        OSError,
        TimeoutError,
        nats.errors.ConnectionClosedError,
        nats.errors.UnexpectedEOF,
        nats.errors.StaleConnectionError,
        nats.errors.NoServersError,
    )
    connected = False
    made: list[Client] = []
    who = f"{name}: " if name else ""

    async def on_error(error: Exception) -> None:
        if not connected:
            errors.append(error)
        elif not isinstance(error, connection_errors):  # those: the reconnect says so
            warn(f"{who}NATS: {type(error).__name__}: {error}")

    async def on_disconnect() -> None:
        if connected and not (made and made[0].is_closed):  # not when evroute closes it
            warn(f"{who}lost the connection to NATS ({settings.shown}); reconnecting")

    async def on_reconnected() -> None:
        warn(f"{who}reconnected to NATS")
        if on_reconnect is not None:
            await on_reconnect()

    options: dict[str, Any] = {
        "servers": list(settings.servers),
        "name": f"evroute {name}".strip(),
        "connect_timeout": 2,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT_S,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnected,
    }
    try:
        if settings.tls is not None or any(s.startswith("tls://") for s in settings.servers):
            options["tls"] = tls_context(settings.tls)
    except OSError as error:  # ssl.SSLError is one
        raise NatsProblem(f"cannot load the TLS files: {error}") from None
    if settings.creds is not None:
        options["user_credentials"] = str(settings.creds)
    if settings.user is not None:
        options["user"] = settings.user
        options["password"] = settings.password or ""
    try:
        client = await _connect_or_give_up(nats.connect(**options), errors)
    except (TimeoutError, OSError, nats.errors.Error) as error:
        errors.append(error)
        refused = [
            e
            for e in errors
            if isinstance(e, nats.errors.AuthorizationError)
            or "authorization violation" in str(e).lower()
        ]
        if refused:
            why = (
                "the server refused who we are (authorization violation): check user and"
                " password, creds or the client certificate"
            )
        else:
            # the first error says most: later ones are often the retries' resets
            telling = [e for e in errors if not isinstance(e, TimeoutError)]
            what = _describe(telling[0]) if telling else f"no answer within {CONNECT_TIMEOUT_S:g}s"
            why = f"{what}; is nats-server running there (with -js)?"
        raise NatsProblem(f"cannot connect to NATS at {settings.shown}: {why}") from None
    connected = True
    made.append(client)
    return client


async def _connect_or_give_up(
    connecting: Coroutine[Any, Any, Client], errors: list[BaseException]
) -> Client:
    """The connection, within CONNECT_TIMEOUT_S; given up on sooner when attempts fail
    outright (nothing listens there, the login is refused): waiting would not help."""
    task = asyncio.ensure_future(connecting)
    deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT_S
    try:
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError
            done, _ = await asyncio.wait({task}, timeout=min(remaining, 0.1))
            if done:
                return task.result()
            # a refusal, a login refused, a failed handshake: each attempt fails the
            # same way at once; a network that is only slow gives timeouts instead
            definite = [e for e in errors if not isinstance(e, TimeoutError)]
            if len(definite) >= FAILURES_TO_GIVE_UP:
                raise TimeoutError
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return text


async def ensure_stream(js: JetStreamContext, spec: StreamSpec, where: str) -> None:
    """The stream exists, or is made now when the spec gives its subjects."""
    import nats.js.errors

    try:
        await js.stream_info(spec.name)
        return
    except nats.js.errors.NotFoundError:
        pass
    except nats.errors.NoRespondersError:
        raise NatsProblem(f"NATS at {where} has no JetStream; start nats-server with -js") from None
    if spec.subjects is None:
        raise NatsProblem(
            f"stream {spec.name!r} does not exist on NATS at {where}; create it, or write"
            f" stream: {{name: {spec.name}, subjects: [...]}} to have evroute create it"
        )
    from nats.js.api import StorageType, StreamConfig

    try:
        await js.add_stream(
            StreamConfig(name=spec.name, subjects=list(spec.subjects), storage=StorageType.FILE)
        )
    except nats.js.errors.BadRequestError as error:
        raise NatsProblem(
            f"cannot create stream {spec.name!r} on NATS at {where}: {error}"
        ) from None


class LoopThread:
    """An asyncio loop in a thread of its own, for code running in other threads."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the loop and wait for its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run `coroutine` on the loop, not waiting for it."""
        with contextlib.suppress(RuntimeError):  # the loop is closed
            asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self, timeout: float = 5.0) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            if not self.thread.is_alive():
                self.loop.close()
