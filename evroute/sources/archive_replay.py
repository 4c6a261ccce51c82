"""`evroute replay --archive DIR`: an archive's segments read as inputs.

Each line of a segment becomes one line for the router, so line numbers stay those of
the segment: the event's own bytes when its time is in the window, else a blank line
(the router skips it). Sealed segments are opened with the config's key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from evroute.config.model import Config
from evroute.core.lines import RAW_LIMIT, LineBatch, LineSplitter, OversizeLine
from evroute.core.wording import plural
from evroute.errors import EvrouteError, InputError
from evroute.sources.base import CHUNK_BYTES, RawFileSource, Source
from evroute.storage.archive_format import (
    EVENT_START,
    LINE_HEAD,
    LINE_OVERHEAD,
    TIME_WIDTH,
    SegmentCorrupt,
    SegmentDecoder,
    Window,
    event_time,
    parse_rfc3339,
    select_segments,
    split_line,
)
from evroute.storage.crypto import (
    HEADER_BYTES,
    LENGTH,
    MAGIC,
    Key,
    Tampered,
    load_config_key,
    open_records,
    sealed,
)
from evroute.storage.fileio import printable


class ArchiveSplitter(LineSplitter):
    """Splits a segment into lines, and turns each into the event to route, or a blank
    line when its time is outside the window."""

    def __init__(self, source: SegmentSource, max_event_bytes: int) -> None:
        super().__init__(max_event_bytes + LINE_OVERHEAD)
        self.source = source
        self.event_limit = max_event_bytes
        self.window = source.window
        self.error: str | None = None  # a line that is no archive line: reading stops
        self.events = 0  # lines of events read, in the window or not
        self._archived: tuple[bytes, datetime] | None = None  # the last time parsed

    def feed(self, chunk: bytes) -> LineBatch:
        return self._events(super().feed(chunk))

    def finish(self) -> LineBatch:
        batch = super().finish()
        # a segment's lines all end with a newline: a last line without one was cut
        # short by a crash, and is not routed
        self.source.ended_early(self.events, cut_line=bool(batch.lines))
        return LineBatch(batch.first, [], False)

    def _events(self, batch: LineBatch) -> LineBatch:
        if self.error is not None:
            return LineBatch(batch.first, [], False)
        lines: list[bytes | OversizeLine] = []
        for line in batch.lines:
            event = self._event_line(batch.first + len(lines), line)
            if event is None:
                break
            lines.append(event)
        return LineBatch(batch.first, lines, batch.long_digits)

    def _event_line(self, number: int, line: bytes | OversizeLine) -> bytes | OversizeLine | None:
        if isinstance(line, OversizeLine):
            self.events += 1
            stamp = line.prefix[len(LINE_HEAD) : len(LINE_HEAD) + TIME_WIDTH]
            if self.window.bounded:
                # the event's own time may lie beyond the part kept: its archived time
                # (at the start of the line) decides
                archived = self._archived_time(stamp)
                if archived is not None and not self.window.contains(archived):
                    return b""
            return line._replace(
                prefix=line.prefix[EVENT_START:]
                if line.prefix.startswith(LINE_HEAD)
                else line.prefix,
                length=max(line.length - LINE_OVERHEAD + 1, 0),
                detail=f"its event of {line.length - LINE_OVERHEAD + 1} bytes is over"
                f" max_event_bytes ({self.event_limit})",
            )
        parts = split_line(line)
        if parts is None:
            if not line:
                return b""
            self.error = f"line {number} is not an archive line: {printable(repr(line[:60]))}"
            return None
        stamp, event = parts
        self.events += 1
        if self.window.bounded:
            archived = self._archived_time(stamp)
            if archived is None:
                self.error = f"line {number}: its archived time {stamp!r} is not RFC 3339"
                return None
            if not self.window.contains(event_time(event, archived)):
                return b""
        if len(event) > self.event_limit:
            detail = f"its event of {len(event)} bytes is over max_event_bytes ({self.event_limit})"
            return OversizeLine(event[:RAW_LIMIT], len(event), detail)
        return event

    def _archived_time(self, stamp: bytes) -> datetime | None:
        # the lines of a batch share one time: parsed once
        if self._archived is not None and self._archived[0] == stamp:
            return self._archived[1]
        moment = parse_rfc3339(stamp.decode("ascii", "replace"))
        if moment is not None:
            self._archived = (stamp, moment)
        return moment


class SegmentSource(RawFileSource):
    """One segment: its gzip stream (unsealed record by record when sealed) decompressed
    in chunks; `position` follows the file's bytes, for the progress bar."""

    def __init__(
        self,
        name: str,
        raw: BinaryIO,
        window: Window,
        key: Key | None,
        warn: Callable[[str], None],
        closed: bool = False,
    ) -> None:
        super().__init__(name, Path(name), raw)
        self.closed = closed  # the index lists it: it must be whole
        self.window = window
        self.key = key  # for a sealed segment, else None
        self.warn = warn
        self.decoder = SegmentDecoder()
        self.sealed_cut_short = False  # the file ends inside a sealed record
        self._splitter: ArchiveSplitter | None = None

    def line_splitter(self, max_event_bytes: int) -> LineSplitter:
        self._splitter = ArchiveSplitter(self, max_event_bytes)
        return self._splitter

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        assert self.raw is not None
        for compressed in self._compressed():
            yield from self._checked(self.decoder.feed(compressed))
        yield from self._checked(iter([self.decoder.finish()]))

    def _checked(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """The pieces, stopping with an error at damaged data or at a line that is no
        archive line, once the lines before it are routed."""
        while True:
            try:
                plain = next(pieces, None)
            except SegmentCorrupt as corrupt:
                where = (
                    f"byte {corrupt.position}"
                    if self.key is None
                    else f"byte {corrupt.position} of its decrypted gzip stream"
                )
                raise InputError(
                    f"{self.name}: corrupt at {where}: {corrupt}; the events before it"
                    " were replayed"
                ) from None
            if plain is None:
                return
            if plain:
                yield plain
                # the router has the lines of this piece: now stop at a bad one
                if self._splitter is not None and self._splitter.error is not None:
                    raise InputError(f"{self.name}: {self._splitter.error}")

    def _compressed(self) -> Iterator[bytes]:
        """The segment's gzip stream, in pieces."""
        assert self.raw is not None
        if self.key is not None:
            try:
                for record in open_records(self.raw, self.key, self.name):
                    self.position = self.raw.tell()
                    yield record
            except Tampered as error:
                if not self._cut_short(error):
                    raise InputError(str(error)) from None
                self.sealed_cut_short = True
            return
        while True:
            try:
                chunk = self.raw.read(CHUNK_BYTES)
            except OSError as error:
                raise self._read_error(error) from None
            if not chunk:
                return
            self.position += len(chunk)
            yield chunk

    def _cut_short(self, error: Tampered) -> bool:
        """Whether the sealed file just ends inside a record (a crash while writing), as
        opposed to a record that fails authentication (tampering, the wrong key)."""
        assert self.raw is not None
        remaining = os.fstat(self.raw.fileno()).st_size - error.offset
        if remaining < LENGTH.size:
            return True
        self.raw.seek(error.offset)
        head = self.raw.read(LENGTH.size)
        if head == MAGIC[: LENGTH.size]:
            return remaining < HEADER_BYTES
        length: int = LENGTH.unpack(head)[0]
        return remaining < LENGTH.size + length

    def ended_early(self, events: int, cut_line: bool) -> None:
        """Called at the end of the segment: warns when a crash cut it short. A segment
        the index lists was closed by its run, so one that ends early was changed."""
        if self.decoder.complete and not cut_line and not self.sealed_cut_short:
            return
        if self.closed:
            raise InputError(
                f"{self.name}: ends early, but index.jsonl lists it as closed by its run:"
                f" the file was cut or changed; the {plural(events, 'whole event')} before"
                " that were replayed"
            )
        self.warn(
            f"{self.name}: ends early (its run stopped before closing it): read the"
            f" {plural(events, 'whole event')} it holds"
        )


def archive_opener(
    folder: str, window: Window, warn: Callable[[str], None], config: Config
) -> Callable[[list[str]], list[Source]]:
    """Opens the archive's segments that the window needs, in name order (the names
    given to the run are none: the archive is its input)."""

    def open_archive(names: list[str]) -> list[Source]:
        selection = select_segments(folder, window)
        if not selection.segments:
            warn(
                f"{folder}: none of its {selection.skipped:,} segments holds events in the"
                " window (by its index.jsonl): nothing to replay"
            )
        sources: list[Source] = []
        key: Key | None = None
        try:
            for name in selection.segments:
                raw = _open(name)
                is_sealed = _is_sealed(raw)
                if not is_sealed and config.encrypt is not None:
                    raw.close()
                    # else anyone who may write the folder could add events, key or not
                    raise InputError(
                        f"{name}: is not encrypted, and this config encrypts (encrypt:):"
                        " refused; replay it with a config without encrypt: if it is yours"
                    )
                if is_sealed and key is None:
                    try:
                        key = _config_key(config, name)
                    except EvrouteError:
                        raw.close()
                        raise
                sources.append(
                    SegmentSource(
                        name,
                        raw,
                        window,
                        key if is_sealed else None,
                        warn,
                        closed=name in selection.closed,
                    )
                )
        except EvrouteError:
            for source in sources:
                source.close()
            raise
        return sources

    return open_archive


def _open(name: str) -> BinaryIO:
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise InputError(f"{printable(name)}: cannot read: {error.strerror}") from None
    return os.fdopen(fd, "rb")


def _is_sealed(raw: BinaryIO) -> bool:
    start = raw.read(len(MAGIC))
    raw.seek(0)
    return sealed(start)


def _config_key(config: Config, name: str) -> Key:
    key = load_config_key(config)
    if key is None:
        raise InputError(
            f"{printable(name)}: this segment is encrypted; give the config an"
            " `encrypt:` section (key_env or key_file) with the key it was written with"
        )
    return key
