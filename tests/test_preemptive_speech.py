"""Preemptive speech: the pause's reply's first sentence synthesized before the turn is confirmed.

Real Piper (the bundled voice, wrapped only to record when each synthesis ran), real Whisper for
the spoken turns, a loopback LLM server that streams slowly, and the local edge-tts stand-in for
the warm edge transport (the real service is unreachable here: the one mocked part).  The
request's adoption is the session's own: a turn adopts the pause's request when it ends with the
very same one; typed turns do too, which makes the timing of some tests independent of the VAD.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import pytest

from benchmarks.edge_standin import EdgeStandin
from tests.llm_servers import LLMServer, reply
from tests.loopback_session import loopback_session, outcome, typed_turn
from tests.speech import synthesize, trimmed
from voice.headless import run_spoken_turn
from voice.session import VoiceSession
from voice.tts import AudioChunk
from voice.tts.edge import EdgeTTS
from voice.tts.edge_transport import WarmEdgeTransport
from voice.tts.piper import PiperTTS

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"
FIRST = "Paris is the capital of France."
REPLY = f"{FIRST} It is on the Seine."
WAIT_S = 30.0


@dataclass
class Call:
    text: str
    started: float
    ended: float | None = None


class RecordingPiper(PiperTTS):
    """The real Piper engine, recording each synthesis call's text and when it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        call = Call(text, time.perf_counter())
        self.calls.append(call)
        try:
            async for chunk in super().synthesize(text):
                yield chunk
        finally:
            call.ended = time.perf_counter()

    def texts(self) -> list[str]:
        return [c.text for c in self.calls]


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


def buffered_done(session: VoiceSession) -> bool:
    return any(b.timed.done_at is not None for b in session.preemptive_speech._buffered)


async def test_a_spoken_turn_that_adopts_the_pause_request_plays_its_buffered_first_sentence(voice_runtime) -> None:
    piper = RecordingPiper()
    async with LLMServer() as server:
        server.default = reply(REPLY, token_delay=0.03)  # a slow LLM: ~0.2 s to the first sentence
        # A long fixed silence: the transcript (seconds on a busy machine), the first sentence and
        # its synthesis are all done before the turn ends.
        async with loopback_session(
            voice_runtime,
            server.base_url,
            tts=piper,
            turn_detector="vad",
            end_of_turn_silence_ms=5000,
            preemptive_tts=True,
        ) as session:
            await session.wait_warm()
            speech = synthesize(QUESTION)
            result = await run_spoken_turn(session, speech.samples, speech.sample_rate)
            assert result is not None and result.latency.outcome == "ok"
            lat = result.latency
            assert lat.extras.get("preemptive") == 1.0 and lat.extras.get("tts_buffered") == 1.0
            assert lat.endpoint_ms is not None and lat.first_audio_ms is not None
            ready = lat.extras["tts_buffer_ready_ms"]
            assert lat.extras["tts_buffer_started_ms"] < ready <= lat.endpoint_ms, "synthesized before confirmation"
            assert lat.first_audio_ms >= lat.endpoint_ms, "played only once the turn was confirmed"
            assert lat.extras["tts_buffer_cpu_ms"] > 0
            assert piper.texts().count(FIRST) == 1, piper.texts()  # never synthesized twice
            assert result.reply_text.strip() == REPLY
            stats = session.reply.preemptive.stats
            assert (stats.tts_started, stats.tts_played, stats.tts_dropped) == (1, 1, 0)
            assert "1 played, 0 dropped" in stats.describe()


