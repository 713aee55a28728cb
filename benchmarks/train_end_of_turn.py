"""Train the text end-of-turn model (voice/turns/end_of_turn_text.npz) on real two-person chat.

``python -m benchmarks.train_end_of_turn [--lm-texts N]``

The data, its split by conversation and the hashed features: :mod:`benchmarks.end_of_turn_data`
(training, tuning, held-out; every choice is made on tuning, held-out is only reported).
Approaches, all scored as AUC complete vs cut:

* the old word-list rule (``voice.turns.policy.text_sounds_complete``, the text given a full stop
  as Whisper writes one): the baseline;
* hashed word/character n-gram logistic regression (:mod:`benchmarks.end_of_turn_fit`), with the
  product's feature set and the candidates of :mod:`benchmarks.end_of_turn_features` (structure
  conjunctions), each at every regularisation; the feature set and the regularisation are chosen
  on tuning;
* SmolLM2-135M zero-shot (P(``<|im_end|>``), the app's scorer) on N complete and N cut texts of
  tuning and held-out, and the app's text model: the two mixed, the mix fitted on those tuning
  texts (:mod:`benchmarks.end_of_turn_mix`).  The thresholds are the mix's, set on the same
  tuning texts; the n-gram model's own are reported beside them.

Writes the weights, ``voice/turns/end_of_turn_text.json`` (dataset version and sha256, the command,
the metrics, the thresholds, the artefact's sha256 and fixed predictions that
tests/test_end_of_turn_model.py checks) and docs/measurements/end_of_turn_model.md
(:mod:`benchmarks.end_of_turn_report`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import command_line, load_average, machine_info, progress, write_json_file
from benchmarks.end_of_turn_data import DATASET, DIMS, SEED, Encoded, Split, load_splits
from benchmarks.end_of_turn_features import FEATURE_SETS, PRODUCT_SET, question_form
from benchmarks.end_of_turn_fit import auc, rates, save_weights, sigmoid, threshold_curve, train, word_rule_scores
from benchmarks.end_of_turn_mix import fit_language_model_mix
from benchmarks.end_of_turn_report import render_markdown
from benchmarks.machine_probe import run_probe
from benchmarks.report import publish
from voice.turns.end_of_turn_text import MODEL_PATH, TextEndOfTurn

REPORT = "end_of_turn_model"
# The thresholds' rule, applied on the tuning split: a cut reads "complete" (ends the turn at the
# minimum silence) at most this often; a complete turn reads "unfinished" (held to the maximum
# wait) at most this often.
FALSE_COMPLETE_RATE = 0.05
FALSE_UNFINISHED_RATE = 0.05
L2_GRID = (1e-6, 1e-5, 3e-5, 1e-4)
# A candidate feature set replaces the product's only if its tuning AUC is higher by more than
# this (declared before the comparison was run): more features cost more per call and more file,
# and 0.002 is about the spread between regularisations of one set.
FEATURE_SET_MARGIN = 0.002
# Reported (never tuned on): the named failure cases.  True: reads complete.
NAMED_CASES = {
    "where are you from": True,
    "what are you looking for": True,
    "what are you talking about": True,
    "do you know what time it is": True,
    "what is the weather like today": True,
    "what is the capital of": False,
    "i'd like to book a table": False,
    "my favourite colour is": False,
}
METRICS_PATH = MODEL_PATH.with_suffix(".json")


def thresholds(p: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The rule's thresholds on tuning probabilities ``p``: "complete" at or above the first, a cut
    reading complete at most :data:`FALSE_COMPLETE_RATE` of the time; "unfinished" below the
    second, a complete turn reading unfinished at most :data:`FALSE_UNFINISHED_RATE` of the time."""
    complete_at = float(np.quantile(p[labels == 0], 1 - FALSE_COMPLETE_RATE))
    unfinished_below = float(np.quantile(p[labels == 1], FALSE_UNFINISHED_RATE))
    return round(complete_at, 3), round(unfinished_below, 3)


