"""Running a module for real in a subprocess, as the command-line tests do (``python -m voice``,
``python -m benchmarks.answer_eval``), and a benchmark (``benchmarks.connection`` /
``benchmarks.pipeline``) with everything it printed and wrote collected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def offline_env(**extra: str) -> dict[str, str]:
    """This environment with no LLM endpoint or key (the embedded server runs) and no model hub."""
    return {**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "HF_HUB_OFFLINE": "1", **extra}


def run_module(
    module: str, args: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the repository root, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


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
    proc = run_module(module, [*args, *outputs], env=env, timeout_s=timeout_s)
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
