"""LineSplitter against a plain split of the whole input, however the input is chunked."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from evroute.core.lines import BOM, LineBatch, LineSplitter, OversizeLine, has_long_digit_run

LIMIT = 8

line_bytes = st.one_of(
    st.binary(max_size=12).filter(lambda b: b"\n" not in b),
    st.sampled_from(
        [b"", b"  ", b"\r", b'{"a":1}', b"x" * 20, BOM + b"{}", b"12345678901234567890"]
    ),
)


def oracle(data: bytes, limit: int) -> list[tuple[int, bytes | tuple[bytes, int]]]:
    if data.startswith(BOM):
        data = data[len(BOM) :]
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()  # the newline that ends the last line
    expected: list[tuple[int, bytes | tuple[bytes, int]]] = []
    for number, part in enumerate(parts, 1):
        if len(part) > limit:
            expected.append((number, (part[:4096], len(part))))
        elif part and not part.isspace():
            expected.append((number, part))
    return expected


def split(data: bytes, cuts: list[int], limit: int) -> list[tuple[int, bytes | tuple[bytes, int]]]:
    splitter = LineSplitter(limit)
    got = []
    positions = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    batches = [splitter.feed(data[start:end]) for start, end in itertools.pairwise(positions)]
    batches.append(splitter.finish())
    for batch in batches:
        assert_flags_long_digits(batch)
        got.extend(batch.numbered())
    return [
        (n, (line.prefix, line.length) if isinstance(line, OversizeLine) else line)
        for n, line in got
    ]


def assert_flags_long_digits(batch: LineBatch) -> None:
    """A batch may say a line has a long run of digits when none has, never the reverse."""
    if any(isinstance(line, bytes) and has_long_digit_run(line) for line in batch.lines):
        assert batch.long_digits


@settings(max_examples=400)
@given(
    lines=st.lists(line_bytes, max_size=12),
    trailing_newline=st.booleans(),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=8),
)
def test_any_chunking_gives_the_lines_of_the_whole(
    lines: list[bytes], trailing_newline: bool, bom: bool, cuts: list[int]
) -> None:
    data = (BOM if bom else b"") + b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    assert split(data, cuts, LIMIT) == oracle(data, LIMIT)


def test_a_huge_line_is_reported_with_its_length_in_bounded_memory() -> None:
    splitter = LineSplitter(1024)
    out = []
    for _ in range(64):  # 64 MiB without a newline, fed 1 MiB at a time
        out.extend(splitter.feed(b"x" * (1 << 20)).numbered())
        assert len(splitter._pending) <= 1024
    out.extend(splitter.feed(b"\n{}\n").numbered())
    assert [(n, type(line).__name__) for n, line in out] == [(1, "OversizeLine"), (2, "bytes")]
    oversize = out[0][1]
    assert isinstance(oversize, OversizeLine) and oversize.length == 64 << 20
