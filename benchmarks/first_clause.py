"""``python -m benchmarks.first_clause``: does speaking the first clause first bring first audio
earlier without sounding chopped? (issue #23, item 2)

Reads the replies of an answer evaluation run (``python -m benchmarks.answer_eval --modes typed
--json answers.json``) and splits each reply as the app does (``llm.sentences``) in two ways:
*whole* (no first-clause cut: the first sentence is cut only past ``max_words``) and *clause* (the
app's ``FIRST_SENTENCE_MAX_WORDS``: a long first sentence is cut at its first clause boundary).
For both it reports how often the first piece is over :data:`LONG_CHARS` characters, and what
the bundled Piper voice (one thread, as the app runs it) costs for it: time to its audio and CPU.

Where the clause cut changed the first piece, the join is measured: the silence where the two
pieces meet (the first piece's trailing silence + the rest's leading silence, below -40 dBFS),
against the pause Piper itself leaves at that comma when it speaks the sentence whole.  One
before/after WAV pair per reply is written to ``--wav-dir`` (a temporary directory: never
committed), to listen to.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import command_line, progress
from benchmarks.machine_probe import start_run
from benchmarks.report import Table, publish
from llm import SentenceSplitter, SplitterConfig
from voice.audio import write_wav
from voice.settings import Settings
from voice.tts.piper import _SYNTHESIS, bundled_voice_path, load_voice

PROG = "python -m benchmarks.first_clause"
REPORT = "first_clause"  # docs/measurements/first_clause.md
LONG_CHARS = 60
SILENCE = 0.01  # about -40 dBFS, as the other benchmarks' silence
RUNS = 3  # Piper timings per piece (median): the machine is shared


@dataclass(frozen=True)
class Piece:
    """One piece of speech: its text, audio, and Piper's median time and CPU for it."""

    text: str
    audio: np.ndarray
    rate: int
    ms: float
    cpu_ms: float


def synthesize(text: str) -> Piece:
    """Piper on ``text`` as the app runs it (its synthesis settings, one thread), timed :data:`RUNS` times."""
    voice = load_voice(bundled_voice_path())
    walls, cpus, audio, rate = [], [], np.zeros(0, np.float32), 22050
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.thread_time()
        chunks = list(voice.synthesize(text, syn_config=_SYNTHESIS))
        cpus.append((time.thread_time() - cpu) * 1000.0)
        walls.append((time.perf_counter() - wall) * 1000.0)
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        rate = chunks[0].sample_rate
    return Piece(text, audio, rate, statistics.median(walls), statistics.median(cpus))


def split(text: str, config: SplitterConfig) -> list[str]:
    """``text`` cut into the pieces the app speaks (``llm.SentenceSplitter``, as the stream is cut)."""
    splitter = SentenceSplitter(config)
    return splitter.push(text) + splitter.flush()


def edge_silence_ms(audio: np.ndarray, rate: int, *, leading: bool) -> float:
    """Silence at the start (``leading``) or the end of ``audio``, in ms."""
    loud = np.flatnonzero(np.abs(audio) > SILENCE)
    if not loud.size:
        return len(audio) / rate * 1000.0
    samples = loud[0] if leading else len(audio) - 1 - loud[-1]
    return samples / rate * 1000.0


