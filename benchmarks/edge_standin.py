"""A local stand-in for Microsoft's edge-tts WebSocket service, for tests and benchmarks.

The real service (``wss://speech.platform.bing.com/...``) is unreachable from the development
machines, so the tests and ``python -m benchmarks.pipeline --tts edge-standin`` point edge-tts
at this aiohttp.web server on 127.0.0.1, over real TLS with a ``trustme`` certificate
authority.  It speaks the part of the protocol that ``edge_tts/communicate.py`` (7.x) uses:

* the client sends text frames ``Path:speech.config`` (JSON) and ``Path:ssml`` (SSML);
* the server answers with a text frame ``Path:turn.start``, binary frames carrying MP3
  (``[2-byte big-endian header length][header lines][audio]``, header ``Path:audio`` and
  ``Content-Type:audio/mpeg``), an empty binary ``Path:audio`` frame without Content-Type
  (end of audio), and a text frame ``Path:turn.end``.

What the real service does with a socket after ``turn.end``, and how long it keeps an idle
socket, is not known here, so both are knobs: ``reuse`` (answer further requests on the same
socket, or close it after ``turn.end``) and ``idle_limit_s`` (close a socket, with a close
frame, that has had no request in progress for that long).  ``synthesis_s`` is the stand-in's
own "thinking" time before its first audio frame.

The MP3 it serves is made at run time with PyAV (:func:`encode_mp3`).  ``mode`` (or the
per-request queue ``faults``) selects a failure to act out; every connection and request is
counted server-side for assertions.  This module is measurement and test code, never
imported by the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import av
import edge_tts.communicate
import numpy as np
import trustme
from aiohttp import WSCloseCode, WSMsgType, web

Mode = Literal["ok", "fail_before_audio", "drop_mid_stream", "stall_mid_stream", "stall", "reject"]
SERVICE_PATH = "/consumer/speech/synthesize/readaloud/edge/v1"
_RECEIVE_TIMEOUT_S = 10.0


def tone(freq_hz: float = 440.0, seconds: float = 1.0, rate: int = 24000) -> np.ndarray:
    """A float32 sine at 0.5 amplitude with 10 ms fades (no clicks)."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq_hz * t)
    fade = min(len(wave) // 2, rate // 100)
    ramp = np.linspace(0.0, 1.0, fade)
    wave[:fade] *= ramp
    wave[len(wave) - fade :] *= ramp[::-1]
    return wave.astype(np.float32)


def encode_mp3(samples: np.ndarray, rate: int = 24000, bitrate: int = 48000) -> bytes:
    """Raw MP3 frames (no ID3 tag, like the service's stream) of float mono ``samples``."""
    codec: Any = av.CodecContext.create("libmp3lame", "w")
    codec.sample_rate = rate
    codec.layout = "mono"
    codec.format = "s16p"
    codec.bit_rate = bitrate
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    out = bytearray()
    frame_size = 1152  # MPEG audio frame; the encoder buffers whatever we give it anyway
    for start in range(0, len(pcm), frame_size):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + frame_size], format="s16p", layout="mono")
        frame.sample_rate = rate
        for packet in codec.encode(frame):
            out += bytes(packet)
    for packet in codec.encode(None):
        out += bytes(packet)
    return bytes(out)


def _text_frame(request_id: str, path: str, body: str) -> str:
    return f"X-RequestId:{request_id}\r\nContent-Type:application/json; charset=utf-8\r\nPath:{path}\r\n\r\n{body}"


def _audio_frame(request_id: str, audio: bytes) -> bytes:
    content_type = "Content-Type:audio/mpeg\r\n" if audio else ""
    header = f"X-RequestId:{request_id}\r\n{content_type}X-StreamId:{uuid.uuid4().hex}\r\nPath:audio\r\n"
    encoded = header.encode()
    return len(encoded).to_bytes(2, "big") + encoded + audio


@dataclass(frozen=True)
class StandinRequest:
    """What one client sent: the speech.config frame and the SSML frame."""

    query: dict[str, str]
    config: str
    ssml: str
    connection: int = 0  # which connection (0-based, in accept order) carried it
    connected_at: float = 0.0  # time.perf_counter() when that connection was upgraded
    received_at: float = 0.0  # time.perf_counter() when the SSML arrived

    @property
    def text(self) -> str:
        """The text inside the SSML's prosody element."""
        match = re.search(r"<prosody[^>]*>(.*)</prosody>", self.ssml, re.S)
        return match.group(1) if match else ""

    @property
    def voice(self) -> str:
        """The voice name inside the SSML."""
        match = re.search(r"<voice name='([^']*)'>", self.ssml)
        return match.group(1) if match else ""


class _Patcher(Protocol):
    def setattr(self, target: object, name: str, value: object) -> None: ...


