"""Preemptive speech: the pause's reply starts being spoken into a buffer before the turn is over.

Preemptive generation (:mod:`voice.preemptive`) sends the LLM request on the pause's early
transcript.  When that reply's first sentence is complete while the turn is still undecided, a
:class:`PreemptiveSpeech` synthesizes it at once (LiveKit's ``preemptive_tts``), into a
:class:`~voice.tts.PrefetchedSpeech` nobody plays yet:

* the turn ends and adopts the request: its speech stage asks for the first sentence
  (:meth:`PreemptiveSpeech.synthesis`) and gets the buffer, done or still going, instead of a new
  synthesis: first audio leaves the moment the turn is confirmed;
* the user goes on, or the turn sends another request: the buffer is dropped (its synthesis
  cancelled) and counted, with the CPU it cost (:class:`~voice.preemptive.PreemptiveStats`).

Only the first :data:`MAX_BUFFERED_SENTENCES` sentence(s) are synthesized ahead: the rest is
prefetched behind the first one's playback anyway, and each one more is more waste when the
guess is wrong.  Bounds on the CPU: one preemptive synthesis per session at a time, and none
while a confirmed turn of any session is synthesizing (the runtime's
:class:`~voice.synthesis_gate.SynthesisGate`).  Every synthesis of the session goes through
here, so the gate sees the confirmed ones too.

The turn's record stays measured (:class:`~voice.timing.BufferedSpeechUsed`): ``tts_buffered``
(1), ``tts_buffer_started_ms`` and ``tts_buffer_ready_ms`` (when the buffered sentence's synthesis
started and ended, in ms after the end of speech: before the decision when it helped) and
``tts_buffer_cpu_ms`` in its extras; ``first_audio_ms`` is still when its first chunk was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from voice.preemptive import PreemptiveReply, PreemptiveStats
from voice.synthesis_gate import GateTicket, SynthesisGate
from voice.timing import BufferedSpeechUsed, Timing
from voice.tts import AudioChunk, PrefetchedSpeech, TTSEngine, has_speakable, prefetch

log = logging.getLogger(__name__)

# Sentences of a preemptive reply synthesized before the turn adopts it (the first one is short:
# llm.sentences cuts it at its first clause).
MAX_BUFFERED_SENTENCES = 1


class TimedSynthesis:
    """``engine``'s synthesis behind the gate (a confirmed one, or a preemptive one with a
    ``ticket``), with when it started, sent its first audio and ended, and Piper's CPU time.

    A :class:`~voice.tts.TTSEngine` for :func:`~voice.tts.prefetch`, for one call.  ``lock``:
    the session's one-preemptive-synthesis-at-a-time lock (held from before the gate to the end).
    """

    def __init__(
        self,
        engine: TTSEngine,
        gate: SynthesisGate,
        *,
        ticket: GateTicket | None = None,
        lock: asyncio.Lock | None = None,
        clock: Callable[[], float] = time.perf_counter,
        on_done: Callable[[TimedSynthesis], None] | None = None,
    ) -> None:
        self.engine = engine
        self.name = engine.name
        self.ticket = ticket
        self.started_at: float | None = None
        self.first_audio_at: float | None = None
        self.done_at: float | None = None
        self.cpu_ms: float | None = None  # the worker thread's CPU (Piper); None for other engines
        self.on_done = on_done
        self._gate = gate
        self._lock = lock
        self._clock = clock

    @property
    def wall_ms(self) -> float:
        """How long the synthesis ran (0 if it never started)."""
        if self.started_at is None:
            return 0.0
        return ((self.done_at or self._clock()) - self.started_at) * 1000.0

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """The engine's chunks for ``text``, once the gate lets this synthesis run."""
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            gate = self._gate.confirmed() if self.ticket is None else self._gate.preemptive(self.ticket)
            await stack.enter_async_context(gate)
            self.started_at = self._clock()
            stream = self.engine.synthesize(text)
            try:
                async for chunk in stream:
                    if self.first_audio_at is None:
                        self.first_audio_at = self._clock()
                    yield chunk
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
                self.done_at = self._clock()
                # Read at once: no other call of this engine can finish in between (no await since).
                self.cpu_ms = getattr(getattr(self.engine, "last_call", None), "cpu_ms", None)
                if self.on_done is not None:
                    self.on_done(self)

    async def warm(self) -> None:
        """Warm the engine underneath."""
        await self.engine.warm()

    async def open(self) -> None:
        """Open the engine underneath."""
        await self.engine.open()

    async def aclose(self) -> None:
        """Nothing of its own to release: the engine underneath is the session's, closed by it."""
        return None


@dataclass
class _Buffered:
    reply: PreemptiveReply
    text: str
    timed: TimedSynthesis
    speech: PrefetchedSpeech


