"""Encryption at rest: the sealed format of the files evroute keeps for itself.

A sealed file is one or more segments, one per run (or per file opened) that wrote it:

    header: MAGIC (8 bytes) + salt (16 random bytes)
    record: length of what follows (4 bytes, big-endian) + AES-256-GCM ciphertext and tag

Each segment's key is HKDF-SHA256 of the master key with the segment's salt, so no two
segments share a key; within a segment, record i (from 0) is sealed with nonce i (12
bytes, big-endian) and the 8-byte index as associated data. A counter under a fresh key
never repeats and does not run out. A record holds whole lines, at most 64 MiB of them.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import os
import re
import secrets
import stat
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from evroute.errors import EvrouteError

if TYPE_CHECKING:
    from evroute.config.model import Config

MAGIC = b"EVRSEAL1"
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + SALT_BYTES
KEY_BYTES = 32
TAG_BYTES = 16
LENGTH = struct.Struct(">I")
# A record holds at most this much plain text, so a length field that reads as MAGIC's
# first 4 bytes (about 1.1 GiB) can only be the header of the next segment.
MAX_RECORD_BYTES = 64 << 20
SEGMENT_INFO = b"evroute segment v1"
DEFAULT_KEY_ENV = "EVROUTE_KEY"
KEYGEN_HINT = "`evroute keygen` makes one"

assert LENGTH.unpack(MAGIC[:4])[0] > MAX_RECORD_BYTES + TAG_BYTES


class KeyProblem(EvrouteError):
    """The key is missing or is not a key."""


class Tampered(EvrouteError):
    """A sealed record that fails authentication, or is cut short."""

    def __init__(self, name: str, record: int, offset: int, problem: str | None = None) -> None:
        self.name = name
        self.record = record  # 1-based, counted over the whole file
        self.offset = offset  # where the record starts in the file
        self.problem = problem or ("fails authentication: the file was changed or the key is wrong")
        super().__init__(f"{name}: record {record} at byte {offset} {self.problem}")


class Key:
    """The master key: 32 bytes, written as base64."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"a key is {KEY_BYTES} bytes, not {len(secret)}")
        self._secret = secret

    def __repr__(self) -> str:
        return "Key(...)"  # never the secret, in a traceback or a log

    @staticmethod
    def generate() -> str:
        """A new random key, as the base64 text `from_text` reads."""
        return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")

    @classmethod
    def from_text(cls, text: str, where: str) -> Key:
        """The key written in `text` (surrounding white space ignored); KeyProblem says
        what is wrong with it, naming `where` it came from."""
        try:
            secret = base64.b64decode(text.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise KeyProblem(f"{where} is not a key: expected base64 text; {KEYGEN_HINT}") from None
        if len(secret) != KEY_BYTES:
            raise KeyProblem(
                f"{where} is not a key: it holds {len(secret)} bytes, a key is {KEY_BYTES};"
                f" {KEYGEN_HINT}"
            )
        return cls(secret)

    @classmethod
    def load(cls, key_env: str | None = DEFAULT_KEY_ENV, key_file: Path | None = None) -> Key:
        """The key from a file when one is given, else from the environment variable."""
        if key_file is not None:
            try:
                text = key_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or str(error)
                raise KeyProblem(f"cannot read the key file {key_file}: {reason}") from None
            return cls.from_text(text, f"the key file {key_file}")
        name = key_env or DEFAULT_KEY_ENV
        if not is_variable_name(name):
            raise KeyProblem(NOT_A_NAME)
        value = os.environ.get(name)
        if not value:
            raise KeyProblem(
                f"environment variable {name} is not set: it must hold the encryption key;"
                f" {KEYGEN_HINT} (export {name}=$(evroute keygen))"
            )
        return cls.from_text(value, f"environment variable {name}")

    def segment_cipher(self, salt: bytes) -> AESGCM:
        """The cipher of the segment whose header holds `salt`."""
        derived = HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=SEGMENT_INFO
        ).derive(self._secret)
        return AESGCM(derived)


# Said without the text given, which may be the key itself pasted in by mistake.
NOT_A_NAME = (
    "the key's environment variable must be given by its name (such as EVROUTE_KEY),"
    " not by its value"
)


def is_variable_name(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) is not None


def sealed_end(fd: int, size: int) -> int:
    """Where the last whole header or record of a sealed file ends, walking its length
    fields: less than `size` when a crash tore the last write."""
    position = 0
    while position < size:
        head = os.pread(fd, LENGTH.size, position)
        if len(head) < LENGTH.size:
            return position
        if head == MAGIC[: LENGTH.size]:
            if size - position < HEADER_BYTES:
                return position
            position += HEADER_BYTES
            continue
        end = position + LENGTH.size + LENGTH.unpack(head)[0]
        if end > size:
            return position
        position = end
    return position


