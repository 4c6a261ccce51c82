"""Archives: the segment format, the index of the time range in each segment, and which
segments a replay window needs.

A segment is a gzip stream of lines `{"archived":"<UTC, ms>","event":<the event's bytes>}`,
optionally sealed record by record (storage/crypto.py). Its name carries its start time,
the writer's pid and a counter, so that runs never share a file; `index.jsonl` gets one
line per closed segment with the range of its events' times.
"""

from __future__ import annotations

import functools
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from evroute.core.json_codec import Malformed, parse_event
from evroute.errors import InputError

INDEX_NAME = "index.jsonl"
SEGMENT_PREFIX = "segment-"
SEGMENT_SUFFIX = ".jsonl.gz"
SEGMENT_PATTERN = re.compile(r"^segment-(\d{8}T\d{9}Z)-(\d+)-(\d+)\.jsonl\.gz$")

# The fixed layout of a line: what comes before and after the event's own bytes.
LINE_HEAD = b'{"archived":"'
TIME_WIDTH = len("2026-11-28T09:00:00.000Z")
LINE_MIDDLE = b'","event":'
EVENT_START = len(LINE_HEAD) + TIME_WIDTH + len(LINE_MIDDLE)
LINE_TAIL = b"}"
LINE_OVERHEAD = EVENT_START + len(LINE_TAIL) + 1  # with the newline

# gzip framing (wbits 31), as zcat reads it
GZIP_WBITS = 31
# The most plain bytes a replay decompresses at a time.
PIECE_BYTES = 1 << 20

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@functools.lru_cache(maxsize=1024)
def parse_rfc3339(value: object) -> datetime | None:
    """An RFC 3339 date-time with its offset (EventBridge's `time`), in UTC; None otherwise.
    Cached: events that come together mostly share their times, to the second."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value)
    if match is None:
        return None
    try:
        moment = datetime.fromisoformat(value)  # fast, and right for nearly every time
    except ValueError:  # a leap second, a lower-case t or z
        return _parse_rfc3339_fields(match)
    if moment.utcoffset():
        try:
            moment = moment.astimezone(timezone.utc)
        except OverflowError:  # year 1 east of UTC
            return None
    return moment


def _parse_rfc3339_fields(match: re.Match[str]) -> datetime | None:
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    try:
        # a leap second (:60) counts as the second before it
        moment = datetime(
            year, month, day, hour, minute, min(second, 59), micro, tzinfo=timezone.utc
        )
        if offset not in ("Z", "z"):
            sign = 1 if offset[0] == "+" else -1
            moment -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    except (ValueError, OverflowError):
        return None
    return moment


def parse_bound(text: str) -> datetime:
    """A window bound: RFC 3339 (`2026-11-28T09:00:00Z`, offsets allowed) or a date
    (`2026-11-28`, midnight UTC); raises ValueError saying what is expected."""
    if _DATE.match(text):
        try:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    moment = parse_rfc3339(text)
    if moment is None:
        raise ValueError(
            f"{text!r} is not a time: write RFC 3339 (2026-11-28T09:00:00Z,"
            " 2026-11-28T10:00:00+01:00) or a date (2026-11-28, midnight UTC)"
        )
    return moment


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC to the millisecond (cut, not rounded), with Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_time_up(moment: datetime) -> str:
    """As format_time, rounded up to the millisecond: an index's upper bound must not
    end before the event it stands for."""
    extra = moment.microsecond % 1000
    if not extra:
        return format_time(moment)
    try:
        return format_time(moment + timedelta(microseconds=1000 - extra))
    except OverflowError:  # in the last millisecond of year 9999: no later one to name
        return format_time(moment)


def read_event(event: bytes) -> dict[str, Any] | None:
    """The event as the router reads it (integers of any length exact); None if it is none."""

    try:
        return parse_event(event)
    except Malformed:
        return None


def event_time(event: bytes, archived: datetime) -> datetime:
    """An event's time: its `time` field when that is RFC 3339, else when it was archived."""
    if b'"time"' not in event:  # most events without a time cost no parsing
        return archived
    parsed = read_event(event)
    moment = parse_rfc3339(parsed.get("time")) if parsed is not None else None
    return archived if moment is None else moment


def archive_line(archived: bytes, event: bytes) -> bytes:
    """One line of a segment, built around the event's bytes (never encoded again, so
    numbers stay exact). `archived` is format_time's text, as bytes."""
    return b"".join((LINE_HEAD, archived, LINE_MIDDLE, event, LINE_TAIL, b"\n"))


def split_line(line: bytes) -> tuple[bytes, bytes] | None:
    """(archived time text, event bytes) of a segment line; None when it is not one."""
    if (
        not line.startswith(LINE_HEAD)
        or line[EVENT_START - len(LINE_MIDDLE) : EVENT_START] != LINE_MIDDLE
        or not line.endswith(LINE_TAIL)
        or len(line) <= EVENT_START + len(LINE_TAIL)
    ):
        return None
    return line[len(LINE_HEAD) : len(LINE_HEAD) + TIME_WIDTH], line[EVENT_START:-1]


def segment_name(start: datetime, pid: int, number: int) -> str:
    stamp = (
        start.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
        + f"{start.microsecond // 1000:03d}Z"
    )
    return f"{SEGMENT_PREFIX}{stamp}-{pid}-{number}{SEGMENT_SUFFIX}"


