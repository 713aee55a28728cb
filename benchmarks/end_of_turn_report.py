"""The text end-of-turn model's report (docs/measurements/end_of_turn_model.md), from the training record.

Written by :mod:`benchmarks.train_end_of_turn` through ``benchmarks.report.publish``, which heads
it with the command, the machine and its probe.
"""

from __future__ import annotations

from benchmarks.report import Table
from voice.turns.end_of_turn_lm import LM_THREADS, LM_WORDS


def render_markdown(r: dict) -> str:
    """The Markdown report of one training run's record."""
    d, t = r["dataset"], r["thresholds"]
    lines = [
        "# Text end-of-turn model: training and held-out measurement",
        "",
        f"- Trained and measured in {r['train_seconds']} s.",
        f"- Data: {d['package']} {d['version']}, dataset.json sha256 `{d['dataset_json_sha256']}`; conversations "
        f"{d['conversations']}; examples {d['examples']}.",
        f"- Artefact: `{r['model']['path']}` sha256 `{r['model']['sha256']}`, {r['model']['dims']} hashed features "
        f"({r['model']['features']}).",
        "",
        "## AUC, complete turn vs the same turn cut at a word boundary",
        "",
    ]
    table = Table(["approach", "tuning", "held-out"])
    for name, a in r["auc"].items():
        table.add(name, a["tuning"], a["held_out"])
    m = r["language_model_mix"]
    n = m["texts_per_class"]
    table.add(f"n-gram LR on {n}+{n} texts", m["tuning_auc_ngram"], m["held_out_auc_ngram"])
    table.add("SmolLM2-135M zero-shot P(<|im_end|>), same texts", m["tuning_auc_lm"], m["held_out_auc_lm"])
    mix = m["mix"]
    table.add(
        f"**the app's text model**: the two mixed ({mix['ngram']:.3f} × n-gram + {mix['language_model']:.3f} × "
        f"SmolLM2 + {mix['bias']:.3f}, fitted on the tuning texts), same texts",
        m["tuning_auc_mix"],
        m["held_out_auc_mix"],
    )
    lines.append(table.markdown())
    lines += [
        "",
        f"SmolLM2 reads the last {LM_WORDS} words of a turn ({LM_THREADS} threads): {m['held_out_lm_ms_per_call']} ms "
        "a call on the held-out texts (chat turns, often longer than a spoken question).",
    ]
    lines += _feature_sets(r["feature_sets"])
    lines += [
        "",
        f"## Thresholds: complete at p >= {t['complete_at']}, unfinished below p < {t['unfinished_below']}",
        "",
        f"Rule ({t['rule']}).  How they sort held-out texts:",
        "",
    ]
    sorts = Table(
        ["held-out", "model", "reads complete (min silence)", "band (other evidence)", "reads unfinished (max wait)"]
    )
    alone = r["ngram_alone"]
    for model, rows in (
        (f"{n}+{n} texts, the mix", r["rates_held_out"]),
        (
            f"all texts, the n-gram alone (its own thresholds: {alone['thresholds']['complete_at']} / "
            f"{alone['thresholds']['unfinished_below']})",
            alone["rates_held_out"],
        ),
    ):
        for name, row in rows.items():
            sorts.add(
                name, model, f"{row['reads_complete']:.1%}", f"{row['band']:.1%}", f"{row['reads_unfinished']:.1%}"
            )
    lines += [
        sorts.markdown(),
        "",
        "Other points of the trade-off (each threshold set on tuning; the rates are held-out's):",
        "",
    ]
    curve = Table(
        ["cuts reading complete on tuning", "complete at", "complete turns reading complete", "cuts reading complete"]
    )
    for c in r["complete_threshold_curve"]:
        curve.add(
            f"{c['cuts_reading_complete_on_tuning']:.0%}",
            c["complete_at"],
            f"{c['held_out_complete_reading_complete']:.1%}",
            f"{c['held_out_cuts_reading_complete']:.1%}",
        )
    lines += [curve.markdown(), "", "## The issue's named cases (reported, never tuned on)", ""]
    named = Table(["text", "should read", "p", "reads", "n-gram alone: p"])
    for text, case in r["named_cases"].items():
        p = case["probability"]
        reads = "complete" if p >= t["complete_at"] else "unfinished" if p < t["unfinished_below"] else "band"
        expected = "complete" if case["expected_complete"] else "unfinished"
        named.add(text, expected, f"{p:.3f}", reads, f"{case['ngram_probability']:.3f}")
    c = r["cost_per_call"]
    lines += [
        named.markdown(),
        "",
        f"## Runtime cost (the committed file and SmolLM2 as the app loads them, {c['calls']} calls on the named "
        "cases)",
        "",
        f"Wall {c['wall_ms_median']} ms median, {c['wall_ms_p99']} ms at the 99th percentile; "
        f"process CPU {c['cpu_ms_per_call']} ms a call (SmolLM2's; the n-gram part is well under a millisecond).  "
        "It runs once per pause, in the early transcript's thread right after Whisper, so it is off the event loop.",
    ]
    return "\n".join(lines) + "\n"


def _feature_sets(f: dict) -> list[str]:
    table = Table(
        [
            "feature set",
            "tuning AUC by regularisation",
            "tuning AUC",
            "held-out AUC",
            "tuning AUC, question-form texts",
            "held-out AUC, question-form texts",
        ]
    )
    for name, row in f["sets"].items():
        tried = ", ".join(f"{l2}: {a}" for l2, a in row["l2_tried_tuning_auc"].items())
        table.add(
            name,
            tried,
            row["tuning_auc"],
            row["held_out_auc"],
            row["tuning_auc_question_form"],
            row["held_out_auc_question_form"],
        )
    return [
        "",
        "## Feature sets compared (issue #22: structure conjunctions)",
        "",
        f"Each trained on the training conversations at every regularisation; {f['rule']}.  Question-form texts: "
        f"those opening with a wh-word or an auxiliary ({f['question_form_share']:.0%} of tuning texts).  "
        "Feature sets: `benchmarks/end_of_turn_features.py`.",
        "",
        table.markdown(),
        "",
        f"Chosen on tuning: **{f['chosen']}**, regularisation {f['l2_chosen']:g}.  {f['verdict']}",
    ]
