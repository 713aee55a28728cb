"""``--local-audio`` / ``python -m voice --mic``: this machine's microphone and speaker.

This machine has no PortAudio library and no sound card, so the device layer is the one
thing replaced here: a stand-in ``sounddevice`` whose input stream plays a question made with
Piper into the capture callback in real time (20 ms blocks, from a thread of its own, as
PortAudio does) and whose output stream keeps what it is asked to play.  Everything above it
is real: the session, Silero, Whisper, the embedded LLM and Piper.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.loopback_session import FakeRequest
from tests.speech import synthesize
from voice.audio import SAMPLE_RATE, to_mono_16k
from voice.latency import TurnLatency
from voice.local_audio import CAPTURE_BLOCK, LocalAudioError, LocalSpeaker, converse_locally
from voice.runtime import RuntimeLoader
from voice.tts import AudioChunk
from web.callbacks import PageCallbacks

QUESTION = "What is the capital of France?"


class StandInSoundDevice:
    """What WarmVoice uses of ``sounddevice``, without a device: see the module docstring."""

    def __init__(self, capture: np.ndarray) -> None:
        self.capture = capture  # float32 mono at SAMPLE_RATE; silence follows it
        self.played: list[tuple[int, np.ndarray]] = []  # (rate, samples) per write
        self.streams: list[Any] = []
        self.write_gate = threading.Event()
        self.write_gate.set()  # cleared: writes block, as a full device buffer does
        self.input_error: Exception | None = None  # raised when the input stream is opened
        self.write_errors = 0  # the next this many writes fail, as an unplugged device's do
        device = self

        class InputStream:
            def __init__(
                self, *, samplerate: int, channels: int, dtype: str, blocksize: int, callback: Callable[..., None]
            ) -> None:
                assert (samplerate, channels, dtype) == (SAMPLE_RATE, 1, "float32")
                if device.input_error is not None:
                    raise device.input_error
                self.blocksize, self.callback = blocksize, callback
                self.stop = threading.Event()
                self.closed = False
                self.thread = threading.Thread(target=self._run, name="stand-in-capture", daemon=True)
                device.streams.append(self)

            def __enter__(self) -> InputStream:
                self.thread.start()
                return self

            def __exit__(self, *_exc: object) -> None:
                self.stop.set()
                self.thread.join(5)
                self.closed = True

            def _run(self) -> None:
                position, started = 0, time.perf_counter()
                while not self.stop.is_set():
                    block = device.capture[position : position + self.blocksize]
                    block = np.pad(block, (0, self.blocksize - len(block)))
                    self.callback(block.reshape(-1, 1), self.blocksize, None, None)
                    position += self.blocksize
                    # Paced like a real device: block n is delivered when its last sample was captured.
                    time.sleep(max(0.0, started + position / SAMPLE_RATE - time.perf_counter()))

        class OutputStream:
            def __init__(self, *, samplerate: int, channels: int, dtype: str) -> None:
                assert (channels, dtype) == (1, "float32")
                self.rate, self.started, self.closed = samplerate, False, False
                device.streams.append(self)

            def start(self) -> None:
                self.started = True

            def write(self, samples: np.ndarray) -> None:
                assert self.started and not self.closed
                device.write_gate.wait(10)
                if device.write_errors:
                    device.write_errors -= 1
                    raise OSError("Unanticipated host error [PaErrorCode -9999]")
                device.played.append((self.rate, samples[:, 0].copy()))

            def close(self) -> None:
                self.closed = True

        self.InputStream = InputStream
        self.OutputStream = OutputStream

    def query_devices(self, kind: str | None = None) -> dict[str, str]:
        return {"name": f"stand-in {kind}"}


@pytest.fixture
def question_at_capture_rate() -> np.ndarray:
    speech = synthesize(QUESTION)
    return to_mono_16k(speech.samples, speech.sample_rate).astype(np.float32)


@pytest.mark.slow
async def test_a_spoken_turn_through_the_local_microphone_and_speaker(
    voice_runtime, question_at_capture_rate: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = StandInSoundDevice(question_at_capture_rate)
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    session = voice_runtime.new_session("local-audio")
    await session.start()
    turns: list[TurnLatency] = []
    conversation = asyncio.create_task(converse_locally(session, turns.append))
    try:
        async with asyncio.timeout(60):
            while not turns:
                await asyncio.sleep(0.05)
            while session.busy:  # the reply finishes playing
                await asyncio.sleep(0.05)
    finally:
        conversation.cancel()
        with pytest.raises(asyncio.CancelledError):
            await conversation
        await session.stop()

    turn = turns[0]
    assert turn.outcome == "ok" and turn.source == "voice", turn
    assert "capital" in turn.transcript.lower()
    # The stages count from the true end of speech, stamped on the capture thread's arrival times.
    assert turn.endpoint_ms is not None and turn.first_audio_ms is not None
    assert 0 < turn.endpoint_ms < turn.first_audio_ms
    reply = np.concatenate([samples for _, samples in device.played])
    assert {rate for rate, _ in device.played} == {24000}
    assert reply.size > 0.3 * 24000 and float(np.sqrt(np.mean(reply**2))) > 0.01
    # Ctrl-C (cancellation) closed both streams and ended the playback thread.
    assert device.streams and all(stream.closed for stream in device.streams)
    assert not [t for t in threading.enumerate() if t.name in ("local-playback", "stand-in-capture")]
    assert device.streams[0].blocksize == CAPTURE_BLOCK


async def test_barge_in_drops_the_reply_not_yet_played(monkeypatch: pytest.MonkeyPatch) -> None:
    device = StandInSoundDevice(np.zeros(CAPTURE_BLOCK, np.float32))
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    speaker = LocalSpeaker()
    device.write_gate.clear()  # the device is busy with the first chunk
    chunks = [AudioChunk(np.full(2400, 0.1 * (n + 1), np.float32), 24000) for n in range(4)]
    try:
        for chunk in chunks:
            speaker.play(chunk)
        async with asyncio.timeout(5):
            while not device.streams:  # the first chunk reached the device
                await asyncio.sleep(0.01)
        speaker.flush()
        device.write_gate.set()
    finally:
        await speaker.aclose()
    assert [round(float(samples[0]), 2) for _, samples in device.played] == [0.1]
    assert all(stream.closed for stream in device.streams)


async def test_a_microphone_that_cannot_open_ends_the_conversation_with_a_clear_error(
    voice_runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = StandInSoundDevice(np.zeros(CAPTURE_BLOCK, np.float32))
    device.input_error = OSError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    session = voice_runtime.new_session("local-audio-broken")
    await session.start()
    try:
        async with asyncio.timeout(10):  # it used to wait for session events forever
            with pytest.raises(LocalAudioError, match=r"the microphone could not be opened: .*Device unavailable"):
                await converse_locally(session, lambda _lat: None)
    finally:
        await session.stop()
    assert not [t for t in threading.enumerate() if t.name == "local-playback"]


async def test_a_failed_playback_skips_that_chunk_and_plays_the_next(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    device = StandInSoundDevice(np.zeros(CAPTURE_BLOCK, np.float32))
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    device.write_errors = 1
    speaker = LocalSpeaker()
    try:
        for n in range(2):
            speaker.play(AudioChunk(np.full(2400, 0.1 * (n + 1), np.float32), 24000))
        async with asyncio.timeout(5):
            while not device.played:
                await asyncio.sleep(0.01)
    finally:
        await speaker.aclose()
    assert [round(float(samples[0]), 2) for _, samples in device.played] == [0.2]
    assert "Local playback failed, chunk skipped" in caplog.text
    assert len(device.streams) == 2 and all(stream.closed for stream in device.streams)


async def test_the_app_logs_a_local_microphone_that_cannot_open(
    voice_runtime, offline_settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``app.py --local-audio``: nobody awaits the capture task, so its failure must be logged."""
    from voice.local_audio import LocalMic

    device = StandInSoundDevice(np.zeros(CAPTURE_BLOCK, np.float32))
    device.input_error = OSError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    web = PageCallbacks(offline_settings, RuntimeLoader.loaded(offline_settings, voice_runtime), local_mic=LocalMic())
    tab = FakeRequest("local-tab")
    try:
        [status async for status in web.start("prewarmed", 0, "", 500, True, tab)]
        async with asyncio.timeout(10):
            while "Local microphone stopped" not in caplog.text:
                await asyncio.sleep(0.02)
    finally:
        await web.aclose()
    assert "the microphone could not be opened" in caplog.text
    assert "Traceback" not in caplog.text and "never retrieved" not in caplog.text


