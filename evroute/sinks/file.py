"""`file:` consumers: append or overwrite a file; `-` is stdout; a templated path
(`out/{source}.jsonl`) splits the events into files, kept open in an LRU."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join, read_rotation, source_position
from evroute.config.json_schema import (
    BOOLEAN,
    ROTATION_VALUES,
    STRING,
    Schema,
    choice,
    dataclass_defaults,
    integer,
    object_schema,
)
from evroute.config.model import Rotation
from evroute.shaping.templates import (
    PathTemplate,
    TemplateError,
    TemplateSyntaxError,
    is_template,
    read_payload,
    unescape,
)
from evroute.shaping.templates import parse as parse_template
from evroute.sinks.base import (
    EventFailure,
    Output,
    Sink,
    SinkEnded,
    SinkFailed,
    SinkKind,
    attempts_note,
    backoff_or_give_up,
    join_lines,
)
from evroute.storage.crypto import Key
from evroute.storage.fileio import (
    PartialWrite,
    RotatingFile,
    SealedWriter,
    refuse_plain,
    write_all,
)

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import ConsumerConfig
    from evroute.config.yaml_loader import Node

STDOUT = "-"
DEFAULT_MAX_OPEN_FILES = 256


@dataclass(frozen=True)
class FileOptions:
    path: str  # as written, relative to the config's folder; "-" is stdout
    mode: str = "append"
    template: PathTemplate | None = None  # when the path has {expressions}
    max_open_files: int = DEFAULT_MAX_OPEN_FILES
    rotation: Rotation | None = None
    encrypt: bool = False  # sealed with the key of the config's encrypt: section


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, base_dir: Path
) -> FileOptions | None:
    target = checker.string(fields["file"], join(path, "file"))
    mode = "append"
    if "mode" in fields:
        mode = checker.choice(fields["mode"], join(path, "mode"), ("append", "overwrite")) or mode
    max_open_files = DEFAULT_MAX_OPEN_FILES
    if "max_open_files" in fields:
        node = fields["max_open_files"]
        max_open_files = checker.integer(node, join(path, "max_open_files"), 1) or max_open_files
    rotation = read_rotation(checker, fields, path)
    encrypt = checker.boolean(fields, "encrypt", path)
    if target is None:
        return None
    if encrypt and target == STDOUT:
        checker.error(
            fields["encrypt"],
            join(path, "encrypt"),
            "stdout is never encrypted: remove encrypt or give a file path",
        )
        return None
    if rotation is not None and (target == STDOUT or is_template(target)):
        what = "stdout" if target == STDOUT else "a templated path, which writes many files,"
        checker.error(
            fields["rotate_bytes"],
            join(path, "rotate_bytes"),
            f"{what} cannot rotate; remove rotate_bytes or give a plain file path",
        )
        return None
    if not is_template(target):
        if "max_open_files" in fields:
            checker.warning(
                fields["max_open_files"],
                join(path, "max_open_files"),
                "has no effect: only a templated path ({expression}) opens several files",
            )
        return FileOptions(unescape(target), mode, rotation=rotation, encrypt=encrypt)
    try:
        template = parse_template(target)
    except TemplateSyntaxError as error:
        line, column = source_position(fields["file"], error.position)
        checker.report(
            "error",
            fields["file"],
            join(path, "file"),
            f"path template: {error.message} (at position {error.position} of {target!r})",
            line=line,
            column=column,
        )
        return None
    return FileOptions(target, mode, template, max_open_files, encrypt=encrypt)


# Opening a file again cannot help with these: its events are given up on at once.
_LASTING_OPEN_ERRORS = frozenset(
    getattr(errno, name)
    for name in ("ENAMETOOLONG", "EISDIR", "ENOTDIR", "EEXIST", "EINVAL", "ELOOP", "EACCES")
    if hasattr(errno, name)
)


class _Share:
    """The events of a batch that go to one file of a templated path."""

    __slots__ = ("done", "error", "indexes", "lasting", "path", "verb")

    def __init__(self, path: str, indexes: list[int]) -> None:
        self.path = path  # relative to the config's folder, as rendered
        self.indexes = indexes  # in the batch, in order
        self.done = 0  # how many of them are written
        self.error: OSError | None = None
        self.verb = "write"
        self.lasting = False


class FileSink(Sink):
    def __init__(self, config: ConsumerConfig, base_dir: Path) -> None:
        super().__init__(config, base_dir)
        self.options: FileOptions = config.options
        self.fd: int | None = None
        self._rotating: RotatingFile | None = None  # a plain path with rotate_bytes
        self._stop = threading.Event()
        # templated paths: descriptors by path, least recently used first
        self._open_files: OrderedDict[str, int] = OrderedDict()
        self._truncated: set[str] = set()  # overwrite mode: files truncated in this run
        # the run's key (set by the pipeline); used when the options say encrypt: true
        self._sealed: dict[str, SealedWriter] = {}  # templated paths: a segment per open file

    @property
    def sealing_key(self) -> Key | None:
        return self.key if self.options.encrypt else None

    @property
    def is_stdout(self) -> bool:
        return self.options.path == STDOUT

    def open(self) -> None:
        if self.options.template is not None:
            return  # each file is opened when an event first goes to it
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
        key = self.sealing_key
        if self.options.encrypt and key is None:
            raise SinkFailed("encrypt: true, but the run has no key (the config's encrypt:)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if key is not None and self.options.mode == "append":
                refuse_plain(path, key)
            self.fd = os.open(path, flags, 0o666)
            rotation = self.options.rotation
            if rotation is not None or key is not None:
                # each new file after a rotation starts empty anyway
                reopen = flags & ~os.O_TRUNC
                self._rotating = RotatingFile(
                    path,
                    rotation.bytes if rotation else None,
                    rotation.keep if rotation else 0,
                    lambda name: os.open(name, reopen, 0o666),
                    key,
                )
                self._rotating.adopt(self.fd)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            raise SinkFailed(f"cannot open {path}: {reason}") from None

    def output_path(self) -> Path | None:
        if self.is_stdout or self.options.template is not None:
            return None
        return self.base_dir / self.options.path

    def write(self, payloads: list[bytes]) -> list[EventFailure]:
        """Write the batch; a failed write (disk full) is retried with backoff, then its
        events are given up on one by one. Never counted delivered unless written."""
        if self.options.template is not None:
            return self._write_templated(self.options.template, payloads)
        if self.fd is None:
            raise SinkFailed("the file is not open")
        done = 0
        attempts = 0
        while True:
            try:
                if self._rotating is not None:
                    self._rotating.write(join_lines(payloads[done:]))
                else:
                    write_all(self.fd, join_lines(payloads[done:]))
                return []
            except PartialWrite as partial:
                error = partial.error
                if self.is_stdout and error.errno in (errno.EPIPE, errno.EBADF):
                    raise SinkEnded(
                        "stdout was closed by its reader", done + partial.complete_lines
                    ) from None
                done += partial.complete_lines
                fd = self.fd if self._rotating is None else self._rotating.fd
                if fd is not None:
                    self._cut_partial_line(partial.partial_bytes, fd)
            except OSError as error_opening:  # rotating: renaming, or opening the new file
                error = error_opening
            attempts += 1
            reason = backoff_or_give_up(attempts, self.config.queue.retries, self._stop)
            if reason is not None:
                detail = f"cannot write {self.options.path}: {error.strerror}"
                detail += attempts_note(attempts)
                return [(index, reason, detail) for index in range(done, len(payloads))]

    @staticmethod
    def _cut_partial_line(partial_bytes: int, fd: int) -> None:
        """Take back the start of a line that was only partly written, so that the
        retry writes it whole (a pipe or a device cannot be cut: left as it is)."""
        if not partial_bytes:
            return
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, os.fstat(fd).st_size - partial_bytes)

    def _write_templated(self, template: PathTemplate, payloads: list[bytes]) -> list[EventFailure]:
        """Group the batch by file, in order within each, and write each group with one
        write; groups that fail are retried together, with the literal path's backoff."""
        failures: list[EventFailure] = []
        groups: dict[str, list[int]] = {}
        for index, payload in enumerate(payloads):
            try:
                target = template.render(read_payload(payload))
            except TemplateError as error:
                failures.append((index, "delivery_failed", f"path template: {error}"))
                continue
            except (ValueError, RecursionError) as error:  # not JSON; cannot happen
                detail = f"path template: cannot read the event: {error}"
                failures.append((index, "delivery_failed", detail))
                continue
            groups.setdefault(target, []).append(index)
        pending = [_Share(path, indexes) for path, indexes in groups.items()]
        attempts = 0
        while True:
            retry = []
            for share in pending:
                if self._write_share(share, payloads):
                    continue
                if share.lasting:
                    failures.extend(self._give_up(share, "delivery_failed", 1))
                else:
                    retry.append(share)
            if not retry:
                return failures
            attempts += 1
            reason = backoff_or_give_up(attempts, self.config.queue.retries, self._stop)
            if reason is not None:
                for share in retry:
                    failures.extend(self._give_up(share, reason, attempts))
                return failures
            pending = retry

    @staticmethod
    def _give_up(share: _Share, reason: str, attempts: int) -> list[EventFailure]:
        strerror = share.error.strerror if share.error is not None else "unknown error"
        detail = f"cannot {share.verb} {share.path}: {strerror}" + attempts_note(attempts)
        return [(index, reason, detail) for index in share.indexes[share.done :]]

    def _write_share(self, share: _Share, payloads: list[bytes]) -> bool:
        """Write what is left of one file's events; False (and why) when it failed."""
        try:
            fd = self._descriptor(share.path)
        except OSError as error:
            share.error, share.verb = error, "open"
            share.lasting = error.errno in _LASTING_OPEN_ERRORS
            return False
        data = join_lines([payloads[index] for index in share.indexes[share.done :]])
        try:
            sealed = self._sealed.get(share.path)
            if sealed is not None:
                sealed.write(fd, data)
            else:
                write_all(fd, data)
        except PartialWrite as partial:
            share.done += partial.complete_lines
            share.error, share.verb = partial.error, "write"
            self._cut_partial_line(partial.partial_bytes, fd)
            return False
        share.done = len(share.indexes)
        return True

    def _descriptor(self, path: str) -> int:
        """An open descriptor for `path`, from the LRU or newly opened (closing the least
        recently used one when `max_open_files` are open); raises OSError."""
        fd = self._open_files.get(path)
        if fd is not None:
            self._open_files.move_to_end(path)
            return fd
        while len(self._open_files) >= self.options.max_open_files:
            self._evict()
        key = self.sealing_key
        if self.options.encrypt and key is None:
            raise OSError(errno.EINVAL, "encrypt: true, but the run has no key")
        # O_APPEND as for a literal path; truncated only the first time in this run, so
        # that a file opened again after it was evicted keeps what this run wrote
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        overwrite = self.options.mode == "overwrite" and path not in self._truncated
        if overwrite:
            flags |= os.O_TRUNC
        full = os.path.join(self.base_dir, path)
        if key is not None and not overwrite:
            refuse_plain(Path(full), key)
        while True:
            try:
                fd = os.open(full, flags, 0o666)
                break
            except FileNotFoundError:
                # the folder is made only when missing: one system call less per open
                os.makedirs(os.path.dirname(full), exist_ok=True)
                fd = os.open(full, flags, 0o666)
                break
            except OSError as error:
                # descriptors used elsewhere in the process: give back one of ours
                if error.errno not in (errno.EMFILE, errno.ENFILE) or not self._open_files:
                    raise
                self._evict()
        if overwrite:
            self._truncated.add(path)
        self._open_files[path] = fd
        if key is not None:
            self._sealed[path] = SealedWriter(key)  # a new segment for each opening
        return fd

    def _evict(self) -> None:
        path, fd = self._open_files.popitem(last=False)
        self._sealed.pop(path, None)
        with contextlib.suppress(OSError):
            os.close(fd)

    def terminate(self) -> None:
        self._stop.set()  # no more waiting to retry: evroute is stopping

    def close(self, linger: float) -> str | None:
        if self._rotating is not None:
            self._rotating.close()  # its descriptor, which may not be self.fd any more
            self.fd = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        while self._open_files:
            self._evict()
        return None


