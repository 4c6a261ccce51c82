"""Splitting chunks of input into batches of numbered lines, in bounded memory."""

from __future__ import annotations

import threading
from typing import NamedTuple

# How much of a line too long or too bad to route is kept where it is reported.
RAW_LIMIT = 4096


BOM = b"\xef\xbb\xbf"


class OversizeLine(NamedTuple):
    """A line over max_event_bytes: only its start is kept, for the dead letter.

    A source may refuse a line for another reason, which `detail` then gives.
    """

    prefix: bytes
    length: int
    detail: str = ""


Line = tuple[int, "bytes | OversizeLine"]

# orjson reads integers beyond 64 bits as floats, losing digits. Lines where one may be
# (a run of 19 digits or more) are parsed exactly instead. Mapping digits to "0" and
# looking for 19 of them over a whole chunk costs about 0.8 ns a byte.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
# For chunks: bytearray.translate runs twice as fast as bytes.translate (which also
# tracks whether anything changed), and copying into a buffer kept per thread allocates
# nothing: 0.55 ns a byte in all. Within these sizes only, so the buffer stays small.
_scratch = threading.local()
_SCRATCH_SIZES = range(4096, (1 << 20) + 1)


def has_long_digit_run(data: bytes) -> bool:
    return _LONG_DIGITS in data.translate(_DIGITS_TO_ZERO)


def _chunk_has_long_digit_run(data: bytes) -> bool:
    if len(data) not in _SCRATCH_SIZES:
        return has_long_digit_run(data)
    buffer: bytearray | None = getattr(_scratch, "buffer", None)
    if buffer is None:
        buffer = _scratch.buffer = bytearray()
    buffer[:] = data
    return _LONG_DIGITS in buffer.translate(_DIGITS_TO_ZERO)


class DigitRuns:
    """Whether a chunk holds a run of 19 digits, worked out the first time it is asked.

    The router does not ask when its routes cannot tell an integer beyond 64 bits read
    exactly from one orjson rounded (expr's truth_ignores_rounding): then no byte is
    scanned. Until asked, it holds the chunk.
    """

    __slots__ = ("_data", "_found")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._found: bool | None = None

    def __bool__(self) -> bool:
        if self._found is None:
            self._found = _chunk_has_long_digit_run(self._data)
            self._data = b""
        return self._found

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bool, DigitRuns)):
            return bool(self) == bool(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(bool(self))

    def __repr__(self) -> str:
        return f"DigitRuns({bool(self)})"


class LineBatch(NamedTuple):
    """Consecutive lines of an input: `lines[i]` is line number `first + i`.

    Blank lines are kept, so that numbers follow from positions; the router skips them.
    """

    first: int
    lines: list[bytes | OversizeLine]
    long_digits: bool | DigitRuns = True  # false when no line has a run of 19 digits

    def numbered(self) -> list[Line]:
        """(number, line) for each line that is not blank."""
        return [
            (self.first + index, line)
            for index, line in enumerate(self.lines)
            if isinstance(line, OversizeLine) or (line and not line.isspace())
        ]

    def cut(self, start: int, stop: int | None = None) -> LineBatch:
        return LineBatch(self.first + start, self.lines[start:stop], self.long_digits)


class LineSplitter:
    """Feed chunks, get complete lines numbered from 1, in bounded memory."""

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._pending = b""
        self._line_number = 0  # lines handed out so far
        self._at_start = True
        self._oversize: OversizeLine | None = None  # inside a line that is too long

    def feed(self, chunk: bytes) -> LineBatch:
        lines: list[bytes | OversizeLine] = []
        first = self._line_number + 1
        if self._at_start:
            if len(self._pending) + len(chunk) < len(BOM) and BOM.startswith(self._pending + chunk):
                self._pending += chunk
                return LineBatch(first, lines, False)
            chunk = self._pending + chunk
            self._pending = b""
            self._at_start = False
            if chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
        if self._oversize is not None:
            end = chunk.find(b"\n")
            rest = chunk if end < 0 else chunk[:end]
            prefix, length, _ = self._oversize
            if len(prefix) < RAW_LIMIT:
                prefix += rest[: RAW_LIMIT - len(prefix)]
            if end < 0:
                self._oversize = OversizeLine(prefix, length + len(chunk))
                return LineBatch(first, lines, False)
            self._line_number += 1
            lines.append(OversizeLine(prefix, length + end))
            self._oversize = None
            chunk = chunk[end + 1 :]
        data = self._pending + chunk if self._pending else chunk
        split = data.split(b"\n")
        self._pending = split.pop()
        limit = self.max_event_bytes
        parts: list[bytes | OversizeLine] = split  # type: ignore[assignment]
        if split:
            if len(data) > limit and max(map(len, split)) > limit:
                parts = [
                    OversizeLine(part[:RAW_LIMIT], len(part)) if len(part) > limit else part
                    for part in split
                ]
            if lines:
                lines.extend(parts)
            else:
                lines = parts
            self._line_number += len(parts)
        if len(self._pending) > limit:
            self._oversize = OversizeLine(self._pending[:RAW_LIMIT], len(self._pending))
            self._pending = b""
        return LineBatch(first, lines, DigitRuns(data) if parts else False)

    def finish(self) -> LineBatch:
        """The last line, when the input does not end with a newline."""
        first = self._line_number + 1
        lines: list[bytes | OversizeLine] = []
        if self._oversize is not None:
            lines.append(self._oversize)
            self._oversize = None
        elif self._pending:
            pending = self._pending
            if self._at_start and pending.startswith(BOM):
                pending = pending[len(BOM) :]
            lines.append(pending)
        self._line_number += len(lines)
        self._pending = b""
        long_digits = bool(lines) and isinstance(lines[0], bytes) and has_long_digit_run(lines[0])
        return LineBatch(first, lines, long_digits)
