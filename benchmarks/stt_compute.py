"""``python -m benchmarks.stt_compute``: Whisper's compute type and threads, per CPU instruction set.

CTranslate2 picks its own kernels by CPU (AVX-512, AVX2, ...) when it is imported and honours
``CT2_FORCE_CPU_ISA``; its int8 matrix products go to oneDNN on AMD CPUs (Intel MKL only on
Intel's), and oneDNN picks its kernels by CPU too, honouring ``ONEDNN_MAX_CPU_ISA``.  Forcing
both to AVX2 on an AVX-512 machine gives the kernels an AVX2-only CPU would run (without
AVX-VNNI), in the same run; forcing only CTranslate2's is shown too.  The variables are read once
per process, so each kernel set runs in its own child process, which loads tiny.en once per
(compute type, ``cpu_threads``) and decodes the pipeline benchmark's spoken questions (short
and long, Piper with noise off) plus the machine probe's clip with the app's decode settings,
cycling through the variants clip by clip so a drift of the machine's load spreads over all of
them.  Rounds alternate the order of the kernel sets.

The report gives each variant's median decode time and whether its transcripts are the very
words of int8 on the same ISA (a faster type must not change what is heard).  Progress goes to
stderr, the Markdown report to stdout and docs/measurements/stt_compute.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.common import command_line, cpu_flags, progress
from benchmarks.report import Table, publish

PROG = "python -m benchmarks.stt_compute"
REPORT = "stt_compute"  # docs/measurements/stt_compute.md
TITLE = "Whisper's compute type and threads, per CPU instruction set"
PACKAGES = ("faster-whisper", "ctranslate2")
# Kernel sets: name -> the environment that forces it.
ISAS: dict[str, dict[str, str]] = {
    "native": {},
    "AVX2 (CTranslate2 only)": {"CT2_FORCE_CPU_ISA": "AVX2"},
    "AVX2 (CTranslate2 and oneDNN)": {"CT2_FORCE_CPU_ISA": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
COMPUTE_TYPES = ("int8", "int8_float32", "float32")
THREADS = (1, 2)
REPEATS = 2  # decodes of every clip per variant and child
CHILD_TIMEOUT_S = 600.0


def _clips() -> list[np.ndarray]:
    """The pipeline benchmark's questions (short, then long), then the probe's 3 s clip, at 16 kHz."""
    from piper import SynthesisConfig

    from benchmarks.machine_probe import _whisper_clip
    from benchmarks.pipeline_questions import HARD_QUESTIONS, QUESTIONS
    from voice.audio import to_mono_16k
    from voice.tts import bundled_voice_path, load_voice

    voice = load_voice(bundled_voice_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    clips = []
    for q in (*QUESTIONS, *HARD_QUESTIONS):
        chunks = list(voice.synthesize(q.text, config))
        clips.append(to_mono_16k(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate))
    clips.append(_whisper_clip())
    return clips


def child(variants: list[tuple[str, int]], repeats: int) -> dict[str, Any]:
    """In the child: every variant's decode times (ms) and transcripts, keyed "type/threads"."""
    from faster_whisper import WhisperModel

    from voice.transcribe import Transcriber, bundled_model_path

    clips = _clips()
    models = {
        v: WhisperModel(str(bundled_model_path()), device="cpu", compute_type=v[0], cpu_threads=v[1], num_workers=1)
        for v in variants
    }
    out: dict[str, Any] = {f"{t}/{n}": {"times_ms": [], "transcripts": []} for t, n in variants}

    class OnModel(Transcriber):
        """The app's Transcriber (its decode settings) on this variant's model."""

        def __init__(self, model: WhisperModel, compute_type: str) -> None:
            super().__init__(compute_type=compute_type)
            self._model = model

        def load(self) -> WhisperModel:
            return self._model

    transcribers = {}
    for (compute_type, threads), model in models.items():
        transcriber = OnModel(model, compute_type)
        transcriber.warm()
        transcribers[(compute_type, threads)] = transcriber
    for rep in range(repeats):
        for n, clip in enumerate(clips):
            order = variants if (rep + n) % 2 == 0 else list(reversed(variants))
            for v in order:
                result = transcribers[v].transcribe(clip)
                cell = out[f"{v[0]}/{v[1]}"]
                cell["times_ms"].append(round(result.compute_ms, 1))
                if rep == 0:
                    cell["transcripts"].append(result.text)
    return out


def isa_env(isa: str, base: dict[str, str]) -> dict[str, str]:
    """``base`` (an environment) with the kernel set ``isa`` forced, and no other forcing left in."""
    env = {k: v for k, v in base.items() if k not in ("CT2_FORCE_CPU_ISA", "ONEDNN_MAX_CPU_ISA")}
    env.update(ISAS[isa])
    return env


def run_child(isa: str, variants: list[tuple[str, int]], repeats: int) -> dict[str, Any]:
    """One child process for one ISA."""
    env = isa_env(isa, dict(os.environ))
    spec = ",".join(f"{t}/{n}" for t, n in variants)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stt_compute", "--child", spec, "--repeats", str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _variants(types: str, threads: str) -> list[tuple[str, int]]:
    return [(t, int(n)) for t in types.split(",") if t for n in threads.split(",") if n]


def main(argv: Sequence[str] | None = None) -> int:
    """Run every ISA ``--rounds`` times (alternating order); publish the Markdown table."""
    p = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rounds", type=int, default=2, help="child processes per ISA (default 2)")
    p.add_argument("--repeats", type=int, default=REPEATS, help=f"decodes of each clip per child (default {REPEATS})")
    p.add_argument("--compute-types", default=",".join(COMPUTE_TYPES))
    p.add_argument("--threads", default=",".join(map(str, THREADS)))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        variants = [(t, int(n)) for t, n in (v.split("/") for v in args.child.split(","))]
        print(json.dumps(child(variants, args.repeats)))
        return 0
    if not 1 <= args.rounds <= 10 or not 1 <= args.repeats <= 10:
        p.error("--rounds and --repeats must be between 1 and 10")
    from benchmarks.machine_probe import start_run

    variants = _variants(args.compute_types, args.threads)
    results: dict[str, list[dict[str, Any]]] = {isa: [] for isa in ISAS}
    start = start_run()
    for r in range(args.rounds):
        for isa in list(ISAS) if r % 2 == 0 else list(reversed(ISAS)):
            results[isa].append(run_child(isa, variants, args.repeats))
            progress(f"round {r + 1}, {isa}: done")
    table = Table(
        ["CPU kernels", "compute type", "cpu_threads", "median decode", "p90", "same words as int8 (same kernels)"],
        right=(2, 3, 4),
    )
    for isa in ISAS:
        reference = [run[f"int8/{variants[0][1]}"]["transcripts"] for run in results[isa]]
        for t, n in variants:
            key = f"{t}/{n}"
            times = sorted(x for run in results[isa] for x in run[key]["times_ms"])
            same = [run[key]["transcripts"] for run in results[isa]] == reference
            label = "native (AVX-512)" if isa == "native" and "avx512f" in cpu_flags() else isa
            p90 = times[int(0.9 * (len(times) - 1))]
            table.add(label, t, n, f"{statistics.median(times):.0f} ms", f"{p90:.0f} ms", "yes" if same else "NO")
    markdown = f"# {TITLE}\n\n- Wall time: {start.wall_time_s():.0f} s\n\n{table.markdown()}\n"
    command = command_line(PROG, sys.argv[1:] if argv is None else argv)
    publish(REPORT, markdown, command, start.machine(PACKAGES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
