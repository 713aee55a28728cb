"""Bad input, at the session and through the app's callbacks: every case has a clear outcome
(a turn, no turn, or a notice), no exception reaches the caller, and the page never shows a
traceback or an exception class name.

Speech is made with Piper at test time (``tests.speech``); Whisper is the real model; the LLM
is a loopback server that quotes the user (``echo``), so what reached it is visible.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from tests.llm_servers import LLMServer, echo, reply
from tests.loopback_session import (
    EXCEPTION_NAME,
    FakeRequest,
    MeasuringTranscriber,
    app_tab,
    assert_presentable,
    audio_seconds,
    drain,
    events_until_done,
    listener,
    loopback_session,
    notices,
    outcome,
    page_text,
    said,
    typed_turn,
)
from tests.speech import resample, synthesize, trimmed
from voice.events import SessionEvent, Status, TurnDone
from voice.headless import run_spoken_turn, speak_into
from voice.session import MAX_TYPED_CHARS, VoiceSession

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"


@pytest.fixture
def server(server: LLMServer) -> LLMServer:
    """The shared loopback server, quoting the user (``echo``) unless a test scripts it."""
    server.default = echo()
    return server


@pytest.fixture
async def session(voice_runtime, server: LLMServer) -> AsyncIterator[VoiceSession]:
    async with loopback_session(voice_runtime, server.base_url, session_id="bad-input") as s:
        yield s


def question(rate: int = 16000) -> np.ndarray:
    return synthesize(QUESTION).at(rate)


def heard_the_question(result: Any) -> bool:
    text = result.transcript.lower()
    return "capital" in text and "france" in text


def user_messages(server: LLMServer) -> list[str]:
    last = json.loads(server.chat_requests()[-1].body)
    return [m["content"] for m in last["messages"] if m["role"] == "user"]


# --------------------------------------------------------------------------- audio, session level


async def test_empty_and_zero_length_audio_is_ignored(session: VoiceSession, server: LLMServer) -> None:
    for samples, rate in [
        (np.zeros(0, np.float32), 16000),
        (np.zeros((0, 2), np.int16), 48000),
        (np.zeros((0, 1), np.float64), 44100),
        (np.array([], dtype=np.int16), 8000),
    ]:
        await session.feed_audio(samples, rate)
    assert session.turns_started == 0 and not [e for e in drain(session) if not _is_status(e)]
    assert await run_spoken_turn(session, np.zeros(0, np.float32), 16000, realtime=False) is None

    # Zero-length chunks between real ones change nothing.
    audio = np.concatenate([question(48000), np.zeros(48000 * 2, np.float32)])
    waiter = asyncio.create_task(events_until_done(session))
    for start in range(0, len(audio), 960):
        await session.feed_audio(audio[start : start + 960], 48000)
        await session.feed_audio(audio[start:start], 48000)
    events = await waiter
    assert outcome(events).outcome == "ok" and "france" in outcome(events).transcript.lower()
    assert_presentable(events)


def _is_status(event: SessionEvent) -> bool:
    return isinstance(event, Status)


async def test_silence_and_loud_noise_start_no_turn(session: VoiceSession, server: LLMServer) -> None:
    rng = np.random.default_rng(3)
    cases = [
        (np.zeros(16000 * 3, np.float32), 16000),
        ((rng.uniform(-1, 1, 48000 * 3)).astype(np.float32), 48000),  # full-scale white noise
        ((rng.integers(-32768, 32767, (44100 * 3, 2))).astype(np.int16), 44100),  # stereo int16 noise
        (np.full(16000 * 3, 0.9, np.float32), 16000),  # DC offset, no voice
    ]
    for samples, rate in cases:
        result = await run_spoken_turn(session, samples, rate, realtime=False)
        assert result is None or result.latency.outcome == "no_speech"
    assert not server.chat_requests(), "noise must never reach the LLM"
    assert not notices(drain(session), "error")


@pytest.mark.parametrize(
    ("rate", "layout"),
    [(8000, "mono-int16"), (44100, "stereo-int16"), (48000, "stereo-float32"), (22050, "mono-float64")],
)
async def test_any_rate_and_layout_is_understood(session: VoiceSession, rate: int, layout: str) -> None:
    mono = question(rate)
    samples: np.ndarray = np.stack([mono, mono * 0.5], axis=1) if layout.startswith("stereo") else mono
    if layout.endswith("int16"):
        samples = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    elif layout.endswith("float64"):
        samples = samples.astype(np.float64)
    result = await run_spoken_turn(session, samples, rate, realtime=False)
    assert result is not None and result.latency.outcome == "ok" and heard_the_question(result), result


async def test_clipped_audio_is_still_understood(session: VoiceSession) -> None:
    """Speech driven 12 dB into the rails (float input far beyond ±1, as a hot mic gives)."""
    hot = question(16000) * 4.0
    assert np.mean(np.abs(hot) > 1.0) > 0.01, "the input really clips"
    result = await run_spoken_turn(session, hot, 16000, realtime=False)
    assert result is not None and result.latency.outcome == "ok" and heard_the_question(result)
    hot16 = (np.clip(hot, -1, 1) * 32767).astype(np.int16)  # what an int16 source delivers
    result = await run_spoken_turn(session, hot16, 16000, realtime=False)
    assert result is not None and result.latency.outcome == "ok" and heard_the_question(result)


async def test_nan_and_inf_samples_are_replaced_and_said_once(session: VoiceSession) -> None:
    audio = question(16000).copy()
    audio[:50] = np.inf
    audio[len(audio) // 2 : len(audio) // 2 + 40] = np.nan
    audio[-30:] = -np.inf
    result = await run_spoken_turn(session, audio, 16000, realtime=False)
    assert result is not None and result.latency.outcome == "ok" and heard_the_question(result)
    invalid = [n for n in result.notices if "invalid samples" in n]
    assert len(invalid) == 1
    again = await run_spoken_turn(session, audio, 16000, realtime=False)
    assert again is not None and not any("invalid samples" in n for n in again.notices), "said once"


@pytest.mark.parametrize(
    ("samples", "rate"),
    [
        (np.zeros((10, 10, 10), np.float32), 16000),
        (np.zeros((1600, 64), np.int16), 16000),
        (np.zeros(1600, np.complex64), 16000),
        (np.array(["a", "b"]), 16000),
        (np.zeros(1600, np.float32), 0),
        (np.zeros(4800, np.int16), 1),
        (np.zeros(4800, np.int16), 10**9),
    ],
    ids=["3d", "64-channels", "complex", "strings", "rate-0", "rate-1", "rate-1e9"],
)
async def test_unusable_audio_is_refused_with_a_notice(session: VoiceSession, samples: np.ndarray, rate: int) -> None:
    async with asyncio.timeout(10):  # rate 1 Hz would otherwise be upsampled 16000-fold
        await session.feed_audio(samples, rate)
        await session.feed_audio(samples, rate)
    events = drain(session)
    refused = notices(events, "warning")
    assert len(refused) == 1 and "microphone" in refused[0].lower(), refused
    assert_presentable(events)
    result = await run_spoken_turn(session, question(16000), 16000, realtime=False)
    assert result is not None and heard_the_question(result), "the session still listens"


async def test_ten_minute_recording_is_capped_and_memory_stays_bounded(voice_runtime, server: LLMServer) -> None:
    """Ten minutes of talking without a pause, as a browser sends it (48 kHz stereo int16), fed
    as fast as the machine allows: every turn is cut at max_turn_seconds with a notice, Whisper
    never sees more than that, and the session's memory peak is one capped turn's Whisper pass
    plus small change: nothing grows with the recording."""
    server.default = reply("Okay.")
    cap_s = voice_runtime.settings.max_turn_seconds
    speech = trimmed(synthesize("Tell me everything about the history of the city of Paris and its bridges"))
    mono = resample(speech, 22050, 48000)
    utterance = (np.stack([mono, mono], axis=1) * 32767).astype(np.int16)
    repeats = int(np.ceil(600 / (len(utterance) / 48000)))
    fed_s = repeats * len(utterance) / 48000
    recording_mb = repeats * utterance.nbytes / 1e6

    # Reference: what Whisper alone allocates for one capped turn (the largest single piece of work).
    whisper = MeasuringTranscriber(voice_runtime.transcriber)
    at_16k = resample(speech, 22050, 16000)
    one_turn = np.tile(at_16k, int(cap_s * 16000 / len(at_16k)) + 2)
    tracemalloc.start()
    try:
        await asyncio.to_thread(whisper.transcribe, one_turn[: int((cap_s + 0.5) * 16000)])
        whisper_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    whisper.seconds.clear()

    async with loopback_session(voice_runtime, server.base_url, transcriber=whisper) as s:
        endpointer = s.turn_detector.endpointer  # the bound under test is the endpointer's buffer
        bound = int((cap_s + endpointer.pre_roll_ms / 1000 + 0.2) * 16000)
        most_buffered = 0
        events: list[SessionEvent] = []
        tracemalloc.start()
        try:
            for _ in range(repeats):
                await speak_into(s, utterance, 48000, chunk_ms=100, trailing_silence_ms=0, realtime=False)
                most_buffered = max(most_buffered, endpointer.buffered_samples)
                events += drain(s)
                # Faster than real time, but never faster than Whisper: a microphone gives it 60 s
                # per capped turn, so transcriptions of replaced turns never pile up in threads.
                async with asyncio.timeout(60):
                    while whisper.in_flight:
                        await asyncio.sleep(0.02)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        waiter = asyncio.create_task(_until_turn_ends(s, events))
        await speak_into(s, np.zeros((0, 2), np.int16), 48000, trailing_silence_ms=1500, realtime=False)
        await waiter
    capped = [n for n in notices(events, "warning") if n.startswith(f"Recording capped at {cap_s:.0f} s")]
    print(
        f"\n10-minute recording ({fed_s:.0f} s, {recording_mb:.0f} MB as 48 kHz stereo int16): "
        f"{len(capped)} capped turns, endpointer held at most {most_buffered / 16000:.1f} s, "
        f"tracemalloc peak {peak / 1e6:.1f} MB (Whisper alone on one {cap_s:.0f} s turn: "
        f"{whisper_peak / 1e6:.1f} MB)"
    )
    assert fed_s >= 600 and len(capped) >= int(fed_s // cap_s) - 1, (fed_s, len(capped))
    assert most_buffered <= bound, f"endpointer held {most_buffered / 16000:.1f} s of audio"
    assert whisper.seconds and max(whisper.seconds) <= cap_s + 1.0, "Whisper never gets more than the cap"
    # Endpointer buffer, the turn's audio and its copies, converter and TTS: well under 32 MB.
    assert peak < whisper_peak + 32e6, f"peak {peak / 1e6:.1f} MB grows beyond one turn's work"
    assert peak < recording_mb * 1e6
    assert_presentable(events)


async def _until_turn_ends(session: VoiceSession, events: list[SessionEvent]) -> None:
    async with asyncio.timeout(120):
        while True:
            event = await listener(session).get()
            events.append(event)
            if isinstance(event, TurnDone) and event.latency.outcome != "interrupted":
                return


# --------------------------------------------------------------------------- text


async def test_100kb_typed_turn_is_truncated_with_a_notice_and_answered(
    session: VoiceSession, server: LLMServer
) -> None:
    text = ("All work and no play makes Jack a dull boy. " * 2400)[:99_999] + "!"
    events = await typed_turn(session, text)
    assert_presentable(events)
    warned = notices(events, "warning")
    assert len(warned) == 1 and "100,000" in warned[0] and f"{MAX_TYPED_CHARS:,}" in warned[0]
    assert outcome(events).outcome == "ok" and said(events) and audio_seconds(events) > 0
    assert user_messages(server) == [text[:MAX_TYPED_CHARS].strip()]


async def test_unicode_emoji_and_rtl_text_flow_through_to_speech(session: VoiceSession, server: LLMServer) -> None:
    reply_text = "Hello there 👋! שלום, מה שלומך? مرحبا بك. 😀😀😀. Ça va très bien, merci."
    server.script(reply(reply_text))
    typed = "Zażółć gęślą jaźń 🙂 — שלום 你好 \u200b\u202e reversed? \U0001f600"
    events = await typed_turn(session, typed)
    assert_presentable(events)
    lat = outcome(events)
    assert lat.outcome == "ok" and not notices(events, "error"), notices(events)
    assert " ".join(said(events)).replace(" ", "") == reply_text.replace(" ", "")
    assert audio_seconds(events) > 0.5, "the Latin-script parts are spoken"
    assert user_messages(server) == [typed.strip()]


async def test_emoji_only_reply_is_shown_without_speech(session: VoiceSession, server: LLMServer) -> None:
    server.script(reply("👍👍 🎉."))
    events = await typed_turn(session, "Thanks!")
    assert outcome(events).outcome == "ok" and said(events) and not notices(events, "error")


async def test_empty_system_prompt_is_allowed(voice_runtime, server: LLMServer) -> None:
    async with loopback_session(voice_runtime, server.base_url, system_prompt="") as s:
        events = await typed_turn(s, "Hello?")
        assert outcome(events).outcome == "ok"
    roles = [m["role"] for m in json.loads(server.chat_requests()[-1].body)["messages"]]
    assert roles == ["user"], "an empty system prompt is left out, not sent empty"
    # And the real embedded model answers without one.
    embedded = voice_runtime.new_session("no-prompt", settings=voice_runtime.settings.replace(system_prompt=""))
    await embedded.start()
    try:
        events = await typed_turn(embedded, "Say hello.")
        assert outcome(events).outcome == "ok" and said(events)
    finally:
        await embedded.stop()


# --------------------------------------------------------------------------- through app.py's callbacks


async def wait_for(outputs: list, predicate, *, start: int = 0, timeout_s: float = 60.0) -> tuple[Any, ...]:
    """The first rendered page update from index ``start`` on that satisfies ``predicate``."""
    async with asyncio.timeout(timeout_s):
        while True:
            for out in outputs[start:]:
                if predicate(out):
                    return out
            await asyncio.sleep(0.05)


def last_outcome(out: tuple[Any, ...]) -> str:
    """The outcome column of the newest row of the turns table ("" before any turn)."""
    rows = out[4]
    return rows[-1][-1] if rows else ""


async def test_app_callbacks_never_show_a_traceback(voice_runtime, server: LLMServer) -> None:
    from tests.llm_servers import drop_after, raw

    async with app_tab(voice_runtime, server, "tab-bad") as (web, outputs):
        tab = FakeRequest("tab-bad")
        # Garbage from the browser's microphone stream: none of it may raise or show a traceback.
        bad_chunks: list[Any] = [
            None,
            (48000, None),
            (48000, np.zeros(0, np.int16)),
            (48000, np.zeros((10, 10, 10))),
            (48000, np.zeros(10, np.complex64)),
            (0, np.zeros(100, np.int16)),
            (1, np.zeros(4800, np.int16)),
            ("abc", np.zeros(100, np.int16)),
            (48000, np.full(4800, np.nan)),
            (48000, [[1, 2], [3]]),
        ]
        for chunk in bad_chunks:
            await web.hear(chunk, tab)
        # Typed edge cases and LLM failures, whose errors reach the status line.
        assert await web.type_turn("", tab) == ""
        server.script(drop_after("A first sentence. A second one is cut"), raw(b"data: {not json}\n\n"))
        for turn, text in enumerate(("x" * 100_000, "Zażółć 🙂 שלום", "Are you still there?"), start=1):
            await web.type_turn(text, tab)
            await wait_for(outputs, lambda o, n=turn: len(o[4]) == n and last_outcome(o) not in ("", "running"))
        with pytest.warns(UserWarning, match="not valid|must be"):  # gr.Warning: a toast, not a traceback
            await web.configure("pooled", -50, "", 10, True, tab)
        await asyncio.sleep(0.5)
    texts = [page_text(out) for out in outputs]
    assert texts, "the page was never rendered"
    leaks = sorted({m.group() for t in texts for m in EXCEPTION_NAME.finditer(t)})
    assert not leaks, leaks
    statuses = {out[0] for out in outputs}
    assert any("cut off" in s for s in statuses) and any("did not answer" in s for s in statuses)
    assert any("microphone" in s.lower() for s in statuses), "unusable audio is reported"
    final_chat = outputs[-1][1]
    assert final_chat[-1]["role"] == "assistant" and "still there" in final_chat[-1]["content"]


async def test_typed_turns_racing_each_other_leave_one_answer(voice_runtime, server: LLMServer) -> None:
    """Ten typed turns submitted at once (double clicks, a stuck Enter key): each new one
    interrupts the previous; the page ends with the last one answered and no error."""
    server.default = reply("Quite slow reply here. With two sentences.", token_delay=0.05)
    async with app_tab(voice_runtime, server, "tab-race") as (web, outputs):
        tab = FakeRequest("tab-race")
        await asyncio.gather(*(web.type_turn(f"Message number {i}", tab) for i in range(10)))
        last = await wait_for(outputs, lambda o: last_outcome(o) == "ok")
        outcomes = [row[-1] for row in last[4]]
        assert outcomes[-1] == "ok" and set(outcomes[:-1]) <= {"interrupted", "ok"}
        assert not any(EXCEPTION_NAME.search(page_text(o)) for o in outputs)
