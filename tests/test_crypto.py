"""Encryption at rest: the sealed format, and every file evroute keeps sealed by a real run;
and under attack and accident: writers sharing a file, torn records, tampered archives,
keys pasted where their names belong."""

from __future__ import annotations

import base64
import contextlib
import errno
import gzip
import io
import json
import os
import subprocess
import textwrap
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from runs import EVROUTE, environment, lines_in, read_jsonl, run_evroute, wait_for

from evroute.core.parcel import Letter, Parcel
from evroute.storage import fileio
from evroute.storage.archive_format import GZIP_WBITS, IndexEntry, archive_line, segment_name
from evroute.storage.crypto import (
    MAGIC,
    Key,
    KeyProblem,
    Sealer,
    Tampered,
    load_config_key,
    open_records,
    read_lines,
    sealed,
)
from evroute.storage.dead_letters import DeadLetters
from evroute.storage.fileio import RotatingFile, SealedWriter, open_private
from evroute.storage.spill import SpillLost, SpillStore

CANARY = "canary-7f3e9b-do-not-leak"
BOUND_S = 30  # no wait in these tests takes longer

TEXT_KEY = Key.generate()
KEY = Key.from_text(TEXT_KEY, "the test key")


def seal(*segments: list[bytes], key: Key = KEY) -> bytes:
    """A sealed file holding one segment for each list of records."""
    out = b""
    for records in segments:
        sealer = Sealer(key)
        out += sealer.header() + b"".join(sealer.record(plain) for plain in records)
    return out


def read_all(data: bytes, key: Key = KEY) -> list[bytes]:
    return list(open_records(io.BytesIO(data), key, "f.jsonl"))


def record_offsets(data: bytes) -> list[int]:
    """Where each record starts, read from the lengths (headers skipped)."""
    offsets, at = [], 0
    while at < len(data):
        if data[at : at + len(MAGIC)] == MAGIC:
            at += len(MAGIC) + 16
            continue
        offsets.append(at)
        at += 4 + int.from_bytes(data[at : at + 4], "big")
    return offsets


RECORDS = [b'{"n":%d,"secret":"%s"}\n' % (n, CANARY.encode()) * (n + 1) for n in range(6)]


# --- the format -------------------------------------------------------------------------


def test_records_come_back_in_order_and_the_plain_text_is_nowhere() -> None:
    data = seal(RECORDS)
    assert sealed(data) and data.startswith(MAGIC)
    assert read_all(data) == RECORDS
    assert CANARY.encode() not in data


def test_the_format_is_as_documented_hkdf_counter_nonces_and_the_index_as_data() -> None:
    """Read a segment with nothing of evroute's but the key: the README's recipe."""
    sealer = Sealer(KEY)
    data = sealer.header() + sealer.record(b"a\n") + sealer.record(b"a\n")
    salt = data[8:24]
    master = base64.b64decode(TEXT_KEY)
    segment_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=b"evroute segment v1"
    ).derive(master)
    cipher = AESGCM(segment_key)
    offsets = record_offsets(data)
    for index, at in enumerate(offsets):
        length = int.from_bytes(data[at : at + 4], "big")
        body = data[at + 4 : at + 4 + length]
        plain = cipher.decrypt(index.to_bytes(12, "big"), body, index.to_bytes(8, "big"))
        assert plain == b"a\n"
    # the same text twice: two nonces, two ciphertexts; each segment has a salt of its own
    first, second = (data[at + 4 : at + 4 + 18] for at in offsets)
    assert first != second
    assert Sealer(KEY).header()[8:] != salt


def test_several_segments_appended_to_one_file_read_as_one() -> None:
    data = seal(RECORDS[:2], [], RECORDS[2:])
    assert data.count(MAGIC) == 3
    assert read_all(data) == RECORDS


