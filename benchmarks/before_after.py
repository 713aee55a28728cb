"""``python -m benchmarks.before_after``: one benchmark, two revisions, interleaved on one machine.

A change that should not alter behaviour (a refactor) is checked by running the same benchmark
on the revision before it and the revision after it, alternately (before, after, after, before,
...: drift in the machine's load falls on both sides alike), each run in a checkout of its own
revision made with ``git worktree`` and removed afterwards.  Every run writes its raw
measurements with ``--json``; the named metrics (e.g. ``first_audio_ms``) are read from wherever
they stand in that JSON, except its summaries, so the two revisions may lay their reports out
differently.  A metric is *within noise* when the two sides' medians differ by no more than the
noise (:func:`verdicts`): the spread between runs of the same side, or the medians' own standard
error, whichever is larger.  Compare at one setting (one ``--rtt-ms``): values of several
settings pooled make a wide noise.

Example::

    python -m benchmarks.before_after --before e2245b4 --rounds 2 \\
        --metric first_audio_ms --metric first_token_ms -- \\
        benchmarks.pipeline --strategies prewarmed --rtt-ms 0 --questions 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import command_line, load_average, machine_info, run_interruptible
from benchmarks.machine_probe import run_probe
from benchmarks.report import Table, progress, publish

REPORT = "before_after_{}"  # one report per benchmark compared: before_after_pipeline.md, ...
REPO = Path(__file__).resolve().parent.parent
# Keys whose values are a run's own summaries of its raw measurements: counted once already.
SUMMARY_KEYS = frozenset({"summary", "summaries", "checks"})


@dataclass(frozen=True)
class Run:
    """One run of the benchmark on one side: the metrics' raw values and the run's wall time."""

    side: str  # "before" or "after"
    revision: str
    values: dict[str, list[float]]
    seconds: float

    def median(self, metric: str) -> float | None:
        """The run's median of ``metric`` (None: the run measured none)."""
        found = self.values.get(metric) or []
        return statistics.median(found) if found else None


@dataclass(frozen=True)
class Verdict:
    """One metric over all runs: each side's median of its runs' medians, and the noise."""

    metric: str
    before: float | None
    after: float | None
    noise: float | None  # see :func:`verdicts`

    @property
    def within_noise(self) -> bool | None:
        """Whether after - before is no bigger than the noise (None: not measured)."""
        if self.before is None or self.after is None or self.noise is None:
            return None
        return abs(self.after - self.before) <= self.noise


def metric_values(data: object, metrics: Sequence[str]) -> dict[str, list[float]]:
    """Every number stored under one of ``metrics`` anywhere in ``data`` (a parsed JSON report),
    outside its summaries (:data:`SUMMARY_KEYS`)."""
    found: dict[str, list[float]] = {m: [] for m in metrics}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SUMMARY_KEYS:
                    continue
                if key in found and isinstance(value, int | float) and not isinstance(value, bool):
                    found[key].append(float(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found


def order(rounds: int) -> list[str]:
    """The sides in run order: before, after, after, before, ... (``rounds`` runs of each)."""
    pairs = [("before", "after") if i % 2 == 0 else ("after", "before") for i in range(rounds)]
    return [side for pair in pairs for side in pair]


def verdicts(runs: Sequence[Run], metrics: Sequence[str]) -> list[Verdict]:
    """Each metric's :class:`Verdict` over ``runs``.

    The noise is the larger of two estimates: the largest difference between two runs of the
    same side (the machine's drift from run to run), and twice the standard error of the
    difference of the two sides' medians, from all their raw values (1.2533 sd / sqrt(n) a side:
    a few runs that happen to agree closely do not make a 2 ms difference a change).  None with
    fewer than two runs a side.
    """
    result = []
    for metric in metrics:
        medians: dict[str, list[float]] = {"before": [], "after": []}
        raw: dict[str, list[float]] = {"before": [], "after": []}
        for run in runs:
            value = run.median(metric)
            if value is not None:
                medians[run.side].append(value)
                raw[run.side] += run.values[metric]
        noise = None
        if all(len(v) >= 2 for v in medians.values()):
            spread = max(max(v) - min(v) for v in medians.values())
            errors = [1.2533 * statistics.stdev(v) / math.sqrt(len(v)) for v in raw.values()]
            noise = max(spread, 2 * math.hypot(*errors))
        result.append(
            Verdict(
                metric,
                statistics.median(medians["before"]) if medians["before"] else None,
                statistics.median(medians["after"]) if medians["after"] else None,
                noise,
            )
        )
    return result


def render_markdown(
    benchmark: Sequence[str], revisions: dict[str, str], runs: Sequence[Run], metrics: Sequence[str]
) -> str:
    """The report: how it was run, each run's medians, then the verdict per metric."""
    lines = [
        "# The same benchmark before and after a change, interleaved",
        "",
        f"Benchmark: `python -m {' '.join(benchmark)} --json <run>.json`; before: `{revisions['before']}`, "
        f"after: `{revisions['after']}`; runs in this order: {', '.join(r.side for r in runs)}.",
        "",
        "## Each run's medians (ms)",
        "",
    ]
    per_run = Table(["#", "side", "wall s", *metrics], right=range(2, 3 + len(metrics)))
    for i, run in enumerate(runs, 1):
        cells = [_ms(run.median(m)) for m in metrics]
        per_run.add(i, run.side, f"{run.seconds:.0f}", *cells)
    lines += [per_run.markdown(), "", "## Before against after", ""]
    table = Table(
        ["metric", "before (median of runs)", "after", "after − before", "noise", "within noise"],
        right=(1, 2, 3, 4),
    )
    for v in verdicts(runs, metrics):
        diff = None if v.before is None or v.after is None else v.after - v.before
        verdict = {None: "not measured", True: "yes", False: "**no**"}[v.within_noise]
        table.add(v.metric, _ms(v.before), _ms(v.after), _ms(diff, sign=True), _ms(v.noise), verdict)
    lines += [table.markdown(), ""]
    return "\n".join(lines)


def _ms(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+,.0f}" if sign else f"{value:,.0f}"


@contextlib.contextmanager
def checkout(revision: str, repo: Path = REPO) -> Iterator[Path]:
    """A temporary ``git worktree`` of ``revision`` of ``repo`` (detached), removed on exit."""
    parent = Path(tempfile.mkdtemp(prefix="warmvoice-before-after-"))
    path = parent / "tree"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(path), revision], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], check=False)
        shutil.rmtree(parent, ignore_errors=True)


