"""Counts in words, for messages."""

from __future__ import annotations


def plural(count: int, word: str, *, grouped: bool = True) -> str:
    """`1 event`, `1,234 events`: the count and its word, plural unless one.

    grouped=False writes plain digits (`1234 attempts`), the form dead letters' details
    and samples use.
    """
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {word}{'' if count == 1 else 's'}"
