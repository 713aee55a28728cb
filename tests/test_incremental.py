"""Incremental transcription (INCREMENTAL_TRANSCRIPT): the utterance heard in stretches cut at the
dips between words, one run at a time, none while a reply is being produced, stale runs dropped.
Real Silero VAD and real Moonshine on Piper speech made at test time; the audio is fed in the
browser's 100 ms chunks, not paced (the assertions are about what is heard, not the clock)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.speech import spoken
from voice.audio import SAMPLE_RATE
from voice.incremental import DIP_MS, MIN_STRETCH_MS, IncrementalTranscriber, ReplyActivity, plan_cut
from voice.moonshine import MoonshineRecognizer
from voice.settings import load_settings
from voice.turns.detection import DetectedTurn, TurnDetector
from voice.turns.policy import TurnPolicy
from voice.turns.smart_turn import smart_turn_model

LONG = ("Could you please tell me", 0.25, "the name of the capital city", 0.25, "of France, and why it is famous?")
DIP = DIP_MS * SAMPLE_RATE // 1000
STRETCH = MIN_STRETCH_MS * SAMPLE_RATE // 1000


@pytest.fixture(scope="module")
def moonshine() -> MoonshineRecognizer:
    recognizer = MoonshineRecognizer()
    recognizer.warm()
    return recognizer


def test_a_stretch_ends_in_the_middle_of_a_dip_after_enough_new_audio() -> None:
    assert plan_cut(0, None, DIP, STRETCH) is None  # the voice goes on
    assert plan_cut(0, (STRETCH + 10, DIP - 1), DIP, STRETCH) is None  # not yet a dip
    assert plan_cut(100, (STRETCH + 50, DIP), DIP, STRETCH) is None  # too little new audio
    assert plan_cut(0, (STRETCH + 10, DIP * 2), DIP, STRETCH) == STRETCH + 10 + DIP


def test_replies_in_progress_are_counted_across_sessions() -> None:
    replies = ReplyActivity()
    with replies.running():
        with replies.running():
            assert replies.busy
        assert replies.busy
    assert not replies.busy


async def _detect(detector: TurnDetector, audio: np.ndarray) -> list[DetectedTurn]:
    turns: list[DetectedTurn] = []
    for offset in range(0, len(audio), SAMPLE_RATE // 10):
        found = await detector.feed(audio[offset : offset + SAMPLE_RATE // 10], time.perf_counter())
        turns += [event for event in found if isinstance(event, DetectedTurn)]
        await asyncio.sleep(0)  # let a finished stretch land, as between two browser chunks
    return turns


def _detector(moonshine: MoonshineRecognizer, turns: list[DetectedTurn]) -> TurnDetector:
    return TurnDetector(
        TurnPolicy(detector="vad", silence_ms=500),
        transcriber=moonshine,
        audio_model=smart_turn_model,
        on_turn=turns.append,
        clock=time.perf_counter,
        incremental=True,
    )


async def test_a_long_question_is_heard_in_stretches_and_whole_at_the_pause(moonshine) -> None:
    late: list[DetectedTurn] = []
    detector = _detector(moonshine, late)
    assert detector.incremental is not None
    turns = await _detect(detector, spoken(*LONG, tail_s=1.0))
    turns += late
    assert len(turns) == 1
    spec = turns[0].speculation
    assert spec is not None and spec.task is not None
    heard = await spec.task
    words = {w.strip(".,?!").lower() for w in heard.text.split()}
    assert {"capital", "city", "france", "famous"} <= words, heard.text
    stats = detector.incremental.stats
    assert stats.runs >= 1  # at least one stretch was heard while the question went on
    assert stats.stitched + stats.one_shot >= 1
    await detector.close()
    assert stats.runs_per_turn and stats.runs_per_turn[-1] == stats.runs


async def test_no_stretch_runs_while_a_reply_is_being_produced(moonshine) -> None:
    replies = ReplyActivity()
    late: list[DetectedTurn] = []
    detector = _detector(moonshine, late)
    detector.incremental = IncrementalTranscriber(lambda: moonshine, activity=replies)
    with replies.running():
        await _detect(detector, spoken(*LONG, tail_s=1.0))
    stats = detector.incremental.stats
    assert stats.runs == 0 and stats.skipped_busy >= 1 and stats.one_shot >= 1
    await detector.close()


async def test_a_run_for_an_utterance_that_was_reset_is_dropped(moonshine) -> None:
    incremental = IncrementalTranscriber(lambda: moonshine)
    first = spoken("What is the capital of France?", tail_s=0.1)
    speech_end = len(first) - SAMPLE_RATE // 10
    incremental.observe((speech_end, DIP * 2), lambda ms: first[: speech_end + ms * SAMPLE_RATE // 1000])
    assert incremental._task is not None  # a run on the first utterance is in flight
    # A new utterance (its audio starts later) dips before that run has landed.
    second = spoken("Tell me a joke.", tail_s=0.1)
    later = 10 * SAMPLE_RATE
    incremental.observe(
        (later + len(second) - SAMPLE_RATE // 10, DIP * 2),
        lambda ms: second[: len(second) - SAMPLE_RATE // 10 + ms * SAMPLE_RATE // 1000],
    )
    await incremental.close()
    assert incremental.stats.dropped == 1 and incremental.stretches == []


def test_the_setting() -> None:
    assert load_settings(environ={}, dotenv_path=None).incremental_transcript is False
    assert load_settings(environ={"INCREMENTAL_TRANSCRIPT": "true"}, dotenv_path=None).incremental_transcript


async def test_a_session_turn_reports_its_stretch_runs(voice_runtime, server, moonshine) -> None:
    from tests.loopback_session import events_until_done, loopback_session, outcome
    from voice.panel import current_turn_html

    async with loopback_session(
        voice_runtime, server.base_url, transcriber=moonshine, incremental_transcript=True
    ) as session:
        waiter = asyncio.create_task(events_until_done(session))
        audio = spoken(*LONG, tail_s=1.5)
        for offset in range(0, len(audio), SAMPLE_RATE // 10):
            await session.feed_audio(audio[offset : offset + SAMPLE_RATE // 10], SAMPLE_RATE)
            await asyncio.sleep(0)
        lat = outcome(await waiter)
        assert lat.outcome == "ok", lat.error
        assert lat.stt_engine == "moonshine" and "france" in lat.transcript.lower()
        assert lat.extras["stt_stretch_runs"] >= 1
        assert "stretch runs while you spoke" in current_turn_html(lat)


def test_with_whisper_in_its_30_s_window_no_stretch_is_heard() -> None:
    """In its own 30 s window a Whisper run costs the same whatever the stretch: stretches would
    only add runs.  (In its fitted window, the default, its cost follows the clip.)"""
    from voice.transcribe import Transcriber, WhisperOptions

    assert Transcriber().cost_follows_clip
    incremental = IncrementalTranscriber(lambda: Transcriber(options=WhisperOptions(window_margin_s=0.0)))
    audio = spoken("What is the capital of France?", tail_s=0.1)
    incremental.observe((len(audio) - SAMPLE_RATE // 10, DIP * 2), lambda ms: audio)
    assert incremental._task is None and incremental.stats.runs == 0
