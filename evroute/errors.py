"""The errors the library raises; the CLI maps them to exit codes in one place."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # invalid config, failed test, fatal error
    USAGE = 2
    UNDELIVERED = 3  # the run finished but something was not delivered
    SIGINT = 130
    SIGTERM = 143


class EvrouteError(Exception):
    """A failure the user can act on; its message is shown without a traceback."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(EvrouteError):
    """The config is invalid; `issues` holds every problem found."""

    def __init__(self, issues: list[object]) -> None:
        self.issues = issues
        super().__init__(f"invalid config: {len(issues)} problem(s)")


class InputError(EvrouteError):
    """An input could not be opened."""