def create(config: ConsumerConfig, base_dir: Path) -> Sink:
    return FileSink(config, base_dir)


def schema() -> Schema:
    values: dict[str, Schema] = {
        "file": {
            **STRING,
            "description": 'a path relative to the config; "-" is stdout; {JMESPath} templates',
        },
        "mode": choice(("append", "overwrite")),
        "max_open_files": integer(1),
        **ROTATION_VALUES,
        "encrypt": {
            **BOOLEAN,
            "description": "seal the file with the key of the top-level encrypt:",
        },
    }
    return object_schema(KIND.keys, values, dataclass_defaults(FileOptions))


def draw(options: FileOptions) -> tuple[str, str]:
    return "file", "stdout" if options.path == "-" else options.path


def outputs(options: FileOptions) -> tuple[Output, ...]:
    if options.path == "-":
        return ()
    if options.template is not None:
        return (Output("file", options.path, "template", template=options.template),)
    return (Output("file", options.path, "file", rotation=options.rotation),)


def needs_key(options: FileOptions) -> str | None:
    return "encrypt" if options.encrypt else None


KIND = SinkKind(
    name="file",
    description="append or overwrite a file, or stdout",
    keys=("file", "mode", "max_open_files", "rotate_bytes", "rotate_keep", "encrypt"),
    parse_options=parse_options,
    create=create,
    schema=schema,
    draw=draw,
    outputs=outputs,
    needs_key=needs_key,
)
