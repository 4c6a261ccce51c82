"""Dead letters: one JSON line per event that could not be routed or delivered."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import orjson

from evroute.config.model import Rotation
from evroute.core.lines import RAW_LIMIT
from evroute.core.parcel import Letter
from evroute.storage.audit_log import AuditLog, utc_now
from evroute.storage.crypto import Key
from evroute.storage.fileio import PartialWrite, RotatingFile, open_private, refuse_plain


def check_kept_file(path: Path, key: Key | None) -> None:
    """OSError now, before any event is routed, when a file evroute keeps could not be
    created (it is created at its first line), or when sealed lines would be appended
    to plain text."""
    if key is not None:
        refuse_plain(path, key)
    if path.exists():
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied", str(path))
        return
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(parent))
    if parent is not None and not os.access(parent, os.W_OK):
        raise PermissionError(13, "Permission denied", str(path))


def raw_text(line: bytes) -> str:
    """The line as text for `raw`: invalid UTF-8 escaped with backslashes, cut to 4 KiB."""
    return line[:RAW_LIMIT].decode("utf-8", errors="backslashreplace")


def undelivered(counts: Counter[str]) -> int:
    """Dead letters that mean something was not delivered: all but `unmatched`."""
    return sum(count for reason, count in counts.items() if reason != "unmatched")


class DeadLetters:
    """Thread-safe writer; without a path, dead letters are only counted."""

    def __init__(
        self,
        path: Path | None,
        rotation: Rotation | None = None,
        key: Key | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.path = path
        self.key = key  # with a key, the file is sealed (storage/crypto.py)
        self.counts: Counter[str] = Counter()
        self.audit = audit  # told what became of each event lettered
        self._lock = threading.Lock()
        self._file = (
            None
            if path is None
            else RotatingFile(
                path,
                rotation.bytes if rotation else None,
                rotation.keep if rotation else 0,
                open_private,
                key,
            )
        )
        self.write_error: str | None = None

    def check_writable(self) -> None:
        """Fail early when the file could not be created (it is created at the first
        letter), or when sealed letters would be appended to plain text."""
        if self.path is not None:
            check_kept_file(self.path, self.key)

    def add(
        self,
        reason: str,
        detail: str,
        letters: Iterable[Letter],
        route: str | None = None,
        consumer: str | None = None,
    ) -> None:
        letters = list(letters)
        if not letters:
            return
        if self.audit is not None:
            self.audit.letters(reason, detail, letters, route, consumer)
        with self._lock:
            self.counts[reason] += len(letters)
            if self.path is None or self.write_error is not None:
                return
            # Under a drop storm every dropped event is a dead letter written from the
            # router's thread, so the parts all letters of this call share are encoded once.
            head = orjson.dumps({"time": utc_now(), "reason": reason, "detail": detail})
            head = head[:-1] + b',"input":'
            tail = b',"route":%s,"consumer":%s,' % (orjson.dumps(route), orjson.dumps(consumer))
            inputs: dict[str | None, bytes] = {}
            lines = []
            for letter in letters:
                name = inputs.get(letter.input)
                if name is None:
                    name = inputs[letter.input] = orjson.dumps(letter.input)
                line = b"null" if letter.line is None else b"%d" % letter.line
                if letter.parsed:
                    # the event's own bytes: exact numbers, no second parse
                    body = b'"event":' + letter.data.strip()
                else:
                    size = letter.total_bytes or len(letter.data)
                    body = b'"raw":' + orjson.dumps(raw_text(letter.data))
                    if size > RAW_LIMIT or letter.total_bytes is not None:
                        body += b',"bytes":%d' % size
                lines.append(b'%s%s,"line":%s%s%s}' % (head, name, line, tail, body))
            try:
                assert self._file is not None
                self._file.write(b"\n".join(lines) + b"\n")
            except (OSError, PartialWrite) as error:
                # counted all the same; the run reports that the file could not be written
                self.write_error = f"cannot write dead letters to {self.path}: {error}"

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
