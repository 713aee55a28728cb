"""The page's microphone socket (web/mic_socket.py) served on loopback, with a real WebSocket client.

The route runs under uvicorn on 127.0.0.1 over the real callbacks (Whisper, Piper, a loopback
LLM server); aiohttp plays the page: its hello, frames of Piper-spoken audio with their header,
and the frames a broken or hostile page might send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette

from llm import free_loopback_port
from tests.llm_servers import LLMServer, reply
from tests.loopback_session import FakeRequest, app_tab
from tests.speech import spoken
from voice.audio import SAMPLE_RATE, float_to_int16
from web.callbacks import PageCallbacks
from web.mic_socket import BAD_HELLO, HEADER, MIC_SOCKET_PATH, NO_SESSION, TOO_BIG, AudioBudget, mic_socket_route

pytestmark = pytest.mark.slow

FRAME = SAMPLE_RATE * 20 // 1000  # 20 ms, as web/mic.js sends


def frame_bytes(samples: np.ndarray, captured_ms: float = 1000.0, sent_ms: float = 1001.0) -> bytes:
    """A frame as web/mic.js builds it: the two page times, then 16-bit little-endian PCM."""
    return HEADER.pack(captured_ms, sent_ms) + np.asarray(samples, dtype="<i2").tobytes()


@contextlib.asynccontextmanager
async def served(web: PageCallbacks) -> AsyncIterator[str]:
    """The route alone in a Starlette app under uvicorn on loopback; yields its ws:// URL."""
    port = free_loopback_port()
    config = uvicorn.Config(
        Starlette(routes=[mic_socket_route(web)]), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        yield f"ws://127.0.0.1:{port}{MIC_SOCKET_PATH}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def open_socket(
    voice_runtime: Any, server: LLMServer, tab: str
) -> AsyncIterator[tuple[PageCallbacks, list, aiohttp.ClientWebSocketResponse]]:
    """A started tab, its microphone socket connected and greeted (the server said it is ready)."""
    async with (
        app_tab(voice_runtime, server, tab) as (web, outputs),
        served(web) as url,
        aiohttp.ClientSession() as client,
        client.ws_connect(url) as ws,
    ):
        await ws.send_str(json.dumps({"session": tab, "rate": SAMPLE_RATE}))
        assert json.loads(await ws.receive_str()) == {"ready": True}
        yield web, outputs, ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes the socket; its close code."""
    async with asyncio.timeout(10):
        while (await ws.receive()).type not in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            pass
    return ws.close_code


async def test_a_spoken_question_over_the_socket_is_heard_and_answered(
    voice_runtime: Any, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = reply("Paris is the capital of France.")
    audio = float_to_int16(spoken("What is the capital of France?", tail_s=1.2))
    caplog.set_level(logging.INFO, logger="warmvoice")
    async with open_socket(voice_runtime, server, "tab-ws") as (web, outputs, ws):
        # Bad frames from a broken page: each is dropped with a log line, the socket stays open.
        await ws.send_bytes(b"\x00" * 7)  # shorter than the header
        await ws.send_bytes(frame_bytes(np.zeros(FRAME, np.int16))[:-1])  # half a sample
        await ws.send_bytes(frame_bytes(np.zeros(10, np.int16)))  # under 5 ms of audio
        await ws.send_str("not audio")
        # The question, frame by frame at the microphone's own pace; NaN page times are not trusted.
        for i, start in enumerate(range(0, audio.size - FRAME + 1, FRAME)):
            captured = math.nan if i == 0 else 1000.0 + 20.0 * i
            await ws.send_bytes(frame_bytes(audio[start : start + FRAME], captured, captured + 1.0))
            await asyncio.sleep(0.02)
        async with asyncio.timeout(60):
            while not any(m["role"] == "assistant" for out in outputs for m in out[1]):
                await asyncio.sleep(0.1)
        chat = outputs[-1][1]
        assert "capital of france" in chat[0]["content"].lower(), chat
        # Gradio's microphone (the fallback) does not feed the tab while its socket is open.
        session = web.open_session("tab-ws")
        assert session is not None
        fed = session.last_activity
        await web.hear((48_000, np.zeros(4_800, np.int16)), FakeRequest("tab-ws"))
        assert session.last_activity == fed
        # Stop ends the session, and the server closes the socket.
        await web.stop(FakeRequest("tab-ws"))
        assert await closed_with(ws) == 1000
    logged = caplog.text
    assert "Microphone socket open for session" in logged
    assert "over websocket: 16000 Hz, (320,) int16" in logged
    dropped = [r.getMessage() for r in caplog.records if "Microphone frame dropped" in r.getMessage()]
    assert dropped and "7 bytes is no frame" in dropped[0], dropped  # the first bad frame is named


async def test_a_socket_for_no_open_session_or_without_a_hello_is_refused(
    voice_runtime: Any, server: LLMServer
) -> None:
    async with (
        app_tab(voice_runtime, server, "tab-known") as (web, _),
        served(web) as url,
        aiohttp.ClientSession() as client,
    ):
        for hello in (
            json.dumps({"session": "tab-unknown", "rate": SAMPLE_RATE}),  # never started
            json.dumps({"session": "tab-known", "rate": 12_345}),  # a rate no AudioContext runs at
            json.dumps(["tab-known", SAMPLE_RATE]),
            "x" * 10_000,
        ):
            async with client.ws_connect(url) as ws:
                await ws.send_str(hello)
                expected = NO_SESSION if "tab-unknown" in hello else BAD_HELLO
                assert await closed_with(ws) == expected, hello
        async with client.ws_connect(url) as ws:  # audio before any hello
            await ws.send_bytes(frame_bytes(np.zeros(FRAME, np.int16)))
            assert await closed_with(ws) == BAD_HELLO


async def test_a_socket_may_not_send_frames_too_large_or_faster_than_real_time(
    voice_runtime: Any, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_socket(voice_runtime, server, "tab-flood") as (_web, _outputs, ws):
        # Three seconds of audio at once: past the one-second allowance, frames are dropped.
        for _ in range(150):
            await ws.send_bytes(frame_bytes(np.zeros(FRAME, np.int16)))
        await ws.send_bytes(frame_bytes(np.zeros(SAMPLE_RATE, np.int16)))  # a whole second
        assert await closed_with(ws) == TOO_BIG
    assert "audio faster than real time" in caplog.text
    assert "Microphone socket closed: a 32016-byte frame" in caplog.text


async def test_a_socket_whose_page_left_as_its_session_stopped_ends_quietly(
    voice_runtime: Any, server: LLMServer
) -> None:
    # Stop ends the session and the page closes its socket at once; the server leaves its frame
    # loop (no session) and closes a socket whose peer is already gone. That race cannot be timed
    # over a real socket, so this drives the route's ASGI interface directly: uvicorn's send raises
    # ClientDisconnected (an OSError) once the peer is gone, and so does this one.
    async with app_tab(voice_runtime, server, "tab-race") as (web, _outputs):
        incoming: list[dict[str, Any]] = [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": json.dumps({"session": "tab-race", "rate": SAMPLE_RATE})},
            {"type": "websocket.receive", "bytes": frame_bytes(np.zeros(FRAME, np.int16))},
        ]
        sent: list[str] = []

        async def receive() -> dict[str, Any]:
            if len(incoming) == 1:  # the last frame arrives just as Stop ends the session
                await web.stop(FakeRequest("tab-race"))
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            if message["type"] == "websocket.close":
                raise OSError("the page is gone")

        scope = {"type": "websocket", "path": MIC_SOCKET_PATH, "headers": [], "query_string": b""}
        await mic_socket_route(web).app(scope, receive, send)  # returns, raises nothing
        assert sent == ["websocket.accept", "websocket.send", "websocket.close"]


def test_the_audio_budget_is_the_wall_clock_plus_a_second() -> None:
    budget = AudioBudget(opened_at=100.0)
    assert all(budget.take(0.02, 100.0) for _ in range(50)), "a second ahead: a page catching up"
    assert not budget.take(0.02, 100.0)
    assert budget.take(0.02, 100.5) and budget.sent_s == pytest.approx(1.02)
    assert (HEADER.format, HEADER.size) == ("<dd", 16), "two little-endian float64, as web/mic.js writes them"
