"""The speech-recognizer set: short and long questions in every voice family, rendered at run time
(:mod:`benchmarks.voice_families`), as ``python -m benchmarks.stt_engines`` hears them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.voice_families import render, select, split_of
from voice.audio import SAMPLE_RATE

PAD_S = 0.1
SHORT_QUESTIONS = (
    "What do bees make?",
    "What is the opposite of hot?",
    "How many legs does a spider have?",
    "What color is a ripe banana?",
    "Who wrote Hamlet?",
)
LONG_QUESTIONS = (
    "Could you please tell me the name of the capital city of France?",
    "I was wondering how many legs a spider has, could you tell me?",
    "On a clear summer day, what color is the sky above us?",
    "Please name one fruit that is yellow and that monkeys like to eat.",
    "Can you explain why the moon looks bigger when it is close to the horizon?",
)
HARD_PREFIXES = ("espeak", "noise-10db")  # the hard families: espeak voices, 10 dB noise


@dataclass(frozen=True)
class Clip:
    """One question in one voice family."""

    family: str
    split: str  # "tuning" or "heldout"
    length: str  # "short" or "long"
    text: str
    audio_s: float


def median(values: Sequence[float]) -> float | None:
    """The median, None for no values."""
    return statistics.median(values) if values else None


TEXT_SETS = ("questions", "turn-taking")
# A turn-taking text of more words than this is a "long" one.
SHORT_WORDS = 7


def turn_taking_texts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(short, long) texts of the turn-taking benchmark (both its sets): its complete utterances and
    its hesitations said whole; a second set of words no recognizer setting was chosen on."""
    from benchmarks.turn_taking_texts import HELDOUT, TUNING

    texts = [*TUNING.complete, *HELDOUT.complete]
    texts += [f"{first} {rest}" for first, rest in (*TUNING.hesitations, *HELDOUT.hesitations)]
    return tuple(t for t in texts if len(t.split()) <= SHORT_WORDS), tuple(
        t for t in texts if len(t.split()) > SHORT_WORDS
    )


def clips(families: str, questions: int, texts: str = "questions") -> tuple[list[Clip], list[np.ndarray]]:
    """Every question (the first ``questions`` of each length; ``texts="turn-taking"``: every one of
    :func:`turn_taking_texts`) in every family: the clips' descriptions and their audio."""
    short, long = (SHORT_QUESTIONS[:questions], LONG_QUESTIONS[:questions])
    if texts == "turn-taking":
        short, long = turn_taking_texts()
    described, audio = [], []
    for family in select(families):
        for length, bank in (("short", short), ("long", long)):
            for text in bank:
                sound = render(text, family, pad_s=PAD_S)
                described.append(Clip(family.name, split_of(family), length, text, len(sound) / SAMPLE_RATE))
                audio.append(sound)
    return described, audio
