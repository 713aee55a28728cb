"""One user's voice session: audio in -> endpointing -> Whisper -> pooled LLM -> TTS -> audio out.

A turn is a flow of stages, each stamped with ``perf_counter()`` where it happens and
reported relative to the true end of the user's speech (see :mod:`voice.latency`).
Everything a front-end needs arrives on :attr:`VoiceSession.events`.

Life cycle: ``start()`` opens the session's own pooled LLM client and fires the
warm-up in the background, so the TCP+TLS set-up overlaps the user's first sentence;
``stop()`` cancels work in flight and closes the client.  Nothing is shared between
sessions except read-only models (Whisper, Silero, Piper) and the embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np

from llm import (
    EVENT_CONNECTED,
    EVENT_FIRST_TOKEN,
    EVENT_RETRY,
    EVENT_STATUS,
    STRATEGY_LABELS,
    AuthError,
    ConnectionState,
    LatencyProxy,
    LLMError,
    LLMEvent,
    PooledLLMClient,
    PoolLimits,
    RequestTiming,
    SplitterConfig,
    Timeouts,
    WarmUpResult,
    parse_strategy,
)
from voice.audio import SAMPLE_RATE, StreamingConverter
from voice.conversation import Conversation
from voice.endpointing import SpeechStarted
from voice.events import (
    AssistantSaid,
    AudioOut,
    BargeIn,
    LatencyUpdate,
    Level,
    Notice,
    SessionEvent,
    Status,
    TurnDone,
    UserSaid,
)
from voice.interruption import InterruptionStats, ReplyTracker, is_backchannel
from voice.latency import TurnLatency
from voice.llm_endpoint import LLMEndpoint
from voice.preemptive import PreemptiveGeneration
from voice.prompting import RunawayGuard, reply_style
from voice.settings import Settings
from voice.smart_turn import smart_turn_model
from voice.transcribe import Transcriber
from voice.tts import AudioChunk, PrefetchedSpeech, TTSEngine, TTSError, has_speakable, prefetch
from voice.tts_factory import tts_for
from voice.turn_detection import DetectedTurn, Speculation, SpeculationStats, TurnDetector
from voice.voices import VoiceCatalog

log = logging.getLogger(__name__)

MAX_TYPED_CHARS = 2000
MIN_INPUT_RATE, MAX_INPUT_RATE = 4000, 384000  # microphone rates accepted by feed_audio


class VoiceSession:
    """A conversation with its own connection pool, history, endpointer and numbers."""

    def __init__(
        self,
        settings: Settings,
        endpoint: LLMEndpoint,
        *,
        transcriber: Transcriber,
        tts: TTSEngine,
        session_id: str = "",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.transcriber = transcriber
        self.tts = tts
        self.session_id = session_id
        # Unique per session object: a tab that stops and starts again keeps its session_id,
        # but its player must not take the new session's audio for chunks it already played.
        self.instance_id = uuid.uuid4().hex
        self.clock = clock
        self.strategy = settings.connection_strategy
        self.rtt_ms = settings.emulated_rtt_ms
        self.barge_in = settings.barge_in
        self.conversation = Conversation(
            settings.system_prompt, settings.max_history_chars, style=reply_style(endpoint.is_embedded)
        )
        self.voices = VoiceCatalog.from_settings(settings)  # from the server's settings, never the page
        self.events: asyncio.Queue[SessionEvent] = asyncio.Queue()
        self.latencies: list[TurnLatency] = []
        self.warmup: WarmUpResult | None = None
        self.closed = False
        self.last_activity = clock()
        self._client: PooledLLMClient | None = None
        self._proxy: LatencyProxy | None = None
        self._warm_task: asyncio.Task[None] | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self.preemptive = PreemptiveGeneration()
        self.turn_detector = TurnDetector(
            settings.turn_policy,
            transcriber=transcriber,
            audio_model=smart_turn_model,
            on_turn=self._end_of_turn,
            clock=clock,
            early_transcript=settings.early_transcript,
            max_turn_s=settings.max_turn_seconds,
            on_early_transcript=self._preempt,
            on_discard=self.preemptive.discard,
        )
        self._converters: dict[int, StreamingConverter] = {}
        self._feed_lock = asyncio.Lock()
        self._turns = 0
        self._current: TurnLatency | None = None
        self._speaking_until = 0.0
        self.interruptions = InterruptionStats()
        self._reply_track = ReplyTracker()
        self._barge_in_pending = False  # the user speaks over the reply; not yet a barge-in
        self._cut_reply: list[str] = []  # what a false interruption resumes
        self._screening: set[asyncio.Task[None]] = set()
        self._warned_nonfinite = False
        self._refused_audio = False

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the LLM client and, for the pre-warmed strategy, warm it in the background."""
        if self.closed:
            raise RuntimeError("session is closed")
        await self._open_client()
        await self.tts.open()  # edge: its spare socket opens now, while the user speaks
        log.info(
            "Session %s started (%s, emulated RTT %.0f ms)",
            self.session_id,
            STRATEGY_LABELS[self.strategy],
            self.rtt_ms,
        )

    async def stop(self) -> None:
        """Cancel work in flight, close the client and the proxy.  Idempotent."""
        if self.closed:
            return
        self.closed = True
        await self.turn_detector.close()
        await self.preemptive.aclose()
        for task in (self._turn_task, self._warm_task, *self._screening):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._close_client()
        await self.tts.aclose()
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
    ) -> None:
        """Change settings mid-session.  A new strategy or distance means a new connection pool
        (and a new warm-up), so turns under each setting are measured from the same start.
        ``voice`` comes from the page: a name from :attr:`voices`, never a path
        (:class:`voice.voices.VoiceRefused` otherwise)."""
        if voice is not None:
            voice = self.voices.resolve(voice)
        if voice is not None and voice != self.settings.tts_voice:
            self.settings = self.settings.replace(tts_voice=voice)
            old_tts = self.tts
            self.tts = tts_for(self.settings)
            await old_tts.aclose()
            if self._client is not None:
                await self.tts.open()
        if system_prompt is not None:
            self.conversation.system_prompt = system_prompt
        if barge_in is not None:
            self.barge_in = barge_in
        turn_changes = {
            name: value
            for name, value in (("end_of_turn_silence_ms", silence_ms), ("turn_detector", turn_detector))
            if value is not None and value != getattr(self.settings, name)
        }
        if turn_changes:
            self.settings = self.settings.replace(**turn_changes)  # validates the values
            await self.turn_detector.set_policy(self.settings.turn_policy)
        new_strategy = None if strategy is None else parse_strategy(strategy)
        if rtt_ms is not None and not 0 <= rtt_ms <= 5000:
            raise ValueError("emulated RTT must be between 0 and 5000 ms")
        changed = (new_strategy is not None and new_strategy != self.strategy) or (
            rtt_ms is not None and rtt_ms != self.rtt_ms
        )
        if new_strategy is not None:
            self.strategy = new_strategy
        if rtt_ms is not None:
            self.rtt_ms = float(rtt_ms)
        if changed and self._client is not None:
            await self._interrupt_turn()
            await self._close_client()
            await self._open_client()

    # ----------------------------------------------------------------- state

    @property
    def connection_state(self) -> ConnectionState:
        """cold / warming / warm / idle / closed, from the client."""
        if self.closed or self._client is None:
            return "closed"
        return self._client.state

    @property
    def client(self) -> PooledLLMClient | None:
        """The session's LLM client (None before start and after stop)."""
        return self._client

    @property
    def turns_started(self) -> int:
        """How many turns this session has begun (spoken or typed)."""
        return self._turns

    @property
    def speculation_stats(self) -> SpeculationStats:
        """How the early transcripts fared (adopted, discarded, turns ended early)."""
        return self.turn_detector.stats

    @property
    def screening(self) -> bool:
        """True while short speech over the reply is being transcribed to see if it interrupts."""
        return bool(self._screening)

    @property
    def busy(self) -> bool:
        """True while a reply is being produced or its audio is still playing."""
        running = self._turn_task is not None and not self._turn_task.done()
        return running or self.clock() < self._speaking_until

    # ----------------------------------------------------------------- input

    async def feed_audio(self, samples: np.ndarray, sample_rate: int, received_at: float | None = None) -> None:
        """Feed a chunk of microphone audio (any rate, dtype, channel layout)."""
        if self.closed:
            return
        now = received_at if received_at is not None else self.clock()
        self.last_activity = now
        if self.busy and not self.barge_in:
            return  # without barge-in, the user's speech over the reply is not a turn
        async with self._feed_lock:
            try:
                # A rate far off would be resampled into minutes of audio per chunk (1 Hz -> x16000).
                if not MIN_INPUT_RATE <= sample_rate <= MAX_INPUT_RATE:
                    raise ValueError(f"sample rate {sample_rate} Hz (expected {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz)")
                converter = self._converters.get(sample_rate)
                if converter is None:
                    converter = self._converters[sample_rate] = StreamingConverter(sample_rate)
                converted = converter.process(samples)
            except (ValueError, TypeError) as exc:
                # A broken source must not take the session down; say so once, keep listening.
                if not self._refused_audio:
                    self._refused_audio = True
                    log.warning("Session %s: unusable audio ignored (%s)", self.session_id, exc)
                    self._emit(Notice("The microphone sent audio WarmVoice cannot use; it was ignored.", "warning"))
                return
            if converted.nonfinite and not self._warned_nonfinite:
                self._warned_nonfinite = True
                self._emit(
                    Notice("The microphone sent invalid samples (NaN/Inf); they were replaced by silence.", "warning")
                )
            if converted.audio.size == 0:
                return
            found = await self.turn_detector.feed(converted.audio, now, converter.delay_samples)
            for event in found:
                if isinstance(event, SpeechStarted):
                    # Speech over the reply stops it only once it is clearly more than a
                    # backchannel or a cough (voice.interruption).
                    self._barge_in_pending = self.busy and self.barge_in
                else:
                    self._end_of_turn(event)
            if self._barge_in_pending and (
                self.turn_detector.endpointer.voiced_ms >= self.settings.barge_in_min_speech_ms or not self.busy
            ):
                self._barge_in_pending = False
                if self.busy:
                    await self._barge_in()

    def _end_of_turn(self, detected: DetectedTurn) -> None:
        """The turn-detection stage says the user is done: start the reply."""
        if detected.ended.capped:
            self._emit(
                Notice(
                    f"Recording capped at {self.settings.max_turn_seconds:.0f} s: only the first part was transcribed.",
                    "warning",
                )
            )
        if self._barge_in_pending and self.busy:
            # Speech over the reply that ended before it was confirmed as a barge-in.
            self._barge_in_pending = False
            task = asyncio.create_task(self._screen(detected), name="screen-interruption")
            self._screening.add(task)
            task.add_done_callback(self._screening.discard)
            return
        self._barge_in_pending = False
        self._begin_turn(
            self._detected_latency(detected),
            audio=detected.ended.audio,
            endpoint_at=self.clock(),
            speculation=detected.speculation,
        )

    def _detected_latency(self, detected: DetectedTurn) -> TurnLatency:
        lat = TurnLatency(turn=0, speech_end_at=detected.speech_end_at, turn_end=detected.turn_end)
        lat.extras["silence_waited_ms"] = detected.turn_end.silence_waited_ms
        if detected.turn_end.model_ms is not None:
            lat.extras["turn_model_ms"] = detected.turn_end.model_ms
        return lat

    async def _screen(self, detected: DetectedTurn) -> None:
        """Short speech over the reply: a backchannel is ignored, anything else interrupts."""
        endpoint_at = self.clock()
        spec = detected.speculation
        short = not detected.ended.capped and detected.ended.voiced_ms < self.settings.barge_in_min_speech_ms
        if short:  # (a long one arrived in one chunk with its end: it interrupts like any long speech)
            if spec is not None and spec.task is not None:
                transcript = await spec.task
            else:
                transcript = await asyncio.to_thread(self.transcriber.transcribe, detected.ended.audio)
            if transcript.no_speech or is_backchannel(transcript.text):
                self.interruptions.backchannels_ignored += 1
                log.info("Speech over the reply ignored as a backchannel: %r", transcript.text)
                return
        if self.closed:
            return
        if self.busy:
            await self._barge_in()
        self._begin_turn(
            self._detected_latency(detected), audio=detected.ended.audio, endpoint_at=endpoint_at, speculation=spec
        )

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
        return self._begin_turn(TurnLatency(turn=0, source="text", speech_end_at=self.clock()), text=text)

    async def wait_warm(self) -> WarmUpResult | None:
        """Wait for the background warm-up (if one runs) and return its result."""
        if self._warm_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._warm_task)
        return self.warmup

    # ----------------------------------------------------------------- the turn

    def _begin_turn(
        self,
        lat: TurnLatency,
        *,
        audio: np.ndarray | None = None,
        text: str | None = None,
        endpoint_at: float | None = None,
        speculation: Speculation | None = None,
    ) -> asyncio.Task[None]:
        self._turns += 1
        self._current = lat
        lat.turn = self._turns
        lat.strategy = self.strategy
        lat.rtt_ms = self.rtt_ms
        lat.warmup_ms = self.warmup.ms if self.warmup is not None and self.warmup.ok else None
        if endpoint_at is not None:
            lat.mark("endpoint_ms", endpoint_at)
        self.latencies.append(lat)
        previous = self._turn_task
        if previous is not None and not previous.done():
            previous.cancel()
        self._turn_task = asyncio.create_task(self._run_turn(lat, audio, text, speculation), name=f"turn-{lat.turn}")
        # A task cancelled before its first step never runs _run_turn's finally: end the turn here.
        self._turn_task.add_done_callback(lambda _task: self._end_unstarted(lat))
        return self._turn_task

    def _end_unstarted(self, lat: TurnLatency) -> None:
        """A newer turn replaced this one before it began (typed turns in a burst): it was
        interrupted, and says so, instead of staying "running" in the panel forever."""
        if lat.outcome == "running":
            lat.outcome = "interrupted"
            self._emit(TurnDone(lat.snapshot()))

    async def _run_turn(
        self,
        lat: TurnLatency,
        audio: np.ndarray | None,
        text: str | None,
        speculation: Speculation | None = None,
    ) -> None:
        spoken: list[str] = []
        try:
            self._update(lat)
            if audio is not None:
                if speculation is not None and speculation.task is not None:
                    # Started during the pause on the same audio: usually done by now.
                    transcript = await speculation.task
                    lat.mark("transcript_ms", speculation.done_at or self.clock())
                    lat.extras["stt_started_ms"] = round(lat.since_speech_end(speculation.started_at), 1)
                else:
                    transcript = await asyncio.to_thread(self.transcriber.transcribe, audio)
                    lat.mark("transcript_ms", self.clock())
                lat.stt_compute_ms = round(transcript.compute_ms, 1)
                lat.transcript = transcript.text
                cut, self._cut_reply = self._cut_reply, []
                if cut and (transcript.no_speech or is_backchannel(transcript.text)):
                    # The reply was stopped for nothing that forms a turn: say it again from the cut.
                    self.interruptions.false_interruptions += 1
                    if self.settings.resume_after_false_interruption:
                        lat.outcome = "resumed"
                        await self._resume(lat, cut)
                        return
                if transcript.no_speech:
                    lat.outcome = "no_speech"
                    log.info(
                        "Turn %d: no speech in %.0f ms of audio; no LLM call", lat.turn, len(audio) / SAMPLE_RATE * 1000
                    )
                    return
                text = transcript.text
            assert text is not None
            lat.transcript = text
            self._emit(UserSaid(lat.turn, text))
            self._update(lat)
            try:
                restarted = await self.endpoint.ensure_running()
            except Exception as exc:  # e.g. another program took its port: the next turn tries again
                log.error("The embedded LLM server could not be restarted: %s", exc)
                lat.outcome, lat.error = "error", "the local LLM server could not be restarted"
                self._emit(
                    Notice(
                        "The local LLM server stopped and could not be restarted; "
                        "it will be tried again on your next turn.",
                        "error",
                    )
                )
                return
            if restarted:
                self._emit(Notice("The local LLM server had stopped; it was restarted.", "warning"))
                await self._close_client()
                await self._open_client()
            await self._reply(lat, text, spoken)
            if lat.outcome == "running":
                lat.outcome = "ok"
        except asyncio.CancelledError:
            lat.outcome = "interrupted"
            raise
        except Exception as exc:  # a turn must never take the session down
            lat.outcome, lat.error = "error", _describe(exc)
            log.exception("Turn %d failed", lat.turn)
            self._emit(Notice(f"Something went wrong in this turn: {lat.error}", "error"))
        finally:
            if spoken:
                self.conversation.add_assistant(" ".join(spoken))
            if lat.outcome != "no_speech":
                lat.reply_done_ms = round(lat.since_speech_end(self.clock()), 1)
            if lat.first_sentence_ms is not None:
                log.info("TIMING: First sentence ready %.0f ms after speech end", lat.first_sentence_ms)
            if lat.first_audio_ms is not None:
                log.info("TIMING: First audio ready %.0f ms after speech end", lat.first_audio_ms)
            self._emit(TurnDone(lat.snapshot()))

    async def _resume(self, lat: TurnLatency, sentences: list[str]) -> None:
        """Speak ``sentences`` (the cut reply, from the sentence that was playing) again."""
        self.interruptions.resumed += 1
        log.info("False interruption in turn %d: resuming the reply (%d sentences)", lat.turn, len(sentences))
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        for sentence in [*sentences, None]:
            queue.put_nowait(sentence)
        self._reply_track.start()
        await self._speak(lat, queue, [])

    def _preempt(self, text: str) -> None:
        """A pause's early transcript: send its request now, before the turn is over (voice.preemptive)."""
        client = self._client
        if not self.settings.preemptive_generation or self.closed or client is None:
            return
        if self.busy or self._barge_in_pending:  # speech over a reply: not a new turn's request
            return
        if self._cut_reply and is_backchannel(text):  # a false interruption resumes the cut reply
            return
        style = self.conversation.style
        messages = self.conversation.messages_with(text)
        self.preemptive.start(client, messages, text, max_tokens=style.max_tokens, stop=style.stop)

    async def _reply(self, lat: TurnLatency, text: str, spoken: list[str]) -> None:
        client = self._client
        assert client is not None
        self.conversation.add_user(text)
        messages = self.conversation.messages()
        style = self.conversation.style
        # The very request, sent during the pause (same history, transcript and options), or None.
        early = self.preemptive.take(messages, max_tokens=style.max_tokens, stop=style.stop)
        self._reply_track.start()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak(lat, sentences, spoken), name=f"tts-{lat.turn}")
        try:
            lat.mark("request_sent_ms", early.sent_at if early is not None else self.clock())
            if early is not None:
                lat.extras["preemptive"] = 1.0
            stream = (
                early.adopt()
                if early is not None
                else client.stream_sentences(messages, max_tokens=style.max_tokens, stop=style.stop)
            )
            try:
                guard = RunawayGuard(style.max_sentences)
                async for sentence in stream:
                    if not guard.accept(sentence):
                        continue  # a runaway reply: what was said so far is the answer
                    if lat.first_sentence_ms is None:
                        lat.mark("first_sentence_ms", self.clock())
                    self._copy_request_timing(lat, early.timing if early is not None else client.last_request)
                    lat.sentences += 1
                    lat.chars += len(sentence)
                    self._emit(AssistantSaid(lat.turn, sentence))
                    self._update(lat)
                    sentences.put_nowait(sentence)
            except AuthError as exc:
                lat.outcome, lat.error = "error", str(exc)
                self._emit(Status("API key rejected", self.connection_state, "error"))
                self._emit(Notice(str(exc), "error"))
            except LLMError as exc:
                lat.outcome, lat.error = "error", str(exc)
                if lat.sentences:
                    self._emit(Notice(f"The reply was cut off: {exc}", "warning"))
                else:
                    self._emit(Notice(f"The LLM did not answer: {exc}", "error"))
            finally:
                self._copy_request_timing(lat, early.timing if early is not None else client.last_request)
                if early is not None:
                    await early.cancel()  # done already, or the turn was cut short: stop streaming
                sentences.put_nowait(None)
            await speaker
        finally:
            if not speaker.done():
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaker

    async def _speak(self, lat: TurnLatency, sentences: asyncio.Queue[str | None], spoken: list[str]) -> None:
        """Speak sentences in order; each chunk is emitted the moment it exists.

        Each sentence's synthesis starts as soon as the sentence arrives (``prefetch``), up
        to ``parallel`` at once: for a network engine (edge-tts opens a new TLS WebSocket per
        call) that hides the connection set-up of sentence k+1 behind the playback of k; a
        CPU engine (Piper) runs one at a time, since two would only slow the first down on
        a small machine.  Playback itself is the front-end's, in real time.
        """
        parallel = 1 if self.tts.name == "piper" else 2
        order: asyncio.Queue[PrefetchedSpeech | None] = asyncio.Queue()
        slots = asyncio.Semaphore(parallel)
        started: list[PrefetchedSpeech] = []

        async def start_syntheses() -> None:
            while (sentence := await sentences.get()) is not None:
                spoken.append(sentence)
                if not has_speakable(sentence):
                    continue
                await slots.acquire()
                if tts_failed:  # speech output broke: the rest of the reply is shown as text only
                    slots.release()
                    continue
                speech = prefetch(self.tts, sentence)
                self._reply_track.add(sentence)
                started.append(speech)
                order.put_nowait(speech)
            order.put_nowait(None)

        tts_failed = False
        producer = asyncio.create_task(start_syntheses(), name=f"tts-start-{lat.turn}")
        try:
            while (speech := await order.get()) is not None:
                try:
                    async for chunk in speech.chunks():
                        self._play(lat, chunk)
                    self._reply_track.spoken(speech.text, self._speaking_until)
                    slots.release()
                except TTSError as exc:
                    self._emit(Notice(f"Speech output failed ({exc}); the reply is shown as text.", "error"))
                    lat.tts_engine = "none (failed)"
                    # Free the slot the producer may be waiting for, or the turn would never end.
                    tts_failed = True
                    slots.release()
                    break
            await producer
        finally:
            producer.cancel()
            for speech in started:
                await speech.aclose()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            # Keep the spoken-text record complete even if synthesis stopped early.
            while not sentences.empty():
                item = sentences.get_nowait()
                if item is not None:
                    spoken.append(item)

    def _play(self, lat: TurnLatency, chunk: AudioChunk) -> None:
        now = self.clock()
        first = lat.first_audio_ms is None
        if first:
            lat.mark("first_audio_ms", now)
            lat.set_tts_connection(chunk.connection)
        engine = chunk.engine or self.tts.name
        if first or engine != lat.tts_engine:
            lat.tts_engine = engine
            if engine == "piper" and self.tts.name != "piper" and not lat.tts_fallback:
                lat.tts_fallback = True
                self._emit(Notice("edge-tts is unavailable; Piper (offline) is speaking instead.", "info"))
            self._update(lat)
        self._speaking_until = max(self._speaking_until, now) + chunk.duration_s
        self._emit(AudioOut(lat.turn, chunk))

    def playback_started(self, turn: int, player_ms: float | None = None) -> bool:
        """The front-end reports that turn ``turn``'s first audio has started playing.

        Stamps ``playback_confirmed_ms`` now (the report's arrival: an upper bound of when the
        user heard it) once per turn, and only after the turn's first audio was sent; returns
        True if it did.  ``player_ms`` is the front-end's own share (the chunk's arrival to the
        report), kept in ``extras``.  Reports of unknown turns are ignored.
        """
        lat = next((lat for lat in reversed(self.latencies) if lat.turn == turn), None)
        if lat is None or lat.first_audio_ms is None or lat.playback_confirmed_ms is not None:
            return False
        lat.playback_confirmed_ms = round(lat.since_speech_end(self.clock()), 1)
        if player_ms is not None:
            lat.extras["player_ms"] = round(player_ms, 1)
        log.info(
            "TIMING: Playback confirmed by the browser %.0f ms after speech end (turn %d; first audio "
            "sent at %.0f ms, %s ms of the gap in the browser's player)",
            lat.playback_confirmed_ms,
            turn,
            lat.first_audio_ms,
            "?" if player_ms is None else f"{player_ms:.0f}",
        )
        self._update(lat)
        return True

    async def _barge_in(self) -> None:
        turn = self._turns
        self.interruptions.barge_ins += 1
        self._cut_reply = self._reply_track.unheard(self.clock())
        # Announce first, so front-ends flush queued audio before anything else arrives.
        self._emit(BargeIn(turn))
        await self._interrupt_turn()
        log.info("Barge-in: the user spoke over turn %d; reply stopped", turn)

    async def _interrupt_turn(self) -> None:
        task = self._turn_task
        self._speaking_until = 0.0
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ----------------------------------------------------------------- connection

    async def _open_client(self) -> None:
        base_url = self.endpoint.base_url
        # With an emulated distance the sockets go through the delaying proxy, while the URL
        # (Host header, TLS name, certificate check) stays the real endpoint's.
        connect_to: tuple[str, int] | None = None
        if self.rtt_ms > 0:
            parts = urlsplit(base_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self._proxy = LatencyProxy(parts.hostname or "127.0.0.1", port, rtt_ms=self.rtt_ms)
            await self._proxy.start()
            connect_to = (self._proxy.host, self._proxy.port)
        self._client = PooledLLMClient(
            base_url=base_url,
            api_key=self.endpoint.api_key,
            model=self.endpoint.model,
            strategy=self.strategy,
            pool=PoolLimits(limit=self.settings.pool_limit),
            timeouts=Timeouts(
                connect=self.settings.connect_timeout_s,
                first_byte=self.settings.first_byte_timeout_s,
                chunk=self.settings.chunk_timeout_s,
            ),
            connect_to=connect_to,
            ssl=self.endpoint.ssl,
            on_event=self._on_llm_event,
            temperature=(
                self.settings.llm_temperature
                if self.settings.llm_temperature is not None
                else self.conversation.style.temperature
            ),
            # Speech can start on the first clause: time to first audio grows with its length.
            splitter=SplitterConfig(first_max_words=self.settings.first_sentence_max_words),
        )
        self.warmup = None
        if self.strategy == "prewarmed":
            self._emit(Status("Pre-warming…", "warming"))
            self._warm_task = asyncio.create_task(self._warm(self._client), name="warm-up")
        else:
            self._emit(Status(f"Ready ({STRATEGY_LABELS[self.strategy]}: no pre-warm)", self.connection_state))

    async def _warm(self, client: PooledLLMClient) -> None:
        result = await client.warm_up()
        if client is not self._client:
            return
        self.warmup = result
        if result.ok:
            self._emit(Status(f"Connection ready in {result.ms:.0f} ms", client.state))
        else:
            level: Level = "error" if isinstance(result.failure, AuthError) else "warning"
            self._emit(Status(result.error or "warm-up failed", client.state, level))

    async def _close_client(self) -> None:
        if self._warm_task is not None and not self._warm_task.done():
            self._warm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._warm_task
        self._warm_task = None
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            await proxy.stop()

    def _on_llm_event(self, name: LLMEvent, payload: RequestTiming | WarmUpResult) -> None:
        """The client's stage callbacks: show each LLM stage the moment it is known."""
        lat = self._current
        if lat is None or lat.outcome != "running" or not isinstance(payload, RequestTiming):
            return
        if payload.kind != "chat":
            return
        if name in (EVENT_STATUS, EVENT_FIRST_TOKEN, EVENT_CONNECTED):
            self._copy_request_timing(lat, payload)
            self._update(lat)
        elif name == EVENT_RETRY:
            lat.llm_attempts = payload.attempts
            # A dead pooled connection is replayed at once on a fresh one (stale_retries, no back-off):
            # the user waits for nothing, so only real retries (payload.retries) are announced.
            if payload.retries > lat.extras.get("llm_retries", 0):
                lat.extras["llm_retries"] = payload.retries
                why = payload.error or (f"HTTP {payload.status}" if payload.status else "connection failed")
                self._emit(Notice(f"LLM request failed ({why}); retrying…", "warning"))
            self._update(lat)

    # ----------------------------------------------------------------- helpers

    def _copy_request_timing(self, lat: TurnLatency, timing: RequestTiming | None) -> None:
        if timing is None:
            return
        offset = lat.since_speech_end(timing.started_at)
        for stage, value in (("status_ms", timing.ttfb_ms), ("first_token_ms", timing.first_token_ms)):
            if value is not None and getattr(lat, stage) is None:
                setattr(lat, stage, round(offset + value, 1))
        lat.reused_connection = timing.reused_connection
        lat.dns_ms = timing.dns_ms
        lat.connect_ms = timing.connect_ms
        lat.llm_attempts = timing.attempts

    def _update(self, lat: TurnLatency) -> None:
        self._emit(LatencyUpdate(lat.snapshot()))

    def _emit(self, event: SessionEvent) -> None:
        self.events.put_nowait(event)


def _describe(exc: BaseException) -> str:
    # Shown to the user: the message only; the class and the traceback are in the log.
    text = str(exc).strip()
    return text or "an unexpected error (details are in the log)"
