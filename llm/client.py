"""A pooled, pre-warmed, streaming client for OpenAI-compatible chat completions.

One :class:`aiohttp.ClientSession` over one :class:`aiohttp.TCPConnector` per client, reused for
every request, so the DNS lookup, TCP handshake and TLS handshake are paid once instead of on
every voice turn.  Three strategies (:mod:`llm.strategies`) measure the difference.

HTTP/2: aiohttp speaks HTTP/1.1 only, so one connection carries one request at a time;
concurrency comes from ``limit`` pooled connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Literal

from llm.chat import Message, chat_request_body
from llm.chat_request import ChatRequests
from llm.clock import Clock, MonotonicClock
from llm.config import KeepWarm, PoolLimits, Timeouts
from llm.errors import public_endpoint
from llm.keepwarm import IdleLimit, KeepWarmScheduler
from llm.retry import RetryPolicy
from llm.secret import Secret, hide_in_logs
from llm.sentences import SentenceSplitter, SplitterConfig
from llm.strategies import Strategy, parse_strategy
from llm.timing import (
    EVENT_FIRST_SENTENCE,
    EVENT_KEEP_WARM,
    EVENT_WARMUP_DONE,
    ClientStats,
    LLMEvent,
    RequestTiming,
    WarmUpResult,
    connection_detail,
)
from llm.transport import EventCallback, Transport
from llm.warmup import WarmUpRequests, skipped

logger = logging.getLogger("llm.client")

# What the UI says about the pooled connection (see PooledLLMClient.state).
ConnectionState = Literal["cold", "warming", "warm", "idle", "closed"]


class PooledLLMClient:
    """Streams chat completions over a persistent connection pool.

    ``api_key`` may be a ``str`` or an :class:`llm.Secret`; a str is wrapped at once and the key
    is only ever revealed to build the ``Authorization`` header (sent only when a key is set).
    Configuration travels whole, as small frozen objects (defaults when None):
    ``timeouts`` (:class:`llm.Timeouts`: connect, first byte, between chunks), ``retry``
    (:class:`llm.RetryPolicy`: retries after 408/409/429/5xx or a connection error before any
    response, with back-off or the server's Retry-After, like the OpenAI SDK), ``pool``
    (:class:`llm.PoolLimits`) and ``keep_warm`` (:class:`llm.KeepWarm`).
    ``ssl``: an :class:`ssl.SSLContext` (e.g. to trust a private CA), as aiohttp's ``ssl=``.
    ``on_event(name, payload)``: called the moment a stage is known (see ``llm.timing.EVENT_*``).
    ``connect_to``: open TCP connections to this ``(host, port)`` instead of the URL's (e.g. a
    latency-emulating proxy); the Host header, TLS SNI and certificate check still use the URL's
    host.  No DNS lookup happens then (``dns_ms`` is None).
    ``clock``: the keep-warm scheduler's time (:class:`llm.clock.ManualClock` in tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret | None = None,
        model: str = "gpt-4o-mini",
        *,
        strategy: Strategy = "prewarmed",
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        pool: PoolLimits | None = None,
        keep_warm: KeepWarm | None = None,
        ssl: ssl_module.SSLContext | None = None,
        splitter: SplitterConfig | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        on_event: EventCallback | None = None,
        connect_to: tuple[str, int] | None = None,
        clock: Clock | None = None,
    ) -> None:
        strategy = parse_strategy(strategy)  # callers outside mypy's reach may pass any string
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        self._api_key = api_key if isinstance(api_key, Secret) else Secret(api_key or "")
        if any(c in self._api_key.reveal() for c in "\r\n"):
            raise ValueError("api_key contains a line break")
        hide_in_logs(self._api_key)  # last line of defence for any handler using llm.configure_logging

        self._base_url = base_url.rstrip("/")
        self._chat_url = f"{self._base_url}/chat/completions"
        self._models_url = f"{self._base_url}/models"
        self.endpoint = public_endpoint(self._base_url)
        self.model = model
        self.strategy = strategy
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.pool = pool or PoolLimits()
        keep_warm = keep_warm or KeepWarm()
        self._prewarm_connections = min(self.pool.prewarm_connections, self.pool.limit)
        self._splitter_config = splitter or SplitterConfig()
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._on_event = on_event

        self.idle_limit = IdleLimit(client_s=self.pool.keepalive_timeout)
        if keep_warm.server_keepalive_s is not None:
            self.idle_limit.server_s = keep_warm.server_keepalive_s
            self.idle_limit.source = "configured"
        self.stats = ClientStats()
        self.last_request: RequestTiming | None = None
        self.last_warm_up: WarmUpResult | None = None

        self._closed = False
        self._warming = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keep_warm = KeepWarmScheduler(
            keep_warm,
            self.idle_limit,
            clock or MonotonicClock(),
            ping=lambda: self._warm_requests.send(1, EVENT_KEEP_WARM),
            busy=lambda: self._requests.active > 0,
            enabled=strategy == "prewarmed",
        )
        self._transport = Transport(
            strategy=strategy,
            pool=self.pool,
            timeouts=self.timeouts,
            api_key=self._api_key,
            stats=self.stats,
            keep_warm=self._keep_warm,
            emit=self._emit,
            ssl=ssl,
            connect_to=connect_to,
        )
        self._warm_requests = WarmUpRequests(self._transport, self._models_url, self.stats, self._emit)
        self._requests = ChatRequests(
            transport=self._transport,
            keep_warm=self._keep_warm,
            retry=self.retry,
            stats=self.stats,
            emit=self._emit,
            chat_url=self._chat_url,
            endpoint=self.endpoint,
            stale_budget=self.pool.limit,
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> PooledLLMClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"PooledLLMClient({self.endpoint!r}, model={self.model!r}, strategy={self.strategy!r})"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def state(self) -> ConnectionState:
        """For the UI: "cold", "warming", "warm", "idle" or "closed".

        "warm" means a pooled connection is alive (or a request is using one); "idle" means
        connections existed but none is alive now; "cold" means none was ever made (always
        "cold" for the cold strategy, which never keeps one).
        """
        if self._closed:
            return "closed"
        if self._warming:
            return "warming"
        if self.strategy == "cold":
            return "cold"
        if self._requests.active:
            return "warm"
        if self._keep_warm.connection_warm():
            return "warm"
        return "idle" if self.stats.connections_opened else "cold"

    @property
    def keep_warm_running(self) -> bool:
        """True while the background keep-warm loop is alive."""
        return self._keep_warm.running

    async def close(self) -> None:
        """Stop warm-up and keep-warm, abort open streams and close every connection."""
        if self._closed:
            return
        self._closed = True
        await self._keep_warm.close()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._transport.close()
        logger.info(
            "LLM client closed: %d requests, %d connections opened, %d reused, %d retries, %d warm-ups",
            self.stats.requests,
            self.stats.connections_opened,
            self.stats.connections_reused,
            self.stats.retries,
            self.stats.warmups,
        )

    # ------------------------------------------------------------------ warm-up

    def start_warm_up(self) -> asyncio.Task[WarmUpResult]:
        """Run :meth:`warm_up` in the background and return its task (never blocks a request).

        The client keeps a reference to the task and cancels it on :meth:`close`.
        """
        task = asyncio.get_running_loop().create_task(self.warm_up(), name="llm-warm-up")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def warm_up(self) -> WarmUpResult:
        """Open ``prewarm_connections`` connections now (``GET {base_url}/models``).

        Non-critical: a failure is logged and returned, never raised, and the first real
        request then connects as usual.  Only the "prewarmed" strategy warms: for "pooled" and
        "cold" this is a no-op returning ``ok=True, skipped=True`` so callers can call it
        unconditionally.  Also skipped (ok) while another warm-up is in flight, while a request
        is running, or when the pooled connection was used recently enough to still be warm.
        On success the keep-warm loop starts.
        """
        if self._closed:
            return WarmUpResult(ok=False, ms=0.0, error="client is closed")
        if self.strategy != "prewarmed":
            return skipped(f"strategy {self.strategy!r} does not pre-warm")
        if self._warming:
            return skipped("a warm-up is already in flight")
        if self._requests.active:
            return skipped("a request is using the connection")
        if self._keep_warm.fresh():
            return skipped("the pooled connection was used recently and is still warm")
        self._warming = True
        try:
            logger.info(
                "Pre-warming LLM connection... (%s, %d connection%s)",
                self.endpoint,
                self._prewarm_connections,
                "" if self._prewarm_connections == 1 else "s",
            )
            result = await self._warm_requests.send(self._prewarm_connections, EVENT_WARMUP_DONE)
        finally:
            self._warming = False
        self.last_warm_up = result
        if result.ok:
            timing = result.timing
            how = (
                "reused pooled connection"
                if timing is not None and timing.reused_connection
                else connection_detail(timing)
            )
            logger.info("Warmup complete in %.0f ms - connection ready (%s)", result.ms, how)
            self._keep_warm.ensure_running()
        else:
            logger.warning(
                "Warmup failed after %.0f ms (non-critical, the first request will connect as usual): %s",
                result.ms,
                result.error,
            )
        return result

    # ------------------------------------------------------------------ streaming

    async def stream_tokens(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
    ) -> AsyncIterator[str]:
        """Stream the reply to ``messages`` (OpenAI chat messages) as token strings.

        ``max_tokens``, ``temperature`` (default: the constructor's) and ``stop`` (strings that
        end the reply) go into the request body as the OpenAI API defines them.

        Raises an :class:`llm.errors.LLMError` subclass on failure.  Breaking out of the loop,
        ``aclose()`` or cancelling the task releases the response: its connection is closed,
        never returned to the pool half-read.
        """
        timing = RequestTiming(endpoint=public_endpoint(self._chat_url))
        parts = self._stream(messages, timing, "stream_tokens", max_tokens, temperature, stop)
        async with contextlib.aclosing(parts):
            async for part in parts:
                if part is not None:
                    yield part

    async def stream_sentences(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
    ) -> AsyncIterator[str]:
        """Stream the reply as sentences: each the moment it is complete, the rest at the end.

        Sentences come from :class:`llm.sentences.SentenceSplitter` (configured by the
        ``splitter`` constructor argument).  If the stream breaks, the sentences already
        complete have been yielded and then :class:`llm.errors.LLMStreamError` (or a time-out)
        is raised; the unfinished fragment is dropped.
        """
        timing = RequestTiming(endpoint=public_endpoint(self._chat_url))
        splitter = SentenceSplitter(self._splitter_config)
        parts = self._stream(messages, timing, "stream_sentences", max_tokens, temperature, stop)
        async with contextlib.aclosing(parts):
            async for part in parts:
                for sentence in splitter.push(part) if part is not None else splitter.flush():
                    timing.sentences += 1
                    if timing.first_sentence_ms is None:
                        timing.first_sentence_ms = timing.since_start()
                        self._emit(EVENT_FIRST_SENTENCE, timing)
                    yield sentence

    def _stream(
        self,
        messages: Sequence[Message],
        timing: RequestTiming,
        label: str,
        max_tokens: int | None,
        temperature: float | None,
        stop: Sequence[str] = (),
    ) -> AsyncGenerator[str | None]:
        """Content tokens, then ``None`` once the content is complete (see :class:`ChatRequests`)."""
        body = chat_request_body(
            self.model,
            messages,
            max_tokens=max_tokens if max_tokens is not None else self._max_tokens,
            temperature=temperature if temperature is not None else self._temperature,
            stop=stop,
        )
        if self._closed:
            raise RuntimeError("PooledLLMClient is closed")
        self.last_request = timing
        return self._requests.stream(body, timing, label)

    def _emit(self, name: LLMEvent, payload: RequestTiming | WarmUpResult) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, payload)
        except Exception:
            logger.exception("on_event callback failed for %r", name)
