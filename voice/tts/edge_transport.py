"""A warm connection to the edge-tts speech service: the set-up happens before the sentence.

``edge_tts.Communicate(...).stream()`` opens a new TLS WebSocket for every sentence, so the
first audio of every turn waits for DNS, TCP, TLS and the WebSocket upgrade (about three
round trips) before the service even starts.  :class:`WarmEdgeTransport` keeps one *spare*
socket per session, already open, upgraded and configured (``speech.config`` sent), opened
when the session starts -- while the user is still talking:

* a sentence takes a ready socket and sends only its SSML on it; the next spare starts
  opening in the background at once;
* a ready socket the service closed (its reader sees the close), or idle longer than
  ``max_idle_s``, is replaced in the background: nobody waits for it;
* after a finished request (``turn.end``) the socket goes back to the ready set (at most
  ``max_ready`` sockets) when ``reuse`` is on: whether the real service accepts a second
  request on a socket is an assumption ``python -m benchmarks.edge_probe`` checks;
* :meth:`aclose` (session stop) closes every socket and task it owns.

Failures here raise :class:`WarmTransportError`; :class:`voice.tts.edge.EdgeTTS` then speaks
the sentence through the plain ``Communicate`` path and stops using the transport for a
cool-down.

The wire format (and what it reuses from ``edge_tts``) is in :mod:`voice.tts.edge_protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import aiohttp

from voice.settings import DEFAULT_MAX_IDLE_S
from voice.tts.edge_protocol import MAX_REQUEST_BYTES, WarmTransportError, escape_text, open_socket, request_audio
from voice.tts.engine import TTSConnection, TTSConnectionKind

DEFAULT_MAX_READY = 2
_RETRY_OPEN_S = (1.0, 5.0, 15.0)  # back-off between failed spare openings, then the last one repeats

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransportStats:
    """What the transport did so far (counted here, on the client side)."""

    opened: int  # sockets opened (spares and on-path alike)
    opened_on_path: int  # of which a sentence was waiting for
    spares_taken: int  # requests sent on a pre-opened spare
    reused: int  # requests sent on a socket after a finished request
    replaced_closed: int  # ready sockets the service closed, replaced in the background
    replaced_idle: int  # ready sockets older than max_idle_s, replaced in the background
    open_failures: int
    ready: int  # ready sockets now


class _Socket:
    """One open WebSocket to the service and the task that reads it (so a close is seen at once)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, setup_ms: float, on_dead: asyncio.Event) -> None:
        self.ws = ws
        self.setup_ms = setup_ms
        self.idle_since = time.monotonic()
        self.requests = 0
        self.inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self._on_dead = on_dead
        self.reader = asyncio.get_running_loop().create_task(self._read(), name="edge-tts-socket-reader")

    @property
    def alive(self) -> bool:
        return not self.reader.done() and not self.ws.closed

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                self.inbox.put_nowait(message)
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    return
                if message.type == aiohttp.WSMsgType.ERROR:
                    return
        finally:
            self._on_dead.set()  # wake the keeper: a ready socket may need replacing

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        with contextlib.suppress(Exception):
            await self.ws.close()