def run_once(tree: Path, side: str, revision: str, benchmark: Sequence[str], metrics: Sequence[str]) -> Run:
    """Run the benchmark in ``tree`` once, with ``--json``, and read the metrics back."""
    with tempfile.TemporaryDirectory(prefix="warmvoice-run-") as tmp:
        out = Path(tmp) / "run.json"
        command = [sys.executable, "-m", *benchmark, "--json", str(out)]
        progress(f"{side} ({revision}): {command_line('python -m', [*benchmark, '--json', str(out)])}")
        started = time.perf_counter()
        # The report goes to its own measurements dir: a check run must not replace a published report.
        env = {**os.environ, "WARMVOICE_MEASUREMENTS_DIR": tmp}
        subprocess.run(command, cwd=tree, check=True, stdout=subprocess.DEVNULL, env=env)
        seconds = time.perf_counter() - started
        values = metric_values(json.loads(out.read_text(encoding="utf-8")), metrics)
    return Run(side, revision, values, seconds)


def _revision(name: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", name], check=True, capture_output=True)
    return done.stdout.decode().strip()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; the benchmark and its arguments follow ``--``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.before_after", description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="the revision before the change")
    p.add_argument("--after", default="HEAD", help="the revision after it (default HEAD)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each side, interleaved (default 2, at most 6)")
    p.add_argument("--metric", action="append", required=True, help="a JSON key to compare (repeatable)")
    p.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    p.add_argument("benchmark", nargs=argparse.REMAINDER, help="-- then the benchmark module and its arguments")
    args = p.parse_args(argv)
    benchmark = args.benchmark[1:] if args.benchmark[:1] == ["--"] else args.benchmark
    if not benchmark or not benchmark[0].startswith("benchmarks."):
        p.error("name the benchmark after --, e.g. -- benchmarks.pipeline --questions 4")
    if not 1 <= args.rounds <= 6:
        p.error("--rounds must be between 1 and 6")
    args.benchmark = benchmark
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run both sides interleaved and publish the comparison."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = command_line("python -m benchmarks.before_after", sys.argv[1:] if argv is None else argv)
    load_start = load_average()
    revisions = {"before": _revision(args.before), "after": _revision(args.after)}
    progress("Timing the machine probe...")
    probe = run_probe()
    runs: list[Run] = []
    with checkout(revisions["before"]) as before, checkout(revisions["after"]) as after:
        trees = {"before": before, "after": after}
        for side in order(args.rounds):
            runs.append(run_once(trees[side], side, revisions[side], args.benchmark, args.metric))
    markdown = render_markdown(args.benchmark, revisions, runs, args.metric)
    name = REPORT.format(args.benchmark[0].removeprefix("benchmarks."))
    publish(name, markdown, command, machine_info(load_start, probe=probe), markdown_path=args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(run_interruptible(main))
