"""Dead letters: one JSON line per event that could not be routed or delivered."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

REASONS = (
    "malformed",
    "filter_error",
    "delivery_failed",
    "dropped",
    "unmatched",
    "shutdown",
    "denied",
)
RAW_LIMIT = 4096


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw_text(line: bytes) -> str:
    """The line as text for `raw`: invalid UTF-8 escaped with backslashes, cut to 4 KiB."""
    return line[:RAW_LIMIT].decode("utf-8", errors="backslashreplace")


def open_private(path: Path, truncate: bool = False) -> int:
    """A file evroute keeps for itself: 0600, in folders it creates 0700."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)


class DeadLetters:
    """Thread-safe writer; without a path, dead letters are only counted."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.write_error: str | None = None

    def open(self) -> None:
        """Check that the file can be written; it is created at the first dead letter."""
        if self.path is not None and not self.path.exists():
            parent = next((p for p in self.path.parents if p.exists()), None)
            if parent is not None and not os.access(parent, os.W_OK):
                raise PermissionError(13, "Permission denied", str(self.path))

    def add(
        self,
        reason: str,
        detail: str,
        input_name: str | None,
        line: int | None,
        route: str | None = None,
        consumer: str | None = None,
        payload: bytes | None = None,
        event: Any = None,
        total_bytes: int | None = None,
    ) -> None:
        """Record one dead letter. `payload` is parsed for `event`, else kept as `raw`."""
        self.add_many(
            reason, detail, [(input_name, line, payload, event, total_bytes)], route, consumer
        )

    def add_many(
        self,
        reason: str,
        detail: str,
        items: list[tuple[str | None, int | None, bytes | None, Any, int | None]],
        route: str | None = None,
        consumer: str | None = None,
    ) -> None:
        """Record several dead letters of one reason: (input, line, payload, event, bytes)."""
        if not items:
            return
        with self._lock:
            self.counts[reason] += len(items)
            if self.path is None:
                return
            now = utc_now()
            lines = []
            for input_name, line, payload, event, total_bytes in items:
                record: dict[str, Any] = {
                    "time": now,
                    "reason": reason,
                    "detail": detail,
                    "input": input_name,
                    "line": line,
                    "route": route,
                    "consumer": consumer,
                }
                if event is None and payload is not None and total_bytes is None:
                    try:
                        event = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        event = None
                if isinstance(event, dict):
                    record["event"] = event
                elif payload is not None:
                    record["raw"] = raw_text(payload)
                    size = total_bytes if total_bytes is not None else len(payload)
                    if size > RAW_LIMIT or total_bytes is not None:
                        record["bytes"] = size
                lines.append(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS))
            try:
                if self._fd is None:
                    self._fd = open_private(self.path)
                _write_all(self._fd, b"\n".join(lines) + b"\n")
            except OSError as error:
                # counted all the same; the run reports that the file could not be written
                self.write_error = f"cannot write dead letters to {self.path}: {error.strerror}"

    @property
    def failures(self) -> int:
        """Dead letters that mean something was not delivered (all but `unmatched`)."""
        return sum(count for reason, count in self.counts.items() if reason != "unmatched")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
