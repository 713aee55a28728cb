"""Speech recognizers side by side: ``python -m benchmarks.stt_engines``.

Both engines of :mod:`voice.recognizer` (Whisper tiny.en, the app's default, and Moonshine
base-en) hear the same questions, in one run with the machine probe: short and long questions
rendered at run time in every voice family of :mod:`benchmarks.voice_families` (the Piper voice at
several rates, espeak-ng voices, sox pitch and tempo, pink noise at 20 and 10 dB), split into
tuning and held-out families fixed before anything was measured.  Each clip is the speech with
0.1 s of silence (or the family's noise) on each side, about what the endpointer hands a turn.
The engines take turns clip by clip, so a drift of the machine's load spreads over all of them.

Reported: WER per family and engine (the hard families, espeak voices and 10 dB noise, on their
own), compute per engine, Moonshine's compute against the clip's length, and each engine's peak
RSS in a child process that imports both engines and loads one (with the app's other models).
``--whisper-options`` adds Whisper's decoding options as variants (beam 5, timestamps, its own VAD,
conditioning on previous text, the 30 s or a shorter encoder window), judged on the tuning
families.  ``--incremental`` replays each clip as a stream through :mod:`benchmarks.stt_incremental`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import command_line, load_average, machine_info, progress
from benchmarks.machine_probe import run_probe
from benchmarks.report import publish_run
from benchmarks.stt_engines_records import Heard, SttEnginesRun
from benchmarks.stt_engines_report import render_markdown
from benchmarks.stt_incremental import replay_all
from benchmarks.stt_set import LONG_QUESTIONS, SHORT_QUESTIONS, TEXT_SETS, Clip, clips
from benchmarks.word_error_rate import word_error_rate
from voice.moonshine import MoonshineRecognizer
from voice.recognizer import SpeechRecognizer
from voice.transcribe import Transcriber, WhisperOptions

PROG = "python -m benchmarks.stt_engines"
PACKAGES = ("faster-whisper", "ctranslate2", "onnxruntime", "moonshine-cpp", "piper-tts", "numpy")
REPORT = "stt_engines"  # docs/measurements/stt_engines.md
# Whisper's decoding options, each changed alone from the app's (voice.transcribe.WhisperOptions).
WHISPER_VARIANTS = {
    "whisper beam 5": WhisperOptions(beam_size=5),
    "whisper timestamps": WhisperOptions(without_timestamps=False),
    "whisper vad_filter": WhisperOptions(vad_filter=True),
    "whisper condition_on_previous_text": WhisperOptions(condition_on_previous_text=True),
    # The encoder window (voice.whisper_window): Whisper's own 30 s, or the clip and 3 s of silence (>= 10 s).
    "whisper 30 s window": WhisperOptions(window_margin_s=0.0),
    "whisper window +3 s": WhisperOptions(window_margin_s=3.0),
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="all", help="voice families: names, 'tuning', 'heldout' or 'all'")
    p.add_argument("--questions", type=int, default=len(SHORT_QUESTIONS), help="short and long questions each")
    p.add_argument("--texts", choices=TEXT_SETS, default="questions", help="the questions, or the turn-taking texts")
    p.add_argument(
        "--whisper-options",
        nargs="?",
        const="all",
        default="",
        help="also Whisper's decoding options as variants: all, or a comma-separated list of their names",
    )
    p.add_argument("--incremental", action="store_true", help="also replay each clip as a stream (item 3)")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS children")
    p.add_argument("--markdown", type=Path, help="also write the report here")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--rss-child", choices=("whisper", "moonshine"), help=argparse.SUPPRESS)
    p.add_argument("--from-json", type=Path, help="write the report of a run saved with --json, without running")
    args = p.parse_args(argv)
    unknown = [n for n in _variant_names(args.whisper_options) if n not in WHISPER_VARIANTS]
    if unknown:  # before the probe and the models load, not after
        p.error(f"unknown Whisper variant(s) {unknown}; choose from {', '.join(WHISPER_VARIANTS)}")
    return args


def _variant_names(options: str) -> list[str]:
    return list(WHISPER_VARIANTS) if options == "all" else [n.strip() for n in options.split(",") if n.strip()]


def variants(options: str) -> dict[str, SpeechRecognizer]:
    """The engines as the app builds them, and Whisper's option variants named in ``options``
    ("all", a comma-separated list of :data:`WHISPER_VARIANTS` names, or "" for none)."""
    found: dict[str, SpeechRecognizer] = {"whisper": Transcriber(), "moonshine": MoonshineRecognizer()}
    found.update({name: Transcriber(options=WHISPER_VARIANTS[name]) for name in _variant_names(options)})
    return found


def hear_all(recognizers: dict[str, SpeechRecognizer], clip_list: list[Clip], audio: list[np.ndarray]) -> list[Heard]:
    """Every variant on every clip, variants interleaved clip by clip."""
    heard = []
    for index, (clip, sound) in enumerate(zip(clip_list, audio, strict=True)):
        for name, recognizer in recognizers.items():
            result = recognizer.transcribe(sound)
            errors, words = word_error_rate(clip.text, result.text)
            heard.append(Heard(name, index, result.text, errors, words, result.compute_ms, result.avg_logprob))
        if index % 10 == 9:
            progress(f"{index + 1}/{len(clip_list)} clips heard")
    return heard


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM): unlike ``ru_maxrss``, which a child started by exec keeps
    from its parent, it counts this program only."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_child(engine: str) -> dict[str, float]:
    """In a child: both engines imported, one loaded with the app's other models (Silero VAD, Smart
    Turn, the Piper voice), a few clips heard; the process's peak RSS after each step."""
    from voice.audio import to_mono_16k
    from voice.tts import bundled_voice_path, load_voice
    from voice.turns import Endpointer, smart_turn_model

    steps = {"imported": peak_rss_mb()}
    recognizer: SpeechRecognizer = MoonshineRecognizer() if engine == "moonshine" else Transcriber()
    recognizer.warm()
    steps["engine loaded"] = peak_rss_mb()
    Endpointer()
    smart_turn_model()
    voice = load_voice(bundled_voice_path())
    for text in (*SHORT_QUESTIONS[:2], *LONG_QUESTIONS[:2]):
        chunks = list(voice.synthesize(text))
        recognizer.transcribe(to_mono_16k(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate))
    steps["all loaded, 4 questions spoken and heard"] = peak_rss_mb()
    return steps