class PreemptiveSpeech:
    """One session's preemptive syntheses: it listens to the session's preemptive replies
    (a :class:`~voice.preemptive.PreemptiveListener`) and is the speech stage's source of
    syntheses (:meth:`synthesis`).

    ``engine``: the session's engine now (the page may switch voices); ``enabled``: whether
    ``PREEMPTIVE_TTS`` is on now; ``stats``: the preemptive requests' statistics, where the
    syntheses are counted too; ``timing``: where a turn that plays a buffer hears of its synthesis.
    """

    def __init__(
        self,
        engine: Callable[[], TTSEngine],
        gate: SynthesisGate,
        stats: PreemptiveStats,
        *,
        enabled: Callable[[], bool],
        timing: Timing,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.gate = gate
        self._timing = timing
        self.stats = stats
        self._engine = engine
        self._enabled = enabled
        self._clock = clock
        self._buffered: list[_Buffered] = []
        self._adopted: PreemptiveReply | None = None
        self._one_at_a_time = asyncio.Lock()
        self._dropping: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- the preemptive replies

    def sentence(self, reply: PreemptiveReply, index: int, text: str) -> None:
        """A sentence of a reply not adopted yet: synthesize the first one(s) now (unless the reply
        may not be spoken ahead: its transcript read unfinished)."""
        if not self._enabled() or not reply.speak_ahead or index >= MAX_BUFFERED_SENTENCES or not has_speakable(text):
            return
        self._drop(lambda b: b.reply is not reply)  # a newer request replaced the one they were for
        timed = TimedSynthesis(
            self._engine(), self.gate, ticket=self.gate.ticket(), lock=self._one_at_a_time, clock=self._clock
        )
        self._buffered.append(_Buffered(reply, text, timed, prefetch(timed, text)))
        self.stats.tts_started += 1

    def adopted(self, reply: PreemptiveReply) -> None:
        """The turn adopted ``reply``: its buffered sentences are the turn's, first in line at the gate."""
        self._drop(lambda b: b.reply is not reply)
        self._adopted = reply
        for buffered in self._buffered:
            assert buffered.timed.ticket is not None
            buffered.timed.ticket.promote()

    def dropped(self, reply: PreemptiveReply) -> None:
        """``reply`` was stopped unadopted (the user went on, or the turn asked something else)."""
        self._drop(lambda b: b.reply is reply)

    # ----------------------------------------------------------------- the speech stage

    def synthesis(self, engine: TTSEngine, turn: int, text: str) -> PrefetchedSpeech:
        """The synthesis of ``text`` for turn ``turn``: the buffered one when it is this very
        sentence of the adopted reply, by this engine; else a new one, started now."""
        head = self._buffered[0] if self._buffered else None
        if head is not None and head.reply is self._adopted and head.text == text and head.timed.engine is engine:
            self._buffered.pop(0)
            self.stats.tts_played += 1
            head.timed.on_done = lambda timed: self._stamp(turn, timed)
            self._stamp(turn, head.timed)
            return head.speech
        self._drop(lambda b: True)  # the reply went another way: what was made ahead is not this
        return prefetch(TimedSynthesis(engine, self.gate, clock=self._clock), text)

    def _stamp(self, turn: int, timed: TimedSynthesis) -> None:
        self._timing(BufferedSpeechUsed(turn, timed.started_at, timed.done_at, timed.cpu_ms))

    # ----------------------------------------------------------------- dropping

    def _drop(self, which: Callable[[_Buffered], bool]) -> None:
        for buffered in [b for b in self._buffered if which(b)]:
            self._buffered.remove(buffered)
            self.stats.tts_dropped += 1
            task = asyncio.get_running_loop().create_task(self._close(buffered), name="tts-preemptive-drop")
            self._dropping.add(task)
            task.add_done_callback(self._dropping.discard)

    async def _close(self, buffered: _Buffered) -> None:
        await buffered.speech.aclose()  # cancels the synthesis if it still runs, and waits for it
        timed = buffered.timed
        self.stats.tts_dropped_ms += round(timed.wall_ms, 1)
        self.stats.tts_dropped_cpu_ms += timed.cpu_ms or 0.0
        log.info(
            "Preemptive synthesis of %r dropped (%.0f ms, %s ms CPU)",
            buffered.text[:40],
            timed.wall_ms,
            "?" if timed.cpu_ms is None else f"{timed.cpu_ms:.0f}",
        )

    async def settled(self) -> None:
        """Wait until every dropped synthesis has stopped and been counted."""
        while self._dropping:
            await asyncio.wait(set(self._dropping))

    async def aclose(self) -> None:
        """Drop what is buffered (session stop) and wait for it to stop."""
        self._drop(lambda b: True)
        self._adopted = None
        await self.settled()
