"""Incremental transcription replayed on the speech-recognizer set (``stt_engines --incremental``).

Each clip is streamed through the app's endpointer in the browser's 100 ms chunks, on a simulated
clock: audio arrives in real time, and a recognizer run started at some moment ends its measured
compute time later (the runs themselves are real, on the real model).  The rules are those of
:class:`voice.incremental.IncrementalTranscriber` (its constants and :func:`~voice.incremental.stitch`):
at a dip of ``DIP_MS`` after ``MIN_STRETCH_MS`` of new audio the stretch up to the dip's middle is
transcribed, one run at a time; at the final pause (``EARLY_TRANSCRIPT_AFTER_MS`` into it, as the
app starts its early transcript) the run in flight is waited for, then the rest is transcribed.
The one-shot transcript (one run on the whole turn, today's path) is timed from the same moment.

Not simulated: early transcripts at intermediate pauses the user talks through (each would also
wait for, and hold, the session's one run), and other sessions' replies (which stop the runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchmarks.stt_set import Clip, median
from benchmarks.word_error_rate import word_error_rate
from voice.audio import SAMPLE_RATE
from voice.incremental import DIP_MS, MIN_LOGPROB, MIN_STRETCH_MS, Stretch, stitch
from voice.recognizer import SpeechRecognizer, Transcript
from voice.turns import Endpointer, TurnPolicy

CHUNK = SAMPLE_RATE // 10  # the browser's 100 ms
TAIL_S = 0.6  # silence after the clip: the pause
MAX_QUESTION_S = 6.0  # the target's "questions up to 6 s"


@dataclass(frozen=True)
class Replayed:
    """One clip, streamed: what each path heard and when it was ready (ms after the true end of speech)."""

    engine: str
    clip: int
    speech_s: float
    runs: int  # stretch runs during the speech
    stitched: bool  # the stretches were used (else the one-shot)
    incremental_text: str
    one_shot_text: str
    same_words: bool
    incremental_ready_ms: float
    one_shot_ready_ms: float
    incremental_errors: int
    one_shot_errors: int
    words: int


def _endpointer() -> Endpointer:
    # As the app's turn detector builds it: the post-roll is where the early transcript starts.
    return Endpointer(silence_ms=TurnPolicy.max_wait_ms, post_roll_ms=max(TurnPolicy.transcript_after_ms, 32))


def final_speech_end(stream: np.ndarray) -> int | None:
    """The last voiced sample the endpointer finds in ``stream`` (None: it never paused)."""
    endpointer = _endpointer()
    endpointer.feed(stream)
    pause = endpointer.pause
    return None if pause is None else pause[0]


def replay(recognizer: SpeechRecognizer, clip: Clip, index: int, audio: np.ndarray, name: str = "") -> Replayed | None:
    """Stream ``audio`` through the endpointer and the incremental rules on a simulated clock
    (None: the endpointer never found the clip's end, e.g. it took the noise for voice); ``name``:
    the variant's name in the report (default: the engine's)."""
    stream = np.concatenate([audio, np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])
    final = final_speech_end(stream)
    if final is None:
        return None
    endpointer = _endpointer()
    dip, min_stretch = DIP_MS * SAMPLE_RATE // 1000, MIN_STRETCH_MS * SAMPLE_RATE // 1000
    stretches: list[Stretch] = []
    pending: tuple[int, Stretch] | None = None  # (ready at sample, stretch) of the run in flight
    origin: int | None = None
    runs = 0
    start_at = speech_end = None
    for end in range(CHUNK, len(stream) + CHUNK, CHUNK):
        endpointer.feed(stream[end - CHUNK : end])
        if pending is not None and pending[0] <= end:
            stretches.append(pending[1])
            pending = None
        pause = endpointer.pause
        if pause is None:
            continue
        if pause[0] == final and pause[1] * 1000 / SAMPLE_RATE >= endpointer.post_roll_ms:
            start_at, speech_end = end, pause[0]  # the final pause: the app starts its transcript now
            break
        if pending is None and pause[1] >= dip:
            post_ms = pause[1] // 2 * 1000 // SAMPLE_RATE
            cut = pause[0] + post_ms * SAMPLE_RATE // 1000
            so_far = endpointer.utterance_if_ended_now(post_roll_ms=post_ms)
            if cut - len(so_far) != origin:
                origin, stretches = cut - len(so_far), []
            done = stretches[-1].end if stretches else 0
            if pause[0] - origin - done >= min_stretch:
                part = recognizer.transcribe(so_far[done:])
                runs += 1
                pending = (end + int(part.compute_ms * SAMPLE_RATE / 1000), Stretch(done, len(so_far), part))
    if start_at is None or speech_end is None:
        return None
    whole = endpointer.utterance_if_ended_now()
    whole_origin = speech_end + endpointer.post_roll_ms * SAMPLE_RATE // 1000 - len(whole)
    one_shot = recognizer.transcribe(whole)
    begin = start_at if pending is None else max(start_at, pending[0])
    if pending is not None:
        stretches.append(pending[1])
    usable = origin == whole_origin and stretches
    sure = all(s.transcript.avg_logprob >= MIN_LOGPROB or s.transcript.no_speech for s in stretches)
    heard: Transcript
    if usable and sure:
        done = stretches[-1].end
        if whole_origin + done >= speech_end:
            heard = stitch([s.transcript for s in stretches[:-1]], stretches[-1].transcript, len(whole))
            ready = begin
        else:
            heard = stitch([s.transcript for s in stretches], recognizer.transcribe(whole[done:]), len(whole))
            ready = begin + int(heard.compute_ms * SAMPLE_RATE / 1000)
    else:
        heard, ready = one_shot, begin + int(one_shot.compute_ms * SAMPLE_RATE / 1000)
    inc_errors, words = word_error_rate(clip.text, heard.text)
    shot_errors, _ = word_error_rate(clip.text, one_shot.text)
    to_ms = 1000.0 / SAMPLE_RATE
    return Replayed(
        engine=name or recognizer.engine,
        clip=index,
        speech_s=(speech_end - whole_origin) / SAMPLE_RATE,
        runs=runs,
        stitched=bool(usable and sure),
        incremental_text=heard.text,
        one_shot_text=one_shot.text,
        same_words=word_error_rate(one_shot.text, heard.text)[0] == 0,
        incremental_ready_ms=(ready - speech_end) * to_ms,
        one_shot_ready_ms=(start_at - speech_end + one_shot.compute_ms * SAMPLE_RATE / 1000) * to_ms,
        incremental_errors=inc_errors,
        one_shot_errors=shot_errors,
        words=words,
    )


def replay_all(
    recognizers: Mapping[str, SpeechRecognizer], clips: Sequence[Clip], audio: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Every clip replayed with each recognizer whose cost follows the clip (Moonshine, Whisper in a
    fitted window: in its 30 s window a Whisper run costs the same whatever the stretch, so
    stretches cannot make its last run shorter); the per-clip records."""
    from benchmarks.common import progress

    records, unended = [], 0
    for index, (clip, sound) in enumerate(zip(clips, audio, strict=True)):
        for name, recognizer in recognizers.items():
            replayed = replay(recognizer, clip, index, sound, name)
            if replayed is None:
                unended += 1
            else:
                records.append(asdict(replayed))
        if index % 10 == 9:
            progress(f"{index + 1}/{len(clips)} clips replayed incrementally")
    return {
        "records": records,
        "unended": unended,
        "dip_ms": DIP_MS,
        "min_stretch_ms": MIN_STRETCH_MS,
        "min_logprob": MIN_LOGPROB,
    }