@pytest.mark.parametrize("record", range(1, len(RECORDS) + 1))
@pytest.mark.parametrize("where", ["length", "first", "middle", "tag"])
def test_one_flipped_byte_is_reported_at_its_record_after_the_records_before(
    record: int, where: str
) -> None:
    data = bytearray(seal(RECORDS[:3], RECORDS[3:]))
    at = record_offsets(bytes(data))[record - 1]
    length = int.from_bytes(data[at : at + 4], "big")
    flip = {"length": at + 3, "first": at + 4, "middle": at + 4 + length // 2}.get(
        where, at + 4 + length - 1
    )
    data[flip] ^= 0x01
    got: list[bytes] = []
    with pytest.raises(Tampered) as caught:
        for plain in open_records(io.BytesIO(bytes(data)), KEY, "f.jsonl"):
            got.append(plain)
    assert got == RECORDS[: record - 1]
    assert (caught.value.name, caught.value.record, caught.value.offset) == ("f.jsonl", record, at)
    assert str(caught.value).startswith(f"f.jsonl: record {record} at byte {at} ")


def test_a_changed_salt_fails_the_first_record_of_its_segment() -> None:
    data = bytearray(seal(RECORDS[:2], RECORDS[2:]))
    second_header = data.index(MAGIC, 1)
    data[second_header + 10] ^= 0x80
    with pytest.raises(Tampered) as caught:
        list(open_records(io.BytesIO(bytes(data)), KEY, "f"))
    assert caught.value.record == 3
    assert "fails authentication" in str(caught.value)


def test_a_file_cut_anywhere_reads_whole_records_then_says_truncated() -> None:
    data = seal(RECORDS[:3], RECORDS[3:])
    headers = [at for at in range(len(data)) if data[at : at + 8] == MAGIC]
    boundaries = {len(data), *record_offsets(data), *headers, *(at + 24 for at in headers)}
    for cut in range(1, len(data)):
        got: list[bytes] = []
        try:
            for plain in open_records(io.BytesIO(data[:cut]), KEY, "f"):
                got.append(plain)
        except Tampered as error:
            assert cut not in boundaries, cut
            assert "truncated" in str(error) or "cut short" in str(error), str(error)
        else:
            assert cut in boundaries, cut
        assert got == RECORDS[: len(got)]


def test_a_wrong_key_fails_at_record_1() -> None:
    other = Key.from_text(Key.generate(), "another key")
    with pytest.raises(Tampered) as caught:
        read_all(seal(RECORDS), other)
    assert caught.value.record == 1 and caught.value.offset == 24
    assert "fails authentication: the file was changed or the key is wrong" in str(caught.value)


def test_a_plain_file_is_not_read_as_sealed() -> None:
    with pytest.raises(Tampered, match="does not start with an evroute segment header"):
        read_all(b'{"a": 1}\n')


def test_a_longer_than_a_record_write_is_split_at_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("evroute.storage.crypto.MAX_RECORD_BYTES", 100)
    lines = [b"%03d" % n + b"x" * 40 + b"\n" for n in range(10)] + [b"y" * 250 + b"\n"]
    sealer = Sealer(KEY)
    data = sealer.header() + sealer.records(b"".join(lines))
    plains = read_all(data)
    assert len(plains) > 5 and b"".join(plains) == b"".join(lines)
    assert all(p.endswith(b"\n") for p in plains[:4])


# --- keys ---------------------------------------------------------------------------------


def test_generate_makes_different_32_byte_keys() -> None:
    first, second = Key.generate(), Key.generate()
    assert first != second and len(base64.b64decode(first)) == 32


@pytest.mark.parametrize(
    ("text", "says"),
    [("not base64!", "expected base64"), (base64.b64encode(b"x" * 16).decode(), "holds 16 bytes")],
)
def test_a_bad_key_names_where_it_came_from(text: str, says: str) -> None:
    with pytest.raises(KeyProblem) as caught:
        Key.from_text(text, "environment variable K")
    assert says in str(caught.value) and "environment variable K" in str(caught.value)
    assert "evroute keygen" in str(caught.value)


def test_load_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVROUTE_KEY", raising=False)
    with pytest.raises(KeyProblem, match=r"EVROUTE_KEY is not set.*evroute keygen"):
        Key.load()
    monkeypatch.setenv("MY_KEY", TEXT_KEY)
    data = seal([b"a\n"], key=Key.load("MY_KEY"))
    (tmp_path / "k").write_text(TEXT_KEY + "\n")
    assert read_all(data, Key.load(None, tmp_path / "k")) == [b"a\n"]
    assert repr(KEY) == "Key(...)" and TEXT_KEY not in repr(KEY)


