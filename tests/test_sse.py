"""The SSE framing parser (llm/sse.py) and the chat-chunk decoder (llm/chat.py)."""

from __future__ import annotations

import json

import pytest

from llm.chat import (
    ChatDelta,
    ChatMessage,
    ChunkError,
    ServerStreamError,
    chat_request_body,
    error_summary,
    parse_chunk,
)
from llm.sse import MAX_LINE_CHARS, SSEError, SSEEvent, SSEParser


def _parse(raw: bytes, split: int | None) -> list[SSEEvent]:
    """Feed ``raw`` in pieces of ``split`` bytes (None: all at once), then close."""
    parser = SSEParser()
    events: list[SSEEvent] = []
    step = split or len(raw) or 1
    for i in range(0, len(raw), step):
        events.extend(parser.feed(raw[i : i + step]))
    return events + parser.close()


SSE_CASES: list[tuple[str, bytes, list[SSEEvent]]] = [
    ("single", b"data: hello\n\n", [SSEEvent("hello")]),
    ("two events", b"data: a\n\ndata: b\n\n", [SSEEvent("a"), SSEEvent("b")]),
    ("multi-line data", b"data: line1\ndata: line2\n\n", [SSEEvent("line1\nline2")]),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", [SSEEvent("a"), SSEEvent("b")]),
    ("bare cr", b"data: a\r\rdata: b\r\r", [SSEEvent("a"), SSEEvent("b")]),
    ("comment lines", b": keep-alive\n\ndata: x\n: another\n\n", [SSEEvent("x")]),
    ("no space after colon", b"data:x\n\n", [SSEEvent("x")]),
    ("only first space stripped", b"data:  two\n\n", [SSEEvent(" two")]),
    ("event and id", b"event: error\nid: 7\ndata: boom\n\n", [SSEEvent("boom", "error", "7")]),
    ("event type resets", b"event: error\ndata: a\n\ndata: b\n\n", [SSEEvent("a", "error"), SSEEvent("b")]),
    ("unknown field ignored", b"retry: 100\nfoo: bar\ndata: y\n\n", [SSEEvent("y")]),
    ("blank lines alone", b"\n\n\n", []),
    ("field without colon", b"data\n\n", [SSEEvent("")]),
    ("bom", b"\xef\xbb\xbfdata: z\n\n", [SSEEvent("z")]),
    ("utf-8", "data: héllo wörld 👋\n\n".encode(), [SSEEvent("héllo wörld 👋")]),
    ("last event without blank line", b"data: a\n\ndata: [DONE]\n", [SSEEvent("a"), SSEEvent("[DONE]")]),
    ("last event without newline", b"data: [DONE]", [SSEEvent("[DONE]")]),
    ("garbage lines", b"not sse at all\nreally\n\n", []),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in SSE_CASES], ids=[c[0] for c in SSE_CASES])
@pytest.mark.parametrize("split", [None, 1, 2, 3, 7])
def test_sse_parsing_is_independent_of_chunking(raw: bytes, expected: list[SSEEvent], split: int | None) -> None:
    assert _parse(raw, split) == expected


def test_events_come_out_as_soon_as_their_blank_line_arrives() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [SSEEvent("a")]
    assert parser.feed(b"data: b\r") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent("b")]


def test_comments_are_counted() -> None:
    parser = SSEParser()
    parser.feed(b": ping\n: ping\n\n")
    assert parser.comments == 2


def test_overlong_line_is_refused() -> None:
    parser = SSEParser()
    with pytest.raises(SSEError):
        parser.feed(b"data: " + b"x" * (MAX_LINE_CHARS + 10))


def _chunk(**delta: object) -> str:
    return json.dumps({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]})


CHUNK_CASES: list[tuple[str, str, ChatDelta]] = [
    ("content", _chunk(content="Hi"), ChatDelta("Hi")),
    ("role only", _chunk(role="assistant"), ChatDelta("", role="assistant")),
    ("role and empty content", _chunk(role="assistant", content=""), ChatDelta("", role="assistant")),
    ("null content", _chunk(content=None), ChatDelta("")),
    ("empty delta", _chunk(), ChatDelta("")),
    (
        "finish reason",
        json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ChatDelta("", finish_reason="stop"),
    ),
    ("usage only, no choices", json.dumps({"choices": [], "usage": {"total_tokens": 3}}), ChatDelta("")),
    ("completions style", json.dumps({"choices": [{"text": "yo"}]}), ChatDelta("yo")),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CHUNK_CASES], ids=[c[0] for c in CHUNK_CASES])
def test_parse_chunk(data: str, expected: ChatDelta) -> None:
    assert parse_chunk(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        "[1, 2]",
        '"text"',
        json.dumps({"choices": "x"}),
        json.dumps({"choices": [{"delta": 5}]}),
        json.dumps({"choices": [{"delta": {"content": 5}}]}),
    ],
)
def test_parse_chunk_rejects_malformed(data: str) -> None:
    with pytest.raises(ChunkError):
        parse_chunk(data)


@pytest.mark.parametrize(
    ("data", "event", "message", "code"),
    [
        (
            json.dumps({"error": {"message": "overloaded", "type": "server_error", "code": "x1"}}),
            "message",
            "overloaded",
            "x1",
        ),
        (json.dumps({"error": "model not loaded"}), "message", "model not loaded", None),
        (json.dumps({"message": "bad things"}), "error", "bad things", None),
        ("plain text failure", "error", "plain text failure", None),
    ],
)
def test_parse_chunk_error_object(data: str, event: str, message: str, code: str | None) -> None:
    with pytest.raises(ServerStreamError) as info:
        parse_chunk(data, event)
    assert info.value.message == message
    assert info.value.code == code


def test_chat_request_body() -> None:
    body = chat_request_body(
        "m", [ChatMessage("system", "be brief"), {"role": "user", "content": "hi"}], max_tokens=5, temperature=0.2
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 5,
        "temperature": 0.2,
    }
    assert "max_tokens" not in chat_request_body("m", [ChatMessage("user", "x")])
    assert "stop" not in chat_request_body("m", [ChatMessage("user", "x")])
    assert chat_request_body("m", [ChatMessage("user", "x")], stop=("\n",))["stop"] == ["\n"]
    with pytest.raises(ValueError):
        chat_request_body("m", [])
    with pytest.raises(ValueError, match="stop"):
        chat_request_body("m", [ChatMessage("user", "x")], stop=("a", "b", "c", "d", "e"))
    with pytest.raises(ValueError, match="stop"):
        chat_request_body("m", [ChatMessage("user", "x")], stop=("",))


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        (b'{"error": {"message": "Rate limit reached", "type": "requests"}}', "Rate limit reached"),
        (b'{"message": "nope"}', "nope"),
        (b"<html>\n  Bad   Gateway\n</html>", "<html> Bad Gateway </html>"),
        (b"", ""),
    ],
)
def test_error_summary(body: bytes, summary: str) -> None:
    assert error_summary(body) == summary
