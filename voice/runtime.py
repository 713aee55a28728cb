"""What one process shares between its sessions: the LLM endpoint, the read-only models and what
the host's network taught (the edge-tts circuit breaker).

The runtime owns them and hands them to each session it makes; a session owns everything else
(its client, history, endpointer, TTS engine).  The read-only models themselves are loaded once
per process by their modules' cached getters (Whisper, Silero, Smart Turn, Piper voices), like
faster-whisper's model cache; the runtime loads them before the first session so no user waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from voice.conversation import Conversation
from voice.llm_endpoint import LLMEndpoint
from voice.native_memory import limit_malloc_arenas
from voice.prompting import reply_style
from voice.recognizer import SpeechRecognizer, engine_label
from voice.session import VoiceSession
from voice.settings import Settings
from voice.smart_turn import SmartTurnUnavailable, smart_turn_model
from voice.stt_factory import recognizer_for
from voice.tts import TTSEngine, TTSError
from voice.tts_edge import CircuitBreaker
from voice.tts_factory import tts_for

log = logging.getLogger(__name__)


@dataclass
class VoiceRuntime:
    """The process-wide parts: endpoint (maybe the embedded server), the speech recognizer, a warm TTS.

    Build it once with :meth:`create` (blocking, a few seconds: it starts the embedded
    server and loads the models), then make one :class:`VoiceSession` per user.
    """

    settings: Settings
    endpoint: LLMEndpoint
    transcriber: SpeechRecognizer  # the STT_ENGINE's (Whisper by default)
    # Whether the edge service is reachable is the host's property, not one session's: a
    # failure seen while warming up, or by one session, spares every other session the time-out.
    edge_breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    @classmethod
    def create(
        cls, settings: Settings, progress: Callable[[str], None] | None = None, endpoint: LLMEndpoint | None = None
    ) -> VoiceRuntime:
        """Start the LLM backend and load the models, reporting each step to ``progress``.

        ``endpoint`` replaces the one the settings describe (the benchmark's embedded server over
        TLS, say); the runtime starts it and closes it like its own.
        """
        say = progress or (lambda text: log.info("%s", text))
        limit_malloc_arenas()
        started = time.perf_counter()
        endpoint = endpoint if endpoint is not None else LLMEndpoint.from_settings(settings)
        if endpoint.is_embedded:
            model = Path(settings.embedded_model).name if settings.embedded_model else "SmolLM2-135M"
            say(f"Starting the embedded LLM server ({model})…")
        prefix = Conversation(settings.system_prompt, style=reply_style(endpoint.is_embedded)).prefix()
        endpoint.start(prefix)
        say(f"Loading {engine_label(settings.stt_engine)}…")
        transcriber = recognizer_for(settings)
        try:
            transcriber.warm()
            say("Loading the turn detector…")
            _load_turn_model(settings)
            say("Loading the voice…")
            runtime = cls(settings, endpoint, transcriber)
            asyncio.run(_warm_tts(runtime.new_tts()))
        except BaseException:
            endpoint.close()
            raise
        say(f"Ready in {time.perf_counter() - started:.1f} s")
        return runtime

    def new_tts(self) -> TTSEngine:
        """A TTS engine for one session (models and the edge breaker are shared underneath)."""
        return tts_for(self.settings, self.edge_breaker)

    def new_session(self, session_id: str = "", settings: Settings | None = None) -> VoiceSession:
        """A fresh session (not started) with its own history, endpointer and client."""
        settings = settings or self.settings
        return VoiceSession(
            settings,
            self.endpoint,
            # The runtime's engine, unless these settings name the other one (loaded on first use).
            transcriber=self.transcriber
            if settings.stt_engine == self.settings.stt_engine
            else recognizer_for(settings),
            tts=tts_for(settings, self.edge_breaker),
            session_id=session_id,
            edge_breaker=self.edge_breaker,
        )

    def close(self) -> None:
        """Stop the embedded server, if any."""
        self.endpoint.close()


def _load_turn_model(settings: Settings) -> None:
    """Load Smart Turn now, so the first pause does not pay for it.  The page can switch to
    a detector that uses it, so it is loaded whichever detector starts; only a detector that
    needs it makes its absence fatal."""
    try:
        smart_turn_model()
    except SmartTurnUnavailable as exc:
        if settings.turn_policy.uses_audio_model:
            raise SmartTurnUnavailable(f"TURN_DETECTOR={settings.turn_detector} needs the audio model: {exc}") from None
        log.warning("The audio turn model is unavailable (%s); only the vad and text detectors will work", exc)


async def _warm_tts(tts: TTSEngine) -> None:
    try:
        await tts.warm()
    except TTSError as exc:
        # Not fatal: with TTS_ENGINE=edge offline every turn still shows its text, and says why.
        log.warning("Text-to-speech could not warm up: %s", exc)
    finally:
        await tts.aclose()
