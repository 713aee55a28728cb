"""PooledLLMClient against real loopback servers (aiohttp.web over TCP, TLS via trustme).

Connection reuse is proven on the server side: the server counts the TCP connections it
accepts.  Nothing of aiohttp is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict

from llm import (
    AuthError,
    KeepWarm,
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMStreamError,
    LLMTimeoutError,
    ManualClock,
    PooledLLMClient,
    PoolLimits,
    RequestTiming,
    Secret,
    Timeouts,
    WarmUpResult,
    free_loopback_port,
)
from llm.retry import RetryPolicy, retry_after_seconds, status_is_retryable
from tests.llm_servers import (
    DEFAULT_REPLY,
    LLMServer,
    SilentServer,
    chunk,
    drop_after,
    eventually,
    hang,
    raw,
    reply,
    stall_after,
    status,
    tokens,
)
from tests.loopback_tls import TLS

KEY = "sk-test-0123456789abcdefSECRET"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
EXPECTED = ["Hello there.", "How are you today?", "I am fine."]  # DEFAULT_REPLY as sentences


@pytest.fixture
async def tls_server(tls: TLS) -> AsyncIterator[LLMServer]:
    async with LLMServer(ssl_context=tls.server, host_name="localhost") as srv:
        yield srv


# Short time-outs and back-off, so every error path runs in well under a second.
TIMEOUTS = Timeouts(connect=2.0, first_byte=2.0, chunk=2.0)
RETRY = RetryPolicy(base_delay=0.01)


def make_client(
    base_url: str, *, timeouts: Timeouts = TIMEOUTS, retry: RetryPolicy = RETRY, **options: Any
) -> PooledLLMClient:
    """A client of the test key and model, with the short time-outs and back-off above."""
    settings: dict[str, Any] = {"api_key": KEY, "model": "test-model", "timeouts": timeouts, "retry": retry}
    settings.update(options)
    return PooledLLMClient(base_url, **settings)


async def collect(client: PooledLLMClient, messages: list[dict[str, str]] = MESSAGES) -> list[str]:
    return [s async for s in client.stream_sentences(messages)]


def timing(client: PooledLLMClient) -> RequestTiming:
    assert client.last_request is not None
    return client.last_request


# --------------------------------------------------------------------------- pooling


@pytest.mark.parametrize(("strategy", "expected_connections"), [("prewarmed", 1), ("pooled", 1), ("cold", 4)])
async def test_connections_per_strategy_over_tls(
    tls: TLS, tls_server: LLMServer, strategy: str, expected_connections: int
) -> None:
    async with make_client(tls_server.base_url, strategy=strategy, ssl=tls.client) as client:
        warm = await client.warm_up()
        timings = []
        for _ in range(4):
            assert await collect(client) == EXPECTED
            timings.append(timing(client))
        assert tls_server.connections == expected_connections
        assert len(tls_server.chat_requests()) == 4
        if strategy == "prewarmed":
            assert warm.ok and not warm.skipped and warm.connections_opened == 1
            assert warm.timing is not None and warm.timing.tcp_tls_ms is not None
            assert all(t.reused_connection and t.connect_ms is None and t.tcp_tls_ms is None for t in timings)
            assert client.stats.connections_opened == 1
        elif strategy == "pooled":
            assert warm.ok and warm.skipped
            assert [t.reused_connection for t in timings] == [False, True, True, True]
            assert timings[0].connect_ms is not None and timings[0].dns_ms is not None
        else:
            assert warm.ok and warm.skipped
            # A new TLS connection and a fresh DNS lookup (cache disabled) for every request.
            for t in timings:
                assert not t.reused_connection
                assert t.dns_ms is not None and t.dns_duration_ms is not None and not t.dns_cache_hit
                assert t.connect_ms is not None and t.tcp_tls_ms is not None
                assert t.dns_ms <= t.connect_ms <= t.ttfb_ms <= t.first_token_ms <= t.first_sentence_ms  # type: ignore[operator]
            assert client.stats.connections_opened == 4 and client.stats.connections_reused == 0
            assert client.state == "cold"


async def test_tls_with_untrusted_certificate_fails_without_retry(tls_server: LLMServer) -> None:
    async with make_client(tls_server.base_url, strategy="pooled") as client:
        with pytest.raises(LLMConnectionError) as info:
            await collect(client)
    assert str(info.value).startswith("endpoint unreachable")
    assert "not trusted" in str(info.value)
    assert timing(client).attempts == 1  # a certificate problem does not fix itself
    assert tls_server.requests == []


async def test_connect_to_keeps_host_and_tls_identity(tls: TLS, tls_server: LLMServer) -> None:
    """Sockets go to connect_to (e.g. a latency proxy); Host header and certificate check use the URL."""
    base = f"https://localhost:{free_loopback_port()}/v1"
    async with make_client(base, ssl=tls.client, connect_to=("127.0.0.1", tls_server.port)) as client:
        assert await collect(client) == EXPECTED
        assert await collect(client) == EXPECTED
    assert tls_server.connections == 1
    assert tls_server.requests[0].headers["Host"] == base.split("//")[1].split("/")[0]


# --------------------------------------------------------------------------- warm-up


async def test_warm_up_then_state_and_skips(server: LLMServer) -> None:
    async with make_client(server.base_url) as client:
        assert client.state == "cold"
        first, second = await asyncio.gather(client.warm_up(), client.warm_up())
        assert first.ok and not first.skipped and first.status == 200 and first.ms > 0
        assert second.ok and second.skipped and "in flight" in second.reason
        assert client.state == "warm"
        assert client.keep_warm_running
        again = await client.warm_up()
        assert again.skipped and "recently" in again.reason
        await collect(client)
        assert (await client.warm_up()).skipped
        assert server.connections == 1
        assert [r.path for r in server.requests] == ["/v1/models", "/v1/chat/completions"]
        assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert client.state == "closed"
    assert not client.keep_warm_running


async def test_warm_up_opens_several_connections(server: LLMServer) -> None:
    async with make_client(server.base_url, pool=PoolLimits(prewarm_connections=3)) as client:
        result = await client.warm_up()
        assert result.ok and result.connections_opened == 3
        assert server.connections == 3
        assert client.stats.warmups == 3


async def test_background_warm_up_never_blocks_a_request(server: LLMServer) -> None:
    server.models_delay = 5.0
    async with make_client(server.base_url) as client:
        task = client.start_warm_up()
        await asyncio.sleep(0.05)
        assert client.state == "warming"
        assert await collect(client) == EXPECTED  # not waiting for the slow warm-up
        assert not task.done()
        assert not timing(client).reused_connection
    assert task.cancelled()  # close() cancelled the warm-up


@pytest.mark.parametrize("code", [401, 403])
async def test_warm_up_with_rejected_key(server: LLMServer, code: int) -> None:
    server.models_status = code
    async with make_client(server.base_url) as client:
        result = await client.warm_up()
        assert not result.ok
        assert result.error is not None and result.error.startswith("API key rejected")
        assert isinstance(result.failure, AuthError) and result.failure.status == code
        assert str(code) in result.error and KEY not in result.error
        assert not client.keep_warm_running


async def test_warm_up_unreachable_is_non_critical(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm.client")
    async with make_client(f"http://127.0.0.1:{free_loopback_port()}/v1") as client:
        result = await client.warm_up()
    assert not result.ok and not result.skipped
    assert result.error is not None and result.error.startswith("endpoint unreachable")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("non-critical" in r.getMessage() for r in warnings)


async def test_log_lines_mirror_the_original(server: LLMServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm.client")
    async with make_client(server.base_url) as client:
        await client.warm_up()
        await collect(client)
    messages = [r.getMessage() for r in caplog.records if r.name == "llm.client"]
    for expected in (
        "Pre-warming LLM connection...",
        "Warmup complete in",
        "- connection ready",
        "Starting LLM stream_sentences...",
        "Connection established (HTTP 200)",
        "reused pooled connection",
    ):
        assert any(expected in m for m in messages), expected


# --------------------------------------------------------------------------- keep-warm


async def test_keep_warm_holds_the_connection_across_a_long_gap() -> None:
    """Server closes idle connections after 1 s and says so in a Keep-Alive header."""
    async with LLMServer(keepalive_timeout=1.0, keep_alive_header=1.0) as srv, make_client(srv.base_url) as client:
        assert (await client.warm_up()).ok
        assert client.idle_limit.source == "header"
        await asyncio.sleep(3.0)  # three times the server's idle limit
        assert await collect(client) == EXPECTED
        assert timing(client).reused_connection
        assert srv.connections == 1
        assert client.stats.warmups >= 3  # it had to ping to keep it


async def test_keep_warm_learns_the_idle_limit_from_an_observed_close() -> None:
    """No header: the first idle close teaches the limit; the connection is re-opened at once."""
    async with LLMServer(keepalive_timeout=1.0) as srv, make_client(srv.base_url) as client:
        assert (await client.warm_up()).ok
        await asyncio.sleep(3.0)
        assert client.idle_limit.source == "observed close"
        assert client.idle_limit.server_s is not None and 0.8 < client.idle_limit.server_s < 1.6
        assert await collect(client) == EXPECTED
        assert timing(client).reused_connection
        assert srv.connections == 2  # the one the server closed, and the re-warmed one
        assert client.state == "warm"


async def test_close_stops_keep_warm() -> None:
    async with LLMServer(keepalive_timeout=1.0, keep_alive_header=1.0) as srv:
        client = make_client(srv.base_url)
        await client.warm_up()
        assert client.keep_warm_running
        await client.close()
        assert not client.keep_warm_running
        seen = len(srv.requests)
        await asyncio.sleep(1.2)
        assert len(srv.requests) == seen
        assert srv.open_connections == 0


async def test_keep_warm_stops_after_max_idle(server: LLMServer) -> None:
    """On the client's own clock (a ManualClock): ten idle minutes pass in no real time, the loop
    pings on schedule on the way, and stops once no real request came for ``max_idle_s``."""
    clock = ManualClock()
    async with make_client(server.base_url, keep_warm=KeepWarm(max_idle_s=600.0), clock=clock) as client:
        assert (await client.warm_up()).ok
        assert client.keep_warm_running and client.stats.warmups == 1
        await clock.advance(client.idle_limit.ping_delay())  # the ping is due
        async with asyncio.timeout(5):
            while client.stats.warmups < 2:
                await asyncio.sleep(0.01)
        assert client.keep_warm_running
        await clock.advance(600.0)
        async with asyncio.timeout(5):
            while client.keep_warm_running:
                await asyncio.sleep(0.01)
        assert not client.keep_warm_running


# --------------------------------------------------------------------------- stale connections


async def test_pooled_connection_closed_by_server_is_not_a_failed_turn() -> None:
    async with LLMServer(keepalive_timeout=1.0) as srv, make_client(srv.base_url, strategy="pooled") as client:
        assert await collect(client) == EXPECTED
        await asyncio.sleep(1.5)
        assert client.state == "idle"
        assert await collect(client) == EXPECTED
        t = timing(client)
        assert not t.reused_connection and t.error is None
        assert srv.connections == 2
        assert client.idle_limit.server_s is not None and client.idle_limit.server_s < 1.6


async def test_dead_pooled_connection_is_retried_at_once_on_a_fresh_one(server: LLMServer) -> None:
    """The server drops the connection the moment a request arrives on a reused connection."""
    async with make_client(server.base_url, strategy="pooled", retry=replace(RETRY, max_retries=0)) as client:
        assert await collect(client) == EXPECTED
        server.drop_reused = True
        assert await collect(client) == EXPECTED
        t = timing(client)
        assert t.attempts == 2 and t.stale_retries == 1 and t.retries == 0
        assert not t.reused_connection
        assert client.stats.stale_retries == 1
    assert server.connections == 2
    assert [r.connection for r in server.chat_requests()] == [0, 0, 1]


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize("code", [401, 403])
async def test_rejected_key_is_not_retried(server: LLMServer, code: int) -> None:
    server.script(status(code, message=f"Incorrect API key provided: {KEY}"))
    async with make_client(server.base_url) as client:
        with pytest.raises(AuthError) as info:
            await collect(client)
    err = info.value
    assert str(err).startswith("API key rejected")
    assert err.status == code and str(code) in str(err)
    assert err.endpoint == f"{server.base_url}/chat/completions" and err.endpoint in str(err)
    assert KEY not in str(err) and KEY not in repr(err)
    assert len(server.chat_requests()) == 1


async def test_429_honours_retry_after(server: LLMServer) -> None:
    server.script(status(429, "slow down", headers={"Retry-After": "1"}), reply())
    async with make_client(server.base_url) as client:
        started = time.perf_counter()
        assert await collect(client) == EXPECTED
        elapsed = time.perf_counter() - started
    t = timing(client)
    assert t.retries == 1 and t.attempts == 2 and t.status == 200
    assert len(server.chat_requests()) == 2
    assert elapsed >= 0.95  # it waited the second the server asked for


async def test_retry_after_is_capped(server: LLMServer) -> None:
    server.script(status(429, headers={"Retry-After": "120"}), reply())
    async with make_client(server.base_url, retry=replace(RETRY, retry_after_cap=0.2)) as client:
        started = time.perf_counter()
        assert await collect(client) == EXPECTED
        assert time.perf_counter() - started < 10  # not two minutes
    assert timing(client).retries == 1


async def test_5xx_twice_then_success(server: LLMServer) -> None:
    server.script(status(500), status(503), reply())
    async with make_client(server.base_url) as client:
        assert await collect(client) == EXPECTED
        t = timing(client)
        assert (t.attempts, t.retries, t.status) == (3, 2, 200)
        assert client.stats.retries == 2


async def test_5xx_three_times_gives_up(server: LLMServer) -> None:
    server.script(status(503, "overloaded"), status(503, "overloaded"), status(503, "overloaded"), reply())
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMHTTPError) as info:
            await collect(client)
    assert info.value.status == 503 and "overloaded" in str(info.value)
    assert len(server.chat_requests()) == 3
    assert timing(client).error is not None


async def test_400_is_not_retried(server: LLMServer) -> None:
    server.script(status(400, "model not found"))
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMHTTPError) as info:
            await collect(client)
    assert info.value.status == 400 and "model not found" in str(info.value)
    assert len(server.chat_requests()) == 1


async def test_server_echoing_the_key_is_redacted(server: LLMServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(*[status(500, message=f"bad request from key {KEY}")] * 3)
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMHTTPError) as info:
            await collect(client)
    assert KEY not in str(info.value) and "<hidden>" in str(info.value)
    assert KEY not in caplog.text


# --------------------------------------------------------------------------- connection errors


async def test_connection_refused_is_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}/v1"
    async with make_client(url) as client:
        with pytest.raises(LLMConnectionError) as info:
            await collect(client)
    assert str(info.value).startswith("endpoint unreachable")
    assert info.value.status is None and info.value.endpoint.startswith("http://127.0.0.1:")
    assert timing(client).attempts == 3


async def test_dns_failure_fails_fast() -> None:
    async with make_client("https://nonexistent.invalid/v1", timeouts=replace(TIMEOUTS, connect=2.0)) as client:
        started = time.perf_counter()
        with pytest.raises(LLMConnectionError) as info:
            await collect(client)
        assert time.perf_counter() - started < 5.0
    assert "cannot resolve nonexistent.invalid" in str(info.value)
    assert timing(client).attempts == 3


async def test_connect_timeout_when_tls_handshake_never_answers() -> None:
    async with SilentServer() as silent:
        url = f"https://127.0.0.1:{silent.port}/v1"
        async with make_client(
            url, timeouts=replace(TIMEOUTS, connect=0.3), retry=replace(RETRY, max_retries=1)
        ) as client:
            with pytest.raises(LLMTimeoutError) as info:
                await collect(client)
    assert info.value.phase == "connect"
    assert str(info.value).startswith("endpoint unreachable")
    assert timing(client).attempts == 2  # a connect time-out is retried
    assert silent.connections == 2


async def test_first_byte_timeout_when_server_never_answers() -> None:
    async with (
        SilentServer() as silent,
        make_client(silent.base_url, timeouts=replace(TIMEOUTS, first_byte=0.3)) as client,
    ):
        with pytest.raises(LLMTimeoutError) as info:
            await collect(client)
    assert info.value.phase == "first_byte" and "first-byte timeout" in str(info.value)
    assert timing(client).attempts == 1 and timing(client).connect_ms is not None
    assert silent.connections == 1


async def test_first_byte_timeout_on_a_hanging_handler(server: LLMServer) -> None:
    server.script(hang())
    async with make_client(server.base_url, timeouts=replace(TIMEOUTS, first_byte=0.3)) as client:
        with pytest.raises(LLMTimeoutError) as info:
            await collect(client)
        assert info.value.phase == "first_byte"
        assert await collect(client) == EXPECTED  # the client is still usable


# --------------------------------------------------------------------------- stream errors


async def test_chunk_timeout_after_complete_sentences(server: LLMServer) -> None:
    server.script(stall_after("Hello there. How are"))
    got: list[str] = []
    async with make_client(server.base_url, timeouts=replace(TIMEOUTS, chunk=0.3)) as client:
        with pytest.raises(LLMTimeoutError) as info:
            async for sentence in client.stream_sentences(MESSAGES):
                got.append(sentence)
    assert got == ["Hello there."]
    assert info.value.phase == "chunk" and "chunk timeout" in str(info.value)


async def test_mid_stream_drop_after_two_sentences(server: LLMServer) -> None:
    server.script(drop_after("First one. Second one. Third is cut"))
    got: list[str] = []
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMStreamError) as info:
            async for sentence in client.stream_sentences(MESSAGES):
                got.append(sentence)
        assert got == ["First one.", "Second one."]
        assert "dropped" in str(info.value)
        assert timing(client).sentences == 2 and timing(client).error is not None
        assert await collect(client) == EXPECTED  # next turn is fine


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        ((b"this is not\nan event stream\n\n",), "ended before [DONE]"),
        ((chunk("Hi"), b"data: {not json}\n\n"), "invalid JSON"),
        ((chunk("Hi"), b'data: {"choices": "nope"}\n\n'), "malformed"),
        ((b'data: {"error": {"message": "model overloaded", "code": "overloaded"}}\n\n',), "model overloaded"),
        ((b"event: error\ndata: upstream failed\n\n",), "upstream failed"),
        ((chunk("Hi. There"),), "ended before [DONE]"),
    ],
    ids=["not-sse", "invalid-json", "bad-shape", "error-object", "error-event", "no-done"],
)
async def test_malformed_streams(server: LLMServer, pieces: tuple[bytes, ...], message: str) -> None:
    server.script(raw(*pieces))
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMStreamError) as info:
            await collect(client)
    assert message in str(info.value)
    assert info.value.status == 200


async def test_error_event_after_a_sentence(server: LLMServer) -> None:
    server.script(raw(chunk("All good. Then"), b'data: {"error": {"message": "boom"}}\n\n'))
    got: list[str] = []
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMStreamError, match="boom"):
            async for sentence in client.stream_sentences(MESSAGES):
                got.append(sentence)
    assert got == ["All good."]


async def test_json_instead_of_stream(server: LLMServer) -> None:
    server.script(raw(b'{"error": {"message": "streaming disabled"}}', content_type="application/json"))
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMStreamError, match="streaming disabled"):
            await collect(client)


async def test_lenient_stream_shapes(server: LLMServer) -> None:
    """Multi-line data, comments, role-only and empty chunks, finish_reason without [DONE]."""
    finish = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
    server.script(
        raw(
            b": comment\n\n",
            chunk(role="assistant"),
            b'data: {"choices": []}\n\n',
            b'data: {"choices": [{"delta":\ndata: {"content": "One. "}}]}\n\n',
            chunk("Two."),
            finish,
            delay=0.01,
        )
    )
    async with make_client(server.base_url) as client:
        assert await collect(client) == ["One.", "Two."]
        assert timing(client).tokens == 2


async def test_stream_tokens(server: LLMServer) -> None:
    async with make_client(server.base_url) as client:
        got = [t async for t in client.stream_tokens(MESSAGES)]
    assert got == tokens(DEFAULT_REPLY)
    assert timing(client).first_sentence_ms is None  # no sentences were made


# --------------------------------------------------------------------------- cancellation


async def test_break_mid_stream_releases_the_connection(server: LLMServer) -> None:
    server.script(reply("One. Two. Three. Four. Five. Six.", token_delay=0.05))
    async with make_client(server.base_url, strategy="pooled") as client:
        stream = client.stream_sentences(MESSAGES)
        async with contextlib.aclosing(stream):
            async for sentence in stream:
                assert sentence == "One."
                break
        abandoned = timing(client)
        assert abandoned.error == "cancelled"
        assert await collect(client) == EXPECTED  # clean data, nothing left over from the first stream
        assert not timing(client).reused_connection  # the dirty connection was closed, not pooled
    assert server.connections == 2
    assert await eventually(lambda: server.client_hangups == 1)  # the server saw the first one closed


async def test_cancelling_the_task_mid_stream(server: LLMServer) -> None:
    server.script(reply("One. Two. Three. Four. Five. Six.", token_delay=0.05))
    async with make_client(server.base_url) as client:
        first_sentence = asyncio.Event()

        async def consume() -> None:
            async for _ in client.stream_sentences(MESSAGES):
                first_sentence.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first_sentence.wait(), 2.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert timing(client).error == "cancelled"
        assert await collect(client) == EXPECTED
        assert not timing(client).reused_connection
        assert client.stats.completed == 1
    assert await eventually(lambda: server.client_hangups == 1)


async def test_dropping_an_unfinished_stream_closes_its_connection(server: LLMServer) -> None:
    """No break, no aclose: the generator is just dropped (asyncio finalizes it)."""
    server.script(reply("One. Two. Three. Four. Five. Six.", token_delay=0.05))
    async with make_client(server.base_url, strategy="pooled") as client:
        stream = client.stream_sentences(MESSAGES)
        assert await anext(stream) == "One."
        del stream
        assert await eventually(lambda: server.client_hangups == 1)
        assert timing(client).error == "cancelled"
        assert await collect(client) == EXPECTED
    assert server.connections == 2


async def test_concurrent_streams_are_bounded_by_limit(server: LLMServer) -> None:
    server.default = reply(token_delay=0.01)
    async with make_client(server.base_url, strategy="pooled", pool=PoolLimits(limit=2)) as client:
        results = await asyncio.gather(*(collect(client) for _ in range(4)))
    assert results == [EXPECTED] * 4
    assert server.connections == 2  # HTTP/1.1: one stream per connection, at most `limit` of them


# --------------------------------------------------------------------------- timing, events, wire


async def test_timing_and_events_in_order(server: LLMServer) -> None:
    events: list[tuple[str, Any]] = []
    async with make_client(server.base_url, strategy="pooled", on_event=lambda n, p: events.append((n, p))) as client:
        before = time.perf_counter()
        assert await collect(client) == EXPECTED
        t = timing(client)
    assert before <= t.started_at
    assert [n for n, _ in events] == ["request_started", "connected", "status", "first_token", "first_sentence", "done"]
    assert all(p is t for _, p in events)
    assert t.connect_ms is not None and t.ttfb_ms is not None and t.total_ms is not None
    assert t.connect_ms <= t.ttfb_ms <= t.first_token_ms <= t.first_sentence_ms <= t.total_ms  # type: ignore[operator]
    assert (t.status, t.attempts, t.sentences) == (200, 1, 3)
    assert t.tokens == len(tokens(DEFAULT_REPLY))
    assert json.loads(json.dumps(t.as_dict()))["status"] == 200


async def test_warm_up_events_and_a_failing_callback(server: LLMServer) -> None:
    names: list[str] = []

    def callback(name: str, payload: RequestTiming | WarmUpResult) -> None:
        names.append(name)
        raise RuntimeError("UI bug")

    async with make_client(server.base_url, on_event=callback) as client:
        assert (await client.warm_up()).ok
        assert await collect(client) == EXPECTED  # a broken callback does not break the stream
    assert names[:2] == ["warmup_started", "warmup_done"]
    assert "first_sentence" in names


async def test_request_body_and_headers(server: LLMServer) -> None:
    async with make_client(server.base_url, max_tokens=50) as client:
        await collect(client)
        [s async for s in client.stream_sentences(MESSAGES, temperature=0.3, max_tokens=7, stop=("\n",))]
    first, second = (json.loads(r.body) for r in server.chat_requests())
    assert first == {"model": "test-model", "messages": MESSAGES, "stream": True, "max_tokens": 50}
    assert second["temperature"] == 0.3 and second["max_tokens"] == 7 and second["stop"] == ["\n"]
    request = server.chat_requests()[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Accept"] == "text/event-stream"


async def test_no_authorization_header_without_a_key(server: LLMServer) -> None:
    async with make_client(server.base_url, api_key=None) as client:
        await collect(client)
    assert "Authorization" not in server.chat_requests()[0].headers


async def test_key_never_in_logs_or_errors(server: LLMServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(status(401), raw(b"data: {bad\n\n"), status(503), status(503), status(503))
    errors: list[str] = []
    async with make_client(server.base_url, api_key=Secret(KEY)) as client:
        await client.warm_up()
        for _ in range(3):
            with pytest.raises(LLMError) as info:
                await collect(client)
            errors.append(f"{info.value!s} {info.value!r}")
        assert await collect(client) == EXPECTED
        assert KEY not in repr(client) and KEY not in str(client.__dict__)
    assert len(errors) == 3
    assert all(KEY not in e for e in errors)
    assert KEY not in caplog.text


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        PooledLLMClient("http://x/v1", strategy="warmest")
    with pytest.raises(ValueError):
        PooledLLMClient("ftp://x/v1")
    with pytest.raises(ValueError):
        PooledLLMClient("http://x/v1", api_key="sk-abc\r\nX-Evil: 1")
    with pytest.raises(ValueError):
        Timeouts(connect=0)
    with pytest.raises(ValueError):
        PoolLimits(limit=0)


async def test_closed_client_refuses_requests(server: LLMServer) -> None:
    client = make_client(server.base_url)
    await client.close()
    await client.close()  # idempotent
    with pytest.raises(RuntimeError):
        await collect(client)
    assert (await client.warm_up()).ok is False


async def test_stopping_after_the_last_sentence_is_a_completed_turn(server: LLMServer) -> None:
    async with make_client(server.base_url) as client:
        got: list[str] = []
        stream = client.stream_sentences(MESSAGES)
        async with contextlib.aclosing(stream):
            async for sentence in stream:
                got.append(sentence)
                if len(got) == len(EXPECTED):
                    break
        assert got == EXPECTED
        assert timing(client).error is None and client.stats.completed == 1


# --------------------------------------------------------------------------- retry policy (pure)

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "Wed, 01 Jan 2025 12:00:03 GMT"}, 3.0),
        ({"Retry-After": "Wed, 01 Jan 2025 11:00:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"retry-after-ms": "x", "Retry-After": "1"}, 1.0),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(CIMultiDict(headers), now=NOW) == seconds


@pytest.mark.parametrize(
    ("retries_done", "retry_after", "rand", "expected"),
    [
        (0, None, 0.0, 0.5),
        (1, None, 0.0, 1.0),
        (2, None, 1.0, 1.5),  # 2 s minus 25 % jitter
        (10, None, 0.0, 8.0),  # capped at max_delay
        (0, 3.0, 0.5, 3.0),  # the server's wish
        (0, 30.0, 0.5, 8.0),  # capped at retry_after_cap
        (0, 3600.0, 0.5, 8.0),  # absurd: the cap
    ],
)
def test_retry_delay(retries_done: int, retry_after: float | None, rand: float, expected: float) -> None:
    assert RetryPolicy().delay(retries_done, retry_after, rand=lambda: rand) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("code", "headers", "retryable"),
    [
        (429, {}, True),
        (408, {}, True),
        (409, {}, True),
        (500, {}, True),
        (503, {}, True),
        (400, {}, False),
        (404, {}, False),
        (422, {}, False),
        (500, {"x-should-retry": "false"}, False),
        (400, {"x-should-retry": "true"}, True),
    ],
)
def test_retryable_statuses(code: int, headers: dict[str, str], retryable: bool) -> None:
    assert status_is_retryable(code, headers) is retryable


async def test_x_should_retry_false_stops_retries(server: LLMServer) -> None:
    server.script(status(503, headers={"x-should-retry": "false"}))
    async with make_client(server.base_url) as client:
        with pytest.raises(LLMHTTPError):
            await collect(client)
    assert len(server.chat_requests()) == 1


async def test_busy_pool_times_out_with_a_clear_message(server: LLMServer) -> None:
    server.script(stall_after("Hello"))
    async with make_client(
        server.base_url,
        strategy="pooled",
        pool=PoolLimits(limit=1),
        timeouts=replace(TIMEOUTS, connect=0.3),
        retry=replace(RETRY, max_retries=0),
    ) as c:
        stream = c.stream_tokens(MESSAGES)
        async with contextlib.aclosing(stream):
            assert await anext(stream) == "Hello"
            with pytest.raises(LLMTimeoutError) as info:
                await collect(c)
    assert info.value.phase == "connect"
    assert "all 1 pooled connections stayed busy" in str(info.value)
