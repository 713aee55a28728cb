"""Faults injected for real: every test breaks something on purpose and checks that the user
sees a clear outcome, nothing is lost, and the very next turn works.

The LLM is a loopback aiohttp.web server scripted per request (``tests.llm_servers``); the
embedded llama.cpp server is killed with SIGKILL; edge-tts talks to the local stand-in of its
cloud service (``benchmarks.edge_standin``; the only thing here that is not the real service).
Whisper and Piper are the real models of the shared ``voice_runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time

import pytest
import trustme
from aiohttp import web

from benchmarks.edge_standin import EdgeStandin
from llm import EmbeddedLLMServer, free_loopback_port
from tests.llm_servers import (
    Handler,
    LLMServer,
    SilentServer,
    chunk,
    drop_after,
    hang,
    raw,
    reply,
    start_stream,
    status,
    tokens,
)
from tests.loopback_session import (
    assert_healthy_turn,
    assert_presentable,
    audio_seconds,
    events_until_done,
    loopback_session,
    notices,
    outcome,
    said,
    statuses,
    typed_turn,
)
from voice import panel
from voice.events import AudioOut, Notice, SessionEvent
from voice.llm_endpoint import LLMEndpoint
from voice.session import VoiceSession
from voice.tts.factory import make_tts

pytestmark = pytest.mark.slow

KEY = "sk-fault-test-KEY-9f8e7d6c5b4a"


async def next_turn_works(session: VoiceSession, server: LLMServer | None = None) -> None:
    """The session is still usable: a plain turn after the fault is answered, quietly."""
    if server is not None:
        server.script(reply("Back to normal. All good."))
    assert_healthy_turn(await typed_turn(session, "Are you still there?"))


# --------------------------------------------------------------------------- connections


async def test_idle_connection_closed_by_the_server_between_turns_is_invisible(voice_runtime) -> None:
    """The server drops idle keep-alive connections after 1 s; turns after a pause still just work."""
    async with LLMServer(keepalive_timeout=1.0) as srv, loopback_session(voice_runtime, srv.base_url) as s:
        await s.wait_warm()
        for _ in range(3):
            assert_healthy_turn(await typed_turn(s, "Hello?"))
            await asyncio.sleep(1.5)  # longer than the server's idle limit
        assert srv.connections >= 2, "the server should really have closed the idle connection"
        assert len(srv.chat_requests()) == 3


async def test_connection_dying_as_the_request_is_sent_is_retried_silently(voice_runtime, server: LLMServer) -> None:
    """The race a keep-alive limit causes: the pooled connection dies the moment the request
    goes out.  The client replays it at once on a new connection; the user sees nothing."""
    server.drop_reused = True
    async with loopback_session(voice_runtime, server.base_url) as s:
        warm = await s.wait_warm()
        assert warm is not None and warm.ok
        events = await typed_turn(s, "Hello?")
        assert_presentable(events)
        assert_healthy_turn(events)
        assert s.client is not None and s.client.stats.stale_retries >= 1
        server.drop_reused = False
        await next_turn_works(s, server)


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize(
    "failures",
    [
        [status(429, "slow down", headers={"Retry-After": "1"})],
        [status(500, "oops"), status(503, "busy")],
    ],
    ids=["429-retry-after", "500-then-503"],
)
async def test_retryable_errors_are_retried_and_shown_as_a_retry(
    voice_runtime, server: LLMServer, failures: list
) -> None:
    server.script(*failures)
    async with loopback_session(voice_runtime, server.base_url) as s:
        started = time.perf_counter()
        events = await typed_turn(s, "Hello?")
        assert_presentable(events)
        elapsed = time.perf_counter() - started
        lat = outcome(events)
        assert lat.outcome == "ok" and said(events) and audio_seconds(events) > 0
        assert lat.llm_attempts == len(failures) + 1
        assert f"LLM retried</b> ({lat.llm_attempts} attempts)" in panel.current_turn_html(lat)
        retried = notices(events, "warning")
        codes = [429] if len(failures) == 1 else [500, 503]
        assert retried == [f"LLM request failed (HTTP {code}); retrying…" for code in codes], retried
        assert not notices(events, "error")
        assert len(server.chat_requests()) == len(failures) + 1
        if "Retry-After" in str(failures):
            assert elapsed >= 1.0, "Retry-After: 1 must be honoured"
        await next_turn_works(s, server)


async def test_rejected_key_is_reported_once_without_retries_or_leaks(
    voice_runtime, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    server.models_status = 401
    server.script(status(401, f"Incorrect API key provided: {KEY}"))
    async with loopback_session(voice_runtime, server.base_url, key=KEY) as s:
        await s.wait_warm()
        events = await typed_turn(s, "Hello?")
        assert_presentable(events)
        lat = outcome(events)
        assert lat.outcome == "error" and lat.error is not None and lat.error.startswith("API key rejected")
        rejected = [st for st in statuses(events) if "API key rejected" in st.text]
        assert rejected and all(st.level == "error" for st in rejected)
        errors = notices(events, "error")
        assert len(errors) == 1 and errors[0].startswith("API key rejected (HTTP 401")
        assert not notices(events, "warning"), "a 401 must not be retried"
        assert len(server.chat_requests()) == 1
        assert len([r for r in server.requests if r.path.endswith("/models")]) <= 1
        # The server echoed the key in its error body: it must not reach the user or the logs.
        assert KEY not in repr(events) and KEY not in caplog.text and KEY not in repr(s.latencies)
        server.models_status = 200
        await next_turn_works(s, server)


# --------------------------------------------------------------------------- unreachable


async def test_endpoint_down_then_back_on_the_same_port(voice_runtime) -> None:
    port = free_loopback_port()
    async with loopback_session(voice_runtime, f"http://127.0.0.1:{port}/v1") as s:
        started = time.perf_counter()
        events = await typed_turn(s, "Hello?", timeout_s=10.0)
        assert_presentable(events)
        waited = time.perf_counter() - started
        lat = outcome(events)
        assert lat.outcome == "error"
        errors = notices(events, "error")
        assert len(errors) == 1 and errors[0].startswith("The LLM did not answer: endpoint unreachable")
        assert f"cannot connect to 127.0.0.1:{port}" in errors[0]
        assert notices(events, "warning") == ["LLM request failed (connection failed); retrying…"] * 2
        assert waited < 10.0
        async with LLMServer(port=port) as srv:
            await next_turn_works(s, srv)  # same session, same client: nothing recreated
            assert len(srv.chat_requests()) == 1


async def test_dns_failure_is_a_clear_error(voice_runtime) -> None:
    async with loopback_session(voice_runtime, "http://nonexistent.invalid/v1") as s:
        events = await typed_turn(s, "Hello?", timeout_s=10.0)
        assert_presentable(events)
        assert outcome(events).outcome == "error"
        errors = notices(events, "error")
        assert errors and "cannot resolve nonexistent.invalid" in errors[-1], errors
        # The endpoint is a setting, not a session's state: pointing it at a live server heals.
        async with LLMServer() as srv:
            s.endpoint.base_url = srv.base_url
            await s.configure(strategy="pooled")  # a new pool for the new address
            await next_turn_works(s, srv)


# --------------------------------------------------------------------------- broken streams


async def test_drop_mid_stream_speaks_what_arrived_then_says_cut_off(voice_runtime, server: LLMServer) -> None:
    server.script(drop_after("The first sentence arrived. So did the second one. The third never ends and"))
    async with loopback_session(voice_runtime, server.base_url) as s:
        events = await typed_turn(s, "Tell me three things.")
        assert_presentable(events)
        assert said(events) == ["The first sentence arrived.", "So did the second one."]
        cut = [i for i, e in enumerate(events) if isinstance(e, Notice) and "cut off" in e.text]
        assert len(cut) == 1 and notices(events, "warning") == [events[cut[0]].text]
        assert audio_seconds(events) > 1.0, "the two complete sentences must be spoken"
        assert outcome(events).outcome == "error"
        # What was spoken is what the history remembers.
        assert s.reply.conversation.turns[-1] == {
            "role": "assistant",
            "content": "The first sentence arrived. So did the second one.",
        }
        await next_turn_works(s, server)


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ((b"this is not\nan event stream\n\n",), "ended before [DONE]"),
        ((chunk("Hi"), b"data: {not json}\n\n"), "invalid JSON"),
        ((b'data: {"error": {"message": "model overloaded", "code": "overloaded"}}\n\n',), "model overloaded"),
        ((b"event: error\ndata: upstream failed\n\n",), "upstream failed"),
    ],
    ids=["not-sse", "invalid-json", "error-object", "error-event"],
)
async def test_malformed_stream_is_a_clear_error_not_a_hang(
    voice_runtime, server: LLMServer, pieces: tuple[bytes, ...], expected: str
) -> None:
    server.script(raw(*pieces))
    async with loopback_session(voice_runtime, server.base_url) as s:
        events = await typed_turn(s, "Hello?", timeout_s=15.0)
        assert_presentable(events)
        assert outcome(events).outcome == "error"
        errors = notices(events, "error")
        assert len(errors) == 1 and errors[0].startswith("The LLM did not answer") and expected in errors[0]
        await next_turn_works(s, server)


async def test_server_that_never_answers_hits_the_first_byte_timeout(voice_runtime) -> None:
    async with SilentServer() as silent, loopback_session(voice_runtime, silent.base_url) as s:
        events = await typed_turn(s, "Hello?", timeout_s=15.0)
        assert_presentable(events)
        lat = outcome(events)
        assert lat.outcome == "error" and lat.error is not None and "first-byte timeout" in lat.error
        assert any("first-byte timeout" in n for n in notices(events, "error"))


async def test_hanging_handler_then_recovery(voice_runtime, server: LLMServer) -> None:
    server.script(hang())
    async with loopback_session(voice_runtime, server.base_url) as s:
        events = await typed_turn(s, "Hello?", timeout_s=15.0)
        assert_presentable(events)
        assert outcome(events).outcome == "error"
        assert any("first-byte timeout" in n for n in notices(events, "error"))
        await next_turn_works(s, server)


# --------------------------------------------------------------------------- speech output


async def test_unreachable_edge_tts_falls_back_to_piper(
    voice_runtime, server: LLMServer, unreachable_edge: None
) -> None:
    tts = make_tts("auto", "en-US-AriaNeural", 1.0)  # an engine of its own: its own edge breaker
    async with loopback_session(voice_runtime, server.base_url, tts=tts) as s:
        events = await typed_turn(s, "Hello?")
        assert_presentable(events)
        lat = outcome(events)
        assert lat.outcome == "ok" and lat.tts_engine == "piper" and lat.tts_fallback
        assert audio_seconds(events) > 1.0
        assert any("Piper" in n for n in notices(events, "info"))
        assert not notices(events, "error")
        await next_turn_works(s, server)


async def test_edge_tts_dropping_mid_reply_hands_over_to_piper(
    voice_runtime,
    server: LLMServer,
    ca: trustme.CA,
    tone_mp3: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.script(reply("First sentence from edge. Second sentence. Third sentence.", token_delay=0.1))
    async with EdgeStandin(tone_mp3, ca, pace_s=0.01) as standin:
        standin.install(monkeypatch)
        tts = make_tts("auto", "en-US-AriaNeural", 2.0)  # an engine of its own: its own edge breaker
        async with loopback_session(voice_runtime, server.base_url, tts=tts) as s:
            waiter = asyncio.create_task(events_until_done(s))
            await s.submit_text("Hello?")
            # Let edge speak the first sentence, then break the service mid-reply.
            async with asyncio.timeout(30):
                while not standin.requests:
                    await asyncio.sleep(0.01)
            standin.mode = "drop_mid_stream"
            events: list[SessionEvent] = await waiter
            assert_presentable(events)
    engines = [e.chunk.engine for e in events if isinstance(e, AudioOut)]
    assert engines[0] == "edge" and engines[-1] == "piper", engines
    lat = outcome(events)
    assert lat.outcome == "ok" and lat.tts_fallback
    assert len(said(events)) == 3 and not notices(events, "error")


async def test_edge_only_engine_unreachable_shows_the_reply_as_text(
    voice_runtime, server: LLMServer, unreachable_edge: None
) -> None:
    """TTS_ENGINE=edge (no fallback) with the service unreachable: text, one clear notice per turn."""
    tts = make_tts("edge", "en-US-AriaNeural", 1.0)  # an engine of its own: its own edge breaker
    async with loopback_session(voice_runtime, server.base_url, tts=tts) as s:
        for _ in range(2):
            server.script(reply("Hello there. Nice to meet you."))
            events = await typed_turn(s, "Hello?", timeout_s=30.0)
            assert_presentable(events)
            assert said(events) == ["Hello there.", "Nice to meet you."] and audio_seconds(events) == 0
            errors = notices(events, "error")
            assert len(errors) == 1 and "Speech output failed" in errors[0] and "cannot connect" in errors[0]
            assert outcome(events).outcome == "ok"


async def test_piper_failing_still_shows_the_reply_as_text(voice_runtime, server: LLMServer) -> None:
    broken = make_tts("piper", "/nonexistent.onnx", 1.0)
    server.script(reply("One sentence here. Another sentence there. And a third one."))
    async with loopback_session(voice_runtime, server.base_url, tts=broken) as s:
        events = await typed_turn(s, "Hello?", timeout_s=30.0)
        assert_presentable(events)
        lat = outcome(events)
        assert said(events) == ["One sentence here.", "Another sentence there.", "And a third one."]
        assert audio_seconds(events) == 0
        errors = notices(events, "error")
        assert len(errors) == 1 and "Speech output failed" in errors[0] and "shown as text" in errors[0]
        assert lat.outcome == "ok" and lat.tts_engine == "none (failed)"
        assert s.reply.conversation.turns[-1]["content"] == " ".join(said(events))
        # The next turn still shows its text (and says so again, once).
        server.script(reply("Still here."))
        again = await typed_turn(s, "And now?", timeout_s=30.0)
        assert said(again) == ["Still here."] and outcome(again).outcome == "ok"


# --------------------------------------------------------------------------- embedded server


@contextlib.asynccontextmanager
async def own_embedded_session(voice_runtime, session_id: str, **server_options: float):
    """A session on a llama.cpp child of its own (never the shared one); all of it stopped after."""
    server = EmbeddedLLMServer(n_threads=1, **server_options)
    endpoint = LLMEndpoint(
        base_url="", model="smollm2-135m-instruct", api_key=voice_runtime.endpoint.api_key, reason="test", server=server
    )
    try:
        await asyncio.to_thread(endpoint.start)
        settings = voice_runtime.settings.replace(first_byte_timeout_s=30.0)
        session = VoiceSession(
            settings,
            endpoint,
            transcriber=voice_runtime.transcriber,
            tts=voice_runtime.new_tts(),
            session_id=session_id,
        )
        await session.start()
        try:
            yield session, server, endpoint
        finally:
            await session.stop()
    finally:
        await asyncio.to_thread(endpoint.close)
    assert not server.is_running()


async def wait_until_dead(server: EmbeddedLLMServer) -> None:
    async with asyncio.timeout(10):
        while server.is_running():
            await asyncio.sleep(0.05)


async def test_embedded_server_killed_is_restarted_on_the_next_turn(voice_runtime) -> None:
    """A dedicated llama.cpp child (not the shared one) is SIGKILLed between two turns."""
    async with own_embedded_session(voice_runtime, "embedded-kill") as (session, server, endpoint):
        await session.wait_warm()
        assert outcome(await typed_turn(session, "Say hi.")).outcome == "ok"
        old_pid, old_url = server.pid, endpoint.base_url
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        await wait_until_dead(server)
        events = await typed_turn(session, "Say hi again.", timeout_s=120.0)
        assert_presentable(events)
        lat = outcome(events)
        assert lat.outcome == "ok", (lat.error, notices(events))
        assert any("restarted" in n for n in notices(events, "warning"))
        assert server.pid != old_pid and server.is_running() and server.restarts == 1
        assert endpoint.base_url == old_url, "the restarted server keeps its port"
        assert said(events)


async def test_embedded_server_that_cannot_restart_is_reported_and_retried(voice_runtime) -> None:
    """The child dies and its port is taken before the restart (another program grabbed it):
    the turn says so in plain words, and the next turn, with the port free again, restarts it."""
    async with own_embedded_session(voice_runtime, "embedded-squat", start_timeout_s=60.0) as (session, server, _):
        assert server.pid is not None and server.port is not None
        os.kill(server.pid, signal.SIGKILL)
        await wait_until_dead(server)
        with socket.socket() as squatter:  # listening on the port: the restart cannot bind it
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            squatter.bind(("127.0.0.1", server.port))
            squatter.listen()
            events = await typed_turn(session, "Hello?", timeout_s=90.0)
        assert_presentable(events)
        lat = outcome(events)
        assert lat.outcome == "error"
        errors = notices(events, "error")
        assert len(errors) == 1 and "could not be restarted" in errors[0], errors
        events = await typed_turn(session, "Say hi.", timeout_s=120.0)
        assert_presentable(events)
        assert outcome(events).outcome == "ok", notices(events)
        assert any("restarted" in n for n in notices(events, "warning"))
        assert server.is_running()


def queued(seconds: float, text: str = "Sorry for the wait. Here I am.") -> Handler:
    """Headers at once, then nothing for ``seconds`` (the request waits in the server's queue,
    as llama.cpp's server does while it generates for someone else), then a normal stream."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        resp = await start_stream(request, server)
        await asyncio.sleep(seconds)
        for token in tokens(text):
            await resp.write(chunk(token))
        await resp.write(chunk(finish="stop") + b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    return handler


async def test_request_queued_by_the_server_waits_for_its_first_token(voice_runtime, server: LLMServer) -> None:
    """The status arrives at once, the first token only after longer than chunk_timeout: the
    wait before the first token is the first-byte budget, so the turn succeeds."""
    server.script(queued(3.0))
    async with loopback_session(voice_runtime, server.base_url, chunk_timeout_s=1.0, first_byte_timeout_s=6.0) as s:
        events = await typed_turn(s, "Hello?", timeout_s=30.0)
        assert_presentable(events)
        assert_healthy_turn(events)
        assert said(events) == ["Sorry for the wait.", "Here I am."]


async def test_queued_request_still_times_out_at_the_first_byte_budget(voice_runtime, server: LLMServer) -> None:
    server.script(queued(8.0))
    async with loopback_session(voice_runtime, server.base_url, chunk_timeout_s=1.0, first_byte_timeout_s=2.0) as s:
        events = await typed_turn(s, "Hello?", timeout_s=30.0)
        assert_presentable(events)
        lat = outcome(events)
        assert lat.outcome == "error" and lat.error is not None and "first-byte timeout" in lat.error
        await next_turn_works(s, server)
