"""The README is part of the product: its commands, its configuration table and its links must be true,
and it stays a front page (the reports live in docs/measurements/, written by the benchmarks)."""

from __future__ import annotations

import re
from pathlib import Path

from voice.settings import ENV_NAMES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# A front page a newcomer reads in minutes; what does not fit goes to docs/.
MAX_README_LINES = 320
# Markdown links and images to a file of the repository: ](path) or ](path#anchor), not URLs.
LOCAL_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s#]+)(?:#[^)]*)?\)")


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


def _results_rows() -> list[str]:
    section = README.split("\n## Results at a glance\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return rows[1:]  # the header row names the columns


def test_every_result_links_its_report_and_the_report_exists() -> None:
    rows = _results_rows()
    assert len(rows) >= 10, "the results table lost its benchmarks"
    for line in rows:
        reports = re.findall(r"\]\((docs/measurements/[a-z0-9_]+\.md)\)", line)
        assert reports, f"no docs/measurements report linked from: {line[:80]}"
        for report in reports:
            assert (ROOT / report).is_file(), f"{report} does not exist"


def test_every_local_link_in_the_docs_resolves() -> None:
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        for target in LOCAL_LINK.findall(page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_the_readme_stays_a_front_page() -> None:
    lines = len(README.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move reports and notes to docs/"
