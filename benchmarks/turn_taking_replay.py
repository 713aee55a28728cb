"""The turn-taking benchmark's evidence and its replay: one expensive pass, every policy scored.

:func:`gather` streams an item through the app's own Silero endpointer frame by frame.  On
every pause that reaches ``SPECULATE_AFTER_MS`` it computes the app's evidence once, as the
app does: Whisper's early transcript and Smart Turn's probability side by side in two threads,
each timed, then the text end-of-turn model on the transcript (timed too).  :func:`replay`
then walks any :class:`~voice.turns.policy.TurnPolicy` over that evidence with
:func:`voice.turns.policy.decide` (the function the app calls), a signal counting only from the
moment it would have existed: its start plus its measured compute time.

Approximation (stated in the report): after a (false) cut the app would start a new turn whose
later evidence covers only the rest of the speech; the replay keeps the evidence of the whole
utterance.  Decisions are taken every 32 ms VAD frame (the app also decides when a signal
arrives, and on 100 ms browser chunks).
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from benchmarks.turn_taking_data import Item
from voice.audio import SAMPLE_RATE
from voice.transcribe import Transcriber
from voice.turns import FRAME, SPECULATE_AFTER_MS, Endpointer, load_text_end_of_turn, smart_turn_model
from voice.turns.policy import TurnPolicy, decide, text_sounds_complete

FRAME_MS = FRAME * 1000 / SAMPLE_RATE
T = TypeVar("T")


@dataclass(frozen=True)
class Pause:
    """One pause the endpointer saw (>= SPECULATE_AFTER_MS), and the evidence computed on it."""

    speech_end: int  # end of the last voiced frame (sample)
    length_ms: float  # silence until the voice came back (or the item ended)
    text: str
    text_complete: bool
    probability: float
    whisper_ms: float
    model_ms: float
    # How sure Whisper was of ``text`` (Transcript.avg_logprob).  Kept for analysis: no detector uses it.
    text_logprob: float = 0.0
    # The text end-of-turn model's call on ``text`` (its time; the probability is judged at replay).
    text_model_ms: float = 0.0


@dataclass(frozen=True)
class Evidence:
    """An item's labels and every pause the detectors could end its turn on."""

    name: str
    kind: str
    family: str
    text_set: str
    snr_db: float | None
    true_end: int
    internal_ends: tuple[int, ...]  # where each internal pause's speech part ends
    speech_s: float
    pauses: tuple[Pause, ...]
    # Where the last part's speech starts: a turn ended on a pause before it (or on any pause
    # the voice came back after) is a cut; the last pause after it is the real end, even when
    # the VAD heard the last word end early (a soft "s" in noise).  0: one part only.
    last_part_start: int = 0


@dataclass(frozen=True)
class Outcome:
    """One policy on one item."""

    cuts: int  # turns ended inside the item's own pauses
    delay_ms: float | None  # the final end after the true end of speech; None: never ended
    # When the LLM request can go: the turn is over *and* its transcript exists (Whisper starts
    # on the pause whatever the detector, so a fast detector still waits for it).
    reply_ms: float | None = None
    # The cuts had every signal been ready the moment it was asked for (an infinitely fast
    # machine).  A signal can only end a turn earlier, never later, so this is the most cuts
    # the policy's logic makes on this item on any machine: independent of load.
    cuts_if_instant: int = 0
    # The cuts whose reply would be heard before the user went on (None: no reply time given),
    # with the measured signal times and with instant signals (the most on any machine).
    heard_cuts: int | None = None
    heard_cuts_if_instant: int | None = None
    # Whether the text model read the pause that ended the turn unfinished (None: no end).
    end_read_unfinished: bool | None = None
    # The final delay had every signal been ready the moment it was asked for: the policy's own
    # wait, without the machine's compute time (which a loaded machine stretches).
    delay_if_instant_ms: float | None = None


def score_text(text: str) -> float:
    """The text end-of-turn model's probability that ``text`` is a finished turn."""
    return load_text_end_of_turn().probability(text)


def score_ngram(text: str) -> float:
    """The n-gram half of the text model alone (the app's text model before SmolLM2 was mixed in)."""
    return load_text_end_of_turn().ngram_probability(text)


# The replay asks for the same transcripts over and over (every policy, every item): computed once.
text_probability = functools.lru_cache(maxsize=65536)(score_text)
ngram_probability = functools.lru_cache(maxsize=65536)(score_ngram)
Scorer = Callable[[str], float]  # a transcript -> the probability a text model gives it


