"""Warm-up requests: ``GET {base_url}/models`` opens pooled connections before a turn needs them.

Non-critical by design: the outcome is a :class:`llm.WarmUpResult`, never an exception (only
cancellation propagates), and a failed warm-up leaves the first real request to connect as usual.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from llm.errors import AuthError, LLMError, public_endpoint
from llm.timing import EVENT_WARMUP_DONE, EVENT_WARMUP_STARTED, ClientStats, LLMEvent, RequestTiming, WarmUpResult
from llm.transport import EventCallback, Transport

logger = logging.getLogger("llm.client")


def skipped(reason: str) -> WarmUpResult:
    """A warm-up that sent nothing, for ``reason`` (it is ok: nothing needed doing)."""
    logger.debug("Warm-up skipped: %s", reason)
    return WarmUpResult(ok=True, ms=0.0, skipped=True, reason=reason)


class WarmUpRequests:
    """Sends warm-up (and keep-warm) requests over ``transport`` and sums them up."""

    def __init__(self, transport: Transport, models_url: str, stats: ClientStats, emit: EventCallback) -> None:
        self._transport = transport
        self._models_url = models_url
        self.endpoint = public_endpoint(models_url)
        self.stats = stats
        self._emit = emit

    async def send(self, count: int, event: LLMEvent) -> WarmUpResult:
        """Send ``count`` concurrent ``GET /models`` (each needs its own connection)."""
        start = time.perf_counter()
        opened_before = self.stats.connections_opened
        timings = [RequestTiming(kind="warmup", endpoint=self.endpoint) for _ in range(count)]
        if event == EVENT_WARMUP_DONE:
            self._emit(EVENT_WARMUP_STARTED, timings[0])
        outcomes = await asyncio.gather(*(self._one(t) for t in timings), return_exceptions=True)
        ms = (time.perf_counter() - start) * 1000.0
        opened = self.stats.connections_opened - opened_before
        statuses = [o for o in outcomes if isinstance(o, int)]
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for err in errors:
            if not isinstance(err, Exception):
                raise err  # CancelledError and friends
        auth = next((e for e in errors if isinstance(e, AuthError)), None)
        if auth is not None:
            result = WarmUpResult(
                ok=False,
                ms=ms,
                error=str(auth),
                failure=auth,
                status=auth.status,
                connections_opened=opened,
                timing=timings[0],
            )
        elif statuses:
            status = statuses[0]
            ok = status < 500
            result = WarmUpResult(
                ok=ok,
                ms=ms,
                error=None if ok else f"HTTP {status} from {self.endpoint}",
                status=status,
                connections_opened=opened,
                timing=timings[outcomes.index(status)],
            )
        else:
            err = errors[0]
            message = str(err) if isinstance(err, LLMError) else f"endpoint unreachable: {err or 'unexpected error'}"
            result = WarmUpResult(
                ok=False,
                ms=ms,
                error=message,
                failure=err if isinstance(err, LLMError) else None,
                status=getattr(err, "status", None),
                connections_opened=opened,
                timing=timings[0],
            )
        self._emit(event, result)
        return result

    async def _one(self, timing: RequestTiming) -> int:
        """One warm-up request; returns the HTTP status or raises an LLMError."""
        self.stats.warmups += 1
        resp, trace = await self._transport.attempt("GET", self._models_url, timing, accept="application/json")
        proto = trace.protocol
        self._transport.learn_from_headers(resp)
        clean = False
        try:
            async with asyncio.timeout(self._transport.timeouts.chunk):
                await resp.read()
            clean = True
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            logger.debug("Warm-up body not read completely: %s", type(exc).__name__)
        finally:
            timing.total_ms = timing.since_start()
            self._transport.finish(resp, proto, clean)
        if resp.status in (401, 403):
            raise AuthError(
                f"API key rejected (HTTP {resp.status} from {timing.endpoint})",
                endpoint=timing.endpoint,
                status=resp.status,
            )
        return resp.status
