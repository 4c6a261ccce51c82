"""A real nats-server with JetStream on a loopback port, for the tests and the benchmark.

No mocks: each user starts its own server on a free port with a temporary store, and
talks to it with nats-py, the client evroute itself uses.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

MISSING = "nats-server is not installed (Debian package nats-server)"
START_TIMEOUT = 10.0  # a cold start with JetStream's store recovery takes well under 1 s
STOP_TIMEOUT = 10.0


def find_nats_server() -> str | None:
    """The nats-server binary: on PATH, else where Debian puts it (/usr/sbin is not on
    every user's PATH)."""
    found = shutil.which("nats-server")
    if found:
        return found
    debian = Path("/usr/sbin/nats-server")
    return str(debian) if os.access(debian, os.X_OK) else None


def require_nats_server() -> str:
    """The binary, or skip the test; under EVROUTE_REQUIRE_NATS=1 (CI) fail it instead,
    so a CI run cannot pass by skipping every NATS test."""
    binary = find_nats_server()
    if binary is None:
        if os.environ.get("EVROUTE_REQUIRE_NATS") == "1":
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    return binary


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class NatsServer:
    """One nats-server -js process; restartable on the same port and store."""

    def __init__(
        self,
        binary: str,
        store: Path,
        log: Path,
        extra: tuple[str, ...] = (),
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.binary = binary
        self.extra = extra  # more options: TLS, users...
        self.client_options = client_options or {}  # ...and what a client then needs
        self.store = store
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait, bounded, until it accepts connections."""
        assert self.process is None, "already running"
        store = [str(self.store)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    *("-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", *store),
                    *self.extra,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts(self.port):
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"nats-server exited at start: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server not up after {START_TIMEOUT}s: {self.log_tail()}")
            time.sleep(0.02)
        # the port opens before JetStream has recovered its store: wait for that too
        asyncio.run(self._wait_for_jetstream(deadline))

    async def _wait_for_jetstream(self, deadline: float) -> None:
        while True:
            try:
                client = await nats.connect(
                    self.url, connect_timeout=1, allow_reconnect=False, **self.client_options
                )
                try:
                    await client.jetstream().account_info()
                    return
                finally:
                    await client.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, wait; SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same store."""
        self.stop()
        self.start()

    def log_tail(self, size: int = 2000) -> str:
        return self.log.read_bytes()[-size:].decode(errors="replace")


@contextmanager
def serving(
    folder: Path, extra: tuple[str, ...] = (), client_options: dict[str, Any] | None = None
) -> Iterator[NatsServer]:
    """A server of a test's own, its store and log in `folder`, running for the block;
    the test is skipped (or failed in CI) without nats-server."""
    binary = require_nats_server()
    server = NatsServer(binary, folder / "store", folder / "server.log", extra, client_options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_server() -> Iterator[NatsServer]:
    """A server outside pytest (the benchmark), in a temporary folder removed at exit."""
    binary = find_nats_server()
    if binary is None:
        raise SystemExit(MISSING)
    with tempfile.TemporaryDirectory(prefix="evroute-nats-") as name:
        folder = Path(name)
        server = NatsServer(binary, folder / "store", folder / "server.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()


# --- what a test does with the server, each call a short-lived nats-py client -------


@dataclass(frozen=True)
class Message:
    subject: str
    data: bytes
    sequence: int


async def _connect(url: str) -> Any:
    return await nats.connect(url, connect_timeout=5, allow_reconnect=False)


def create_stream(url: str, name: str, subjects: list[str]) -> None:
    """A file-backed stream (so it survives a server restart)."""

    async def main() -> None:
        client = await _connect(url)
        try:
            await client.jetstream().add_stream(StreamConfig(name=name, subjects=subjects))
        finally:
            await client.close()

    asyncio.run(main())


def publish(url: str, subject: str, payloads: Iterable[bytes], window: int = 2000) -> int:
    """Publish each payload (its trailing newline cut off) to `subject`, pipelined, every
    publish acknowledged by the stream before this returns; the number published."""

    async def main() -> int:
        client = await _connect(url)
        try:
            js = client.jetstream(publish_async_max_pending=window)
            count = 0
            for payload in payloads:
                await js.publish_async(subject, payload.rstrip(b"\n"))
                count += 1
            await asyncio.wait_for(js.publish_async_completed(), timeout=60)
            return count
        finally:
            await client.close()

    return asyncio.run(main())


def add_durable(
    url: str, stream: str, durable: str, ack_policy: str, deliver_subject: str | None = None
) -> None:
    """A durable consumer made by someone else, with the ack policy given ("all",
    "explicit"...): a pull consumer, or a push one delivering to `deliver_subject`."""

    async def main() -> None:
        client = await _connect(url)
        try:
            await client.jetstream().add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=durable,
                    ack_policy=AckPolicy(ack_policy),
                    deliver_subject=deliver_subject,
                ),
            )
        finally:
            await client.close()

    asyncio.run(main())


def delete_consumer(url: str, stream: str, durable: str) -> None:
    async def main() -> None:
        client = await _connect(url)
        try:
            await client.jetstream().delete_consumer(stream, durable)
        finally:
            await client.close()

    asyncio.run(main())


def stream_info(url: str, stream: str) -> Any:
    async def main() -> Any:
        client = await _connect(url)
        try:
            return await client.jetstream().stream_info(stream)
        finally:
            await client.close()

    return asyncio.run(main())


def consumer_info(url: str, stream: str, durable: str) -> Any | None:
    """The durable consumer's info, None when it does not exist (yet)."""

    async def main() -> Any | None:
        client = await _connect(url)
        try:
            return await client.jetstream().consumer_info(stream, durable)
        except NotFoundError:
            return None
        finally:
            await client.close()

    return asyncio.run(main())


def read_stream(url: str, stream: str, timeout: float = 60) -> list[Message]:
    """Every message the stream holds, in stream order, through an ordered push consumer
    (ephemeral, so the stream and its other consumers stay as they were): about 10 us a
    message, where fetching from a pull consumer takes 40."""

    async def main() -> list[Message]:
        client = await _connect(url)
        try:
            js = client.jetstream()
            wanted = (await js.stream_info(stream)).state.messages
            messages: list[Message] = []
            complete = asyncio.Event()

            async def receive(message: Any) -> None:
                sequence = message.metadata.sequence.stream
                messages.append(Message(message.subject, message.data, sequence))
                if len(messages) >= wanted:
                    complete.set()

            if wanted == 0:
                return messages
            subscription = await js.subscribe(
                "",
                stream=stream,
                cb=receive,
                ordered_consumer=True,
                pending_msgs_limit=-1,
                pending_bytes_limit=-1,
            )
            try:
                await asyncio.wait_for(complete.wait(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"read {len(messages)} of {wanted} messages of {stream}"
                ) from None
            finally:
                await subscription.unsubscribe()
            return messages
        finally:
            await client.close()

    return asyncio.run(main())