@pytest.mark.slow
async def test_the_apps_local_speaker_listens_on_its_own_not_through_the_pages_pump(
    voice_runtime, offline_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``app.py --local-audio``: the speaker is a listener of the session's events of its own, so
    the reply plays on this machine even when no page pumps the events (and none is sent to one)."""
    device = StandInSoundDevice(np.zeros(CAPTURE_BLOCK, np.float32))
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    speaker = LocalSpeaker()
    loader = RuntimeLoader.loaded(offline_settings, voice_runtime)
    web = PageCallbacks(offline_settings, loader, local_speaker=speaker)
    tab = FakeRequest("local-speaker-tab")
    try:
        [status async for status in web.start("prewarmed", 0, "", 500, True, tab)]
        session = await web._session(tab)
        assert session is not None and not session.speech.page_confirms
        await web.type_turn("Say hi in three words.", tab)
        async with asyncio.timeout(90):
            while not device.played or session.busy:
                await asyncio.sleep(0.05)
        assert [listener.name for listener in session.events.listeners] == ["page", "local-speaker"]
    finally:
        await web.aclose()
        await speaker.aclose()
    assert {rate for rate, _ in device.played} == {24000}
    reply = np.concatenate([samples for _, samples in device.played])
    assert reply.size > 0.3 * 24000 and float(np.sqrt(np.mean(reply**2))) > 0.01
