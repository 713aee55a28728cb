"""The warm edge-tts transport: spare sockets opened ahead, replaced, reused, closed, and the fallback.

edge-tts's real service is unreachable from here, so every test talks to
``benchmarks/edge_standin.py``, a LOCAL STAND-IN of Microsoft's WebSocket service on 127.0.0.1
over real TLS (trustme): the one thing mocked.  Connections and requests are counted by the
stand-in, server-side, so "no connection on the path" is what the server saw, not what the
client believes.  No test asserts a speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import edge_tts.communicate
import psutil
import pytest

from benchmarks import edge_probe
from benchmarks.edge_probe import probe, report
from benchmarks.edge_standin import EdgeStandin
from tests.llm_servers import LLMServer, reply
from tests.loopback_session import assert_presentable, loopback_session, outcome, typed_turn
from voice.tts import AudioChunk, FallbackTTS, TTSConnection
from voice.tts.edge import EdgeTTS, EdgeTTSError
from voice.tts.edge_transport import WarmEdgeTransport
from voice.tts.factory import make_tts
from voice.tts.piper import PiperTTS

WAIT_S = 20.0  # bound for every wait on the background keeper (generous for a loaded machine)


def warm_edge(**transport: float | bool) -> EdgeTTS:
    """An edge engine with its own breaker and a warm transport."""
    return EdgeTTS(timeout_s=3.0, cooldown_s=60.0, transport=WarmEdgeTransport(connect_timeout_s=3.0, **transport))


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


async def speak(edge: EdgeTTS | FallbackTTS, text: str) -> list[AudioChunk]:
    return [chunk async for chunk in edge.synthesize(text)]


def connection_of(chunks: list[AudioChunk]) -> TTSConnection:
    [connection] = [c.connection for c in chunks if c.connection is not None]
    return connection


def ready(edge: EdgeTTS) -> int:
    assert edge.transport is not None
    return edge.transport.stats.ready


async def test_warm_sentence_opens_no_connection_on_its_path(standin: EdgeStandin) -> None:
    edge = warm_edge()
    await edge.open()
    try:
        await until(lambda: ready(edge) == 1, "the spare opened")
        assert standin.connections == 1 and not standin.requests  # opened ahead, nothing asked yet
        chunks = await speak(edge, "Hello from a warm socket.")
        assert sum(c.duration_s for c in chunks) > 0.3
        assert connection_of(chunks).kind == "spare"
        # The server saw the sentence on the socket that existed before it was asked for.
        assert standin.requests_per_connection[0] == 1
        assert edge.transport is not None and edge.transport.stats.opened_on_path == 0
        assert edge.last_call is not None and edge.last_call.path == "warm" and edge.last_call.completed
    finally:
        await edge.aclose()


async def test_socket_reused_after_a_finished_request_when_the_service_allows(standin: EdgeStandin) -> None:
    edge = warm_edge()
    await edge.open()
    try:
        await until(lambda: ready(edge) == 1, "the spare opened")
        first = connection_of(await speak(edge, "First sentence."))
        second = connection_of(await speak(edge, "Second sentence."))
        assert (first.kind, second.kind) == ("spare", "reused")
        assert standin.requests_per_connection[0] == 2  # both on the socket opened at the start
    finally:
        await edge.aclose()


async def test_without_reuse_the_next_spare_serves_the_next_sentence(standin: EdgeStandin) -> None:
    standin.reuse = False  # the service closes a socket after turn.end
    edge = warm_edge()
    await edge.open()
    try:
        await until(lambda: ready(edge) == 1, "the spare opened")
        assert connection_of(await speak(edge, "First sentence.")).kind == "spare"
        await until(lambda: ready(edge) == 1 and standin.connections == 2, "the next spare opened")
        assert connection_of(await speak(edge, "Second sentence.")).kind == "spare"
        assert standin.requests_per_connection[:2] == [1, 1]
        assert edge.transport is not None and edge.transport.stats.opened_on_path == 0
    finally:
        await edge.aclose()


async def test_spare_closed_by_the_server_is_replaced_without_waiting(standin: EdgeStandin) -> None:
    standin.idle_limit_s = 0.3  # the service drops idle sockets (the real limit is unknown here)
    edge = warm_edge(max_idle_s=60.0)
    await edge.open()
    try:
        await until(lambda: standin.idle_closes >= 1, "the server closed the idle spare")
        await until(lambda: standin.connections >= 2 and ready(edge) == 1, "a replacement opened")
        assert edge.transport is not None and edge.transport.stats.replaced_closed >= 1
        standin.idle_limit_s = None  # keep the replacement for the sentence
        await until(lambda: ready(edge) == 1, "a spare is ready")
        chunks = await speak(edge, "Spoken on the replacement.")
        assert connection_of(chunks).kind == "spare" and edge.transport.stats.opened_on_path == 0
        served_on = [n for n, count in enumerate(standin.requests_per_connection) if count]
        assert served_on and served_on[0] >= 1  # not on the socket the server had closed
    finally:
        await edge.aclose()


async def test_spare_older_than_the_safe_age_is_replaced(standin: EdgeStandin) -> None:
    edge = warm_edge(max_idle_s=0.3)
    await edge.open()
    try:
        await until(lambda: standin.connections >= 3, "stale spares replaced")
        assert edge.transport is not None and edge.transport.stats.replaced_idle >= 2
        await until(lambda: standin.open_connections <= 1, "replaced spares closed")
    finally:
        await edge.aclose()


async def test_warm_socket_failing_mid_sentence_falls_back_to_a_new_connection(standin: EdgeStandin) -> None:
    edge = warm_edge()
    await edge.open()
    try:
        await until(lambda: ready(edge) == 1, "the spare opened")
        standin.faults = ["drop_mid_stream"]  # only the warm request breaks
        chunks = await speak(edge, "This sentence is spoken twice in part.")
        warm, plain = list(edge.calls)[-2:]
        assert warm.path == "warm" and not warm.completed and warm.error
        assert plain.path == "plain" and plain.completed
        assert [c.connection.kind for c in chunks if c.connection] == ["spare", "new"]
        assert edge.warm_breaker.is_open and not edge.breaker.is_open
        # The rest of the turn goes through the plain path, without waiting on the warm one.
        assert connection_of(await speak(edge, "Next sentence.")).kind == "new"
    finally:
        await edge.aclose()


async def test_warm_and_plain_failing_falls_back_to_piper(standin: EdgeStandin) -> None:
    edge = warm_edge()
    tts = FallbackTTS(edge, PiperTTS())
    await tts.open()
    try:
        await until(lambda: ready(edge) == 1, "the spare opened")
        standin.faults = ["drop_mid_stream", "fail_before_audio"]
        chunks = await speak(tts, "Piper finishes this one.")
        assert chunks[0].engine == "edge" and chunks[-1].engine == "piper"
        assert [e.stage for e in tts.events] == ["mid_stream"]  # one fallback, one notice
        assert edge.breaker.is_open and edge.warm_breaker.is_open
    finally:
        await tts.aclose()


def sockets_to(port: int) -> list[object]:
    return [c for c in psutil.Process().net_connections(kind="inet") if c.raddr and c.raddr.port == port]


async def test_session_turn_speaks_on_the_spare_and_stop_leaves_no_socket(
    voice_runtime, standin: EdgeStandin, tone_mp3: bytes
) -> None:
    standin.idle_limit_s = None
    async with LLMServer() as server:
        server.script(reply("Hello there. Nice to meet you."))
        tts = make_tts("auto", "en-US-AriaNeural", 3.0)  # its own edge breaker
        async with loopback_session(voice_runtime, server.base_url, tts=tts) as session:
            assert isinstance(tts, FallbackTTS) and isinstance(tts.primary, EdgeTTS)
            edge = tts.primary
            await until(lambda: ready(edge) == 1, "the session opened a spare at start")
            opened_before = standin.connections
            events = await typed_turn(session, "Hi?")
            assert_presentable(events)
            lat = outcome(events)
            assert lat.outcome == "ok" and lat.tts_engine == "edge"
            assert lat.tts_connection == "reused spare" and lat.tts_setup_ms is not None
            # The first sentence went out on the socket opened before the turn.
            assert standin.requests_per_connection[opened_before - 1] >= 1
            assert sockets_to(standin.port)
        # session.stop closed the engine's sockets: none left on either side.
        await until(lambda: standin.open_connections == 0, "the stand-in saw every socket close")
        await until(lambda: not sockets_to(standin.port), "no socket of ours to the service")


async def test_stop_closes_the_spare_even_while_it_is_opening(standin: EdgeStandin) -> None:
    for _ in range(3):  # stop at once, before the spare is ready, a few times
        edge = warm_edge()
        await edge.open()
        await asyncio.sleep(0)
        await edge.aclose()
    with contextlib.suppress(TimeoutError):
        await until(lambda: standin.open_connections == 0, "")
    assert standin.open_connections == 0
    assert not sockets_to(standin.port)


@pytest.mark.parametrize("reuse", [True, False])
async def test_edge_probe_reports_reuse_and_idle_limit(standin: EdgeStandin, reuse: bool) -> None:
    """The probe a user runs against the real service, run here against the stand-in set both ways."""
    standin.reuse = reuse
    standin.idle_limit_s = 1.0
    result = await probe(samples=2, max_idle_s=10.0)
    assert len(result.handshakes_ms) == 2 and result.first_audio_ms is not None
    assert result.reuse is reuse
    assert result.idle_closed_after_s is not None and 0.9 <= result.idle_closed_after_s < 10.0
    assert standin.connections == 4  # two timed handshakes, the reuse socket, the idle socket
    text = report(result)
    assert ("reuse after turn.end: yes" if reuse else "reuse after turn.end: no") in text
    assert "set EDGE_TTS_MAX_IDLE below" in text


def test_edge_probe_offline_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"wss://127.0.0.1:{port}/edge/v1?x=1")
    assert edge_probe.main(["--samples", "1", "--max-idle-s", "1"]) == 1
    assert "not reachable" in capsys.readouterr().err


async def test_ready_socket_failing_before_audio_is_replaced_once_on_the_path(standin: EdgeStandin) -> None:
    edge = warm_edge()
    await edge.open()
    try:
        await until(lambda: ready(edge) == 1, "the spare opened")
        standin.faults = ["fail_before_audio"]  # as a socket the service dropped a moment ago
        chunks = await speak(edge, "Said on a new socket.")
        assert connection_of(chunks).kind == "new"
        assert edge.last_call is not None and edge.last_call.path == "warm" and edge.last_call.completed
        assert len(standin.requests) == 2 and not edge.warm_breaker.is_open
    finally:
        await edge.aclose()


async def test_unreachable_service_skips_the_warm_path(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"wss://127.0.0.1:{port}/edge/v1?x=1")
    edge = warm_edge()
    await edge.open()
    try:
        assert edge.transport is not None
        await until(lambda: edge.transport is not None and edge.transport.stats.open_failures >= 1, "spare failed")
        assert not edge.transport.available
        with pytest.raises(EdgeTTSError):
            await speak(edge, "Nobody hears this.")
        assert [call.path for call in edge.calls] == ["plain"]  # one failed attempt, not two
    finally:
        await edge.aclose()
