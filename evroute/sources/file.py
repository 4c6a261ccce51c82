"""`file:` inputs: the files a glob names, relative to the config's folder (`.gz` read
transparently), one after the other."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evroute.config.checker import join
from evroute.config.json_schema import STRING, Schema
from evroute.errors import InputError
from evroute.sources.base import InputKind, Source, open_sources

if TYPE_CHECKING:
    from evroute.config.checker import Checker
    from evroute.config.model import Config, InputConfig
    from evroute.config.yaml_loader import Node


def glob_files(base_dir: Path, pattern: str) -> list[str]:
    """The paths a producer's glob names, relative to the config's folder (whose own
    name may hold glob characters: they are taken literally), sorted."""
    return sorted(glob.glob(os.path.join(glob.escape(str(base_dir)), pattern), recursive=True))


@dataclass(frozen=True)
class FileInputOptions:
    pattern: str  # a glob, relative to the config's folder

    def reads(self, base_dir: Path) -> list[str]:
        return glob_files(base_dir, self.pattern)


def parse_options(
    checker: Checker, fields: dict[str, Node], path: str, name: str, base_dir: Path
) -> FileInputOptions | None:
    pattern = checker.string(fields["file"], join(path, "file"))
    if pattern == "-":
        checker.error(
            fields["file"], join(path, "file"), "stdin is an input of its own: write stdin: true"
        )
        return None
    if pattern is None:
        return None
    if not glob_files(base_dir, pattern):
        checker.warning(fields["file"], join(path, "file"), f"{pattern!r} matches no file now")
    return FileInputOptions(pattern)


def open_input(entry: InputConfig, config: Config, warn: Callable[[str], None]) -> list[Source]:
    pattern = entry.options.pattern  # type: ignore[attr-defined]
    matches = glob_files(config.base_dir, pattern)
    files = [m for m in matches if not os.path.isdir(m)]
    if not files:
        raise InputError(f"input {entry.name}: {pattern!r} matches no file")
    # named relative to the working directory, as files named on the command line are
    return open_sources(
        [os.path.relpath(m) if not Path(pattern).is_absolute() else m for m in files]
    )


def schema() -> dict[str, Schema]:
    return {"file": {**STRING, "description": "a file glob, relative to the config"}}


def draw(options: FileInputOptions) -> str:
    return f"file {options.pattern}"


KIND = InputKind(
    name="file",
    description="the files a glob names, one after the other",
    keys=("file",),
    parse_options=parse_options,
    open=open_input,
    schema=schema,
    draw=draw,
)
