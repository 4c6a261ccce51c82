"""Input sources, each yielding chunks of bytes, and what every input kind provides.

Stdin and pipes are waited on in the kernel, never polled. An InputKind holds what the
rest of evroute needs to know of a kind: its keys and options parser, how its sources
are opened, its JSON schema, how graph draws it, whether it reads stdin.
"""

from __future__ import annotations

import gzip
import os
import select
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from evroute.core.lines import LineBatch, LineSplitter
from evroute.errors import InputError
from evroute.shaping.publish_policy import PublishPolicy
from evroute.storage.fileio import printable

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.json_schema import Schema
    from evroute.config.model import Config, InputConfig, InputOptions
    from evroute.config.yaml_loader import Node
    from evroute.core.receipt import Receipt
    from evroute.core.stats import InputStats

# How a source hands a batch on: (lines, bytes read for them, receipt); False: stop.
Give = Callable[[LineBatch, int, "Receipt | None"], bool]

CHUNK_BYTES = 256 << 10


class Source:
    """A named input read in chunks. `size` is known for regular files."""

    def __init__(self, name: str, path: Path | None) -> None:
        self.name = printable(name)
        self.path = path
        self.size: int | None = None
        self.position = 0  # bytes consumed from the underlying file, for progress
        self.publish: PublishPolicy | None = None  # None: it may publish any source
        # its counters, for inputs that count more than the router does (restarts, acks)
        self.stats: InputStats | None = None

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        raise NotImplementedError

    def line_splitter(self, max_event_bytes: int) -> LineSplitter:
        """What turns this input's chunks into numbered lines of events."""
        return LineSplitter(max_event_bytes)

    def produce(self, give: Give, wakeup_fd: int | None, max_event_bytes: int) -> bool:
        """Read the input to its end, giving each batch of lines (with the bytes read for
        it, and a receipt when the input wants to hear that it is safe); False when the
        taker stopped taking."""
        splitter = self.line_splitter(max_event_bytes)
        read = 0
        for chunk in self.chunks(wakeup_fd):
            # what the input sent: a command's cut-off line gets a newline of evroute's
            # making, which is no byte of the input's
            size, read = self.position - read, self.position
            if not give(splitter.feed(chunk), size, None):
                return False
        return give(splitter.finish(), 0, None)

    def stop(self) -> None:
        """Stop reading (the run is stopping); close() follows once the queues are drained."""
        self.close()

    def close(self) -> None:
        """Release the input; safe to call more than once."""

    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file read, to tell it from the files written."""
        return None

    @staticmethod
    def _identity_of(fd: int) -> tuple[int, int]:
        info = os.fstat(fd)
        return info.st_dev, info.st_ino

    def _read_error(self, error: OSError) -> InputError:
        return InputError(f"{self.name}: cannot read: {error.strerror or error}")


class FdSource(Source):
    """stdin, a file or a FIFO, read with os.read.

    A read returns what is ready, so typed lines are routed at once; select() also
    watches `wakeup_fd`, which a signal handler writes to, so Ctrl-C is never stuck
    behind a blocking read.
    """

    def __init__(self, name: str, path: Path | None, fd: int, owns_fd: bool) -> None:
        super().__init__(name, path)
        self.fd: int | None = fd
        self.owns_fd = owns_fd
        info = os.fstat(fd)
        self.is_regular = stat.S_ISREG(info.st_mode)
        if self.is_regular:
            self.size = info.st_size

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        fd = self.fd
        assert fd is not None
        while True:
            try:
                if not self.is_regular and wakeup_fd is not None:
                    ready, _, _ = select.select([fd, wakeup_fd], [], [])
                    if wakeup_fd in ready and fd not in ready:
                        return
                chunk = os.read(fd, CHUNK_BYTES)
            except OSError as error:
                raise self._read_error(error) from None
            if not chunk:
                return
            self.position += len(chunk)
            yield chunk

    def identity(self) -> tuple[int, int] | None:
        return self._identity_of(self.fd) if self.fd is not None and self.is_regular else None

    def close(self) -> None:
        if self.owns_fd and self.fd is not None:
            os.close(self.fd)
        self.fd = None


class RawFileSource(Source):
    """A regular file read through a file object of its own (`raw`), decoded as it is read
    (gzip, an archive segment); `position` follows the file's bytes."""

    def __init__(self, name: str, path: Path, raw: BinaryIO) -> None:
        super().__init__(name, path)
        self.raw: BinaryIO | None = raw
        self.size = os.fstat(raw.fileno()).st_size

    def identity(self) -> tuple[int, int] | None:
        return self._identity_of(self.raw.fileno()) if self.raw is not None else None

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
        self.raw = None


class WrappingSource(Source):
    """Another source (`file`) read in a way of its own (unsealed, as dead letters): it
    goes by the file's name, size and identity, and closing it closes the file."""

    def __init__(self, file: Source) -> None:
        super().__init__(file.name, file.path)
        self.file = file
        self.size = file.size

    def identity(self) -> tuple[int, int] | None:
        return self.file.identity()

    def close(self) -> None:
        self.file.close()


class GzipSource(RawFileSource):
    """A `.gz` file, decompressed as it is read."""

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        assert self.raw is not None
        stream = gzip.GzipFile(fileobj=self.raw)
        while True:
            try:
                chunk = stream.read(CHUNK_BYTES)
            except (OSError, EOFError, zlib.error) as error:
                raise InputError(f"{self.name}: cannot decompress: {error}") from None
            if not chunk:
                return
            self.position = self.raw.tell()
            yield chunk


def _open(name: str, base: Path | None) -> Source:
    path = Path(name) if base is None or Path(name).is_absolute() else base / name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise InputError(f"{printable(name)}: cannot read: {reason}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise InputError(f"{printable(name)}: is a folder; name the files in it")
    if path.suffix == ".gz" and stat.S_ISREG(mode):
        return GzipSource(name, path, os.fdopen(fd, "rb"))
    return FdSource(name, path, fd, owns_fd=True)


def open_sources(names: list[str], base: Path | None = None) -> list[Source]:
    """Sources for the inputs named (`-` is stdin), all checked before anything is read."""
    sources: list[Source] = []
    problems: list[str] = []
    for name in names or ["-"]:
        if name == "-":
            sources.append(FdSource("-", None, 0, owns_fd=False))
            continue
        try:
            sources.append(_open(name, base))
        except InputError as error:
            problems.append(str(error))
    if problems:
        for source in sources:
            source.close()
        raise InputError("; ".join(problems))
    return sources


@dataclass(frozen=True)
class InputKind:
    """An input kind as `inputs:` names it, and all the rest of evroute needs to know of
    it: adding a kind is writing its module and registering it in sources/__init__.py."""

    name: str
    description: str  # what it reads, in a few words
    keys: tuple[str, ...]  # its own keys, its name first; besides `name` and `publish`
    # (checker, the input's fields, its config path, its name, the config's folder)
    parse_options: Callable[[Checker, dict[str, Node], str, str, Path], InputOptions | None]
    # the sources a producer of this kind reads (its files opened); InputError if none
    open: Callable[[InputConfig, Config, Callable[[str], None]], list[Source]]
    schema: Callable[[], dict[str, Schema]]  # the JSON Schema of each of its keys' values
    draw: Callable[[Any], str]  # what it reads, as graph shows it: "file in/*.jsonl"
    reads_stdin: bool = False  # one input of a config may read stdin