def opens_last_segment(fd: int, key: Key) -> bool:
    """Whether `key` opens the first record of the file's last segment (True when that
    segment has no record yet): appending under another key would leave a file that no
    one key reads."""
    size = os.fstat(fd).st_size
    position, last_header = 0, -1
    while position + LENGTH.size <= size:
        head = os.pread(fd, LENGTH.size, position)
        if head == MAGIC[: LENGTH.size]:
            last_header = position
            position += HEADER_BYTES
        else:
            position += LENGTH.size + LENGTH.unpack(head)[0]
    if last_header < 0:
        return True
    start = last_header + HEADER_BYTES
    head = os.pread(fd, LENGTH.size, start)
    if len(head) < LENGTH.size or head == MAGIC[: LENGTH.size]:
        return True
    ciphertext = os.pread(fd, LENGTH.unpack(head)[0], start + LENGTH.size)
    salt = os.pread(fd, SALT_BYTES, last_header + len(MAGIC))
    nonce, associated = _index(0)
    try:
        key.segment_cipher(salt).decrypt(nonce, ciphertext, associated)
    except (InvalidTag, ValueError):
        return False
    return True


def key_file_warning(path: Path) -> str | None:
    """What is unsafe about where the key file is kept: readable by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"the key file {path} can be read by others (mode {mode & 0o777:o}); chmod 600 it"
    return None


def load_config_key(config: Config) -> Key | None:
    """The key of the config's `encrypt:` section; None when it has none."""
    settings = config.encrypt
    if settings is None:
        return None
    if settings.key_file is not None:
        return Key.load(None, settings.key_file)
    return Key.load(settings.key_env)


def _index(number: int) -> tuple[bytes, bytes]:
    """The nonce and the associated data of record `number` of a segment."""
    return number.to_bytes(12, "big"), number.to_bytes(8, "big")


class Sealer:
    """Seals the records of one segment under a key of its own."""

    def __init__(self, key: Key) -> None:
        self.salt = secrets.token_bytes(SALT_BYTES)
        self._cipher = key.segment_cipher(self.salt)
        self._next = 0  # records sealed so far: the next one's index

    def header(self) -> bytes:
        return MAGIC + self.salt

    def record(self, plain: bytes) -> bytes:
        """One sealed record; each call uses the next nonce, so a record that was not
        written cannot be taken back: start a new segment (a new Sealer) instead."""
        if len(plain) > MAX_RECORD_BYTES:
            raise ValueError(f"a record holds at most {MAX_RECORD_BYTES} bytes")
        nonce, associated = _index(self._next)
        self._next += 1
        ciphertext = self._cipher.encrypt(nonce, plain, associated)  # the tag at its end
        return LENGTH.pack(len(ciphertext)) + ciphertext

    def records(self, data: bytes) -> bytes:
        """`data` (whole lines) as one record, or several when it is over the limit,
        cut after a line where one ends in time."""
        if len(data) <= MAX_RECORD_BYTES:
            return self.record(data)
        parts = []
        start = 0
        while start < len(data):
            end = min(start + MAX_RECORD_BYTES, len(data))
            if end < len(data):
                end = data.rfind(b"\n", start, end) + 1 or end  # a longer line is cut
            parts.append(self.record(data[start:end]))
            start = end
        return b"".join(parts)


