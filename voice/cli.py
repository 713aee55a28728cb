"""The command-line flags that both ways to run WarmVoice share: the page (``python app.py``)
and the headless runner (``python -m voice``).  Flags override the environment and .env."""

from __future__ import annotations

import argparse
from typing import Any

from llm import STRATEGIES
from voice.settings import TTS_ENGINES, Settings, load_settings

# Flag destination -> Settings field, for the flags defined here.
_FIELDS = {
    "base_url": "openai_base_url",
    "model": "llm_model",
    "system_prompt": "system_prompt",
    "tts": "tts_engine",
    "voice": "tts_voice",
    "whisper_model": "whisper_model",
    "whisper_device": "whisper_device",
    "whisper_compute_type": "whisper_compute_type",
    "strategy": "connection_strategy",
    "rtt_ms": "emulated_rtt_ms",
    "log_level": "log_level",
}


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that set the LLM endpoint, speech engines, connection strategy and logging."""
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1")
    parser.add_argument("--model", help="model name at that endpoint")
    parser.add_argument("--system-prompt", help="system prompt")
    parser.add_argument("--tts", choices=TTS_ENGINES, help="text-to-speech engine")
    parser.add_argument("--voice", help="TTS voice (edge-tts name, or a Piper .onnx path)")
    parser.add_argument("--whisper-model", help="faster-whisper model name or path")
    parser.add_argument("--whisper-device", help="cpu, cuda or auto")
    parser.add_argument("--whisper-compute-type", help="e.g. int8, float16")
    parser.add_argument("--strategy", choices=STRATEGIES, help="LLM connection strategy")
    parser.add_argument("--rtt-ms", type=float, help="emulated network distance to the LLM")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")


def settings_from_args(args: argparse.Namespace, **more: Any) -> Settings:
    """Environment + .env + the shared flags (+ ``more`` fields) -> validated settings.

    Raises :class:`voice.settings.SettingsError` on a bad value.
    """
    overrides = {field: getattr(args, flag) for flag, field in _FIELDS.items()}
    return load_settings({**overrides, **more})
