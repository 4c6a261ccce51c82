"""`file:` consumers: append or overwrite a file; `-` is stdout."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.fileio import PartialWrite, write_all
from evroute.sinks.base import (
    RETRY_BACKOFF_S,
    RETRY_MAX_BACKOFF_S,
    EventFailure,
    Sink,
    SinkEnded,
    SinkFailed,
    SinkKind,
    backoff_delay,
    join_lines,
)

if TYPE_CHECKING:
    from evroute.config.check import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node

STDOUT = "-"


@dataclass(frozen=True)
class FileOptions:
    path: str  # as written, relative to the config's folder; "-" is stdout
    mode: str = "append"


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> FileOptions | None:
    from evroute.config.check import join

    target = checker.string(fields["file"], join(path, "file"))
    mode = "append"
    if "mode" in fields:
        mode = checker.choice(fields["mode"], join(path, "mode"), ("append", "overwrite")) or mode
    if target is None:
        return None
    if "{" in target.replace("{{", "").replace("}}", "") or "}" in target.replace("{{", "").replace(
        "}}", ""
    ):
        checker.error(
            fields["file"],
            join(path, "file"),
            "templated paths ({expression}) are not supported yet in this version of evroute;"
            " write {{ and }} for literal braces",
        )
        return None
    return FileOptions(target.replace("{{", "{").replace("}}", "}"), mode)


class FileSink(Sink):
    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.options: FileOptions = config.options
        self.fd: int | None = None
        self._stop = threading.Event()

    @property
    def is_stdout(self) -> bool:
        return self.options.path == STDOUT

    def open(self) -> None:
        if self.is_stdout:
            try:
                self.fd = os.dup(1)
            except OSError as error:
                raise SinkFailed(f"cannot use stdout: {error.strerror}") from None
            return
        path = self.base_dir / self.options.path
        # O_APPEND in both modes: writes land at the end even if something else
        # (another run, a second descriptor) writes the same file
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if self.options.mode == "overwrite":
            flags |= os.O_TRUNC
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, flags, 0o666)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            raise SinkFailed(f"cannot open {path}: {reason}") from None

    def output_path(self) -> Path | None:
        return None if self.is_stdout else self.base_dir / self.options.path

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        """Write the batch; a failed write (disk full) is retried with backoff, then its
        events are given up on one by one. Never counted delivered unless written."""
        if self.fd is None:
            raise SinkFailed("the file is not open")
        done = 0
        attempts = 0
        while True:
            try:
                write_all(self.fd, join_lines(payloads[done:]))
                return []
            except PartialWrite as partial:
                error = partial.error
                if self.is_stdout and error.errno in (errno.EPIPE, errno.EBADF):
                    raise SinkEnded(
                        "stdout was closed by its reader", done + partial.complete_lines
                    ) from None
                done += partial.complete_lines
                self._cut_partial_line(partial.partial_bytes)
            attempts += 1
            delay = backoff_delay(attempts, RETRY_BACKOFF_S, RETRY_MAX_BACKOFF_S)
            if attempts > self.config.queue.retries or self._stop.wait(delay):
                reason = "shutdown" if self._stop.is_set() else "delivery_failed"
                detail = f"cannot write {self.options.path}: {error.strerror}"
                detail += f" ({attempts} attempt{'s' if attempts > 1 else ''})"
                return [(index, reason, detail) for index in range(done, len(payloads))]

    def _cut_partial_line(self, partial_bytes: int) -> None:
        """Take back the start of a line that was only partly written, so that the
        retry writes it whole (a pipe or a device cannot be cut: left as it is)."""
        if not partial_bytes or self.fd is None:
            return
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.fstat(self.fd).st_mode):
                os.ftruncate(self.fd, os.fstat(self.fd).st_size - partial_bytes)

    def terminate(self) -> None:
        self._stop.set()  # no more waiting to retry: evroute is stopping

    def close(self, linger: float) -> str | None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return None


def create(config: ConsumerConfig, base_dir: Path) -> Sink:
    return FileSink(config, base_dir)


KIND = SinkKind(
    name="file",
    keys=("file", "mode"),
    later={
        "max_open_files": "max_open_files (templated paths)",
        "rotate_bytes": "rotate_bytes (file rotation)",
        "rotate_keep": "rotate_keep (file rotation)",
        "fields": "fields (subscribe policy)",
    },
    parse_options=parse_options,
    create=create,
)
