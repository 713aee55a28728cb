"""Does the text read as a finished turn?  A small end-of-turn model of our own, on words.

A logistic regression over hashed word and character features of the early transcript,
trained by ``python -m benchmarks.train_end_of_turn`` on real two-person chat (the
``chitchat-dataset`` package): complete turns against the same turns cut at a word boundary.
Its weights, ``end_of_turn_text.npz`` beside this module, are ours (a few MB), so nothing is
downloaded: its part of a call is a few hashes and a sum (well under a millisecond).

The features lean on the END of the text, where "unfinished" shows: the last three words
each with its position, the last two and three words together, the last word's character
n-grams (a word the model never saw still looks like a verb or a plural), the first word
and the first word with the last (a "where ..." question may end on "from"), every word,
and the length.  Text is lowercased and stripped of punctuation first, so the full stop
Whisper writes after a fragment says nothing.

Its verdict mixes in SmolLM2's (:mod:`voice.turns.end_of_turn_lm`): the n-gram model knows chat,
the language model knows English.  The file's metadata holds the mix (two weights and a bias on
the two log-odds, fitted on the tuning conversations); a call then costs the language model's
~30 ms, in the early transcript's thread.

Train and run share :func:`features`, :func:`feature_indices` and the language model's scorer:
the model is scored on exactly what it was trained on.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voice.model_cache import load_once
from voice.turns.end_of_turn_lm import LanguageModelEndOfTurn, LanguageModelUnavailable, load_language_model

MODEL_PATH = Path(__file__).with_name("end_of_turn_text.npz")
# Words are runs of letters and digits; an apostrophe joins ("i'd" -> "id") the way chat often
# writes it anyway ("im", "dont"), so Whisper's "I'd" and a chatter's "id" read the same.
_APOSTROPHES = re.compile(r"['\u2019]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
# Length buckets (words): short turns ("yes", "where are you from") differ from long ones.
LENGTH_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 17, 23, 30)


class EndOfTurnModelError(RuntimeError):
    """The committed weights are missing or not the format this code reads, or the language model
    they mix in cannot be loaded."""


def normalise(text: str) -> list[str]:
    """The words of ``text``: lowercased, apostrophes dropped, any other punctuation a space."""
    return _NON_WORD.sub(" ", _APOSTROPHES.sub("", text.lower())).split()


def features(words: list[str]) -> list[str]:
    """The named features of one normalised text (see the module docstring)."""
    if not words:
        return ["empty"]
    n = len(words)
    last = words[-1]
    out = [f"l1={last}", f"first={words[0]}", f"fl={words[0]}|{last}"]
    if n >= 2:
        out += [f"l2={words[-2]}", f"b={words[-2]}|{last}"]
    if n >= 3:
        out += [f"l3={words[-3]}", f"t={words[-3]}|{words[-2]}|{last}"]
    marked = f"<{last}>"
    for size in (2, 3, 4):
        # Only the n-grams touching the word's end (and the whole short word): suffixes say most.
        out += [
            f"c{size}={marked[i : i + size]}" for i in range(max(0, len(marked) - 2 * size), len(marked) - size + 1)
        ]
    bucket = next((b for b in LENGTH_BUCKETS if n <= b), LENGTH_BUCKETS[-1] + 1)
    out.append(f"len={bucket}")
    out += [f"w={w}" for w in set(words)]
    return out


def feature_indices(words: list[str], dims: int) -> np.ndarray:
    """The hashed feature indices of one normalised text (crc32: stable across runs and machines)."""
    return hash_features(features(words), dims)


def hash_features(names: list[str], dims: int) -> np.ndarray:
    """Named features as indices into ``dims`` weights (the training script hashes the feature sets
    it compares the same way)."""
    return np.fromiter((zlib.crc32(f.encode()) % dims for f in names), dtype=np.int64)


@dataclass(frozen=True)
class TextVerdict:
    """The text model's verdict on one transcript: ``probability`` that the turn is complete,
    ``compute_ms`` the call's wall time."""

    probability: float
    compute_ms: float


@dataclass(frozen=True)
class TextMix:
    """How the two models' log-odds combine: ``ngram * n-gram + language_model * SmolLM2 + bias``."""

    ngram: float
    language_model: float
    bias: float

    def combine(self, ngram_log_odds: float, lm_log_odds: float) -> float:
        """The text model's log-odds."""
        return self.ngram * ngram_log_odds + self.language_model * lm_log_odds + self.bias


class TextEndOfTurn:
    """The trained weights (and the language model their mix needs); :meth:`probability` scores a
    transcript.  Thread-safe."""

    def __init__(
        self, path: Path = MODEL_PATH, language_model: Callable[[], LanguageModelEndOfTurn] = load_language_model
    ) -> None:
        try:
            with np.load(path, allow_pickle=False) as data:
                self.weights = data["weights"].astype(np.float32)
                self.bias = float(data["bias"])
                self.meta: dict[str, Any] = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise EndOfTurnModelError(
                f"cannot read the text end-of-turn model {path}: {exc} "
                "(rebuild it with python -m benchmarks.train_end_of_turn)"
            ) from exc
        if self.weights.ndim != 1 or self.weights.size != self.meta.get("dims"):
            raise EndOfTurnModelError(f"{path}: weights of shape {self.weights.shape} do not match its metadata")
        self.dims = int(self.weights.size)
        try:
            mix = self.meta.get("mix")
            self.mix = None if mix is None else TextMix(**mix)
        except TypeError as exc:
            raise EndOfTurnModelError(f"{path}: its mix {mix!r} is not the format this code reads") from exc
        self.language_model: LanguageModelEndOfTurn | None = None
        if self.mix is not None:
            try:
                self.language_model = language_model()
            except LanguageModelUnavailable as exc:
                raise EndOfTurnModelError(str(exc)) from exc

    def ngram_log_odds(self, words: list[str]) -> float:
        """The n-gram model's log-odds that normalised ``words`` are a finished turn."""
        return float(self.weights[feature_indices(words, self.dims)].sum()) + self.bias

    def ngram_probability(self, text: str) -> float:
        """The n-gram half alone (the text model before SmolLM2 was mixed in), for comparison."""
        return _logistic(self.ngram_log_odds(normalise(text)))

    def probability(self, text: str) -> float:
        """How likely ``text`` is a finished turn (0..1).  An empty text is the n-gram model's
        alone (the language model reads words; no turn in training was empty)."""
        words = normalise(text)
        score = self.ngram_log_odds(words)
        if self.mix is not None and self.language_model is not None and words:
            score = self.mix.combine(score, self.language_model.log_odds(words))
        return _logistic(score)

    def verdict(self, text: str) -> TextVerdict:
        """:meth:`probability` with its compute time, for the breakdown."""
        started = time.perf_counter()
        probability = self.probability(text)
        return TextVerdict(probability, (time.perf_counter() - started) * 1000)


def _logistic(log_odds: float) -> float:
    return float(0.5 * (1 + np.tanh(log_odds / 2)))  # 1 / (1 + e^-x) without overflow


@load_once
def load_text_end_of_turn(path: Path = MODEL_PATH) -> TextEndOfTurn:
    """The committed model, loaded once per process."""
    return TextEndOfTurn(path)
