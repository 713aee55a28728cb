"""The policies the turn-taking benchmark replays: swept curves, named contenders, a tuned choice.

* The *curves*: each detector with one setting swept (a wait in ms, or the text model's
  "complete" threshold, × 1000 for the row key).
* The *contenders*: the policies the issue compares by name: the default before issue #22
  (Smart Turn and the word list), the text-model policy as the app has it, with and without
  Smart Turn in its unsure band, and with its early transcript started at the first silent frame;
  and the app's text model before SmolLM2 was mixed in (the n-gram half alone, at its own
  thresholds), replayed with that model's probabilities (:func:`scorer_of`).
* The *tuned* contenders: the text model's "complete" threshold chosen by this benchmark on the
  tuning families speaking the tuning sentences only (the lowest, so the fastest, that keeps the
  cut-ins on hesitations up to 1 s within the target), then reported on the held-out ones.
"""

from __future__ import annotations

import json
from dataclasses import replace

from benchmarks.turn_taking_replay import Scorer, ngram_probability, text_probability
from benchmarks.turn_taking_summary import Row, knee
from voice.turns.end_of_turn_text import MODEL_PATH
from voice.turns.policy import TURN_DETECTOR_LABELS, TurnDetectorName, TurnPolicy

WAITS_MS = (300, 500, 800, 1000, 1200, 1500, 2000)
# The text model's "complete" threshold, × 1000 (the app's is in TurnPolicy; it is added below).
THRESHOLDS_X1000 = (500, 600, 700, 750, 800, 850, 900, 950)
# The default before issue #22: Smart Turn and the word list, minimum silence 400, hold 1,000, at
# most 2,500 ms (spelled out: TurnPolicy()'s defaults are whatever the app's are now).
DEFAULT_BEFORE_22 = TurnPolicy("combined", min_silence_ms=400, hold_ms=1000, max_wait_ms=2500)
EARLIEST_TRANSCRIPT_MS = 32  # EARLY_TRANSCRIPT_AFTER_MS=0 starts Whisper at the first silent VAD frame
CURVES = {
    "text_model": "text model (hold swept)",
    "text_model_min": "text model (minimum silence swept)",
    "text_model_at": "text model ('complete' threshold × 1000 swept)",
    "text_model+audio": "text model + audio model (hold swept)",
    "text_model+audio_at": "text model + audio model ('complete' threshold × 1000 swept)",
    "combined": "audio model + word list (hold swept)",
    "combined_min": "audio model + word list (minimum silence swept)",
    **{d: label for d, label in TURN_DETECTOR_LABELS.items() if d in ("audio", "text", "vad")},
}
THRESHOLD_CURVES: dict[str, TurnDetectorName] = {
    "text_model_at": "text_model",
    "text_model+audio_at": "text_model+audio",
}


# The contenders replayed with the n-gram half of the text model alone, not the app's mix.
NGRAM_ALONE = "text_model@ngram"


def ngram_alone_thresholds() -> tuple[float, float]:
    """The n-gram model's own thresholds, as the training script set them on tuning conversations
    (voice/turns/end_of_turn_text.json, "ngram_alone"): complete at, unfinished below."""
    record = json.loads(MODEL_PATH.with_suffix(".json").read_text(encoding="utf-8"))["ngram_alone"]["thresholds"]
    return float(record["complete_at"]), float(record["unfinished_below"])


def scorer_of(name: str) -> Scorer:
    """The text model a named contender (or curve) reads: the n-gram half alone, or the app's."""
    return ngram_probability if name == NGRAM_ALONE else text_probability


def thresholds_x1000() -> tuple[int, ...]:
    """The swept thresholds (× 1000), the app's own among them."""
    return tuple(sorted({*THRESHOLDS_X1000, round(TurnPolicy().text_complete_at * 1000)}))


def curve_points() -> dict[str, list[int]]:
    """Each curve's swept settings (the row keys): waits in ms, or thresholds × 1000."""
    return {c: list(thresholds_x1000() if c in THRESHOLD_CURVES else WAITS_MS) for c in CURVES}


