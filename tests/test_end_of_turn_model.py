"""voice.turns.end_of_turn_text: the committed weights are the ones benchmarks/train_end_of_turn.py says
it trained (voice/turns/end_of_turn_text.json), and they read the way it recorded; SmolLM2, which
the text model mixes in (voice/turns/end_of_turn_lm.py), is the real bundled model.

No retraining here (it takes minutes): the training script writes the file's sha256, its shape,
the mix, the thresholds it chose and a few predictions next to it; this checks the committed file
against that record and the app's defaults against the thresholds.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from voice.settings import Settings
from voice.turns.end_of_turn_lm import LM_WORDS, LanguageModelEndOfTurn, LanguageModelUnavailable, load_language_model
from voice.turns.end_of_turn_text import (
    MODEL_PATH,
    EndOfTurnModelError,
    TextEndOfTurn,
    TextMix,
    feature_indices,
    features,
    load_text_end_of_turn,
    normalise,
)
from voice.turns.policy import TurnPolicy

RECORD = json.loads(MODEL_PATH.with_suffix(".json").read_text(encoding="utf-8"))


def test_the_committed_file_is_the_one_the_script_recorded() -> None:
    assert hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest() == RECORD["model"]["sha256"]
    model = load_text_end_of_turn()
    assert model.weights.shape == (RECORD["model"]["dims"],)
    assert model.meta["dataset"] == f"{RECORD['dataset']['package']} {RECORD['dataset']['version']}"
    assert model.mix == TextMix(**RECORD["model"]["mix"]) == TextMix(**RECORD["language_model_mix"]["mix"])
    assert MODEL_PATH.stat().st_size < 5_000_000, "a few MB at most"


def test_it_predicts_what_the_script_recorded() -> None:
    model = load_text_end_of_turn()
    for text, probability in RECORD["fixed_predictions"].items():
        # SmolLM2's logits in llama.cpp may differ in the last bits between CPUs' SIMD paths.
        assert model.probability(text) == pytest.approx(probability, abs=2e-3), text
    for text, case in RECORD["named_cases"].items():
        ngram = model.ngram_log_odds(normalise(text))
        assert 1 / (1 + np.exp(-ngram)) == pytest.approx(case["ngram_probability"], abs=1e-4), text


def test_the_mix_uses_both_models() -> None:
    """Each model's log-odds moves the verdict the way it should: the mix is no copy of either."""
    mix = load_text_end_of_turn().mix
    assert mix is not None and mix.ngram > 0 and mix.language_model > 0
    assert mix.combine(1.0, -5.0) > mix.combine(0.0, -5.0) and mix.combine(0.0, -4.0) > mix.combine(0.0, -5.0)


def test_smollm2_hears_a_question_end() -> None:
    lm = load_language_model()
    cut, whole = normalise("What is the capital of"), normalise("What is the capital of France?")
    assert lm.log_odds(cut) < lm.log_odds(whole) - 5, "P(end of message) rises by orders of magnitude"
    # The cached prompt is kept between calls: a call reads the same after any other, and as a
    # model that never ran before.
    first = lm.log_odds(whole)
    lm.log_odds(normalise("and then we went to the beach and"))
    assert lm.log_odds(whole) == pytest.approx(first, abs=1e-6)
    assert LanguageModelEndOfTurn().log_odds(whole) == pytest.approx(first, abs=1e-3)
    with pytest.raises(ValueError, match="at least one word"):
        lm.log_odds([])


def test_only_the_last_words_are_read() -> None:
    lm = load_language_model()
    ending = normalise("could you tell me where the nearest pharmacy is")
    opening = normalise("so yesterday my sister and i were talking for a long while about everything")
    assert len(opening + ending) > LM_WORDS
    assert lm.log_odds(opening + ending) == pytest.approx(lm.log_odds((opening + ending)[-LM_WORDS:]), abs=1e-6)


def test_an_empty_transcript_is_the_n_gram_models_alone() -> None:
    model = load_text_end_of_turn()
    assert model.probability("") == pytest.approx(1 / (1 + np.exp(-model.ngram_log_odds([]))))


