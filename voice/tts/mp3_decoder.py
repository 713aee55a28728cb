"""Incremental MP3 decoding for edge-tts's stream (24 kHz, 48 kbit/s mono MP3 frames)."""

from __future__ import annotations

import logging
from typing import Any

import av
import numpy as np

from voice.tts.engine import OUTPUT_SAMPLE_RATE

_log = logging.getLogger(__name__)


class Mp3StreamDecoder:
    """Incremental MP3 -> float32 mono PCM at ``output_rate``, fed bytes as they arrive.

    It runs on the event loop: an MP3 frame (24 ms) decodes in microseconds, less than a
    hop to a worker thread would cost.
    """

    def __init__(self, output_rate: int = OUTPUT_SAMPLE_RATE) -> None:
        self._codec: Any = av.CodecContext.create("mp3", "r")
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=output_rate)

    def feed(self, data: bytes) -> np.ndarray:
        """Decode what ``data`` completes; returns the new samples (maybe none yet)."""
        return self._decode(self._codec.parse(data))

    def flush(self) -> np.ndarray:
        """Decode everything still buffered; call once at the end of the stream."""
        parts = [self._decode(self._codec.parse(None)), self._frames(self._codec.decode(None))]
        parts.append(self._frames([], final=True))
        return np.concatenate(parts)

    def _decode(self, packets: list[Any]) -> np.ndarray:
        parts: list[np.ndarray] = [np.zeros(0, dtype=np.float32)]
        for packet in packets:
            try:
                frames = self._codec.decode(packet)
            except av.error.FFmpegError as exc:
                # A damaged or non-audio packet (e.g. an ID3 tag): skip it, keep the stream.
                _log.debug("MP3 packet skipped: %s", exc)
                continue
            parts.append(self._frames(frames))
        return np.concatenate(parts)

    def _frames(self, frames: list[Any], *, final: bool = False) -> np.ndarray:
        parts: list[np.ndarray] = [np.zeros(0, dtype=np.float32)]
        for frame in frames:
            parts.extend(out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame))
        if final:
            parts.extend(out.to_ndarray().reshape(-1) for out in self._resampler.resample(None))
        return np.concatenate(parts).astype(np.float32, copy=False)
