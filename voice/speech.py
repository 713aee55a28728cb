"""The speech stage: the reply's sentences in, audio chunks out, in order, the moment each exists.

One :class:`SpeechStage` per session owns its TTS engine and what the user is hearing: until when
the sent audio plays (so the session knows it is still speaking), and which sentences have been
heard, so a reply cut by speech that turns out not to be a turn can resume from the sentence that
was playing (:class:`voice.interruption.ReplyTracker`).  Playback itself is the front-end's, in
real time: chunks leave as :class:`~voice.events.AudioOut` events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from voice.events import AudioOut, Emit, LatencyUpdate, Notice
from voice.interruption import ReplyTracker
from voice.latency import TurnLatency
from voice.tts import AudioChunk, PrefetchedSpeech, TTSEngine, TTSError, has_speakable, prefetch

# Where a sentence's synthesis comes from: (the engine, the turn, the sentence) -> its prefetch.
SynthesisSource = Callable[[TTSEngine, TurnLatency, str], PrefetchedSpeech]


def _synthesize_now(engine: TTSEngine, _lat: TurnLatency, text: str) -> PrefetchedSpeech:
    return prefetch(engine, text)


class SpeechStage:
    """TTS scheduling and playback bookkeeping for one session.

    ``synthesis``: where each sentence's synthesis comes from (the session's preemptive speech,
    which may hand over one made during the pause); default: a new one, started at once.
    """

    def __init__(
        self,
        tts: TTSEngine,
        *,
        emit: Emit,
        clock: Callable[[], float],
        synthesis: SynthesisSource = _synthesize_now,
    ) -> None:
        self.tts = tts
        self._synthesis = synthesis
        self._emit = emit
        self._clock = clock
        self._speaking_until = 0.0
        self._heard = ReplyTracker()

    @property
    def speaking(self) -> bool:
        """True while audio already sent is still playing in the user's ear."""
        return self._clock() < self._speaking_until

    async def replace_engine(self, tts: TTSEngine, *, open_it: bool) -> None:
        """Speak with ``tts`` from the next sentence on (a new voice); the old engine is closed."""
        old, self.tts = self.tts, tts
        await old.aclose()
        if open_it:
            await tts.open()

    def new_reply(self) -> None:
        """A reply begins: forget which sentences of the last one were heard."""
        self._heard.start()

    def cut(self) -> list[str]:
        """Playback stops now (barge-in): the sentence that was playing and everything after it."""
        unheard = self._heard.unheard(self._clock())
        self.silence()
        return unheard

    def silence(self) -> None:
        """Audio already sent is discarded by the front-end: nothing is playing any more."""
        self._speaking_until = 0.0

    async def speak_again(self, lat: TurnLatency, sentences: list[str]) -> None:
        """Speak ``sentences`` (a cut reply, from the sentence that was playing) again."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        for sentence in [*sentences, None]:
            queue.put_nowait(sentence)
        self.new_reply()
        await self.speak(lat, queue, [])

    async def speak(self, lat: TurnLatency, sentences: asyncio.Queue[str | None], spoken: list[str]) -> None:
        """Speak sentences from ``sentences`` (None ends them) in order, appending each to ``spoken``.

        Each sentence's synthesis starts as soon as the sentence arrives (``prefetch``), up
        to ``parallel`` at once: for a network engine (edge-tts opens a new TLS WebSocket per
        call) that hides the connection set-up of sentence k+1 behind the playback of k; a
        CPU engine (Piper) runs one at a time, since two would only slow the first down on
        a small machine.  A TTS failure is said once and the rest of the reply is text only.
        """
        parallel = 1 if self.tts.name == "piper" else 2
        order: asyncio.Queue[PrefetchedSpeech | None] = asyncio.Queue()
        slots = asyncio.Semaphore(parallel)
        started: list[PrefetchedSpeech] = []
        tts_failed = False

        async def start_syntheses() -> None:
            while (sentence := await sentences.get()) is not None:
                spoken.append(sentence)
                if not has_speakable(sentence):
                    continue
                await slots.acquire()
                if tts_failed:  # speech output broke: the rest of the reply is shown as text only
                    slots.release()
                    continue
                speech = self._synthesis(self.tts, lat, sentence)
                self._heard.add(sentence)
                started.append(speech)
                order.put_nowait(speech)
            order.put_nowait(None)

        producer = asyncio.create_task(start_syntheses(), name=f"tts-start-{lat.turn}")
        try:
            while (speech := await order.get()) is not None:
                try:
                    async for chunk in speech.chunks():
                        self._play(lat, chunk)
                    self._heard.spoken(speech.text, self._speaking_until)
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
        now = self._clock()
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
            self._emit(LatencyUpdate(lat.snapshot()))
        self._speaking_until = max(self._speaking_until, now) + chunk.duration_s
        self._emit(AudioOut(lat.turn, chunk))
