"""Running a benchmark (``python -m benchmarks.connection`` / ``benchmarks.pipeline``) for real in a subprocess, as
its tests do, and collecting everything it printed and wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchOutput:
    """What one run printed (report on stdout, progress on stderr) and wrote."""

    stdout: str
    stderr: str
    report: dict[str, Any]  # the --json file, parsed
    json_text: str
    markdown: str  # the --markdown file
    png: Path  # the --plot file


def run_bench(module: str, args: Sequence[str], out: Path, *, env: Mapping[str, str], timeout_s: float) -> BenchOutput:
    """Run ``python -m module`` with ``args`` followed by ``--json``, ``--markdown`` and ``--plot``
    into ``out``; fails the test unless it exits 0."""
    paths = {"json": out / "bench.json", "markdown": out / "bench.md", "plot": out / "bench.png"}
    outputs = [part for option, path in paths.items() for part in (f"--{option}", str(path))]
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, *outputs],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    json_text = paths["json"].read_text(encoding="utf-8")
    return BenchOutput(
        proc.stdout,
        proc.stderr,
        json.loads(json_text),
        json_text,
        paths["markdown"].read_text(encoding="utf-8"),
        paths["plot"],
    )
