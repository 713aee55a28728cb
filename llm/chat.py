"""The OpenAI chat-completions wire format: the request body and the streamed chunks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


@dataclass(frozen=True)
class ChatMessage:
    """One chat message.  Plain ``{"role": ..., "content": ...}`` mappings work as well."""

    role: str
    content: str


Message = ChatMessage | Mapping[str, Any]


@dataclass(frozen=True)
class ChatDelta:
    """What one streamed chunk adds: text (may be empty), the role, or the finish reason."""

    content: str = ""
    role: str | None = None
    finish_reason: str | None = None


class ChunkError(ValueError):
    """A chunk that is not valid JSON or not shaped like a chat-completion chunk."""


class ServerStreamError(Exception):
    """The server reported an error inside the stream (``{"error": {...}}``)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def message_dict(message: Message) -> dict[str, Any]:
    """``message`` as the JSON object the API expects."""
    if isinstance(message, ChatMessage):
        return {"role": message.role, "content": message.content}
    return dict(message)


def chat_request_body(
    model: str,
    messages: Sequence[Message],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON body of a streaming ``POST /chat/completions``.

    ``stop``: up to four strings at which the server ends the reply (OpenAI's limit); left out
    of the body when empty.
    """
    if not messages:
        raise ValueError("messages must not be empty")
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_dict(m) for m in messages],
        "stream": True,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if stop:
        if len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise ValueError("stop must be at most four non-empty strings")
        body["stop"] = list(stop)
    return body


def parse_chunk(data: str, event: str = "message") -> ChatDelta:
    """Decode one SSE ``data`` payload of a chat-completions stream.

    Raises :class:`ServerStreamError` for an error object (or an ``event: error``) and
    :class:`ChunkError` for anything that is not a chunk.  Chunks without content (role-only,
    usage-only, empty ``choices``) give an empty :class:`ChatDelta`.
    """
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        if event == "error":
            raise ServerStreamError(data.strip()[:300] or "error event") from None
        raise ChunkError(f"invalid JSON in stream at char {exc.pos}: {data[:80]!r}") from None
    if not isinstance(obj, dict):
        raise ChunkError(f"stream chunk is not a JSON object: {data[:80]!r}")
    error = obj.get("error")
    if error is not None or event == "error":
        raise _server_error(error if error is not None else obj)
    choices = obj.get("choices")
    if not choices:
        return ChatDelta()
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise ChunkError("stream chunk has a malformed 'choices' field")
    choice = choices[0]
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise ChunkError("stream chunk has a malformed 'delta' field")
    content = delta.get("content")
    if content is None:
        content = choice.get("text") or ""  # a few servers stream completions-style chunks
    if not isinstance(content, str):
        raise ChunkError("stream chunk content is not a string")
    role = delta.get("role")
    finish = choice.get("finish_reason")
    return ChatDelta(
        content=content,
        role=role if isinstance(role, str) else None,
        finish_reason=finish if isinstance(finish, str) else None,
    )


def _server_error(error: object) -> ServerStreamError:
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("type") or "unspecified error")
        code = error.get("code") or error.get("type")
        return ServerStreamError(message[:300], str(code) if code is not None else None)
    return ServerStreamError(str(error)[:300] or "unspecified error")


def error_summary(body: bytes) -> str:
    """A short, human-readable summary of an error response body (JSON or text)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return " ".join(text.split())[:200]
    if isinstance(obj, dict) and obj.get("error") is not None:
        return _server_error(obj["error"]).message[:200]
    message = obj.get("message") if isinstance(obj, dict) else None
    if isinstance(message, str):
        return message[:200]
    return " ".join(text.split())[:200]
