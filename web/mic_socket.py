"""The microphone's one-way path: 20 ms PCM frames over one WebSocket, each with its capture time.

Gradio's streaming microphone sends each 100 ms chunk in two serial requests (its upload, then
the request that hands the uploaded file to the queue), so a far page's chunk arrives about 1.5
round trips after its capture, and chunks queue behind each other even next door.  The page
(web/mic.js) captures the microphone itself instead and sends small frames over one socket to
this route, served by the Gradio app on the page's own origin and port (so it works on a Space
and through any TCP proxy): a frame arrives half a round trip after it leaves the page.

The protocol, page -> server:

1. a text hello, ``{"session": <Gradio's session hash>, "rate": 16000}``: the tab whose session
   the audio feeds (the hash the page sends with every Gradio request; knowing it is what
   Gradio's own API asks too) and the frames' sample rate.  The server answers ``{"ready": true}``,
   or closes with :data:`NO_SESSION` (no open session: the page may try again once "Start
   speaking" has opened it) or :data:`BAD_HELLO`;
2. binary frames: the capture time of the frame's last sample and the time it was sent, both
   on the page's clock (``performance.now()``, ms, two little-endian float64), then the frame's
   samples, 16-bit little-endian mono PCM.

A frame goes into the same :meth:`web.callbacks.PageCallbacks.feed_microphone` as Gradio's
chunks, so the panel's uplink stage and its clock facts work the same.  What a socket may send
is bounded: a frame is 5-100 ms of audio, the audio may not run ahead of the wall clock by more
than :data:`BURST_S`, and a malformed frame is logged and dropped.  The socket closes when the
session ends, when the page closes it (Stop, a closed tab) and on a frame far too large.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import struct
import time
from dataclasses import dataclass

import numpy as np
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voice.session import VoiceSession
from voice.uplink import MicPath, PageTimes, page_times_of
from web.callbacks import PageCallbacks

log = logging.getLogger("warmvoice")

MIC_SOCKET_PATH = "/warmvoice/mic"  # web/mic.js opens it relative to the page
RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)  # rates a page's AudioContext may run at
HEADER = struct.Struct("<dd")  # captured_ms, sent_ms on the page's clock
MIN_FRAME_S, MAX_FRAME_S = 0.005, 0.1
BURST_S = 1.0  # audio a socket may send ahead of the wall clock (a page catching up after a stall)
HELLO_TIMEOUT_S = 5.0
MAX_HELLO_CHARS = 512
CHECK_EVERY_S = 1.0  # how often a quiet socket checks that its session still lives
NO_SESSION = 4404  # close codes of the application range (4000-4999)
BAD_HELLO = 4400
SESSION_ENDED = 1000
TOO_BIG = 1009


@dataclass(frozen=True)
class Hello:
    """What the page's first message says: the tab's session hash and the frames' rate."""

    session: str
    rate: int


def parse_hello(text: str) -> Hello | None:
    """The page's hello, or None if it is not one (the page is not trusted)."""
    if len(text) > MAX_HELLO_CHARS:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    session, rate = data.get("session"), data.get("rate")
    if not isinstance(session, str) or not 0 < len(session) <= 128 or not isinstance(rate, int) or rate not in RATES:
        return None
    return Hello(session, rate)


@dataclass(frozen=True)
class Frame:
    """One frame of microphone audio and the page's times for it."""

    samples: np.ndarray  # int16 mono
    times: PageTimes | None


def parse_frame(data: bytes, rate: int) -> Frame:
    """A binary frame as the page sent it; raises ValueError (with what is wrong) for a bad one."""
    if len(data) <= HEADER.size or (len(data) - HEADER.size) % 2:
        raise ValueError(f"{len(data)} bytes is no frame (a {HEADER.size}-byte header, then 16-bit samples)")
    count = (len(data) - HEADER.size) // 2
    if not MIN_FRAME_S * rate <= count <= MAX_FRAME_S * rate:
        raise ValueError(
            f"{count} samples at {rate} Hz (a frame holds {MIN_FRAME_S * 1000:g}-{MAX_FRAME_S * 1000:g} ms)"
        )
    captured_ms, sent_ms = HEADER.unpack_from(data)
    samples = np.frombuffer(data, dtype="<i2", offset=HEADER.size)
    return Frame(samples, page_times_of(captured_ms, sent_ms))


