"""Whole voice turns, headless: WAV in (paced like a microphone), real models, real local LLM."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from tests.loopback_session import listener
from tests.speech import synthesize
from voice.events import AudioOut, BargeIn, TurnDone
from voice.headless import run_spoken_turn, run_typed_turn, speak_into
from voice.latency import STAGES
from voice.session import VoiceSession
from voice.timing import TurnClosed, TurnOpened
from voice.tts import FallbackTTS
from voice.tts.edge import EdgeTTS

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"


@pytest.fixture
async def session(voice_runtime) -> VoiceSession:
    s = voice_runtime.new_session("test")
    listener(s)
    await s.start()
    yield s
    await s.stop()


def _question() -> tuple[np.ndarray, int]:
    speech = synthesize(QUESTION)
    return speech.samples, speech.sample_rate


async def test_spoken_turn_produces_speech_and_an_ordered_breakdown(session: VoiceSession) -> None:
    samples, rate = _question()
    result = await run_spoken_turn(session, samples, rate)
    assert result is not None
    assert "capital" in result.transcript.lower() and "france" in result.transcript.lower()
    assert result.reply_text.strip()
    audio = result.reply_audio
    assert result.sample_rate == 24000 and audio.size > 0.3 * result.sample_rate
    assert float(np.sqrt(np.mean(audio**2))) > 0.01, "reply audio is silent"

    lat = result.latency
    assert lat.outcome == "ok"
    values = [getattr(lat, attr) for attr, _ in STAGES]
    assert all(v is not None and v > 0 for v in values), lat.stages()
    endpoint, transcript, sent, status, token, sentence, first_audio = values
    # Whisper starts during the pause, so the transcript may be ready before the endpoint fires;
    # the LLM request waits for the transcript, and (preemptive generation) may leave before the
    # turn is over.
    assert transcript <= sent <= status <= token <= sentence <= first_audio
    assert sent < endpoint + 1 if "preemptive" in lat.extras else endpoint <= sent
    assert "stt_started_ms" in lat.extras, "the transcript should have been started during the pause"
    assert session.settings.early_transcript_after_ms <= lat.extras["stt_started_ms"] < endpoint
    # The endpointer waits at least the shorter, complete-sentence silence after the true end of speech.
    assert endpoint >= session.settings.min_end_of_turn_silence_ms * 0.8
    assert lat.stt_compute_ms and lat.stt_compute_ms > 0
    assert lat.sentences >= 1 and lat.chars > 0
    assert lat.reused_connection is True, "the pre-warmed connection should carry the first turn"


async def test_second_turn_reuses_the_connection_and_remembers(voice_runtime) -> None:
    # A reply that copies an earlier one is closed unread and asked again (COPIED_REPLY), which
    # by design costs a connection; the sampled small model does that now and then, so this test
    # of the pool turns the check off (tests/test_reply_stage.py tests the recovery).
    settings = dataclasses.replace(voice_runtime.settings, copied_reply="off")
    session = voice_runtime.new_session("test", settings)
    await session.start()
    try:
        await _two_turns_on_one_connection(session)
    finally:
        await session.stop()


async def _two_turns_on_one_connection(session: VoiceSession) -> None:
    # A typed turn can beat the warm-up; a request never waits for it (it opens its own
    # connection), so let the warm-up finish as it would while the user speaks.
    warm = await session.wait_warm()
    assert warm is not None and warm.ok
    first = await run_typed_turn(session, "My name is Ada. Say hi.")
    second = await run_typed_turn(session, "What is my name?")
    assert first.latency.outcome == second.latency.outcome == "ok"
    assert second.latency.reused_connection is True
    assert session.client is not None and session.client.stats.connections_opened == 1
    roles = [m["role"] for m in session.reply.conversation.turns]
    assert roles == ["user", "assistant", "user", "assistant"]


async def test_silence_and_noise_make_no_llm_call(session: VoiceSession) -> None:
    rng = np.random.default_rng(7)
    for audio in (np.zeros(48000, np.float32), (rng.standard_normal(48000) * 0.3).astype(np.float32)):
        result = await run_spoken_turn(session, audio, 16000)
        assert result is None or result.latency.outcome == "no_speech"
    assert session.client is not None and session.client.stats.requests == 0


async def test_barge_in_cancels_the_reply_in_progress(session: VoiceSession) -> None:
    await session.submit_text("Tell me a long story about a dragon, in ten sentences.")
    while not isinstance(await asyncio.wait_for(listener(session).get(), 60), AudioOut):
        pass  # wait until the reply is audibly under way
    samples, rate = _question()
    speaking = asyncio.create_task(speak_into(session, samples, rate))
    events = []
    while not any(isinstance(e, TurnDone) and e.latency.turn == 2 for e in events):
        events.append(await asyncio.wait_for(listener(session).get(), 90))
    await speaking

    barge = next(i for i, e in enumerate(events) if isinstance(e, BargeIn))
    first_done = next(e.latency for e in events if isinstance(e, TurnDone) and e.latency.turn == 1)
    if first_done.outcome == "interrupted":
        # The reply was still being generated: LLM stream and TTS were cancelled.
        assert any(isinstance(e, TurnDone) and e.latency.turn == 1 for e in events[barge:])
    else:
        # Generation had finished but its audio was still playing: the barge-in stopped playback.
        assert first_done.outcome == "ok"
    assert not any(isinstance(e, AudioOut) and e.turn == 1 for e in events[barge + 1 :]), "audio after barge-in"
    follow_up = next(e.latency for e in events if isinstance(e, TurnDone) and e.latency.turn == 2)
    assert follow_up.outcome == "ok" and "france" in follow_up.transcript.lower()


async def test_auto_tts_falls_back_to_piper_without_failing_the_turn(voice_runtime) -> None:
    """edge-tts's real service is unreachable here: the auto engine must fall back to Piper."""
    settings = voice_runtime.settings.replace(tts_engine="auto", tts_voice="en-US-AriaNeural", edge_tts_timeout_s=1.0)
    s = voice_runtime.new_session("edge-fallback", settings=settings)
    assert isinstance(s.speech.tts, FallbackTTS) and isinstance(s.speech.tts.primary, EdgeTTS)
    assert s.speech.tts.primary.breaker is voice_runtime.edge_breaker  # what the host taught is shared
    await s.start()
    try:
        result = await run_typed_turn(s, "Say hello.")
    finally:
        await s.stop()
    assert result.latency.outcome == "ok"
    assert result.audio and result.latency.tts_engine == "piper"
    assert result.latency.tts_fallback is True