def gather(
    item: Item, whisper: Transcriber, pool: concurrent.futures.Executor, transcript_after_ms: int = 0
) -> Evidence:
    """Stream ``item`` through the endpointer; compute the evidence on every pause, as the app does:
    Whisper on the audio up to ``transcript_after_ms`` into the pause (one VAD frame at least), the
    audio model on the audio up to ``SPECULATE_AFTER_MS`` into it, the text model on the transcript."""
    model = smart_turn_model()
    endpointer = Endpointer(silence_ms=10_000, max_turn_s=600, post_roll_ms=SPECULATE_AFTER_MS)
    pauses: list[Pause] = []
    current: dict[str, Any] | None = None
    last_silence = 0.0

    def close_current() -> None:
        if current is not None:
            pauses.append(Pause(length_ms=last_silence, **current))

    for offset in range(0, len(item.audio), FRAME):
        endpointer.feed(item.audio[offset : offset + FRAME])
        pause = endpointer.pause
        if current is not None and (pause is None or pause[0] != current["speech_end"]):
            close_current()
            current = None
        if pause is None:
            continue
        last_silence = pause[1] * 1000 / SAMPLE_RATE
        if current is None and last_silence >= SPECULATE_AFTER_MS:
            heard = endpointer.utterance_if_ended_now(max(transcript_after_ms, int(FRAME_MS)))
            stt = pool.submit(_timed, whisper.transcribe, heard)
            turn = pool.submit(model.predict, endpointer.utterance_if_ended_now())
            (transcript, whisper_ms), prediction = stt.result(), turn.result()
            _, text_model_ms = _timed(score_text, transcript.text)  # timed uncached: what the app pays
            current = {
                "speech_end": pause[0],
                "text": transcript.text,
                "text_complete": text_sounds_complete(transcript.text),
                "text_logprob": transcript.avg_logprob,
                "probability": prediction.probability,
                "whisper_ms": whisper_ms,
                "model_ms": prediction.compute_ms,
                "text_model_ms": text_model_ms,
            }
    close_current()
    last_start = item.part_ends[-2] + int(item.pauses_s[-1] * SAMPLE_RATE) if len(item.part_ends) > 1 else 0
    return Evidence(
        item.name,
        item.kind,
        item.family,
        item.text_set,
        item.snr_db,
        item.true_end,
        item.part_ends[:-1],
        item.speech_s,
        tuple(pauses),
        last_start,
    )


def _timed(fn: Callable[..., T], arg: object) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn(arg)
    return result, (time.perf_counter() - started) * 1000


def transcript_start(policy: TurnPolicy) -> float:
    """Silence (ms) at which the app starts the early transcript: at the first silent VAD frame at
    the earliest.  (The evidence's transcript is of the audio up to ``SPECULATE_AFTER_MS`` into the
    pause; one started earlier hears a little less of the pause, not fewer words.)"""
    return max(float(policy.transcript_after_ms), FRAME_MS)


def ended_at(
    policy: TurnPolicy, pause: Pause, *, instant: bool = False, scorer: Scorer = text_probability
) -> float | None:
    """Silence (ms) at which ``policy`` ends the turn on ``pause``, or None if the voice came back first.

    A signal counts from when the app starts it (the audio model at ``SPECULATE_AFTER_MS``, the
    transcript at the policy's ``transcript_after_ms``, the text model once the transcript is
    there) plus its measured compute time, or (``instant``) from that start itself.  ``scorer``:
    the text model whose probability the policy reads.
    """
    # The text model runs in the app's Whisper thread, right after the transcript: its time adds to Whisper's.
    whisper_ms, model_ms = (0.0, 0.0) if instant else (pause.whisper_ms + pause.text_model_ms, pause.model_ms)
    # Judged now, from the stored transcript, so a replay measures the current word list and model.
    words_complete, text_p = text_sounds_complete(pause.text), scorer(pause.text)
    silence = 0.0
    while silence <= pause.length_ms:
        ready = silence >= transcript_start(policy) + whisper_ms
        text, text_model = (words_complete, text_p) if ready else (None, None)
        probability = pause.probability if silence >= SPECULATE_AFTER_MS + model_ms else None
        if decide(policy, silence, text, probability, text_model) is not None:
            return silence
        silence += FRAME_MS
    return None


def replay(
    policy: TurnPolicy, evidence: Evidence, reply_ms: float | None = None, scorer: Scorer = text_probability
) -> Outcome:
    """Which pauses ``policy`` ends the turn on: cuts inside the item, and the final delay
    (with the signals' measured compute times), and the cuts with instant signals; with
    ``reply_ms`` (decision to first audio), also the cuts the user would hear.  ``scorer``: the
    text model the policy reads (the app's, or the n-gram half alone)."""
    walk = functools.partial(_walk, policy, evidence, scorer=scorer)
    measured, instant = walk(instant=False), walk(instant=True)
    outcome = replace(measured, cuts_if_instant=instant.cuts, delay_if_instant_ms=instant.delay_ms)
    if reply_ms is None:
        return outcome
    return replace(
        outcome,
        heard_cuts=walk(instant=False, reply_ms=reply_ms).cuts,
        heard_cuts_if_instant=walk(instant=True, reply_ms=reply_ms).cuts,
    )


def _walk(
    policy: TurnPolicy, evidence: Evidence, *, instant: bool, scorer: Scorer, reply_ms: float | None = None
) -> Outcome:
    cuts = 0
    tolerance = int(0.1 * SAMPLE_RATE)  # the VAD's end of a part vs the label's
    last_start = evidence.last_part_start or evidence.true_end - tolerance
    for index, pause in enumerate(evidence.pauses):
        at = ended_at(policy, pause, instant=instant, scorer=scorer)
        if at is None:
            continue
        # Inside the turn: the voice came back after this pause, or the last part had not begun.
        if index < len(evidence.pauses) - 1 or pause.speech_end < last_start:
            if reply_ms is not None and at + reply_ms >= pause.length_ms:
                continue  # the voice came back before the reply: the app carries the turn on
            cuts += 1
        else:
            offset = (pause.speech_end - evidence.true_end) * 1000 / SAMPLE_RATE
            whisper_ms = 0.0 if instant else pause.whisper_ms
            reply = offset + max(at, transcript_start(policy) + whisper_ms)
            unfinished = scorer(pause.text) < policy.text_unfinished_below
            return Outcome(cuts, offset + at, reply, end_read_unfinished=unfinished)
    return Outcome(cuts, None)


def evidence_from(data: dict[str, Any]) -> Evidence:
    """An :class:`Evidence` from its JSON form (``dataclasses.asdict``, read back as JSON)."""
    pauses = tuple(Pause(**p) for p in data["pauses"])
    return Evidence(**{**data, "pauses": pauses, "internal_ends": tuple(data["internal_ends"])})