def cost_per_call(path: Path, texts: Sequence[str]) -> dict[str, float]:
    """One runtime call's cost, the model loaded as the app loads it (SmolLM2 included): the
    median wall ms, the 99th percentile, and the process CPU ms per call (``time.process_time``)."""
    model = TextEndOfTurn(path)
    calls = list(texts) * 10
    cpu_started = time.process_time()
    times = [model.verdict(t).compute_ms for t in calls]
    cpu_ms = (time.process_time() - cpu_started) * 1000 / len(calls)
    return {
        "calls": len(calls),
        "wall_ms_median": round(float(np.median(times)), 3),
        "wall_ms_p99": round(float(np.percentile(times, 99)), 3),
        "cpu_ms_per_call": round(cpu_ms, 3),
    }


def fit_feature_set(name: str, splits: dict[str, Split]) -> dict:
    """One feature set at every regularisation: the tuning AUCs, the best fit, its held-out AUC and
    its AUC on question-form texts."""
    hasher = FEATURE_SETS[name]
    encoded = {split: Encoded.of(data, hasher) for split, data in splits.items()}
    tried: dict[str, float] = {}
    best: tuple[float, np.ndarray, float, float] | None = None
    for l2 in L2_GRID:
        weights, bias = train(encoded["train"], l2, np.random.default_rng(SEED))
        tuning_auc = auc(encoded["tuning"].scores(weights, bias), encoded["tuning"].labels)
        tried[f"{l2:g}"] = round(tuning_auc, 4)
        progress(f"{name}, l2={l2:g}: tuning AUC {tuning_auc:.4f}")
        if best is None or tuning_auc > best[0]:
            best = (tuning_auc, weights, bias, l2)
    assert best is not None
    tuning_auc, weights, bias, l2 = best
    logits = {split: encoded[split].scores(weights, bias) for split in ("tuning", "held_out")}
    row = {"l2_tried_tuning_auc": tried, "l2": l2, "tuning_auc": round(tuning_auc, 4)}
    row["held_out_auc"] = round(auc(logits["held_out"], splits["held_out"].labels), 4)
    for split in ("tuning", "held_out"):
        q = question_form(splits[split].texts)
        row[f"{split}_auc_question_form"] = round(auc(logits[split][q], splits[split].labels[q]), 4)
    return {"row": row, "weights": weights, "bias": bias, "logits": logits}


