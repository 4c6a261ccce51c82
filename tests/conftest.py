"""The fixtures the test modules share.

The helpers they share are plain functions, imported by name: runs.py writes a config,
runs evroute as users do and reads what a run leaves (its stats, outputs and dead
letters); configs.py holds config texts; nats_server.py a real nats-server and a client
to talk to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nats_server import NatsServer, serving

TERMINAL_WIDTH = "100"


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A running nats-server with JetStream of the test's own; the test is skipped (or
    failed in CI) without one."""
    with serving(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def fixed_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output as on a terminal 100 columns wide, without colour: Rich reads the width
    from COLUMNS when stdout is not a terminal."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", TERMINAL_WIDTH)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
