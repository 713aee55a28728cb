"""The latency proxy over real loopback sockets: plain asyncio targets, aiohttp.web, real TLS.

Timing assertions are lower bounds only: the proxy must add at least the emulated round
trips; how much faster than that it manages is never asserted.  The ``asyncio.timeout``
guards are hang guards that keep a broken proxy from stalling the run, not speed goals.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from llm import free_loopback_port
from llm.latency_proxy import LatencyProxy, ProxyCounters
from tests.loopback_tls import TLS

REPO_ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 10.0
# asyncio timers may fire up to the clock resolution early, and the test's clock reads
# bracket the work slightly differently from the proxy's; a few ms keeps the bounds honest.
TOLERANCE_S = 0.005


# ---- targets ------------------------------------------------------------------------


@dataclass
class TargetState:
    """What a protocol-based target saw: protocols create no tasks, so task counts stay exact."""

    port: int = 0
    accepted: int = 0
    live: set[asyncio.Transport] = field(default_factory=set)


class EchoProtocol(asyncio.Protocol):
    """Echoes every byte; on EOF closes once the echoes are flushed."""

    def __init__(self, state: TargetState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.accepted += 1
        self.state.live.add(transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # close after flushing

    def connection_lost(self, exc: Exception | None) -> None:
        assert self.transport is not None
        self.state.live.discard(self.transport)


class CountOnEofProtocol(EchoProtocol):
    """Says nothing until the client half-closes, then answers with the byte count it got."""

    def __init__(self, state: TargetState) -> None:
        super().__init__(state)
        self.received = 0

    def data_received(self, data: bytes) -> None:
        self.received += len(data)

    def eof_received(self) -> bool:
        assert self.transport is not None
        self.transport.write(f"got {self.received}".encode())
        return False


async def _serve_protocol(protocol: type[EchoProtocol], port: int = 0) -> tuple[asyncio.Server, TargetState]:
    state = TargetState()
    server = await asyncio.get_running_loop().create_server(lambda: protocol(state), "127.0.0.1", port)
    state.port = server.sockets[0].getsockname()[1]
    return server, state


async def _close_protocol_server(server: asyncio.Server, state: TargetState) -> None:
    server.close()
    for transport in list(state.live):
        transport.abort()
    await server.wait_closed()


@pytest.fixture
async def echo() -> AsyncIterator[TargetState]:
    server, state = await _serve_protocol(EchoProtocol)
    yield state
    await _close_protocol_server(server, state)


async def _ping(request: web.Request) -> web.Response:
    return web.Response(text="pong")


async def _echo_body(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="application/octet-stream")


async def _start_http(ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/v1/ping", _ping)
    app.router.add_post("/v1/echo", _echo_body)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    runner, port = await _start_http()
    yield port
    await runner.cleanup()


@dataclass
class TlsTarget:
    port: int
    client_context: ssl.SSLContext


@pytest.fixture
async def tls_target(tls: TLS) -> AsyncIterator[TlsTarget]:
    runner, port = await _start_http(tls.server)
    yield TlsTarget(port, tls.client)
    await runner.cleanup()


# ---- helpers ------------------------------------------------------------------------


async def _connect(proxy: LatencyProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(proxy.host, proxy.port)


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> float:
    """Send ``payload`` to an echo target and read it back; returns the elapsed loop time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(payload)
    await writer.drain()
    async with asyncio.timeout(HANG_GUARD_S):
        echoed = await reader.readexactly(len(payload))
    assert echoed == payload
    return loop.time() - started


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What arrives before the connection ends; a reset counts as an end with nothing more."""
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            return await reader.read()
    except ConnectionResetError:
        return b""


async def _wait_for(condition: object, what: str) -> None:
    """Poll a zero-argument predicate (bounded) for state that settles one loop turn later."""
    assert callable(condition)
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _close(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        writer.close()


# ---- data integrity -----------------------------------------------------------------


async def test_large_payloads_arrive_intact_both_ways(echo: TargetState) -> None:
    sizes = [1024 * 1024, 300_000, 1]
    payloads = [os.urandom(n) for n in sizes]

    async def exchange(proxy: LatencyProxy, payload: bytes) -> bytes:
        reader, writer = await _connect(proxy)

        async def send() -> None:
            # Uneven slices so chunk boundaries never line up with the proxy's reads.
            for start in range(0, len(payload), 100_003):
                writer.write(payload[start : start + 100_003])
                await writer.drain()
            writer.write_eof()  # the echo target closes after echoing everything

        sender = asyncio.create_task(send())
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                received = await reader.read()  # until EOF: the half-close came back
            await sender
        finally:
            writer.close()
        return received

    async with LatencyProxy("127.0.0.1", echo.port, rtt_ms=20) as proxy:
        results = await asyncio.gather(*(exchange(proxy, p) for p in payloads))
        assert [len(r) for r in results] == sizes
        assert results == payloads  # byte-identical: intact and in order, no cross-talk
        assert proxy.bytes_to_target == sum(sizes)
        assert proxy.bytes_to_client == sum(sizes)


async def test_half_close_passes_eof_on_and_keeps_the_reply_direction_open() -> None:
    server, target = await _serve_protocol(CountOnEofProtocol)
    try:
        async with LatencyProxy("127.0.0.1", target.port, rtt_ms=20) as proxy:
            reader, writer = await _connect(proxy)
            writer.write(b"x" * 5000)
            writer.write_eof()
            # The target only answers after it sees our EOF, through the proxy.
            assert await _read_until_closed(reader) == b"got 5000"
            writer.close()
    finally:
        await _close_protocol_server(server, target)


async def test_rtt_zero_is_transparent(http_port: int, echo: TargetState) -> None:
    body = os.urandom(256 * 1024)
    direct = f"http://127.0.0.1:{http_port}/v1"
    async with LatencyProxy("127.0.0.1", http_port, rtt_ms=0) as proxy, aiohttp.ClientSession() as session:
        for base in (direct, proxy.url()):
            async with session.get(f"{base}/ping") as resp:
                assert (resp.status, await resp.text()) == (200, "pong")
            async with session.post(f"{base}/echo", data=body) as resp:
                assert resp.status == 200
                assert await resp.read() == body

    async with LatencyProxy("127.0.0.1", echo.port) as raw:
        assert raw.rtt_ms == 0
        reader, writer = await _connect(raw)
        for size in (1, 10, 70_000):
            await _round_trip(reader, writer, os.urandom(size))
        writer.close()


# ---- counting -----------------------------------------------------------------------


async def test_counts_every_client_connection(echo: TargetState) -> None:
    async with LatencyProxy("127.0.0.1", echo.port, rtt_ms=10) as proxy:
        streams = [await _connect(proxy) for _ in range(5)]
        for reader, writer in streams:
            await _round_trip(reader, writer, b"hello")
        assert proxy.connections_opened == 5
        assert proxy.active_connections == 5
        assert echo.accepted == 5  # one upstream connection per client connection
        assert proxy.counters() == ProxyCounters(
            connections_opened=5,
            active_connections=5,
            connections_refused=0,
            bytes_to_target=25,
            bytes_to_client=25,
        )

        _close(*(writer for _, writer in streams))
        await _wait_for(lambda: proxy.active_connections == 0, "all connections to end")
        assert proxy.connections_opened == 5

        proxy.reset_counters()
        assert proxy.counters() == ProxyCounters(0, 0, 0, 0, 0)


async def test_keep_alive_session_is_one_connection(http_port: int) -> None:
    async with LatencyProxy("127.0.0.1", http_port, rtt_ms=10) as proxy, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(proxy.url(path="/v1/ping")) as resp:
                assert await resp.text() == "pong"
        assert proxy.connections_opened == 1
        assert proxy.active_connections == 1


async def test_refuses_connections_beyond_the_limit(echo: TargetState) -> None:
    async with LatencyProxy("127.0.0.1", echo.port, max_connections=2) as proxy:
        first, second = await _connect(proxy), await _connect(proxy)
        for reader, writer in (first, second):
            await _round_trip(reader, writer, b"in")

        reader, writer = await _connect(proxy)  # the kernel accepts; the proxy closes it
        writer.write(b"over the limit")
        assert await _read_until_closed(reader) == b""
        writer.close()
        assert proxy.connections_refused == 1
        assert proxy.connections_opened == 2
        assert echo.accepted == 2  # a refused client never reaches the target

        _close(first[1])
        await _wait_for(lambda: proxy.active_connections == 1, "a slot to free up")
        reader, writer = await _connect(proxy)
        await _round_trip(reader, writer, b"in again")
        _close(writer, second[1])


# ---- emulated distance --------------------------------------------------------------


async def test_new_connection_pays_a_handshake_round_trip(http_port: int) -> None:
    rtt = 0.1
    loop = asyncio.get_running_loop()
    async with LatencyProxy("127.0.0.1", http_port, rtt_ms=rtt * 1000) as proxy:
        async with aiohttp.ClientSession() as session:
            started = loop.time()
            async with session.get(proxy.url(path="/v1/ping")) as resp:
                assert await resp.text() == "pong"
            new_connection = loop.time() - started

            started = loop.time()
            async with session.get(proxy.url(path="/v1/ping")) as resp:
                assert await resp.text() == "pong"
            reused = loop.time() - started

            assert proxy.connections_opened == 1  # the second request really reused it
        assert new_connection >= 2 * rtt - TOLERANCE_S  # handshake + request/response
        assert reused >= rtt - TOLERANCE_S  # request/response only


async def test_tls_passes_through_and_pays_its_round_trips(tls_target: TlsTarget) -> None:
    rtt = 0.06
    loop = asyncio.get_running_loop()
    async with LatencyProxy("127.0.0.1", tls_target.port, rtt_ms=rtt * 1000) as proxy:
        async with aiohttp.ClientSession() as session:
            started = loop.time()
            url = proxy.url("https", "/v1/ping")
            async with session.get(url, ssl=tls_target.client_context) as resp:
                assert await resp.text() == "pong"
            elapsed = loop.time() - started
            assert resp.url.scheme == "https"
        assert proxy.connections_opened == 1
        # TCP handshake + at least one TLS round trip + the request itself.
        assert elapsed >= 3 * rtt - TOLERANCE_S
        assert proxy.bytes_to_target > 0 and proxy.bytes_to_client > 0


async def test_rtt_change_applies_to_new_bytes_without_restart(echo: TargetState) -> None:
    async with LatencyProxy("127.0.0.1", echo.port, rtt_ms=0) as proxy:
        reader, writer = await _connect(proxy)
        await _round_trip(reader, writer, b"before")

        proxy.rtt_ms = 100
        assert proxy.rtt_ms == 100
        # Same connection, same listener: only the bytes sent from now on are slower.
        assert await _round_trip(reader, writer, b"after") >= 0.1 - TOLERANCE_S
        assert proxy.connections_opened == 1
        writer.close()

        # A connection opened after the change pays the new handshake as well.
        loop = asyncio.get_running_loop()
        started = loop.time()
        reader, writer = await _connect(proxy)
        await _round_trip(reader, writer, b"new")
        assert loop.time() - started >= 0.2 - TOLERANCE_S
        writer.close()


# ---- failure and shutdown -----------------------------------------------------------


async def test_upstream_down_closes_the_client_and_later_connections_still_work() -> None:
    dead_port = free_loopback_port()  # nothing listens on it: connections are refused

    async with LatencyProxy("127.0.0.1", dead_port, rtt_ms=50) as proxy:
        reader, writer = await _connect(proxy)
        writer.write(b"anyone there?")
        assert await _read_until_closed(reader) == b""
        writer.close()
        await _wait_for(lambda: proxy.active_connections == 0, "the failed connection to end")

        server, target = await _serve_protocol(EchoProtocol, dead_port)  # the target comes up
        try:
            reader, writer = await _connect(proxy)
            await _round_trip(reader, writer, b"now it works")
            writer.close()
        finally:
            await _close_protocol_server(server, target)
        assert proxy.connections_opened == 2


async def test_stop_ends_every_task_and_socket(echo: TargetState) -> None:
    tasks_before = asyncio.all_tasks()
    proxy = LatencyProxy("127.0.0.1", echo.port, rtt_ms=100)
    await proxy.start()
    port = proxy.port

    idle = [await _connect(proxy) for _ in range(2)]
    for reader, writer in idle:
        await _round_trip(reader, writer, b"established")
    mid_handshake = await _connect(proxy)
    mid_handshake[1].write(b"still waiting for the handshake")
    in_flight = idle[0]
    in_flight[1].write(b"x" * 200_000)  # queued in the proxy when stop() hits
    await asyncio.sleep(0.02)
    assert proxy.active_connections == 3
    assert len(asyncio.all_tasks()) > len(tasks_before)  # the proxy really has tasks to end

    await proxy.stop()

    assert asyncio.all_tasks() == tasks_before
    assert proxy.active_connections == 0
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    for reader, writer in [*idle, mid_handshake]:
        await _read_until_closed(reader)  # ends (EOF or reset) instead of hanging
        writer.close()
    # The target sees every upstream socket closed too.
    await _wait_for(lambda: not echo.live, "the target's connections to close")
    with pytest.raises(RuntimeError):
        _ = proxy.port
    await proxy.stop()  # idempotent


async def test_rejects_invalid_settings() -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            LatencyProxy("127.0.0.1", 1, rtt_ms=bad)
    with pytest.raises(ValueError):
        LatencyProxy("127.0.0.1", 1, max_connections=0)
    proxy = LatencyProxy("127.0.0.1", 1, rtt_ms=10)
    with pytest.raises(ValueError):
        proxy.rtt_ms = -5
    assert proxy.rtt_ms == 10
    with pytest.raises(RuntimeError):
        proxy.url()
    await proxy.stop()  # stopping a proxy that never started is harmless


async def test_url_points_at_the_listener(echo: TargetState) -> None:
    async with LatencyProxy("127.0.0.1", echo.port) as proxy:
        assert proxy.host == "127.0.0.1"
        assert proxy.port > 0
        assert proxy.url() == f"http://127.0.0.1:{proxy.port}/v1"
        assert proxy.url("https", "chat") == f"https://127.0.0.1:{proxy.port}/chat"
        assert proxy.target == ("127.0.0.1", echo.port)


# ---- command line -------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_cli_serves_until_signalled(echo: TargetState, stop_signal: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llm.latency_proxy",
        "--listen",
        "127.0.0.1:0",
        "--target",
        f"127.0.0.1:{echo.port}",
        "--rtt-ms",
        "20",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):  # interpreter start-up on a busy machine
            first_line = (await process.stdout.readline()).decode()
        match = re.match(r"listening on 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+) \(rtt 20 ms\)", first_line)
        assert match, first_line
        assert int(match.group(2)) == echo.port

        reader, writer = await asyncio.open_connection("127.0.0.1", int(match.group(1)))
        assert await _round_trip(reader, writer, b"via the cli") >= 0.02 - TOLERANCE_S

        process.send_signal(stop_signal)
        async with asyncio.timeout(HANG_GUARD_S):
            stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        assert b"stopping after 1 connections" in stdout
        assert b"Traceback" not in stderr
        assert await _read_until_closed(reader) == b""  # the live connection was closed
        writer.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
