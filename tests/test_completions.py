"""The committed completion scripts are what the app generates now."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
from runs import EVROUTE

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("generate", ROOT / "completions" / "generate.py")
assert spec is not None and spec.loader is not None
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)


@pytest.mark.parametrize("shell", sorted(generate.FILES))
def test_completion_script_is_current(shell: str) -> None:
    committed = (ROOT / "completions" / generate.FILES[shell]).read_text()
    assert committed == generate.script(shell), (
        "completions are stale: run `python completions/generate.py`"
    )
    assert "_EVROUTE_COMPLETE" in committed


def test_the_app_completes_commands_and_options() -> None:
    def complete(words: str, index: int) -> list[str]:
        env = {
            **os.environ,
            "_EVROUTE_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(index),
        }
        result = subprocess.run(EVROUTE, env=env, capture_output=True, text=True, timeout=60)
        return result.stdout.split()

    assert complete("evroute re", 1) == ["replay"]
    assert "--stats-json" in complete("evroute run --st", 2)
