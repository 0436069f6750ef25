"""The README's promises: its test command is exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    cmds = readme_commands()
    assert len(cmds) >= 2
    test_cmd = cmds[1].strip()
    assert "pytest" in test_cmd
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def test_torch_pinned_before_the_project_install() -> None:
    for cmd in readme_commands()[:2]:
        assert cmd.index("pip install torch==2.13.0") < cmd.index("pip install -e")
