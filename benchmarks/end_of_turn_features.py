"""Feature sets the training script compares for the text end-of-turn model (issue #22).

``words`` is the product's feature set (:func:`voice.turns.end_of_turn_text.features`: the last
words, their characters, the first word and the first with the last, every word, the length).
The candidates add hashed conjunctions meant to capture a sentence's structure, so that a
wh-question or an inverted auxiliary could close a sentence that ends on a preposition or a verb
("what are you looking for", "could you tell me where the station is"):

* ``structure``: the opening (a wh-word, an auxiliary, or neither) with the last word and with
  the last two; the first two words with the last; the length bucket with the last word;
* ``structure+wh``: those, and whether a wh-word stands inside the text (not first, not last)
  with the last word and with the last two.

The script trains each on the training conversations and keeps the one with the best tuning AUC;
only the product's set is read at run time, so a candidate that wins must move into
:mod:`voice.turns.end_of_turn_text` (and its version into the model's metadata) before it ships.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from voice.turns.end_of_turn_text import LENGTH_BUCKETS, feature_indices, features, hash_features

WH_WORDS = frozenset({"what", "where", "who", "whom", "whose", "which", "when", "why", "how"})
# Auxiliaries that open a yes/no question ("do you…", "could you…"), apostrophes dropped as normalise() does.
AUXILIARIES = frozenset(
    {
        *("do", "does", "did", "is", "are", "was", "were", "am", "have", "has", "had"),
        *("can", "could", "would", "will", "should", "shall", "may", "might"),
        *("dont", "doesnt", "didnt", "isnt", "arent", "cant", "wont"),
    }
)


def opening(words: list[str]) -> str:
    """How a text opens: "wh" (a wh-word), "aux" (an auxiliary: a yes/no question) or "other"."""
    first = words[0] if words else ""
    return "wh" if first in WH_WORDS else "aux" if first in AUXILIARIES else "other"


def structure_features(words: list[str]) -> list[str]:
    """The product's features and the structure conjunctions (``structure``)."""
    out = features(words)
    if not words:
        return out
    n, last, shape = len(words), words[-1], opening(words)
    bucket = next((b for b in LENGTH_BUCKETS if n <= b), LENGTH_BUCKETS[-1] + 1)
    out += [f"ol={shape}|{last}", f"lenl={bucket}|{last}"]
    if n >= 2:
        out += [f"f2l={words[0]}|{words[1]}|{last}", f"ob={shape}|{words[-2]}|{last}"]
    return out


def structure_wh_features(words: list[str]) -> list[str]:
    """``structure`` and a wh-word inside the text with the end (``structure+wh``)."""
    out = structure_features(words)
    if not words:
        return out
    inside = int(any(w in WH_WORDS for w in words[1:-1]))
    out.append(f"whin={inside}|{words[-1]}")
    if len(words) >= 2:
        out.append(f"whinb={inside}|{words[-2]}|{words[-1]}")
    return out


def _hasher(named: Callable[[list[str]], list[str]]) -> Callable[[list[str], int], np.ndarray]:
    return lambda words, dims: hash_features(named(words), dims)


# name -> hashed feature indices of one normalised text; "words" is what the app runs.
FEATURE_SETS: dict[str, Callable[[list[str], int], np.ndarray]] = {
    "words": feature_indices,
    "structure": _hasher(structure_features),
    "structure+wh": _hasher(structure_wh_features),
}
PRODUCT_SET = "words"


def question_form(texts: list[list[str]]) -> np.ndarray:
    """Which texts open like a question (a wh-word or an auxiliary first): the subset the
    candidates are meant to help, reported beside the whole split's AUC."""
    return np.array([opening(words) != "other" for words in texts])