def segment_order(name: str) -> tuple[str, int, int, str]:
    """Name order, with the pid and the counter compared as numbers (-10 after -9)."""
    match = SEGMENT_PATTERN.match(name)
    if match is None:
        return (name, 0, 0, name)
    return (match.group(1), int(match.group(2)), int(match.group(3)), name)


@dataclass(frozen=True)
class IndexEntry:
    """The index line of a closed segment: its events' time range, count and plain bytes."""

    segment: str
    start: str  # "from": the earliest event time, RFC 3339
    end: str  # "until": the latest
    events: int
    size: int  # of its plain (uncompressed) lines
    # closed whole by its run; not after a write failed (it ends at its last whole chunk)
    complete: bool = True

    def line(self) -> bytes:
        fields = {
            "segment": self.segment,
            "from": self.start,
            "until": self.end,
            "events": self.events,
            "bytes": self.size,
            "complete": self.complete,
        }
        return orjson.dumps(fields) + b"\n"


def read_index(
    folder: Path, complete: set[str] | None = None
) -> dict[str, tuple[datetime, datetime]]:
    """Each indexed segment's time range (and into `complete`, the names of those its
    run closed whole). A line that cannot be read is passed over: its segment is then
    read in full, which is slower but never loses events."""
    ranges: dict[str, tuple[datetime, datetime]] = {}
    try:
        text = (folder / INDEX_NAME).read_bytes()
    except FileNotFoundError:
        return ranges
    except OSError as error:
        raise InputError(f"{folder / INDEX_NAME}: cannot read: {error.strerror}") from None
    for line in text.splitlines():
        try:
            entry: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("segment"), str):
            continue
        start, end = parse_rfc3339(entry.get("from")), parse_rfc3339(entry.get("until"))
        if start is not None and end is not None:
            ranges[entry["segment"]] = (start, end)
            if complete is not None and entry.get("complete", True) is True:
                complete.add(entry["segment"])
    return ranges


@dataclass(frozen=True)
class Window:
    """The events a replay wants: start <= time < end; either bound may be open."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def contains(self, moment: datetime) -> bool:
        if self.start is not None and moment < self.start:
            return False
        return self.end is None or moment < self.end

    def overlaps(self, first: datetime, last: datetime) -> bool:
        """Whether events from `first` to `last` (inclusive) may fall in the window."""
        if self.start is not None and last < self.start:
            return False
        return self.end is None or first < self.end


@dataclass(frozen=True)
class Selection:
    """The segments of an archive a replay reads, and how many the index let it skip."""

    segments: list[str]  # paths, as `folder` was given, in name order
    skipped: int
    closed: frozenset[str] = frozenset()  # those the index lists: their runs closed them


def select_segments(folder: str, window: Window) -> Selection:
    """The archive's segments whose index range meets the window, in name order; a
    segment the index does not know (its run crashed) is always read."""
    path = Path(folder)
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        raise InputError(f"{folder}: no such archive folder") from None
    except NotADirectoryError:
        raise InputError(
            f"{folder}: is not a folder; --archive takes the archive's folder"
        ) from None
    except OSError as error:
        raise InputError(f"{folder}: cannot read: {error.strerror}") from None
    names = sorted((n for n in names if SEGMENT_PATTERN.match(n)), key=segment_order)
    if not names:
        raise InputError(
            f"{folder}: no archive segments ({SEGMENT_PREFIX}*{SEGMENT_SUFFIX}) in this folder"
        )
    complete: set[str] = set()
    ranges = read_index(path, complete)
    chosen = [
        os.path.join(folder, name)
        for name in names
        if name not in ranges or window.overlaps(*ranges[name])
    ]
    closed = frozenset(os.path.join(folder, name) for name in names if name in complete)
    return Selection(chosen, len(names) - len(chosen), closed)


class SegmentCorrupt(Exception):
    """The compressed data is damaged; `position` is the byte of the input it fed on."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


class SegmentDecoder:
    """Decompresses a segment's gzip stream fed in pieces, telling a stream cut short (a
    crash: what came before is whole) from a damaged one (SegmentCorrupt, with where)."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=GZIP_WBITS)
        self.fed = 0  # bytes of gzip stream fed so far
        self._member_started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The plain bytes of `data`, in pieces of at most PIECE_BYTES: a small chunk of
        well-compressed lines may stand for a lot of them."""
        while data:
            before = self._inflater.copy()
            try:
                out = self._inflater.decompress(data, PIECE_BYTES)
            except zlib.error as error:
                raise SegmentCorrupt(str(error), self.fed + _first_bad_byte(before, data)) from None
            self._member_started = True
            if self._inflater.eof:
                # gzip allows members one after the other (zcat reads them all)
                rest = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=GZIP_WBITS)
                self._member_started = False
            else:
                rest = self._inflater.unconsumed_tail
            self.fed += len(data) - len(rest)
            data = rest
            if out:
                yield out

    def finish(self) -> bytes:
        """What the decompressor still holds once the input is all fed."""
        return self._inflater.flush()

    @property
    def complete(self) -> bool:
        """The stream ended where a member ends (not cut short)."""
        return not self._member_started or self._inflater.eof


def _first_bad_byte(inflater: Any, data: bytes) -> int:
    """The offset in `data` where decompressing fails: the shortest failing prefix."""
    low, high = 0, len(data)  # the prefix of `low` bytes decompresses; of `high` fails
    while high - low > 1:
        middle = (low + high) // 2
        try:
            inflater.copy().decompress(data[:middle])
            low = middle
        except zlib.error:
            high = middle
    return low
