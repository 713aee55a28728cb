"""A latency-injecting TCP proxy: puts an emulated network distance between the app and its LLM.

The app's "emulated network distance" slider points the LLM client at this proxy, which
listens on loopback and forwards to the real server.  Every byte is delayed by half the
round-trip time in each direction, and a new connection's first bytes wait one extra round
trip, as a TCP handshake over that distance would.  This is what makes a pre-warmed
connection pool measurably better than opening a connection per request: the proxy charges
the handshake for real.  TLS is forwarded untouched, so a TLS handshake pays its round trips too.

Bytes are delayed, not the connection serialized (see :mod:`llm.proxy_relay`, which carries
each connection's bytes); this module accepts, bounds and counts the connections.

Run it on its own with ``python -m llm.latency_proxy --target 127.0.0.1:8000 --rtt-ms 150``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import sys
from dataclasses import dataclass

from llm.proxy_relay import CHUNK_BYTES, DelayingRelay, Traffic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProxyCounters:
    """A snapshot of a :class:`LatencyProxy`'s server-side counters."""

    connections_opened: int
    active_connections: int
    connections_refused: int
    bytes_to_target: int
    bytes_to_client: int


class LatencyProxy:
    """A loopback TCP proxy that adds ``rtt_ms`` of round-trip time between clients and a target.

    Pure asyncio, bounded to ``max_connections`` live client connections (more are closed
    at once and counted in ``connections_refused``), and stoppable: :meth:`stop` closes the
    listener and every live connection and cancels every task the proxy created.  Use it as
    ``async with LatencyProxy(host, port, rtt_ms=150) as proxy:``.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        rtt_ms: float = 0.0,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        max_connections: int = 100,
        connect_timeout_s: float = 10.0,
    ) -> None:
        """Configure the proxy; nothing listens until :meth:`start` (or ``async with``).

        ``rtt_ms`` is the emulated round-trip time (one-way delay is half of it);
        ``listen_port=0`` picks a free ephemeral port.  ``connect_timeout_s`` bounds the
        upstream connect so a black-holed target cannot pin a connection forever.
        """
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if not connect_timeout_s > 0:
            raise ValueError("connect_timeout_s must be positive")
        self._target_host = target_host
        self._target_port = target_port
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._max_connections = max_connections
        self._rtt_s = 0.0
        self.rtt_ms = rtt_ms  # validated by the setter
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Every open socket's writer, so stop() can close even a connection whose task
        # was cancelled before it ever ran.
        self._writers: set[asyncio.StreamWriter] = set()
        self._relay = DelayingRelay(
            (target_host, target_port),
            connect_timeout_s=connect_timeout_s,
            one_way_delay=lambda: self._rtt_s / 2,
            writers=self._writers,
        )
        self._opened = 0
        self._active = 0
        self._refused = 0

    # ---- configuration -------------------------------------------------------------

    @property
    def rtt_ms(self) -> float:
        """The emulated round-trip time in milliseconds."""
        return self._rtt_s * 1000.0

    @rtt_ms.setter
    def rtt_ms(self, value: float) -> None:
        # Read per chunk and per new connection, so a change applies to bytes that arrive
        # after it; bytes already in flight keep the delay they were sent with.
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"rtt_ms must be a finite number >= 0, got {value!r}")
        self._rtt_s = value / 1000.0

    @property
    def target(self) -> tuple[str, int]:
        """The ``(host, port)`` every connection is forwarded to."""
        return self._target_host, self._target_port

    @property
    def host(self) -> str:
        """The address the proxy listens on (raises ``RuntimeError`` before :meth:`start`)."""
        return self._bound()[0]

    @property
    def port(self) -> int:
        """The port the proxy listens on, the real one when started with port 0."""
        return self._bound()[1]

    def url(self, scheme: str = "http", path: str = "/v1") -> str:
        """A URL that reaches the target through the proxy, e.g. ``http://127.0.0.1:41234/v1``."""
        host, port = self._bound()
        if ":" in host:
            host = f"[{host}]"
        if path and not path.startswith("/"):
            path = "/" + path
        return f"{scheme}://{host}:{port}{path}"

    def _bound(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("LatencyProxy is not listening; call start() first")
        return self._address

    # ---- counters ------------------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """Client connections accepted (and forwarded) since start or the last reset."""
        return self._opened

    @property
    def active_connections(self) -> int:
        """Client connections being served right now."""
        return self._active

    @property
    def connections_refused(self) -> int:
        """Client connections closed at once because ``max_connections`` were live."""
        return self._refused

    @property
    def bytes_to_target(self) -> int:
        """Bytes delivered from clients to the target."""
        return self._relay.traffic.to_target

    @property
    def bytes_to_client(self) -> int:
        """Bytes delivered from the target to clients."""
        return self._relay.traffic.to_client

    def counters(self) -> ProxyCounters:
        """All counters at once, as an immutable snapshot."""
        return ProxyCounters(
            connections_opened=self._opened,
            active_connections=self._active,
            connections_refused=self._refused,
            bytes_to_target=self._relay.traffic.to_target,
            bytes_to_client=self._relay.traffic.to_client,
        )

    def reset_counters(self) -> None:
        """Zero the totals; ``active_connections`` is live state and is left alone."""
        self._opened = 0
        self._refused = 0
        self._relay.traffic = Traffic()

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start listening.  Raises ``OSError`` if the address cannot be bound."""
        if self._server is not None:
            raise RuntimeError("LatencyProxy is already started")
        self._stopping = False
        server = await asyncio.start_server(self._on_accept, self._listen_host, self._listen_port, limit=CHUNK_BYTES)
        sockname = server.sockets[0].getsockname()
        self._server = server
        self._address = (str(sockname[0]), int(sockname[1]))
        log.info(
            "latency proxy %s:%d -> %s:%d, rtt %.0f ms",
            *self._address,
            self._target_host,
            self._target_port,
            self.rtt_ms,
        )

    async def stop(self) -> None:
        """Close the listener and every live connection, and wait for all proxy tasks to end.

        Safe to call more than once, and before :meth:`start`.
        """
        self._stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()  # closes the listening sockets now: the port refuses from here on
        # No new task can appear once the listener is closed, so one pass suffices.
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()
        self._address = None

    async def __aenter__(self) -> LatencyProxy:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # ---- connections ---------------------------------------------------------------

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain (not async) callback so that the proxy itself creates, and therefore
        # owns and can cancel, every connection task.
        if self._stopping or self._active >= self._max_connections:
            self._refused += 1
            log.warning("latency proxy refusing a connection: %d already live", self._active)
            writer.transport.abort()
            return
        self._opened += 1
        self._active += 1
        self._writers.add(writer)
        # The handshake is charged at the RTT in force when the client connected.
        task = asyncio.get_running_loop().create_task(
            self._relay.serve(reader, writer, self._rtt_s), name=f"latency-proxy-conn-{self._opened}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._on_connection_done)

    def _on_connection_done(self, task: asyncio.Task[None]) -> None:
        # Here rather than in the relay's finally: a task cancelled before its first step
        # never runs its body, but it does run its done callbacks.
        self._tasks.discard(task)
        self._active -= 1
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("latency proxy connection failed", exc_info=exc)


# ---- command line -------------------------------------------------------------------


def _address(text: str) -> tuple[str, int]:
    """Parse ``host:port`` (``[::1]:port`` for IPv6) for argparse."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port_text)


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _run(listen: tuple[str, int], target: tuple[str, int], rtt_ms: float, max_connections: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows; there Ctrl-C arrives as KeyboardInterrupt instead.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with LatencyProxy(
            *target, rtt_ms, listen_host=listen[0], listen_port=listen[1], max_connections=max_connections
        ) as proxy:
            print(
                f"listening on {_format_address(proxy.host, proxy.port)} -> "
                f"{_format_address(*target)} (rtt {proxy.rtt_ms:g} ms)",
                flush=True,
            )
            await stop.wait()
            print(
                f"stopping after {proxy.connections_opened} connections, "
                f"{proxy.bytes_to_target} bytes to target, {proxy.bytes_to_client} bytes to clients",
                flush=True,
            )
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: run a proxy until SIGINT or SIGTERM, then shut down cleanly."""
    parser = argparse.ArgumentParser(
        prog="python -m llm.latency_proxy", description="Latency-injecting TCP proxy for WarmVoice."
    )
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any)")
    parser.add_argument("--target", type=_address, required=True, help="HOST:PORT to forward to")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="emulated round-trip time")
    parser.add_argument("--max-connections", type=int, default=100)
    args = parser.parse_args(argv)
    if not math.isfinite(args.rtt_ms) or args.rtt_ms < 0:
        parser.error("--rtt-ms must be a finite number >= 0")
    if args.max_connections < 1:
        parser.error("--max-connections must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        asyncio.run(_run(args.listen, args.target, args.rtt_ms, args.max_connections))
    except KeyboardInterrupt:
        pass  # only where signal handlers are unsupported; asyncio.run has cleaned up
    except OSError as exc:
        print(f"latency proxy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
