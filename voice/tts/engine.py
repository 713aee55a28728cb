"""Text-to-speech for WarmVoice: one small interface, interchangeable engines, one output rate.

Engines (each in its own module, built by :func:`voice.tts.factory.make_tts`):

* :class:`voice.tts.piper.PiperTTS` -- offline, the bundled ``en_US-joe-medium`` Piper voice.
* :class:`voice.tts.edge.EdgeTTS` -- Microsoft's online neural voices through ``edge-tts``;
  fails fast (connect/first-audio timeout) and has a circuit breaker.
* :class:`FallbackTTS` (here) -- edge first, Piper whenever edge fails or is cooling down.

Output rate.  Every engine emits float32 mono at :data:`OUTPUT_SAMPLE_RATE` = 24000 Hz so
playback never has to care which engine spoke.  24 kHz is edge's native rate (it always
streams ``audio-24khz-48kbitrate-mono-mp3``), so the online path -- the latency-critical one
in ``auto`` mode -- needs no resampling; Piper's joe voice runs at 22050 Hz and each of its
sentences is resampled once with ``soxr`` (well under a millisecond per sentence, and
sentences start and end in silence, so resampling them independently leaves no seams).

Text bound.  One ``synthesize`` call speaks at most :data:`MAX_TEXT_CHARS` characters
(about a minute of speech); longer text is cut at a word boundary and a warning is logged.
A voice turn is a few short sentences, so the cap only protects against runaway input
(a 100 kB paste would otherwise keep a CPU core busy for minutes).

Starting the next sentence early.  A sentence's synthesis (and, for edge without a warm
socket, its connection set-up) hides behind the playback of the one before: :func:`prefetch`
starts any engine's ``synthesize`` in a background task and buffers its chunks until they are
consumed (the first sentence of a turn has nothing to hide behind: that is what edge's warm
transport, :mod:`voice.tts.edge_transport`, is for)::

    nxt = prefetch(tts, sentence_2)          # connects and synthesizes now
    async for chunk in tts.synthesize(sentence_1):
        await play(chunk)
    async with nxt:                          # usually already buffered: no connect wait
        async for chunk in nxt.chunks():
            await play(chunk)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal, Protocol

import numpy as np

from voice.stream_buffer import StreamBuffer

OUTPUT_SAMPLE_RATE = 24000
MAX_TEXT_CHARS = 1000

_log = logging.getLogger(__name__)


class TTSError(RuntimeError):
    """Speech could not be produced; the message says which engine failed and why."""


class EngineUnavailable(TTSError):
    """The engine refused without trying (e.g. its circuit breaker is open)."""


TTSConnectionKind = Literal["spare", "reused", "new"]
_CONNECTION_LABELS = {"spare": "reused spare", "reused": "reused socket", "new": "new"}


@dataclass(frozen=True)
class TTSConnection:
    """How one sentence reached a network TTS service, and what its connection cost.

    ``kind``: ``spare`` (a socket opened ahead, while nobody waited), ``reused`` (a socket kept
    after a finished request) or ``new`` (opened for this sentence).  ``setup_ms``: how long
    that socket took to open (for spare and reused ones it was paid off the path);
    ``waited_ms``: how long the sentence waited for its socket (the on-path cost).
    """

    kind: TTSConnectionKind
    setup_ms: float | None
    waited_ms: float

    @property
    def label(self) -> str:
        """ "reused spare", "reused socket" or "new", for the panel and reports."""
        return _CONNECTION_LABELS[self.kind]


@dataclass(frozen=True)
class AudioChunk:
    """A piece of speech: float32 mono samples in [-1, 1] at ``sample_rate`` Hz.

    ``engine`` names the engine that produced it, so a consumer of :class:`FallbackTTS`
    (or of several prefetched sentences at once) knows who spoke every chunk.  The first
    chunk of a network engine's sentence carries its ``connection``.
    """

    samples: np.ndarray
    sample_rate: int
    engine: str = ""
    connection: TTSConnection | None = None

    @property
    def duration_s(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.samples) / self.sample_rate


class TTSEngine(Protocol):
    """What every text-to-speech engine offers."""

    name: str

    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Speak ``text``: yield chunks at :data:`OUTPUT_SAMPLE_RATE` as soon as they exist.

        Text with nothing speakable yields no chunk and raises nothing; failures raise
        :class:`TTSError`.
        """
        ...

    async def warm(self) -> None:
        """Load everything and synthesize once, so the first real sentence is not slow."""
        ...

    async def open(self) -> None:
        """A session starts: open ahead, in the background, what its sentences will need."""
        ...

    async def aclose(self) -> None:
        """Release what the engine holds (idempotent)."""
        ...


