"""``python -m benchmarks.cpu_profile``: where the CPU goes while the pipeline benchmark's turns run.

Runs ``python -m benchmarks.pipeline`` (the arguments after ``--``) under py-spy (a dev tool:
requirements-dev.txt), sampling every thread of the app and of the embedded llama.cpp server,
native frames included, idle threads left out (with the benchmark's default ``--tls``: the
probe's own server is told apart by its plain HTTP); then sorts every busy sample into the stage it
belongs to by its stack: Whisper, Piper, Silero VAD, the llama.cpp server, the event loop, and
the parts that are not a turn (the machine probe, start-up, synthesizing the questions).

py-spy sees Python threads only: the compute threads of CTranslate2 (Whisper's ``cpu_threads``)
and onnxruntime's pool beyond the calling thread are not sampled, so Whisper's share (and
Piper's, with more than one thread) is a lower bound: the Python thread that waits for them is
what is counted.

Over the turns of a run the shares say which stages compete for the 2 cores, and how much:
the thread arrangement (Whisper's ``cpu_threads``, the server's ``n_threads``, Piper's
``PIPER_THREADS``) is judged by them.  Progress goes to stderr, the Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import Table, command_line, load_average, machine_info, progress
from benchmarks.machine_probe import MachineProbe
from benchmarks.report import MEASUREMENTS_ENV, publish

PROG = "python -m benchmarks.cpu_profile"
REPORT = "cpu_profile"  # docs/measurements/cpu_profile.md
RATE_HZ = 50
RUN_TIMEOUT_S = 1800.0
# Stage of a sample: the first rule whose pattern is in the stack wins (order matters: the probe
# runs Whisper and Piper too, and Silero runs on onnxruntime like Piper).
RULES: tuple[tuple[str, str], ...] = (
    # A thread blocked on a lock or in epoll (the event loop with nothing to do) is waiting, not
    # computing, though py-spy counts it busy: its stack ends in such a call and libc/libpython.
    (
        "not a turn: waiting (a lock, or the event loop's epoll)",
        r"(PyThread_acquire_lock_timed|EpollSelector\.select)[^;]*(;[^;]*\((libc\.so\.6|libpython[^)]*|select[^)]*)\))*$",
    ),
    ("not a turn: machine probe", "machine_probe"),
    # The probe's own server speaks plain HTTP; the benchmark's, HTTPS (its default --tls).
    ("not a turn: machine probe", r'^process \d+:"[^"]*llama_cpp\.server(?![^"]*--ssl_keyfile)'),
    ("not a turn: start-up and question synthesis", r"synthesize_questions|VoiceRuntime\.create|runtime\.py"),
    ("not a turn: the benchmark's own memory sampler", r"RssSampler|psutil"),
    ("not a turn: start-up and question synthesis", r"_find_and_load"),
    ("not a turn: start-up and question synthesis", r"llama_cpp\.server[^;]*;.*(_find_and_load|server/__main__)"),
    ("LLM server (llama.cpp) generating", r"llama_cpp\.server.*(Llama\.generate|llama_decode|_create_completion)"),
    ("LLM server (llama.cpp) HTTP and SSE", r"llama_cpp\.server"),
    ("Silero VAD (endpointing)", r"endpointing\.py"),
    ("Whisper (CTranslate2)", r"faster_whisper|ctranslate2|transcribe\.py"),
    ("Piper (onnxruntime)", r"tts/piper\.py|piper/|onnxruntime"),
    ("event loop (sessions, aiohttp, SSE, audio feed)", r"asyncio|aiohttp"),
)
OTHER = "other"


def classify(line: str) -> tuple[str, int] | None:
    """(stage, samples) of one line of py-spy's raw output (``stack count``), None if not one."""
    stack, _, count = line.rstrip().rpartition(" ")
    if not stack or not count.isdigit():
        return None
    for stage, pattern in RULES:
        if re.search(pattern, stack):
            return stage, int(count)
    return OTHER, int(count)


def summarize(raw: Path) -> Counter[str]:
    """Busy samples per stage."""
    totals: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        found = classify(line)
        if found is not None:
            totals[found[0]] += found[1]
    return totals


def table(totals: Counter[str], rate_hz: int) -> str:
    """Markdown: stage, CPU seconds, share of the turns' busy samples."""
    turn = {k: v for k, v in totals.items() if not k.startswith("not a turn")}
    busy = sum(turn.values()) or 1
    out = Table(["Stage (busy samples while turns ran)", "CPU time", "Share"], right=(1, 2))
    for stage, n in sorted(turn.items(), key=lambda kv: -kv[1]):
        out.add(stage, f"{n / rate_hz:.1f} s", f"{100 * n / busy:.0f} %")
    for stage, n in totals.items():
        if stage.startswith("not a turn"):
            out.add(f"({stage}, left out)", f"{n / rate_hz:.1f} s", "—")
    return out.markdown()


def _probe_of(pipeline_json: Path) -> MachineProbe | None:
    """The machine probe the profiled pipeline run timed (from its --json), None if it has none."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        probe = json.loads(pipeline_json.read_text(encoding="utf-8"))["machine"]["probe"]
        return MachineProbe(**{**probe, "flags": tuple(probe["flags"])})
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one pipeline benchmark run and print the table."""
    p = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rate", type=int, default=RATE_HZ, help=f"samples per second (default {RATE_HZ})")
    p.add_argument("--raw", type=Path, help="keep py-spy's raw samples here")
    p.add_argument("--from-raw", type=Path, help="summarize samples kept by an earlier --raw instead of running")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then the pipeline benchmark's options")
    args = p.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        p.error("py-spy is not installed (pip install -r requirements-dev.txt)")
    if not 1 <= args.rate <= 1000:
        p.error("--rate must be between 1 and 1000")
    if args.from_raw is not None:
        print(f"- Samples: {args.from_raw} (py-spy {args.rate} Hz, idle threads left out)")
        print()
        print(table(summarize(args.from_raw), args.rate))
        return 0
    bench = [a for a in args.bench_args if a != "--"]
    with tempfile.TemporaryDirectory(prefix="warmvoice-profile-") as tmp:
        raw = args.raw or Path(tmp) / "samples.txt"
        pipeline_json = Path(tmp) / "pipeline.json"
        command = [py_spy, "record", "--format", "raw", "--rate", str(args.rate), "--subprocesses", "--native"]
        command += ["-o", str(raw), "--", sys.executable, "-m", "benchmarks.pipeline", *bench]
        command += ["--json", str(pipeline_json)]
        load_start = load_average()
        progress(f"profiling: {' '.join(command[-len(bench) - 5 :])}")
        # The profiled run is not the pipeline's published report: it would replace it with a run under py-spy.
        env = {**os.environ, MEASUREMENTS_ENV: tmp}
        done = subprocess.run(command, stdout=subprocess.DEVNULL, env=env, timeout=RUN_TIMEOUT_S, check=False)
        if done.returncode != 0 or not raw.is_file():
            progress(f"the profiled run failed (exit {done.returncode})")
            return 1
        totals = summarize(raw)
        probe = _probe_of(pipeline_json)
    lines = [
        "# Where the CPU goes in a turn",
        "",
        f"- py-spy {args.rate} Hz over every thread of the app and the llama.cpp server, idle threads left out; "
        "the machine probe is the one the profiled pipeline run timed",
        "",
        table(totals, args.rate),
    ]
    shown = command_line(PROG, sys.argv[1:] if argv is None else list(argv))
    publish(REPORT, "\n".join(lines) + "\n", shown, machine_info(load_start, probe=probe))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
