"""Real loopback servers for the LLM client tests: an OpenAI-compatible aiohttp.web app that
counts the TCP connections it accepts, and a TCP server that accepts and never answers.

Handlers for ``/v1/chat/completions`` are scripted per request (``server.script(...)``) so a
test can say "the first two requests get HTTP 503, the third a normal stream".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

HANG_LIMIT_S = 10.0  # a "hanging" handler gives up after this, so no test can hang forever
DEFAULT_REPLY = "Hello there. How are you today? I am fine."

Handler = Callable[[web.Request, "LLMServer"], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  # index of the TCP connection it arrived on (0 = first accepted)
    request_on_connection: int  # 1 for the first request on that connection


def tokens(text: str) -> list[str]:
    """Split text the way an LLM streams it: words with their leading space, punctuation apart."""
    return re.findall(r"\s*[\w']+|\s*[^\w\s]|\s+", text)


def chunk(content: str | None = None, *, role: str | None = None, finish: str | None = None) -> bytes:
    """One ``data:`` event of an OpenAI chat-completions stream."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    obj = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def start_stream(request: web.Request, server: LLMServer) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    if server.keep_alive_header is not None:
        resp.headers["Keep-Alive"] = f"timeout={server.keep_alive_header:g}"
    await resp.prepare(request)
    return resp


def reply(text: str = DEFAULT_REPLY, *, token_delay: float = 0.0) -> Handler:
    """A normal stream: role chunk, one chunk per token, a finish chunk, ``[DONE]``."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        resp = await start_stream(request, server)
        try:
            await resp.write(b": keep-alive comment\n\n" + chunk(role="assistant", content=""))
            for token in tokens(text):
                await resp.write(chunk(token))
                if token_delay:
                    await asyncio.sleep(token_delay)
            await resp.write(chunk(finish="stop") + b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:
            server.client_hangups += 1  # the client closed the connection mid-stream
        return resp

    return handler


def echo(prefix: str = "You said") -> Handler:
    """A normal stream whose reply quotes the request's last user message: proves whose
    conversation a reply belongs to."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        body = json.loads(await request.read() or b"{}")  # aiohttp keeps the body read by _chat
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        return await reply(f"{prefix}: {users[-1] if users else ''}.")(request, server)

    return handler


def raw(*pieces: bytes, delay: float = 0.0, content_type: str = "text/event-stream") -> Handler:
    """Send exactly these body pieces (for malformed streams)."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        await resp.prepare(request)
        for piece in pieces:
            await resp.write(piece)
            if delay:
                await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    return handler


def status(code: int, message: str = "error", headers: dict[str, str] | None = None) -> Handler:
    """A JSON error answer like OpenAI's."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        body = {"error": {"message": message, "type": "test_error", "code": None}}
        return web.json_response(body, status=code, headers=headers)

    return handler


def drop_after(text: str) -> Handler:
    """Stream ``text`` token by token, then kill the TCP connection mid-response."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        resp = await start_stream(request, server)
        await resp.write(chunk(role="assistant"))
        for token in tokens(text):
            await resp.write(chunk(token))
        await asyncio.sleep(0.05)  # let the bytes leave before the reset
        assert request.transport is not None
        request.transport.abort()
        return resp

    return handler


def stall_after(text: str) -> Handler:
    """Stream ``text``, then send nothing more until the server stops (or HANG_LIMIT_S)."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        resp = await start_stream(request, server)
        for token in tokens(text):
            await resp.write(chunk(token))
        await server.wait_released()
        return resp

    return handler


def hang() -> Handler:
    """Accept the request and never send the status line."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        await server.wait_released()
        return web.Response(status=503)

    return handler


class LLMServer:
    """An OpenAI-compatible aiohttp.web server on loopback, counting accepted connections.

    ``keepalive_timeout``: aiohttp's idle limit for keep-alive connections (seconds).
    ``keep_alive_header``: if set, responses carry ``Keep-Alive: timeout=N``.
    ``drop_reused``: a request arriving on an already used connection gets the connection
    aborted without any answer, as when a server closes an idle connection at the very moment
    the client sends on it.
    ``port``: listen on this port (0: any free one); a server restarted on the port of a
    stopped one plays an endpoint that comes back.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_timeout: float = 75.0,
        keep_alive_header: float | None = None,
        host_name: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.ssl_context = ssl_context
        self.keepalive_timeout = keepalive_timeout
        self.keep_alive_header = keep_alive_header
        self.host_name = host_name
        self.drop_reused = False
        self.client_hangups = 0
        self.models_status = 200
        self.models_delay = 0.0  # seconds before /models answers (a slow warm-up)
        self.default: Handler = reply()
        self.requests: list[Recorded] = []
        self._script: deque[Handler] = deque()
        self._protocols: list[Any] = []
        self._per_connection: dict[int, int] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host_name}:{self.port}/v1"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return len(self._protocols)

    @property
    def open_connections(self) -> int:
        """Accepted connections whose socket is still open on the server side."""
        return sum(1 for p in self._protocols if p.transport is not None and not p.transport.is_closing())

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def script(self, *handlers: Handler) -> None:
        """The next chat requests get these handlers, in order; then ``default``."""
        self._script.extend(handlers)

    async def wait_released(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), HANG_LIMIT_S)

    async def start(self) -> LLMServer:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(
            app, keepalive_timeout=self.keepalive_timeout, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        low_level = self._runner.server
        assert low_level is not None

        def factory() -> Any:
            protocol = low_level()
            self._protocols.append(protocol)
            return protocol

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, "127.0.0.1", self.port, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> LLMServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _record(self, request: web.Request, body: bytes) -> Recorded | None:
        index = self._protocols.index(request.protocol) if request.protocol in self._protocols else -1
        nth = self._per_connection.get(index, 0) + 1
        self._per_connection[index] = nth
        record = Recorded(request.method, request.path, dict(request.headers), body, index, nth)
        self.requests.append(record)
        return record

    async def _models(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request, b"")
        if self.drop_reused and record is not None and record.request_on_connection > 1:
            return self._abort(request)
        headers = {"Keep-Alive": f"timeout={self.keep_alive_header:g}"} if self.keep_alive_header else None
        if self.models_delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.models_delay)
        if self.models_status != 200:
            return web.json_response({"error": {"message": "nope"}}, status=self.models_status, headers=headers)
        return web.json_response({"object": "list", "data": [{"id": "test-model"}]}, headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = self._record(request, body)
        if self.drop_reused and record is not None and record.request_on_connection > 1:
            return self._abort(request)
        handler = self._script.popleft() if self._script else self.default
        return await handler(request, self)

    @staticmethod
    def _abort(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=500)


class SilentServer:
    """Accepts TCP connections, reads whatever arrives, never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: list[asyncio.Task[Any]] = []
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.append(task)
        try:
            async with asyncio.timeout(HANG_LIMIT_S):
                while not self._release.is_set() and await reader.read(65536):
                    pass
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._release.set()
        for writer in self._writers:
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=HANG_LIMIT_S)
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``condition`` (for what the server notices asynchronously), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
