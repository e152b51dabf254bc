"""The README documents every setting and starts with the two commands CI runs."""

from __future__ import annotations

from pathlib import Path

from config import settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [row for row in settings_table().splitlines()[2:] if row not in readme]
    assert missing == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
