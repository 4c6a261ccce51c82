"""A consumer's backlog on disk: append-only segment files in a private folder.

The consumer's queue (engine/queues.py) appends parcels when its memory is full and
reads them back in the order they were written. Each parcel is one record:

    header: body bytes (u64), metadata bytes (u32), input-name bytes (u32), little-endian
    body:   metadata (orjson: routes, first, positions, route, payload lengths,
            original lengths or null), the input name (UTF-8, surrogates kept), the
            payloads, then the originals, back to back

With a key (the config's `encrypt:`), each segment file is sealed as storage/crypto.py
says: a header of its own, and each record sealed on its way out, opened on its way
back; a record that fails authentication loses its segment, as an unreadable one does.

A segment is deleted once every record in it has been read back; the folder goes with
the last one, so it exists only while there is a backlog. Not thread-safe: the queue
calls it under its lock.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import struct
import tempfile
from collections import deque
from dataclasses import dataclass
from typing import BinaryIO

import orjson

from evroute.core.parcel import Parcel
from evroute.storage.crypto import (
    HEADER_BYTES,
    LENGTH,
    MAX_RECORD_BYTES,
    TAG_BYTES,
    Key,
    RecordReader,
    Sealer,
    Tampered,
)

# Big enough that rotation is rare, small enough that a read-back frees disk early.
# A folder for spill folders, instead of the system temp folder.
SPILL_DIR_VARIABLE = "EVROUTE_SPILL_DIR"
SEGMENT_BYTES = 16 << 20
HEADER = struct.Struct("<QII")
# what sealing adds at most to a record: its length and tag, and its segment's header
SEALED_OVERHEAD = LENGTH.size + TAG_BYTES + HEADER_BYTES

# Folders of live stores, removed at exit should a run end without settling its queues.
_live_folders: set[str] = set()


@atexit.register
def _remove_live_folders() -> None:
    for folder in list(_live_folders):
        shutil.rmtree(folder, ignore_errors=True)


class SpillLost(Exception):
    """Spilled events that could not be read back (their segment was unreadable)."""

    def __init__(self, events: int, detail: str) -> None:
        super().__init__(detail)
        self.events = events
        self.detail = detail


@dataclass(slots=True)
class Segment:
    path: str
    bytes: int = 0
    records: int = 0
    events: int = 0
    records_read: int = 0
    events_read: int = 0
    sealer: Sealer | None = None  # with a key: this segment's


def encode(parcel: Parcel) -> bytes:
    """One record holding `parcel` exactly."""
    originals = parcel.originals
    input_name = parcel.input.encode("utf-8", "surrogatepass")
    meta = orjson.dumps(
        [
            list(parcel.routes),
            parcel.first,
            parcel.positions,
            parcel.route,
            list(map(len, parcel.payloads)),
            None if originals is None else list(map(len, originals)),
        ]
    )
    body = len(meta) + len(input_name) + sum(map(len, parcel.payloads))
    if originals is not None:
        body += sum(map(len, originals))
    return b"".join(
        [
            HEADER.pack(body, len(meta), len(input_name)),
            meta,
            input_name,
            *parcel.payloads,
            *(originals or ()),
        ]
    )


def _slices(body: bytes, start: int, lengths: list[int]) -> tuple[list[bytes], int]:
    """The byte strings of `lengths`, back to back from `start`; and where they end."""
    ends = list(itertools.accumulate(lengths, initial=start))
    return [body[a:b] for a, b in itertools.pairwise(ends)], ends[-1]


def decode(body: bytes, meta_bytes: int, input_bytes: int) -> Parcel:
    """The parcel of one record's body; ValueError when it does not hold together."""
    routes, first, positions, route, payload_lengths, original_lengths = orjson.loads(
        body[:meta_bytes]
    )
    offset = meta_bytes + input_bytes
    input_name = body[meta_bytes:offset].decode("utf-8", "surrogatepass")
    payloads, offset = _slices(body, offset, payload_lengths)
    originals = None
    if original_lengths is not None:
        originals, offset = _slices(body, offset, original_lengths)
    if offset != len(body) or len(positions) != len(payloads):
        raise ValueError("a spill record does not match its own lengths")
    return Parcel(input_name, tuple(routes), first, payloads, positions, route, originals)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SpillStore:
    """Parcels on disk, first in first out, using at most `max_bytes` of it."""

    def __init__(
        self,
        max_bytes: int,
        segment_bytes: int | None = None,
        parent: str | None = None,
        key: Key | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.key = key
        # several segments fit in the limit, so reading back frees room before it is all read
        self.segment_bytes = segment_bytes or max(1, min(SEGMENT_BYTES, max_bytes // 4))
        self.parent = parent
        self.folder: str | None = None
        self.events = 0  # events written and not yet read back
        self.bytes = 0  # bytes of the segment files
        self._segments: deque[Segment] = deque()
        self._numbers = itertools.count()
        self._write_fd: int | None = None  # the last segment's, while it takes records
        self._reader: BinaryIO | None = None  # the first segment's
        self._unsealer: RecordReader | None = None  # its records, with a key
        self._routes: tuple[str, ...] = ()  # the last routes read, shared by the parcels

    def append(self, parcel: Parcel, sync: bool = False) -> int:
        """Write as many of the parcel's first events as the limit allows; how many.
        With `sync`, they are on disk (fsync) when it returns.

        OSError (disk full, a folder it cannot create) leaves the store as it was.
        """
        room = self.max_bytes - self.bytes - (0 if self.key is None else SEALED_OVERHEAD)
        if not len(parcel) or room < HEADER.size + len(parcel.payloads[0]):
            return 0  # full: said without encoding anything, as a blocked put asks often
        events = len(parcel)
        record = encode(parcel)
        if self.key is not None:
            room = min(room, MAX_RECORD_BYTES)  # what one sealed record holds
        if len(record) > room:
            events, record = self._longest_prefix(parcel, room)
            if not events:
                return 0
        segment = self._segment_for_writing()
        assert self._write_fd is not None
        if segment.sealer is not None:
            head = segment.sealer.header() if not segment.bytes else b""
            record = head + segment.sealer.record(record)
        try:
            _write_all(self._write_fd, record)
            if sync:
                os.fsync(self._write_fd)
        except OSError:
            # sealed: the segment takes no more records, so its nonces are never used twice
            self._seal(truncate_to=segment.bytes)
            if not self.events:
                self.discard()  # nothing to read back: no folder left behind
            raise
        segment.bytes += len(record)
        segment.records += 1
        segment.events += events
        self.bytes += len(record)
        self.events += events
        if segment.bytes >= self.segment_bytes:
            self._seal()
        return events

    @staticmethod
    def _longest_prefix(parcel: Parcel, room: int) -> tuple[int, bytes]:
        """The most first events of `parcel` whose record fits in `room`, and that record
        (0 events when none fits). Only when the spill is about full, so a search will do."""
        fits, record = 0, b""
        too_many = len(parcel)
        while too_many - fits > 1:
            middle = (fits + too_many) // 2
            candidate = encode(parcel.cut(0, middle))
            if len(candidate) <= room:
                fits, record = middle, candidate
            else:
                too_many = middle
        return fits, record

    def _segment_for_writing(self) -> Segment:
        if self._write_fd is not None:
            return self._segments[-1]
        if self.folder is None:
            parent = self.parent or os.environ.get(SPILL_DIR_VARIABLE) or None
            folder = tempfile.mkdtemp(prefix="evroute-spill-", dir=parent)
            _live_folders.add(folder)
            self.folder = folder
            os.chmod(folder, 0o700)  # mkdtemp's mode, whatever the umask took from it
        path = os.path.join(self.folder, f"{next(self._numbers):08d}.seg")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # readable back whatever the umask
        except OSError:
            os.close(fd)
            raise
        self._write_fd = fd
        segment = Segment(path, sealer=None if self.key is None else Sealer(self.key))
        self._segments.append(segment)
        return segment

    def _seal(self, truncate_to: int | None = None) -> None:
        """No more records go to the last segment; the next append starts another."""
        fd, self._write_fd = self._write_fd, None
        if fd is None:
            return
        if truncate_to is not None:  # drop a record written in part; its reader stops before
            with contextlib.suppress(OSError):
                os.ftruncate(fd, truncate_to)
        os.close(fd)

    def read(self) -> Parcel | None:
        """The oldest parcel not read yet, or None when there is none.

        SpillLost when a segment cannot be read: its unread events are gone, and the
        store goes on with the next segment.
        """
        if self.events == 0:
            self.discard()  # what is left holds no event: an emptied or failed segment
            return None
        while self._segments:
            segment = self._segments[0]
            if segment.records_read == segment.records:
                self._retire_first()
                continue
            try:
                parcel = self._read_record(segment)
            except (OSError, ValueError, TypeError, struct.error, Tampered) as error:
                lost = segment.events - segment.events_read
                self.events -= lost
                self._retire_first()
                self._tidy()
                if isinstance(error, Tampered):  # its message names the file
                    raise SpillLost(lost, str(error)) from None
                detail = getattr(error, "strerror", None) or str(error)
                raise SpillLost(lost, f"{segment.path}: {detail}") from None
            segment.records_read += 1
            segment.events_read += len(parcel)
            self.events -= len(parcel)
            self._tidy()
            return parcel
        return None

    def _read_record(self, segment: Segment) -> Parcel:
        if self._reader is None:
            # kept open from one read to the next, closed when the segment is retired
            self._reader = open(segment.path, "rb")  # noqa: SIM115
            if self.key is not None:
                self._unsealer = RecordReader(self._reader, self.key, segment.path)
        if self._unsealer is not None:
            record = self._unsealer.read()
            if record is None:
                raise ValueError("a spill segment ends before its last record")
            header, body = record[: HEADER.size], record[HEADER.size :]
        else:
            header = self._reader.read(HEADER.size)
        body_bytes, meta_bytes, input_bytes = HEADER.unpack(header)
        if self._unsealer is None:
            body = self._reader.read(body_bytes)
        if len(body) != body_bytes:
            raise ValueError("a spill record is cut short")
        parcel = decode(body, meta_bytes, input_bytes)
        if list(parcel.routes) == list(self._routes):
            parcel.routes = self._routes
        else:
            self._routes = tuple(parcel.routes)
        return parcel

    def _tidy(self) -> None:
        """Delete what has been read back: all of it once the backlog is empty."""
        if self.events == 0:
            self.discard()
            return
        while self._segments and self._segments[0].records_read == self._segments[0].records:
            if len(self._segments) == 1 and self._write_fd is not None:
                return  # the segment being written: it takes more records yet
            self._retire_first()

    def _retire_first(self) -> None:
        segment = self._segments.popleft()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._unsealer = None
        if not self._segments:
            self._seal()
        # gone already or not: the folder goes at the end all the same
        with contextlib.suppress(OSError):
            os.unlink(segment.path)
        self.bytes -= segment.bytes

    def discard(self) -> None:
        """Forget everything and remove the folder with what is in it."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._unsealer = None
        self._seal()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            _live_folders.discard(self.folder)
            self.folder = None
        self._segments.clear()
        self.events = 0
        self.bytes = 0