async def test_stop_closes_the_client_and_cancels_work(session: VoiceSession) -> None:
    task = await session.submit_text("Count slowly from one to fifty.")
    assert task is not None
    await asyncio.sleep(0.2)
    await session.stop()
    assert task.done()
    assert session.client is None and session.connection_state == "closed"


async def test_a_short_pause_mid_sentence_is_not_the_end_of_the_turn(session: VoiceSession) -> None:
    """The early transcript made during the pause is discarded when the user goes on."""
    from tests.speech import trimmed

    first, second = synthesize("What is the capital"), synthesize("of France?")
    pause = np.zeros(int(0.32 * first.sample_rate), np.float32)
    audio = np.concatenate([trimmed(first), pause, trimmed(second)])
    result = await run_spoken_turn(session, audio, first.sample_rate)
    assert result is not None and session.turns_started == 1
    assert "capital" in result.transcript.lower() and "france" in result.transcript.lower()
    stats = session.speculation_stats
    assert stats.started == 2 and stats.discarded == 1 and stats.adopted == 1, stats


async def test_a_finished_sentence_ends_the_turn_as_soon_as_its_transcript_is_ready(session: VoiceSession) -> None:
    """The microphone delivered the question and 550 ms of silence, then nothing more yet (a
    browser's next chunk is up to 100 ms away): the early transcript, once ready, ends the turn
    by itself instead of waiting for more audio.  (The endpointer counts ~440 ms of that as
    silence after the last voiced frame: over the 400 ms a finished sentence needs.)"""
    from tests.speech import trimmed

    speech = synthesize(QUESTION)
    audio = np.concatenate([trimmed(speech), np.zeros(int(0.55 * speech.sample_rate), np.float32)])
    await session.feed_audio(audio, speech.sample_rate)
    assert session.turns_started == 0, "no signal has answered yet: Whisper starts once the audio is in"
    async with asyncio.timeout(30):
        while session.turns_started == 0:  # no more audio is fed
            await asyncio.sleep(0.02)
    stats = session.speculation_stats
    assert stats.started == 1 and stats.adopted == 1 and stats.early_ends == 1, stats
    async with asyncio.timeout(60):
        while session.latencies[0].outcome == "running":  # the turn stamps its transcript once its task runs
            await asyncio.sleep(0.02)
    lat = session.latencies[0]
    assert lat.transcript_ms is not None and lat.endpoint_ms is not None
    assert lat.endpoint_ms >= lat.transcript_ms, "the turn ended because the transcript was ready"


async def test_playback_is_confirmed_once_and_only_after_first_audio(session: VoiceSession) -> None:
    assert not session.playback_started(1), "no turn 1 yet"
    result = await run_typed_turn(session, "Say hi.")
    lat = result.latency
    assert lat.first_audio_ms is not None and session.latencies[0].playback_confirmed_ms is None
    assert session.playback_started(1)
    confirmed = session.latencies[0].playback_confirmed_ms
    assert confirmed is not None and confirmed >= lat.first_audio_ms
    assert not session.playback_started(1), "a second report must not move the stamp"
    assert session.latencies[0].playback_confirmed_ms == confirmed

    # A turn whose audio never went out (no speech, an error, still synthesizing): nothing to confirm.
    session.timing.record(TurnOpened(99, "voice", session.clock()))
    session.timing.record(TurnClosed(99, "no_speech", session.clock()))
    assert not session.playback_started(99)
    assert session.latencies[-1].playback_confirmed_ms is None