def bound_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    # A cut in the first half would throw away too much; a hard cut is the lesser evil.
    bounded = text[:cut] if cut > limit // 2 else text[:limit]
    _log.warning("TTS text of %d characters cut to %d (MAX_TEXT_CHARS)", len(text), len(bounded))
    return bounded


def has_speakable(text: str) -> bool:
    """True when ``text`` contains at least one letter or digit (something to say)."""
    return any(ch.isalnum() for ch in text)


# --- fallback ------------------------------------------------------------------------

FallbackStage = Literal["before_audio", "mid_stream", "skipped", "warm"]


@dataclass(frozen=True)
class FallbackEvent:
    """Why the fallback engine spoke (or had to stand by) instead of the primary.

    ``stage``: ``before_audio`` (primary failed before its first chunk: the fallback spoke
    the whole sentence), ``mid_stream`` (primary failed after some audio: the fallback
    re-spoke the whole sentence), ``skipped`` (primary refused without trying, e.g. its
    circuit breaker was open), ``warm`` (primary failed its warm-up; nothing was spoken).
    """

    at: float  # time.time() of the failure
    stage: FallbackStage
    primary: str
    fallback: str
    reason: str


class FallbackTTS:
    """Speak with ``primary``; when it fails, speak with ``fallback`` instead.

    Policy, per ``synthesize`` call (the session calls it once per sentence):

    * primary fails before its first chunk -> the fallback speaks the sentence;
    * primary fails mid-sentence -> the fallback re-speaks the *whole* sentence.  The
      listener hears the sentence's start twice rather than losing words: we cannot tell
      exactly which words the partial audio covered.  The rest of the turn goes to the
      fallback too, because the primary's circuit breaker (``EdgeTTS``) is now open and
      it refuses at once (stage ``skipped``, no network wait);
    * the fallback fails too -> :class:`TTSError` (the session still shows the text).

    ``last_engine`` names who speaks the latest sentence (set by its first chunk, so it is
    right while the sentence plays), ``fallbacks`` counts sentences the
    fallback spoke, ``events`` keeps the latest :class:`FallbackEvent` s, and ``on_fallback``
    (if given) is called with each event as it happens -- for the latency panel.
    """

    def __init__(
        self,
        primary: TTSEngine,
        fallback: TTSEngine,
        *,
        on_fallback: Callable[[FallbackEvent], None] | None = None,
        max_events: int = 100,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name}+{fallback.name}"
        self.on_fallback = on_fallback
        self.last_engine: str = ""
        self.fallbacks = 0
        self.events: deque[FallbackEvent] = deque(maxlen=max_events)

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Yield the sentence's chunks from the primary, or from the fallback if it fails."""
        emitted = False
        failure: Exception | None = None
        stream = self.primary.synthesize(text)
        try:
            while True:
                # Only the primary's own failures are caught; exceptions thrown in at
                # ``yield`` by our consumer must propagate untouched.
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    failure = exc
                    break
                if not emitted:
                    emitted = True
                    self.last_engine = self.primary.name
                yield _tagged(chunk, self.primary.name)
        finally:
            await _aclose(stream)
        if failure is None:
            return

        if isinstance(failure, EngineUnavailable):
            stage: FallbackStage = "skipped"
        else:
            stage = "mid_stream" if emitted else "before_audio"
        self._record(stage, failure)
        self.fallbacks += 1
        self.last_engine = self.fallback.name
        fallback_stream = self.fallback.synthesize(text)
        try:
            while True:
                try:
                    chunk = await anext(fallback_stream)
                except StopAsyncIteration:
                    break
                except TTSError:
                    raise
                except Exception as exc:
                    raise TTSError(f"fallback TTS ({self.fallback.name}) failed: {exc}") from exc
                yield _tagged(chunk, self.fallback.name)
        finally:
            await _aclose(fallback_stream)

    async def warm(self) -> None:
        """Warm both engines at once.  A primary failure is recorded (and, for edge, opens
        its breaker so turn 1 goes straight to the fallback); a fallback failure raises."""
        primary_result, fallback_result = await asyncio.gather(
            self.primary.warm(), self.fallback.warm(), return_exceptions=True
        )
        if isinstance(primary_result, Exception):
            self._record("warm", primary_result)
        elif isinstance(primary_result, BaseException):
            raise primary_result
        if isinstance(fallback_result, TTSError):
            raise fallback_result
        if isinstance(fallback_result, BaseException):
            raise TTSError(f"fallback TTS ({self.fallback.name}) failed to warm: {fallback_result}") from (
                fallback_result
            )

    async def open(self) -> None:
        """Open both engines' session resources (edge: its warm spare socket)."""
        await self.primary.open()
        await self.fallback.open()

    async def aclose(self) -> None:
        """Close both engines."""
        try:
            await self.primary.aclose()
        finally:
            await self.fallback.aclose()

    def _record(self, stage: FallbackStage, failure: Exception) -> None:
        event = FallbackEvent(
            at=time.time(),
            stage=stage,
            primary=self.primary.name,
            fallback=self.fallback.name,
            reason=str(failure) or type(failure).__name__,
        )
        self.events.append(event)
        _log.warning("TTS fallback (%s): %s", stage, event.reason)
        if self.on_fallback is not None:
            self.on_fallback(event)


