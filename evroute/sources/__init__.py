"""Where events come from: stdin and files (`.gz` read transparently), split into lines."""

from evroute.core.lines import LineSplitter, OversizeLine
from evroute.sources.base import Source, open_sources

__all__ = ["LineSplitter", "OversizeLine", "Source", "open_sources"]
