"""voice.whisper_window: Whisper tiny.en in an encoder window fitted to the clip, on speech made
at test time in the Piper voice and in an espeak-ng voice, against the usual 30 s window."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.speech import espeak, silence, synthesize
from voice.audio import SAMPLE_RATE
from voice.transcribe import Transcriber, WhisperOptions, get_model
from voice.whisper_window import FULL_WINDOW_FRAMES, MIN_WINDOW_S, decode_in_window, repeats_itself, window_frames


def words(text: str) -> list[str]:
    return [w.strip(".,?!;:'\"").lower() for w in text.split()]


def test_the_window_is_the_clip_plus_the_margin_in_whole_seconds() -> None:
    assert window_frames(6.2, 6.0) == 1300
    assert window_frames(6.0, 6.0) == 1200
    assert window_frames(0.3, 3.0) == MIN_WINDOW_S * 100  # never so short that the decoder loops
    assert window_frames(28.5, 3.0) == FULL_WINDOW_FRAMES  # never past Whisper's own 30 s
    assert all(window_frames(s / 10, 1.5) % 2 == 0 for s in range(1, 300))  # the encoder's stride needs even


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        ("What is the capital world? What is the capital world? What is the", True),
        ("How many legs, how many legs does it have", True),
        ("What is the capital of France?", False),
        ("Is it going to rain or snow?", False),
        # Speech may repeat itself too; then the 30 s decode runs after the fitted one, no worse.
        ("Is it going to rain, and is it going to snow?", True),
        ("", False),
    ],
)
def test_a_loop_is_three_words_said_twice(text: str, loops: bool) -> None:
    assert repeats_itself(text) is loops


@pytest.mark.slow
@pytest.mark.parametrize(
    "speak",
    [
        lambda text: synthesize(text).at(SAMPLE_RATE),
        lambda text: espeak(text, "en-gb+m3").at(SAMPLE_RATE),
    ],
    ids=["piper", "espeak-en-gb-m3"],
)
def test_a_fitted_window_hears_the_question(speak: Callable[[str], np.ndarray]) -> None:
    # Not word for word what the 30 s window hears (the espeak voice's "the" may come out "my" in
    # one and not the other): the speech-recognizer benchmark measures the error rates side by side.
    text = "Could you tell me where the station is?"
    audio = np.concatenate([silence(0.2, SAMPLE_RATE), speak(text), silence(0.3, SAMPLE_RATE)])
    full = Transcriber(options=WhisperOptions(window_margin_s=0.0))
    fitted = Transcriber(options=WhisperOptions(window_margin_s=6.0))

    heard_full = full.transcribe(audio)
    heard_fitted = fitted.transcribe(audio)

    said = words(text)
    for heard in (heard_full, heard_fitted):
        assert "station" in words(heard.text)
        assert sum(w in words(heard.text) for w in said) >= len(said) - 1
    assert -1.0 < heard_fitted.avg_logprob < 0
    assert (fitted.window_decodes, fitted.window_fallbacks) == (1, 0)
    assert fitted.cost_follows_clip and not full.cost_follows_clip


@pytest.mark.slow
def test_a_clip_near_thirty_seconds_uses_whispers_own_window() -> None:
    clip = synthesize("The quick brown fox jumps over the lazy dog.").at(SAMPLE_RATE)
    audio = np.concatenate([clip, silence(28.0, SAMPLE_RATE)])
    assert decode_in_window(get_model(), audio, margin_s=6.0, language="en", initial_prompt=None, beam_size=1) is None

    fitted = Transcriber(options=WhisperOptions(window_margin_s=6.0))
    heard = fitted.transcribe(audio)
    assert {"fox", "dog"} <= set(words(heard.text))
    assert (fitted.window_decodes, fitted.window_fallbacks) == (1, 1)


@pytest.mark.slow
def test_silence_in_a_fitted_window_is_no_speech() -> None:
    fitted = Transcriber(options=WhisperOptions(window_margin_s=6.0))
    heard = fitted.transcribe(silence(1.0, SAMPLE_RATE))
    assert heard.no_speech and heard.text == ""
