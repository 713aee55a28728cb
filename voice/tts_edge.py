"""Online text-to-speech with Microsoft's neural voices through ``edge-tts``.

``edge_tts.Communicate(text, voice).stream()`` opens a new TLS WebSocket per call and
yields MP3 bytes (24 kHz, 48 kbit/s mono) as the service sends them.  :class:`EdgeTTS`
decodes them incrementally with PyAV and yields PCM chunks as soon as frames decode.

Failing fast (the app must stay responsive offline):

* a deadline of ``timeout_s`` from the start of the call to the first audio bytes covers
  DNS, TCP, TLS, the WebSocket upgrade and the service's first response alike; after the
  first audio, every further message must arrive within ``timeout_s`` of being awaited;
* a stream that ends without the service's ``turn.end`` (a dropped connection) is an
  error, not silently truncated audio;
* a :class:`CircuitBreaker` opens on any failure: for ``cooldown_s`` every call raises
  :class:`~voice.tts.EngineUnavailable` at once, without touching the network, so the rest
  of a turn goes straight to the fallback.  After the cool-down one call is let through;
  its success closes the breaker, its failure opens it again.

Each call's cost is measured (never estimated) and kept as :class:`EdgeCallStats` in
``last_call`` / ``calls``: ``connect_ms`` (DNS + TCP + TLS, timed by the connector) and
``first_audio_ms`` (call start to the first MP3 bytes).  To hide that cost, start the next
sentence while the current one plays: :func:`voice.tts.prefetch`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import av
import edge_tts
import numpy as np

from voice.tts import OUTPUT_SAMPLE_RATE, AudioChunk, EngineUnavailable, TTSError, bound_text, has_speakable

DEFAULT_VOICE = "en-US-AriaNeural"
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_COOLDOWN_S = 60.0
WARM_TEXT = "Hi."

_log = logging.getLogger(__name__)


class EdgeTTSError(TTSError):
    """edge-tts failed: unreachable, too slow, or the stream broke."""


@dataclass(frozen=True)
class EdgeCallStats:
    """One edge-tts call, timed with ``time.perf_counter`` from the start of the call."""

    text_chars: int
    connect_ms: float | None  # DNS + TCP + TLS done; None if never connected
    first_audio_ms: float | None  # first MP3 bytes received; None if none came
    first_chunk_ms: float | None  # first decoded PCM chunk handed to the caller
    total_ms: float
    audio_bytes: int
    audio_s: float
    completed: bool  # the whole text was received (False: failed or caller stopped early)
    error: str | None


class CircuitBreaker:
    """Open after a failure, refuse for ``cooldown_s``, then let one attempt through."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._open_until: float | None = None
        self.reason: str | None = None
        self.trips = 0

    @property
    def is_open(self) -> bool:
        """True while calls are refused."""
        return self._open_until is not None and self._clock() < self._open_until

    def remaining_s(self) -> float:
        """Seconds until the next attempt is allowed (0 when closed)."""
        if self._open_until is None:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def trip(self, reason: str) -> None:
        """Record a failure: refuse calls for ``cooldown_s`` from now."""
        self._open_until = self._clock() + self.cooldown_s
        self.reason = reason
        self.trips += 1

    def reset(self) -> None:
        """Record a success: close the breaker."""
        self._open_until = None
        self.reason = None


_shared_breakers: dict[float, CircuitBreaker] = {}


def shared_breaker(cooldown_s: float = DEFAULT_COOLDOWN_S) -> CircuitBreaker:
    """The process-wide breaker for this cool-down, shared by the engines ``make_tts`` builds.

    Whether the edge service is reachable is a property of the host, not of one session:
    a failure seen while warming up, or by one session, spares every other session the
    timeout.  (Plain attribute updates: safe to share across threads and event loops.)
    """
    return _shared_breakers.setdefault(cooldown_s, CircuitBreaker(cooldown_s))


