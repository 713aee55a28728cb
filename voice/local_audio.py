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

from voice.events import AudioOut, BargeIn, TurnDone
from voice.latency import TurnLatency
from voice.session import VoiceSession

log = logging.getLogger(__name__)
CAPTURE_RATE = 16000
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


class LocalAudio:
    """Feeds the default microphone into a session and plays its replies on the default speaker."""

    def __init__(self) -> None:
        self._sd = _import_sounddevice()
        self._playback: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue()

    async def run(self, session: VoiceSession, on_turn: Callable[[TurnLatency], None] | None = None) -> None:
        """Capture, play and forward turn results until cancelled or the session closes."""
        loop = asyncio.get_running_loop()
        mic: asyncio.Queue[tuple[np.ndarray, float]] = asyncio.Queue(maxsize=500)

        def captured(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            # PortAudio's thread: stamp the arrival, hand the copy to the loop, drop if it lags.
            stamp = time.perf_counter()
            with contextlib.suppress(asyncio.QueueFull, RuntimeError):
                loop.call_soon_threadsafe(mic.put_nowait, (indata[:, 0].copy(), stamp))

        player = threading.Thread(target=self._play, name="local-playback", daemon=True)
        player.start()
        stream = self._sd.InputStream(samplerate=CAPTURE_RATE, channels=1, dtype="float32",
                                      blocksize=CAPTURE_BLOCK, callback=captured)
        events_task = asyncio.create_task(self._forward_events(session, on_turn))
        try:
            with stream:
                while not session.closed:
                    chunk, stamp = await mic.get()
                    await session.feed_audio(chunk, CAPTURE_RATE, received_at=stamp)
        finally:
            events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events_task
            self._playback.put(None)
            await asyncio.to_thread(player.join, 5)

    async def _forward_events(self, session: VoiceSession, on_turn: Callable[[TurnLatency], None] | None) -> None:
        while True:
            event = await session.events.get()
            if isinstance(event, AudioOut):
                self._playback.put((event.chunk.samples, event.chunk.sample_rate))
            elif isinstance(event, BargeIn):
                self._drain()
            elif isinstance(event, TurnDone) and on_turn is not None:
                on_turn(event.latency)

    def _play(self) -> None:
        """Playback thread: blocking writes to the output stream, reopened if the rate changes."""
        stream = None
        rate = 0
        try:
            while (item := self._playback.get()) is not None:
                samples, sample_rate = item
                if stream is None or sample_rate != rate:
                    if stream is not None:
                        stream.close()
                    rate = sample_rate
                    stream = self._sd.OutputStream(samplerate=rate, channels=1, dtype="float32")
                    stream.start()
                stream.write(samples.reshape(-1, 1).astype(np.float32, copy=False))
        finally:
            if stream is not None:
                stream.close()

    def _drain(self) -> None:
        """Drop queued reply audio (barge-in): what is already in the device buffer still plays."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._playback.get_nowait()