def sealed(first_bytes: bytes) -> bool:
    """Whether a file starting with these bytes is sealed."""
    return first_bytes.startswith(MAGIC)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class RecordReader:
    """Reads the records of a sealed stream back, segment after segment."""

    def __init__(self, stream: BinaryIO, key: Key, name: str) -> None:
        self.stream = stream
        self.key = key
        self.name = name
        self.offset = 0  # of the next record (or header) in the stream
        self.records = 0  # read so far, over all segments
        self._cipher: AESGCM | None = None
        self._next = 0  # the index of the next record in its segment

    def read(self) -> bytes | None:
        """The next record's plain text; None at the end. Raises Tampered."""
        while True:
            start = self.offset
            length_bytes = _read_exactly(self.stream, LENGTH.size)
            if not length_bytes:
                return None
            number = self.records + 1
            if length_bytes == MAGIC[: LENGTH.size] or self._cipher is None:
                self._start_segment(length_bytes, start, number)
                continue
            if len(length_bytes) < LENGTH.size:
                raise self._cut_short(number, start)
            (length,) = LENGTH.unpack(length_bytes)
            if not TAG_BYTES <= length <= MAX_RECORD_BYTES + TAG_BYTES:
                raise Tampered(
                    self.name,
                    number,
                    start,
                    f"has an impossible length ({length}): the file was changed",
                )
            body = _read_exactly(self.stream, length)
            if len(body) < length:
                raise self._cut_short(number, start)
            nonce, associated = _index(self._next)
            try:
                plain = self._cipher.decrypt(nonce, body, associated)
            except InvalidTag:
                raise Tampered(self.name, number, start) from None
            self.offset = start + LENGTH.size + length
            self.records = number
            self._next += 1
            return plain

    def _start_segment(self, first: bytes, start: int, number: int) -> None:
        rest = _read_exactly(self.stream, HEADER_BYTES - len(first))
        header = first + rest
        if len(header) < HEADER_BYTES and MAGIC.startswith(header[: len(MAGIC)]):
            raise Tampered(
                self.name,
                number,
                start,
                "is cut short in its segment header: the file ends there (a crash while writing?)",
            )
        if not header.startswith(MAGIC):
            what = "the file does not start with" if start == 0 else "it holds no record nor"
            raise Tampered(
                self.name,
                number,
                start,
                f"cannot be read: {what} an evroute segment header; the file was changed"
                " or is not encrypted by evroute",
            )
        self._cipher = self.key.segment_cipher(header[len(MAGIC) :])
        self._next = 0
        self.offset = start + HEADER_BYTES

    def _cut_short(self, number: int, start: int) -> Tampered:
        return Tampered(
            self.name,
            number,
            start,
            "is truncated: the file ends inside it (a crash while writing, or the file was cut)",
        )


def open_records(stream: BinaryIO, key: Key, name: str) -> Iterator[bytes]:
    """The plain text of each record, in order, over every segment of the stream;
    Tampered at the first record that fails, after those before it."""
    reader = RecordReader(stream, key, name)
    while (plain := reader.read()) is not None:
        yield plain


def read_lines(path: Path, key: Key | None) -> Iterator[bytes]:
    """The plain lines (with their newlines) of a file evroute keeps, sealed or not."""
    with path.open("rb") as stream:
        if not sealed(stream.read(len(MAGIC))):
            stream.seek(0)
            yield from stream
            return
        if key is None:
            raise KeyProblem(
                f"{path} is encrypted: pass the key with --key-env NAME or --key-file PATH"
            )
        stream.seek(0)
        pending = b""  # the start of a line a longer-than-a-record line left
        for plain in open_records(stream, key, str(path)):
            data = pending + plain if pending else plain
            end = data.rfind(b"\n") + 1
            if end:
                # only \n ends a line: a CR or a form feed inside one is its own business
                for line in data[: end - 1].split(b"\n"):
                    yield line + b"\n"
            pending = data[end:]
        if pending:
            yield pending


GZIP_MAGIC = b"\x1f\x8b"


def decrypted(path: Path, key: Key) -> Iterator[bytes]:
    """The plain content of a sealed file, record by record; an archive segment (its
    plain text a gzip stream) comes out decompressed. EvrouteError for a file that is not
    sealed; Tampered at the first bad record, after what came before it."""
    try:
        stream = path.open("rb")
    except OSError as error:
        raise EvrouteError(f"cannot read {path}: {error.strerror or error}") from None
    with stream:
        if not sealed(stream.read(len(MAGIC))):
            raise EvrouteError(
                f"{path} is not encrypted by evroute: it does not start with {MAGIC.decode()}"
            )
        stream.seek(0)
        records = open_records(stream, key, str(path))
        first = next(records, b"")
        if first.startswith(GZIP_MAGIC):
            yield from _gunzip(path, itertools.chain([first], records))
        else:
            yield first
            yield from records


def _gunzip(path: Path, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress the gzip stream that the pieces form, member after member."""
    inflater = zlib.decompressobj(wbits=31)
    for piece in pieces:
        data = piece
        while data:
            if inflater.eof:  # a further gzip member
                inflater = zlib.decompressobj(wbits=31)
            try:
                yield inflater.decompress(data)
            except zlib.error as error:
                raise EvrouteError(f"{path}: the compressed content is corrupt: {error}") from None
            data = inflater.unused_data if inflater.eof else b""
    yield inflater.flush()
    if not inflater.eof:
        raise EvrouteError(
            f"{path}: the compressed content ends early (a crash while writing?);"
            " what it held is above"
        )
