"""The connection pool: one aiohttp session over one TCPConnector, per strategy.

The connector also tells each request which connection (protocol object) it got, so the
client can watch an idle pooled connection and notice the moment the server closes it.
aiohttp releases a small response's connection before ``session.request()`` even returns,
so ``response.connection`` cannot be used for that.
"""

from __future__ import annotations

import contextvars
import ssl as ssl_module
from typing import Any

import aiohttp

from llm.config import PoolLimits
from llm.strategies import Strategy
from llm.timing import AttemptTrace, build_trace_config

# The attempt being made in the current task; set around ``session.request()``.
current_attempt: contextvars.ContextVar[AttemptTrace | None] = contextvars.ContextVar(
    "llm_current_attempt", default=None
)


class _ReportingConnector(aiohttp.TCPConnector):
    """A TCPConnector that hands the acquired connection's protocol to the current attempt."""

    async def connect(self, *args: Any, **kwargs: Any) -> Any:
        connection = await super().connect(*args, **kwargs)
        attempt = current_attempt.get()
        if attempt is not None:
            attempt.protocol = connection.protocol
        return connection


def create_session(*, strategy: Strategy, pool: PoolLimits, ssl: ssl_module.SSLContext | None) -> aiohttp.ClientSession:
    """The client's one session.  "cold" gets a connector that closes every connection after
    its response and never caches DNS, so each request pays DNS, TCP and TLS again."""
    ssl_arg: ssl_module.SSLContext | bool = ssl if ssl is not None else True
    if strategy == "cold":
        connector = _ReportingConnector(limit=pool.limit, force_close=True, use_dns_cache=False, ssl=ssl_arg)
    else:
        connector = _ReportingConnector(
            limit=pool.limit, ttl_dns_cache=pool.ttl_dns_cache, keepalive_timeout=pool.keepalive_timeout, ssl=ssl_arg
        )
    return aiohttp.ClientSession(
        connector=connector,
        # The client enforces its own connect, first-byte and chunk deadlines.
        timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None),
        trace_configs=[build_trace_config()],
        headers={"User-Agent": f"WarmVoice aiohttp/{aiohttp.__version__}"},
    )