def policies(max_wait_ms: int, transcript_after_ms: int) -> list[tuple[str, int, TurnPolicy]]:
    """(curve, setting, policy) for every curve of :data:`CURVES` and swept setting.

    vad: the fixed silence; text: the word-list rule's silence (its short wait 300 ms); audio,
    combined, text_model and text_model+audio: the hold (minimum silence 400 ms); combined_min and
    text_model_min: the minimum silence (hold 1,000 ms, raised to the minimum silence when that is
    longer); *_at: the text model's "complete" threshold (the app's waits).  Otherwise the text
    model's thresholds are the app's.
    """
    out = []
    after = {"transcript_after_ms": transcript_after_ms, "max_wait_ms": max_wait_ms}
    base = DEFAULT_BEFORE_22
    for wait in WAITS_MS:
        out.append(("vad", wait, TurnPolicy("vad", min_silence_ms=min(wait, 300), silence_ms=wait, **after)))
        out.append(("text", wait, TurnPolicy("text", min_silence_ms=min(wait, 300), silence_ms=wait, **after)))
        for detector in ("audio", "combined", "text_model", "text_model+audio"):
            hold = max(wait, base.min_silence_ms)
            out.append(
                (detector, wait, TurnPolicy(detector, min_silence_ms=base.min_silence_ms, hold_ms=hold, **after))
            )
        if wait <= max_wait_ms:
            hold = max(base.hold_ms, wait)
            swept: tuple[TurnDetectorName, ...] = ("combined", "text_model")
            for fast in swept:
                out.append((f"{fast}_min", wait, TurnPolicy(fast, min_silence_ms=wait, hold_ms=hold, **after)))
    app = replace(TurnPolicy(), transcript_after_ms=transcript_after_ms, max_wait_ms=max_wait_ms)
    for curve, detector in THRESHOLD_CURVES.items():
        for x1000 in thresholds_x1000():
            at = max(x1000 / 1000, app.text_unfinished_below)
            out.append((curve, x1000, replace(app, detector=detector, text_complete_at=at)))
    return out


def _waits(policy: TurnPolicy) -> str:
    return f"{policy.min_silence_ms} / {policy.hold_ms:,} / {policy.max_wait_ms:,} ms"


def contenders(transcript_after_ms: int) -> dict[str, tuple[str, TurnPolicy]]:
    """The policies the issue compares, by name: (label, policy)."""
    app = replace(TurnPolicy(), transcript_after_ms=transcript_after_ms)
    bands = f"complete ≥ {app.text_complete_at:g}, unfinished < {app.text_unfinished_below:g}"
    ngram_at, ngram_below = ngram_alone_thresholds()

    def default(detector: str) -> str:
        return " (the app default)" if app.detector == detector else ""

    return {
        "before_22": (
            f"default before #22: Smart Turn + word list ({_waits(DEFAULT_BEFORE_22)})",
            replace(DEFAULT_BEFORE_22, transcript_after_ms=transcript_after_ms),
        ),
        "text_model": (
            f"text model{default('text_model')} ({_waits(app)}; {bands})",
            replace(app, detector="text_model"),
        ),
        NGRAM_ALONE: (
            f"text model before SmolLM2: the n-gram half alone ({_waits(app)}; complete ≥ {ngram_at:g}, "
            f"unfinished < {ngram_below:g}, its own)",
            replace(app, detector="text_model", text_complete_at=ngram_at, text_unfinished_below=ngram_below),
        ),
        "text_model+audio": (
            f"text model + Smart Turn in its unsure band{default('text_model+audio')} ({_waits(app)}; {bands})",
            replace(app, detector="text_model+audio"),
        ),
        # Issue #22: the transcript's arrival, not the rule, may hold a complete turn past the
        # minimum silence; so the text model with the early transcript started at the first
        # silent frame (the replay's transcript is of the audio up to the usual start: the same words).
        "text_model@transcript0": (
            f"text model, early transcript at the first silent frame ({_waits(app)}; {bands}; transcript at "
            f"{EARLIEST_TRANSCRIPT_MS} ms, not {app.transcript_after_ms})",
            replace(app, detector="text_model", transcript_after_ms=0),
        ),
    }


def tuned_contenders(rows: list[Row], transcript_after_ms: int, metric: str) -> dict[str, tuple[str, TurnPolicy]]:
    """The text-model policies with the "complete" threshold chosen on the tuning families and
    sentences: the lowest swept one whose ``metric`` on hesitations up to 1 s meets the target
    (none when no threshold does)."""
    app = replace(TurnPolicy(), transcript_after_ms=transcript_after_ms)
    out = {}
    for curve, detector in THRESHOLD_CURVES.items():
        chosen = knee(rows, curve, thresholds_x1000(), metric, ("tuning", "tuning"))
        if chosen is None:
            continue
        policy = replace(app, detector=detector, text_complete_at=max(chosen / 1000, app.text_unfinished_below))
        smart = " + Smart Turn in its unsure band" if detector == "text_model+audio" else ""
        label = f"text model{smart}, 'complete' threshold chosen on the tuning families: {chosen / 1000:g} "
        label += f"({_waits(policy)})"
        out[f"{detector}@tuned"] = (label, policy)
    return out
