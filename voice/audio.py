"""Audio in: any rate, dtype and channel layout -> 16 kHz mono float32 in [-1, 1].

Gradio delivers ``(n, channels)`` int16 at 48 kHz, sounddevice float32, WAV files
anything.  Whisper and the Silero VAD both want 16 kHz mono float32, so everything
goes through here.  Resampling uses soxr (a real band-limited resampler), so a
44.1 kHz tone stays the same tone and nothing above 8 kHz folds back as aliasing.

Two ways in:

* :func:`convert` / :func:`to_mono_16k` for a whole buffer at once;
* :class:`StreamingConverter` for microphone chunks: it keeps the resampler's
  filter state between chunks, so the concatenated output equals the one-shot
  result instead of clicking at every chunk boundary.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

# The rate of every turn's audio: what Silero VAD and Whisper take.  Defined here only.
SAMPLE_RATE = 16000
# More channels than this means the caller almost certainly passed (channels, n).
_MAX_CHANNELS = 16
# soxr "HQ": 48 kHz -> 16 kHz withholds ~10 ms; lower qualities trade aliasing for little gain.
_QUALITY = "HQ"


@dataclass(frozen=True)
class Converted:
    """One converted buffer and what had to be repaired in it.

    ``nonfinite`` counts NaN/Inf input samples (replaced by 0) and ``clipped`` counts
    float input samples outside [-1, 1] (clipped), both before downmixing, so the UI
    can tell the user their audio source is misbehaving.
    """

    audio: np.ndarray
    nonfinite: int
    clipped: int


def _as_float_frames(samples: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Scale to float32 in [-1, 1], shape (n, channels); count NaN/Inf and clipped samples."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[:, np.newaxis]
    elif arr.ndim != 2:
        raise ValueError(f"audio must be (n,) or (n, channels), got shape {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[1] > _MAX_CHANNELS:
        raise ValueError(f"audio must be (n, channels) with 1..{_MAX_CHANNELS} channels, got {arr.shape}")

    kind = arr.dtype.kind
    if kind == "f":
        out = arr.astype(np.float32, copy=True)
        bad = ~np.isfinite(out)
        nonfinite = int(np.count_nonzero(bad))
        if nonfinite:
            out[bad] = 0.0
        over = np.abs(out) > 1.0
        clipped = int(np.count_nonzero(over))
        if clipped:
            np.clip(out, -1.0, 1.0, out=out)
        return out, nonfinite, clipped
    if kind == "i":
        # Full-scale negative maps to exactly -1; the positive peak falls one LSB short.
        scale = float(-np.iinfo(arr.dtype).min)
        return (arr.astype(np.float64) / scale).astype(np.float32), 0, 0
    if kind == "u":
        # Unsigned PCM (8-bit WAV) is offset binary: the midpoint is silence.
        mid = float(np.iinfo(arr.dtype).max // 2 + 1)
        return ((arr.astype(np.float64) - mid) / mid).astype(np.float32), 0, 0
    raise TypeError(f"unsupported audio dtype {arr.dtype}")


def _downmix(frames: np.ndarray) -> np.ndarray:
    """Average the channels into one contiguous float32 vector."""
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    return np.ascontiguousarray(frames.mean(axis=1, dtype=np.float32))


def _check_rate(sample_rate: int) -> int:
    rate = int(sample_rate)
    if rate <= 0 or rate != sample_rate:
        raise ValueError(f"sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    return rate


def convert(samples: np.ndarray, sample_rate: int) -> Converted:
    """Convert a whole buffer to 16 kHz mono float32 and report repairs.

    ``samples`` is ``(n,)`` or ``(n, channels)`` of any float, signed or unsigned int
    dtype.  A zero-length input gives a zero-length output.
    """
    rate = _check_rate(sample_rate)
    frames, nonfinite, clipped = _as_float_frames(samples)
    mono = _downmix(frames)
    if rate != SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality=_QUALITY).astype(np.float32, copy=False)
        # A band-limited resampler overshoots slightly around full-scale steps.
        np.clip(mono, -1.0, 1.0, out=mono)
    return Converted(audio=mono, nonfinite=nonfinite, clipped=clipped)


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Convert a whole buffer to 16 kHz mono float32 in [-1, 1] (NaN/Inf become 0)."""
    return convert(samples, sample_rate).audio


