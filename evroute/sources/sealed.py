"""An input sealed by evroute (a dead letter file with `encrypt:`), read as plain text."""

from __future__ import annotations

import os
from collections.abc import Iterator

from evroute.core.lines import LineSplitter
from evroute.errors import InputError
from evroute.sources.base import FdSource, Source, WrappingSource
from evroute.storage.crypto import MAGIC, Key, RecordReader, Tampered, sealed


def is_sealed(source: Source) -> bool:
    """Whether the source is a regular file that starts as a sealed file does."""
    if not isinstance(source, FdSource) or not source.is_regular or source.fd is None:
        return False
    try:
        return sealed(os.pread(source.fd, len(MAGIC), 0))
    except OSError:
        return False


class SealedSource(WrappingSource):
    """The plain text of a sealed file, record by record. A record that fails
    authentication ends the input with an InputError; the records before it are read."""

    file: FdSource

    def __init__(self, file: FdSource, key: Key) -> None:
        super().__init__(file)
        self.key = key

    def chunks(self, wakeup_fd: int | None) -> Iterator[bytes]:
        assert self.file.fd is not None
        with os.fdopen(os.dup(self.file.fd), "rb") as stream:
            reader = RecordReader(stream, self.key, self.name)
            while True:
                try:
                    plain = reader.read()
                except Tampered as error:
                    raise InputError(str(error)) from None
                except OSError as error:
                    raise self._read_error(error) from None
                if plain is None:
                    return
                self.position = reader.offset
                yield plain

    def line_splitter(self, max_event_bytes: int) -> LineSplitter:
        return self.file.line_splitter(max_event_bytes)


def unseal(sources: list[Source], key: Key | None, where: str) -> list[Source]:
    """The sources, the sealed ones read through `key`; InputError for a sealed one
    when there is no key (`where` says where one would come from)."""
    opened: list[Source] = []
    for source in sources:
        if not is_sealed(source):
            opened.append(source)
            continue
        if key is None:
            for each in sources:
                each.close()
            raise InputError(f"{source.name} is encrypted: {where}")
        assert isinstance(source, FdSource)
        opened.append(SealedSource(source, key))
    return opened
