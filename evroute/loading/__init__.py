"""Loading and checking routing configs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from evroute.config.checker import Checker, Issue
from evroute.config.model import Config, ConsumerConfig, QueueSettings, RouteConfig
from evroute.config.yaml_loader import YAMLLoadError, load_yaml
from evroute.errors import ConfigError
from evroute.loading.build import build_config
from evroute.storage.fileio import printable

__all__ = [
    "Config",
    "ConsumerConfig",
    "Issue",
    "QueueSettings",
    "RouteConfig",
    "check_config",
    "load_config",
]


def check_config(
    path: Path, environ: Mapping[str, str] | None = None, no_env: bool = False
) -> tuple[Config | None, list[Issue]]:
    """Every issue in the config at `path`, and the Config when there is no error."""
    checker = Checker(printable(str(path)))
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        checker.error(None, "", f"cannot read the config: {error.strerror or error}")
        return None, checker.issues
    except UnicodeDecodeError as error:
        line = text_line(path, error.start)
        checker.report("error", None, "", "the config is not UTF-8 text", line=line, column=1)
        return None, checker.issues
    try:
        root, problems = load_yaml(text.removeprefix("\ufeff"))
    except YAMLLoadError as error:
        problems, root = error.problems, None
        for problem in problems:
            checker.report("error", None, "", problem.message, problem.line, problem.column)
        return None, checker.issues
    for problem in problems:
        checker.report("error", None, "", problem.message, problem.line, problem.column)
    config = build_config(
        root, path.absolute(), checker, os.environ if environ is None else environ, no_env
    )
    checker.issues.sort(key=lambda issue: (issue.line, issue.column))
    return config, checker.issues


def text_line(path: Path, offset: int) -> int:
    return path.read_bytes()[:offset].count(b"\n") + 1


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, no_env: bool = False
) -> Config:
    """The Config at `path`; raises ConfigError with every issue when it has errors."""
    config, issues = check_config(path, environ, no_env)
    if config is None:
        raise ConfigError(list(issues))
    return config
