"""Preemptive generation (voice/preemptive.py) against a real loopback OpenAI-compatible server that
counts the TCP connections it accepts and sees the client hang up.

What is proved: an adopted reply is the reply, from one request; a cancelled one is stopped
mid-stream (the server sees the hang-up and never finishes it: LiveKit bug #4219 was both
requests running to completion), counted as wasted, and the next request rides a connection
re-warmed in the background, so none is opened on its path.
"""

from __future__ import annotations

import asyncio

import pytest

from llm import LLMStreamError, PooledLLMClient, Timeouts
from tests.llm_servers import LLMServer, drop_after, eventually, reply
from voice.preemptive import PreemptiveGeneration, PreemptiveReply, PreemptiveStats

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
EXPECTED = ["Hello there.", "How are you today?", "I am fine."]  # the server's default reply
LONG = "One two three. Four five six. Seven eight nine. Ten eleven twelve. Thirteen fourteen."


async def warm_client(server: LLMServer) -> PooledLLMClient:
    client = PooledLLMClient(server.base_url, model="test-model", strategy="prewarmed", timeouts=Timeouts(chunk=2.0))
    result = await client.warm_up()
    assert result.ok and server.connections == 1
    return client


# What the server notices after a cancel can take a moment longer than in the client tests.
WAIT_S = 3.0


async def test_an_adopted_reply_is_the_reply_from_one_request(server: LLMServer) -> None:
    client = await warm_client(server)
    try:
        stats = PreemptiveStats()
        early = PreemptiveReply(client, MESSAGES, "hello", stats)
        await eventually(lambda: early.done, WAIT_S)  # the whole reply buffered during the "pause"
        assert early.matches(MESSAGES) and not early.matches(
            [*MESSAGES[:1], {"role": "user", "content": "hello there"}]
        )
        assert [s async for s in early.adopt()] == EXPECTED
        await early.cancel()  # after adoption: nothing to stop, nothing wasted
        assert len(server.chat_requests()) == 1 and server.connections == 1
        assert early.timing is not None and early.timing.reused_connection  # on the pre-warmed connection
        assert (stats.started, stats.adopted, stats.wasted) == (1, 1, 0)
        assert not early.matches(MESSAGES)  # adopted once
        with pytest.raises(RuntimeError):
            [s async for s in early.adopt()]
    finally:
        await client.close()


async def test_a_reply_adopted_mid_stream_gives_the_buffer_then_the_rest(server: LLMServer) -> None:
    server.script(reply(LONG, token_delay=0.03))
    client = await warm_client(server)
    try:
        early = PreemptiveReply(client, MESSAGES, "count", PreemptiveStats())
        await asyncio.sleep(0.2)  # some sentences are buffered, the rest is still streaming
        assert not early.done
        got = [s async for s in early.adopt()]
        assert " ".join(got) == LONG and len(server.chat_requests()) == 1
    finally:
        await client.close()


async def test_a_cancelled_reply_stops_the_server_and_the_next_request_opens_no_connection(server: LLMServer) -> None:
    server.script(reply(LONG, token_delay=0.05))
    client = await warm_client(server)
    try:
        stats = PreemptiveStats()
        early = PreemptiveReply(client, MESSAGES, "count to", stats)
        await asyncio.sleep(0.25)  # mid-stream: the user goes on talking
        await early.cancel()
        assert (stats.started, stats.adopted, stats.wasted) == (1, 0, 1)
        assert 0 < stats.wasted_tokens < len(LONG.split())  # stopped, not run to completion
        assert await eventually(lambda: server.client_hangups == 1, WAIT_S)  # the server saw it stop
        # The cancelled stream's connection is closed (it cannot be reused half-read); the client
        # re-warms one at once, in the background, before the final request needs it.
        assert await eventually(lambda: server.connections == 2 and server.open_connections == 1, WAIT_S)
        before = server.connections
        final = [s async for s in client.stream_sentences(MESSAGES)]
        assert final == EXPECTED
        assert client.last_request is not None and client.last_request.reused_connection
        assert server.connections == before  # no connection opened on the final request's path
        assert len(server.chat_requests()) == 2
        assert server.chat_requests()[1].connection == 1  # the re-warmed one
        await early.cancel()  # idempotent
        assert stats.wasted == 1
    finally:
        await client.close()


async def test_many_cancels_each_cost_one_background_connection_and_nothing_on_the_path(server: LLMServer) -> None:
    client = await warm_client(server)
    try:
        stats = PreemptiveStats()
        for n in range(3):
            server.script(reply(LONG, token_delay=0.05))
            early = PreemptiveReply(client, MESSAGES, f"try {n}", stats)
            await asyncio.sleep(0.15)
            await early.cancel()
            assert await eventually(lambda n=n: server.connections == n + 2 and server.open_connections == 1, WAIT_S)
        final = [s async for s in client.stream_sentences(MESSAGES)]
        assert final == EXPECTED and client.last_request is not None and client.last_request.reused_connection
        assert server.connections == 4 and stats.wasted == 3 and server.client_hangups == 3
    finally:
        await client.close()


async def test_a_failed_reply_raises_after_the_sentences_it_gave(server: LLMServer) -> None:
    server.script(drop_after("Hello there. How are"))
    client = await warm_client(server)
    try:
        early = PreemptiveReply(client, MESSAGES, "hello", PreemptiveStats())
        got: list[str] = []
        with pytest.raises(LLMStreamError):
            async for sentence in early.adopt():
                got.append(sentence)
        assert got == ["Hello there."]
    finally:
        await client.close()


def ask(text: str) -> list[dict[str, str]]:
    return [MESSAGES[0], {"role": "user", "content": text}]


async def test_the_session_controller_keeps_one_request_and_never_two_completions(server: LLMServer) -> None:
    """start / discard / take as a session uses them: the user goes on (wasted), a new pause
    (a new request), the turn ends on another transcript (stopped before the final request),
    then one that matches (adopted: no second request)."""
    server.default = reply(LONG, token_delay=0.03)
    client = await warm_client(server)
    gen = PreemptiveGeneration()
    try:
        gen.start(client, ask("what is"), "what is")
        await asyncio.sleep(0.1)
        gen.discard()  # the user went on talking
        gen.start(client, ask("what is the time"), "what is the time")
        gen.start(client, ask("what is the time"), "what is the time")  # the same request again: kept
        assert gen.pending is not None and await eventually(lambda: len(server.chat_requests()) == 2, WAIT_S)
        await asyncio.sleep(0.1)
        assert len(server.chat_requests()) == 2
        assert gen.take(ask("what is the time now")) is None  # the final transcript differs: stopped
        assert gen.pending is None and gen.stats.wasted == 2
        assert await eventually(lambda: server.client_hangups == 2 and server.open_connections == 1, WAIT_S)
        gen.start(client, ask("what time is it"), "what time is it")
        adopted = gen.take(ask("what time is it"))
        assert adopted is not None and gen.pending is None
        assert " ".join([s async for s in adopted.adopt()]) == LONG
        await adopted.cancel()
        assert len(server.chat_requests()) == 3 and server.client_hangups == 2
        s = gen.stats
        assert (s.started, s.adopted, s.wasted) == (3, 1, 2)
        gen.discard()  # nothing pending: no-op
        assert gen.stats.wasted == 2
        gen.start(client, ask("one more"), "one more")
        await gen.aclose()  # session stop: stopped and waited for
        assert gen.pending is None and gen.stats.wasted == 3
    finally:
        await gen.aclose()
        await client.close()
