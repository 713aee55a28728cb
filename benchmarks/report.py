"""Writing a benchmark's report: :class:`Table` for its Markdown tables, :func:`publish` for the file.

Every benchmark prints its report on stdout and writes it to ``docs/measurements/<name>.md``,
which the README's results table links to.  The command, the UTC time, the machine and its
probe head the file, so a figure is never pasted by hand and always says where it was measured.
Tests point :data:`MEASUREMENTS_ENV` at a temporary directory, so a test run never replaces a
published report.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol


class MachineInfo(Protocol):
    """What a report's header needs of :class:`benchmarks.common.MachineInfo` (a protocol, so this
    module need not import the one that re-exports it)."""

    @property
    def date(self) -> str: ...

    def markdown(self) -> str:
        """The machine and probe lines."""
        ...


Say = Callable[[str], None]
# An optional output of a run (``--json``, ``--plot``…): where to write it (None: not asked for), and how.
Output = tuple[Path | None, Callable[[Path], None]]

MEASUREMENTS = Path(__file__).resolve().parent.parent / "docs" / "measurements"
MEASUREMENTS_ENV = "WARMVOICE_MEASUREMENTS_DIR"  # where publish() writes instead, when set
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")
GENERATED = "<!-- Written by the command below (benchmarks.report.publish); re-run it rather than edit this file. -->"


def progress(line: str) -> None:
    """One progress line on stderr (stdout carries the report)."""
    print(line, file=sys.stderr, flush=True)


@dataclass
class Table:
    """A Markdown table built row by row: every row has one cell per header, ``|`` in a cell is escaped."""

    headers: Sequence[str]
    right: Sequence[int] = ()  # indices of the columns aligned right (numbers)
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, *cells: object) -> Table:
        """Append one row (each cell shown with ``str``); returns the table, so rows chain."""
        if len(cells) != len(self.headers):
            raise ValueError(f"a row of {len(cells)} cells in a table of {len(self.headers)} columns")
        self.rows.append(tuple(_cell(c) for c in cells))
        return self

    def markdown(self) -> str:
        """The table, header and rule first, without a trailing newline."""
        rule = "|" + "|".join("---:" if i in self.right else "---" for i in range(len(self.headers))) + "|"
        lines = [_row(tuple(_cell(h) for h in self.headers)), rule, *(_row(r) for r in self.rows)]
        return "\n".join(lines)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def measurements_dir() -> Path:
    """Where published reports go: ``$WARMVOICE_MEASUREMENTS_DIR`` if set, else docs/measurements."""
    return Path(os.environ.get(MEASUREMENTS_ENV) or MEASUREMENTS)


def image(path: Path | None, alt: str) -> str:
    """A Markdown image line for a chart a run wrote (its path relative to the published report), or ""."""
    if path is None:
        return ""
    return f"\n![{alt}]({os.path.relpath(path.resolve(), measurements_dir().resolve())})\n"


def with_header(markdown: str, command: str, machine: MachineInfo) -> str:
    """``markdown`` with the run's command, time, machine and probe after its title (its first line,
    when that is a ``# `` heading), so every copy of the report says where it was measured."""
    title, body = "", markdown
    if markdown.startswith("# "):
        title, _, body = markdown.partition("\n")
        title += "\n\n"
    header = [GENERATED, "", f"- Command: `{command}`", f"- Finished: {machine.date} (UTC)", machine.markdown()]
    return title + "\n".join(header) + "\n\n" + body.lstrip("\n")


def publish(
    name: str,
    markdown: str,
    command: str,
    machine: MachineInfo,
    *,
    outputs: Sequence[Output] = (),
    markdown_path: Path | None = None,
    say: Say = progress,
) -> Path:
    """Print the report headed by ``command``, the time and ``machine`` on stdout, write it to
    ``docs/measurements/<name>.md`` (see :func:`measurements_dir`) and to ``markdown_path``, and
    write each of ``outputs`` that was asked for, saying each path; returns the published file."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"a report name is lower-case letters, digits and _, not {name!r}")
    document = with_header(markdown, command, machine)
    directory = measurements_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.md"
    written = [
        (markdown_path, functools.partial(write_text_file, document)),
        (target, functools.partial(write_text_file, document)),
    ]
    write_all(document, [*outputs, *written], say)
    return target


class RunRecord(Protocol):
    """A run kept as a dataclass that names its command and machine (its ``--json`` is its ``asdict``)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def command(self) -> str: ...

    @property
    def machine(self) -> MachineInfo: ...


def publish_run(
    name: str, markdown: str, run: RunRecord, *, json_path: Path | None = None, markdown_path: Path | None = None
) -> Path:
    """:func:`publish` for a run whose record is the whole of its ``--json`` (written to ``json_path``
    when asked for)."""
    outputs = [(json_path, functools.partial(write_json_file, dataclasses.asdict(run)))]
    return publish(name, markdown, run.command, run.machine, outputs=outputs, markdown_path=markdown_path)


def write_json_file(data: object, path: Path) -> None:
    """Indented UTF-8 JSON with a final newline: the form of every benchmark's ``--json``."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_all(markdown: str, outputs: Sequence[Output], say: Say = progress) -> None:
    """Print ``markdown`` on stdout and write each of ``outputs`` that was asked for, saying each path
    (what :func:`publish` does once the report has its header)."""
    print(markdown, end="" if markdown.endswith("\n") else "\n", flush=True)
    for path, write in outputs:
        if path is not None:
            write(path)
            say(f"wrote {path}")


def write_text_file(text: str, path: Path) -> None:
    """``text`` as UTF-8, ending with a newline."""
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
