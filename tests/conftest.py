"""Shared fixtures: the real models and the embedded LLM server, loaded once per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub, ever


def pytest_configure(config: pytest.Config) -> None:
    """Cap glibc's malloc arenas before any test starts a thread, as ``app.main`` does at start-up."""
    from voice.native_memory import limit_malloc_arenas

    limit_malloc_arenas()


@pytest.fixture(scope="session")
def offline_settings():
    """Settings on the embedded offline defaults, Piper voice (deterministic, no network wait)."""
    from voice.settings import load_settings

    return load_settings({"tts_engine": "piper"}, environ={}, dotenv_path=None)


@pytest.fixture(scope="session")
def voice_runtime(offline_settings) -> Iterator:
    """One runtime for the whole run: embedded llama.cpp server, Whisper tiny.en, Piper."""
    from voice.runtime import VoiceRuntime

    runtime = VoiceRuntime.create(offline_settings)
    yield runtime
    runtime.close()
