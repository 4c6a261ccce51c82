"""evroute: a local event router for JSON lines."""

__version__ = "0.1.0"
