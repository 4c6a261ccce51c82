"""Input sources: each yields chunks of bytes; stdin waits in the kernel, never polls."""

from __future__ import annotations

import gzip
import os
import select
import stat
from collections.abc import Iterator
from pathlib import Path

from evroute.errors import InputError

CHUNK_BYTES = 256 << 10


class Source:
    """A named input read in chunks. `size` is known for regular files."""

    def __init__(self, name: str, path: Path | None) -> None:
        self.name = name
        self.path = path
        self.size: int | None = None
        self.position = 0  # bytes consumed from the underlying file, for progress

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        raise NotImplementedError


class FdSource(Source):
    """stdin or an uncompressed file, read with os.read.

    A read returns what is ready, so typed lines are routed at once; select() also
    watches `wakeup_fd`, which a signal handler writes to, so Ctrl-C is never stuck
    behind a blocking read.
    """

    def __init__(self, name: str, path: Path | None, fd: int, owns_fd: bool) -> None:
        super().__init__(name, path)
        self.fd = fd
        self.owns_fd = owns_fd
        info = os.fstat(fd)
        self.is_regular = stat.S_ISREG(info.st_mode)
        if self.is_regular:
            self.size = info.st_size

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        try:
            while True:
                if not self.is_regular and wakeup_fd is not None:
                    ready, _, _ = select.select([self.fd, wakeup_fd], [], [])
                    if wakeup_fd in ready and self.fd not in ready:
                        return
                chunk = os.read(self.fd, CHUNK_BYTES)
                if not chunk:
                    return
                self.position += len(chunk)
                yield chunk
        finally:
            if self.owns_fd:
                os.close(self.fd)


class GzipSource(Source):
    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        assert self.path is not None
        with open(self.path, "rb") as raw, gzip.GzipFile(fileobj=raw) as stream:
            self.size = os.fstat(raw.fileno()).st_size
            while True:
                try:
                    chunk = stream.read(CHUNK_BYTES)
                except (OSError, EOFError) as error:
                    raise InputError(f"{self.name}: cannot decompress: {error}") from None
                if not chunk:
                    return
                self.position = raw.tell()
                yield chunk


def open_sources(names: list[str], base: Path | None = None) -> list[Source]:
    """Sources for the inputs named (`-` is stdin), checked before anything is read."""
    sources: list[Source] = []
    problems: list[str] = []
    for name in names or ["-"]:
        if name == "-":
            sources.append(FdSource("-", None, 0, owns_fd=False))
            continue
        path = Path(name) if base is None or Path(name).is_absolute() else base / name
        if path.suffix == ".gz":
            if not os.access(path, os.R_OK):
                why = "permission denied" if path.exists() else "no such file"
                problems.append(f"{name}: cannot read: {why}")
                continue
            source: Source = GzipSource(name, path)
            source.size = path.stat().st_size
            sources.append(source)
            continue
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as error:
            problems.append(f"{name}: cannot read: {error.strerror}")
            continue
        sources.append(FdSource(name, path, fd, owns_fd=True))
    if problems:
        for source in sources:
            if isinstance(source, FdSource) and source.owns_fd:
                os.close(source.fd)
        raise InputError("; ".join(problems))
    return sources
