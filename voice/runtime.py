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
import threading
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
from voice.stt_factory import recognizer_for, same_recognizer
from voice.synthesis_gate import SynthesisGate
from voice.tts import CircuitBreaker, TTSEngine, TTSError, tts_for
from voice.turns import EndOfTurnModelError, SmartTurnUnavailable, load_text_end_of_turn, smart_turn_model

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
    # The CPU is the process's too: a turn being answered in one session synthesizes before any
    # other session's preemptive synthesis (voice.synthesis_gate).
    synthesis_gate: SynthesisGate = field(default_factory=SynthesisGate)

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
            # The runtime's engine, unless these settings build another (loaded on first use).
            transcriber=self.transcriber if same_recognizer(settings, self.settings) else recognizer_for(settings),
            tts=tts_for(settings, self.edge_breaker),
            session_id=session_id,
            edge_breaker=self.edge_breaker,
            synthesis_gate=self.synthesis_gate,
        )

    def close(self) -> None:
        """Stop the embedded server, if any."""
        self.endpoint.close()


def _load_turn_model(settings: Settings) -> None:
    """Load the turn models now (the text end-of-turn model and Smart Turn), so the first pause
    does not pay for them.  The page can switch to a detector that uses either, so both are
    loaded whichever detector starts; only a detector that needs one makes its absence fatal."""
    try:
        load_text_end_of_turn()
    except EndOfTurnModelError as exc:
        if settings.turn_policy.uses_text_model:
            raise
        log.warning("%s; only the detectors without it will work", exc)
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


class RuntimeLoader:
    """Loads the models and starts the LLM backend in a thread, so the page is up at once
    and shows progress instead of a silent wait."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.progress = "Starting…"
        self.error: str | None = None
        self.runtime: VoiceRuntime | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._load, name="runtime-loader", daemon=True)

    @classmethod
    def loaded(cls, settings: Settings, runtime: VoiceRuntime) -> RuntimeLoader:
        """A loader that is already done (tests, or a caller that built the runtime itself)."""
        loader = cls(settings)
        loader.runtime = runtime
        loader.progress = "Ready"
        loader._done.set()
        return loader

    def start(self) -> None:
        """Begin loading in the background."""
        self._thread.start()

    def _load(self) -> None:
        def say(text: str) -> None:
            self.progress = text
            log.info("%s", text)

        try:
            self.runtime = VoiceRuntime.create(self.settings, progress=say)
        except Exception as exc:
            self.error = f"WarmVoice could not start: {exc}"
            log.error("%s", self.error)
        finally:
            self._done.set()

    async def wait(self) -> VoiceRuntime:
        """The runtime once loaded; raises RuntimeError with the reason if loading failed."""
        await asyncio.to_thread(self._done.wait)
        if self.runtime is None:
            raise RuntimeError(self.error or "WarmVoice could not start")
        return self.runtime

    @property
    def ready(self) -> bool:
        """True once loading has finished (successfully or not)."""
        return self._done.is_set()
