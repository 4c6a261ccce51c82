"""Splitting chunks of input into numbered lines, in bounded memory."""

from __future__ import annotations

from typing import NamedTuple

from evroute.deadletter import RAW_LIMIT

BOM = b"\xef\xbb\xbf"


class OversizeLine(NamedTuple):
    """A line over max_event_bytes: only its start is kept, for the dead letter."""

    prefix: bytes
    length: int


Line = tuple[int, "bytes | OversizeLine"]


class LineSplitter:
    """Feed chunks, get complete lines with their 1-based numbers; blank lines are skipped."""

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._pending = b""
        self._line_number = 0
        self._at_start = True
        self._oversize: OversizeLine | None = None  # inside a line that is too long

    def feed(self, chunk: bytes) -> list[Line]:
        lines: list[Line] = []
        if self._at_start:
            if len(self._pending) + len(chunk) < len(BOM) and BOM.startswith(self._pending + chunk):
                self._pending += chunk
                return lines
            chunk = self._pending + chunk
            self._pending = b""
            self._at_start = False
            if chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
        if self._oversize is not None:
            end = chunk.find(b"\n")
            rest = chunk if end < 0 else chunk[:end]
            prefix, length = self._oversize
            if len(prefix) < RAW_LIMIT:
                prefix += rest[: RAW_LIMIT - len(prefix)]
            if end < 0:
                self._oversize = OversizeLine(prefix, length + len(chunk))
                return lines
            self._line_number += 1
            lines.append((self._line_number, OversizeLine(prefix, length + end)))
            self._oversize = None
            chunk = chunk[end + 1 :]
        data = self._pending + chunk if self._pending else chunk
        parts = data.split(b"\n")
        self._pending = parts.pop()
        limit = self.max_event_bytes
        number = self._line_number
        for part in parts:
            number += 1
            if len(part) > limit:
                lines.append((number, OversizeLine(part[:RAW_LIMIT], len(part))))
            elif part and not part.isspace():
                lines.append((number, part))
        self._line_number = number
        if len(self._pending) > limit:
            self._oversize = OversizeLine(self._pending[:RAW_LIMIT], len(self._pending))
            self._pending = b""
        return lines

    def finish(self) -> list[Line]:
        """The last line, when the input does not end with a newline."""
        lines: list[Line] = []
        if self._oversize is not None:
            self._line_number += 1
            lines.append((self._line_number, self._oversize))
            self._oversize = None
        elif self._pending and not self._pending.isspace():
            self._line_number += 1
            pending = self._pending
            if self._at_start and pending.startswith(BOM):
                pending = pending[len(BOM) :]
            lines.append((self._line_number, pending))
        self._pending = b""
        return lines
