"""Writing to file descriptors: whole buffers, and the private files evroute keeps."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from evroute.storage.crypto import MAGIC, Key, Sealer, opens_last_segment, sealed, sealed_end


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


class SealedWriter:
    """Whole lines to descriptors as sealed records: each new descriptor (a file opened,
    a rotation, a run) starts a segment of its own with a fresh header."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self._sealer: Sealer | None = None
        self._end = -1  # where this writer's last record ended in the file

    def restart(self) -> None:
        """The next write starts a new segment (a new file, or another descriptor)."""
        self._sealer = None

    def write(self, fd: int, data: bytes) -> None:
        """All or nothing: when the write fails part-way, the file is cut back to where it
        was (no torn record) and PartialWrite says none of `data` went out.

        Under an exclusive lock, so that two runs appending to one file (a shared dead
        letter file) never interleave inside a record; a writer that finds the file
        grown by someone else starts a segment of its own after their records."""
        with _locked(fd):
            size = os.fstat(fd).st_size
            sealer = self._sealer if size == self._end else None
            fresh = sealer is None
            if fresh and size and _is_regular(fd):
                # a crash may have torn the last record: what follows it could not be
                # read, so the torn tail (never readable itself) is cut off first
                whole = _sealed_end_of(fd, size)
                if whole < size:
                    os.ftruncate(fd, whole)
                    size = whole
            if sealer is None:
                sealer = Sealer(self.key)
            sealed_data = sealer.records(data)
            if fresh:
                sealed_data = sealer.header() + sealed_data
            # the nonces are used: even a record cut back is never sealed again with them
            self._sealer = None
            try:
                write_all(fd, sealed_data)
            except PartialWrite as partial:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise PartialWrite(partial.error, data, 0) from None
            self._sealer = sealer
            self._end = size + len(sealed_data)


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    """flock the file for the while; a descriptor that cannot be locked is written as is."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)


def _sealed_end_of(fd: int, size: int) -> int:
    """sealed_end, for a descriptor opened to write only: read through another one."""
    try:
        return sealed_end(fd, size)
    except OSError as error:
        if error.errno != errno.EBADF:
            raise
    reader = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return sealed_end(reader, size)
    finally:
        os.close(reader)


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def refuse_plain(path: Path, key: Key | None = None) -> None:
    """Sealed records are never appended to a file of plain text, which would mix both,
    nor to one sealed with another key than `key`: OSError (EINVAL) saying so."""
    try:
        if not path.is_file():
            return  # a FIFO (opening it to read would wait for a writer), or not there
        with path.open("rb") as stream:
            start = stream.read(len(MAGIC))
            if start and not sealed(start):
                raise OSError(
                    errno.EINVAL,
                    "it holds plain text, and encrypted records cannot be appended to it;"
                    " move it aside (or decrypt the rest with evroute decrypt)",
                    str(path),
                )
            if start and key is not None and not opens_last_segment(stream.fileno(), key):
                raise OSError(
                    errno.EINVAL,
                    "it was encrypted with another key than this run's, and one file must"
                    " be read with one key; move it aside",
                    str(path),
                )
    except OSError as error:
        if error.errno == errno.EINVAL:
            raise
        return  # not readable: opening it for writing will tell


class RotatingFile:
    """A file of lines that, before it would pass `rotate_bytes`, is renamed PATH.1
    (PATH.1 to PATH.2, and so on), keeping `keep` old files. A line is never split
    between two files; one longer than the limit has a file of its own."""

    def __init__(
        self,
        path: Path,
        rotate_bytes: int | None,
        keep: int,
        opener: Callable[[Path], int],
        key: Key | None = None,
    ) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self._open = opener
        self._fd: int | None = None
        self._size = 0
        # with a key, each write is one sealed record (see storage/crypto.py)
        self._sealed = None if key is None else SealedWriter(key)

    @property
    def fd(self) -> int | None:
        return self._fd

    def adopt(self, fd: int) -> None:
        """Write to `fd`, already open on the path (opened with the caller's flags)."""
        self._fd = fd
        self._size = os.fstat(fd).st_size
        if self._sealed is not None:
            self._sealed.restart()

    def write(self, data: bytes) -> None:
        """Write whole lines; raises OSError (opening, renaming) or PartialWrite, which
        counts over all of `data`."""
        if self._fd is None:
            self._fd = self._open_file()
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
            if self._sealed is not None:
                self._sealed.write(self._fd, data)
            else:
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
        self._fd = self._open_file()
        self._size = 0

    def _open_file(self) -> int:
        if self._sealed is not None:
            refuse_plain(self.path, self._sealed.key)
            self._sealed.restart()
        return self._open(self.path)

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