def _tagged(chunk: AudioChunk, engine: str) -> AudioChunk:
    return chunk if chunk.engine else replace(chunk, engine=engine)


async def _aclose(stream: AsyncIterator[AudioChunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


# --- prefetch ------------------------------------------------------------------------


class PrefetchedSpeech:
    """One sentence whose synthesis started ahead of playback; chunks buffer until read.

    Create it with :func:`prefetch` inside a running event loop.  Read it once with
    :meth:`chunks`; always close it (``async with`` or :meth:`aclose`), which cancels the
    synthesis if it is still running -- e.g. on barge-in.
    """

    def __init__(self, engine: TTSEngine, text: str) -> None:
        self.engine = engine
        self.text = text
        # Unbounded on purpose: the producer must drain the network as fast as it can;
        # one bounded sentence (MAX_TEXT_CHARS) of audio is at most a few MB.
        self._chunks: StreamBuffer[AudioChunk] = StreamBuffer()
        self._task = asyncio.get_running_loop().create_task(self._produce(), name="tts-prefetch")
        self._consumed = False

    async def _produce(self) -> None:
        try:
            stream = self.engine.synthesize(self.text)
            try:
                async for chunk in stream:
                    self._chunks.put(chunk)
            finally:
                await _aclose(stream)
        except Exception as exc:
            self._chunks.end(exc)
        else:
            self._chunks.end()

    @property
    def done(self) -> bool:
        """True once the synthesis has finished (all chunks are buffered or read)."""
        return self._task.done()

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """Yield the buffered chunks, then the rest as they arrive; re-raise the engine's error."""
        if self._consumed:
            raise RuntimeError("PrefetchedSpeech.chunks() can be read only once")
        self._consumed = True
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        """Cancel the synthesis if still running and wait for it to stop."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def __aenter__(self) -> PrefetchedSpeech:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def prefetch(engine: TTSEngine, text: str) -> PrefetchedSpeech:
    """Start synthesizing ``text`` now (in a task) so it is ready when its turn to play comes."""
    return PrefetchedSpeech(engine, text)