class Mp3StreamDecoder:
    """Incremental MP3 -> float32 mono PCM at ``output_rate``, fed bytes as they arrive.

    It runs on the event loop: an MP3 frame (24 ms) decodes in microseconds, less than a
    hop to a worker thread would cost.
    """

    def __init__(self, output_rate: int = OUTPUT_SAMPLE_RATE) -> None:
        self._codec: Any = av.CodecContext.create("mp3", "r")
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=output_rate)

    def feed(self, data: bytes) -> np.ndarray:
        """Decode what ``data`` completes; returns the new samples (maybe none yet)."""
        return self._decode(self._codec.parse(data))

    def flush(self) -> np.ndarray:
        """Decode everything still buffered; call once at the end of the stream."""
        parts = [self._decode(self._codec.parse(None)), self._frames(self._codec.decode(None))]
        parts.append(self._frames([], final=True))
        return np.concatenate(parts)

    def _decode(self, packets: list[Any]) -> np.ndarray:
        parts = [np.zeros(0, dtype=np.float32)]
        for packet in packets:
            try:
                frames = self._codec.decode(packet)
            except av.error.FFmpegError as exc:
                # A damaged or non-audio packet (e.g. an ID3 tag): skip it, keep the stream.
                _log.debug("MP3 packet skipped: %s", exc)
                continue
            parts.append(self._frames(frames))
        return np.concatenate(parts)

    def _frames(self, frames: list[Any], *, final: bool = False) -> np.ndarray:
        parts = [np.zeros(0, dtype=np.float32)]
        for frame in frames:
            parts.extend(out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame))
        if final:
            parts.extend(out.to_ndarray().reshape(-1) for out in self._resampler.resample(None))
        return np.concatenate(parts).astype(np.float32, copy=False)


