"""Preemptive generation in whole spoken turns: real Whisper and Piper, the session's own turn
detection, and a loopback LLM server that counts requests and sees the client hang up.

A question followed by silence: the request goes out on the early transcript, during the pause,
and the turn adopts it (one request, sent before the turn ended).  A question with a pause in
the middle ("... capital of" / "France?"): the request sent on the first pause is cancelled
when the user goes on (the server sees it stop; one wasted), and the final one is adopted: two
requests, never two completions (LiveKit bug #4219).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.llm_servers import LLMServer, reply
from tests.loopback_session import loopback_session
from tests.speech import synthesize, trimmed
from voice.headless import run_spoken_turn

pytestmark = pytest.mark.slow

REPLY = "Paris is the capital of France. It is on the Seine."


async def test_the_request_goes_out_during_the_pause_and_is_adopted(voice_runtime) -> None:
    async with LLMServer() as server:
        server.default = reply(REPLY)
        async with loopback_session(voice_runtime, server.base_url) as session:
            await session.wait_warm()
            speech = synthesize("What is the capital of France?")
            result = await run_spoken_turn(session, speech.samples, speech.sample_rate)
            assert result is not None and result.latency.outcome == "ok"
            lat = result.latency
            assert lat.extras.get("preemptive") == 1.0
            assert lat.request_sent_ms is not None and lat.endpoint_ms is not None
            assert lat.request_sent_ms <= lat.endpoint_ms, "sent during the pause, by the time the turn ended"
            assert lat.transcript_ms is not None and lat.transcript_ms <= lat.request_sent_ms + 1
            assert result.reply_text.strip() == REPLY
            assert len(server.chat_requests()) == 1 and server.client_hangups == 0
            stats = session.reply.preemptive.stats
            assert (stats.started, stats.adopted, stats.wasted) == (1, 1, 0)
            assert "1 adopted, 0 wasted" in stats.describe()


async def test_going_on_after_a_pause_cancels_the_early_request(voice_runtime) -> None:
    async with LLMServer() as server:
        server.default = reply(REPLY, token_delay=0.1)  # still streaming when the user goes on
        # A long hold, so Whisper has time for the first pause's transcript even on a busy machine.
        async with loopback_session(voice_runtime, server.base_url, end_of_turn_hold_ms=2000) as session:
            await session.wait_warm()
            first, second = synthesize("What is the capital of"), synthesize("France?")
            pause = np.zeros(int(1.5 * first.sample_rate), np.float32)  # "of": held, not a turn end
            audio = np.concatenate([trimmed(first), pause, trimmed(second)])
            result = await run_spoken_turn(session, audio, first.sample_rate)
            assert result is not None and result.latency.outcome == "ok" and session.turns_started == 1
            assert "france" in result.transcript.lower()
            stats = session.reply.preemptive.stats
            # The final pause's request is adopted if its transcript came before the turn ended,
            # else the turn sends it: either way one request answered, one stopped.
            assert stats.wasted == 1 and stats.adopted == stats.started - 1, stats
            requests = server.chat_requests()
            assert len(requests) == 2 and server.client_hangups == 1  # the early one was stopped
            assert b"capital of France" in requests[1].body or b"France" in requests[1].body
            assert result.reply_text.strip() == REPLY


async def test_preemptive_generation_off_sends_at_the_end_of_the_turn(voice_runtime) -> None:
    async with LLMServer() as server:
        server.default = reply(REPLY)
        async with loopback_session(voice_runtime, server.base_url, preemptive_generation=False) as session:
            await session.wait_warm()
            speech = synthesize("What is the capital of France?")
            result = await run_spoken_turn(session, speech.samples, speech.sample_rate)
            assert result is not None and result.latency.outcome == "ok"
            lat = result.latency
            assert "preemptive" not in lat.extras and session.reply.preemptive.stats.started == 0
            assert lat.request_sent_ms is not None and lat.endpoint_ms is not None
            assert lat.request_sent_ms >= lat.endpoint_ms
            assert len(server.chat_requests()) == 1
