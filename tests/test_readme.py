"""The README's promises: its commands are what CI runs, its config example validates."""

from __future__ import annotations

import re
from pathlib import Path

from runs import write_config

from evroute.loading import check_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command() -> None:
    setup = code_blocks("sh")
    test_command = next(block.strip() for block in setup if "pytest" in block)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_sample_command_uses_the_samples() -> None:
    sample_command = code_blocks("sh")[0].strip()
    assert "samples" in sample_command and "routes.yaml orders.jsonl" in sample_command
    assert (ROOT / "samples" / "routes.yaml").exists()


def test_the_config_reference_validates(tmp_path: Path) -> None:
    reference = next(block for block in code_blocks("yaml") if "version: 1" in block)
    path = write_config(tmp_path, reference)
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "a.jsonl").write_text("")  # what its inputs' glob reads
    config, issues = check_config(path)
    assert [issue.format() for issue in issues] == []
    assert config is not None
    assert config.shutdown_timeout == 10.0
    assert [route.name for route in config.routes] == ["big-orders", "everything"]
