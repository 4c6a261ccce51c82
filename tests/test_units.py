"""Durations and sizes as configs write them: evroute.config.units."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evroute.config.units import parse_duration, parse_size

# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("0.5m", 30.0),
        ("0s", 0.0),
        ("  10s  ", 10.0),
        ("10 s", 10.0),
    ],
)
def test_parse_duration_with_units(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("number", "seconds"), [(0, 0.0), (10, 10.0), (2.5, 2.5), (0.001, 0.001)])
def test_parse_duration_numbers_are_seconds(number, seconds):
    result = parse_duration(number)
    assert isinstance(result, float)
    assert result == seconds


def rejected(kind: str, says: str | None, *values: object) -> list[object]:
    """A param for each value that must be refused with an error saying `says`."""
    return [pytest.param(value, says, id=f"{kind}-{value!r}") for value in values]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        *rejected("negative", None, -1, -0.5, "-1s", "-250ms"),
        *rejected("boolean", "boolean", True, False),
        *rejected(
            "garbage",
            "expected a duration",
            *("", "10", "10 parsecs", "s", "ten seconds", "10S", "1e3s", "10s10s", "1d"),
            *(None, [], {}),
        ),
        pytest.param("10 parsecs", "10 parsecs", id="the-error-names-the-value"),
        *rejected("infinity", "finite", float("inf"), float("-inf")),
        *rejected("nan", None, math.nan),
    ],
)
def test_parse_duration_rejects(value, says):
    with pytest.raises(ValueError, match=says):
        parse_duration(value)


@given(st.integers(min_value=0, max_value=10**12))
def test_parse_duration_milliseconds_property(n):
    assert math.isclose(parse_duration(f"{n}ms"), n / 1000, rel_tol=1e-12, abs_tol=1e-12)


@given(st.integers(min_value=0, max_value=10**12))
def test_parse_duration_seconds_minutes_hours_property(n):
    assert parse_duration(f"{n}s") == pytest.approx(n, rel=1e-12)
    assert parse_duration(f"{n}m") == pytest.approx(60 * n, rel=1e-12)
    assert parse_duration(f"{n}h") == pytest.approx(3600 * n, rel=1e-12)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_parse_duration_non_negative_numbers_are_themselves(x):
    assert parse_duration(x) == x


@given(
    st.one_of(
        st.integers(max_value=-1),
        st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    )
)
def test_parse_duration_negative_numbers_property(x):
    with pytest.raises(ValueError, match="negative"):
        parse_duration(x)


# --- sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64KiB", 64 * 1024),
        ("1MiB", 1 << 20),
        ("1GiB", 1 << 30),
        ("2TiB", 2 << 40),
        ("10MB", 10_000_000),
        ("1KB", 1000),
        ("3GB", 3 * 10**9),
        ("512B", 512),
        ("65536", 65536),
        ("1.5KiB", 1536),
        (" 8 MiB ", 8 << 20),
    ],
)
def test_parse_size_with_units(text, size):
    result = parse_size(text)
    assert isinstance(result, int)
    assert result == size


@pytest.mark.parametrize("number", [0, 1, 65536, 1 << 40])
def test_parse_size_integers_are_bytes(number):
    assert parse_size(number) == number


@pytest.mark.parametrize(
    ("value", "says"),
    [
        *rejected("negative", None, -1, "-1KiB", "-5"),
        *rejected("boolean", "boolean", True, False),
        *rejected(
            "garbage",
            "expected a size",
            *("", "lots", "64kib", "64 KiBs", "1e3", "MiB", "10 parsecs", 1.5, None, [], {}),
        ),
    ],
)
def test_parse_size_rejects(value, says):
    with pytest.raises(ValueError, match=says):
        parse_size(value)


@given(st.integers(min_value=0, max_value=2**40))
def test_parse_size_kib_property(n):
    assert parse_size(f"{n}KiB") == n * 1024


@given(st.integers(min_value=0, max_value=2**30))
def test_parse_size_other_units_property(n):
    assert parse_size(f"{n}MiB") == n << 20
    assert parse_size(f"{n}B") == n
    assert parse_size(f"{n}KB") == n * 1000
    assert parse_size(f"{n}MB") == n * 10**6


@given(st.integers(min_value=0, max_value=2**53))
def test_parse_size_plain_digits_property(n):
    assert parse_size(str(n)) == n
    assert parse_size(n) == n


def test_parse_size_large_integer_string_is_exact():
    n = 2**53 + 1
    assert parse_size(str(n)) == n
