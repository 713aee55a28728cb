"""``python -m benchmarks.stt_compute``: Whisper's compute type and threads, per CPU instruction set.

CTranslate2 picks its kernels by CPU (AVX-512, AVX2, ...) when it is imported and honours
``CT2_FORCE_CPU_ISA``: on an AVX-512 machine, forcing ``AVX2`` gives the kernels an AVX2-only
CPU would run, in the same run.  Each (ISA, compute type, cpu_threads) cell runs in its own child
process (the variable is read once per process), on the bundled tiny.en with the app's decode
settings, over the pipeline benchmark's spoken questions (Piper, noise off) plus the machine
probe's clip.  Rounds alternate the order of the cells so a drift of the machine's load does not
land on one of them.  The report gives each cell's median decode time and whether its
transcripts equal the int8 ones (a faster type must not change what is heard).

Progress goes to stderr, the Markdown report to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.common import load_average, progress

PROG = "python -m benchmarks.stt_compute"
ISAS = ("native", "AVX2")
COMPUTE_TYPES = ("int8", "int8_float32", "float32")
THREADS = (1, 2)
CHILD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Cell:
    """One child run's result."""

    isa: str
    compute_type: str
    threads: int
    times_ms: list[float]
    transcripts: list[str]


def _clips() -> list:
    """The spoken questions of the pipeline benchmark, then the probe's 3 s clip (16 kHz float32)."""
    import numpy as np
    from piper import SynthesisConfig

    from benchmarks.machine_probe import _whisper_clip
    from benchmarks.pipeline import HARD_QUESTIONS, QUESTIONS
    from voice.audio import to_mono_16k
    from voice.tts_piper import bundled_voice_path, load_voice

    voice = load_voice(bundled_voice_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    clips = []
    for q in (*QUESTIONS, *HARD_QUESTIONS):
        chunks = list(voice.synthesize(q.text, config))
        audio = np.concatenate([c.audio_float_array for c in chunks])
        clips.append(to_mono_16k(audio, chunks[0].sample_rate))
    clips.append(_whisper_clip())
    return clips


def child(compute_type: str, threads: int) -> dict:
    """In the child: load tiny.en as asked, warm it, time every clip once; a JSON-able dict."""
    from faster_whisper import WhisperModel

    from voice.transcribe import Transcriber, _models, bundled_model_path

    clips = _clips()
    # The app's own Transcriber (its decode settings), on a model loaded with these threads.
    model = WhisperModel(
        str(bundled_model_path()), device="cpu", compute_type=compute_type, cpu_threads=threads, local_files_only=True
    )
    _models[("", "cpu", compute_type)] = model
    transcriber = Transcriber(compute_type=compute_type)
    transcriber.warm()
    times, texts = [], []
    for clip in clips:
        result = transcriber.transcribe(clip)
        times.append(round(result.compute_ms, 1))
        texts.append(result.text)
    return {"times_ms": times, "transcripts": texts}


def run_cell(isa: str, compute_type: str, threads: int) -> Cell:
    """One child process for one cell."""
    env = dict(os.environ)
    env.pop("CT2_FORCE_CPU_ISA", None)
    if isa != "native":
        env["CT2_FORCE_CPU_ISA"] = isa
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.stt_compute", "--child", compute_type, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Cell(isa, compute_type, threads, data["times_ms"], data["transcripts"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run every cell ``--rounds`` times, interleaved; print the Markdown table."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="how many times each cell runs (default 2)")
    p.add_argument("--compute-types", default=",".join(COMPUTE_TYPES))
    p.add_argument("--threads", default=",".join(map(str, THREADS)))
    p.add_argument("--child", nargs=2, metavar=("COMPUTE_TYPE", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return 0
    if not 1 <= args.rounds <= 10:
        p.error("--rounds must be between 1 and 10")
    from benchmarks.machine_probe import cpu_flags

    types = [t for t in args.compute_types.split(",") if t]
    threads = [int(t) for t in args.threads.split(",") if t]
    plan = [(isa, t, n) for isa in ISAS for t in types for n in threads]
    cells: dict[tuple[str, str, int], list[Cell]] = {}
    load_start = load_average()
    started = time.perf_counter()
    for r in range(args.rounds):
        for key in plan if r % 2 == 0 else list(reversed(plan)):
            cell = run_cell(*key)
            cells.setdefault(key, []).append(cell)
            progress(f"round {r + 1} {key}: median {statistics.median(cell.times_ms):.0f} ms")
    reference = {
        isa: cells[(isa, "int8", threads[-1])][0].transcripts for isa in ISAS if (isa, "int8", threads[-1]) in cells
    }
    print(f"Command: `{PROG} {' '.join(argv if argv is not None else sys.argv[1:])}`  ")
    print(
        f"CPU flags: {', '.join(cpu_flags())}; {os.cpu_count()} CPUs; load {load_start} -> {load_average()};"
        f" {time.perf_counter() - started:.0f} s  "
    )
    print()
    print("| ISA | compute type | cpu_threads | median decode (ms), all clips and rounds | p90 | same words as int8 |")
    print("|---|---|---:|---:|---:|---|")
    for key in plan:
        runs = cells[key]
        times = sorted(t for c in runs for t in c.times_ms)
        same = all(c.transcripts == reference.get(key[0]) for c in runs)
        p90 = times[int(0.9 * (len(times) - 1))]
        cells_md = (
            key[0],
            key[1],
            str(key[2]),
            f"{statistics.median(times):.0f}",
            f"{p90:.0f}",
            "yes" if same else "NO",
        )
        print("| " + " | ".join(cells_md) + " |")
    diffs = [(k, c.transcripts) for k, runs in cells.items() for c in runs if c.transcripts != reference.get(k[0])]
    for key, texts in diffs[:4]:
        print(f"\n{key}: {texts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
