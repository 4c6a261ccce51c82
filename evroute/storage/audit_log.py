"""The audit log: one JSON line per outcome of each event, written as it happens.

Outcomes: `matched` (a route matched it), `delivered` (a consumer has it), `dropped` (a
full queue, a reader that left, or no route matched under `unmatched: drop`),
`dead-lettered` and `denied` (its producer may not publish its source). An event is
known by its `id` field (a string or an integer), else by a hash of its bytes.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson

from evroute.config.model import Rotation
from evroute.core.parcel import Letter
from evroute.errors import EvrouteError
from evroute.storage.archive_format import read_event
from evroute.storage.crypto import Key, read_lines
from evroute.storage.fileio import PartialWrite, RotatingFile, open_private, printable

if TYPE_CHECKING:
    from evroute.core.parcel import Parcel

OUTCOMES = ("matched", "delivered", "dropped", "dead-lettered", "denied")
# dead letter reasons whose outcome is not `dead-lettered`
LETTER_OUTCOMES = {"dropped": "dropped", "denied": "denied"}
HASH_PREFIX = "sha256:"
# 64 bits of the hash: short enough to read and type, ample to tell events apart
HASH_DIGITS = 16


def event_id(data: bytes, parsed: bool = True) -> str:
    """The event's `id` field when it is a string or an integer, else a hash of its bytes."""
    if parsed:
        event = read_event(data)
        if event is not None:
            value = event.get("id")
            if type(value) is str and value:
                return value
            if type(value) is int:
                return str(value)
    return HASH_PREFIX + hashlib.sha256(data.strip()).hexdigest()[:HASH_DIGITS]


def id_json(data: bytes, parsed: bool = True) -> bytes:
    """The event's id, as the JSON string the records hold."""
    return orjson.dumps(event_id(data, parsed))


# (input, line, the event's bytes as it came, whether it parsed, route, its id as JSON
# when known already)
Entry: TypeAlias = tuple[str | None, int | None, bytes, bool, str | None, bytes | None]