async def test_going_on_after_a_pause_drops_the_buffered_sentence_and_counts_it(voice_runtime) -> None:
    piper = RecordingPiper()
    async with LLMServer() as server:
        server.default = reply(REPLY, token_delay=0.03)
        async with loopback_session(
            voice_runtime,
            server.base_url,
            tts=piper,
            end_of_turn_hold_ms=6000,
            end_of_turn_max_wait_ms=7000,
            preemptive_tts=True,
        ) as session:
            await session.wait_warm()
            # A first part that could be a whole request (the text model is unsure of it, so the turn
            # holds and its reply is spoken ahead; "What is the capital of" reads unfinished and is
            # not): the hold is long enough for the transcript, the first sentence and its synthesis.
            first, second = synthesize("I would like to book a table"), synthesize("for two people.")
            pause = np.zeros(int(4.5 * first.sample_rate), np.float32)
            audio = np.concatenate([trimmed(first), pause, trimmed(second)])
            result = await run_spoken_turn(session, audio, first.sample_rate)
            assert result is not None and result.latency.outcome == "ok" and session.turns_started == 1
            await session.preemptive_speech.settled()
            stats = session.reply.preemptive.stats
            assert stats.wasted == 1 and stats.tts_dropped >= 1, stats.describe()
            assert stats.tts_started == stats.tts_played + stats.tts_dropped
            assert stats.tts_dropped_cpu_ms > 0 and stats.tts_dropped_ms > 0
            assert f"{stats.tts_dropped} dropped" in stats.describe()
            assert result.reply_text.strip() == REPLY
            # The dropped synthesis was never heard: the turn's first sentence was synthesized on its own.
            assert piper.texts().count(FIRST) == stats.tts_dropped + 1, piper.texts()


async def test_a_turn_that_asks_something_else_drops_the_buffer(voice_runtime) -> None:
    piper = RecordingPiper()
    async with LLMServer() as server:
        server.default = reply(REPLY, token_delay=0.03)
        async with loopback_session(voice_runtime, server.base_url, tts=piper, preemptive_tts=True) as session:
            await session.wait_warm()
            session.reply.preempt(QUESTION)  # what the pause's early transcript does
            await until(lambda: buffered_done(session), "the first sentence synthesized ahead")
            lat = outcome(await typed_turn(session, "Tell me about Paris."))
            assert lat.outcome == "ok" and "tts_buffered" not in lat.extras and "preemptive" not in lat.extras
            await session.preemptive_speech.settled()
            stats = session.reply.preemptive.stats
            assert (stats.tts_started, stats.tts_played, stats.tts_dropped) == (1, 0, 1)
            assert stats.tts_dropped_cpu_ms > 0
            assert piper.texts().count(FIRST) == 2  # the dropped one, and the turn's own


def test_preemptive_tts_is_on_by_default(voice_runtime) -> None:
    assert voice_runtime.settings.preemptive_tts  # measured to help (the README says how much)


@pytest.mark.parametrize(
    ("preemptive_tts", "reads_unfinished"),
    [
        (False, False),  # PREEMPTIVE_TTS off
        # "What is the capital of": the turn waits the longest, and the user mostly goes on; its
        # request still goes, but its first sentence is synthesized only once the turn adopts it.
        (True, True),
    ],
    ids=["preemptive-tts-off", "transcript-reads-unfinished"],
)
async def test_the_request_goes_but_nothing_is_spoken_ahead(
    voice_runtime, preemptive_tts: bool, reads_unfinished: bool
) -> None:
    piper = RecordingPiper()
    async with LLMServer() as server:
        server.default = reply(REPLY)
        async with loopback_session(
            voice_runtime, server.base_url, tts=piper, preemptive_tts=preemptive_tts
        ) as session:
            await session.wait_warm()
            session._preempt(QUESTION, reads_unfinished=reads_unfinished)  # what the pause's early transcript does
            await until(lambda: session.reply.preemptive.pending is not None, "the request sent")
            await asyncio.sleep(1.0)  # time enough for the whole reply to arrive
            assert not piper.calls
            lat = outcome(await typed_turn(session, QUESTION))
            assert lat.extras.get("preemptive") == 1.0 and "tts_buffered" not in lat.extras
            assert session.reply.preemptive.stats.tts_started == 0 and piper.texts().count(FIRST) == 1


