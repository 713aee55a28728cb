"""Reading the benchmarks' Markdown reports in tests: a section under a heading, a table row by label."""

from __future__ import annotations

import re


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` (a whole line such as "## RTT 0 ms") up to the next heading of
    the same or a higher level, or the end; its sub-sections are included."""
    level = len(heading) - len(heading.lstrip("#"))
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{1,{level}}} |\Z)", markdown, re.S | re.M)
    assert match, f"no section {heading!r}"
    return match.group(1)


def row(text: str, label: str) -> list[str]:
    """The cells after the first one of the first table row whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"row {label!r} missing")
