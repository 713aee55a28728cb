"""A turn the user goes on with before hearing any of its reply is carried on, not answered.

The detector may take a hesitation for the end of the turn ("What is the capital of [0.9 s]
France?").  If the user speaks again before any of the reply has reached them, nothing was
heard: the turn is withdrawn and the new speech continues it, so the LLM gets the whole
question once.  Real session, real Silero/Whisper/Piper; the LLM is a loopback server that
answers slowly, so the user always resumes before the reply's audio; the "vad" detector with
a short silence makes the cut certain (these tests are about what happens after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import numpy as np
import pytest
from aiohttp import web

from tests.llm_servers import LLMServer, echo
from tests.loopback_session import listener, loopback_session
from tests.speech import silence, spoken
from voice.events import SessionEvent, TurnDone
from voice.headless import speak_into
from voice.session import VoiceSession
from voice.turns.endpointing import SAMPLE_RATE, Endpointer, SpeechStarted, TurnEnded
from web.view import PageView

pytestmark = pytest.mark.slow

HESITANT = ("What is the capital of", 0.9, "France?")
# The pause surely ends the turn; the slow reply must not time out.
CUTS_AT_THE_PAUSE = {
    "turn_detector": "vad",
    "end_of_turn_silence_ms": 400,
    "preemptive_generation": False,
    "first_byte_timeout_s": 10.0,
}
ANSWER_DELAY_S = 2.0  # far longer than the pause: no reply audio can exist when the user goes on


def slow_echo(delay_s: float = ANSWER_DELAY_S):
    """The loopback server's echo, after ``delay_s``: a reply slower than the user's pause."""

    async def handler(request: web.Request, server: LLMServer) -> web.StreamResponse:
        await asyncio.sleep(delay_s)
        return await echo()(request, server)

    return handler


async def say(session: VoiceSession, audio: np.ndarray) -> list[SessionEvent]:
    """Say ``audio`` in real time, then wait until every turn it started is done."""
    await speak_into(session, audio, SAMPLE_RATE, chunk_ms=100, trailing_silence_ms=1500)
    events: list[SessionEvent] = []
    async with asyncio.timeout(60):
        while session.busy or not session.latencies or session.latencies[-1].outcome == "running":
            with contextlib.suppress(TimeoutError):
                events.append(await asyncio.wait_for(listener(session).get(), 0.2))
    while not listener(session).empty():
        events.append(listener(session).get_nowait())
    return events


def user_messages(server: LLMServer) -> list[list[str]]:
    """The user messages of every chat request the server received, request by request."""
    out = []
    for request in server.chat_requests():
        body = json.loads(request.body)
        out.append([m["content"] for m in body["messages"] if m["role"] == "user"])
    return out


@pytest.mark.parametrize("barge_in", [True, False], ids=["barge-in", "no-barge-in"])
async def test_going_on_before_the_reply_is_heard_continues_the_turn(
    voice_runtime, server: LLMServer, barge_in: bool
) -> None:
    """Also without barge-in: speech before any reply is heard is not speech over the reply."""
    server.default = slow_echo()
    async with loopback_session(voice_runtime, server.base_url, **CUTS_AT_THE_PAUSE, barge_in=barge_in) as session:
        events = await say(session, spoken(*HESITANT))
        outcomes = [lat.outcome for lat in session.latencies]
        assert outcomes == ["continued", "ok"], outcomes
        first, whole = session.latencies
        assert "france" not in first.transcript.lower() and first.first_audio_ms is None
        assert "capital" in whole.transcript.lower() and "france" in whole.transcript.lower()
        # The history holds the question once, whole; the fragment is gone from it.
        users = [m["content"] for m in session.reply.conversation.turns if m["role"] == "user"]
        assert users == [whole.transcript]
        assert user_messages(server)[-1] == [whole.transcript]
        assert session.speculation_stats.continued == 1
        assert any(isinstance(e, TurnDone) and e.latency.outcome == "continued" for e in events)
        # The page's chat takes the fragment back too: the user sees the question once, whole.
        view = PageView(session)
        for event in events:
            view.apply(event)
        assert [m["content"] for m in view.chat if m["role"] == "user"] == [whole.transcript]


async def test_it_can_be_switched_off(voice_runtime, server: LLMServer) -> None:
    server.default = slow_echo()
    async with loopback_session(
        voice_runtime, server.base_url, **CUTS_AT_THE_PAUSE, continue_unheard_turns=False
    ) as session:
        await say(session, spoken(*HESITANT))
        first = session.latencies[0]
        # The fragment stays a turn of its own (what the rest of the speech then does is the
        # interruption screen's call: a new turn, or ignored as a guess).
        assert first.outcome != "continued" and "france" not in first.transcript.lower()
        users = [m["content"] for m in session.reply.conversation.turns if m["role"] == "user"]
        assert users and users[0] == first.transcript, "the fragment was not taken back"
        assert session.speculation_stats.continued == 0


async def test_speech_after_the_reply_was_heard_is_a_new_turn(voice_runtime, server: LLMServer) -> None:
    """Once reply audio is out, the user's speech is speech over the reply (barge-in rules), never a
    continuation: the first turn is not withdrawn."""
    async with loopback_session(voice_runtime, server.base_url, **CUTS_AT_THE_PAUSE) as session:
        await say(session, spoken("What is the capital of France?"))
        await say(session, spoken("And of Germany?"))
        assert session.latencies[0].outcome == "ok"
        assert session.speculation_stats.continued == 0
        users = [m["content"] for m in session.reply.conversation.turns if m["role"] == "user"]
        assert len(users) == 2


# -- the endpointer's part, without a session ------------------------------------------------


def run(endpointer: Endpointer, audio: np.ndarray, *, resume: bool) -> list[TurnEnded]:
    ended: list[TurnEnded] = []
    for offset in range(0, len(audio), 1600):
        for event in endpointer.feed(audio[offset : offset + 1600]):
            if isinstance(event, SpeechStarted) and resume:
                endpointer.resume_turn(event)
            elif isinstance(event, TurnEnded):
                ended.append(event)
    return ended


def test_a_resumed_turn_carries_the_first_part_and_its_voiced_time() -> None:
    audio = np.concatenate([spoken(*HESITANT), silence(1.0, SAMPLE_RATE)])
    separate = run(Endpointer(silence_ms=400), audio, resume=False)
    carried = run(Endpointer(silence_ms=400), audio, resume=True)
    assert len(separate) == len(carried) == 2
    assert carried[1].start_sample == carried[0].start_sample, "the second turn starts where the first did"
    assert len(carried[1].audio) > len(separate[0].audio) + len(separate[1].audio)
    assert carried[1].voiced_ms == pytest.approx(separate[0].voiced_ms + separate[1].voiced_ms, abs=70)


def test_a_capped_turn_is_not_resumed() -> None:
    """A turn cut at max_turn_s while the user talks on was no hesitation: the rest is a new turn."""
    audio = np.concatenate([spoken("What is the capital of France and of Germany?"), silence(1.0, SAMPLE_RATE)])
    endpointer = Endpointer(silence_ms=400, max_turn_s=1.0)
    after_cap = []
    last: TurnEnded | None = None
    for offset in range(0, len(audio), 1600):
        for event in endpointer.feed(audio[offset : offset + 1600]):
            if isinstance(event, TurnEnded):
                last = event
            elif last is not None and last.capped:
                after_cap.append(endpointer.resume_turn(event))
    assert after_cap and not any(after_cap)


def test_a_turn_not_carried_on_lets_go_of_the_ended_turns_audio() -> None:
    """The ended turn's audio is kept only until the next turn's start has been handed out: fed on
    without resuming, the endpointer holds the new turn (and its pre-roll), no more."""
    endpointer = Endpointer(silence_ms=400)
    audio = np.concatenate([spoken(*HESITANT), silence(1.0, SAMPLE_RATE)])
    started: SpeechStarted | None = None
    held_after_start = None
    ends = 0
    for offset in range(0, len(audio), 1600):
        if started is not None and held_after_start is None:
            held_after_start = endpointer.buffered_samples  # the next feed lets go
        for event in endpointer.feed(audio[offset : offset + 1600]):
            if isinstance(event, TurnEnded):
                ends += 1
            elif ends == 1 and started is None:
                started = event
        if held_after_start is not None and endpointer.is_speaking:
            new_turn = endpointer.current_utterance()
            assert endpointer.buffered_samples <= len(new_turn) + 1600 + 512
            assert not endpointer.resume_turn(started), "too late: the ended turn is gone"
            break
    assert started is not None and held_after_start is not None
