"""When is the user done?  The end-of-turn policy, as a pure function of the evidence.

The evidence gathered during a pause:

* the silence so far (Silero VAD, :mod:`voice.turns.endpointing`);
* the early transcript's text (Whisper, started on the pause), scored by our text end-of-turn
  model (:mod:`voice.turns.end_of_turn_text`): the probability that "... capital of" or "where are
  you from" is a finished turn, whatever the voice: an n-gram model learnt from real conversation
  mixed with SmolLM2's chance that the message ends there;
* the audio model's probability that the turn is complete (Smart Turn v3.2,
  :mod:`voice.turns.smart_turn`), which hears a falling, final-sounding intonation (on the Piper
  voice; it does not carry over to other voices, issue #22);
* the old word-list rule's verdict (:func:`text_sounds_complete`), kept only for the
  ``combined`` and ``text`` detectors, to measure the old default against.

Each detector is a rule over them; the session, the tests and the benchmark all call
:func:`decide`, so what the benchmark measures is what the app does.

* ``text_model`` (the default): the text model is the primary signal.  A confident "complete"
  (p >= ``text_complete_at``) ends the turn at ``min_silence_ms``; a confident "unfinished"
  (p < ``text_unfinished_below``) holds to ``max_wait_ms``; the band between waits ``hold_ms``.
* ``text_model+audio``: the same, but in the band the audio model decides: complete ends at
  ``min_silence_ms``, unfinished at ``hold_ms``.
* ``combined`` (the old default): end fast only when the audio model *and* the word list say
  complete; ``hold_ms`` when one says incomplete, ``max_wait_ms`` when both do.
* ``text``: the word list alone: ``min_silence_ms`` if complete, else ``silence_ms``.
* ``audio``: the audio model alone.  Complete: ``min_silence_ms``; incomplete: ``hold_ms``.
* ``vad``: a fixed silence (``silence_ms``), nothing else.

A signal not computed yet is unknown, never a vote: until it has answered only ``max_wait_ms``
ends the turn, so the verdict does not depend on how fast the machine is.  Every detector but
``vad`` and ``text`` ends the turn at ``max_wait_ms`` at the latest, so nobody waits forever
for a signal that never comes (a Whisper that is slow on a loaded machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

TurnDetectorName = Literal["text_model", "text_model+audio", "combined", "audio", "text", "vad"]
TURN_DETECTORS: tuple[TurnDetectorName, ...] = get_args(TurnDetectorName)
TURN_DETECTOR_LABELS: dict[str, str] = {
    "text_model": "text model (early transcript)",
    "text_model+audio": "text model + audio model",
    "combined": "audio model + word list (old default)",
    "audio": "audio model only",
    "text": "word-list rule (text)",
    "vad": "silence only (VAD)",
}
# What ended a turn.  "silence": vad/text's fixed silence; "text_model": the text model read it
# complete; "text_model+audio": it was unsure and the audio model heard it complete; "hold": a
# signal said incomplete (or the text model was unsure) and the shorter wait ran out;
# "max_wait": the longest wait ran out; "capped": max_turn_s.
EndSignal = Literal[
    "silence", "text", "audio", "audio+text", "text_model", "text_model+audio", "hold", "max_wait", "capped"
]

# Whisper starts on a pause this long (ms of silence after the last voiced frame), on the audio
# up to there; 0: at the first silent frame (one 32 ms VAD frame).  EARLY_TRANSCRIPT_AFTER_MS.
# 96 ms (three VAD frames): the text is there ~50 ms sooner than at 150, still before the 400 ms
# minimum silence, while the 32-64 ms dips between words inside speech start no Whisper run (at 0,
# 40 runs in 76 s of continuous speech; each holds the CPU, and on a long turn a minute of audio).
# Sooner once ended turns on 300-400 ms pauses inside a sentence; the minimum silence now outlasts
# those, and a turn the user goes on with before hearing its reply is carried on
# (CONTINUE_UNHEARD_TURNS).  README, Turn-taking.
DEFAULT_TRANSCRIPT_AFTER_MS = 96
# Pipecat's own decision threshold for Smart Turn ("prediction = probability > 0.5").
COMPLETE_PROBABILITY = 0.5
# The text model's thresholds, chosen by benchmarks/train_end_of_turn.py on its tuning
# conversations (voice/turns/end_of_turn_text.json, "thresholds"; tests/test_end_of_turn_model.py keeps
# these equal): at or above TEXT_COMPLETE_AT a cut turn reads complete at most 5 % of the time,
# below TEXT_UNFINISHED_BELOW a complete turn reads unfinished at most 5 % of the time.
TEXT_COMPLETE_AT = 0.839
TEXT_UNFINISHED_BELOW = 0.274
# The old word-list rule (the "combined" and "text" detectors only): a pause after these words
# is a hesitation, not the end of a turn.
CONTINUATION_WORDS = frozenset(
    {
        "and",
        "but",
        "so",
        "or",
        "because",
        "um",
        "uh",
        "er",
        "like",
        "the",
        "a",
        "an",
        "to",
        "of",
        "with",
        "my",
        "your",
        "is",
        "are",
        "was",
        "if",
        "then",
        "that",
        "which",
        # Prepositions, determiners, auxiliaries: "book a table for", "I would like to go on".  A
        # question may end on one ("Where are you from?"); then the text only votes "unfinished",
        # which costs a hold (END_OF_TURN_HOLD_MS), not a cut.
        "for",
        "from",
        "about",
        "at",
        "in",
        "on",
        "into",
        "by",
        "than",
        "as",
        "this",
        "these",
        "those",
        "our",
        "their",
        "his",
        "her",
        "some",
        "any",
        "very",
        "really",
        "just",
        "when",
        "where",
        "while",
        "would",
        "could",
        "should",
        "can",
        "will",
        "have",
        "has",
        "had",
        "been",
        "be",
        "not",
        "were",
        "am",
        "also",
        "until",
    }
)


# How Whisper writes speech that trails off or stops inside a word: "I need a...", "call my s-".
TRAILING_OFF = ("...", "…", "-", "—")


def text_sounds_complete(text: str) -> bool:
    """The transcript reads like a finished sentence: final punctuation, no dangling word, and
    no sign that Whisper heard the voice trail off ("...") or stop inside a word ("s-")."""
    text = text.strip()
    words = text.rstrip(".?!").lower().replace(",", " ").split()
    return (
        bool(words)
        and text.endswith((".", "?", "!"))
        and not text.rstrip("?!").endswith(TRAILING_OFF)
        and words[-1] not in CONTINUATION_WORDS
    )


@dataclass(frozen=True)
class TurnPolicy:
    """One detector and its waits (ms of silence after the last voiced frame).  Its defaults are
    the app's (``Settings`` takes them from here): the turn-taking benchmark's knee (README)."""

    detector: TurnDetectorName = "text_model"
    min_silence_ms: int = 400  # the evidence says complete
    silence_ms: int = 500  # vad and text: the fixed silence
    hold_ms: int = 1000  # one signal says unfinished
    max_wait_ms: int = 2500  # the longest any pause is waited for
    threshold: float = COMPLETE_PROBABILITY
    transcript_after_ms: int = DEFAULT_TRANSCRIPT_AFTER_MS  # when the early transcript starts
    text_complete_at: float = TEXT_COMPLETE_AT  # the text model's confident "complete"
    text_unfinished_below: float = TEXT_UNFINISHED_BELOW  # ... and confident "unfinished"

    def __post_init__(self) -> None:
        if self.detector not in TURN_DETECTORS:
            raise ValueError(f"unknown turn detector {self.detector!r}; choose one of {', '.join(TURN_DETECTORS)}")
        if not 0 < self.min_silence_ms <= self.hold_ms <= self.max_wait_ms:
            raise ValueError("the waits must satisfy 0 < min silence <= hold <= max wait")
        if self.silence_ms <= 0:
            raise ValueError("the end-of-turn silence must be > 0")
        if self.transcript_after_ms < 0:
            raise ValueError("the early transcript's start must be >= 0 ms into the pause")
        if not 0 <= self.text_unfinished_below <= self.text_complete_at <= 1:
            raise ValueError("the text model's thresholds must satisfy 0 <= unfinished <= complete <= 1")

    @property
    def uses_text(self) -> bool:
        """Whether this detector reads the early transcript."""
        return self.detector in ("text_model", "text_model+audio", "combined", "text")

    @property
    def uses_text_model(self) -> bool:
        """Whether this detector scores the early transcript with the text end-of-turn model."""
        return self.detector in ("text_model", "text_model+audio")

    @property
    def uses_audio_model(self) -> bool:
        """Whether this detector runs Smart Turn on the pause."""
        return self.detector in ("text_model+audio", "combined", "audio")

    def reads_unfinished(self, text_probability: float | None) -> bool:
        """Whether this detector reads a transcript of ``text_probability`` as unfinished, so the
        pause is waited for to ``max_wait_ms`` (the text-model detectors only)."""
        return self.uses_text_model and text_probability is not None and text_probability < self.text_unfinished_below

    @property
    def backstop_ms(self) -> int:
        """The silence after which the endpointer ends the turn by itself, whatever the signals."""
        return self.silence_ms if self.detector in ("vad", "text") else self.max_wait_ms

    @property
    def backstop_signal(self) -> EndSignal:
        """What a turn ended by the endpointer's own timer is reported as."""
        return "silence" if self.detector in ("vad", "text") else "max_wait"