def measure_rss(engine: str) -> dict[str, float] | None:
    """Peak RSS (MB) of a child process holding ``engine``, after each step (None if it failed)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stt_engines", "--rss-child", engine],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        progress(f"the {engine} memory child failed: {done.stderr.strip()[-400:]}")
        return None
    steps: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return steps


def run(argv: Sequence[str]) -> SttEnginesRun:
    """Render the set, hear it with every variant, measure memory; the report's data."""
    args = parse_args(argv)
    load_start, started = load_average(), time.perf_counter()
    progress("timing the machine probe (CPU flags, Whisper, Piper, 20 tokens)...")
    probe = run_probe()
    recognizers = variants(args.whisper_options)
    for name, recognizer in recognizers.items():
        progress(f"loading {name}: warm-up {recognizer.warm():.0f} ms")
    progress("rendering the clips...")
    clip_list, audio = clips(args.families, args.questions, args.texts)
    progress(f"{len(clip_list)} clips rendered, {sum(c.audio_s for c in clip_list):.0f} s of audio")
    heard = hear_all(recognizers, clip_list, audio)
    incremental = None
    if args.incremental:
        incremental = replay_all({n: r for n, r in recognizers.items() if r.cost_follows_clip}, clip_list, audio)
    rss = {} if args.no_rss else {engine: measure_rss(engine) for engine in ("whisper", "moonshine")}
    return SttEnginesRun(
        command=command_line(PROG, argv),
        machine=machine_info(load_start, PACKAGES, probe),
        seconds=round(time.perf_counter() - started, 1),
        clips=clip_list,
        heard=heard,
        variants=list(recognizers),
        rss_mb=rss,
        incremental=incremental,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write the report (``--rss-child``: the memory child's one JSON line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child)))
        return 0
    if args.from_json:
        report = SttEnginesRun.from_json(json.loads(args.from_json.read_text(encoding="utf-8")))
    else:
        report = run(argv)
    # The turn-taking texts are a second set: their report does not replace the questions' one.
    name = REPORT if args.texts == "questions" else f"{REPORT}_{args.texts.replace('-', '_')}_texts"
    publish_run(name, render_markdown(report), report, json_path=args.json, markdown_path=args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