async def test_one_preemptive_synthesis_per_session_at_a_time(voice_runtime) -> None:
    piper = RecordingPiper()
    async with LLMServer() as server:
        # No clause boundary: one long first sentence, a long synthesis.
        long_first = "Paris has been a centre of art and fashion and trade for many hundreds of years."
        server.script(reply(long_first), reply(REPLY))
        async with loopback_session(voice_runtime, server.base_url, tts=piper, preemptive_tts=True) as session:
            await session.wait_warm()
            session.reply.preempt("Tell me about Paris.")
            await until(lambda: bool(piper.calls), "the first synthesis started")
            switched = time.perf_counter()
            session.reply.preempt(QUESTION)  # a newer transcript: the first request and its speech are dropped
            await until(lambda: buffered_done(session), "the newer first sentence synthesized")
            await session.preemptive_speech.settled()
            first, second = piper.calls
            assert (first.text, second.text) == (long_first, FIRST)
            assert first.ended is not None and first.ended > switched, "the first was still running when dropped"
            assert second.started >= first.ended, "never two at once"
            assert session.reply.preemptive.stats.tts_dropped == 1


async def test_a_confirmed_synthesis_in_another_session_goes_first(voice_runtime) -> None:
    speaking, guessing = RecordingPiper(), RecordingPiper()
    long_reply = " ".join(
        [
            "Paris is the capital of France and its largest city.",
            "It has been a centre of art, fashion, science and trade for many centuries.",
            "The river Seine runs through the middle of the city from east to west.",
        ]
    )
    async with LLMServer() as server:
        server.default = reply(long_reply)
        async with (
            loopback_session(
                voice_runtime, server.base_url, tts=speaking, session_id="answering", preemptive_tts=True
            ) as a,
            loopback_session(
                voice_runtime, server.base_url, tts=guessing, session_id="pausing", preemptive_tts=True
            ) as b,
        ):
            gate = voice_runtime.synthesis_gate
            assert a.preemptive_speech.gate is gate and b.preemptive_speech.gate is gate
            await a.wait_warm()
            await b.wait_warm()
            waits = gate.preemptive_waits
            turn = asyncio.create_task(typed_turn(a, "Tell me about Paris."))
            await until(lambda: gate.confirmed_running > 0, "session a synthesizing its reply")
            b.reply.preempt(QUESTION)
            await until(lambda: bool(guessing.calls), "session b's preemptive synthesis started")
            assert gate.preemptive_waits > waits, "it waited for session a"
            started = guessing.calls[0].started
            assert all(not (c.started < started and (c.ended is None or c.ended > started)) for c in speaking.calls), (
                "it never ran ahead of (or beside) a confirmed synthesis that was running"
            )
            assert outcome(await turn).outcome == "ok"


async def test_the_warm_edge_transport_plays_the_buffered_sentence(voice_runtime, standin: EdgeStandin) -> None:
    edge = EdgeTTS(timeout_s=3.0, cooldown_s=60.0, transport=WarmEdgeTransport(connect_timeout_s=3.0))
    async with LLMServer() as server:
        server.default = reply(REPLY, token_delay=0.03)
        async with loopback_session(
            voice_runtime, server.base_url, tts=edge, tts_engine="edge", preemptive_tts=True
        ) as session:
            await session.wait_warm()
            session.reply.preempt(QUESTION)
            await until(lambda: buffered_done(session), "the first sentence synthesized ahead")
            asked = [r.text for r in standin.requests]
            assert asked == [FIRST]  # asked for before the turn
            lat = outcome(await typed_turn(session, QUESTION))
            assert lat.outcome == "ok" and lat.extras.get("tts_buffered") == 1.0
            assert lat.tts_connection == "reused spare"
            assert [r.text for r in standin.requests] == [FIRST, "It is on the Seine."]  # not asked twice
            stats = session.reply.preemptive.stats
            assert (stats.tts_started, stats.tts_played, stats.tts_dropped) == (1, 1, 0)