def render_incremental(data: dict[str, Any]) -> list[str]:
    """The incremental section of the report."""
    lines = [
        "## Incremental transcription (replayed)",
        "",
        f"Stretches cut at dips of {data['dip_ms']} ms after {data['min_stretch_ms']} ms of new audio; the stitched "
        f"text is used when every stretch's avg_logprob ≥ {data['min_logprob']}, else the one-shot. Ready = ms after "
        "the true end of speech (the app starts the pause's transcript "
        f"{TurnPolicy.transcript_after_ms} ms into the pause, at the next 100 ms chunk).",
        "",
        "| Engine | clips ≤ 6 s | transcript ready, one-shot (median) | incremental (median) | p90 one-shot / "
        "incremental | runs per turn (mean / max) | stitched used | stitched ≠ one-shot (by words) | WER one-shot "
        "→ incremental |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for engine in dict.fromkeys(r["engine"] for r in data["records"]):
        rows = [r for r in data["records"] if r["engine"] == engine]
        short = [r for r in rows if r["speech_s"] <= MAX_QUESTION_S]
        if not rows:
            continue

        def p90(values: list[float]) -> str:
            ordered = sorted(values)
            return f"{ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]:,.0f}" if ordered else "–"

        one = [r["one_shot_ready_ms"] for r in short]
        inc = [r["incremental_ready_ms"] for r in short]
        runs = [r["runs"] for r in rows]
        stitched = [r for r in rows if r["stitched"]]
        differ = sum(not r["same_words"] for r in stitched)
        words = sum(r["words"] for r in rows) or 1
        lines.append(
            f"| {engine} | {len(short)} | {median(one) or 0:,.0f} ms | {median(inc) or 0:,.0f} ms | {p90(one)} / "
            f"{p90(inc)} ms | {sum(runs) / len(runs):.1f} / {max(runs)} | {len(stitched)} of {len(rows)} | "
            f"{differ} of {len(stitched)} | {100 * sum(r['one_shot_errors'] for r in rows) / words:.1f} % → "
            f"{100 * sum(r['incremental_errors'] for r in rows) / words:.1f} % |"
        )
    if data["unended"]:
        lines += ["", f"{data['unended']} replays left out: the endpointer never found the clip's end."]
    differing = [r for r in data["records"] if r["stitched"] and not r["same_words"]][:10]
    if differing:
        lines += ["", "Where the stitched text differs from the one-shot (first 10):", ""]
        lines += [f"- {r['engine']}: {r['one_shot_text']!r} → {r['incremental_text']!r}" for r in differing]
    return lines
