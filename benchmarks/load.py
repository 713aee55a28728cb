"""Ten sessions at once for a minute: what the replies wait, and what the sessions leave behind.

Runs the scenario of :mod:`benchmarks.load_sessions` (2 speaking through real Whisper, 8 typing,
embedded SmolLM2-135M, Piper, three sessions' replies spoken by edge-tts against its local
stand-in; each session a turn then a 2-4 s pause) in this process, and publishes the first
sentence and first audio percentiles, the connections each session opened and the memory,
sockets, tasks, processes and threads before and after.

    flock /tmp/warmvoice-bench.lock python -m benchmarks.load   # writes docs/measurements/load.md
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import MachineInfo, command_line, progress, run_interruptible
from benchmarks.edge_standin import EdgeStandin, encode_mp3, tone
from benchmarks.load_sessions import (
    DURATION_S,
    EDGE_SESSIONS,
    PAUSE_S,
    SESSIONS,
    SPOKEN_SESSIONS,
    LoadRun,
    median_turns,
    percentile,
    run_load,
)
from benchmarks.machine_probe import start_run
from benchmarks.report import Table, publish
from voice.runtime import VoiceRuntime
from voice.settings import load_settings

REPORT = "load"  # docs/measurements/load.md

# How the memory figure came down: measured while it was built (each change with this scenario),
# kept here because the report is where docs/design.md sends a reader for them.
MEMORY_HISTORY = """\
How the memory growth came down to what the table above shows: three changes, each measured
with this scenario while they were built (earlier runs, not this one): Piper's and Silero's ONNX sessions run
without onnxruntime's memory arena (one round +245 → +142 MB); a closed session hands freed
memory back to the OS (`malloc_trim`); and the process caps glibc at two malloc arenas
(`voice/native_memory.py`), because with the default eight per core the freed blocks of ten
sessions' worker threads stayed scattered over a dozen arenas that `malloc_trim` could not empty
(+155..+228 MB; +115 MB in a run without the cap when the cap was adopted). Whisper and Piper took
the same time with the cap (270 / 145 ms per call then). An explicit `MALLOC_ARENA_MAX` in the
environment is left to glibc."""

WHY_QUEUE = """\
The one llama.cpp thread answers one request at a time, so under ten simultaneous talkers the
replies queue: that is the first-sentence time above (it moves by seconds from run to run), not
connection set-up. A speaking session's turns are further apart than uvicorn's 5 s idle limit:
the first close teaches the keep-warm loop that limit, and under load a keep-warm ping
(`GET /v1/models`) waits behind the other sessions' completions (llama-cpp-python's server takes
its model lock for every route), so a turn that starts meanwhile may open a second connection
rather than wait: within the pool limit, and a loopback connect costs about a millisecond."""


def _mb(value: int) -> str:
    return f"{value / 1e6:,.0f} MB"


def latency_table(run: LoadRun) -> Table:
    """Speech end → first sentence per kind of turn, and → first audio: p50, p95, n."""
    table = Table(
        ["From the end of speech (or the typed text's arrival) to", "Turns", "p50", "p95", "n"], right=(2, 3, 4)
    )
    rows = [
        ("first sentence", "all", run.first_sentences()),
        ("first sentence", "typed", run.first_sentences("text")),
        ("first sentence", "spoken", run.first_sentences("voice")),
        ("first audio", "all", run.first_audio()),
    ]
    for what, turns, values in rows:
        if values:
            table.add(
                what, turns, f"{percentile(values, 50):,.0f} ms", f"{percentile(values, 95):,.0f} ms", len(values)
            )
        else:
            table.add(what, turns, "—", "—", 0)
    return table


def sessions_table(run: LoadRun) -> Table:
    """Per session: its kind, turns, failures, the LLM connections it opened and reused."""
    table = Table(["Session", "Kind", "Turns", "Failed", "LLM connections opened", "reused"], right=(2, 3, 4, 5))
    for s in run.runs:
        kind = "speaking" if s.spoken else "typing, edge-tts" if s.edge else "typing"
        table.add(s.name, kind, len(s.results), len(s.failures), s.connections_opened, s.connections_reused)
    return table


def aftermath_table(run: LoadRun, max_growth_mb: float | None) -> Table:
    """The process before the sessions and after they all ended."""
    a = run.aftermath
    limit = f" (the test's limit: {max_growth_mb:.0f} MB)" if max_growth_mb is not None else ""
    table = Table(["After all sessions ended", "Before", "After", "Change"])
    table.add("RSS after gc + malloc_trim", _mb(a.rss_before), _mb(a.rss_after), f"{a.growth_mb:+,.0f} MB{limit}")
    table.add(
        "raw RSS", _mb(a.raw_rss_before), _mb(a.raw_rss_after), f"{(a.raw_rss_after - a.raw_rss_before) / 1e6:+,.0f} MB"
    )
    table.add(
        "Python objects (gc-tracked)", a.objects_before, a.objects_after, f"{a.objects_after - a.objects_before:+}"
    )
    table.add("threads", a.threads_before, a.threads_after, f"{a.threads_after - a.threads_before:+}")
    table.add("new inet sockets of this process", "", a.new_sockets, "")
    table.add("leftover asyncio tasks", "", a.leftover_tasks, "")
    table.add("child processes other than the embedded server", "", len(a.foreign_children), "")
    table.add("edge-tts stand-in connections still open", "", run.standin_open_after, "")
    return table


def render_markdown(run: LoadRun, *, max_growth_mb: float | None = None) -> str:
    """The report (publish() heads it with the command and the machine)."""
    results, failures = run.results(), run.failures()
    typed, spoken = run.first_sentences("text"), run.first_sentences("voice")
    pool = run.runs[0].pool_limit if run.runs else 0
    edge = ", ".join(f"{kind or 'not said'} {n}" for kind, n in run.edge_sockets().items())
    lines = [
        "# Under load: ten sessions at once",
        "",
        f"{SESSIONS} sessions in one process ({SPOKEN_SESSIONS} speaking through real Whisper tiny.en, Piper-made "
        f"speech paced like a microphone; {SESSIONS - SPOKEN_SESSIONS} typing), the embedded SmolLM2-135M "
        f"(llama.cpp), Piper; {EDGE_SESSIONS} typing sessions' replies spoken by edge-tts against its local "
        f"stand-in. Each session: a turn, then a {PAUSE_S[0]:g}–{PAUSE_S[1]:g} s pause, until "
        f"the run's time is up, plus the turns in flight.",
        "",
        f"Duration {run.elapsed_s:.1f} s; {len(results) + len(failures)} turns ({len(typed)} typed, "
        f"{len(spoken)} spoken), **{len(failures)} failed**; median {median_turns(run):.0f} turns per session.",
        "",
        latency_table(run).markdown(),
        "",
        f"LLM connections per session (pool limit {pool}):",
        "",
        sessions_table(run).markdown(),
        "",
        f"edge-tts stand-in: {run.standin_sockets} sockets for {run.standin_sentences} sentences; the socket each "
        f"edge turn's first sentence went out on: {edge}.",
        "",
        aftermath_table(run, max_growth_mb).markdown(),
        "",
        *(f"- FAILED {failure}" for failure in failures),
        "",
        WHY_QUEUE,
        "",
        MEMORY_HISTORY,
    ]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


async def _measure(runtime: VoiceRuntime, duration_s: float) -> LoadRun:
    """The edge-tts stand-in, pointed at, and the scenario against ``runtime``."""
    import trustme

    async with EdgeStandin(encode_mp3(tone(440.0, 0.5)), trustme.CA()) as standin:
        with standin.patched():
            progress(f"{SESSIONS} sessions for {duration_s:g} s…")
            return await run_load(runtime, standin, duration_s)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--duration-s", type=float, default=DURATION_S, help=f"how long sessions start turns (default {DURATION_S:g})"
    )
    p.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    args = p.parse_args(argv)
    if not 5 <= args.duration_s <= 600:
        p.error("--duration-s must be 5..600")
    return args


def run(argv: Sequence[str]) -> int:
    """Measure and publish; returns the exit code (1 when a turn failed)."""
    args = parse_args(argv)
    start = start_run()
    progress("loading the runtime (embedded LLM server, Whisper, Piper)…")
    runtime = VoiceRuntime.create(load_settings({"tts_engine": "piper"}, environ={}, dotenv_path=None))
    try:
        result = asyncio.run(_measure(runtime, args.duration_s))
    finally:
        runtime.close()
    machine: MachineInfo = start.machine()
    command = command_line("python -m benchmarks.load", argv)
    publish(REPORT, render_markdown(result), command, machine, markdown_path=args.markdown)
    return 1 if result.failures() else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_interruptible(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