def decide(
    policy: TurnPolicy,
    silence_ms: float,
    text_complete: bool | None,
    probability: float | None,
    text_probability: float | None = None,
) -> EndSignal | None:
    """The signal that ends the turn now, or None to keep listening.

    ``text_complete`` (the word list's verdict), ``probability`` (the audio model's) and
    ``text_probability`` (the text model's) are None while that signal has not answered yet.
    Pure: call it again whenever the silence grows or a signal arrives.
    """
    if silence_ms >= policy.backstop_ms:
        return policy.backstop_signal
    if policy.detector == "vad":
        return None
    audio_complete = None if probability is None else probability >= policy.threshold
    if policy.uses_text_model:
        return _decide_on_text_model(policy, silence_ms, text_probability, audio_complete)
    if policy.detector == "text":
        return "text" if text_complete and silence_ms >= policy.min_silence_ms else None
    if policy.detector == "audio":
        if audio_complete is None:
            return None
        if audio_complete:
            return "audio" if silence_ms >= policy.min_silence_ms else None
        return "hold" if silence_ms >= policy.hold_ms else None
    if audio_complete is None or text_complete is None:
        # A signal still being computed is unknown, not a vote: deciding without it would make
        # the verdict depend on how fast the machine is (a slow Whisper would turn "one says
        # unfinished, the other has not answered" into a hold).  Only the maximum wait ends it.
        return None
    if audio_complete and text_complete:
        return "audio+text" if silence_ms >= policy.min_silence_ms else None
    if audio_complete != text_complete and silence_ms >= policy.hold_ms:
        return "hold"  # the two disagree: the hold gives an unfinished speaker time to go on
    return None  # both say incomplete: only the maximum wait ends it


def _decide_on_text_model(
    policy: TurnPolicy, silence_ms: float, text_probability: float | None, audio_complete: bool | None
) -> EndSignal | None:
    """The text model first; in its unsure band, the hold or (``text_model+audio``) the audio model."""
    if text_probability is None:
        return None  # no transcript yet: unknown, only the maximum wait ends it
    if text_probability >= policy.text_complete_at:
        return "text_model" if silence_ms >= policy.min_silence_ms else None
    if policy.reads_unfinished(text_probability):
        return None  # reads unfinished: the speaker is given the longest wait to go on
    if policy.detector == "text_model+audio":
        if audio_complete is None:
            return None
        if audio_complete:
            return "text_model+audio" if silence_ms >= policy.min_silence_ms else None
    return "hold" if silence_ms >= policy.hold_ms else None
