"""The one shape every speech recognizer has, and what it hands back.

Two engines implement it: Whisper tiny.en through faster-whisper (:mod:`voice.transcribe`, the
default: the product is specified as local Whisper) and Moonshine base-en through onnxruntime
(:mod:`voice.moonshine`).  Everything that turns a user's audio into words (the early transcript
on a pause, the interruption screen, a turn's final transcript, the benchmarks) goes through
:class:`SpeechRecognizer`, so the engine is one setting (``STT_ENGINE``) and every report can say
which engine heard the turn (:attr:`Transcript.engine`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voice.audio import SAMPLE_RATE

STT_ENGINES = ("whisper", "moonshine")
# What the panel and the reports call each engine.
ENGINE_LABELS = {"whisper": "Whisper tiny.en", "moonshine": "Moonshine base-en"}


class ModelUnavailableError(RuntimeError):
    """The requested speech model is not available locally (and we never download)."""


@dataclass(frozen=True)
class Transcript:
    """What a recognizer heard in one stretch of audio.

    ``text`` is the cleaned transcript ("" when ``no_speech``); ``raw_text`` is what the engine
    produced before annotations and noise segments were removed (for logs).  ``compute_ms`` is the
    measured wall time of the decode; ``audio_ms`` the input length.  ``avg_logprob`` is how sure
    the engine was of ``text``: a mean log-probability per token (Whisper: of its least sure kept
    segment; Moonshine: of the whole greedy decode); near 0 is sure (0.0 when there is no text).
    ``engine`` is the engine's name (one of :data:`STT_ENGINES`).
    """

    text: str
    compute_ms: float
    audio_ms: float
    no_speech: bool
    raw_text: str = ""
    avg_logprob: float = 0.0
    engine: str = "whisper"


class SpeechRecognizer(Protocol):
    """A speech-to-text engine: 16 kHz mono float32 in, a :class:`Transcript` out.

    ``transcribe`` blocks (call it through ``asyncio.to_thread``); the model behind it is loaded
    once per process and shared by every session.
    """

    @property
    def engine(self) -> str:
        """The engine's name, one of :data:`STT_ENGINES`."""
        ...

    @property
    def cost_follows_clip(self) -> bool:
        """Whether a shorter clip costs less (so incremental transcription can pay off)."""
        ...

    def load(self) -> object:
        """Load (or fetch the already loaded) shared model; raises :class:`ModelUnavailableError`."""
        ...

    def warm(self) -> float:
        """Load the model and run one tiny inference; returns its compute ms."""
        ...

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono float32 audio; empty input is a no-speech transcript."""
        ...


class TimedRecognizer:
    """What both engines share: the input check, the empty clip, the timing and the warm-up; an
    engine gives its name, ``load`` and ``_decode``."""

    engine = ""

    @property
    def cost_follows_clip(self) -> bool:
        """True when a run's cost follows the clip's length, so hearing a long utterance in
        stretches leaves a short last run (voice.incremental)."""
        return False

    def load(self) -> object:
        """Load (or fetch the already loaded) shared model."""
        raise NotImplementedError

    def warm(self) -> float:
        """Load the model and run one short inference so the first real turn is not slow; its ms."""
        self.load()
        return self.transcribe(warm_up_noise()).compute_ms

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono float32 audio.  Empty input returns a no-speech transcript."""
        audio = checked_audio(audio_16k)
        if not len(audio):
            return Transcript("", 0.0, 0.0, True, engine=self.engine)
        started = time.perf_counter()
        text, raw_text, logprob = self._decode(audio)  # the engine's lazy work happens inside the timing
        return Transcript(
            text=text,
            compute_ms=(time.perf_counter() - started) * 1000.0,
            audio_ms=len(audio) * 1000.0 / SAMPLE_RATE,
            no_speech=not text,
            raw_text=raw_text,
            avg_logprob=logprob if text else 0.0,
            engine=self.engine,
        )

    def _decode(self, audio: np.ndarray) -> tuple[str, str, float]:
        """(cleaned text, raw text, mean log-probability per token) of non-empty ``audio``."""
        raise NotImplementedError


def checked_audio(audio_16k: np.ndarray) -> np.ndarray:
    """``audio_16k`` as contiguous 1-D float32, or a clear error for anything else."""
    audio = np.ascontiguousarray(audio_16k, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {audio.shape}")
    return audio


def engine_label(engine: str) -> str:
    """The name people read for ``engine`` ("Whisper tiny.en"); unknown names as they are."""
    return ENGINE_LABELS.get(engine, engine)


def warm_up_noise(seconds: float = 0.5) -> np.ndarray:
    """Quiet noise for a warm-up run (an all-zero input can take an early-exit path)."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 1e-3).astype(np.float32)
