"""The text model's language-model half: SmolLM2 on the tuning conversations, the mix fitted there.

The app's scorer (:class:`voice.turns.end_of_turn_lm.LanguageModelEndOfTurn`, the last words of a
turn) reads ``n`` complete and ``n`` cut texts of the tuning split and of the held-out split.  On
tuning, the mix (a weight on each model's log-odds and a bias) is fitted by logistic regression;
the thresholds are then set on the same tuning texts.  Held-out texts are only scored.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from benchmarks.common import progress
from benchmarks.end_of_turn_data import SEED, Split
from benchmarks.end_of_turn_fit import auc, sigmoid
from voice.turns.end_of_turn_lm import load_language_model
from voice.turns.end_of_turn_text import TextMix

L2 = 1e-3  # three parameters on thousands of texts: barely any shrinkage, only a well-posed fit


def balanced_sample(split: Split, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` complete and ``n`` cut examples of ``split`` (their row numbers)."""
    pos, neg = np.flatnonzero(split.labels == 1), np.flatnonzero(split.labels == 0)
    return np.concatenate(
        [rng.choice(pos, min(n, len(pos)), replace=False), rng.choice(neg, min(n, len(neg)), replace=False)]
    )


def fit_mix(ngram: np.ndarray, lm: np.ndarray, labels: np.ndarray) -> TextMix:
    """Logistic regression of ``labels`` on the two log-odds (Newton's method: three parameters)."""
    x = np.column_stack([ngram, lm, np.ones(len(labels))])
    w = np.zeros(3)
    for _ in range(50):
        p = sigmoid(x @ w)
        gradient = x.T @ (p - labels) + L2 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + L2 * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return TextMix(ngram=round(float(w[0]), 6), language_model=round(float(w[1]), 6), bias=round(float(w[2]), 6))


def fit_language_model_mix(splits: dict[str, Split], logits: dict[str, np.ndarray], n: int) -> dict:
    """SmolLM2 on ``n`` + ``n`` texts of tuning and of held-out; the mix fitted on tuning.

    Returns the mix, each sample's labels and mixed probabilities (``tuning_p``, ``held_out_p``:
    the thresholds are set and reported on them), the AUCs of each model and the mix on the same
    texts, and SmolLM2's wall time a call.
    """
    rng = np.random.default_rng(SEED + 1)
    lm_model = load_language_model()  # the one the trained model's mix then uses
    scored = {}
    out: dict = {"texts_per_class": n}
    for name in ("tuning", "held_out"):
        rows = balanced_sample(splits[name], n, rng)
        started = time.perf_counter()
        lm = np.array([lm_model.log_odds(splits[name].texts[i]) for i in rows])
        out[f"{name}_lm_ms_per_call"] = round((time.perf_counter() - started) * 1000 / len(rows), 1)
        progress(f"SmolLM2 on {len(rows)} {name} texts: {out[f'{name}_lm_ms_per_call']} ms a call")
        scored[name] = (logits[name][rows], lm, splits[name].labels[rows])
    mix = fit_mix(*scored["tuning"])
    out["mix"] = asdict(mix)
    for name, (ngram, lm, labels) in scored.items():
        mixed = np.array([mix.combine(a, b) for a, b in zip(ngram, lm, strict=True)])
        out[f"{name}_auc_ngram"] = round(auc(ngram, labels), 4)
        out[f"{name}_auc_lm"] = round(auc(lm, labels), 4)
        out[f"{name}_auc_mix"] = round(auc(mixed, labels), 4)
        out[f"{name}_p"], out[f"{name}_labels"] = sigmoid(mixed), labels
    return out
