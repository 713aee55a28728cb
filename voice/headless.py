"""Run spoken turns without a browser: WAV in (paced like a microphone), reply audio out.

The CLI (``python -m voice``), the end-to-end benchmark and the tests all use this path,
so what they measure is what the app does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from voice.event_hub import Listener
from voice.events import AssistantSaid, AudioOut, Notice, SessionEvent, TurnDone, UserSaid
from voice.latency import TurnLatency
from voice.session import VoiceSession
from voice.settings import Settings


@dataclass
class TurnResult:
    """Everything one turn produced: what was heard, said, played and how long it took."""

    latency: TurnLatency
    transcript: str = ""
    reply: list[str] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    sample_rate: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def reply_text(self) -> str:
        """The assistant's reply as one string."""
        return " ".join(self.reply)

    @property
    def reply_audio(self) -> np.ndarray:
        """The reply audio, concatenated (float32 mono at ``sample_rate``)."""
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)


def trailing_silence_for(settings: Settings) -> int:
    """Silence fed after the speech by default: a little more than the turn detector's longest wait."""
    return max(settings.turn_policy.backstop_ms + 500, 1500)


async def speak_into(
    session: VoiceSession,
    samples: np.ndarray,
    sample_rate: int,
    *,
    chunk_ms: int = 20,
    trailing_silence_ms: int | None = None,
    realtime: bool = True,
) -> None:
    """Feed ``samples`` to the session chunk by chunk, paced in real time like a microphone,
    followed by silence so the endpointer can find the end of the turn (by default a little
    more than the turn detector's longest wait, as a microphone would keep sending)."""
    if trailing_silence_ms is None:
        trailing_silence_ms = trailing_silence_for(session.settings)
    # Same channel layout as the speech: (n,) mono or (n, channels).
    silence = np.zeros((int(sample_rate * trailing_silence_ms / 1000), *samples.shape[1:]), dtype=samples.dtype)
    audio = np.concatenate([samples, silence])
    step = max(1, int(sample_rate * chunk_ms / 1000))
    start = time.perf_counter()
    for i, offset in enumerate(range(0, len(audio), step)):
        if realtime:
            # Sleep until this chunk would have been captured, then hand it over at once.
            due = start + (i + 1) * step / sample_rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await session.feed_audio(audio[offset : offset + step], sample_rate)
        if session.closed:
            return


async def collect_turn(events: Listener[SessionEvent], timeout_s: float = 120.0) -> TurnResult:
    """Read a session's ``events`` until the next turn is done; return what it produced."""
    result: TurnResult | None = None
    pending: list[SessionEvent] = []
    async with asyncio.timeout(timeout_s):
        while True:
            event = await events.get()
            pending.append(event)
            if isinstance(event, TurnDone):
                result = TurnResult(latency=event.latency)
                break
    for event in pending:
        if isinstance(event, UserSaid):
            result.transcript = event.text
        elif isinstance(event, AssistantSaid):
            result.reply.append(event.text)
        elif isinstance(event, AudioOut):
            result.audio.append(event.chunk.samples)
            result.sample_rate = event.chunk.sample_rate
        elif isinstance(event, Notice):
            result.notices.append(event.text)
    return result


async def run_spoken_turn(
    session: VoiceSession,
    samples: np.ndarray,
    sample_rate: int,
    *,
    realtime: bool = True,
    timeout_s: float = 120.0,
) -> TurnResult | None:
    """Speak ``samples`` into the session and return the turn it produced.

    None when the endpointer heard no speech at all (silence, noise): no turn, no LLM call.
    """
    turns_before = session.turns_started
    listener = session.events.listen("headless")  # from now on: an earlier turn's late events are not this one's
    collector = asyncio.create_task(collect_turn(listener, timeout_s))
    try:
        await speak_into(session, samples, sample_rate, realtime=realtime)
        async with asyncio.timeout(timeout_s):
            await session.screened()  # speech over a reply is transcribed before it may be a turn
        if session.turns_started == turns_before:
            return None
        return await collector
    finally:
        listener.close()
        if not collector.done():
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector


async def run_typed_turn(session: VoiceSession, text: str, *, timeout_s: float = 120.0) -> TurnResult:
    """Type ``text`` into the session and return the turn it produced."""
    with session.events.listen("headless") as listener:
        collector = asyncio.create_task(collect_turn(listener, timeout_s))
        await session.submit_text(text)
        return await collector
