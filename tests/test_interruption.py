"""Speech over the reply: backchannels do not stop it, real interruptions do, false ones resume it.

The session tests run whole turns with the real models and the embedded LLM; the user's
speech is Piper's, synthesized at test time and fed in real time while the reply plays
(the session counts a reply as playing for as long as its audio lasts).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.speech import synthesize, trimmed
from voice.events import AudioOut, BargeIn, SessionEvent, TurnDone
from voice.headless import speak_into
from voice.interruption import ReplyTracker, is_backchannel
from voice.prompting import PLAIN
from voice.session import VoiceSession

LONG_REPLY = "Tell me a long story about a dragon, in ten sentences."


@pytest.mark.parametrize(
    "text",
    ["Yeah.", "Okay.", "Mm-hmm.", "Uh-huh, right.", "Okay, yeah, sure.", "", "Oh", "MMMM.", "Hmmm, okay.", "Mm-mm."],
)
def test_listener_noises_are_backchannels(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text", ["Stop.", "Wait, tell me about France.", "Yeah, but why?", "No.", "Mom, hold on.", "Hum-drum day."]
)
def test_anything_else_is_not(text: str) -> None:
    assert not is_backchannel(text)


def test_the_tracker_resumes_from_the_sentence_still_playing() -> None:
    track = ReplyTracker()
    track.start()
    for sentence in ("One.", "Two.", "Three."):
        track.add(sentence)
    track.spoken("One.", until=10.0)
    track.spoken("Two.", until=12.0)
    assert track.unheard(9.0) == ["One.", "Two.", "Three."]
    assert track.unheard(11.0) == ["Two.", "Three."]
    assert track.unheard(12.5) == ["Three."], "Three. was not synthesized yet: still unheard"
    track.spoken("Three.", until=13.0)
    assert track.unheard(14.0) == []


@pytest.fixture
async def session(voice_runtime) -> VoiceSession:
    s = voice_runtime.new_session("interruptions")
    # These tests speak over a reply, so it must outlast the user's speech and the pause after it:
    # the embedded model's own style caps a reply at three short sentences (voice.prompting), so
    # the long story is asked for in the plain style a real endpoint gets.
    s.reply.conversation.style = PLAIN
    await s.start()
    yield s
    await s.stop()


async def speak_over_reply(session: VoiceSession, text: str) -> list[SessionEvent]:
    """Start a long reply, say ``text`` over it once its audio plays; every event until turn 1 is done
    and the user's speech has been dealt with."""
    await session.submit_text(LONG_REPLY)
    events: list[SessionEvent] = []
    async with asyncio.timeout(90):
        while not any(isinstance(e, AudioOut) for e in events):
            events.append(await session.events.get())
    speech = synthesize(text)
    await speak_into(session, trimmed(speech), speech.sample_rate, chunk_ms=100, trailing_silence_ms=3000)
    async with asyncio.timeout(90):  # the screening (a transcript) finishes, then settle
        while session.screening:
            await asyncio.sleep(0.05)
    while not session.events.empty():
        events.append(session.events.get_nowait())
    return events


@pytest.mark.slow
@pytest.mark.parametrize("backchannel", ["Yeah.", "Okay."])
async def test_a_backchannel_does_not_stop_the_reply(session: VoiceSession, backchannel: str) -> None:
    events = await speak_over_reply(session, backchannel)
    assert not any(isinstance(e, BargeIn) for e in events)
    assert session.turns_started == 1, "a backchannel is not a turn"
    assert session.interruption.stats.backchannels_ignored == 1 and session.interruption.stats.barge_ins == 0
    assert session.busy, "the reply is still playing"
    assert session.latencies[0].outcome in ("running", "ok")


@pytest.mark.slow
async def test_a_real_interruption_stops_the_reply_and_is_the_next_turn(session: VoiceSession) -> None:
    events = await speak_over_reply(session, "Wait, tell me about France instead.")
    barge = next(i for i, e in enumerate(events) if isinstance(e, BargeIn))
    assert not any(isinstance(e, AudioOut) and e.turn == 1 for e in events[barge + 1 :]), "audio after barge-in"
    assert session.interruption.stats.barge_ins == 1
    async with asyncio.timeout(90):
        while not any(isinstance(e, TurnDone) and e.latency.turn == 2 for e in events):
            events.append(await session.events.get())
    follow_up = session.latencies[1]
    assert "france" in follow_up.transcript.lower() and follow_up.outcome == "ok"


@pytest.mark.slow
async def test_a_false_interruption_resumes_the_reply_from_the_cut_sentence(session: VoiceSession) -> None:
    """ "Okay, yeah, sure." is long enough to stop the reply, but says nothing that forms a turn."""
    events = await speak_over_reply(session, "Okay, yeah, sure.")
    assert any(isinstance(e, BargeIn) for e in events)
    async with asyncio.timeout(90):
        while not any(isinstance(e, TurnDone) and e.latency.turn == 2 for e in events):
            events.append(await session.events.get())
    resumed = session.latencies[1]
    assert resumed.outcome == "resumed"
    assert session.interruption.stats.false_interruptions == 1 and session.interruption.stats.resumed == 1
    again = [e.chunk.samples for e in events if isinstance(e, AudioOut) and e.turn == 2]
    assert again and float(np.sqrt(np.mean(np.concatenate(again) ** 2))) > 0.01, "the reply was spoken again"
    assert session.client is not None and session.client.stats.requests == 1, "resuming asks the LLM nothing"
