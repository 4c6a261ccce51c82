"""Where events come from: stdin and files (`.gz` read transparently), split into lines."""

from evroute.sources.base import Source, open_sources
from evroute.sources.lines import LineSplitter, OversizeLine

__all__ = ["LineSplitter", "OversizeLine", "Source", "open_sources"]
