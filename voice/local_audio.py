"""The local microphone and speaker through ``sounddevice`` (``--local-audio`` / ``--mic``).

``sounddevice`` is imported lazily: on a machine with no PortAudio library or no sound
device (a Hugging Face Space, CI) the app still starts, and this module says why local
audio is unavailable in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from voice.audio import SAMPLE_RATE
from voice.event_hub import Listener
from voice.events import AudioOut, BargeIn, SessionEvent, TurnDone
from voice.latency import TurnLatency
from voice.session import VoiceSession
from voice.tts import AudioChunk

log = logging.getLogger(__name__)
CAPTURE_BLOCK = 320  # 20 ms: small blocks keep the endpointer's clock honest


class LocalAudioError(RuntimeError):
    """Local audio cannot be used here (no PortAudio, no device); the message says why."""


def _import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise LocalAudioError(f"local audio unavailable: PortAudio library not found ({exc})") from None
    except ImportError as exc:
        raise LocalAudioError(f"local audio unavailable: {exc}") from None
    try:
        sounddevice.query_devices(kind="input")
        sounddevice.query_devices(kind="output")
    except Exception as exc:
        raise LocalAudioError(f"local audio unavailable: no default input/output device ({exc})") from None
    return sounddevice


class LocalSpeaker:
    """Plays reply audio on the default output device from a thread of its own."""

    def __init__(self) -> None:
        self._sd = _import_sounddevice()
        self._queue: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._play, name="local-playback", daemon=True)
        self._thread.start()

    def play(self, chunk: AudioChunk) -> None:
        """Queue a chunk; it plays after the ones before it."""
        self._queue.put((chunk.samples, chunk.sample_rate))

    def flush(self) -> None:
        """Drop queued reply audio (barge-in): what is already in the device buffer still plays."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    async def aclose(self) -> None:
        """Stop the playback thread."""
        self.flush()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, 5)

    def _play(self) -> None:
        stream = None
        rate = 0
        try:
            while (item := self._queue.get()) is not None:
                samples, sample_rate = item
                try:
                    if stream is None or sample_rate != rate:
                        if stream is not None:
                            stream.close()
                            stream = None
                        stream = self._sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32")
                        rate = sample_rate
                        stream.start()
                    stream.write(samples.reshape(-1, 1).astype(np.float32, copy=False))
                except Exception as exc:  # PortAudio's errors (device unplugged, busy): skip this chunk
                    # The reply's text is on screen; the next chunk tries a fresh stream.
                    log.error("Local playback failed, chunk skipped: %s", exc)
                    if stream is not None:
                        with contextlib.suppress(Exception):
                            stream.close()
                    stream = None
        finally:
            if stream is not None:
                stream.close()


class LocalMic:
    """Feeds the default input device into a session, 20 ms at a time, stamped on arrival."""

    def __init__(self) -> None:
        self._sd = _import_sounddevice()

    async def run(self, session: VoiceSession) -> None:
        """Capture until cancelled or the session closes."""
        loop = asyncio.get_running_loop()
        mic: asyncio.Queue[tuple[np.ndarray, float]] = asyncio.Queue(maxsize=500)

        def captured(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            # PortAudio's thread: stamp the arrival and hand a copy to the loop.
            stamp = time.perf_counter()
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(_offer, mic, (indata[:, 0].copy(), stamp))

        try:
            stream = self._sd.InputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=CAPTURE_BLOCK, callback=captured
            )
        except Exception as exc:  # PortAudio's errors: no such device, busy, unsupported rate
            raise LocalAudioError(f"the microphone could not be opened: {exc}") from None
        with stream:
            while not session.closed:
                chunk, stamp = await mic.get()
                await session.feed_audio(chunk, SAMPLE_RATE, received_at=stamp)


def _offer(q: asyncio.Queue[tuple[np.ndarray, float]], item: tuple[np.ndarray, float]) -> None:
    with contextlib.suppress(asyncio.QueueFull):  # the loop is lagging: drop rather than grow
        q.put_nowait(item)


async def play_replies(events: Listener[SessionEvent], speaker: LocalSpeaker) -> None:
    """This machine's speaker as a listener of a session: reply audio played, flushed on a barge-in;
    until cancelled (it stops listening then)."""
    with events:
        while True:
            event = await events.get()
            if isinstance(event, AudioOut):
                speaker.play(event.chunk)
            elif isinstance(event, BargeIn):
                speaker.flush()


async def converse_locally(session: VoiceSession, on_turn: Callable[[TurnLatency], None]) -> None:
    """Microphone in, speaker out, ``on_turn`` after each turn; until cancelled (Ctrl-C)."""
    mic, speaker = LocalMic(), LocalSpeaker()
    capture = asyncio.create_task(mic.run(session))
    playback = asyncio.create_task(play_replies(session.events.listen("local-speaker"), speaker))
    turns = session.events.listen("local-turns")
    next_event: asyncio.Future[SessionEvent] | None = None
    try:
        while True:
            next_event = asyncio.ensure_future(turns.get())
            await asyncio.wait({next_event, capture}, return_when=asyncio.FIRST_COMPLETED)
            if not next_event.done():  # capture ended: the session closed, or the microphone failed (raised below)
                break
            event = next_event.result()
            if isinstance(event, TurnDone):
                on_turn(event.latency)
    finally:
        turns.close()
        for task in (next_event, capture, playback):
            if task is not None:
                task.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await playback
            with contextlib.suppress(asyncio.CancelledError):
                await capture  # re-raises the microphone's error, if that is what ended it
        finally:
            await speaker.aclose()
