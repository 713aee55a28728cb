"""Build the text-to-speech engine a session speaks with, from the settings.

See :mod:`voice.tts` for the engines' interface and the fallback between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voice.settings import DEFAULT_MAX_IDLE_S, DEFAULT_PIPER_THREADS
from voice.tts.edge import CircuitBreaker, EdgeTTS
from voice.tts.edge_transport import WarmEdgeTransport
from voice.tts.engine import FallbackTTS, TTSEngine, TTSError
from voice.tts.piper import PiperTTS

if TYPE_CHECKING:
    from voice.settings import Settings


def make_tts(
    engine: str,
    voice: str,
    edge_timeout_s: float,
    *,
    breaker: CircuitBreaker | None = None,
    edge_warm: bool = True,
    edge_max_idle_s: float | None = None,
    piper_threads: int = DEFAULT_PIPER_THREADS,
) -> TTSEngine:
    """Build the engine for ``Settings.tts_engine`` / ``tts_voice`` / ``edge_tts_timeout_s``.

    ``engine``: ``auto`` (edge with Piper fallback), ``edge`` (edge only; fails with
    :class:`TTSError`), ``piper`` (offline only).  ``voice`` is an edge voice name such as
    ``en-US-AriaNeural``; Piper then uses the bundled joe voice.  A ``voice`` ending in
    ``.onnx`` is a local Piper voice file: ``piper`` and ``auto`` then speak with that voice
    only (an edge voice cannot be derived from it), and ``edge`` is refused.

    ``breaker``: the edge circuit breaker to share (the runtime passes its own to every session,
    so a failure while warming up or in one session sends every session straight to Piper for
    the cool-down instead of each waiting out a timeout); None gives the engine its own.

    ``edge_warm`` gives each edge engine a :class:`~voice.tts.edge_transport.WarmEdgeTransport`
    (a spare socket, opened by the engine's ``open()``, replaced after ``edge_max_idle_s`` idle);
    without it every sentence opens its own connection.  ``piper_threads``: see :class:`PiperTTS`.
    """

    def edge() -> EdgeTTS:
        transport = (
            WarmEdgeTransport(connect_timeout_s=edge_timeout_s, max_idle_s=edge_max_idle_s or DEFAULT_MAX_IDLE_S)
            if edge_warm
            else None
        )
        return EdgeTTS(voice, timeout_s=edge_timeout_s, breaker=breaker, transport=transport)

    local_piper_voice = voice.lower().endswith(".onnx")
    if engine == "piper" or (engine == "auto" and local_piper_voice):
        return PiperTTS(voice if local_piper_voice else None, threads=piper_threads)
    if engine == "edge":
        if local_piper_voice:
            raise TTSError(f"TTS_ENGINE=edge needs an edge voice name, not a Piper file ({voice})")
        return edge()
    if engine == "auto":
        return FallbackTTS(edge(), PiperTTS(None, threads=piper_threads))
    raise TTSError(f"unknown TTS engine {engine!r}: choose auto, edge or piper")


def tts_for(settings: Settings, breaker: CircuitBreaker | None = None) -> TTSEngine:
    """:func:`make_tts` with what ``settings`` say (engine, voice, edge time-out and warm sockets)
    and the edge ``breaker`` to share."""
    return make_tts(
        settings.tts_engine,
        settings.tts_voice,
        settings.edge_tts_timeout_s,
        edge_warm=settings.edge_tts_warm,
        edge_max_idle_s=settings.edge_tts_max_idle_s,
        piper_threads=settings.piper_threads,
        breaker=breaker,
    )
