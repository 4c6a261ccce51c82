"""The console script's first step: a Ctrl-C while the app is still loading exits 130 too."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from evroute.cli import main as run_cli
    except KeyboardInterrupt:
        sys.exit(130)
    run_cli()
