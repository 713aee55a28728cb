"""One HTTP attempt over the client's pooled session: where the socket goes, which headers it
carries, the connect and first-byte deadlines, and what becomes of a response's connection.

:class:`Transport` is the part of :class:`llm.PooledLLMClient` that touches aiohttp; the client
decides what to send and when to retry, the transport sends it once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from llm.chat_stream import MAX_ERROR_BODY, read_body
from llm.config import PoolLimits, Timeouts
from llm.errors import LLMError, LLMTimeoutError, public_endpoint
from llm.http_errors import StaleConnectionError, connection_error, http_error
from llm.keepwarm import KeepWarmScheduler
from llm.pool import create_session, current_attempt
from llm.secret import Secret
from llm.strategies import Strategy
from llm.timing import EVENT_CONNECTED, AttemptTrace, ClientStats, LLMEvent, RequestTiming, WarmUpResult

logger = logging.getLogger("llm.client")

EventCallback = Callable[[LLMEvent, "RequestTiming | WarmUpResult"], None]


class Transport:
    """Sends single HTTP attempts for one client and returns their connections to the pool.

    ``emit`` reports ``connected`` for chat attempts; ``keep_warm`` is told which pooled
    connection each attempt used, found dead, or released.
    """

    def __init__(
        self,
        *,
        strategy: Strategy,
        pool: PoolLimits,
        timeouts: Timeouts,
        api_key: Secret,
        stats: ClientStats,
        keep_warm: KeepWarmScheduler,
        emit: EventCallback,
        ssl: ssl_module.SSLContext | None = None,
        connect_to: tuple[str, int] | None = None,
    ) -> None:
        self.strategy = strategy
        self.pool = pool
        self.timeouts = timeouts
        self.stats = stats
        self._api_key = api_key
        self._keep_warm = keep_warm
        self._emit = emit
        self._ssl = ssl
        self._connect_to = connect_to
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._responses: set[aiohttp.ClientResponse] = set()  # open responses, aborted on close

    def track(self, resp: aiohttp.ClientResponse) -> None:
        """``resp`` is being read: abort it if the transport closes first."""
        self._responses.add(resp)

    async def close(self) -> None:
        """Abort open responses and close every connection."""
        self._closed = True
        for resp in list(self._responses):
            resp.close()
        self._responses.clear()
        if self._session is not None:
            await self._session.close()

    async def attempt(
        self,
        method: str,
        url: str,
        timing: RequestTiming,
        *,
        accept: str,
        json_body: dict[str, Any] | None = None,
    ) -> tuple[aiohttp.ClientResponse, AttemptTrace]:
        """One HTTP attempt up to the status line, under the connect and first-byte deadlines."""
        session = self._get_session()
        loop = asyncio.get_running_loop()
        trace = AttemptTrace(self.stats)
        timing.attempts += 1
        endpoint = public_endpoint(url)
        try:
            async with asyncio.timeout(self.timeouts.connect) as deadline:

                def connected() -> None:
                    deadline.reschedule(loop.time() + self.timeouts.first_byte)
                    trace.apply_to(timing)
                    if timing.kind == "chat":
                        self._emit(EVENT_CONNECTED, timing)

                trace.on_connected = connected
                target, headers, server_hostname = self._route(url, self._headers(accept))
                token = current_attempt.set(trace)
                try:
                    resp = await session.request(
                        method,
                        target,
                        json=json_body,
                        headers=headers,
                        server_hostname=server_hostname,
                        trace_request_ctx=trace,
                    )
                finally:
                    current_attempt.reset(token)
                    # In use now: if this connection closes, it is not the server's idle limit.
                    self._keep_warm.claim(trace.protocol)
        except TimeoutError:
            trace.apply_to(timing)
            if trace.connected:
                raise LLMTimeoutError(
                    f"no response from {endpoint} within {self.timeouts.first_byte:g} s (first-byte timeout)",
                    phase="first_byte",
                    timeout_s=self.timeouts.first_byte,
                    endpoint=endpoint,
                ) from None
            if trace.queued and trace.create_start is None:
                message = (
                    f"all {self.pool.limit} pooled connections stayed busy for {self.timeouts.connect:g} s "
                    f"(connect timeout, {endpoint})"
                )
            else:
                message = (
                    f"endpoint unreachable: no connection to {endpoint} within {self.timeouts.connect:g} s "
                    "(connect timeout)"
                )
            raise LLMTimeoutError(
                message, phase="connect", timeout_s=self.timeouts.connect, endpoint=endpoint
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            trace.apply_to(timing)
            self._keep_warm.learn_dead(trace)
            error = connection_error(exc, reused=trace.reused, endpoint=endpoint, redact=self.redact)
            if isinstance(error, StaleConnectionError):
                error.protocol = trace.protocol
            raise error from exc
        trace.apply_to(timing)
        self._keep_warm.learn_dead(trace)
        timing.status = resp.status
        timing.ttfb_ms = timing.since_start()
        return resp, trace

    async def http_error(self, resp: aiohttp.ClientResponse, proto: Any, timing: RequestTiming) -> LLMError:
        """Turn a non-2xx response into an error; reads (a bounded part of) its body."""
        try:
            body = await read_body(resp, MAX_ERROR_BODY, self.timeouts.chunk)
        finally:
            self.finish(resp, proto, clean=resp.content.at_eof())
        return http_error(resp.status, resp.headers, body, endpoint=timing.endpoint, redact=self.redact)

    def finish(self, resp: aiohttp.ClientResponse, proto: Any, clean: bool) -> None:
        """Return a fully read response's connection to the pool, or close a dirty one."""
        self._responses.discard(resp)
        if not clean:
            self._keep_warm.activity()
            resp.close()  # never hand a half-read connection to the next request
            self._keep_warm.lost()
            return
        resp.release()
        if self.strategy == "cold":
            self._keep_warm.activity()  # its connection closes now: nothing to watch
            return
        self._keep_warm.released(proto)

    def learn_from_headers(self, resp: aiohttp.ClientResponse) -> None:
        """Learn the server's idle limit from a response's ``Keep-Alive`` header."""
        if self.strategy != "cold":
            self._keep_warm.learn_from_header(resp.headers.get("Keep-Alive"))

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("PooledLLMClient is closed")
        if self._session is None:
            self._session = create_session(strategy=self.strategy, pool=self.pool, ssl=self._ssl)
        return self._session

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        return headers

    def _route(self, url: str, headers: dict[str, str]) -> tuple[URL, dict[str, str], str | None]:
        """Where to open the socket: the URL itself, or ``connect_to`` with the URL's identity."""
        parsed = URL(url)
        if self._connect_to is None:
            return parsed, headers, None
        host, port = self._connect_to
        headers = {**headers, "Host": parsed.host_port_subcomponent or parsed.raw_host or ""}
        server_hostname = parsed.raw_host if parsed.scheme == "https" else None
        return parsed.with_host(host).with_port(port), headers, server_hostname

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``<hidden>``."""
        key = self._api_key.reveal()
        return text.replace(key, "<hidden>") if key else text
