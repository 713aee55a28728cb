"""The conversation record is what was heard (issue #23): a reply cut by a barge-in is remembered
only up to the sentences whose playback had started, marked interrupted, on the page too.

Real session, real Silero/Whisper/Piper; the LLM is a loopback server whose long reply arrives at
once, far ahead of its audio, so most of its sentences are still queued or waiting to play when
the user speaks over it.  The test listens as a player would: it plays every audio chunk in real
time from when it arrives, so it knows which sentences had started when the barge-in came.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from tests.llm_servers import LLMServer, reply
from tests.loopback_session import listener, loopback_session
from tests.speech import synthesize, trimmed
from voice.conversation import INTERRUPTED_MARK
from voice.events import AssistantSaid, AudioOut, BargeIn, ReplyRecorded, SessionEvent, TurnDone
from voice.headless import speak_into
from web.view import INTERRUPTED_LABEL, PageView

pytestmark = pytest.mark.slow

LONG = (
    "Once upon a time a small dragon lived in a cave above the sea. "
    "Every morning it counted the ships that sailed past the rocks below. "
    "One day a storm drove a little boat onto the sand near its cave. "
    "The dragon carried the sailors up to the warm rocks and lit a fire for them. "
    "They told it stories of cities far away, full of bells and bridges. "
    "When the sea was calm again, the dragon flew them home across the water. "
    "From then on the sailors waved at the cave every time they passed. "
    "And the dragon never counted ships alone again."
)
SENTENCES = [s.strip() for s in LONG.replace(". ", ".\n").splitlines()]
QUESTION = "Tell me a long story about a dragon."
INTERRUPTION = "Stop, tell me about France instead."
SCHEDULING_SLACK_S = 0.05  # the listener stamps an event when it takes it off the queue


class Listener:
    """Takes the session's events as they come and plays the audio on a clock, as a page would."""

    def __init__(self, session) -> None:
        self.session = session
        self.events: list[SessionEvent] = []
        self.started: dict[tuple[int, int], float] = {}  # (turn, sentence) -> when it starts playing
        self.barge_in_at: float | None = None
        self._next = 0.0
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            event = await listener(self.session).get()
            now = time.perf_counter()
            self.events.append(event)
            if isinstance(event, AudioOut):
                start = max(self._next, now)
                self.started.setdefault((event.turn, event.sentence), start)
                self._next = start + event.chunk.duration_s
            elif isinstance(event, BargeIn) and self.barge_in_at is None:
                self.barge_in_at = now
                self._next = 0.0  # queued audio is dropped

    def heard(self, turn: int, by: float) -> set[int]:
        return {sentence for (t, sentence), start in self.started.items() if t == turn and start <= by}

    async def until(self, condition, timeout_s: float = 90.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_a_barge_in_leaves_only_the_heard_sentences_in_the_history(voice_runtime, server: LLMServer) -> None:
    server.script(reply(LONG), reply("France is a country in Europe."))
    async with loopback_session(voice_runtime, server.base_url, preemptive_generation=False) as session:
        listener = Listener(session)
        try:
            await session.submit_text(QUESTION)
            # Every sentence has arrived from the LLM (the old record took them all) and audio plays.
            await listener.until(
                lambda: (
                    len([e for e in listener.events if isinstance(e, AssistantSaid)]) == len(SENTENCES)
                    and any(isinstance(e, AudioOut) for e in listener.events)
                )
            )
            speech = synthesize(INTERRUPTION)
            await speak_into(session, trimmed(speech), speech.sample_rate, chunk_ms=100, trailing_silence_ms=3000)
            async with asyncio.timeout(90):
                await session.screened()
            await listener.until(lambda: any(isinstance(e, TurnDone) and e.latency.turn == 2 for e in listener.events))
        finally:
            await listener.aclose()

        assert listener.barge_in_at is not None, "the interruption did not stop the reply"
        heard_by_listener = listener.heard(1, listener.barge_in_at + SCHEDULING_SLACK_S)
        assert heard_by_listener and len(heard_by_listener) < len(SENTENCES)
        turns = session.reply.conversation.turns
        assert [m["role"] for m in turns] == ["user", "assistant", "user", "assistant"]
        recorded = turns[1]["content"]
        prefixes = {" ".join(SENTENCES[:k]): k for k in range(1, len(SENTENCES) + 1)}
        assert recorded in prefixes, f"not the reply's first sentences, whole: {recorded!r}"
        recorded_count = prefixes[recorded]
        unheard = [i for i in range(recorded_count) if i not in heard_by_listener]
        assert unheard == [], f"recorded but never played: {[SENTENCES[i] for i in unheard]}"
        assert recorded_count >= len(listener.heard(1, listener.barge_in_at - SCHEDULING_SLACK_S))
        assert recorded_count < len(SENTENCES)
        # The next request showed the model the cut reply as cut.
        follow_up = json.loads(server.chat_requests()[-1].body)["messages"]
        shown = [m["content"] for m in follow_up if m["role"] == "assistant"]
        assert shown == [recorded + INTERRUPTED_MARK]
        assert SENTENCES[-1] not in json.dumps(follow_up)
        # The page's chat shows the same: what was heard, marked.
        recorded_events = [e for e in listener.events if isinstance(e, ReplyRecorded)]
        assert [(e.turn, e.text, e.interrupted) for e in recorded_events] == [(1, recorded, True)]
        view = PageView(session)
        for event in listener.events:
            view.apply(event)
        replies = [m["content"] for m in view.chat if m["role"] == "assistant"]
        assert replies[0] == f"{recorded} {INTERRUPTED_LABEL}"
