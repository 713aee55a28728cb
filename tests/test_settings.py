"""Settings resolution: defaults, .env, environment, overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm import Secret
from voice.settings import (
    DEFAULT_OPENAI_MODEL,
    EMBEDDED_MODEL,
    OPENAI_URL,
    SettingsError,
    load_settings,
)


def test_defaults_use_the_embedded_server() -> None:
    s = load_settings(environ={}, dotenv_path=None)
    assert s.uses_embedded_llm
    assert s.resolved_base_url == ""
    assert s.resolved_model == EMBEDDED_MODEL
    assert s.host == "127.0.0.1" and s.port == 7860
    assert s.tts_engine == "auto" and s.connection_strategy == "prewarmed"


def test_key_alone_selects_openai() -> None:
    s = load_settings(environ={"OPENAI_API_KEY": "sk-test-123"}, dotenv_path=None)
    assert not s.uses_embedded_llm
    assert s.resolved_base_url == OPENAI_URL
    assert s.resolved_model == DEFAULT_OPENAI_MODEL
    assert isinstance(s.openai_api_key, Secret) and s.openai_api_key.reveal() == "sk-test-123"


def test_custom_base_url_needs_a_model() -> None:
    with pytest.raises(SettingsError, match="LLM_MODEL"):
        load_settings(environ={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}, dotenv_path=None)
    s = load_settings(
        environ={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "LLM_MODEL": "llama3.2"},
        dotenv_path=None,
    )
    assert s.resolved_base_url == "http://127.0.0.1:11434/v1" and s.resolved_model == "llama3.2"


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TTS_ENGINE=piper\nEND_OF_TURN_SILENCE_MS=700\nGRADIO_SERVER_PORT=9000\n")
    s = load_settings(environ={"GRADIO_SERVER_PORT": "9100"}, dotenv_path=env_file)
    assert s.tts_engine == "piper"
    assert s.end_of_turn_silence_ms == 700
    assert s.port == 9100


def test_flags_override_environment() -> None:
    s = load_settings(
        {"port": 8000, "tts_engine": "edge", "host": None},
        environ={"GRADIO_SERVER_PORT": "9100", "GRADIO_SERVER_NAME": "0.0.0.0"},
        dotenv_path=None,
    )
    assert s.port == 8000 and s.tts_engine == "edge" and s.host == "0.0.0.0"


def test_empty_system_prompt_is_allowed() -> None:
    s = load_settings(environ={"SYSTEM_PROMPT": ""}, dotenv_path=None)
    assert s.system_prompt == ""


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"TTS_ENGINE": "loud"}, "TTS_ENGINE"),
        ({"GRADIO_SERVER_PORT": "seventy"}, "GRADIO_SERVER_PORT"),
        ({"GRADIO_SERVER_PORT": "70000"}, "GRADIO_SERVER_PORT"),
        ({"CONNECTION_STRATEGY": "fast"}, "CONNECTION_STRATEGY"),
        ({"OPENAI_BASE_URL": "api.openai.com"}, "OPENAI_BASE_URL"),
        ({"END_OF_TURN_SILENCE_MS": "10"}, "END_OF_TURN_SILENCE_MS"),
        ({"BARGE_IN": "maybe"}, "BARGE_IN"),
        ({"EMULATED_RTT_MS": "-5"}, "EMULATED_RTT_MS"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"WHISPER_DEVICE": "tpu"}, "WHISPER_DEVICE"),
        ({"PIPER_THREADS": "-1"}, "PIPER_THREADS"),
        ({"PIPER_THREADS": "two"}, "PIPER_THREADS"),
        ({"FIRST_SENTENCE_MAX_WORDS": "101"}, "FIRST_SENTENCE_MAX_WORDS"),
        ({"WHISPER_WINDOW_MARGIN_S": "-1"}, "WHISPER_WINDOW_MARGIN_S"),
        ({"WHISPER_WINDOW_MARGIN_S": "30"}, "WHISPER_WINDOW_MARGIN_S"),
        ({"WHISPER_WINDOW_MARGIN_S": "short"}, "WHISPER_WINDOW_MARGIN_S"),
    ],
)
def test_bad_values_name_their_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ, dotenv_path=None)
    message = str(caught.value)
    assert message.startswith(variable + "=")
    assert "\n" not in message


def test_secret_never_prints() -> None:
    s = load_settings(environ={"OPENAI_API_KEY": "sk-very-secret"}, dotenv_path=None)
    for text in (str(s), repr(s), f"{s.openai_api_key}", str(s.openai_api_key)):
        assert "sk-very-secret" not in text


def test_temperature_is_optional_and_bounded() -> None:
    assert load_settings(environ={}, dotenv_path=None).llm_temperature is None
    assert load_settings(environ={"LLM_TEMPERATURE": "0"}, dotenv_path=None).llm_temperature == 0.0
    with pytest.raises(SettingsError, match=r"^LLM_TEMPERATURE="):
        load_settings(environ={"LLM_TEMPERATURE": "3"}, dotenv_path=None)
    with pytest.raises(SettingsError, match=r"^LLM_TEMPERATURE="):
        load_settings(environ={"LLM_TEMPERATURE": "warm"}, dotenv_path=None)


def test_embedded_model_must_be_an_existing_gguf_file(tmp_path: Path) -> None:
    model = tmp_path / "bigger.gguf"
    model.write_bytes(b"GGUF")
    s = load_settings(environ={"EMBEDDED_MODEL": str(model)}, dotenv_path=None)
    assert s.embedded_model == str(model) and s.uses_embedded_llm
    assert load_settings(environ={}, dotenv_path=None).embedded_model == ""  # the bundled SmolLM2
    with pytest.raises(SettingsError, match=r"^EMBEDDED_MODEL=.* no such file$"):
        load_settings(environ={"EMBEDDED_MODEL": str(tmp_path / "missing.gguf")}, dotenv_path=None)
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(SettingsError, match=r"^EMBEDDED_MODEL=.* \.gguf model file$"):
        load_settings(environ={"EMBEDDED_MODEL": str(other)}, dotenv_path=None)


def test_first_audio_levers_default_and_parse() -> None:
    defaults = load_settings(environ={}, dotenv_path=None)
    assert (defaults.piper_threads, defaults.first_sentence_max_words) == (1, 6)
    s = load_settings(environ={"PIPER_THREADS": "0", "FIRST_SENTENCE_MAX_WORDS": "8"}, dotenv_path=None)
    assert (s.piper_threads, s.first_sentence_max_words) == (0, 8)


def test_the_whisper_window_setting_reaches_the_recognizer() -> None:
    from voice.stt_factory import recognizer_for, same_recognizer
    from voice.transcribe import Transcriber

    fitted = load_settings(environ={"WHISPER_WINDOW_MARGIN_S": "2.5"}, dotenv_path=None)
    full = load_settings(environ={"WHISPER_WINDOW_MARGIN_S": "0"}, dotenv_path=None)
    heard_fitted, heard_full = recognizer_for(fitted), recognizer_for(full)
    assert isinstance(heard_fitted, Transcriber) and isinstance(heard_full, Transcriber)
    assert heard_fitted.options.window_margin_s == 2.5 and heard_fitted.cost_follows_clip
    assert heard_full.options.window_margin_s == 0 and not heard_full.cost_follows_clip
    assert not same_recognizer(fitted, full) and same_recognizer(fitted, fitted.replace(port=8000))
