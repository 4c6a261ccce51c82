"""Where events come from: the input kinds of `inputs:`, registered by the key that names
them, and the sources every run reads (stdin and files, `.gz` read transparently)."""

from evroute.core.lines import LineSplitter, OversizeLine
from evroute.sources import command, file, nats, stdin
from evroute.sources.base import InputKind, Source, open_sources

INPUT_KINDS: dict[str, InputKind] = {
    kind.name: kind for kind in (file.KIND, stdin.KIND, command.KIND, nats.KIND)
}

__all__ = ["INPUT_KINDS", "InputKind", "LineSplitter", "OversizeLine", "Source", "open_sources"]
