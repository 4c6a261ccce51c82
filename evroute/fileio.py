"""Writing to file descriptors: whole buffers, and the private files evroute keeps."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


class PartialWrite(Exception):
    """A write failed after `written` bytes of the buffer had gone out."""

    def __init__(self, error: OSError, data: bytes, written: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.written = written
        self.complete_lines = data.count(b"\n", 0, written)
        # bytes of a line that went out only in part
        self.partial_bytes = written - (data.rfind(b"\n", 0, written) + 1)


def write_all(fd: int, data: bytes) -> None:
    """Write the whole buffer; raises PartialWrite saying how many whole lines got out."""
    view = memoryview(data)
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, view[written:])
    except OSError as error:
        raise PartialWrite(error, data, written) from None


class RotatingFile:
    """A file of lines that, before it would pass `rotate_bytes`, is renamed PATH.1
    (PATH.1 to PATH.2, and so on), keeping `keep` old files. A line is never split
    between two files; one longer than the limit has a file of its own."""

    def __init__(
        self, path: Path, rotate_bytes: int | None, keep: int, opener: Callable[[Path], int]
    ) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self._open = opener
        self._fd: int | None = None
        self._size = 0

    @property
    def fd(self) -> int | None:
        return self._fd

    def adopt(self, fd: int) -> None:
        """Write to `fd`, already open on the path (opened with the caller's flags)."""
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def write(self, data: bytes) -> None:
        """Write whole lines; raises OSError (opening, renaming) or PartialWrite, which
        counts over all of `data`."""
        if self._fd is None:
            self._fd = self._open(self.path)
            self._size = os.fstat(self._fd).st_size
        # what is on disk, which a caller may have cut back after a failed write
        self._size = os.fstat(self._fd).st_size
        limit = self.rotate_bytes
        offset = 0
        while offset < len(data):
            end = len(data)
            if limit is not None and self._size + end - offset > limit:
                end = data.rfind(b"\n", offset, offset + max(limit - self._size, 0)) + 1
                if end <= offset:  # not one whole line fits
                    if self._size:
                        self._rotate_at(data, offset)
                        continue
                    end = data.find(b"\n", offset) + 1 or len(data)  # over the limit: alone
            try:
                self._write(data[offset:end])
            except PartialWrite as partial:
                raise PartialWrite(partial.error, data, offset + partial.written) from None
            offset = end
            if offset < len(data):
                self._rotate_at(data, offset)

    def _rotate_at(self, data: bytes, offset: int) -> None:
        """Rotate, between lines of `data`: a failure says how much of it went out."""
        try:
            self._rotate()
        except OSError as error:
            raise PartialWrite(error, data, offset) from None

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        try:
            write_all(self._fd, data)
        finally:
            self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        self.close()
        for number in range(self.keep, 0, -1):
            older = (
                self.path if number == 1 else self.path.with_name(f"{self.path.name}.{number - 1}")
            )
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number}"))
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        self._fd = self._open(self.path)
        self._size = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def make_private_folder(folder: Path) -> None:
    """Create the folder and any missing parents 0700."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def open_private(path: Path) -> int:
    """A file evroute keeps for itself (dead letters): 0600, appended to."""
    make_private_folder(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o600)


def printable(text: str) -> str:
    """A name as valid UTF-8 text: bytes that did not decode are escaped with backslashes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