def longest_inner_silence_ms(audio: np.ndarray, rate: int) -> float:
    """The longest run below :data:`SILENCE` between the first and the last loud sample: in a
    sentence with a comma, the pause Piper makes there (20 ms windows, so a stop consonant's
    closure of a few ms does not count)."""
    loud = np.flatnonzero(np.abs(audio) > SILENCE)
    if not loud.size:
        return 0.0
    inner = np.abs(audio[loud[0] : loud[-1] + 1])
    window = max(1, rate // 50)
    frames = inner[: len(inner) // window * window].reshape(-1, window).max(axis=1) <= SILENCE
    longest = run = 0
    for quiet in frames:
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    return longest * window / rate * 1000.0


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the Markdown report, write the WAV pairs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("answers", type=Path, help="the --json of python -m benchmarks.answer_eval")
    p.add_argument("--wav-dir", type=Path, help="write one before/after WAV pair per cut reply here")
    p.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    args = p.parse_args(argv)
    try:
        answers = json.loads(args.answers.read_text(encoding="utf-8"))["answers"]
    except (OSError, ValueError, KeyError) as exc:
        p.error(f"cannot read the answer evaluation's records from {args.answers}: {exc}")
    replies = list(dict.fromkeys(a["reply"] for a in answers if a.get("reply", "").strip()))
    start = start_run()
    app = Settings().first_sentence_max_words
    whole_cfg, clause_cfg = SplitterConfig(), SplitterConfig(first_max_words=app)
    cuts = Table(["First sentence", "First clause", "Piper ms, whole → clause", "Join silence ms", "Natural pause ms"])
    joins, gains, cpu_saved, long_whole, long_clause = [], [], [], 0, 0
    whole_ms, whole_cpu = [], []
    for n, reply in enumerate(replies, 1):
        whole = split(reply, whole_cfg)
        clause = split(reply, clause_cfg)
        first_whole, first_clause = whole[0], clause[0]
        long_whole += len(first_whole) > LONG_CHARS
        long_clause += len(first_clause) > LONG_CHARS
        before = synthesize(first_whole)
        whole_ms.append(before.ms)
        whole_cpu.append(before.cpu_ms)
        if first_clause == first_whole:
            continue
        after = synthesize(first_clause)
        rest = synthesize(first_whole[len(first_clause) :].strip())
        gains.append(before.ms - after.ms)
        cpu_saved.append(before.cpu_ms - after.cpu_ms)
        join = edge_silence_ms(after.audio, after.rate, leading=False) + edge_silence_ms(
            rest.audio, rest.rate, leading=True
        )
        natural = longest_inner_silence_ms(before.audio, before.rate)
        joins.append((join, natural))
        cuts.add(first_whole, first_clause, f"{before.ms:,.0f} → {after.ms:,.0f}", f"{join:,.0f}", f"{natural:,.0f}")
        if args.wav_dir is not None:
            args.wav_dir.mkdir(parents=True, exist_ok=True)
            write_wav(args.wav_dir / f"reply-{n}-before-whole.wav", before.audio, before.rate)
            write_wav(
                args.wav_dir / f"reply-{n}-after-clause.wav", np.concatenate([after.audio, rest.audio]), after.rate
            )
    machine = start.machine(("piper-tts", "onnxruntime"))
    total = len(replies)
    summary = Table(["", "whole", "clause"])
    summary.add(f"First piece over {LONG_CHARS} characters", f"{long_whole}/{total}", f"{long_clause}/{total}")
    summary.add("Replies whose first piece the cut changed", "—", f"{len(cuts.rows)}/{total}")
    summary.add("Piper on the first sentence (whole), ms, median (min–max)", _cell(whole_ms), "")
    summary.add("… its CPU ms", _cell(whole_cpu), "")
    summary.add("First audio earlier by the cut (ms, on the cut replies)", "", _cell(gains))
    summary.add("CPU ms less before the first audio (cut replies)", "", _cell(cpu_saved))
    summary.add("Silence at the join (ms; the clause's tail + the rest's head)", "", _cell([j for j, _ in joins]))
    summary.add("Piper's own pause at that comma, speaking the sentence whole (ms)", _cell([n for _, n in joins]), "")
    out = [
        "# The first clause first (issue #23, item 2)",
        "",
        f"- Replies: {total} distinct replies of the answer evaluation ({args.answers.name}); Piper: the bundled "
        f"voice, the app's synthesis settings, timed {RUNS} times per piece (median), on one thread.",
        f"- Split *whole*: no first-clause cut (`SplitterConfig()`); *clause*: the app's "
        f"`FIRST_SENTENCE_MAX_WORDS={app}` (a longer first sentence is cut at its first clause boundary).",
        "",
        summary.markdown(),
        "",
    ]
    if cuts.rows:
        out += [cuts.markdown(), ""]
    command = command_line(PROG, argv)
    publish(REPORT, "\n".join(out), command, machine, markdown_path=args.markdown)
    if args.wav_dir is not None and cuts.rows:
        progress(f"WAV pairs in {args.wav_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