def test_read_lines_plain_sealed_and_without_a_key(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b"a\rb\nc\n")
    assert list(read_lines(plain, None)) == [b"a\rb\n", b"c\n"]
    path = tmp_path / "sealed.jsonl"
    path.write_bytes(seal([b"a\rb\nc\n", b"d\n"], [b"e\n"]))
    assert list(read_lines(path, KEY)) == [b"a\rb\n", b"c\n", b"d\n", b"e\n"]
    with pytest.raises(KeyProblem, match="--key-env"):
        list(read_lines(path, None))


# --- files written sealed -----------------------------------------------------------------


def test_a_failed_write_leaves_no_torn_record_and_the_next_starts_a_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "letters.jsonl"
    fd = open_private(path)
    writer = SealedWriter(KEY)
    writer.write(fd, b"1\n")
    size = path.stat().st_size
    real_write = os.write

    def half_then_full(target: int, data: bytes | memoryview) -> int:
        if target != fd:
            return real_write(target, data)
        written = real_write(target, bytes(data[: len(data) // 2]))
        monkeypatch.setattr(os, "write", failing)
        return written

    def failing(target: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(fileio.PartialWrite) as caught:
        writer.write(fd, b"2\n3\n")
    monkeypatch.setattr(os, "write", real_write)
    assert caught.value.written == 0 and caught.value.complete_lines == 0
    assert path.stat().st_size == size
    writer.write(fd, b"2\n3\n")
    os.close(fd)
    data = path.read_bytes()
    assert data.count(MAGIC) == 2  # nonces once used are never used again
    assert list(read_lines(path, KEY)) == [b"1\n", b"2\n", b"3\n"]


def test_a_rotating_sealed_file_starts_each_file_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "letters.jsonl"
    rotating = RotatingFile(path, 1024, 3, open_private, KEY)
    lines = [b'{"n": %d, "s": "%s"}\n' % (n, CANARY.encode()) for n in range(60)]
    for line in lines:
        rotating.write(line)
    rotating.close()
    files = [path.with_name(f"letters.jsonl.{n}") for n in (3, 2, 1)] + [path]
    assert all(f.exists() for f in files)
    got = []
    for name in files:
        data = name.read_bytes()
        assert data.startswith(MAGIC) and CANARY.encode() not in data
        assert (name.stat().st_mode & 0o777) == 0o600
        got.extend(read_lines(name, KEY))
    assert got == lines[-len(got) :]


def test_sealed_records_are_never_appended_to_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "letters.jsonl"
    path.write_bytes(b'{"old": "plain"}\n')
    rotating = RotatingFile(path, None, 0, open_private, KEY)
    with pytest.raises(OSError, match="holds plain text"):
        rotating.write(b"x\n")
    assert path.read_bytes() == b'{"old": "plain"}\n'


def readable_lines(path: Path) -> list[bytes]:
    """The lines that decrypt before the first record that fails."""
    lines: list[bytes] = []
    with contextlib.suppress(Tampered):
        lines.extend(read_lines(path, KEY))
    return lines


def letter(input_name: str, number: int) -> Letter:
    return Letter(input_name, number, b"not json %d" % number, False)


def test_two_writers_appending_to_one_sealed_file_both_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    first, second = DeadLetters(path, None, KEY), DeadLetters(path, None, KEY)
    for number in range(3):
        first.add("malformed", "bad json", [letter("first", number)])
        second.add("malformed", "bad json", [letter("second", number)])
    first.close()
    second.close()
    assert first.write_error is None and second.write_error is None
    assert len(readable_lines(path)) == 6


def test_a_run_appending_after_a_torn_record_leaves_its_letters_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead.jsonl"
    crashed = DeadLetters(path, None, KEY)
    for number in range(3):
        crashed.add("malformed", "bad json", [letter("crashed", number)])
    crashed.close()
    os.truncate(path, path.stat().st_size - 5)  # the crash: the last write torn
    after = DeadLetters(path, None, KEY)
    after.check_writable()
    for number in range(3):
        after.add("malformed", "bad json", [letter("after", number)])
    after.close()
    assert after.write_error is None
    lines = readable_lines(path)
    # either way is fine: the torn record cut back, or the next run refusing to append
    assert sum(b'"input":"after"' in line for line in lines) == 3


def test_a_file_sealed_with_another_key_is_not_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "letters.jsonl"
    first = DeadLetters(path, None, KEY)
    first.add("malformed", "bad json", [letter("first", 1)])
    first.close()
    other = Key.from_text(Key.generate(), "another key")
    with pytest.raises(OSError, match="encrypted with another key"):
        DeadLetters(path, None, other).check_writable()
    # the same key goes on appending
    again = DeadLetters(path, None, KEY)
    again.check_writable()
    again.add("malformed", "bad json", [letter("again", 2)])
    again.close()
    assert len(readable_lines(path)) == 2


def spill_parcel(count: int) -> Parcel:
    payloads = [b'{"n": %d, "secret": "%s"}' % (n, CANARY.encode()) for n in range(count)]
    return Parcel("in.jsonl", ("all",), 1, payloads, list(range(count)), 0)


def test_spill_segments_are_sealed_and_come_back(tmp_path: Path) -> None:
    store = SpillStore(1 << 20, segment_bytes=2000, parent=str(tmp_path), key=KEY)
    parcels = [spill_parcel(20) for _ in range(5)]
    for item in parcels:
        assert store.append(item) == 20
    assert store.folder is not None
    segments = sorted(Path(store.folder).iterdir())
    assert len(segments) > 1
    for segment in segments:
        data = segment.read_bytes()
        assert data.startswith(MAGIC) and CANARY.encode() not in data
    for item in parcels:
        back = store.read()
        assert back is not None and back.payloads == item.payloads
    assert store.read() is None


def test_a_tampered_spill_record_loses_its_segment_as_spill_lost(tmp_path: Path) -> None:
    store = SpillStore(1 << 20, segment_bytes=1 << 20, parent=str(tmp_path), key=KEY)
    for _ in range(3):
        store.append(spill_parcel(5))
    assert store.folder is not None
    [segment] = Path(store.folder).iterdir()
    data = bytearray(segment.read_bytes())
    second = record_offsets(bytes(data))[1]
    data[second + 10] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert store.read() is not None
    with pytest.raises(SpillLost) as caught:
        store.read()
    assert caught.value.events == 10
    assert "record 2" in caught.value.detail and "fails authentication" in caught.value.detail


# --- real runs ----------------------------------------------------------------------------


def evroute(
    *args: str, key: str | None = TEXT_KEY, stdin: bytes = b"", cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`evroute ARGS` with EVROUTE_KEY set to `key`: the test key unless told otherwise."""
    env = {} if key is None else {"EVROUTE_KEY": key}
    return run_evroute(args, cwd, stdin, timeout=60, env=env)


CONFIG = """\
version: 1
encrypt: {key_env: EVROUTE_KEY}
dead_letter: dead/letters.jsonl
consumers:
  plain: {file: out/plain.jsonl}
  sealed: {file: out/sealed.jsonl, encrypt: true}
  by-source: {file: 'out/by/{source}.jsonl', encrypt: true}
routes:
  - name: good
    filter: "source != 'bad'"
    to: [plain, sealed, by-source]
"""


def canary_events(count: int) -> bytes:
    return b"".join(
        b'{"source": "%s", "n": %d, "secret": "%s"}\n'
        % (b"bad" if n % 5 == 4 else b"app%d" % (n % 2), n, CANARY.encode())
        for n in range(count)
    )


def test_a_run_seals_dead_letters_and_encrypted_files_and_decrypt_reads_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "routes.yaml").write_text(CONFIG)
    events = canary_events(100) + b"not json " + CANARY.encode() + b"\n"
    result = evroute("run", "routes.yaml", "--stats", "off", stdin=events, cwd=tmp_path)
    assert result.returncode == 3, result.stderr.decode()  # the malformed line
    dead = tmp_path / "dead" / "letters.jsonl"
    sealed_paths = [
        dead,
        tmp_path / "out/sealed.jsonl",
        tmp_path / "out/by/app0.jsonl",
        tmp_path / "out/by/app1.jsonl",
    ]
    for path in sealed_paths:
        assert path.read_bytes().startswith(MAGIC), path
        assert CANARY.encode() not in path.read_bytes(), path
    assert (dead.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "dead").stat().st_mode & 0o777) == 0o700
    # a file consumer stays plain unless it says encrypt: true
    good = [line + b"\n" for line in events.splitlines() if b'"bad"' not in line][:-1]
    assert (tmp_path / "out/plain.jsonl").read_bytes() == b"".join(good)
    decrypted = evroute("decrypt", "out/sealed.jsonl", cwd=tmp_path)
    assert decrypted.returncode == 0, decrypted.stderr.decode()
    assert decrypted.stdout == b"".join(good)
    app0 = evroute("decrypt", "out/by/app0.jsonl", cwd=tmp_path).stdout
    assert app0 == b"".join(line for line in good if b'"app0"' in line)
    letters = [json.loads(line) for line in evroute("decrypt", str(dead)).stdout.splitlines()]
    assert [dead_letter["reason"] for dead_letter in letters] == ["malformed"]
    assert letters[0]["raw"] == "not json " + CANARY
    # a second run appends a segment of its own; both read as one
    again = evroute("run", "routes.yaml", "--stats", "off", stdin=events, cwd=tmp_path)
    assert again.returncode == 3
    assert dead.read_bytes().count(MAGIC) == 2
    both = evroute("decrypt", str(dead), "--key-file", str(write_key(tmp_path)))
    assert len(both.stdout.splitlines()) == 2, both.stderr.decode()


def write_key(folder: Path, text: str = TEXT_KEY) -> Path:
    path = folder / "evroute.key"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_decrypt_prints_the_records_before_a_flipped_byte_then_says_where(
    tmp_path: Path,
) -> None:
    path = tmp_path / "letters.jsonl"
    data = bytearray(seal(RECORDS))
    at = record_offsets(bytes(data))[3]
    data[at + 9] ^= 0x20
    path.write_bytes(bytes(data))
    result = evroute("decrypt", str(path))
    assert result.returncode == 1
    assert result.stdout == b"".join(RECORDS[:3])
    stderr = result.stderr.decode()
    assert f"record 4 at byte {at} fails authentication" in stderr and "Traceback" not in stderr
    path.write_bytes(seal(RECORDS)[:-5])
    cut = evroute("decrypt", str(path))
    assert cut.returncode == 1 and cut.stdout == b"".join(RECORDS[:-1])
    assert b"truncated" in cut.stderr


def test_decrypt_with_a_wrong_key_or_no_key(tmp_path: Path) -> None:
    path = tmp_path / "letters.jsonl"
    path.write_bytes(seal(RECORDS))
    wrong = evroute("decrypt", str(path), key=Key.generate())
    assert wrong.returncode == 1 and wrong.stdout == b""
    assert b"record 1 at byte 24 fails authentication" in wrong.stderr
    missing = evroute("decrypt", str(path), key=None)
    assert missing.returncode == 1 and b"EVROUTE_KEY is not set" in missing.stderr
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b"{}\n")
    refused = evroute("decrypt", str(plain))
    assert refused.returncode == 1 and b"not encrypted" in refused.stderr
    usage = evroute("decrypt", str(path), "--key-envv", "K")
    assert usage.returncode == 2


def test_decrypt_gunzips_an_archive_segment(tmp_path: Path) -> None:
    lines = b"".join(b'{"n": %d}\n' % n for n in range(2000))
    compressed = gzip.compress(lines[:10000]) + gzip.compress(lines[10000:])
    chunks = [compressed[at : at + 999] for at in range(0, len(compressed), 999)]
    path = tmp_path / "00000001.jsonl.gz"
    path.write_bytes(seal(chunks))
    result = evroute("decrypt", str(path))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == lines


def test_keygen_prints_a_key_a_line() -> None:
    result = evroute("keygen")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert text.endswith("\n") and text.count("\n") == 1
    Key.from_text(text, "keygen's output")


def test_without_its_key_a_run_refuses_to_start_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(CONFIG)
    result = evroute("run", "routes.yaml", key=None, stdin=canary_events(10), cwd=tmp_path)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "encrypt.key_env" in stderr and "EVROUTE_KEY is not set" in stderr
    assert "evroute keygen" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["routes.yaml"]
    bad = evroute("run", "routes.yaml", key="tooshort", stdin=canary_events(10), cwd=tmp_path)
    assert bad.returncode == 1 and b"is not a key" in bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["routes.yaml"]


def test_the_library_refuses_to_build_a_run_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evroute.engine.pipeline import Pipeline, RunOptions
    from evroute.loading import load_config

    (tmp_path / "routes.yaml").write_text(CONFIG)
    monkeypatch.setenv("EVROUTE_KEY", TEXT_KEY)
    config = load_config(tmp_path / "routes.yaml")
    assert load_config_key(config) is not None
    monkeypatch.delenv("EVROUTE_KEY")
    with pytest.raises(KeyProblem, match="EVROUTE_KEY"):
        Pipeline(config, RunOptions())
    assert not (tmp_path / "dead").exists()


def validate(folder: Path, *args: str, key: str | None = None) -> tuple[int, str]:
    result = evroute("validate", "routes.yaml", *args, key=key, cwd=folder)
    return result.returncode, result.stdout.decode()


def test_validate_checks_the_key_and_only_warns_with_no_env(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(CONFIG)
    code, out = validate(tmp_path)
    assert code == 1 and "routes.yaml:2:" in out
    assert "error: encrypt.key_env: environment variable EVROUTE_KEY is not set" in out
    code, out = validate(tmp_path, "--no-env")
    assert code == 0 and "warning: encrypt.key_env" in out
    code, out = validate(tmp_path, key="bm90IGEga2V5")
    assert code == 1 and "is not a key: it holds 9 bytes" in out
    code, out = validate(tmp_path, key=TEXT_KEY)
    assert code == 0, out


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ("encrypt: {key_file: missing.key}", "cannot read the key file"),
        ("encrypt: {key_env: A, key_file: b}", "has both key_env and key_file"),
        ("encrypt: {}", "is empty; give exactly one"),
        ("encrypt: {key_envv: A}", "did you mean 'key_env'"),
        ("encrypt: yes", "expected a mapping"),
    ],
)
def test_validate_says_what_is_wrong_with_the_encrypt_section(
    tmp_path: Path, section: str, says: str
) -> None:
    (tmp_path / "routes.yaml").write_text(
        CONFIG.replace("encrypt: {key_env: EVROUTE_KEY}", section)
    )
    code, out = validate(tmp_path)
    assert code == 1 and says in out, out


def test_a_key_file_is_read_relative_to_the_config_and_should_be_private(tmp_path: Path) -> None:
    text = CONFIG.replace("{key_env: EVROUTE_KEY}", "{key_file: keys/evroute.key}")
    (tmp_path / "routes.yaml").write_text(text)
    (tmp_path / "keys").mkdir()
    key = write_key(tmp_path / "keys")
    result = evroute("validate", str(tmp_path / "routes.yaml"), key=None)  # from elsewhere
    assert result.returncode == 0, result.stdout.decode()
    key.chmod(0o644)
    code, out = validate(tmp_path)
    assert code == 0 and "can be read by others" in out and "chmod 600" in out


@pytest.mark.parametrize(
    ("consumer", "says"),
    [
        ("{file: '-', encrypt: true}", "stdout is never encrypted"),
        ("{file: out.jsonl, encrypt: 1}", "expected true or false"),
    ],
)
def test_validate_checks_encrypt_on_file_consumers(
    tmp_path: Path, consumer: str, says: str
) -> None:
    text = CONFIG.replace("{file: out/sealed.jsonl, encrypt: true}", consumer)
    (tmp_path / "routes.yaml").write_text(text)
    code, out = validate(tmp_path, key=TEXT_KEY)
    assert code == 1 and says in out, out


@pytest.mark.parametrize("section", ["", "encrypt: null\n"])
def test_encrypt_true_needs_the_top_level_section(tmp_path: Path, section: str) -> None:
    text = CONFIG.replace("encrypt: {key_env: EVROUTE_KEY}\n", section)
    (tmp_path / "routes.yaml").write_text(text)
    code, out = validate(tmp_path, key=TEXT_KEY)
    assert code == 1
    errors = [line.split(": error: ")[1] for line in out.splitlines() if ": error: " in line]
    assert [error.split(":")[0] for error in errors] == [
        "consumers.sealed.encrypt",
        "consumers.by-source.encrypt",
    ]
    assert all("needs a key: add a top-level encrypt:" in error for error in errors)


def test_a_run_refuses_to_append_sealed_letters_to_plain_ones(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(CONFIG)
    (tmp_path / "dead").mkdir()
    old = b'{"reason": "malformed", "raw": "from before"}\n'
    (tmp_path / "dead/letters.jsonl").write_bytes(old)
    result = evroute("run", "routes.yaml", stdin=canary_events(10), cwd=tmp_path)
    assert result.returncode == 1
    assert b"holds plain text" in result.stderr and b"move it aside" in result.stderr
    assert (tmp_path / "dead/letters.jsonl").read_bytes() == old
    assert not (tmp_path / "out").exists()


def test_a_sealed_dead_letter_file_is_redriven(tmp_path: Path) -> None:
    config = textwrap.dedent(
        """\
        version: 1
        encrypt: {key_env: EVROUTE_KEY}
        dead_letter: dead/letters.jsonl
        consumers:
          fussy: {command: [./no-such-command], restart: {max: 0}}  # fails, surely
          out: {file: out.jsonl}
        routes:
          - {name: fussy, to: fussy}
        """
    )
    (tmp_path / "routes.yaml").write_text(config)
    events = canary_events(20)
    first = evroute("run", "routes.yaml", "--stats", "off", stdin=events, cwd=tmp_path)
    assert first.returncode == 3, first.stderr.decode()
    dead = tmp_path / "dead/letters.jsonl"
    assert CANARY.encode() not in dead.read_bytes()
    (tmp_path / "redrive.jsonl").write_bytes(dead.read_bytes())
    dead.unlink()
    (tmp_path / "routes.yaml").write_text(config.replace("to: fussy", "to: out"))
    result = evroute(
        "replay", "routes.yaml", "--dead-letters", "redrive.jsonl", "--stats", "off", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.jsonl").read_bytes() == events
    # without the config's key it is refused, with a message and no traceback
    plain_config = config.replace("encrypt: {key_env: EVROUTE_KEY}\n", "")
    (tmp_path / "routes.yaml").write_text(plain_config.replace("to: fussy", "to: out"))
    refused = evroute("replay", "routes.yaml", "--dead-letters", "redrive.jsonl", cwd=tmp_path)
    assert refused.returncode == 1
    assert b"redrive.jsonl is encrypted" in refused.stderr and b"Traceback" not in refused.stderr


WAIT_FOR_GO = "while [ ! -e go ]; do sleep 0.05; done; exec cat > slow.jsonl"


def test_a_spilled_backlog_is_sealed_on_disk_and_delivered_whole(tmp_path: Path) -> None:
    config = textwrap.dedent(
        f"""\
        version: 1
        encrypt: {{key_env: EVROUTE_KEY}}
        defaults: {{buffer: 100}}
        consumers:
          fast: {{file: fast.jsonl}}
          slow: {{command: [sh, -c, {json.dumps(WAIT_FOR_GO)}]}}
        routes: [{{name: all, to: [fast, slow]}}]
        """
    )
    (tmp_path / "routes.yaml").write_text(config)
    count = 20_000
    events = canary_events(count)
    (tmp_path / "in.jsonl").write_bytes(events)
    spill_parent = tmp_path / "spill"
    spill_parent.mkdir()
    env = environment({"EVROUTE_KEY": TEXT_KEY, "EVROUTE_SPILL_DIR": str(spill_parent)})
    stats = tmp_path / "stats.json"
    process = subprocess.Popen(
        [*EVROUTE, "run", "routes.yaml", "in.jsonl", "--stats-json", str(stats)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        fast = tmp_path / "fast.jsonl"
        wait_for(lambda: lines_in(fast) == count, BOUND_S, "every event in fast.jsonl")
        assert fast.read_bytes() == events
        segments = [p for p in spill_parent.rglob("*.seg")]
        assert segments, "the stuck consumer's backlog should be on disk"
        for segment in segments:
            data = segment.read_bytes()
            assert data.startswith(MAGIC) and CANARY.encode() not in data
        (tmp_path / "go").touch()
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr.decode()
    assert (tmp_path / "slow.jsonl").read_bytes() == events
    assert json.loads(stats.read_text())["consumers"]["slow"]["spilled"] > 0
    assert list(spill_parent.iterdir()) == []


# --- sealed archives replayed, and keys where their names belong --------------------------

ARCHIVED = b"2026-11-28T09:00:00.000Z"
ARCHIVE_CONFIG = """\
version: 1
encrypt: {key_env: EVROUTE_KEY}
consumers:
  out: {file: out.jsonl}
routes:
  - name: all
    to: out
"""


def replay_archive(folder: Path, segment: bytes) -> subprocess.CompletedProcess[bytes]:
    """Replay an archive of one closed (indexed) segment through a config with a key."""
    (folder / "routes.yaml").write_text(ARCHIVE_CONFIG)
    archive = folder / "archive"
    archive.mkdir()
    name = segment_name(datetime(2026, 11, 28, 9, tzinfo=timezone.utc), 4242, 1)
    (archive / name).write_bytes(segment)
    stamp = ARCHIVED.decode()
    (archive / "index.jsonl").write_bytes(IndexEntry(name, stamp, stamp, 40, 1000).line())
    return evroute(
        "replay",
        "routes.yaml",
        "--archive",
        "archive",
        "--stats",
        "off",
        "--no-progress",
        cwd=folder,
    )


def sealed_segment() -> tuple[bytes, list[int]]:
    """A closed sealed archive segment of 4 batches of 10 events (as ArchiveSink writes
    them: one Z_SYNC_FLUSH chunk a record, then the gzip trailer), and where each
    record starts."""
    sealer = Sealer(KEY)
    compressor = zlib.compressobj(wbits=GZIP_WBITS)
    data = sealer.header()
    starts = []
    for batch in range(4):
        lines = b"".join(archive_line(ARCHIVED, b'{"n":%d}' % (batch * 10 + n)) for n in range(10))
        starts.append(len(data))
        data += sealer.record(compressor.compress(lines) + compressor.flush(zlib.Z_SYNC_FLUSH))
    starts.append(len(data))
    data += sealer.record(compressor.flush(zlib.Z_FINISH))
    return data, starts


def test_an_untouched_sealed_archive_replays_whole(tmp_path: Path) -> None:
    """The control for the archive tests below: their fixture replays as it should."""
    data, _ = sealed_segment()
    result = replay_archive(tmp_path, data)
    assert result.returncode == 0, result.stderr.decode()
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 40


def test_a_flipped_length_byte_in_an_archive_segment_is_tampering(tmp_path: Path) -> None:
    data, starts = sealed_segment()
    changed = bytearray(data)
    changed[starts[1] + 1] ^= 0x01  # the length of record 2 now runs past the file's end
    result = replay_archive(tmp_path, bytes(changed))
    stderr = result.stderr.decode()
    # the index lists the segment as closed whole: that it ends early is a change
    assert result.returncode != 0, stderr
    assert "lists it as closed by its run: the file was cut or changed" in stderr, stderr


def test_an_encrypted_archive_replay_refuses_an_unsealed_segment(tmp_path: Path) -> None:
    forged = gzip.compress(archive_line(ARCHIVED, b'{"forged": true}'))
    result = replay_archive(tmp_path, forged)
    out = tmp_path / "out.jsonl"
    assert not out.exists() or b"forged" not in out.read_bytes()
    assert result.returncode != 0


def test_a_key_given_as_key_env_is_never_printed(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(
        ARCHIVE_CONFIG.replace("{key_env: EVROUTE_KEY}", '{key_env: "${EVROUTE_KEY}"}')
    )
    for command in ("validate", "run"):
        result = evroute(command, "routes.yaml", cwd=tmp_path)
        assert result.returncode == 1
        assert b"key_env" in result.stderr + result.stdout  # it does say what is wrong
        assert TEXT_KEY.encode() not in result.stderr + result.stdout, command


def test_a_key_given_to_key_env_on_the_command_line_is_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    letters = DeadLetters(path, None, KEY)
    letters.add("malformed", "bad json", [letter("in", 1)])
    letters.close()
    result = evroute("decrypt", str(path), "--key-env", TEXT_KEY, cwd=tmp_path)
    assert result.returncode == 1
    assert TEXT_KEY.encode() not in result.stderr + result.stdout
