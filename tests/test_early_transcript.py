"""When the early transcript starts: 150 ms into the pause by default, at its first silent frame with
EARLY_TRANSCRIPT_AFTER_MS=0; again on every new pause when the user goes on.  Real Silero VAD, real
Whisper tiny.en and real Smart Turn on Piper speech; the audio is fed frame by frame (not paced:
the assertions are about the audio, not the clock)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.speech import spoken
from voice.settings import SettingsError, load_settings
from voice.transcribe import Transcriber, Transcript
from voice.turns.detection import FRAME_MS, SPECULATE_AFTER_MS, DetectedTurn, TurnDetector
from voice.turns.endpointing import FRAME, SAMPLE_RATE, Endpointer, SpeechStarted
from voice.turns.policy import DEFAULT_TRANSCRIPT_AFTER_MS, TurnPolicy
from voice.turns.smart_turn import smart_turn_model


class RecordingTranscriber(Transcriber):
    """The real Whisper, noting the length of every clip it is given."""

    def __init__(self) -> None:
        super().__init__("", "cpu", "int8", "en")
        self.clips: list[int] = []

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        self.clips.append(len(audio_16k))
        return super().transcribe(audio_16k)


@pytest.fixture(scope="module")
def transcriber() -> RecordingTranscriber:
    whisper = RecordingTranscriber()
    whisper.warm()
    return whisper


def policy(after_ms: int) -> TurnPolicy:
    return TurnPolicy(min_silence_ms=250, hold_ms=1500, max_wait_ms=2500, transcript_after_ms=after_ms)


async def feed_frames(detector: TurnDetector, audio: np.ndarray) -> tuple[list[DetectedTurn], list[float]]:
    """Feed ``audio`` one VAD frame at a time; the turns found, and for every early transcript
    started, the silence (ms after the last voiced frame) it started at."""
    turns: list[DetectedTurn] = []
    starts: list[float] = []
    for offset in range(0, len(audio), FRAME):
        before = detector.stats.started
        pause = detector.endpointer.pause
        for event in await detector.feed(audio[offset : offset + FRAME], time.perf_counter()):
            if not isinstance(event, SpeechStarted):
                turns.append(event)
        if detector.stats.started > before:
            pause = detector.endpointer.pause or pause
            assert pause is not None
            starts.append(pause[1] * 1000 / SAMPLE_RATE)
    return turns, starts


def detector_for(transcriber: Transcriber, after_ms: int, discards: list[int]) -> TurnDetector:
    return TurnDetector(
        policy(after_ms),
        transcriber=transcriber,
        audio_model=smart_turn_model,
        on_turn=lambda _turn: None,
        clock=time.perf_counter,
        on_discard=lambda: discards.append(1),
    )


@pytest.mark.slow
@pytest.mark.parametrize("after_ms", [0, 150])
async def test_whisper_starts_at_the_configured_point_of_the_pause(
    transcriber: RecordingTranscriber, after_ms: int
) -> None:
    discards: list[int] = []
    detector = detector_for(transcriber, after_ms, discards)
    transcriber.clips.clear()
    try:
        turns, starts = await feed_frames(detector, spoken("What is the capital of France?", tail_s=3.0))
        assert len(turns) == 1 and starts
        turn = turns[0]
        assert turn.speculation is not None and turn.speculation.task is not None
        text = (await turn.speculation.task).text.lower()
    finally:
        await detector.close()
    assert "capital" in text and "france" in text
    if after_ms == 0:  # the first silent frame: one frame, or a few when the voice fades out
        assert all(FRAME_MS <= s < SPECULATE_AFTER_MS for s in starts), starts
    else:
        assert all(after_ms <= s < after_ms + 2 * FRAME_MS for s in starts), starts
    # The early transcript heard exactly the turn's audio (its post-roll is the start point).
    assert transcriber.clips[-1] == len(turn.ended.audio)
    assert detector.endpointer.post_roll_ms == max(after_ms, FRAME_MS)
    assert detector.stats.adopted == 1 and detector.stats.discarded == len(discards) == len(starts) - 1


@pytest.mark.slow
async def test_speech_resuming_discards_it_and_the_next_pause_runs_it_again(transcriber: RecordingTranscriber) -> None:
    discards: list[int] = []
    detector = detector_for(transcriber, 0, discards)
    try:
        turns, starts = await feed_frames(detector, spoken("What is the capital", 0.2, "of France?", tail_s=3.0))
        assert len(turns) == 1, "a 200 ms pause is under the shortest end-of-turn silence"
        assert turns[0].speculation is not None and turns[0].speculation.task is not None
        text = (await turns[0].speculation.task).text.lower()
    finally:
        await detector.close()
    stats = detector.stats
    assert stats.started == len(starts) >= 2  # at least the pause in the middle and the last one
    assert stats.discarded == len(discards) == stats.started - 1 and stats.adopted == 1
    assert "capital" in text and "france" in text  # the adopted run heard the whole turn


@pytest.mark.slow
def test_the_audio_model_can_hear_more_of_the_pause_than_the_turn_keeps() -> None:
    endpointer = Endpointer(silence_ms=2000, post_roll_ms=FRAME_MS)
    audio = spoken("What is the capital of France?", tail_s=3.0)
    fed = 0
    while endpointer.pause is None or endpointer.pause[1] * 1000 / SAMPLE_RATE < SPECULATE_AFTER_MS:
        endpointer.feed(audio[fed : fed + FRAME])
        fed += FRAME
    short, long = endpointer.utterance_if_ended_now(), endpointer.utterance_if_ended_now(SPECULATE_AFTER_MS)
    assert len(long) - len(short) == (SPECULATE_AFTER_MS - FRAME_MS) * SAMPLE_RATE // 1000
    assert np.array_equal(long[: len(short)], short)


def test_the_start_point_is_a_setting_with_its_default_in_one_place() -> None:
    default = load_settings(environ={}, dotenv_path=None)
    assert default.early_transcript_after_ms == DEFAULT_TRANSCRIPT_AFTER_MS == 96
    assert default.turn_policy.transcript_after_ms == 96 and TurnPolicy().transcript_after_ms == 96
    first_frame = load_settings(environ={"EARLY_TRANSCRIPT_AFTER_MS": "0"}, dotenv_path=None)
    assert first_frame.turn_policy.transcript_after_ms == 0
    for bad in ("-1", "501", "soon"):
        with pytest.raises(SettingsError, match="EARLY_TRANSCRIPT_AFTER_MS"):
            load_settings(environ={"EARLY_TRANSCRIPT_AFTER_MS": bad}, dotenv_path=None)
    with pytest.raises(ValueError, match="early transcript"):
        TurnPolicy(transcript_after_ms=-1)
