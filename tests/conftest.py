"""Shared fixtures: the real models and the embedded LLM server, loaded once per test run; the
loopback OpenAI-compatible server; the test CA and TLS contexts; the edge-tts stand-in."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import edge_tts.communicate
import pytest
import trustme

from benchmarks.edge_standin import EdgeStandin, encode_mp3, tone
from benchmarks.report import MEASUREMENTS_ENV
from llm import free_loopback_port
from tests.llm_servers import LLMServer
from tests.loopback_tls import TLS, loopback_tls

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub, ever


def pytest_configure(config: pytest.Config) -> None:
    """Cap glibc's malloc arenas before any test starts a thread, as ``app.main`` does at start-up."""
    from voice.native_memory import limit_malloc_arenas

    limit_malloc_arenas()


@pytest.fixture(scope="session", autouse=True)
def measurements_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Benchmarks a test runs (in-process or as a subprocess) publish their reports here, never
    over the committed ones in docs/measurements/."""
    path = tmp_path_factory.mktemp("measurements")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MEASUREMENTS_ENV, str(path))
        yield path


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


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    """A loopback OpenAI-compatible server (tests/llm_servers.py), counting its connections."""
    async with LLMServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throw-away certificate authority for the loopback TLS servers."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls(ca: trustme.CA) -> TLS:
    """Both ends of a loopback TLS connection (tests/loopback_tls.py), certified by :func:`ca`."""
    return loopback_tls(ca)


@pytest.fixture(scope="session")
def tone_mp3() -> bytes:
    """One second of a 440 Hz tone as MP3: what the edge-tts stand-in answers with."""
    return encode_mp3(tone(440.0, 1.0))


@pytest.fixture
async def standin(ca: trustme.CA, tone_mp3: bytes, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EdgeStandin]:
    """The local stand-in of the edge-tts service (the one mocked part), with edge-tts pointed at it."""
    async with EdgeStandin(tone_mp3, ca) as stand_in:
        stand_in.install(monkeypatch)
        yield stand_in


@pytest.fixture
def unreachable_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    """edge-tts pointed at a loopback port where nothing listens."""
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"wss://127.0.0.1:{free_loopback_port()}/edge/v1?x=1")
