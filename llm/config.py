"""How a :class:`llm.PooledLLMClient` is configured: a few small frozen objects, passed whole.

Each checks its own values when built, so a bad setting fails where it is made, not at the
first request.  The retry policy is :class:`llm.retry.RetryPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timeouts:
    """Seconds the client waits, per phase of a request.

    ``connect``: DNS + TCP + TLS, including waiting for a free pool slot.  ``first_byte``:
    from the connection being ready to the HTTP status, and from the status to the first
    token.  ``chunk``: between two reads of the body once tokens flow.
    """

    connect: float = 5.0
    first_byte: float = 30.0
    chunk: float = 15.0

    def __post_init__(self) -> None:
        for name in ("connect", "first_byte", "chunk"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} timeout must be greater than 0")


@dataclass(frozen=True)
class PoolLimits:
    """The connection pool (aiohttp's TCPConnector settings).

    ``limit``: connections at most (HTTP/1.1: one request each at a time).
    ``prewarm_connections``: how many connections a warm-up opens at once (at most ``limit``).
    ``keepalive_timeout``: seconds the connector keeps an idle connection.
    ``ttl_dns_cache``: seconds a DNS answer is reused (None: for ever).
    """

    limit: int = 10
    prewarm_connections: int = 1
    keepalive_timeout: float = 30.0
    ttl_dns_cache: int | None = 300

    def __post_init__(self) -> None:
        if self.limit < 1 or self.prewarm_connections < 1:
            raise ValueError("limit and prewarm_connections must be >= 1")
        if self.keepalive_timeout <= 0:
            raise ValueError("keepalive_timeout must be greater than 0")


@dataclass(frozen=True)
class KeepWarm:
    """The keep-warm loop of the "prewarmed" strategy.

    ``enabled``: refresh the idle pooled connection shortly before it would expire.
    ``max_idle_s``: stop after this long without a real request.
    ``server_keepalive_s``: the server's idle limit if known in advance (else it is learned).
    """

    enabled: bool = True
    max_idle_s: float = 600.0
    server_keepalive_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_idle_s <= 0:
            raise ValueError("max_idle_s must be greater than 0")
