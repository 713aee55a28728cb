"""One user's voice session: the orchestrator of a turn's stages.

    microphone audio -> turn detection (voice.turns.detection: endpointing, the early transcript,
    the end-of-turn decision) -> transcript -> reply (voice.reply: pooled LLM -> sentences)
    -> speech (voice.speech: TTS -> audio chunks) -> the front-end's player

Each stage reports its timing as events stamped with ``perf_counter()`` where it happens; the
session's :class:`~voice.timing.TurnRecorder` alone builds each turn's record from them, relative
to the true end of the user's speech (see :mod:`voice.latency`).  Everything a front-end needs is
published on :attr:`VoiceSession.events`, a hub every front-end listens to on its own
(:mod:`voice.event_hub`).  The session decides what the stages cannot see alone: whether
speech over the reply is a barge-in, a backchannel or a false interruption, and when a turn
replaces the one before it.

Life cycle: ``start()`` opens the session's own pooled LLM client and fires the warm-up in the
background, so the TCP+TLS set-up overlaps the user's first sentence; ``stop()`` cancels work in
flight and closes the client.  A session owns its client, proxy, history, endpointer and TTS
engine; what it shares with other sessions (read-only models, the embedded server, the edge-tts
circuit breaker) is the runtime's (:mod:`voice.runtime`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import numpy as np

from llm import STRATEGY_LABELS, ConnectionState, PooledLLMClient, WarmUpResult, parse_strategy
from voice.audio import MicrophoneInput
from voice.event_hub import EventHub
from voice.events import BargeIn, Notice, SessionEvent, Status
from voice.latency import TurnLatency
from voice.llm_endpoint import LLMEndpoint
from voice.over_reply import OverReply
from voice.preemptive_speech import PreemptiveSpeech
from voice.recognizer import SpeechRecognizer
from voice.reply import ReplyStage
from voice.settings import Settings
from voice.speech import SpeechStage
from voice.stt_factory import recognizer_for, same_recognizer
from voice.synthesis_gate import SynthesisGate
from voice.timing import PlaybackConfirmed, TurnRecorder
from voice.tts import CircuitBreaker, TTSEngine, VoiceCatalog, tts_for
from voice.turn import TurnRunner, TurnStart, TurnTasks
from voice.turns import (
    DetectedTurn,
    InterruptionScreen,
    SpeculationStats,
    SpeechStarted,
    TurnDetector,
    smart_turn_model,
)
from voice.uplink import CaptureBook, ChunkCapture

log = logging.getLogger(__name__)

MAX_TYPED_CHARS = 2000


class VoiceSession:
    """A conversation with its own connection pool, history, endpointer and numbers.

    ``edge_breaker``: the runtime's edge-tts circuit breaker, shared by the engines of the voices
    the page switches to (None: each new engine has its own).  ``synthesis_gate``: the runtime's
    priority rule between sessions' syntheses (None: a gate of this session's own).
    """

    def __init__(
        self,
        settings: Settings,
        endpoint: LLMEndpoint,
        *,
        transcriber: SpeechRecognizer,
        tts: TTSEngine,
        session_id: str = "",
        clock: Callable[[], float] = time.perf_counter,
        edge_breaker: CircuitBreaker | None = None,
        synthesis_gate: SynthesisGate | None = None,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.transcriber = transcriber
        self.session_id = session_id
        # Unique per session object: a tab that stops and starts again keeps its session_id,
        # but its player must not take the new session's audio for chunks it already played.
        self.instance_id = uuid.uuid4().hex
        self.clock = clock
        self.voices = VoiceCatalog.from_settings(settings)  # from the server's settings, never the page
        # Every listener (the page, this machine's speaker, a benchmark) gets every event; a late
        # one starts from the status line now.
        self.events: EventHub[SessionEvent] = EventHub(keep_latest=lambda event: isinstance(event, Status))
        self.timing = TurnRecorder(self._emit)  # the turns' records, the one writer of them
        self.closed = False
        self.last_activity = clock()
        self.interruption = InterruptionScreen(settings.barge_in_min_speech_ms, settings.barge_in_min_logprob)
        self.reply = ReplyStage(settings, endpoint, emit=self._emit, timing=self.timing.record, clock=clock)
        # The first sentence of the pause's reply, synthesized before the turn is confirmed.
        self.preemptive_speech = PreemptiveSpeech(
            lambda: self.speech.tts,
            synthesis_gate if synthesis_gate is not None else SynthesisGate(),
            self.reply.preemptive.stats,
            enabled=lambda: self.settings.preemptive_tts,
            timing=self.timing.record,
            clock=clock,
        )
        self.reply.preemptive.listener = self.preemptive_speech
        self.speech = SpeechStage(
            tts, emit=self._emit, timing=self.timing.record, clock=clock, synthesis=self.preemptive_speech.synthesis
        )
        self.turn_detector = TurnDetector(
            settings.turn_policy,
            transcriber=transcriber,
            audio_model=smart_turn_model,
            on_turn=self._end_of_turn,
            clock=clock,
            early_transcript=settings.early_transcript,
            incremental=settings.incremental_transcript,
            max_turn_s=settings.max_turn_seconds,
            on_early_transcript=self._preempt,
            on_discard=self.reply.preemptive.discard,
        )
        self._edge_breaker = edge_breaker  # the runtime's, for the engine of a new voice
        self._turns = TurnTasks(
            TurnRunner(
                transcriber=transcriber,
                reply=self.reply,
                speech=self.speech,
                interruption=self.interruption,
                resume_cut=settings.resume_after_false_interruption,
                emit=self._emit,
                timing=self.timing.record,
                clock=clock,
            ),
            self.timing,
        )
        self._microphone = MicrophoneInput(lambda text: self._emit(Notice(text, "warning")))
        self._feed_lock = asyncio.Lock()
        self._over_reply = OverReply(
            self,
            self.interruption,
            voiced_ms=lambda: self.turn_detector.endpointer.voiced_ms,
            barge_in=self._barge_in,
            begin=self._begin_spoken,
            clock=clock,
        )
        self._captures = CaptureBook()  # the page's capture times, where a page gives them

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the LLM client and, for the pre-warmed strategy, warm it in the background."""
        if self.closed:
            raise RuntimeError("session is closed")
        await self.reply.open()
        await self.speech.tts.open()  # edge: its spare socket opens now, while the user speaks
        log.info(
            "Session %s started (%s, emulated RTT %.0f ms)",
            self.session_id,
            STRATEGY_LABELS[self.settings.connection_strategy],
            self.settings.emulated_rtt_ms,
        )

    async def stop(self) -> None:
        """Cancel work in flight, close the client and the proxy.  Idempotent."""
        if self.closed:
            return
        self.closed = True
        await self.turn_detector.close()
        await self._turns.cancel()
        await self._over_reply.cancel()
        await self.reply.close()
        await self.preemptive_speech.aclose()
        await self.speech.tts.aclose()
        self._emit(Status("Session ended", "closed"))
        log.info("Session %s stopped after %d turns", self.session_id, len(self.latencies))

    async def configure(
        self,
        *,
        strategy: str | None = None,
        rtt_ms: float | None = None,
        system_prompt: str | None = None,
        silence_ms: int | None = None,
        barge_in: bool | None = None,
        voice: str | None = None,
        turn_detector: str | None = None,
        stt_engine: str | None = None,
    ) -> None:
        """Change settings mid-session; every value is validated before anything changes.

        A new strategy or distance means a new connection pool (and a new warm-up), so turns
        under each setting are measured from the same start.  ``voice`` comes from the page: a
        name from :attr:`voices`, never a path (:class:`voice.tts.voices.VoiceRefused` otherwise).
        """
        changes: dict[str, object] = {
            "tts_voice": None if voice is None else self.voices.resolve(voice),
            "connection_strategy": None if strategy is None else parse_strategy(strategy),
            "emulated_rtt_ms": None if rtt_ms is None else float(rtt_ms),
            "end_of_turn_silence_ms": silence_ms,
            "turn_detector": turn_detector,
            "stt_engine": stt_engine,
            "barge_in": barge_in,
            "system_prompt": system_prompt,
        }
        changed = {
            name: value
            for name, value in changes.items()
            if value is not None and value != getattr(self.settings, name)
        }
        old, self.settings = self.settings, self.settings.replace(**changed)  # validates the values
        self.reply.settings = self.settings
        if "system_prompt" in changed:
            self.reply.conversation.system_prompt = self.settings.system_prompt
        if "tts_voice" in changed:
            engine = tts_for(self.settings, self._edge_breaker)
            await self.speech.replace_engine(engine, open_it=self.reply.client is not None)
        if not same_recognizer(self.settings, old):
            await self._use_recognizer(recognizer_for(self.settings))
        if self.settings.turn_policy != old.turn_policy:
            await self.turn_detector.set_policy(self.settings.turn_policy)
        if "connection_strategy" in changed or "emulated_rtt_ms" in changed:
            await self._interrupt_turn()
            await self.reply.reconnect()

    async def _use_recognizer(self, recognizer: SpeechRecognizer) -> None:
        """Hear the next turns with ``recognizer``: its model is loaded (once per process) in a
        thread first, so no turn waits for it; a turn already transcribing keeps the old engine."""
        await asyncio.to_thread(recognizer.load)
        self.transcriber = self.turn_detector.transcriber = self._turns.runner.transcriber = recognizer

    # ----------------------------------------------------------------- state

    @property
    def connection_state(self) -> ConnectionState:
        """cold / warming / warm / idle / closed, from the client."""
        return "closed" if self.closed else self.reply.state

    @property
    def client(self) -> PooledLLMClient | None:
        """The session's LLM client (None before start and after stop)."""
        return self.reply.client

    @property
    def latencies(self) -> list[TurnLatency]:
        """Every turn's latency record so far, oldest first (the recorder's)."""
        return self.timing.turns

    @property
    def turns_started(self) -> int:
        """How many turns this session has begun (spoken or typed)."""
        return self._turns.started

    @property
    def speculation_stats(self) -> SpeculationStats:
        """How the early transcripts fared (adopted, discarded, turns ended early)."""
        return self.turn_detector.stats

    async def screened(self) -> None:
        """Wait until speech over the reply has been judged: every transcript that decides whether
        it stops the reply (or becomes a turn) is done, including any started meanwhile."""
        await self._over_reply.settled()

    @property
    def busy(self) -> bool:
        """True while a reply is being produced or its audio is still playing."""
        return self._turns.running or self.speech.speaking

    # ----------------------------------------------------------------- input

    async def feed_audio(self, samples: np.ndarray, sample_rate: int, received_at: float | None = None) -> None:
        """Feed a chunk of microphone audio (any rate, dtype, channel layout)."""
        if self.closed:
            return
        now = received_at if received_at is not None else self.clock()
        self.last_activity = now
        if self.busy and not self.settings.barge_in and not self._unheard_turn():
            return  # without barge-in, the user's speech over the reply is not a turn
        async with self._feed_lock:
            chunk = self._microphone.convert(samples, sample_rate)
            if chunk is None:
                return
            found = await self.turn_detector.feed(chunk.audio, now, chunk.delay_samples)
            for event in found:
                if isinstance(event, SpeechStarted):
                    if await self._continue_turn(event):
                        continue
                    # Speech over the reply stops it only once it is clearly more than a
                    # backchannel or a cough (voice.turns.interruption).
                    self.interruption.speech_started(self.busy and self.settings.barge_in)
                else:
                    self._end_of_turn(event)
            voiced_ms = self.turn_detector.endpointer.voiced_ms
            if self.interruption.confirms_barge_in(voiced_ms, self.busy):
                await self._barge_in()
            elif (look := self.interruption.wants_check(voiced_ms, self.busy)) is not None:
                self._over_reply.check(look, self.turn_detector.endpointer.current_utterance())

    def _end_of_turn(self, detected: DetectedTurn) -> None:
        """The turn-detection stage says the user is done: start the reply."""
        if detected.ended.capped:
            self._emit(
                Notice(
                    f"Recording capped at {self.settings.max_turn_seconds:.0f} s: only the first part was transcribed.",
                    "warning",
                )
            )
        if self.interruption.needs_screening(self.busy):
            self._over_reply.screen(detected)
            return
        self._begin_spoken(detected, self.clock())

    def _begin_spoken(self, detected: DetectedTurn, endpoint_at: float) -> None:
        incremental = self.turn_detector.incremental  # INCREMENTAL_TRANSCRIPT: what the turn cost
        runs = None if incremental is None else incremental.runs_this_turn
        start = TurnStart.spoken(detected, endpoint_at, self._captures.find(detected.heard_at), runs)
        self._turns.begin(start, self.settings, self.reply.warmup)

    async def _continue_turn(self, started: SpeechStarted) -> bool:
        """The user speaks again before any of the last turn's reply has reached them: the turn
        was not over (a hesitation taken for its end), so it is withdrawn and the new speech carries
        it on: the next pause is judged, and transcribed, on the whole utterance ("What is the
        capital of … France?", not "What is the capital?" and then "France?").  True if so."""
        lat = self._unheard_turn()
        if lat is None or not self.turn_detector.resume(started):
            return False
        self.speech.silence()
        await self._turns.carry_on(lat.turn)
        log.info("The user went on before hearing turn %d's reply: the turn continues", lat.turn)
        return True

    def _unheard_turn(self) -> TurnLatency | None:
        """The spoken turn in progress while none of its reply has been heard, if the user's speech
        may carry it on (``CONTINUE_UNHEARD_TURNS``), else None."""
        return self._turns.unheard(self.speech.speaking) if self.settings.continue_unheard_turns else None

    async def submit_text(self, text: str) -> asyncio.Task[None] | None:
        """A typed turn: the same pipeline from the LLM on, timed from submission."""
        if self.closed:
            return None
        self.last_activity = self.clock()
        text = (text or "").strip()
        if not text:
            self._emit(Notice("Type something first.", "warning"))
            return None
        if len(text) > MAX_TYPED_CHARS:
            self._emit(
                Notice(
                    f"Your message was {len(text):,} characters; only the first {MAX_TYPED_CHARS:,} were sent.",
                    "warning",
                )
            )
            text = text[:MAX_TYPED_CHARS]
        if self.busy:
            await self._interrupt_turn()
        return self._turns.begin(TurnStart("text", self.clock(), text=text), self.settings, self.reply.warmup)

    async def wait_warm(self) -> WarmUpResult | None:
        """Wait for the background warm-up (if one runs) and return its result."""
        return await self.reply.wait_warm()

    # ----------------------------------------------------------------- the turn

    def _preempt(self, text: str, reads_unfinished: bool) -> None:
        """A pause's early transcript: its request can go now, before the turn is over
        (voice.preemptive); its speech too, unless the text reads unfinished (the turn then waits
        the longest, and the user mostly goes on: a synthesis ahead would mostly be dropped)."""
        if self.closed or self.busy or self.interruption.pending:  # speech over a reply: not a new turn's request
            return
        if self.interruption.resumes_cut(text):  # a false interruption resumes the cut reply
            return
        self.reply.preempt(text, speak_ahead=not reads_unfinished)

    def chunk_captured(self, capture: ChunkCapture) -> None:
        """When the microphone chunk about to be fed was captured (:mod:`voice.uplink`): a turn
        whose end of speech is stamped from that chunk's arrival starts at its capture."""
        self._captures.add(capture)

    def playback_started(self, turn: int, player_ms: float | None = None, sentence: int = 0) -> bool:
        """The front-end reports that sentence ``sentence`` of turn ``turn``'s reply has started
        playing: it counts as heard, and the turn's first playback is stamped once, and only after
        its first audio was sent (:class:`~voice.timing.PlaybackConfirmed`); True if it was."""
        self.speech.confirm_playback(turn, sentence)
        return self.timing.record(PlaybackConfirmed(turn, self.clock(), player_ms))

    async def _barge_in(self) -> None:
        turn = self._turns.started
        said, heard = self.speech.heard()
        self.interruption.barged_in(self.speech.cut())
        # Announce first, so front-ends flush queued audio before anything else arrives.
        self._emit(BargeIn(turn))
        await self._interrupt_turn()
        self.reply.remember_cut(turn, said, heard)  # the history keeps only what was heard
        log.info("Barge-in: the user spoke over turn %d; reply stopped", turn)

    async def _interrupt_turn(self) -> None:
        self.speech.silence()
        await self._turns.cancel()

    # ----------------------------------------------------------------- helpers

    def _emit(self, event: SessionEvent) -> None:
        self.events.publish(event)
