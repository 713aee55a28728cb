"""Reading a streamed chat-completions response: socket bytes to SSE events to tokens.

Enforces the between-chunk deadline and turns every way the body can go wrong (dropped
connection, stall, malformed SSE, invalid JSON, an error sent inside the stream) into a
:class:`llm.errors.LLMStreamError` or :class:`llm.errors.LLMTimeoutError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp

from llm.chat import DONE, ChunkError, ServerStreamError, error_summary, parse_chunk
from llm.errors import LLMStreamError, LLMTimeoutError
from llm.sse import SSEError, SSEParser
from llm.timing import RequestTiming

MAX_DRAIN_BYTES = 64 * 1024  # after [DONE], read at most this much waiting for the body's end
MAX_ERROR_BODY = 16 * 1024


class ChatStreamReader:
    """Reads one response.  ``redact`` removes the API key from server-sent text;
    ``on_first_token`` runs the moment the first content token is parsed.

    ``first_token_timeout`` (if longer) replaces ``chunk_timeout`` until the first token: a
    server may send its headers at once and then queue the request (llama.cpp's server does,
    one generation at a time), or think before it speaks.  That wait is the first-byte budget.
    """

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        timing: RequestTiming,
        *,
        chunk_timeout: float,
        redact: Callable[[str], str],
        on_first_token: Callable[[], None],
        first_token_timeout: float = 0.0,
    ) -> None:
        self._resp = resp
        self._timing = timing
        self._chunk_timeout = chunk_timeout
        self._first_token_timeout = first_token_timeout
        self._redact = redact
        self._on_first_token = on_first_token
        self._endpoint = timing.endpoint

    def _stream_error(self, message: str) -> LLMStreamError:
        return LLMStreamError(message, endpoint=self._endpoint, status=self._resp.status)

    async def parts(self) -> AsyncIterator[str | None]:
        """Yield content tokens, then ``None`` once the content is complete ([DONE] or a
        finish_reason followed by the end of the body)."""
        if self._resp.content_type == "application/json":
            body = await read_body(self._resp, MAX_ERROR_BODY, self._chunk_timeout)
            raise self._stream_error(
                f"expected an event stream from {self._endpoint}, got JSON: {self._redact(error_summary(body))}"
            )
        parser = SSEParser()
        finished = False
        while True:
            data = await self._read_chunk()
            try:
                events = parser.feed(data) if data else parser.close()
            except SSEError as exc:
                raise self._stream_error(f"malformed event stream from {self._endpoint}: {exc}") from None
            for event in events:
                if event.data.strip() == DONE:
                    yield None
                    return
                try:
                    delta = parse_chunk(event.data, event.event)
                except ServerStreamError as exc:
                    code = f" ({exc.code})" if exc.code else ""
                    raise self._stream_error(
                        f"error in stream from {self._endpoint}{code}: {self._redact(exc.message)}"
                    ) from None
                except ChunkError as exc:
                    raise self._stream_error(
                        f"malformed stream from {self._endpoint}: {self._redact(str(exc))}"
                    ) from None
                finished = finished or delta.finish_reason is not None
                if delta.content:
                    self._timing.tokens += 1
                    if self._timing.first_token_ms is None:
                        self._timing.first_token_ms = self._timing.since_start()
                        self._on_first_token()
                    yield delta.content
            if not data:
                break
        if not finished:
            hint = "" if self._timing.tokens else " (no chat chunks at all: is this an event stream?)"
            raise self._stream_error(f"stream from {self._endpoint} ended before [DONE]{hint}")
        yield None  # a finish_reason and then the end of the body: some servers omit [DONE]

    async def drain(self) -> bool:
        """After the content, read to the end of the body so the connection can go back to the
        pool.  False if that did not work (the caller then closes the connection)."""
        left = MAX_DRAIN_BYTES
        try:
            async with asyncio.timeout(self._chunk_timeout):
                while left > 0:
                    data = await self._resp.content.readany()
                    if not data:
                        return True
                    left -= len(data)
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        return False

    async def _read_chunk(self) -> bytes:
        waiting = self._timing.tokens == 0 and self._first_token_timeout > self._chunk_timeout
        try:
            async with asyncio.timeout(self._first_token_timeout if waiting else self._chunk_timeout):
                return await self._resp.content.readany()
        except TimeoutError:
            if waiting:
                raise LLMTimeoutError(
                    f"no reply from {self._endpoint} within {self._first_token_timeout:g} s "
                    "(first-byte timeout: the server answered but sent no tokens)",
                    phase="first_byte",
                    timeout_s=self._first_token_timeout,
                    endpoint=self._endpoint,
                    status=self._resp.status,
                ) from None
            raise LLMTimeoutError(
                f"stream from {self._endpoint} stalled: no data for {self._chunk_timeout:g} s (chunk timeout)",
                phase="chunk",
                timeout_s=self._chunk_timeout,
                endpoint=self._endpoint,
                status=self._resp.status,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            # The message reaches the user; the exception's class stays in the chained cause (logs).
            raise self._stream_error(f"stream from {self._endpoint} dropped mid-response (connection lost)") from exc


async def read_body(resp: aiohttp.ClientResponse, limit: int, timeout: float) -> bytes:
    """Up to ``limit`` bytes of the body, whatever arrives within ``timeout`` seconds."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while size < limit:
                data = await resp.content.read(limit - size)
                if not data:
                    break
                parts.append(data)
                size += len(data)
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass
    return b"".join(parts)
