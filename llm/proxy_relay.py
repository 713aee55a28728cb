"""One connection through the latency proxy: connect upstream, charge the emulated handshake,
pipe both directions through delay queues, then close both sockets.

Bytes are delayed, not the connection serialized: each direction has a FIFO of
``(deliver_at, data)`` filled by one reader and drained by one writer, so many chunks are in
flight at once and throughput is preserved while order is kept.  :class:`llm.LatencyProxy`
accepts and counts connections; :class:`DelayingRelay` carries each one's bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("llm.latency_proxy")

# One read's worth; also the StreamReader buffer limit.
CHUNK_BYTES = 64 * 1024
# Chunks in flight per direction (at most 4 MiB): the proxy's "window".  At 150 ms RTT
# that still allows ~50 MB/s, far above what an LLM stream needs, while a stalled peer
# cannot make the proxy buffer without bound.
QUEUE_CHUNKS = 64
# How long a finished connection may take to flush and close before it is aborted.
CLOSE_GRACE_S = 5.0

_Delayed = tuple[float, bytes | None]  # (deliver_at on the loop clock, data or None for EOF)


@dataclass
class Traffic:
    """Bytes delivered each way, summed over every connection a relay carried."""

    to_target: int = 0
    to_client: int = 0


class DelayingRelay:
    """Carries the proxy's connections to ``target``, each byte ``one_way_delay()`` seconds late.

    ``one_way_delay`` is read per chunk, so a change applies to bytes that arrive after it.
    ``writers`` is the proxy's set of open sockets: the relay adds each socket it opens and
    removes each it closes, so the proxy can abort them all on stop, even mid-connect.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        connect_timeout_s: float,
        one_way_delay: Callable[[], float],
        writers: set[asyncio.StreamWriter],
    ) -> None:
        self._target_host, self._target_port = target
        self._connect_timeout_s = connect_timeout_s
        self._one_way_delay = one_way_delay
        self._writers = writers
        self.traffic = Traffic()

    async def serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, handshake_rtt_s: float
    ) -> None:
        """Serve one accepted client connection until both directions end or either breaks.

        Nothing flows until ``handshake_rtt_s`` after this call (the emulated TCP handshake).
        """
        loop = asyncio.get_running_loop()
        accepted_at = loop.time()
        upstream_writer: asyncio.StreamWriter | None = None
        clean = False
        try:
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    upstream_reader, upstream_writer = await asyncio.open_connection(
                        self._target_host, self._target_port, limit=CHUNK_BYTES
                    )
            except OSError as exc:  # includes refusal and TimeoutError
                # The client already has a connection; resetting it at once is the closest
                # thing to the refusal it would have seen without the proxy.
                log.warning(
                    "latency proxy: target %s:%d unreachable (%s); closing the client",
                    self._target_host,
                    self._target_port,
                    exc,
                )
                return
            self._writers.add(upstream_writer)
            # The emulated handshake: nothing flows until one round trip after the client
            # connected.  The client's early bytes wait in the socket buffer meanwhile.
            remaining = accepted_at + handshake_rtt_s - loop.time()
            if remaining > 0:
                await asyncio.sleep(remaining)
            clean = await self._relay(client_reader, client_writer, upstream_reader, upstream_writer)
        finally:
            await self._close(client_writer, upstream_writer, clean=clean)

    async def _relay(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> bool:
        """Pump both directions until both have seen EOF; False if either side broke."""
        broken = False
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(client_reader, upstream_writer, to_target=True))
                group.create_task(self._pump(upstream_reader, client_writer, to_target=False))
        except* OSError as errors:  # ConnectionResetError, BrokenPipeError, ...
            # A reset on either side ends the whole connection, as it would end the
            # application's use of it; whatever was still in flight is dropped.
            log.debug("latency proxy connection reset: %s", errors.exceptions)
            broken = True
        return not broken

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_target: bool) -> None:
        """One direction: a reader stamps chunks with their delivery time, a writer honours it."""
        queue: asyncio.Queue[_Delayed] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._receive(reader, queue))
            await self._deliver(queue, writer, to_target=to_target)

    async def _receive(self, reader: asyncio.StreamReader, queue: asyncio.Queue[_Delayed]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await reader.read(CHUNK_BYTES)
            await queue.put((loop.time() + self._one_way_delay(), data or None))
            if not data:
                return

    async def _deliver(self, queue: asyncio.Queue[_Delayed], writer: asyncio.StreamWriter, *, to_target: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deliver_at, data = await queue.get()
            # FIFO: after an RTT decrease a chunk may be due before the one ahead of it;
            # it then waits its turn, so order is never broken.
            delay = deliver_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if data is None:
                # Half-close: pass the EOF on and keep the other direction running.
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            if to_target:
                self.traffic.to_target += len(data)
            else:
                self.traffic.to_client += len(data)
            await writer.drain()

    async def _close(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter | None, *, clean: bool) -> None:
        writers = [w for w in (client, upstream) if w is not None]
        for writer in writers:
            if clean:
                writer.close()  # both EOFs already passed on: flush and close politely
            else:
                writer.transport.abort()  # reset, so the peer learns at once
        try:
            async with asyncio.timeout(CLOSE_GRACE_S):
                for writer in writers:
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        except TimeoutError:
            # A peer that stopped reading must not keep a finished connection alive.
            for writer in writers:
                writer.transport.abort()
        finally:
            self._writers.difference_update(writers)