class WarmEdgeTransport:
    """Spare, already-open WebSockets to the edge-tts service for one session."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        max_idle_s: float = DEFAULT_MAX_IDLE_S,
        reuse: bool = True,
        max_ready: int = DEFAULT_MAX_READY,
    ) -> None:
        if connect_timeout_s <= 0 or max_idle_s <= 0 or max_ready < 1:
            raise ValueError("connect_timeout_s and max_idle_s must be > 0, max_ready >= 1")
        self.connect_timeout_s = connect_timeout_s
        self.max_idle_s = max_idle_s
        self.reuse = reuse
        self.max_ready = max_ready
        self.last_error: str | None = None
        self._ready: list[_Socket] = []
        self._busy: set[_Socket] = set()
        self._session: aiohttp.ClientSession | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()  # sockets being closed in the background
        self._failing = False  # the latest attempt to open a socket failed
        self._wake = asyncio.Event()
        self._closed = False
        self._counts = dict.fromkeys(
            ("opened", "opened_on_path", "spares_taken", "reused", "replaced_closed", "replaced_idle", "open_failures"),
            0,
        )

    # ---------------------------------------------------------------- lifecycle

    @property
    def started(self) -> bool:
        """True between :meth:`start` and :meth:`aclose`."""
        return self._keeper is not None and not self._closed

    @property
    def available(self) -> bool:
        """Started, and a socket is ready or the latest opening worked: a sentence may use it.

        While the service cannot be reached (the keeper's openings fail) sentences go straight
        to the plain path instead of waiting for one more failed connection first.
        """
        return self.started and (bool(self._ready) or not self._failing)

    @property
    def stats(self) -> TransportStats:
        """Counts so far."""
        return TransportStats(**self._counts, ready=len(self._ready))

    def start(self) -> None:
        """Begin keeping a spare (opened in the background now).  Needs a running loop; idempotent."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="edge-tts-spare-keeper")

    async def aclose(self) -> None:
        """Close every socket and stop the keeper.  Idempotent."""
        self._closed = True
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
        sockets = [*self._ready, *self._busy]
        self._ready.clear()
        self._busy.clear()
        for sock in sockets:
            await sock.close()
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ---------------------------------------------------------------- the spare

    async def _keep(self) -> None:
        """Keep one ready socket: drop dead or stale ones, open a replacement when none is left."""
        failures = 0
        while not self._closed:
            self._wake.clear()
            self._prune()
            if not self._ready:
                try:
                    sock = await self._open()
                except WarmTransportError as exc:
                    self._counts["open_failures"] += 1
                    self.last_error = str(exc)
                    delay = _RETRY_OPEN_S[min(failures, len(_RETRY_OPEN_S) - 1)]
                    failures += 1
                    _log.debug("edge-tts spare could not open (%s); retrying in %.0f s", exc, delay)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    continue
                failures = 0
                self._ready.append(sock)
                continue
            oldest = min(sock.idle_since for sock in self._ready)
            wait_s = max(0.0, oldest + self.max_idle_s - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()

    def _prune(self) -> None:
        now = time.monotonic()
        for sock in list(self._ready):
            if not sock.alive:
                self._counts["replaced_closed"] += 1
            elif now - sock.idle_since >= self.max_idle_s:
                self._counts["replaced_idle"] += 1
            else:
                continue
            self._ready.remove(sock)
            self._discard(sock)

    def _discard(self, sock: _Socket) -> None:
        """Close ``sock`` in the background (nobody waits for a close handshake)."""
        task = asyncio.get_running_loop().create_task(sock.close(), name="edge-tts-socket-close")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _open(self) -> _Socket:
        """Connect, upgrade and configure one socket, within ``connect_timeout_s``."""
        if self._session is None:
            # trust_env like edge-tts (HTTPS_PROXY); one session, one connector, one DNS cache.
            self._session = aiohttp.ClientSession(trust_env=True)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                ws = await open_socket(self._session)
        except TimeoutError:
            self._failing = True
            raise WarmTransportError(f"edge-tts socket not open within {self.connect_timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self._failing = True
            raise WarmTransportError(f"edge-tts socket could not open: {type(exc).__name__}: {exc}") from exc
        self._counts["opened"] += 1
        self._failing = False
        return _Socket(ws, (time.perf_counter() - started) * 1000.0, self._wake)

    # ---------------------------------------------------------------- requests

    async def _acquire(self) -> tuple[_Socket, TTSConnection]:
        """A ready socket (a reused one first: proven to take another request), else a new one."""
        asked = time.perf_counter()
        self._prune()
        if self._ready:
            reused = [s for s in self._ready if s.requests]
            sock = reused[-1] if reused else self._ready[0]
            self._ready.remove(sock)
            kind: TTSConnectionKind = "reused" if sock.requests else "spare"
            self._counts["spares_taken" if kind == "spare" else "reused"] += 1
            self._wake.set()  # the keeper opens the next spare now, if none is left
            self._busy.add(sock)
        else:
            sock = await self._open_on_path()
            kind = "new"
        waited = (time.perf_counter() - asked) * 1000.0
        return sock, TTSConnection(kind, round(sock.setup_ms, 1), round(waited, 1))

    async def _open_on_path(self) -> _Socket:
        """A new socket for a sentence that is waiting (no ready one)."""
        sock = await self._open()
        self._counts["opened_on_path"] += 1
        self._busy.add(sock)
        return sock

    def _release(self, sock: _Socket, finished: bool) -> None:
        """After a request: keep the socket ready if it may take another one, else close it."""
        self._busy.discard(sock)
        sock.requests += 1
        sock.idle_since = time.monotonic()
        if finished and self.reuse and sock.alive and not self._closed and len(self._ready) < self.max_ready:
            self._ready.append(sock)
            self._wake.set()
        else:
            self._discard(sock)

    async def speak(self, text: str, voice: str) -> AsyncGenerator[bytes | TTSConnection]:
        """Send ``text`` on a warm socket; with its first audio yield the
        :class:`~voice.tts.TTSConnection` it used, then the MP3 bytes as they arrive.  Ends after
        the service's ``turn.end``.

        A ready socket that turns out dead before any audio (closed by the service a moment
        ago, before its reader could tell) is replaced once by a new one, as a pooled HTTP
        client replays a request on a stale connection.  Any other failure raises
        :class:`WarmTransportError`.
        """
        if self._closed:
            raise WarmTransportError("the warm transport is closed")
        escaped = escape_text(text)
        if len(escaped.encode("utf-8")) > MAX_REQUEST_BYTES:
            raise WarmTransportError("text too long for one request")
        asked = time.perf_counter()
        sock, connection = await self._acquire()
        while True:
            finished = False
            audio = 0
            try:
                async for data in request_audio(sock.ws, sock.inbox.get, escaped, voice):
                    if not audio:
                        yield connection
                    audio += len(data)
                    yield data
                finished = True
                return
            except WarmTransportError:
                if audio or connection.kind == "new":
                    raise
                _log.debug("edge-tts %s socket was stale; once more on a new one", connection.kind)
            finally:
                self._release(sock, finished)
            sock = await self._open_on_path()
            connection = TTSConnection("new", round(sock.setup_ms, 1), round((time.perf_counter() - asked) * 1000, 1))
