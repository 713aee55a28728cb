"""The speech stage: the reply's sentences in, audio chunks out, in order, the moment each exists.

One :class:`SpeechStage` per session owns its TTS engine and what the user is hearing: until when
the sent audio plays (so the session knows it is still speaking), and which sentences have been
heard, so a reply cut by speech that turns out not to be a turn can resume from the sentence that
was playing (:class:`voice.turns.interruption.ReplyTracker`).  Playback itself is the front-end's, in
real time: chunks leave as :class:`~voice.events.AudioOut` events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from voice.events import AudioOut, Emit, Notice
from voice.timing import AudioPlayed, SpeechFailed, Timing
from voice.tts import AudioChunk, PrefetchedSpeech, TTSEngine, TTSError, has_speakable, prefetch
from voice.turns import ReplyTracker

# Where a sentence's synthesis comes from: (the engine, the turn, the sentence) -> its prefetch.
SynthesisSource = Callable[[TTSEngine, int, str], PrefetchedSpeech]


def _synthesize_now(engine: TTSEngine, _turn: int, text: str) -> PrefetchedSpeech:
    return prefetch(engine, text)


class SpeechStage:
    """TTS scheduling and playback bookkeeping for one session.

    ``synthesis``: where each sentence's synthesis comes from (the session's preemptive speech,
    which may hand over one made during the pause); default: a new one, started at once.
    ``timing``: where the stage reports when audio went out, and with which voice.
    """

    def __init__(
        self,
        tts: TTSEngine,
        *,
        emit: Emit,
        timing: Timing,
        clock: Callable[[], float],
        synthesis: SynthesisSource = _synthesize_now,
    ) -> None:
        self.tts = tts
        self._synthesis = synthesis
        self._emit = emit
        self._timing = timing
        self._clock = clock
        self._speaking_until = 0.0
        self._heard = ReplyTracker()
        self._turn = 0  # the turn whose reply the tracker follows
        self._voice: tuple[int, str] | None = None  # (turn, the engine last said to speak it)
        self._fallback_said = 0  # the turn whose fallback to Piper the user was told of
        # A page's player reports each sentence's start (web/player.js): only those count as heard.
        # Elsewhere (headless, this machine's speaker) a sentence is heard from when it is played.
        self.page_confirms = False

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

    def heard(self) -> tuple[list[str], list[str]]:
        """The current reply's sentences handed to playback so far, and of those the ones whose
        playback has started (see :class:`ReplyTracker`)."""
        tracker = self._heard
        said = [text for text, start in zip(tracker.sentences, tracker.starts_at, strict=True) if start is not None]
        return said, tracker.heard(self._clock(), confirmed_only=self.page_confirms)

    def confirm_playback(self, turn: int, sentence: int) -> None:
        """The page's player started sentence ``sentence`` (its index in the reply) of turn ``turn``."""
        if turn == self._turn:
            self._heard.confirm(sentence)

    def cut(self) -> list[str]:
        """Playback stops now (barge-in): the sentence that was playing and everything after it."""
        unheard = self._heard.unheard(self._clock())
        self.silence()
        return unheard

    def silence(self) -> None:
        """Audio already sent is discarded by the front-end: nothing is playing any more."""
        self._speaking_until = 0.0

    async def speak_again(self, turn: int, sentences: list[str], spoken: list[str]) -> None:
        """Speak ``sentences`` (a cut reply, from the sentence that was playing) again, appending
        to ``spoken`` each one whose playback started."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        for sentence in [*sentences, None]:
            queue.put_nowait(sentence)
        self.new_reply()
        await self.speak(turn, queue, spoken)

    async def speak(self, turn: int, sentences: asyncio.Queue[str | None], spoken: list[str]) -> None:
        """Speak sentences from ``sentences`` (None ends them) in order, appending each to ``spoken``
        when its audio is handed to playback: a sentence cut before that was never said.

        Each sentence's synthesis starts as soon as the sentence arrives (``prefetch``), up
        to ``parallel`` at once: for a network engine (edge-tts opens a new TLS WebSocket per
        call) that hides the connection set-up of sentence k+1 behind the playback of k; a
        CPU engine (Piper) runs one at a time, since two would only slow the first down on
        a small machine.  A TTS failure is said once and the rest of the reply is text only
        (recorded as shown).  A sentence with nothing to speak ("...") is recorded when its turn
        in the order comes.  Sentences still queued when the turn is cut were never said.
        """
        parallel = 1 if self.tts.name == "piper" else 2
        # In reply order: (index in the tracker, its synthesis, or the text of an unspeakable sentence).
        order: asyncio.Queue[tuple[int, PrefetchedSpeech | str] | None] = asyncio.Queue()
        slots = asyncio.Semaphore(parallel)
        started: list[PrefetchedSpeech] = []
        tts_failed = False
        self._turn = turn

        async def start_syntheses() -> None:
            while (sentence := await sentences.get()) is not None:
                if not has_speakable(sentence):
                    order.put_nowait((self._heard.add(sentence), sentence))
                    continue
                await slots.acquire()
                if tts_failed:  # speech output broke: the rest of the reply is shown as text only
                    slots.release()
                    spoken.append(sentence)
                    continue
                speech = self._synthesis(self.tts, turn, sentence)
                started.append(speech)
                order.put_nowait((self._heard.add(sentence), speech))
            order.put_nowait(None)

        producer = asyncio.create_task(start_syntheses(), name=f"tts-start-{turn}")
        try:
            while (item := await order.get()) is not None:
                index, speech = item
                if isinstance(speech, str):  # nothing to hear: shown when its turn comes
                    self._start(index, spoken)
                    self._heard.spoken(speech, max(self._speaking_until, self._clock()))
                    continue
                try:
                    async for chunk in speech.chunks():
                        self._start(index, spoken)
                        self._play(turn, chunk, index)
                    self._heard.spoken(speech.text, self._speaking_until)
                    slots.release()
                except TTSError as exc:
                    self._emit(Notice(f"Speech output failed ({exc}); the reply is shown as text.", "error"))
                    self._voice = (turn, "none (failed)")
                    self._timing(SpeechFailed(turn))
                    # This sentence and those already waiting are shown as text from now on.
                    self._start(index, spoken)
                    while not order.empty() and (rest := order.get_nowait()) is not None:
                        self._start(rest[0], spoken)
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

    def _start(self, index: int, spoken: list[str]) -> None:
        """Sentence ``index`` reaches the user now (its first audio is handed to playback, or its
        text is shown): recorded in ``spoken``, heard from when what was sent before it has played."""
        if self._heard.starts_at[index] is None:
            self._heard.started(index, max(self._speaking_until, self._clock()))
            spoken.append(self._heard.sentences[index])

    def _play(self, turn: int, chunk: AudioChunk, sentence: int) -> None:
        now = self._clock()
        first = self._voice is None or self._voice[0] != turn
        engine = chunk.engine or self.tts.name
        if first or self._voice != (turn, engine):  # the first audio, or another voice took over
            self._voice = (turn, engine)
            fallback = engine == "piper" and self.tts.name != "piper" and self._fallback_said != turn
            if fallback:
                self._fallback_said = turn
                self._emit(Notice("edge-tts is unavailable; Piper (offline) is speaking instead.", "info"))
            self._timing(AudioPlayed(turn, now, engine, chunk.connection if first else None, fallback))
        self._speaking_until = max(self._speaking_until, now) + chunk.duration_s
        self._emit(AudioOut(turn, chunk, sentence))
