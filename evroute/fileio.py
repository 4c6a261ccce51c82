"""Writing to file descriptors: whole buffers, and the private files evroute keeps."""

from __future__ import annotations

import os
from pathlib import Path


class PartialWrite(Exception):
    """A write failed after `written` bytes of the buffer had gone out."""

    def __init__(self, error: OSError, data: bytes, written: int) -> None:
        super().__init__(str(error))
        self.error = error
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
