"""One chat-completions request's life over the client's transport: the POST with its retries,
the streamed reply, and the accounting (stats, timing, events, keep-warm) around both.

:class:`llm.PooledLLMClient` decides what to ask and owns the pool; :class:`ChatRequests` sends
what it is given and reports how it went.  Two kinds of retry: a pooled connection found dead
is replaced at once (at most one per pooled connection), and a retryable failure (408/409/429/5xx,
or no connection at all) waits as :class:`llm.RetryPolicy` says, or as the server's Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from llm.chat_stream import ChatStreamReader
from llm.errors import LLMError, LLMHTTPError
from llm.http_errors import StaleConnectionError
from llm.keepwarm import KeepWarmScheduler
from llm.retry import RetryPolicy
from llm.timing import (
    EVENT_DONE,
    EVENT_FAILED,
    EVENT_FIRST_TOKEN,
    EVENT_REQUEST_STARTED,
    EVENT_RETRY,
    EVENT_STATUS,
    ClientStats,
    RequestTiming,
    connection_detail,
    format_ms,
)
from llm.transport import EventCallback, Transport

logger = logging.getLogger("llm.client")

PING_WAIT_S = 1.0  # a real request waits at most this long for an in-flight keep-warm ping


class ChatRequests:
    """Sends chat-completion requests for one client; ``active`` counts those in flight.

    ``stale_budget``: how many dead pooled connections one request may discard before it gives
    up (the pool's size: each stale attempt takes one out).
    """

    def __init__(
        self,
        *,
        transport: Transport,
        keep_warm: KeepWarmScheduler,
        retry: RetryPolicy,
        stats: ClientStats,
        emit: EventCallback,
        chat_url: str,
        endpoint: str,
        stale_budget: int,
    ) -> None:
        self._transport = transport
        self._keep_warm = keep_warm
        self._retry = retry
        self._stats = stats
        self._emit = emit
        self._chat_url = chat_url
        self._endpoint = endpoint
        self._stale_budget = stale_budget
        self.active = 0

    async def stream(self, body: dict[str, Any], timing: RequestTiming, label: str) -> AsyncGenerator[str | None]:
        """Send ``body``; yield content tokens, then ``None`` once the content is complete (the
        connection is drained and released after that, off the caller's critical path).

        Raises an :class:`llm.errors.LLMError` subclass on failure.  Closing the generator early
        (or cancelling its task) closes the response's connection instead of pooling it half-read.
        """
        self._stats.requests += 1
        self.active += 1
        self._keep_warm.request_started()
        logger.info("Starting LLM %s... (model %s at %s)", label, body.get("model"), self._endpoint)
        self._emit(EVENT_REQUEST_STARTED, timing)
        resp: aiohttp.ClientResponse | None = None
        proto: Any = None
        clean = False
        try:
            await self._keep_warm.wait_for_ping(PING_WAIT_S)
            resp, proto = await self._open(body, timing)
            self._transport.track(resp)
            self._transport.learn_from_headers(resp)
            logger.info(
                "Connection established (HTTP %d) - %s",
                resp.status,
                "reused pooled connection" if timing.reused_connection else connection_detail(timing),
            )
            self._emit(EVENT_STATUS, timing)
            reader = ChatStreamReader(
                resp,
                timing,
                chunk_timeout=self._transport.timeouts.chunk,
                redact=self._transport.redact,
                on_first_token=lambda: self._emit(EVENT_FIRST_TOKEN, timing),
                first_token_timeout=self._transport.timeouts.first_byte,
            )
            async for part in reader.parts():
                if part is None:
                    timing.total_ms = timing.since_start()
                    yield None
                    clean = await reader.drain()
                    break
                yield part
            self._completed(timing)
        except LLMError as exc:
            timing.error = str(exc)
            timing.total_ms = timing.since_start()
            self._stats.failed += 1
            logger.warning("LLM %s failed after %.0f ms: %s", label, timing.total_ms, exc)
            self._emit(EVENT_FAILED, timing)
            raise
        except (GeneratorExit, asyncio.CancelledError):
            if timing.total_ms is not None:
                self._completed(timing)  # the caller stopped after the last token: a complete turn
            elif timing.error is None:
                timing.error = "cancelled"
                timing.total_ms = timing.since_start()
                logger.info("LLM %s cancelled after %.0f ms; its connection is closed", label, timing.total_ms)
                self._emit(EVENT_FAILED, timing)
            raise
        finally:
            self.active -= 1
            if resp is not None:
                self._transport.finish(resp, proto, clean)
            else:
                self._keep_warm.activity()
            if timing.error is None:
                self._keep_warm.ensure_running()  # a no-op once the client (and so the scheduler) is closed

    def _completed(self, timing: RequestTiming) -> None:
        self._stats.completed += 1
        logger.info(
            "LLM stream complete: first token %s, total %.0f ms, %d tokens, %s",
            format_ms(timing.first_token_ms, missing="n/a"),
            timing.total_ms or 0.0,
            timing.tokens,
            "reused connection" if timing.reused_connection else "new connection",
        )
        self._emit(EVENT_DONE, timing)

    async def _open(self, body: dict[str, Any], timing: RequestTiming) -> tuple[aiohttp.ClientResponse, Any]:
        """POST the request, with retries; returns a 2xx response whose body is unread, and
        its connection's protocol object."""
        retries = 0
        stale_left = self._stale_budget
        while True:
            try:
                resp, trace = await self._transport.attempt(
                    "POST", self._chat_url, timing, json_body=body, accept="text/event-stream"
                )
            except StaleConnectionError as exc:
                if stale_left <= 0:
                    raise
                stale_left -= 1
                timing.stale_retries += 1
                self._stats.stale_retries += 1
                self._keep_warm.learn_stale(exc.protocol)
                logger.info("Pooled connection was dead (%s); retrying at once on a fresh one", exc)
                self._emit(EVENT_RETRY, timing)
                continue
            except LLMError as exc:
                if not exc.retryable or retries >= self._retry.max_retries:
                    raise
                retries = await self._back_off(timing, retries, None, exc)
                continue
            if 200 <= resp.status < 300:
                return resp, trace.protocol
            error = await self._transport.http_error(resp, trace.protocol, timing)
            if not error.retryable or retries >= self._retry.max_retries:
                raise error
            retry_after = error.retry_after if isinstance(error, LLMHTTPError) else None
            retries = await self._back_off(timing, retries, retry_after, error)

    async def _back_off(self, timing: RequestTiming, retries: int, retry_after: float | None, exc: LLMError) -> int:
        delay = self._retry.delay(retries, retry_after)
        retries += 1
        timing.retries = retries
        self._stats.retries += 1
        logger.warning("LLM request failed (%s); retry %d/%d in %.2f s", exc, retries, self._retry.max_retries, delay)
        self._emit(EVENT_RETRY, timing)
        await asyncio.sleep(delay)
        return retries