class _TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector that reports when its connection (DNS + TCP + TLS) is ready."""

    def __init__(self, on_connected: Callable[[], None]) -> None:
        super().__init__()
        self._on_connected = on_connected

    async def connect(self, *args: Any, **kwargs: Any) -> Any:
        connection = await super().connect(*args, **kwargs)
        self._on_connected()
        return connection


class _CallClock:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.connect_ms: float | None = None

    def ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def mark_connected(self) -> None:
        self.connect_ms = self.ms()


class EdgeTTS:
    """Microsoft edge-tts engine with a first-audio timeout and a circuit breaker."""

    name = "edge"

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        breaker: CircuitBreaker | None = None,
        max_stats: int = 50,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be greater than 0")
        try:
            # Validates the voice name now (edge-tts raises ValueError) rather than mid-turn.
            edge_tts.Communicate("check", voice)
        except (TypeError, ValueError) as exc:
            raise TTSError(f"invalid edge-tts voice {voice!r}: {exc}") from exc
        self.voice = voice
        self.timeout_s = timeout_s
        # Own breaker unless one is shared in (see shared_breaker); then cooldown_s and
        # clock are the shared breaker's.
        self.breaker = breaker if breaker is not None else CircuitBreaker(cooldown_s, clock)
        self.calls: deque[EdgeCallStats] = deque(maxlen=max_stats)

    @property
    def last_call(self) -> EdgeCallStats | None:
        """Timing of the latest finished call (also failed ones)."""
        return self.calls[-1] if self.calls else None

    @property
    def last_first_audio_ms(self) -> float | None:
        """Call start -> first MP3 bytes of the latest call."""
        return self.last_call.first_audio_ms if self.last_call else None

    @property
    def last_connect_ms(self) -> float | None:
        """DNS + TCP + TLS time of the latest call."""
        return self.last_call.connect_ms if self.last_call else None

    async def warm(self) -> None:
        """Synthesize one short phrase: proves the service answers (or opens the breaker)."""
        async for _ in self.synthesize(WARM_TEXT):
            pass

    async def aclose(self) -> None:
        """Nothing to release: every call closes its own WebSocket and session."""

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Yield decoded chunks as the service streams them; raise TTSError on any failure.

        Raises :class:`~voice.tts.EngineUnavailable` at once while the breaker is open.
        """
        if self.breaker.is_open:
            raise EngineUnavailable(
                f"edge-tts skipped for {self.breaker.remaining_s():.0f} s more after: {self.breaker.reason}"
            )
        bounded = bound_text(text)
        if not has_speakable(bounded):
            return

        clock = _CallClock()
        loop = asyncio.get_running_loop()
        connector = _TimedConnector(clock.mark_connected)
        whole_seconds = max(1, math.ceil(self.timeout_s))  # edge-tts takes ints; ours is the real bound
        communicate = edge_tts.Communicate(
            bounded,
            self.voice,
            connector=connector,
            connect_timeout=whole_seconds,
            receive_timeout=whole_seconds,
        )
        stream = communicate.stream()
        decoder = Mp3StreamDecoder(OUTPUT_SAMPLE_RATE)
        first_audio_ms: float | None = None
        first_chunk_ms: float | None = None
        audio_bytes = 0
        samples_out = 0
        completed = False
        error: str | None = None
        first_audio_deadline = loop.time() + self.timeout_s
        try:
            while True:
                deadline = first_audio_deadline if first_audio_ms is None else loop.time() + self.timeout_s
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await anext(stream, None)
                except TimeoutError:
                    if first_audio_ms is None:
                        raise EdgeTTSError(f"edge-tts: no audio within {self.timeout_s:g} s") from None
                    raise EdgeTTSError(f"edge-tts: stream stalled for {self.timeout_s:g} s") from None
                except Exception as exc:
                    raise EdgeTTSError(f"edge-tts failed: {_describe(exc)}") from exc
                if message is None:
                    break
                data = message.get("data") if message["type"] == "audio" else None
                if not data:
                    continue
                if first_audio_ms is None:
                    first_audio_ms = clock.ms()
                audio_bytes += len(data)
                samples = decoder.feed(data)
                if samples.size:
                    if first_chunk_ms is None:
                        first_chunk_ms = clock.ms()
                    samples_out += samples.size
                    yield AudioChunk(np.clip(samples, -1.0, 1.0), OUTPUT_SAMPLE_RATE, engine=self.name)

            _check_turn_ended(communicate, audio_bytes)
            tail = decoder.flush()
            if tail.size:
                samples_out += tail.size
                yield AudioChunk(np.clip(tail, -1.0, 1.0), OUTPUT_SAMPLE_RATE, engine=self.name)
            completed = True
            self.breaker.reset()
        except TTSError as exc:
            error = str(exc)
            self.breaker.trip(error)
            raise
        finally:
            await stream.aclose()
            if not connector.closed:
                await connector.close()
            stats = EdgeCallStats(
                text_chars=len(bounded),
                connect_ms=clock.connect_ms,
                first_audio_ms=first_audio_ms,
                first_chunk_ms=first_chunk_ms,
                total_ms=clock.ms(),
                audio_bytes=audio_bytes,
                audio_s=samples_out / OUTPUT_SAMPLE_RATE,
                completed=completed,
                error=error,
            )
            self.calls.append(stats)
            _log.debug("edge-tts call: %s", stats)


def _check_turn_ended(communicate: edge_tts.Communicate, audio_bytes: int) -> None:
    """Raise if the service closed the stream before ``turn.end``.

    edge-tts ends its stream quietly when the socket closes early.  It credits a turn's
    audio bytes to ``state["cumulative_audio_bytes"]`` only when ``turn.end`` arrives, so a
    shortfall against the bytes we received means the last turn was cut off.  (If a future
    edge-tts drops that state, the check is skipped rather than guessed.)
    """
    state = getattr(communicate, "state", None)
    if not isinstance(state, dict) or "cumulative_audio_bytes" not in state:
        return
    if state["cumulative_audio_bytes"] != audio_bytes:
        raise EdgeTTSError(f"edge-tts stream ended before turn.end after {audio_bytes} bytes: connection dropped")


def _describe(exc: Exception) -> str:
    """A short, user-presentable reason (aiohttp's connector errors embed object reprs)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = getattr(exc, "os_error", None)
        why = getattr(cause, "strerror", None) or (str(cause) if cause else "") or type(exc).__name__
        return f"cannot connect to {exc.host}:{exc.port} ({why})"
    return f"{type(exc).__name__}: {exc}"
