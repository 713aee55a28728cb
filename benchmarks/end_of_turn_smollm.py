"""SmolLM2-135M zero-shot as a text end-of-turn model, measured beside ours (``train_end_of_turn --smollm N``).

P(``<|im_end|>``) right after ``<|im_start|>user\\n{text}``, on N complete and N cut texts of the
tuning and held-out splits, and the n-gram model + SmolLM2 logits mixed with a weight chosen on
tuning.  Measurement only: the app never runs this (a call costs hundreds of ms).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from benchmarks.common import progress
from benchmarks.end_of_turn_data import SEED, Split
from benchmarks.end_of_turn_fit import auc

SMOLLM_TOKENS = 128  # SmolLM2 reads the end of a long turn only (its cost grows with the length)


def smollm_scorer() -> Callable[[list[str]], float]:
    """SmolLM2-135M zero-shot: the log-odds of ``<|im_end|>`` right after the user's text."""
    from llama_cpp import Llama  # measurement only: the app never runs this

    from llm import bundled_model_path

    model = Llama(str(bundled_model_path()), n_ctx=512, logits_all=True, n_threads=1, verbose=False)
    end = model.tokenize(b"<|im_end|>", add_bos=False, special=True)[0]

    def score(words: list[str]) -> float:
        tokens = model.tokenize(f"<|im_start|>user\n{' '.join(words)}".encode(), add_bos=False, special=True)
        model.reset()
        model.eval(tokens[-SMOLLM_TOKENS:])
        logits = np.asarray(model.scores[model.n_tokens - 1], dtype=np.float64)
        top = logits.max()
        log_p = logits[end] - top - np.log(np.exp(logits - top).sum())
        return float(log_p - np.log1p(-min(np.exp(log_p), 1 - 1e-9)))

    return score


def balanced_sample(split: Split, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` complete and ``n`` cut examples of ``split`` (their row numbers)."""
    pos, neg = np.flatnonzero(split.labels == 1), np.flatnonzero(split.labels == 0)
    return np.concatenate(
        [rng.choice(pos, min(n, len(pos)), replace=False), rng.choice(neg, min(n, len(neg)), replace=False)]
    )


def measure_smollm(splits: dict[str, Split], logits: dict[str, np.ndarray], n: int) -> dict:
    """SmolLM2 zero-shot and the mix with the n-gram model, on ``n`` + ``n`` texts of tuning and held-out."""
    rng = np.random.default_rng(SEED + 1)
    score = smollm_scorer()
    out: dict[str, object] = {"texts_per_class": n}
    sampled = {}
    for name in ("tuning", "held_out"):
        rows = balanced_sample(splits[name], n, rng)
        started = time.perf_counter()
        lm = np.array([score(splits[name].texts[i]) for i in rows])
        out[f"{name}_ms_per_call"] = round((time.perf_counter() - started) * 1000 / len(rows), 1)
        sampled[name] = (rows, lm)
        progress(f"SmolLM2 on {len(rows)} {name} texts: {out[f'{name}_ms_per_call']} ms a call")
    mixes = np.linspace(0, 1, 11)

    def mix_auc(name: str, a: float) -> float:
        rows, lm = sampled[name]
        ngram = logits[name][rows]
        return auc(a * ngram / ngram.std() + (1 - a) * lm / lm.std(), splits[name].labels[rows])

    best = max(mixes, key=lambda a: mix_auc("tuning", a))
    out["ngram_weight_chosen_on_tuning"] = round(float(best), 2)
    for name in ("tuning", "held_out"):
        rows, lm = sampled[name]
        out[f"{name}_auc_smollm"] = round(auc(lm, splits[name].labels[rows]), 4)
        out[f"{name}_auc_ngram_same_texts"] = round(auc(logits[name][rows], splits[name].labels[rows]), 4)
        out[f"{name}_auc_mix"] = round(mix_auc(name, best), 4)
    return out
