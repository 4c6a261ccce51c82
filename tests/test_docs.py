"""The README documents every command and option, and every command's --help shows an
example: a command or option added without them fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from evroute.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text()
COMMANDS: dict[str, Any] = get_command(app).commands  # type: ignore[attr-defined]


def test_there_are_commands() -> None:
    assert {"run", "replay", "validate", "explain", "graph", "schema"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_a_readme_section(name: str) -> None:
    assert f"### `evroute {name}" in README, f"add a '### `evroute {name} ...`' section"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_help_has_an_example(name: str) -> None:
    help_text = COMMANDS[name].help or ""
    example = help_text[help_text.find("Example") :]
    assert f"evroute {name} " in example, f"evroute {name} --help needs an example"


@pytest.mark.parametrize(
    ("name", "option"),
    sorted(
        (name, option)
        for name, command in COMMANDS.items()
        for param in command.params
        if not getattr(param, "hidden", False)
        for option in param.opts
        if option.startswith("--")
    ),
)
def test_each_option_is_in_the_readme(name: str, option: str) -> None:
    assert f"`{option}" in README, f"document evroute {name} {option} in the README"
