"""Sink kinds, registered by the key that names them in a consumer's config."""

from evroute.sinks import archive, command, file, nats
from evroute.sinks.base import Sink, SinkEnded, SinkFailed, SinkKind

SINK_KINDS: dict[str, SinkKind] = {
    kind.name: kind for kind in (file.KIND, command.KIND, archive.KIND, nats.KIND)
}

__all__ = ["SINK_KINDS", "Sink", "SinkEnded", "SinkFailed", "SinkKind"]
