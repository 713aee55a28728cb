"""benchmarks.before_after: the interleaved before/after runner, on a throw-away git repository."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from benchmarks.before_after import Run, checkout, metric_values, order, parse_args, render_markdown, run_once, verdicts

# A stand-in benchmark for the runner (the real ones take minutes): it writes a JSON report whose
# raw turns hold ``first_audio_ms`` and whose summary holds a figure that must not be counted.
FAKE_BENCHMARK = """
import argparse, json, pathlib
p = argparse.ArgumentParser()
p.add_argument("--json", type=pathlib.Path)
args = p.parse_args()
turns = [{{"first_audio_ms": v}} for v in {values}]
args.json.write_text(json.dumps({{"sessions": [{{"turns": turns}}], "summary": {{"first_audio_ms": 1e9}}}}))
"""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _commit_fake(repo: Path, values: list[float]) -> str:
    (repo / "benchmarks").mkdir(exist_ok=True)
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "fake.py").write_text(textwrap.dedent(FAKE_BENCHMARK.format(values=values)))
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"fake {values}")
    return _git(repo, "rev-parse", "--short", "HEAD")


def test_metrics_are_read_wherever_they_stand_but_not_from_summaries() -> None:
    data = {
        "sessions": [{"turns": [{"first_audio_ms": 700, "x": 1}, {"first_audio_ms": 650.5}]}],
        "requests": [{"first_token_ms": 120, "ok": True}],
        "summary": {"first_audio_ms": 9999, "first_token_ms": 9999},
        "checks": [{"first_token_ms": 1}],
    }
    found = metric_values(data, ["first_audio_ms", "first_token_ms", "absent_ms"])
    assert found == {"first_audio_ms": [700.0, 650.5], "first_token_ms": [120.0], "absent_ms": []}
    assert metric_values({"ok": True, "n": [True]}, ["ok"]) == {"ok": []}, "booleans are not measurements"


def test_sides_alternate_so_drift_falls_on_both() -> None:
    assert order(1) == ["before", "after"]
    assert order(3) == ["before", "after", "after", "before", "before", "after"]


def test_a_difference_within_the_noise_is_noise() -> None:
    runs = [
        Run("before", "a", {"m": [100.0, 110.0]}, 1.0),
        Run("after", "b", {"m": [104.0]}, 1.0),
        Run("after", "b", {"m": [120.0]}, 1.0),
        Run("before", "a", {"m": [98.0]}, 1.0),
    ]
    (same,) = verdicts(runs, ["m"])
    assert (same.before, same.after) == (101.5, 112.0)
    assert same.noise == pytest.approx(22.1, abs=0.1), "twice the medians' standard error (> the 16 ms spread)"
    assert same.within_noise is True
    # Runs that agree closely, over raw values that do not: a 2 ms move is no change.
    steady = [
        Run(side, "x", {"m": values}, 1.0)
        for side, values in zip(
            order(2),
            [[90.0, 109.0, 130.0], [88.0, 107.0, 128.0], [89.0, 107.0, 127.0], [91.0, 109.0, 129.0]],
            strict=True,
        )
    ]
    (close,) = verdicts(steady, ["m"])
    assert (close.before, close.after) == (109, 107) and close.within_noise is True
    slower = [Run(side, "x", {"m": [v]}, 1.0) for side, v in zip(order(2), [100.0, 200.0, 204.0, 102.0], strict=True)]
    (moved,) = verdicts(slower, ["m"])
    assert (moved.before, moved.after, moved.within_noise) == (101.0, 202.0, False)
    assert moved.noise == pytest.approx(5.6, abs=0.1)
    assert verdicts(slower[:2], ["m"])[0].within_noise is None, "one run a side: no spread to judge by"
    runs.append(Run("after", "b", {"m": [300.0]}, 1.0))
    report = render_markdown(["benchmarks.fake"], {"before": "a", "after": "b"}, runs, ["m"])
    assert "| m |" in report and "before, after, after, before, after" in report


def test_each_side_runs_in_a_checkout_of_its_own_revision(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    before = _commit_fake(repo, [700.0, 720.0])
    after = _commit_fake(repo, [650.0])
    with checkout(before, repo) as old, checkout(after, repo) as new:
        first = run_once(old, "before", before, ["benchmarks.fake"], ["first_audio_ms"])
        second = run_once(new, "after", after, ["benchmarks.fake"], ["first_audio_ms"])
        made = [old, new]
    assert first.values == {"first_audio_ms": [700.0, 720.0]} and second.values == {"first_audio_ms": [650.0]}
    assert not any(p.exists() for p in made), "the checkouts are removed"
    assert "warmvoice-before-after" not in _git(repo, "worktree", "list")


def test_the_command_line_names_a_benchmark_after_the_dashes() -> None:
    args = parse_args(
        ["--before", "HEAD~1", "--metric", "first_audio_ms", "--", "benchmarks.pipeline", "--questions", "4"]
    )
    assert args.benchmark == ["benchmarks.pipeline", "--questions", "4"] and args.rounds == 2
    with pytest.raises(SystemExit):
        parse_args(["--before", "HEAD~1", "--metric", "m", "--", "rm", "-rf"])
    with pytest.raises(SystemExit):
        parse_args(["--before", "HEAD~1", "--metric", "m", "--rounds", "50", "--", "benchmarks.pipeline"])