class StreamingConverter:
    """Chunk-by-chunk conversion of one input rate to 16 kHz mono, seamless across chunks.

    Use one converter per input stream and rate (the resampler's filter state is
    what makes consecutive outputs join without a click).  ``process`` reports the
    repairs of its own chunk; ``nonfinite_samples``/``clipped_samples`` accumulate.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = _check_rate(sample_rate)
        self._stream: soxr.ResampleStream | None = None
        self.nonfinite_samples = 0
        self.clipped_samples = 0

    @property
    def delay_samples(self) -> float:
        """16 kHz samples fed in but not yet output (the resampler's look-ahead).

        Add this to any "samples behind the latest chunk" arithmetic that maps
        output sample positions to wall-clock time; 0 when no resampling is needed.
        """
        return float(self._stream.delay()) if self._stream is not None else 0.0

    def process(self, samples: np.ndarray) -> Converted:
        """Convert one chunk; ``audio`` is the 16 kHz output that became available."""
        frames, nonfinite, clipped = _as_float_frames(samples)
        self.nonfinite_samples += nonfinite
        self.clipped_samples += clipped
        mono = _downmix(frames)
        if self.sample_rate != SAMPLE_RATE and mono.size:
            if self._stream is None:
                self._stream = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality=_QUALITY)
            mono = self._stream.resample_chunk(mono)
            np.clip(mono, -1.0, 1.0, out=mono)
        return Converted(audio=mono, nonfinite=nonfinite, clipped=clipped)

    def flush(self) -> np.ndarray:
        """End of input: return what the resampler still holds; the next chunk starts afresh."""
        stream, self._stream = self._stream, None
        if stream is None:
            return np.zeros(0, dtype=np.float32)
        tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        np.clip(tail, -1.0, 1.0, out=tail)
        return tail


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 PCM; out-of-range values clip and NaN/Inf become 0."""
    arr = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.round(np.clip(arr, -1.0, 1.0) * 32767.0).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV; ``samples`` is ``(n,)`` or ``(n, channels)``, float or int16."""
    rate = _check_rate(sample_rate)
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[:, np.newaxis]
    if arr.ndim != 2 or not 1 <= arr.shape[1] <= _MAX_CHANNELS:
        raise ValueError(f"audio must be (n,) or (n, channels), got shape {np.shape(samples)}")
    pcm = arr if arr.dtype == np.int16 else float_to_int16(_as_float_frames(arr)[0])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV (8/16/24/32-bit) as float32 in [-1, 1]: ``(n,)`` mono or ``(n, channels)``."""
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        ints: np.ndarray = np.frombuffer(raw, dtype=np.uint8)
    elif width == 2:
        ints = np.frombuffer(raw, dtype="<i2")
    elif width == 3:
        # No numpy 24-bit type: place each little-endian triple in the top of an int32.
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)
    elif width == 4:
        ints = np.frombuffer(raw, dtype="<i4")
    else:
        raise ValueError(f"{path}: unsupported sample width {width} bytes")
    frames = _as_float_frames(ints.reshape(-1, channels))[0]
    return (frames[:, 0].copy() if channels == 1 else frames), rate


MIN_INPUT_RATE, MAX_INPUT_RATE = 4000, 384000  # microphone rates a session accepts

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MicrophoneChunk:
    """A microphone chunk at 16 kHz mono; ``delay_samples`` is its converter's look-ahead."""

    audio: np.ndarray
    delay_samples: float


class MicrophoneInput:
    """One session's microphone: any rate, dtype and layout in, 16 kHz mono out, seamless per rate.

    A broken source must not take the session down: unusable audio (a rate out of range, a shape
    or dtype that is not audio) is dropped and invalid samples (NaN/Inf) become silence, and
    ``warn`` is told each of them once, in words for the user.
    """

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self._converters: dict[int, StreamingConverter] = {}
        self._refused = False
        self._warned_nonfinite = False

    def convert(self, samples: np.ndarray, sample_rate: int) -> MicrophoneChunk | None:
        """The chunk at 16 kHz, or None when there is nothing usable in it (yet)."""
        try:
            # A rate far off would be resampled into minutes of audio per chunk (1 Hz -> x16000).
            if not MIN_INPUT_RATE <= sample_rate <= MAX_INPUT_RATE:
                raise ValueError(f"sample rate {sample_rate} Hz (expected {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz)")
            converter = self._converters.get(sample_rate)
            if converter is None:
                converter = self._converters[sample_rate] = StreamingConverter(sample_rate)
            converted = converter.process(samples)
        except (ValueError, TypeError) as exc:
            if not self._refused:
                self._refused = True
                _log.warning("Unusable microphone audio ignored (%s)", exc)
                self._warn("The microphone sent audio WarmVoice cannot use; it was ignored.")
            return None
        if converted.nonfinite and not self._warned_nonfinite:
            self._warned_nonfinite = True
            self._warn("The microphone sent invalid samples (NaN/Inf); they were replaced by silence.")
        if converted.audio.size == 0:
            return None
        return MicrophoneChunk(converted.audio, converter.delay_samples)
