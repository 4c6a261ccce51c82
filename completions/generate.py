"""Writes evroute's shell completion scripts into this folder, from the app itself.

    python completions/generate.py

The scripts ask evroute for completions as you type, so they follow its commands and
options; tests/test_completions.py fails when these files differ from what the app makes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
FILES = {"bash": "evroute.bash", "zsh": "_evroute", "fish": "evroute.fish"}


def script(shell: str) -> str:
    """The completion script Typer generates for `shell`."""
    # Without this variable Typer guesses the shell from the parent process.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "evroute", "--show-completion", shell],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    return result.stdout


def main() -> None:
    for shell, name in FILES.items():
        (FOLDER / name).write_text(script(shell))
        print(f"wrote completions/{name}")


if __name__ == "__main__":
    main()
