"""The text end-of-turn model's data: real two-person chat, split by conversation, and its hashed features.

Data: the ``chitchat-dataset`` package's ``dataset.json`` (real chat between two people).  A turn
is one sender's consecutive messages, joined.  Positives: each whole turn.  Negatives: the same
turns cut at a random word boundary that is neither after ``.?!`` (a sentence may end there) nor
at a message's end (the sender may have meant it as finished).  Text is normalised as at run time
(lowercase, punctuation stripped), so punctuation tells nothing.

The conversations are split once, by a fixed seed: training, tuning (every choice, from the
feature set and the regularisation to the thresholds, is made on it) and held-out (only reported).
Used by :mod:`benchmarks.train_end_of_turn`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voice.turns.end_of_turn_text import normalise

DATASET = "chitchat-dataset"
DIMS = 1 << 18  # hashed feature space: 1 MB of float32 weights
SEED = 22
HELD_OUT, TUNING = 0.2, 0.1  # fractions of the conversations
# One normalised text -> its hashed feature indices (voice.turns.end_of_turn_text.feature_indices,
# or a candidate feature set of benchmarks.end_of_turn_features).
Hasher = Callable[[list[str], int], np.ndarray]


@dataclass
class Split:
    """Texts (normalised words) and labels (1: complete turn, 0: a cut of one)."""

    texts: list[list[str]]
    labels: np.ndarray


def dataset_file() -> tuple[Path, str, str]:
    """The installed dataset.json, the package version and the file's sha256."""
    spec = importlib.util.find_spec("chitchat_dataset")
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {DATASET} is not installed: pip install -r benchmarks/requirements.txt")
    path = Path(spec.origin).with_name("dataset.json")
    return path, importlib.metadata.version(DATASET), hashlib.sha256(path.read_bytes()).hexdigest()


def conversation_examples(conversation: dict, rng: np.random.Generator) -> tuple[list[list[str]], list[int]]:
    """Each turn whole (1) and cut once at an allowed word boundary (0)."""
    texts: list[list[str]] = []
    labels: list[int] = []
    for turn in conversation["messages"]:
        tokens: list[str] = []
        allowed: list[int] = []  # cut after tokens[:k]
        for message in turn:
            words = str(message.get("text", "")).split()
            for i, token in enumerate(words):
                tokens.append(token)
                if i < len(words) - 1 and not token.endswith((".", "?", "!")):
                    allowed.append(len(tokens))
        whole = normalise(" ".join(tokens))
        if not whole:
            continue
        texts.append(whole)
        labels.append(1)
        rng.shuffle(allowed)
        for k in allowed:
            cut = normalise(" ".join(tokens[:k]))
            if cut and cut != whole:
                texts.append(cut)
                labels.append(0)
                break
    return texts, labels


def load_splits() -> tuple[dict[str, Split], dict[str, Any]]:
    """The training, tuning and held-out splits, by conversation, and the dataset's provenance."""
    path, version, sha = dataset_file()
    conversations = json.loads(path.read_text(encoding="utf-8"))
    rng = np.random.default_rng(SEED)
    ids = sorted(conversations)
    order = rng.permutation(len(ids))
    n_held, n_tune = int(len(ids) * HELD_OUT), int(len(ids) * TUNING)
    parts = {"held_out": order[:n_held], "tuning": order[n_held : n_held + n_tune], "train": order[n_held + n_tune :]}
    splits = {}
    for name, indices in parts.items():
        texts: list[list[str]] = []
        labels: list[int] = []
        for i in sorted(indices):
            t, y = conversation_examples(conversations[ids[i]], rng)
            texts += t
            labels += y
        splits[name] = Split(texts, np.asarray(labels, dtype=np.float32))
    info = {
        "package": DATASET,
        "version": version,
        "dataset_json_sha256": sha,
        "conversations": {name: len(indices) for name, indices in parts.items()},
        "examples": {
            name: {"complete": int(s.labels.sum()), "cut": int((1 - s.labels).sum())} for name, s in splits.items()
        },
    }
    return splits, info


@dataclass
class Encoded:
    """A split's hashed features, flattened: example i owns ``indices[starts[i]:starts[i+1]]``."""

    indices: np.ndarray
    starts: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, split: Split, hasher: Hasher) -> Encoded:
        """``split`` hashed by ``hasher`` into :data:`DIMS` features."""
        rows = [hasher(words, DIMS) for words in split.texts]
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=starts[1:])
        return cls(np.concatenate(rows), starts, split.labels)

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature indices of ``rows`` and each index's row within the batch."""
        lengths = self.starts[rows + 1] - self.starts[rows]
        owner = np.repeat(np.arange(len(rows)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return self.indices[np.repeat(self.starts[rows], lengths) + offsets], owner

    def scores(self, weights: np.ndarray, bias: float) -> np.ndarray:
        """The logit of every example."""
        return np.add.reduceat(weights[self.indices], self.starts[:-1]) + bias
