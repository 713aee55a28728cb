"""Voice sessions wired to a loopback LLM server, and helpers to read what a turn produced.

The fault, bad-input, load and security tests all need the same thing: a real
:class:`VoiceSession` (real Whisper, real Piper from the shared ``voice_runtime``) whose
LLM endpoint is a server the test controls (``tests.llm_servers``), with short time-outs
so a failure is seen in seconds, and every event the session emitted, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any

import numpy as np

from llm import Secret
from voice.event_hub import Listener
from voice.events import AssistantSaid, AudioOut, Notice, SessionEvent, Status, TurnDone
from voice.latency import TurnLatency
from voice.llm_endpoint import LLMEndpoint
from voice.runtime import RuntimeLoader, VoiceRuntime
from voice.session import VoiceSession
from voice.transcribe import Transcriber, Transcript
from voice.tts import TTSEngine
from web.callbacks import PageCallbacks

# Short enough that a fault test fails in seconds, long enough for a loaded 2-core machine.
FAST_TIMEOUTS: dict[str, Any] = {"connect_timeout_s": 1.0, "first_byte_timeout_s": 2.0, "chunk_timeout_s": 2.0}
TURN_LIMIT_S = 60.0  # no turn may take longer than this (a hang fails the test instead)
# "ValueError", "ClientPayloadError", "KeyboardInterrupt"...: what a user must never read.
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b|Traceback")


class FakeRequest:
    """What app.py's callbacks read from gr.Request: the tab's session hash."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash


@contextlib.asynccontextmanager
async def loopback_session(
    runtime: Any,
    base_url: str,
    *,
    key: str = "",
    model: str = "test-model",
    tts: TTSEngine | None = None,
    transcriber: Transcriber | None = None,
    session_id: str = "loopback",
    **settings_changes: Any,
) -> AsyncIterator[VoiceSession]:
    """A started session on ``runtime``'s models that talks to ``base_url``; stopped on exit.

    ``settings_changes`` override the runtime's settings (on top of :data:`FAST_TIMEOUTS`).
    """
    settings = runtime.settings.replace(**{**FAST_TIMEOUTS, **settings_changes})
    endpoint = LLMEndpoint(base_url=base_url, model=model, api_key=Secret(key), reason="test")
    session = VoiceSession(
        settings,
        endpoint,
        transcriber=transcriber or runtime.transcriber,
        tts=tts if tts is not None else runtime.new_tts(),
        session_id=session_id,
        synthesis_gate=getattr(runtime, "synthesis_gate", None),  # one gate per process, as the app's
    )
    listener(session)
    await session.start()
    try:
        yield session
    finally:
        await session.stop()
        await session.speech.tts.aclose()


_LISTENERS: weakref.WeakKeyDictionary[VoiceSession, Listener[SessionEvent]] = weakref.WeakKeyDictionary()


def listener(session: VoiceSession) -> Listener[SessionEvent]:
    """The tests' own listener of ``session``'s events: one per session, hearing everything from
    its first call on (call it before ``start()`` to hear the start's events too)."""
    if session not in _LISTENERS:
        _LISTENERS[session] = session.events.listen("test")
    return _LISTENERS[session]


async def events_until_done(session: VoiceSession, timeout_s: float = TURN_LIMIT_S) -> list[SessionEvent]:
    """Every event up to and including the next :class:`TurnDone` (hangs fail after ``timeout_s``)."""
    events: list[SessionEvent] = []
    async with asyncio.timeout(timeout_s):
        while not events or not isinstance(events[-1], TurnDone):
            events.append(await listener(session).get())
    return events


async def typed_turn(session: VoiceSession, text: str, timeout_s: float = TURN_LIMIT_S) -> list[SessionEvent]:
    """Type ``text`` and return every event up to the turn's end."""
    waiter = asyncio.create_task(events_until_done(session, timeout_s))
    try:
        await session.submit_text(text)
        return await waiter
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


def drain(session: VoiceSession) -> list[SessionEvent]:
    """Events already queued (without waiting)."""
    out: list[SessionEvent] = []
    while not listener(session).empty():
        out.append(listener(session).get_nowait())
    return out


