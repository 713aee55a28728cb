"""What the client measures, and how: aiohttp TraceConfig hooks feeding per-request timings.

All times are ``time.perf_counter()`` based.  Offsets (``*_ms`` except the two durations)
count from ``started_at``, the moment the request was issued, so a UI can draw them on one
time line and the voice layer can shift them to "ms since the end of speech".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Final, Literal

import aiohttp

from llm.errors import LLMError

# Names passed to the ``on_event`` callback, in the order they usually happen.
LLMEvent = Literal[
    "warmup_started",
    "warmup_done",
    "keep_warm",
    "request_started",
    "connected",
    "retry",
    "status",
    "first_token",
    "first_sentence",
    "done",
    "failed",
]
EVENT_WARMUP_STARTED: Final = "warmup_started"  # payload: RequestTiming (kind "warmup"); not for pings
EVENT_WARMUP_DONE: Final = "warmup_done"  # payload: WarmUpResult
EVENT_KEEP_WARM: Final = "keep_warm"  # payload: WarmUpResult of a keep-warm ping
EVENT_REQUEST_STARTED: Final = "request_started"  # payload: RequestTiming (the rest too)
EVENT_CONNECTED: Final = "connected"  # a connection is ready (new or reused) for this attempt
EVENT_RETRY: Final = "retry"  # an attempt failed and another one follows
EVENT_STATUS: Final = "status"  # HTTP status received (ttfb_ms)
EVENT_FIRST_TOKEN: Final = "first_token"
EVENT_FIRST_SENTENCE: Final = "first_sentence"
EVENT_DONE: Final = "done"  # the stream completed
EVENT_FAILED: Final = "failed"  # the request failed or was abandoned; see RequestTiming.error


def format_ms(
    value: float | None, *, missing: str = "—", unit: str = " ms", width: int = 0, grouped: bool = False
) -> str:
    """A duration for people: whole milliseconds (``"123 ms"``), or ``missing`` when the stage never
    happened.  ``width`` right-aligns the number (and ``missing``) for columns; ``grouped`` adds
    thousands separators."""
    if value is None:
        return missing.rjust(width)
    return f"{value:{width},.0f}{unit}" if grouped else f"{value:{width}.0f}{unit}"


def connection_detail(timing: RequestTiming | None) -> str:
    """How a request's new connection was made, for a log line (DNS and TCP+TLS times)."""
    if timing is None:
        return "new connection"
    dns = "cached" if timing.dns_cache_hit else format_ms(timing.dns_duration_ms, missing="n/a")
    return f"new connection: DNS {dns}, TCP+TLS {format_ms(timing.tcp_tls_ms, missing='n/a')}"


def _ms(start: float, end: float | None) -> float | None:
    return None if end is None else (end - start) * 1000.0