def choose_feature_set(fits: dict[str, dict], splits: dict[str, Split]) -> dict:
    """The feature sets' comparison, and the choice on tuning (see :data:`FEATURE_SET_MARGIN`)."""
    product = fits[PRODUCT_SET]["row"]["tuning_auc"]
    best = max(fits, key=lambda n: fits[n]["row"]["tuning_auc"])
    gain = fits[best]["row"]["tuning_auc"] - product
    chosen = best if gain > FEATURE_SET_MARGIN else PRODUCT_SET
    if chosen != PRODUCT_SET:
        verdict = f"`{chosen}` beats the app's by {gain:.4f}: move it into voice/turns/end_of_turn_text.py to ship it."
    else:
        verdict = (
            f"No candidate beats the app's set by more than {FEATURE_SET_MARGIN} (best: `{best}`, {gain:+.4f}); "
            "the app keeps its features and the file is trained on them."
        )
    return {
        "rule": f"a candidate replaces the app's set only with a tuning AUC higher by more than {FEATURE_SET_MARGIN}",
        "question_form_share": float(question_form(splits["tuning"].texts).mean()),
        "sets": {name: fit["row"] for name, fit in fits.items()},
        "chosen": chosen,
        "l2_chosen": fits[PRODUCT_SET]["row"]["l2"],
        "verdict": verdict,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lm-texts",
        type=int,
        default=1000,
        help="complete and cut texts each, of tuning and of held-out, that SmolLM2 reads (default %(default)s)",
    )
    parser.add_argument("--no-probe", action="store_true", help="skip the machine probe (Whisper, Piper, LLM timings)")
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="where the weights go")
    args = parser.parse_args(argv)
    if args.lm_texts < 10:
        parser.error("--lm-texts must be at least 10")
    load_start = load_average()
    started = time.perf_counter()
    splits, data_info = load_splits()
    progress(f"examples: {data_info['examples']}")
    fits = {name: fit_feature_set(name, splits) for name in FEATURE_SETS}
    feature_sets = choose_feature_set(fits, splits)
    # The file holds the app's feature set (the only one voice.turns.end_of_turn_text reads).
    fit = fits[PRODUCT_SET]
    weights, bias, logits = fit["weights"], fit["bias"], fit["logits"]
    mixed = fit_language_model_mix(splits, logits, args.lm_texts)
    tuning_p, tuning_labels = mixed.pop("tuning_p"), mixed.pop("tuning_labels")
    held_p, held_labels = mixed.pop("held_out_p"), mixed.pop("held_out_labels")
    complete_at, unfinished_below = thresholds(tuning_p, tuning_labels)
    ngram_tuning_p, ngram_held_p = sigmoid(logits["tuning"]), sigmoid(logits["held_out"])
    ngram_at, ngram_below = thresholds(ngram_tuning_p, splits["tuning"].labels)
    meta = {
        "dims": DIMS,
        "features": "voice.turns.end_of_turn_text.features v1",
        "dataset": f"{DATASET} {data_info['version']}",
        "mix": mixed["mix"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(args.out, weights=weights, bias=np.float64(bias), meta=np.str_(json.dumps(meta)))
    model = TextEndOfTurn(args.out)
    approaches = {
        "word-list rule (old default)": {
            split: round(auc(word_rule_scores(splits[split]), splits[split].labels), 4)
            for split in ("tuning", "held_out")
        },
        "hashed n-gram logistic regression": {
            "tuning": fit["row"]["tuning_auc"],
            "held_out": fit["row"]["held_out_auc"],
        },
    }
    command = command_line("python -m benchmarks.train_end_of_turn", sys.argv[1:] if argv is None else argv)
    rule = (
        f"on tuning: cuts reading complete <= {FALSE_COMPLETE_RATE:.0%}, "
        f"complete turns reading unfinished <= {FALSE_UNFINISHED_RATE:.0%}"
    )
    record = {
        "command": command,
        "dataset": data_info,
        "seed": SEED,
        "model": {"path": display_path(args.out), "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(), **meta},
        "l2_tried_tuning_auc": fit["row"]["l2_tried_tuning_auc"],
        "l2_chosen": fit["row"]["l2"],
        "feature_sets": feature_sets,
        "auc": approaches,
        "language_model_mix": mixed,
        "thresholds": {"complete_at": complete_at, "unfinished_below": unfinished_below, "rule": rule},
        "rates_held_out": rates(held_p, held_labels, complete_at, unfinished_below),
        "complete_threshold_curve": threshold_curve(tuning_p, tuning_labels, held_p, held_labels),
        "rates_tuning": rates(tuning_p, tuning_labels, complete_at, unfinished_below),
        "ngram_alone": {
            "thresholds": {"complete_at": ngram_at, "unfinished_below": ngram_below},
            "rates_held_out": rates(ngram_held_p, splits["held_out"].labels, ngram_at, ngram_below),
        },
        "named_cases": {
            t: {
                "expected_complete": e,
                "probability": round(model.probability(t), 4),
                "ngram_probability": round(model.ngram_probability(t), 4),
            }
            for t, e in NAMED_CASES.items()
        },
        "fixed_predictions": {t: model.probability(t) for t in (*NAMED_CASES, "yes", "and then we", "")},
        "cost_per_call": cost_per_call(args.out, list(NAMED_CASES)),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    probe = None if args.no_probe else run_probe()
    info = machine_info(load_start, packages=(DATASET, "numpy", "llama-cpp-python"), probe=probe)
    record["machine"] = {
        "cpu": info.cpu_model,
        "cores": info.cpu_count,
        "load_start": info.load_start,
        "load_end": info.load_end,
        "date": info.date,
        "probe": None if probe is None else probe.describe(),
    }
    outputs = [(METRICS_PATH, lambda p: write_json_file(record, p))]
    publish(REPORT, render_markdown(record), command, info, outputs=outputs)
    return 0


def display_path(path: Path) -> str:
    """``path`` relative to the working directory (the repository) where it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
