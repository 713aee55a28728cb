"""The README is part of the product: its commands and its configuration table must be true."""

from __future__ import annotations

import re
from pathlib import Path

from voice.settings import ENV_NAMES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _command_after(marker: str) -> str:
    block = README.split(marker, 1)[1]
    return re.search(r"```bash\n(.+?)\n```", block, re.S).group(1).strip()


def test_exactly_two_setup_commands() -> None:
    assert _command_after("<!-- run-command -->") == "pip install -r requirements.txt && python app.py"
    assert _command_after("<!-- test-command -->") == "pip install -r requirements-dev.txt && python -m pytest"


def test_every_setting_is_documented() -> None:
    for variable in ENV_NAMES.values():
        assert f"| `{variable}` |" in README, f"{variable} missing from the README's configuration table"


def test_space_front_matter() -> None:
    header = README.split("---", 2)[1]
    assert "sdk: gradio" in header and "app_file: app.py" in header
