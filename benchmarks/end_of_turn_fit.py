"""Fitting and scoring the text end-of-turn model: logistic regression in numpy, AUC, thresholds.

Used by :mod:`benchmarks.train_end_of_turn`; the data and features are
:mod:`benchmarks.end_of_turn_data`'s.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from benchmarks.end_of_turn_data import DIMS, Encoded, Split
from voice.turns.policy import text_sounds_complete

EPOCHS = 4
BATCH = 256
CURVE_RATES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def train(data: Encoded, l2: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Logistic regression by mini-batch Adam (numpy): the weights and the bias."""
    w = np.zeros(DIMS + 1)  # the last one is the bias
    m, v = np.zeros_like(w), np.zeros_like(w)
    step, rate, beta1, beta2 = 0, 0.01, 0.9, 0.999
    n = len(data.labels)
    for _ in range(EPOCHS):
        order = rng.permutation(n)
        for start in range(0, n, BATCH):
            rows = order[start : start + BATCH]
            idx, owner = data.batch(rows)
            logits = np.bincount(owner, weights=w[idx], minlength=len(rows)) + w[-1]
            error = (sigmoid(logits) - data.labels[rows]) / len(rows)
            grad = np.zeros_like(w)
            grad[:DIMS] = np.bincount(idx, weights=error[owner], minlength=DIMS) + l2 * w[:DIMS]
            grad[-1] = error.sum()
            step += 1
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            w -= rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    return w[:DIMS].astype(np.float32), float(w[-1])


def save_weights(path: Path, **arrays: object) -> None:
    """``np.savez_compressed``, byte for byte reproducible: fixed member dates, so the same
    training gives the same file and the same sha256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, "w") as out:
                np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a complete turn outscores a cut (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)  # average rank of ties, 1-based
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def word_rule_scores(split: Split) -> np.ndarray:
    """The old word-list rule as a 0/1 score (the text given the full stop Whisper writes)."""
    return np.array([float(text_sounds_complete(" ".join(words) + ".")) for words in split.texts])


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function (tanh form: no overflow for large logits)."""
    return 0.5 * (1 + np.tanh(x / 2))


def rates(probabilities: np.ndarray, labels: np.ndarray, complete_at: float, unfinished_below: float) -> dict:
    """How the thresholds sort complete turns and cuts: fast end, the band, held to the maximum wait."""
    out = {}
    for name, mask in (("complete", labels == 1), ("cut", labels == 0)):
        p = probabilities[mask]
        out[name] = {
            "reads_complete": round(float((p >= complete_at).mean()), 4),
            "band": round(float(((p >= unfinished_below) & (p < complete_at)).mean()), 4),
            "reads_unfinished": round(float((p < unfinished_below).mean()), 4),
        }
    return out


def threshold_curve(tuning_p: np.ndarray, tuning_y: np.ndarray, held_p: np.ndarray, held_y: np.ndarray) -> list:
    """Other "complete" thresholds, each set on tuning for a rate of cuts reading complete, with
    the held-out rates it gives: the trade-off the benchmark on voices may choose another point of."""
    out = []
    for rate in CURVE_RATES:
        at = float(np.quantile(tuning_p[tuning_y == 0], 1 - rate))
        out.append(
            {
                "cuts_reading_complete_on_tuning": rate,
                "complete_at": round(at, 3),
                "held_out_complete_reading_complete": round(float((held_p[held_y == 1] >= at).mean()), 4),
                "held_out_cuts_reading_complete": round(float((held_p[held_y == 0] >= at).mean()), 4),
            }
        )
    return out
