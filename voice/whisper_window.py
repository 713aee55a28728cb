"""Whisper on an encoder window fitted to the clip, instead of its fixed 30 s.

faster-whisper pads every clip to 30 s of log-mel frames, so tiny.en's encoder costs the same
~300 ms on this machine class for a two-second question as for a thirty-second one.  CTranslate2's
Whisper encoder takes any even number of frames (its positional table is sliced), so a question
can be encoded in a window of a few seconds (whisper.cpp's ``audio_ctx`` is the same trick): the
encoder's cost then follows the clip, about a tenth of it for a short question.

Whisper never saw a window shorter than 30 s in training, so a short window is only trusted when
its decode looks sane; otherwise :func:`decode_in_window` returns None and the caller decodes the
usual 30 s window.  Not sane: more tokens than the clip could hold, the same three words twice
("What is the capital world? What is the capital world? What is the"), or text as repetitive as
Whisper's own fallback rule rejects (gzip compression ratio above 2.4).  The window is the clip
plus a margin of silence (``WhisperOptions.window_margin_s``), and never under :data:`MIN_WINDOW_S`:
in a shorter one the decoder loops (a 3.5 s question in a 4 s window was repeated to the token
limit).  Both were chosen on the speech-recognizer benchmark's tuning voices
(``python -m benchmarks.stt_engines --whisper-options``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voice.audio import SAMPLE_RATE

if TYPE_CHECKING:  # faster-whisper is imported where it decodes: the settings read DEFAULT_MARGIN_S cheaply
    from faster_whisper import WhisperModel

# The app's margin (WHISPER_WINDOW_MARGIN_S).  On the speech-recognizer set's tuning voices
# (docs/measurements/stt_engines.md) the clip + 6 s window heard better than the 30 s one (1.8 %
# WER against 3.6 %) in 40 % of the compute (179 against 447 ms median); held out, 21.4 % against
# 23.2 %; on the turn-taking texts, chosen on nothing, 12.9 % against 14.4 % at 146 against 404 ms.
DEFAULT_MARGIN_S = 6.0

# Whisper's own window: 30 s of 10 ms log-mel frames.
FULL_WINDOW_FRAMES = 3000
FRAMES_PER_SECOND = 100
# The shortest window: below ~8 s tiny.en loops or garbles the last words.  A one-off run on the
# speech-recognizer set's 36 tuning clips, decoding without the sanity check (the script was not
# kept): a fixed 6 s window 27 % WER, 8 s 3.0 %, 10 s 1.8 %; the 30 s window 3.6 %.
MIN_WINDOW_S = 10
# Whisper's fallback rule (faster-whisper's compression_ratio_threshold): text this repetitive is a loop.
MAX_COMPRESSION_RATIO = 2.4
# Tokens a clip may hold: fast speech is ~5 tokens a second with punctuation; more is a loop.
TOKENS_PER_SECOND = 8
MIN_TOKENS = 12
# A run of this many words said twice in one short clip is a loop, not speech.
LOOP_WORDS = 3


@dataclass(frozen=True)
class WindowDecode:
    """One decode in a fitted window: Whisper's text, its no-speech probability, its mean
    log-probability per token (as faster-whisper computes it) and the window's length."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    window_s: float


def window_frames(audio_s: float, margin_s: float) -> int:
    """The fitted window for a clip of ``audio_s``: the clip plus ``margin_s``, rounded up to
    whole seconds (an even number of frames, as the encoder's stride needs), at least
    :data:`MIN_WINDOW_S`, at most 30 s."""
    return min(FULL_WINDOW_FRAMES, FRAMES_PER_SECOND * max(MIN_WINDOW_S, math.ceil(audio_s + margin_s)))


def decode_in_window(
    model: WhisperModel,
    audio: np.ndarray,
    *,
    margin_s: float,
    language: str | None,
    initial_prompt: str | None,
    beam_size: int,
) -> WindowDecode | None:
    """Decode ``audio`` (16 kHz mono float32) in a window fitted to it, without timestamps.

    None when the fitted window would not be shorter than 30 s, when a multilingual model has no
    language to decode in, or when the decode does not look sane (see the module docstring): the
    caller then decodes the full window.  Blocking; thread-safe (the model and its feature
    extractor are only read).
    """
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    audio_s = len(audio) / SAMPLE_RATE
    frames = window_frames(audio_s, margin_s)
    multilingual = model.model.is_multilingual
    if frames >= FULL_WINDOW_FRAMES or (multilingual and not language):
        return None
    tokenizer = Tokenizer(
        model.hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else "en"
    )
    # The window is padded with silent *audio*, as Whisper was trained (openai-whisper pads the
    # waveform), not with zero features as faster-whisper pads its 30 s: in a short window, zero
    # features garble the last words ("the sky above us" -> "this kind of must"); silence does not.
    # Same one-off run, clip + 6 s: 37 % WER with zero features, 1.8 % with silent audio.
    padded = np.zeros(frames * model.feature_extractor.hop_length, dtype=np.float32)
    padded[: len(audio)] = audio
    window = model.feature_extractor(padded)[:, :frames]
    previous = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
    prompt = model.get_prompt(tokenizer, previous, without_timestamps=True)
    max_tokens = MIN_TOKENS + int(TOKENS_PER_SECOND * audio_s)
    result = model.model.generate(
        model.encode(window),
        [prompt],
        beam_size=beam_size,
        max_length=len(prompt) + max_tokens,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1]) or ()),
    )[0]
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    text = tokenizer.decode(tokens).strip()
    if len(tokens) >= max_tokens or get_compression_ratio(text) > MAX_COMPRESSION_RATIO or repeats_itself(text):
        return None
    # faster-whisper's mean: the cumulative log-probability over the tokens and the end token.
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1) if result.scores else 0.0
    return WindowDecode(text, float(result.no_speech_prob), float(avg_logprob), frames / FRAMES_PER_SECOND)


def repeats_itself(text: str) -> bool:
    """Whether ``text`` says the same :data:`LOOP_WORDS` words twice (case and punctuation aside)."""
    words = ["".join(ch for ch in word.lower() if ch.isalnum()) for word in text.split()]
    runs = [tuple(words[i : i + LOOP_WORDS]) for i in range(len(words) - LOOP_WORDS + 1)]
    return len(set(runs)) < len(runs)
