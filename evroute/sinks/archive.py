"""`archive:` consumers: compressed segments of the events as delivered, rotated by size,
with an index of the time range in each, for `evroute replay --archive`.

Each batch is compressed and flushed (Z_SYNC_FLUSH) in one write, so a crash loses at
most the batch in flight and what was written before it still reads; a segment closed
at rotation or at the end of the run is a complete .gz file (`zcat` reads it).
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join
from evroute.config.json_schema import (
    ROTATION_VALUES,
    STRING,
    Schema,
    dataclass_defaults,
    object_schema,
)
from evroute.sinks.base import (
    EventFailure,
    Output,
    Sink,
    SinkFailed,
    SinkKind,
    attempts_note,
    backoff_or_give_up,
)
from evroute.storage.archive_format import (
    GZIP_WBITS,
    INDEX_NAME,
    IndexEntry,
    archive_line,
    event_time,
    format_time,
    format_time_up,
    segment_name,
)
from evroute.storage.crypto import Sealer
from evroute.storage.fileio import PartialWrite, make_private_folder, open_private, write_all

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node

DEFAULT_ROTATE_BYTES = 64 << 20
MIN_ROTATE_BYTES = 1024


# zlib's fastest level: on event lines, 11% of their size against 8% at the default
# level 6, for less than half the CPU, which the router shares.
COMPRESSION_LEVEL = 1


@dataclass(frozen=True)
class ArchiveOptions:
    folder: str  # as written, relative to the config's folder
    rotate_bytes: int = DEFAULT_ROTATE_BYTES  # of uncompressed lines per segment


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> ArchiveOptions | None:
    folder = checker.string(fields["archive"], join(path, "archive"))
    rotate_bytes: int | None = DEFAULT_ROTATE_BYTES
    if "rotate_bytes" in fields:
        node = fields["rotate_bytes"]
        rotate_bytes = checker.size(node, join(path, "rotate_bytes"), MIN_ROTATE_BYTES)
    if folder is None or rotate_bytes is None:
        return None
    return ArchiveOptions(folder, rotate_bytes)


class _WriteFailed(Exception):
    """A write of the batch failed after its first `done` lines were archived."""

    def __init__(self, error: OSError, verb: str, done: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.verb = verb
        self.done = done


class _Segment:
    """The segment being written: its file, its compressor and what it holds so far."""

    def __init__(self, path: Path, fd: int, sealer: Sealer | None) -> None:
        self.path = path
        self.fd = fd
        self.sealer = sealer  # when the pipeline has a key
        self.compressor = zlib.compressobj(COMPRESSION_LEVEL, wbits=GZIP_WBITS)
        self.plain_bytes = 0
        self.events = 0
        self.first: datetime | None = None
        self.last: datetime | None = None

    def write(self, lines: list[bytes], times: list[datetime]) -> None:
        """Compress and write whole lines at once; raises OSError after taking back what
        went out in part (the segment then ends there, as after a crash)."""
        data = self.compressor.compress(b"".join(lines))
        data += self.compressor.flush(zlib.Z_SYNC_FLUSH)
        self._write(data)
        self.plain_bytes += sum(map(len, lines))
        self.events += len(lines)
        earliest, latest = min(times), max(times)
        self.first = earliest if self.first is None else min(self.first, earliest)
        self.last = latest if self.last is None else max(self.last, latest)

    def finish(self) -> None:
        """The gzip trailer: a closed segment is a complete .gz file."""
        self._write(self.compressor.flush(zlib.Z_FINISH))

    def _write(self, data: bytes) -> None:
        if self.sealer is not None:
            data = self.sealer.records(data)  # one record, unless over a record's limit
        size = os.fstat(self.fd).st_size
        try:
            write_all(self.fd, data)
        except PartialWrite as partial:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, size)  # a reader stops at a whole chunk
            raise partial.error from None

    def entry(self, complete: bool) -> IndexEntry | None:
        if self.first is None or self.last is None:
            return None
        return IndexEntry(
            self.path.name,
            format_time(self.first),
            format_time_up(self.last),
            self.events,
            self.plain_bytes,
            complete,
        )


class ArchiveSink(Sink):
    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.options: ArchiveOptions = config.options
        self.folder = base_dir / self.options.folder
        self._segment: _Segment | None = None
        self._number = 0  # segments this sink started: the name's counter
        self._stop = threading.Event()
        self._warnings: list[str] = []

    def open(self) -> None:
        try:
            make_private_folder(self.folder)
            if not self.folder.is_dir():
                raise NotADirectoryError(20, "not a folder")
        except OSError as error:
            raise SinkFailed(f"cannot create {self.folder}: {error.strerror}") from None

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        """Archive the batch, starting a new segment before one would pass rotate_bytes;
        a failed write (disk full) is retried with backoff in a new segment, then its
        events are given up on. Never counted delivered unless written."""
        archived = datetime.now(timezone.utc)
        stamp = format_time(archived).encode()
        lines = [archive_line(stamp, payload) for payload in payloads]
        times = [event_time(payload, archived) for payload in payloads]
        done = 0
        attempts = 0
        while True:
            try:
                done = self._write_lines(lines, times, done)
                return []
            except _WriteFailed as failed:
                done, error, verb = failed.done, failed.error, failed.verb
            attempts += 1
            reason = backoff_or_give_up(attempts, self.config.queue.retries, self._stop)
            if reason is not None:
                detail = f"cannot {verb} {self.folder}: {error.strerror}{attempts_note(attempts)}"
                return [(index, reason, detail) for index in range(done, len(payloads))]

    def _write_lines(self, lines: list[bytes], times: list[datetime], start: int) -> int:
        """Write lines[start:], in as many segments as rotate_bytes asks for; returns
        len(lines). On failure, _WriteFailed carries how many lines are written."""
        limit = self.options.rotate_bytes
        done = start
        while done < len(lines):
            try:
                segment = self._segment or self._start_segment()
            except OSError as error:
                raise _WriteFailed(error, "create a segment in", done) from None
            # as many lines as fit; a segment takes at least one, however long
            room = limit - segment.plain_bytes
            end = done
            while end < len(lines) and len(lines[end]) <= room:
                room -= len(lines[end])
                end += 1
            if end == done and segment.plain_bytes == 0:
                end = done + 1
            if end == done:  # not one more line fits: the next segment starts with it
                self._close_segment()
                continue
            try:
                segment.write(lines[done:end], times[done:end])
            except OSError as error:
                self._abandon_segment()
                raise _WriteFailed(error, "write to", done) from None
            done = end
            if done < len(lines):
                self._close_segment()
        return done

    def _start_segment(self) -> _Segment:
        """A new segment file, 0600 and never one that exists (O_EXCL)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        make_private_folder(self.folder)  # again: it may have been removed meanwhile
        while True:
            self._number += 1
            path = self.folder / segment_name(datetime.now(timezone.utc), os.getpid(), self._number)
            try:
                fd = os.open(path, flags, 0o600)
                break
            except FileExistsError:
                continue
        sealer = None
        if self.key is not None:
            sealer = Sealer(self.key)
            try:
                write_all(fd, sealer.header())
            except PartialWrite as partial:
                os.close(fd)
                with contextlib.suppress(OSError):
                    path.unlink()
                raise partial.error from None
        self._segment = _Segment(path, fd, sealer)
        return self._segment

    def _close_segment(self) -> None:
        """Finish the segment and add its index line; what fails is said at the end."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        complete = True
        try:
            segment.finish()
        except OSError as error:
            complete = False
            self._warnings.append(
                f"{segment.path.name}: cannot finish it ({error.strerror}): replay reads"
                " its events all the same, and warns it ends early"
            )
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        self._add_to_index(segment, complete)

    def _abandon_segment(self) -> None:
        """After a failed write: the segment ends at its last whole chunk; an empty one
        is removed, so that retries do not leave empty files behind."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        if segment.events == 0:
            with contextlib.suppress(OSError):
                segment.path.unlink()
            return
        self._add_to_index(segment, complete=False)

    def _add_to_index(self, segment: _Segment, complete: bool) -> None:
        entry = segment.entry(complete)
        if entry is None:
            return
        try:
            fd = open_private(self.folder / INDEX_NAME)
            try:
                write_all(fd, entry.line())
            finally:
                os.close(fd)
        except (OSError, PartialWrite) as error:
            reason = error.error.strerror if isinstance(error, PartialWrite) else error.strerror
            self._warnings.append(
                f"cannot add {segment.path.name} to {INDEX_NAME} ({reason}):"
                " replay reads it in full whatever the window"
            )

    def terminate(self) -> None:
        self._stop.set()  # no more waiting to retry: evroute is stopping

    def close(self, linger: float) -> str | None:
        self._close_segment()
        return "; ".join(self._warnings) or None


def create(config: ConsumerConfig, base_dir: Path) -> Sink:
    return ArchiveSink(config, base_dir)


def schema() -> Schema:
    values: dict[str, Schema] = {
        "archive": {**STRING, "description": "the archive's folder, relative to the config"},
        "rotate_bytes": ROTATION_VALUES["rotate_bytes"],
    }
    return object_schema(KIND.keys, values, dataclass_defaults(ArchiveOptions))


def draw(options: ArchiveOptions) -> tuple[str, str]:
    return "archive", options.folder


def outputs(options: ArchiveOptions) -> tuple[Output, ...]:
    return (Output("archive", options.folder, "folder"),)


KIND = SinkKind(
    name="archive",
    description="compressed segments with a time index, for replay --archive",
    keys=("archive", "rotate_bytes"),
    parse_options=parse_options,
    create=create,
    schema=schema,
    draw=draw,
    outputs=outputs,
)
