"""voice.turns.policy: which evidence ends a turn, and when (pure: no audio, no models)."""

from __future__ import annotations

import pytest

from voice.turns.policy import TurnPolicy, decide, text_sounds_complete

POLICY = TurnPolicy(detector="combined", min_silence_ms=250, silence_ms=500, hold_ms=1200, max_wait_ms=2500)


TEXT_MODEL = TurnPolicy(detector="text_model", min_silence_ms=250, hold_ms=1200, max_wait_ms=2500)
TEXT_AND_AUDIO = TurnPolicy(detector="text_model+audio", min_silence_ms=250, hold_ms=1200, max_wait_ms=2500)
COMPLETE, UNSURE, UNFINISHED = 0.97, (TurnPolicy.text_complete_at + TurnPolicy.text_unfinished_below) / 2, 0.05


def first_end(
    policy: TurnPolicy, text: bool | None, probability: float | None, text_probability: float | None = None
) -> tuple[int, str] | None:
    """Walk the silence up in 32 ms frames with fixed evidence: (ms, signal) of the first end."""
    for ms in range(0, 6000, 32):
        signal = decide(policy, ms, text, probability, text_probability)
        if signal is not None:
            return ms, signal
    return None


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("What is the capital of France?", True),
        ("Tell me a joke.", True),
        ("What is the capital of.", False),  # Whisper puts a full stop after fragments too
        ("What is the capital of, um.", False),
        ("I want to", False),
        ("and", False),
        ("", False),
        ("So, um,", False),
        ("I need a...", False),  # Whisper heard the voice trail off
        ("Could you...", False),
        ("Remind me to call my s-", False),  # stopped inside a word
        ("Can you tell me how to get to the train station?", True),
    ],
)
def test_text_reads_complete_only_without_a_dangling_word(text: str, complete: bool) -> None:
    assert text_sounds_complete(text) is complete


def test_both_signals_complete_end_at_the_minimum_silence() -> None:
    assert first_end(POLICY, True, 0.9) == (256, "audio+text")


@pytest.mark.parametrize(("text", "probability"), [(False, 0.97), (True, 0.1)])
def test_one_signal_incomplete_waits_for_the_hold(text: bool | None, probability: float | None) -> None:
    ms, signal = first_end(POLICY, text, probability) or (None, None)
    assert signal == "hold" and POLICY.hold_ms <= ms < POLICY.hold_ms + 32


@pytest.mark.parametrize(
    ("text", "probability"),
    [(False, 0.2), (None, None), (None, 0.97), (True, None), (False, None), (None, 0.1)],
    ids=["both-incomplete", "nothing-known", "text-pending", "model-pending", "model-pending-2", "text-pending-2"],
)
def test_both_incomplete_or_a_signal_still_pending_waits_for_the_maximum(
    text: bool | None, probability: float | None
) -> None:
    """A signal that has not answered is unknown, not a vote for either side: a slow Whisper must
    not turn "the model hears an unfinished phrase" into a hold that cuts the speaker."""
    ms, signal = first_end(POLICY, text, probability) or (None, None)
    assert signal == "max_wait" and POLICY.max_wait_ms <= ms < POLICY.max_wait_ms + 32


@pytest.mark.parametrize(("late_text", "expected"), [(True, (1504, "hold")), (False, (2528, "max_wait"))])
def test_a_late_transcript_decides_as_if_it_had_been_there(late_text: bool, expected: tuple[int, str]) -> None:
    """The model says unfinished at once, the transcript only 1.5 s into the pause (a loaded
    machine): the turn ends on both verdicts, never on the missing one."""
    for ms in range(0, 6000, 32):
        signal = decide(POLICY, ms, late_text if ms >= 1500 else None, 0.1)
        if signal is not None:
            assert (ms, signal) == expected
            return
    pytest.fail("the turn never ended")


def test_an_unfinished_transcript_is_not_ended_early_even_when_the_audio_sounds_final() -> None:
    # The case: a robotic "What is the capital of" sounds complete to the model (0.97).
    assert decide(POLICY, 600, False, 0.97) is None
    assert decide(POLICY, 1100, False, 0.97) is None


def test_vad_only_ignores_the_evidence() -> None:
    vad = TurnPolicy(detector="vad", silence_ms=500)
    assert first_end(vad, True, 0.99) == (512, "silence")
    assert first_end(vad, False, 0.01) == (512, "silence")