def outcome(events: Iterable[SessionEvent]) -> TurnLatency:
    """The final breakdown of the (last) turn in ``events``."""
    done = [e for e in events if isinstance(e, TurnDone)]
    assert done, "the turn never ended"
    return done[-1].latency


def notices(events: Iterable[SessionEvent], level: str | None = None) -> list[str]:
    """Texts of the Notices (of one ``level`` if given)."""
    return [e.text for e in events if isinstance(e, Notice) and (level is None or e.level == level)]


def statuses(events: Iterable[SessionEvent]) -> list[Status]:
    """The Status events."""
    return [e for e in events if isinstance(e, Status)]


def said(events: Iterable[SessionEvent]) -> list[str]:
    """The assistant's sentences, in order."""
    return [e.text for e in events if isinstance(e, AssistantSaid)]


def audio_seconds(events: Iterable[SessionEvent]) -> float:
    """Total reply audio emitted, in seconds."""
    return sum(e.chunk.duration_s for e in events if isinstance(e, AudioOut))


def assert_presentable(events: Iterable[SessionEvent]) -> None:
    """Everything the user reads (status lines, notices, the turn's error) is prose: no
    traceback and no exception class name."""
    texts = [e.text for e in events if isinstance(e, Notice | Status)]
    texts += [e.latency.error or "" for e in events if isinstance(e, TurnDone)]
    leaks = [t for t in texts if EXCEPTION_NAME.search(t)]
    assert not leaks, leaks


def assert_healthy_turn(events: list[SessionEvent]) -> TurnLatency:
    """The turn was answered in text and audio, with no warning or error shown."""
    lat = outcome(events)
    assert lat.outcome == "ok", (lat.outcome, lat.error, notices(events))
    assert said(events) and audio_seconds(events) > 0.2
    assert not notices(events, "warning") and not notices(events, "error"), notices(events)
    return lat


class MeasuringTranscriber(Transcriber):
    """The real shared Whisper, recording how much audio each call got and how many run now."""

    def __init__(self, inner: Transcriber) -> None:
        super().__init__(inner.model_name, inner.device, inner.compute_type, inner.language or "")
        self.seconds: list[float] = []
        self.in_flight = 0
        self._lock = threading.Lock()

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        with self._lock:
            self.seconds.append(len(audio_16k) / 16000)
            self.in_flight += 1
        try:
            return super().transcribe(audio_16k)
        finally:
            with self._lock:
                self.in_flight -= 1


def page_text(out: tuple[Any, ...]) -> str:
    """Everything a tab's page shows as text: status, chat, panel, turns table, facts."""
    status, chat, _audio, current, rows, _chart, facts = out
    return "\n".join([str(status), json.dumps(chat, ensure_ascii=False), str(current), json.dumps(rows), str(facts)])


@contextlib.asynccontextmanager
async def app_tab(voice_runtime: Any, server: Any, tab: str) -> AsyncIterator[tuple[PageCallbacks, list]]:
    """The page's callbacks over the real models and a loopback LLM ``server`` (tests/llm_servers),
    its tab started, and the list every rendered page update is appended to (by a background
    pump reader)."""
    settings = voice_runtime.settings.replace(**FAST_TIMEOUTS)
    endpoint = LLMEndpoint(base_url=server.base_url, model="test-model", api_key=Secret(""), reason="test")
    runtime = VoiceRuntime(settings, endpoint, voice_runtime.transcriber)
    web = PageCallbacks(settings, RuntimeLoader.loaded(settings, runtime))
    request = FakeRequest(tab)
    [s async for s in web.start("pooled", 0, settings.system_prompt, 500, True, request)]
    outputs: list[tuple[Any, ...]] = []

    async def read() -> None:
        async for out in web.pump(request):
            outputs.append(out)

    reader = asyncio.create_task(read())
    try:
        yield web, outputs
    finally:
        await web.stop(request)
        async with asyncio.timeout(10):
            await reader
        await web.aclose()
