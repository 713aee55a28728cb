"""Online text-to-speech with Microsoft's neural voices through ``edge-tts``.

The service streams MP3 (24 kHz, 48 kbit/s mono); :class:`EdgeTTS` decodes it incrementally
with PyAV and yields PCM chunks as soon as frames decode.  Two paths reach the service:

* **warm** -- with a started :class:`~voice.tts.edge_transport.WarmEdgeTransport` (opened by
  :meth:`EdgeTTS.open` at session start) a sentence goes out on a socket opened before it was
  asked for, so the connection set-up is off its path;
* **plain** -- ``edge_tts.Communicate(text, voice).stream()``, a new TLS WebSocket per call:
  the fallback whenever the warm path fails, and the only path without a transport.

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
``last_call`` / ``calls``: the path, the :class:`~voice.tts.TTSConnection` used (also on the
first chunk, for the latency panel), ``connect_ms`` (plain path: DNS + TCP + TLS, timed by the
connector) and ``first_audio_ms`` (call start to the first MP3 bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import edge_tts
import numpy as np

from voice.tts.edge_transport import WarmEdgeTransport
from voice.tts.engine import (
    OUTPUT_SAMPLE_RATE,
    AudioChunk,
    EngineUnavailable,
    TTSConnection,
    TTSError,
    bound_text,
    has_speakable,
)
from voice.tts.mp3_decoder import Mp3StreamDecoder

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
    path: str = "plain"  # "warm" (a socket of the transport) or "plain" (edge_tts.Communicate)
    connection: TTSConnection | None = None  # which socket, and what it cost


class CircuitBreaker:
    """Open after a failure, refuse for ``cooldown_s``, then let one attempt through."""

    def __init__(self, cooldown_s: float = DEFAULT_COOLDOWN_S, clock: Callable[[], float] = time.monotonic) -> None:
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
    """Microsoft edge-tts engine with a first-audio timeout, a circuit breaker and, when given a
    :class:`~voice.tts.edge_transport.WarmEdgeTransport`, warm sockets (see :meth:`synthesize`)."""

    name = "edge"

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        breaker: CircuitBreaker | None = None,
        transport: WarmEdgeTransport | None = None,
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
        # Own breaker unless one is shared in (the runtime's, see voice.runtime); then
        # cooldown_s and clock are the shared breaker's.
        self.breaker = breaker if breaker is not None else CircuitBreaker(cooldown_s, clock)
        self.transport = transport
        # A failure of the warm path sends sentences down the plain path for a cool-down.
        self.warm_breaker = CircuitBreaker(self.breaker.cooldown_s, clock)
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

    async def open(self) -> None:
        """Start keeping a warm spare socket (opened in the background) if there is a transport."""
        if self.transport is not None:
            self.transport.start()

    async def aclose(self) -> None:
        """Close the warm sockets, if any (a plain call closes its own WebSocket)."""
        if self.transport is not None:
            await self.transport.aclose()

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Yield decoded chunks as the service streams them; raise TTSError on any failure.

        With a started transport the sentence goes out on a warm socket.  If that fails --
        before its audio or in the middle of it -- the whole sentence is spoken again through
        the plain ``edge_tts.Communicate`` path (a listener may hear its start twice rather
        than lose words), and the warm path rests for the breaker's cool-down.  A failure of
        the plain path opens the breaker, so :class:`~voice.tts.FallbackTTS` moves to Piper.

        Raises :class:`~voice.tts.EngineUnavailable` at once while the breaker is open.
        """
        if self.breaker.is_open:
            raise EngineUnavailable(
                f"edge-tts skipped for {self.breaker.remaining_s():.0f} s more after: {self.breaker.reason}"
            )
        bounded = bound_text(text)
        if not has_speakable(bounded):
            return
        transport = self.transport
        if transport is not None and transport.available and not self.warm_breaker.is_open:
            try:
                async with contextlib.aclosing(self._stream(bounded, transport)) as warm:
                    async for chunk in warm:
                        yield chunk
            except EdgeTTSError as exc:
                self.warm_breaker.trip(str(exc))
                _log.warning("edge-tts warm socket failed (%s); using a new connection per sentence for now", exc)
            else:
                self.breaker.reset()
                return
        try:
            async with contextlib.aclosing(self._stream(bounded, None)) as plain:
                async for chunk in plain:
                    yield chunk
        except TTSError as exc:
            self.breaker.trip(str(exc))
            raise
        self.breaker.reset()

    async def _stream(self, bounded: str, transport: WarmEdgeTransport | None) -> AsyncGenerator[AudioChunk]:
        """One attempt: on ``transport``'s warm socket, or (None) a plain ``Communicate`` call."""
        clock = _CallClock()
        loop = asyncio.get_running_loop()
        source = transport.speak(bounded, self.voice) if transport is not None else self._plain(bounded, clock)
        decoder = Mp3StreamDecoder(OUTPUT_SAMPLE_RATE)
        connection: TTSConnection | None = None
        announce: TTSConnection | None = None
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
                        item = await anext(source, None)
                except TimeoutError:
                    if first_audio_ms is None:
                        raise EdgeTTSError(f"edge-tts: no audio within {self.timeout_s:g} s") from None
                    raise EdgeTTSError(f"edge-tts: stream stalled for {self.timeout_s:g} s") from None
                except TTSError:
                    raise
                except Exception as exc:
                    raise EdgeTTSError(f"edge-tts failed: {_describe(exc)}") from exc
                if item is None:
                    break
                if isinstance(item, TTSConnection):
                    connection = announce = item
                    continue
                if first_audio_ms is None:
                    first_audio_ms = clock.ms()
                audio_bytes += len(item)
                samples = decoder.feed(item)
                if samples.size:
                    if first_chunk_ms is None:
                        first_chunk_ms = clock.ms()
                    samples_out += samples.size
                    yield AudioChunk(np.clip(samples, -1.0, 1.0), OUTPUT_SAMPLE_RATE, self.name, announce)
                    announce = None

            tail = decoder.flush()
            if tail.size:
                samples_out += tail.size
                yield AudioChunk(np.clip(tail, -1.0, 1.0), OUTPUT_SAMPLE_RATE, self.name, announce)
            completed = True
        except TTSError as exc:
            error = str(exc)
            raise
        finally:
            await source.aclose()
            stats = EdgeCallStats(
                text_chars=len(bounded),
                connect_ms=clock.connect_ms if transport is None else None,
                first_audio_ms=first_audio_ms,
                first_chunk_ms=first_chunk_ms,
                total_ms=clock.ms(),
                audio_bytes=audio_bytes,
                audio_s=samples_out / OUTPUT_SAMPLE_RATE,
                completed=completed,
                error=error,
                path="plain" if transport is None else "warm",
                connection=connection,
            )
            self.calls.append(stats)
            _log.debug("edge-tts call: %s", stats)

    async def _plain(self, bounded: str, clock: _CallClock) -> AsyncGenerator[bytes | TTSConnection]:
        """edge-tts's own path: a new TLS WebSocket for this one sentence."""
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
        audio_bytes = 0
        try:
            async for message in stream:
                data = message.get("data") if message["type"] == "audio" else None
                if not data:
                    continue
                if audio_bytes == 0:
                    # Set up on the path: the sentence waited for DNS, TCP and TLS (the
                    # WebSocket upgrade is not separately visible through Communicate).
                    yield TTSConnection("new", clock.connect_ms, clock.connect_ms or 0.0)
                audio_bytes += len(data)
                yield data
            _check_turn_ended(communicate, audio_bytes)
        finally:
            await stream.aclose()
            if not connector.closed:
                await connector.close()


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
