"""Keeping the pooled connection warm: how long an idle one survives, and when to refresh it.

Servers close idle keep-alive connections after their own limit (uvicorn 5 s, nginx 75 s,
others unknown), and the client's connector drops them after ``keepalive_timeout``.  A
connection is only useful if it is refreshed before the smaller of the two expires.

:class:`IdleLimit` is pure: it learns the limit from what the client sees.
:class:`KeepWarmScheduler` watches the idle pooled connection and runs the keep-warm loop;
the client tells it what happens (a request starts, a response ends, a header arrives) and
gives it the one thing it cannot do itself, sending a ping.  Its time comes from an
injectable :class:`llm.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llm.clock import Clock
from llm.config import KeepWarm
from llm.errors import AuthError
from llm.timing import AttemptTrace, WarmUpResult

logger = logging.getLogger("llm.client")

_TIMEOUT = re.compile(r"(?:^|[,;\s])timeout\s*=\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)
MIN_LIMIT_S = 0.2  # below this a keep-warm loop would be a busy loop: do not believe it
MAX_MARGIN_S = 2.0  # re-warm at most this long before the expected expiry ...
MIN_FRACTION = 0.5  # ... but never later than half the limit
KEEP_WARM_MAX_FAILURES = 3
MIN_PING_INTERVAL_S = 0.25


def parse_keep_alive(header: str | None) -> float | None:
    """The ``timeout=N`` of a ``Keep-Alive`` response header, in seconds, if there is one."""
    if not header:
        return None
    match = _TIMEOUT.search(header)
    return float(match.group(1)) if match else None


@dataclass
class IdleLimit:
    """What the client knows about the idle limit of its pooled connections.

    ``client_s``: the connector's own keepalive_timeout.  ``server_s``: the server's limit
    once known (from a header, an observed close, or a dead pooled connection), else None.
    ``source`` says where ``server_s`` came from.
    """

    client_s: float
    server_s: float | None = None
    source: str = ""

    @property
    def effective_s(self) -> float:
        """The idle time after which the pooled connection is gone (smaller of both limits)."""
        if self.server_s is None:
            return self.client_s
        return min(self.server_s, self.client_s)

    def ping_delay(self) -> float:
        """How long after the last use to re-warm: shortly before the connection expires."""
        limit = self.effective_s
        return max(limit * MIN_FRACTION, limit - MAX_MARGIN_S)

    def observe_header(self, value: str | None) -> bool:
        """Learn from a ``Keep-Alive: timeout=N`` header.  True if the estimate changed."""
        seconds = parse_keep_alive(value)
        if seconds is None or seconds < MIN_LIMIT_S:
            return False
        if self.source == "header" and self.server_s == seconds:
            return False
        # A header is the server's own word: it replaces an estimate made from observations
        # unless we have seen the server close earlier than it claims.
        if self.server_s is not None and self.source != "header" and self.server_s < seconds:
            return False
        self.server_s = seconds
        self.source = "header"
        return True

    def observe_close(self, idle_s: float, source: str = "observed close") -> bool:
        """An idle connection was closed by the server after ``idle_s`` seconds (or was found
        dead after at most ``idle_s``).  True if the estimate changed."""
        if idle_s < MIN_LIMIT_S or idle_s >= self.client_s * 0.95:
            return False  # too short to trust, or our own connector closed it
        if self.server_s is not None and self.server_s <= idle_s:
            return False
        self.server_s = idle_s
        self.source = source
        return True


@dataclass
class WatchedConnection:
    """The idle pooled connection the keep-warm logic looks after."""

    proto: Any  # aiohttp's ResponseHandler (its type is not public API)
    released_at: float  # clock time when its last response ended
    busy: bool = False  # a request is using it right now

    @property
    def alive(self) -> bool:
        """Idle in the pool with its socket open."""
        return not self.busy and bool(self.proto.is_connected())


class KeepWarmScheduler:
    """Refreshes the idle pooled connection shortly before it would expire.

    ``ping`` sends one warm-up request (the client's); ``busy`` says whether chat requests are
    in flight; ``enabled`` is False for strategies that do not keep warm (the scheduler then
    still watches the connection, for the client's ``state``).
    """

    def __init__(
        self,
        config: KeepWarm,
        idle_limit: IdleLimit,
        clock: Clock,
        *,
        ping: Callable[[], Awaitable[WarmUpResult]],
        busy: Callable[[], bool],
        enabled: bool,
    ) -> None:
        self.config = config
        self.idle_limit = idle_limit
        self.clock = clock
        self._send_ping = ping
        self._busy = busy
        self._enabled = enabled and config.enabled
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._wake = asyncio.Event()
        self._ping_idle = asyncio.Event()
        self._ping_idle.set()
        self.watched: WatchedConnection | None = None
        now = clock.now()
        self.last_activity = now  # last time any request (real or ping) finished
        self.last_real_use = now  # last time a chat request started

    # ---------------------------------------------------------------- what the client asks

    @property
    def running(self) -> bool:
        """True while the keep-warm loop is alive."""
        return self._task is not None and not self._task.done()

    def connection_warm(self) -> bool:
        """An idle pooled connection is alive and younger than the idle limit."""
        watch = self.watched
        return watch is not None and watch.alive and self.clock.now() - watch.released_at < self.idle_limit.effective_s

    def fresh(self) -> bool:
        """The pooled connection was used so recently that a warm-up would be wasted."""
        watch = self.watched
        return (
            watch is not None and watch.alive and self.clock.now() - self.last_activity < self.idle_limit.ping_delay()
        )

    async def wait_for_ping(self, limit_s: float) -> None:
        """Wait (at most ``limit_s``) for an in-flight ping: it holds the warm connection for
        about one round trip, which is faster than opening a new connection next to it."""
        if not self._ping_idle.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit_s):
                    await self._ping_idle.wait()

    # ---------------------------------------------------------------- what the client reports

    def ensure_running(self) -> None:
        """Start the keep-warm loop if it is enabled and not running."""
        if not self._enabled or self._closed or self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="llm-keep-warm")

    def request_started(self) -> None:
        """A real (chat) request started: the keep-warm idle budget starts again."""
        self.last_real_use = self.clock.now()

    def activity(self) -> None:
        """A request (real or ping) finished without a connection to watch."""
        self.last_activity = self.clock.now()

    def lost(self) -> None:
        """A request closed its connection half-read (a cancelled stream): if it was the warm
        one, re-warm at once, in the background, rather than let the next request open one on
        its path."""
        self._wake.set()

    def claim(self, proto: Any) -> None:
        """A request is now using ``proto``: while busy, its closing is not an idle close."""
        if self.watched is not None and self.watched.proto is proto:
            self.watched.busy = True

    def released(self, proto: Any) -> None:
        """A fully read response returned ``proto``'s connection to the pool: watch it."""
        self.last_activity = self.clock.now()
        if proto is None or not proto.is_connected():
            return
        if self.watched is not None and self.watched.proto is proto:
            self.watched.released_at = self.last_activity
            self.watched.busy = False
            return
        watch = WatchedConnection(proto=proto, released_at=self.last_activity)
        self.watched = watch
        closed = getattr(proto, "closed", None)  # a Future set when the socket closes (aiohttp >= 3.9)
        if isinstance(closed, asyncio.Future) and not closed.done():
            closed.add_done_callback(functools.partial(self._on_watched_closed, watch))

    def learn_from_header(self, keep_alive: str | None) -> None:
        """A response's ``Keep-Alive`` header."""
        if self.idle_limit.observe_header(keep_alive):
            logger.info(
                "Server keeps idle connections %.1f s (Keep-Alive header); keep-warm every %.1f s",
                self.idle_limit.server_s,
                self.idle_limit.ping_delay(),
            )
            self._wake.set()

    def learn_dead(self, trace: AttemptTrace) -> None:
        """A new connection was needed although one sat idle in the pool: it had died."""
        watch = self.watched
        if trace.reused or trace.create_end is None or watch is None or watch.busy or watch.proto.is_connected():
            return
        self.watched = None
        if self.idle_limit.observe_close(self.clock.now() - watch.released_at, source="dead pooled connection"):
            logger.info(
                "Pooled connection had been closed by the server; assuming an idle limit of %.1f s",
                self.idle_limit.server_s,
            )

    def learn_stale(self, proto: Any) -> None:
        """A request found ``proto``, the pooled connection, dead when it tried to use it."""
        watch = self.watched
        if watch is not None and watch.proto is proto:
            self.watched = None
            self.idle_limit.observe_close(self.clock.now() - watch.released_at, "dead pooled connection")

    async def close(self) -> None:
        """Stop the loop (and wait for it)."""
        self._closed = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ---------------------------------------------------------------- the loop

    def _on_watched_closed(self, watch: WatchedConnection, fut: asyncio.Future[None]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieve it, so asyncio does not log "never retrieved"
        if self._closed or self.watched is not watch or watch.busy:
            return  # closed by us, or while a request used it (that request will notice)
        idle = self.clock.now() - watch.released_at
        if self.idle_limit.observe_close(idle):
            logger.info(
                "Server closed an idle connection after %.1f s; keep-warm will re-warm every %.1f s",
                idle,
                self.idle_limit.ping_delay(),
            )
        self._wake.set()

    async def _loop(self) -> None:
        """Refresh the idle pooled connection shortly before it would expire, and re-open it at
        once when the server closes it.  Bounded: stops after ``max_idle_s`` without a real
        request, after repeated failures, or on close(); never pings more often than every
        MIN_PING_INTERVAL_S."""
        logger.debug("Keep-warm started (ping %.1f s after last use)", self.idle_limit.ping_delay())
        failures = 0
        last_ping = -math.inf
        while not self._closed:
            now = self.clock.now()
            if now - self.last_real_use > self.config.max_idle_s:
                logger.info("Keep-warm stopped: no request for %.0f s", now - self.last_real_use)
                return
            delay = self.idle_limit.ping_delay()
            due = self.last_activity + delay
            watch = self.watched
            if watch is None or not watch.alive:
                due = now  # the warm connection is gone: re-warm now, before the next turn needs it
            if failures:
                due = max(due, last_ping + min(delay, 2.0**failures))
            if self._busy():
                due = now + delay  # a request holds the connection and refreshes the pool itself
            due = max(due, last_ping + MIN_PING_INTERVAL_S)
            if now < due:
                self._wake.clear()
                await self.clock.wait(self._wake, due - now)
                continue
            last_ping = now
            result = await self._ping()
            if result.ok:
                failures = 0
                continue
            failures += 1
            if isinstance(result.failure, AuthError) or failures >= KEEP_WARM_MAX_FAILURES:
                logger.warning("Keep-warm stopped after %d failed ping(s): %s", failures, result.error)
                return

    async def _ping(self) -> WarmUpResult:
        self._ping_idle.clear()
        try:
            result = await self._send_ping()
        finally:
            self._ping_idle.set()
            self.last_activity = self.clock.now()
        timing = result.timing
        logger.debug(
            "Keep-warm ping: %s in %.0f ms (%s)",
            "ok" if result.ok else result.error,
            result.ms,
            "reused" if timing is not None and timing.reused_connection else "new connection",
        )
        return result