@dataclass
class RequestTiming:
    """The measured stages of one request (all its attempts).

    Offsets in ms from ``started_at`` (None where a stage did not happen):
    ``dns_ms`` DNS answer received, ``connect_ms`` connection ready (TCP+TLS done),
    ``ttfb_ms`` HTTP status received, ``first_token_ms``, ``first_sentence_ms``, ``total_ms``.
    They describe the last attempt, on the shared time line of the whole request.

    Durations in ms: ``dns_duration_ms`` (the lookup alone) and ``tcp_tls_ms`` (connection
    set-up without DNS).  Both are None for a reused connection, ``dns_duration_ms`` also for
    a DNS-cache hit or an IP literal.
    """

    started_at: float = field(default_factory=time.perf_counter)
    kind: Literal["chat", "warmup"] = "chat"
    endpoint: str = ""
    reused_connection: bool = False
    dns_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    first_token_ms: float | None = None
    first_sentence_ms: float | None = None
    total_ms: float | None = None
    dns_duration_ms: float | None = None
    tcp_tls_ms: float | None = None
    dns_cache_hit: bool = False
    attempts: int = 0
    retries: int = 0  # attempts repeated after an error (with back-off)
    stale_retries: int = 0  # attempts repeated at once because a pooled connection was dead
    status: int | None = None
    tokens: int = 0
    sentences: int = 0
    error: str | None = None

    def since_start(self, when: float | None = None) -> float:
        """ms from ``started_at`` to ``when`` (default: now)."""
        return ((time.perf_counter() if when is None else when) - self.started_at) * 1000.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy (for logs and the benchmark's CSV)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class WarmUpResult:
    """The outcome of :meth:`PooledLLMClient.warm_up` or of a keep-warm ping.

    ``ok``: a connection is ready (the server answered with a status other than 401/403/5xx).
    ``skipped``: nothing was sent (see ``reason``); ``ok`` is then True.  ``error`` is None
    when ok, else starts with "API key rejected" or "endpoint unreachable" (or names the
    HTTP status).  ``failure``: the error itself when there was one (an :class:`AuthError`
    for a rejected key: test its type, not the text).  ``connections_opened``: new TCP(+TLS)
    connections this warm-up made.
    """

    ok: bool
    ms: float
    error: str | None = None
    failure: LLMError | None = None
    skipped: bool = False
    reason: str = ""
    status: int | None = None
    connections_opened: int = 0
    timing: RequestTiming | None = None


@dataclass
class ClientStats:
    """Counters over the client's life, for the UI and the benchmark."""

    requests: int = 0  # chat requests started
    completed: int = 0  # chat requests whose stream finished cleanly
    failed: int = 0
    warmups: int = 0  # warm-up and keep-warm requests sent
    connections_opened: int = 0
    connections_reused: int = 0
    retries: int = 0
    stale_retries: int = 0


@dataclass
class AttemptTrace:
    """Raw trace marks of one HTTP attempt, filled by the TraceConfig hooks below.

    Passed to aiohttp as ``trace_request_ctx``.  ``on_connected`` runs (inside the request's
    task) once a connection is ready, so the caller can switch from the connect deadline to
    the first-byte deadline.
    """

    stats: ClientStats
    on_connected: Callable[[], None] | None = None
    started: float = field(default_factory=time.perf_counter)
    dns_start: float | None = None
    dns_end: float | None = None
    dns_cache_hit: bool = False
    create_start: float | None = None
    create_end: float | None = None
    reused: bool = False
    queued: bool = False  # waited for a free connection (all ``limit`` were busy)
    headers_sent: float | None = None
    protocol: Any = None  # the connection's aiohttp protocol object, set by llm.pool

    @property
    def connected(self) -> bool:
        """A connection (new or pooled) was obtained for this attempt."""
        return self.reused or self.create_end is not None

    def apply_to(self, timing: RequestTiming) -> None:
        """Copy this attempt's connection stages into ``timing`` (the last attempt wins)."""
        start = timing.started_at
        timing.reused_connection = self.reused
        timing.dns_cache_hit = self.dns_cache_hit
        timing.dns_ms = _ms(start, self.dns_end)
        timing.connect_ms = _ms(start, self.create_end)
        timing.dns_duration_ms = _ms(self.dns_start, self.dns_end) if self.dns_start is not None else None
        if self.create_start is not None and self.create_end is not None:
            create = (self.create_end - self.create_start) * 1000.0
            timing.tcp_tls_ms = create - (timing.dns_duration_ms or 0.0)
        else:
            timing.tcp_tls_ms = None

    def _connected(self) -> None:
        if self.on_connected is not None:
            self.on_connected()


def _attempt(ctx: SimpleNamespace) -> AttemptTrace | None:
    trace = getattr(ctx, "trace_request_ctx", None)
    return trace if isinstance(trace, AttemptTrace) else None


async def _on_dns_start(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.dns_start = time.perf_counter()


async def _on_dns_end(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.dns_end = time.perf_counter()


async def _on_dns_cache_hit(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.dns_cache_hit = True


async def _on_create_start(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.create_start = time.perf_counter()


async def _on_create_end(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.create_end = time.perf_counter()
        t.stats.connections_opened += 1
        t._connected()


async def _on_reuse(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.reused = True
        t.stats.connections_reused += 1
        t._connected()


async def _on_queued(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.queued = True


async def _on_headers_sent(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _attempt(ctx)) is not None:
        t.headers_sent = time.perf_counter()


def build_trace_config() -> aiohttp.TraceConfig:
    """A TraceConfig that records DNS, connection set-up and reuse into an AttemptTrace."""
    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(_on_dns_start)
    config.on_dns_resolvehost_end.append(_on_dns_end)
    config.on_dns_cache_hit.append(_on_dns_cache_hit)
    config.on_connection_create_start.append(_on_create_start)
    config.on_connection_create_end.append(_on_create_end)
    config.on_connection_reuseconn.append(_on_reuse)
    config.on_request_headers_sent.append(_on_headers_sent)
    config.on_connection_queued_start.append(_on_queued)
    config.freeze()
    return config