def test_the_default_thresholds_are_the_ones_chosen_on_the_tuning_conversations() -> None:
    chosen = RECORD["thresholds"]
    assert (TurnPolicy.text_complete_at, TurnPolicy.text_unfinished_below) == (
        chosen["complete_at"],
        chosen["unfinished_below"],
    )
    settings = Settings()
    assert settings.turn_policy.text_complete_at == chosen["complete_at"]
    assert settings.turn_policy.text_unfinished_below == chosen["unfinished_below"]


def test_it_separates_complete_turns_from_cut_ones_on_held_out_conversations() -> None:
    """The recorded held-out AUC, and the old word-list rule it replaces well below it."""
    auc = RECORD["auc"]
    assert auc["hashed n-gram logistic regression"]["held_out"] > 0.8
    assert auc["hashed n-gram logistic regression"]["held_out"] > auc["word-list rule (old default)"]["held_out"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("What is the capital of.", ["what", "is", "the", "capital", "of"]),  # Whisper's full stop says nothing
        ("I'd like to book a table", ["id", "like", "to", "book", "a", "table"]),
        ("Where are you from?!", ["where", "are", "you", "from"]),
        ("  ", []),
    ],
)
def test_text_is_normalised_as_in_training(text: str, words: list[str]) -> None:
    assert normalise(text) == words


def test_punctuation_and_case_do_not_change_the_verdict() -> None:
    model = load_text_end_of_turn()
    assert model.probability("What is the capital of.") == model.probability("what is the capital of")


def test_the_features_lean_on_the_end() -> None:
    names = features(normalise("could you tell me the time"))
    assert {"l1=time", "l2=the", "l3=me", "b=the|time", "t=me|the|time", "first=could", "fl=could|time"} <= set(names)
    indices = feature_indices(normalise("could you tell me the time"), 1 << 18)
    assert indices.min() >= 0 and indices.max() < 1 << 18


def test_a_verdict_carries_its_compute_time() -> None:
    started = time.perf_counter()
    verdict = load_text_end_of_turn().verdict("where are you from")
    assert 0 < verdict.compute_ms <= (time.perf_counter() - started) * 1000
    assert 0 <= verdict.probability <= 1


def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EndOfTurnModelError, match="train_end_of_turn"):
        TextEndOfTurn(tmp_path / "missing.npz")
    with pytest.raises(LanguageModelUnavailable, match="cannot load SmolLM2"):
        LanguageModelEndOfTurn(tmp_path / "missing.gguf")

    def unavailable() -> LanguageModelEndOfTurn:
        raise LanguageModelUnavailable("cannot load SmolLM2 for the text end-of-turn model: gone")

    with pytest.raises(EndOfTurnModelError, match="cannot load SmolLM2"):
        TextEndOfTurn(MODEL_PATH, language_model=unavailable)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(8, dtype=np.float32), bias=np.float64(0), meta=np.str_('{"dims": 16}'))
    with pytest.raises(EndOfTurnModelError, match="do not match"):
        TextEndOfTurn(foreign)
    odd_mix = tmp_path / "odd_mix.npz"
    meta = '{"dims": 8, "mix": {"ngram": 1.0, "smollm": 1.0, "bias": 0.0}}'
    np.savez(odd_mix, weights=np.zeros(8, dtype=np.float32), bias=np.float64(0), meta=np.str_(meta))
    with pytest.raises(EndOfTurnModelError, match="not the format"):
        TextEndOfTurn(odd_mix)


def test_the_candidate_feature_sets_add_structure_to_the_apps() -> None:
    """The training script compares the app's features with ones that add sentence structure
    (benchmarks/end_of_turn_features.py): every candidate keeps the app's features and adds the
    opening (wh-word, auxiliary) with the end."""
    from benchmarks.end_of_turn_features import FEATURE_SETS, PRODUCT_SET, question_form, structure_wh_features

    words = normalise("could you tell me where the station is")
    names = set(structure_wh_features(words))
    assert set(features(words)) < names
    assert {"ol=aux|is", "f2l=could|you|is", "whin=1|is", "whinb=1|station|is"} <= names
    assert FEATURE_SETS[PRODUCT_SET] is feature_indices, "the app's set is the one the app runs"
    assert list(question_form([normalise("why is the sky blue"), normalise("i like it")])) == [True, False]
