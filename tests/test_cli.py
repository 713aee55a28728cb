"""Headless use: ``python -m voice --wav ...`` runs whole turns and prints the breakdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.bench_process import offline_env, run_module
from tests.speech import synthesize
from voice.audio import read_wav, write_wav


@pytest.mark.slow
def test_wav_turns_print_transcript_reply_and_table(tmp_path: Path) -> None:
    question = synthesize("What is the capital of France?")
    wav = tmp_path / "question.wav"
    write_wav(wav, question.samples, question.sample_rate)
    silent = tmp_path / "silence.wav"
    write_wav(silent, np.zeros(32000, np.float32), 16000)
    out = tmp_path / "reply.wav"
    run = run_module(
        "voice",
        ["--wav", str(wav), "--wav", str(silent), "--out", str(out), "--strategy", "prewarmed", "--pause-s", "0.2"],
        env=offline_env(TTS_ENGINE="piper"),
        timeout_s=240,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.stdout
    assert "[turn 1] you:" in text and "capital" in text.lower() and "france" in text.lower()
    assert "[turn 1] assistant:" in text
    assert "[turn 2] silence.wav: no speech detected" in text
    assert "First audio ready" in text and "reused" in text
    reply, rate = read_wav(tmp_path / "reply-1.wav")
    assert rate == 24000 and float(np.sqrt(np.mean(reply**2))) > 0.01
    assert "Traceback" not in run.stderr


def test_missing_wav_is_a_clear_error(tmp_path: Path) -> None:
    run = run_module("voice", ["--wav", str(tmp_path / "nope.wav")], timeout_s=60)
    assert run.returncode == 2
    assert run.stderr.strip() == f"error: no such WAV file: {tmp_path / 'nope.wav'}"


def test_local_audio_without_portaudio_says_so_in_one_line() -> None:
    from voice.local_audio import LocalAudioError, LocalMic

    try:
        LocalMic()
    except LocalAudioError as exc:
        assert str(exc).startswith("local audio unavailable:") and "\n" not in str(exc)
    else:
        pytest.skip("this machine has a working sound device; the no-device path is not reachable")


def test_wav_takes_several_files_after_one_flag_or_repeated() -> None:
    from voice.__main__ import parse_args

    assert parse_args(["--wav", "a.wav", "b.wav"]).wav == [Path("a.wav"), Path("b.wav")]
    assert parse_args(["--wav", "a.wav", "--wav", "b.wav", "c.wav"]).wav == [
        Path(p) for p in ("a.wav", "b.wav", "c.wav")
    ]
    assert parse_args(["--text", "Hi", "--text", "And you?"]).text == ["Hi", "And you?"]
    with pytest.raises(SystemExit):
        parse_args(["--text", "Hi", "--wav", "a.wav"])  # one kind of input per run


def test_empty_text_is_a_clear_error() -> None:
    run = run_module("voice", ["--text", "  "], timeout_s=60)
    assert run.returncode == 2
    assert run.stderr.strip() == "error: --text needs a non-empty question"


@pytest.mark.slow
def test_typed_turns_print_reply_and_table(tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    questions = ["--text", "What is the capital of France?", "--text", "How many legs does a spider have?"]
    run = run_module(
        "voice", [*questions, "--out", str(out), "--pause-s", "0"], env=offline_env(TTS_ENGINE="piper"), timeout_s=240
    )
    assert run.returncode == 0, run.stderr[-2000:]
    text = run.stdout
    assert "[turn 1] you: What is the capital of France?" in text
    assert "[turn 2] you: How many legs does a spider have?" in text
    assert "[turn 1] assistant:" in text and "[turn 2] assistant:" in text
    assert "First token" in text and "First audio ready" in text
    assert read_wav(tmp_path / "reply-2.wav")[1] == 24000
    assert "Traceback" not in run.stderr


def test_the_page_and_the_headless_runner_share_their_settings_flags() -> None:
    import app
    from voice.__main__ import parse_args as headless_args
    from voice.cli import settings_from_args

    flags = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--tts", "piper", "--strategy", "cold"]
    page = app.app_settings(app.parse_args(flags))
    headless = settings_from_args(headless_args(["--text", "hi", *flags]))
    for field in ("openai_base_url", "llm_model", "tts_engine", "connection_strategy"):
        assert getattr(page, field) == getattr(headless, field)
    assert (page.openai_base_url, page.tts_engine, page.connection_strategy) == (
        "http://127.0.0.1:9/v1",
        "piper",
        "cold",
    )