class AudioBudget:
    """Audio a socket may still send: the wall clock since it opened, plus :data:`BURST_S`."""

    def __init__(self, opened_at: float) -> None:
        self.opened_at = opened_at
        self.sent_s = 0.0

    def take(self, seconds: float, now: float) -> bool:
        """True (and counted) if ``seconds`` more audio fit at ``now``."""
        if self.sent_s + seconds > now - self.opened_at + BURST_S + 1e-9:  # 1e-9: sums of 0.02 s
            return False
        self.sent_s += seconds
        return True


def mic_socket_route(callbacks: PageCallbacks) -> WebSocketRoute:
    """The route for Gradio's app (``launch(app_kwargs={"routes": [...]})``): the page's microphone socket."""

    async def endpoint(websocket: WebSocket) -> None:
        await MicSocket(callbacks, websocket).run()

    return WebSocketRoute(MIC_SOCKET_PATH, endpoint, name="warmvoice-mic")


class MicSocket:
    """One page's microphone socket, from its hello to its close."""

    def __init__(self, callbacks: PageCallbacks, websocket: WebSocket) -> None:
        self.callbacks = callbacks
        self.websocket = websocket
        self.dropped = 0

    async def run(self) -> None:
        """Serve the socket until the page closes it, its session ends, or it sends too much."""
        ws = self.websocket
        await ws.accept()
        try:
            try:
                async with asyncio.timeout(HELLO_TIMEOUT_S):
                    text = await ws.receive_text()
            except (TimeoutError, KeyError, RuntimeError):  # no hello in time, or binary (KeyError)
                text = ""
            hello = parse_hello(text)
            if hello is None:
                log.warning("Microphone socket refused: its first message was no hello")
                await ws.close(BAD_HELLO, "expected a hello")
                return
            session = self.callbacks.open_session(hello.session)
            if session is None:
                log.info("Microphone socket refused: no open session for that page (not started yet?)")
                await ws.close(NO_SESSION, "no open session")
                return
            await ws.send_text(json.dumps({"ready": True}))
            log.info("Microphone socket open for session %s at %s Hz", session.session_id, hello.rate)
            with self.callbacks.microphone_socket(session):
                await self._frames(hello, session)
        except WebSocketDisconnect:
            pass  # the page closed it (Stop, a closed tab, a lost network)
        finally:
            if ws.client_state is WebSocketState.CONNECTED and ws.application_state is WebSocketState.CONNECTED:
                # The page may have closed it as its session ended (Stop does both at once).
                with contextlib.suppress(WebSocketDisconnect):
                    await ws.close(SESSION_ENDED, "session ended")

    async def _frames(self, hello: Hello, session: VoiceSession) -> None:
        ws = self.websocket
        budget = AudioBudget(time.perf_counter())
        max_bytes = HEADER.size + 2 * math.ceil(MAX_FRAME_S * hello.rate)
        while self.callbacks.open_session(hello.session) is session:
            try:
                async with asyncio.timeout(CHECK_EVERY_S):
                    message = await ws.receive()
            except TimeoutError:
                continue  # a quiet page: check that its session still lives
            arrived_at = time.perf_counter()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            data = message.get("bytes")
            if data is None:
                self._drop("a text message after the hello")
                continue
            if len(data) > max_bytes:
                log.warning("Microphone socket closed: a %d-byte frame (at most %d)", len(data), max_bytes)
                await ws.close(TOO_BIG, "frame too large")
                return
            try:
                frame = parse_frame(data, hello.rate)
            except ValueError as exc:
                self._drop(str(exc))
                continue
            if not budget.take(frame.samples.size / hello.rate, arrived_at):
                self._drop("audio faster than real time")
                continue
            try:
                await self.callbacks.feed_microphone(
                    session,
                    frame.samples,
                    hello.rate,
                    frame.times,
                    arrived_at,
                    MicPath.WEBSOCKET,
                )
            except (ValueError, TypeError) as exc:
                self._drop(str(exc))

    def _drop(self, why: str) -> None:
        # One line for the first bad frame and then one per 100: a broken page must not flood the log.
        if self.dropped % 100 == 0:
            log.warning("Microphone frame dropped (%d so far): %s", self.dropped + 1, why)
        self.dropped += 1
