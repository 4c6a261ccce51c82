"""`stdin:` inputs: evroute's standard input, waited on in the kernel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join
from evroute.config.json_schema import Schema
from evroute.sources.base import FdSource, InputKind, Source

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import Config, InputConfig
    from evroute.config.yaml_loader import Node


@dataclass(frozen=True)
class StdinOptions:
    def reads(self, base_dir: Path) -> list[str]:
        return ["-"]


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, name: str, base_dir: Path
) -> StdinOptions | None:
    if fields["stdin"].value is not True:
        checker.error(
            fields["stdin"],
            join(path, "stdin"),
            "expected true; remove the input to not read stdin",
        )
        return None
    return StdinOptions()


def open_input(entry: InputConfig, config: Config, warn: Callable[[str], None]) -> list[Source]:
    return [FdSource("-", None, 0, owns_fd=False)]


def schema() -> dict[str, Schema]:
    return {"stdin": {"const": True}}


def draw(options: StdinOptions) -> str:
    return "stdin"


KIND = InputKind(
    name="stdin",
    description="evroute's standard input",
    keys=("stdin",),
    parse_options=parse_options,
    open=open_input,
    schema=schema,
    draw=draw,
    reads_stdin=True,
)
