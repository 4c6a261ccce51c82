"""Redrive: a dead letter file read as an input, each letter giving back its event.

Each line of the file becomes one line for the router, so line numbers stay those of
the file: a selected letter's event; a blank line for a letter left out (the router
skips it); a refused line (an OversizeLine with a detail) for a line that is no dead
letter, which the router dead-letters as malformed.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evroute.core.json_codec import Malformed, parse_event
from evroute.core.json_types import json_type
from evroute.core.lines import RAW_LIMIT, LineBatch, LineSplitter, OversizeLine
from evroute.core.wording import plural
from evroute.errors import InputError
from evroute.expr import ExpressionError
from evroute.shaping.matching import encode_output
from evroute.sources.base import Source, WrappingSource, open_sources
from evroute.sources.sealed import unseal
from evroute.storage.crypto import Key

# Every reason a dead letter may give (the README lists what each means).
REASONS = (
    "malformed",
    "filter_error",
    "delivery_failed",
    "dropped",
    "unmatched",
    "shutdown",
    "denied",
)

# A letter is its event and a few fields around it; the detail may quote a long
# expression or what a command printed, so a letter line may be this much longer.
LETTER_FIELDS_BYTES = 64 << 10

EVENT_KEY = b',"event":'


@dataclass(frozen=True)
class Selection:
    """Which letters to redrive: None means any reason, any route."""

    reasons: frozenset[str] | None = None
    routes: frozenset[str] | None = None
    # under a publish policy a redrive goes unchecked, for every letter's event passed
    # the policy once, but for `denied` ones: those are left out
    redrive_denied: bool = True

    def selects(self, letter: dict[str, Any]) -> bool:
        if self.reasons is not None and letter.get("reason") not in self.reasons:
            return False
        return self.routes is None or letter.get("route") in self.routes


def event_bytes(line: bytes, event: dict[str, Any]) -> bytes:
    """The event as the letter holds it: its own bytes when the letter is as evroute
    writes it (the event last), so numbers stay exact; else the event encoded again."""
    start = line.find(EVENT_KEY)
    body = line.rstrip()
    if start >= 0 and body.endswith(b"}"):
        candidate = body[start + len(EVENT_KEY) : -1]
        try:
            # a key "event" deeper down, or fields after the event, would not parse
            if parse_event(candidate) == event:
                return candidate.strip()
        except Malformed:
            pass
    return encode_output(event)


class DeadLetterSplitter(LineSplitter):
    """Splits a dead letter file into lines, and turns each into the line to route."""

    def __init__(
        self,
        max_event_bytes: int,
        selection: Selection,
        on_finish: Callable[[Counter[str], int], None],
    ) -> None:
        super().__init__(max_event_bytes + LETTER_FIELDS_BYTES)
        self.event_limit = max_event_bytes
        self.selection = selection
        self.on_finish = on_finish
        self.without_event: Counter[str] = Counter()  # selected letters with only `raw`, by reason
        self.denied_left_out = 0

    def feed(self, chunk: bytes) -> LineBatch:
        return self._events(super().feed(chunk))

    def finish(self) -> LineBatch:
        batch = self._events(super().finish())
        self.on_finish(self.without_event, self.denied_left_out)
        return batch

    def _events(self, batch: LineBatch) -> LineBatch:
        # the letters' digits include their events': a run of 19 in an event is one here
        return LineBatch(batch.first, list(map(self._event_line, batch.lines)), batch.long_digits)

    def _event_line(self, line: bytes | OversizeLine) -> bytes | OversizeLine:
        if isinstance(line, OversizeLine):
            return line._replace(
                detail=f"line of {line.length} bytes is over the longest dead letter:"
                f" max_event_bytes ({self.event_limit}) and {LETTER_FIELDS_BYTES} for its"
                " other fields"
            )
        if not line or line.isspace():
            return b""
        try:
            letter = parse_event(line)
        except Malformed as error:
            return refused(line, f"not a dead letter: {error}")
        if "event" not in letter and "raw" not in letter:
            return refused(line, 'not a dead letter: it holds neither "event" nor "raw"')
        if not self.selection.selects(letter):
            return b""
        if letter.get("reason") == "denied" and not self.selection.redrive_denied:
            self.denied_left_out += 1
            return b""
        if "event" not in letter:
            self.without_event[str(letter.get("reason"))] += 1
            return b""
        event = letter["event"]
        if not isinstance(event, dict):
            return refused(line, f'not a dead letter: its "event" is {json_type(event)}')
        try:
            data = event_bytes(line, event)
        except ExpressionError as error:
            return refused(line, f"its event cannot be written as JSON: {error}")
        if len(data) > self.event_limit:
            detail = f"its event of {len(data)} bytes is over max_event_bytes ({self.event_limit})"
            return OversizeLine(data[:RAW_LIMIT], len(data), detail)
        return data


def refused(line: bytes, detail: str) -> OversizeLine:
    """A line the router must dead-letter as malformed, as it is, with this detail."""
    return OversizeLine(line[:RAW_LIMIT], len(line), detail)


def no_event_message(name: str, counts: Counter[str]) -> str:
    """What to say about letters that cannot be redriven, for they hold no event."""
    total = sum(counts.values())
    reasons = ", ".join(sorted(counts))
    letters = "dead letter holds" if total == 1 else "dead letters hold"
    return (
        f"{name}: {total:,} {letters} no event (reason {reasons}): not replayed;"
        " fix their source and run them as input"
    )


class DeadLetterSource(WrappingSource):
    """A dead letter file (`.gz` too), read through its own kind of splitter."""

    def __init__(self, file: Source, selection: Selection, warn: Callable[[str], None]) -> None:
        super().__init__(file)
        self.selection = selection
        self.warn = warn

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        for chunk in self.file.chunks(wakeup_fd):
            self.position = self.file.position
            yield chunk

    def line_splitter(self, max_event_bytes: int) -> LineSplitter:
        return DeadLetterSplitter(max_event_bytes, self.selection, self._report)

    def _report(self, without_event: Counter[str], denied: int) -> None:
        if without_event:
            self.warn(no_event_message(self.name, without_event))
        if denied:
            self.warn(
                f"{self.name}: {plural(denied, 'dead letter')} of denied events not replayed:"
                " under the config's publish policy an event goes through only from a"
                " producer that may publish it; run its input again once its publish list"
                " allows it"
            )


def dead_letter_opener(
    selection: Selection,
    warn: Callable[[str], None],
    written: Path | None,
    key: Key | None = None,
) -> Callable[[list[str]], list[Source]]:
    """Opens inputs as dead letter files; `written` is the run's own dead letter file;
    sealed files are read with `key`, the config's."""

    def open_dead_letters(names: list[str]) -> list[Source]:
        files = unseal(
            open_sources(names),
            key,
            "the config needs the encrypt: section (and its key) that wrote it",
        )
        sources: list[Source] = [DeadLetterSource(file, selection, warn) for file in files]
        for source in sources:
            if written is None or not written.exists():
                continue
            info = written.stat()
            if source.identity() == (info.st_dev, info.st_ino):
                for opened in sources:
                    opened.close()
                aside = shlex.quote(f"{source.name}.redrive")
                raise InputError(
                    f"{source.name}: this is the config's dead_letter file, which the replay"
                    f" writes to; move it aside first (mv {shlex.quote(source.name)} {aside})"
                    " and replay that"
                )
        return sources

    return open_dead_letters