class EdgeStandin:
    """The stand-in server.  Use ``async with EdgeStandin(mp3, ca) as s: s.install(monkeypatch)``
    in a test, or ``with s.patched(): ...`` elsewhere."""

    def __init__(
        self,
        mp3: bytes,
        ca: trustme.CA,
        *,
        mode: Mode = "ok",
        chunk_bytes: int = 1024,
        pace_s: float = 0.0,
        reuse: bool = True,
        idle_limit_s: float | None = None,
        synthesis_s: float = 0.0,
    ) -> None:
        self.mp3 = mp3
        self.mode: Mode = mode
        self.faults: list[Mode] = []  # modes for the next requests, in order; then ``mode``
        self.chunk_bytes = chunk_bytes
        self.pace_s = pace_s  # pause between audio frames, to make streaming observable
        self.reuse = reuse
        self.idle_limit_s = idle_limit_s
        self.synthesis_s = synthesis_s
        self.connections = 0  # WebSocket upgrades accepted (and rejections), ever
        self.open_connections = 0  # sockets open right now
        self.idle_closes = 0  # sockets closed by the idle limit
        self.requests: list[StandinRequest] = []
        self.requests_per_connection: list[int] = []  # by connection number (0-based)
        self._server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self._server_ssl)
        self.client_ssl = ssl.create_default_context()
        ca.configure_trust(self.client_ssl)
        app = web.Application()
        app.router.add_get(SERVICE_PATH, self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        self.port = 0

    @property
    def url(self) -> str:
        """The URL to use instead of edge-tts's WSS_URL (edge-tts appends ``&...`` to it)."""
        return self.url_via(self.port)

    def url_via(self, port: int) -> str:
        """:attr:`url` through another port on 127.0.0.1 (a latency proxy in front of this one)."""
        return f"wss://127.0.0.1:{port}{SERVICE_PATH}?TrustedClientToken=standin"

    def install(self, monkeypatch: _Patcher, port: int | None = None) -> None:
        """Point edge-tts at this server (its URL constant and its TLS context); ``port``: reach
        it through that port instead (a proxy)."""
        monkeypatch.setattr(edge_tts.communicate, "WSS_URL", self.url_via(port or self.port))
        monkeypatch.setattr(edge_tts.communicate, "_SSL_CTX", self.client_ssl)

    @contextlib.contextmanager
    def patched(self, port: int | None = None) -> Iterator[None]:
        """:meth:`install` for the duration of a ``with`` block (no pytest needed)."""
        saved = edge_tts.communicate.WSS_URL, edge_tts.communicate._SSL_CTX
        try:
            edge_tts.communicate.WSS_URL = self.url_via(port or self.port)
            edge_tts.communicate._SSL_CTX = self.client_ssl
            yield
        finally:
            edge_tts.communicate.WSS_URL, edge_tts.communicate._SSL_CTX = saved

    async def __aenter__(self) -> EdgeStandin:
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=self._server_ssl).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    def _next_mode(self) -> Mode:
        return self.faults.pop(0) if self.faults else self.mode

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        number = self.connections
        self.connections += 1
        self.requests_per_connection.append(0)
        if self.mode == "reject":
            return web.Response(status=503, text="service unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.open_connections += 1
        try:
            await self._serve(request, ws, number, time.perf_counter())
        finally:
            self.open_connections -= 1
        return ws

    async def _serve(self, request: web.Request, ws: web.WebSocketResponse, number: int, connected_at: float) -> None:
        """Answer requests on one socket until the client closes it, the idle limit passes, or
        (without ``reuse``) the first request is done."""
        config = ""
        while True:
            limit = self.idle_limit_s if self.idle_limit_s is not None else _RECEIVE_TIMEOUT_S * 6
            try:
                message = await ws.receive(timeout=limit)
            except TimeoutError:
                if self.idle_limit_s is not None:
                    self.idle_closes += 1
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle")
                return
            if message.type != WSMsgType.TEXT:
                return  # the client closed (or broke) the socket
            if "Path:speech.config" in message.data:
                config = message.data
                continue
            if "Path:ssml" not in message.data:
                continue
            self.requests.append(
                StandinRequest(dict(request.query), config, message.data, number, connected_at, time.perf_counter())
            )
            self.requests_per_connection[number] += 1
            if not await self._answer(request, ws, message.data, self._next_mode()):
                return
            if not self.reuse:
                await ws.close()
                return

    async def _answer(self, request: web.Request, ws: web.WebSocketResponse, ssml: str, mode: Mode) -> bool:
        """Speak one request; False when the socket is finished (a fault was acted out)."""
        request_id = re.search(r"X-RequestId:(\w+)", ssml)
        rid = request_id.group(1) if request_id else uuid.uuid4().hex

        if mode == "stall":
            # Accept the request and say nothing until the client gives up.
            await ws.receive(timeout=60)
            return False
        if self.synthesis_s:
            await asyncio.sleep(self.synthesis_s)
        await ws.send_str(_text_frame(rid, "turn.start", '{"context":{"serviceTag":"standin"}}'))
        if mode == "fail_before_audio":
            await ws.close()
            return False

        pieces = [self.mp3[i : i + self.chunk_bytes] for i in range(0, len(self.mp3), self.chunk_bytes)]
        if mode in ("drop_mid_stream", "stall_mid_stream"):
            for piece in pieces[: max(1, len(pieces) // 2)]:
                await ws.send_bytes(_audio_frame(rid, piece))
                await asyncio.sleep(self.pace_s)
            if mode == "stall_mid_stream":
                await ws.receive(timeout=60)  # go quiet until the client gives up
                return False
            # Cut the TCP connection without a WebSocket close frame or turn.end.
            assert request.transport is not None
            request.transport.abort()
            return False

        for piece in pieces:
            await ws.send_bytes(_audio_frame(rid, piece))
            await asyncio.sleep(self.pace_s)
        await ws.send_bytes(_audio_frame(rid, b""))
        await ws.send_str(_text_frame(rid, "turn.end", "{}"))
        return True


class SilentTcpServer:
    """Accepts TCP connections and never answers: a TLS handshake to it hangs."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self.connections = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)

    async def __aenter__(self) -> SilentTcpServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