def utc_now() -> str:
    """Now, as dead letters and the audit log write times: RFC 3339, in milliseconds, UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Thread-safe, append-only, rotated by size; each call is one write."""

    def __init__(self, path: Path, rotation: Rotation | None, key: Key | None = None) -> None:
        self.path = path
        self._file = RotatingFile(
            path,
            rotation.bytes if rotation else None,
            rotation.keep if rotation else 0,
            open_private,
            key,
        )
        self._lock = threading.Lock()
        self.write_error: str | None = None

    def record(
        self,
        outcome: str,
        entries: Iterable[Entry],
        consumer: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        # A record per outcome is several per event: the parts a call's records share
        # are encoded once, and an event's id is worked out once, by the router, which
        # hands it on in the parcels.
        head = b'{"time":"%s","event":' % utc_now().encode()
        tail = b',"consumer":%s,"outcome":"%s"' % (orjson.dumps(consumer), outcome.encode())
        if reason is not None:
            tail += b',"reason":' + orjson.dumps(reason)
        if detail is not None:
            tail += b',"detail":' + orjson.dumps(detail)
        tail += b"}"
        names: dict[str | None, bytes] = {}
        routes: dict[str | None, bytes] = {}
        lines = []
        for input_name, line, data, parsed, route, event in entries:
            name = names.get(input_name)
            if name is None:
                shown = None if input_name is None else printable(input_name)
                name = names[input_name] = orjson.dumps(shown)
            route_json = routes.get(route)
            if route_json is None:
                route_json = routes[route] = orjson.dumps(route or None)
            if event is None:
                event = id_json(data, parsed)
            number = b"null" if line is None else b"%d" % line
            lines.append(
                b'%s%s,"input":%s,"line":%s,"route":%s%s'
                % (head, event, name, number, route_json, tail)
            )
        if not lines:
            return
        lines.append(b"")
        self._write(b"\n".join(lines))

    def letters(
        self,
        reason: str,
        detail: str,
        letters: Iterable[Letter],
        route: str | None,
        consumer: str | None,
    ) -> None:
        """Dead letters, as what became of their events."""
        outcome = LETTER_OUTCOMES.get(reason, "dead-lettered")
        entries = ((x.input, x.line, x.data, x.parsed, route, None) for x in letters)
        self.record(outcome, entries, consumer, reason, detail)

    def uncounted(self, outcome: str, events: int, consumer: str, reason: str, detail: str) -> None:
        """Events known only by their number (a spilled backlog thrown away unread)."""
        line = orjson.dumps(
            {
                "time": utc_now(),
                "event": None,
                "events": events,
                "input": None,
                "line": None,
                "route": None,
                "consumer": consumer,
                "outcome": outcome,
                "reason": reason,
                "detail": detail,
            }
        )
        self._write(line + b"\n")

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self.write_error is not None:
                return
            try:
                self._file.write(data)
            except (OSError, PartialWrite) as error:
                self.write_error = f"cannot write the audit log {self.path}: {error}"

    def close(self) -> None:
        with self._lock:
            self._file.close()


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    """Which records to show: None matches anything."""

    event: str | None = None
    route: str | None = None
    consumer: str | None = None
    outcome: str | None = None

    def selects(self, record: dict[str, Any]) -> bool:
        return (
            (self.event is None or record.get("event") == self.event)
            and (self.route is None or record.get("route") == self.route)
            and (self.consumer is None or record.get("consumer") == self.consumer)
            and (self.outcome is None or record.get("outcome") == self.outcome)
        )


class AuditReadError(EvrouteError):
    """The log is missing, or a line of it is not an audit record."""


def log_files(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first: LOG.N ... LOG.1, LOG."""
    rotated: list[tuple[int, Path]] = []
    for candidate in path.parent.glob(f"{glob.escape(path.name)}.*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def read_records(
    path: Path, query: AuditQuery, key: Key | None
) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, line, record) of each record the query selects, oldest first."""

    if path.is_dir():
        raise AuditReadError(f"{path}: is a folder; name the audit log (the config's audit:)")
    files = log_files(path)
    if not files:
        raise AuditReadError(f"{path}: no such audit log")
    for file in files:
        try:
            for number, line in enumerate(read_lines(file, key), 1):
                if not line.strip():
                    continue
                record = _record(file, number, line)
                if query.selects(record):
                    yield file, number, record
        except OSError as error:
            raise AuditReadError(f"{file}: cannot read: {error.strerror or error}") from None


def _record(file: Path, number: int, line: bytes) -> dict[str, Any]:
    """An audit record; AuditReadError, with where, for a line that is none (a dead
    letter file or an events file given by mistake)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise AuditReadError(f"{file}:{number}: not an audit record: {error}") from None
    if type(record) is not dict or record.get("outcome") not in OUTCOMES:
        raise AuditReadError(
            f"{file}:{number}: not an audit record (it has no audit outcome); is this the"
            " config's audit: file?"
        )
    return record


def parcel_entries(
    parcels: Iterable[Parcel], skip: Iterable[int] = (), limit: int = -1
) -> Iterator[Entry]:
    """The events of parcels as audit entries: the first `limit` (all when -1), but for
    the indexes in `skip` (counted across the parcels)."""
    skipped = set(skip)
    index = 0
    for parcel in parcels:
        originals = parcel.originals if parcel.originals is not None else parcel.payloads
        routes = itertools.repeat(parcel.route) if isinstance(parcel.route, int) else parcel.route
        ids: Iterable[bytes | None] = (
            parcel.ids if parcel.ids is not None else itertools.repeat(None)
        )
        names, first, input_name = parcel.routes, parcel.first, parcel.input
        # repeat() is endless: the positions end the zip
        events = zip(parcel.positions, routes, originals, ids, strict=False)
        for position, route, original, known in events:
            if index == limit:
                return
            if index not in skipped:
                yield input_name, first + position, original, True, names[route], known
            index += 1