def test_the_word_list_rule_is_the_previous_behaviour() -> None:
    text = TurnPolicy(detector="text", min_silence_ms=300, silence_ms=500)
    assert first_end(text, True, None) == (320, "text")
    assert first_end(text, False, None) == (512, "silence")
    assert first_end(text, True, 0.01) == (320, "text"), "the word-list rule does not read the model"


def test_audio_model_alone() -> None:
    audio = TurnPolicy(detector="audio", min_silence_ms=250, hold_ms=1200, max_wait_ms=2500)
    assert first_end(audio, False, 0.8) == (256, "audio")
    assert first_end(audio, True, 0.2) == (1216, "hold")
    assert first_end(audio, None, None) == (2528, "max_wait")


def test_the_text_model_is_the_default_detector() -> None:
    assert TurnPolicy().detector == "text_model" and TurnPolicy().uses_text_model
    assert not TurnPolicy().uses_audio_model, "Smart Turn is an option, not the default"


@pytest.mark.parametrize("probability", [None, 0.01, 0.99])
def test_a_confident_complete_text_ends_at_the_minimum_silence_whatever_the_audio(probability: float | None) -> None:
    """The issue's case: Smart Turn gives a finished question in another voice p=0.01."""
    for policy in (TEXT_MODEL, TEXT_AND_AUDIO):
        assert first_end(policy, None, probability, COMPLETE) == (256, "text_model")


@pytest.mark.parametrize("probability", [None, 0.01, 0.99])
def test_a_confident_unfinished_text_holds_to_the_maximum_wait(probability: float | None) -> None:
    """Smart Turn hears espeak's "What is the capital of" as final (0.83-0.98): still held."""
    for policy in (TEXT_MODEL, TEXT_AND_AUDIO):
        assert first_end(policy, False, probability, UNFINISHED) == (2528, "max_wait")


def test_an_unsure_text_waits_for_the_hold() -> None:
    assert first_end(TEXT_MODEL, None, None, UNSURE) == (1216, "hold")
    assert first_end(TEXT_MODEL, None, 0.99, UNSURE) == (1216, "hold"), "text_model does not read the audio model"


def test_with_the_audio_model_an_unsure_text_asks_it() -> None:
    assert first_end(TEXT_AND_AUDIO, None, 0.9, UNSURE) == (256, "text_model+audio")
    assert first_end(TEXT_AND_AUDIO, None, 0.1, UNSURE) == (1216, "hold")
    assert first_end(TEXT_AND_AUDIO, None, None, UNSURE) == (2528, "max_wait"), "a pending signal is no vote"


def test_without_a_transcript_the_text_model_waits_for_the_maximum() -> None:
    for policy in (TEXT_MODEL, TEXT_AND_AUDIO):
        assert first_end(policy, None, 0.99, None) == (2528, "max_wait")


def test_the_thresholds_move_the_verdict() -> None:
    strict = TurnPolicy(detector="text_model", min_silence_ms=250, hold_ms=1200, text_complete_at=0.99)
    assert first_end(strict, None, None, COMPLETE) == (1216, "hold")
    lenient = TurnPolicy(detector="text_model", min_silence_ms=250, hold_ms=1200, text_unfinished_below=0.0)
    assert first_end(lenient, None, None, UNFINISHED) == (1216, "hold")


@pytest.mark.parametrize(
    "bad",
    [
        {"detector": "smart"},
        {"text_complete_at": 0.5, "text_unfinished_below": 0.6},
        {"text_complete_at": 1.5},
        {"min_silence_ms": 0},
        {"hold_ms": 3000, "max_wait_ms": 2500},
        {"min_silence_ms": 800, "hold_ms": 500},
    ],
)
def test_inconsistent_waits_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TurnPolicy(**bad)  # type: ignore[arg-type]


def test_only_the_text_model_detectors_read_a_transcript_unfinished() -> None:
    policy = TurnPolicy()
    assert policy.reads_unfinished(policy.text_unfinished_below - 0.01)
    assert not policy.reads_unfinished(policy.text_unfinished_below)
    assert not policy.reads_unfinished(None)  # no verdict (the model missing): not a reason to hold back
    assert not TurnPolicy(detector="combined").reads_unfinished(0.0)
