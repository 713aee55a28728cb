"""The pipeline benchmark's questions, spoken: the short and the harder sets, rendered with Piper.

Each question carries the words its transcript must contain; :func:`synthesize_questions` renders
it with the bundled Piper voice (noise off, so every run hears the same audio), writes it as a
16-bit WAV and reads it back, and finds where its voice ends.  The answer evaluation speaks its
panel through the same function.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import voice_families
from benchmarks.pipeline_levers import input_label
from benchmarks.pipeline_records import BenchConfig
from benchmarks.voice_families import VoiceFamily
from voice.audio import SAMPLE_RATE, read_wav, write_wav

# Anything quieter than this (about -40 dBFS) is silence when locating the audio's own end of speech.
ENERGY_THRESHOLD = 0.01
# Lead-in before a voice family's question (its noise, in the noise families).
FAMILY_PAD_S = 0.3


@dataclass(frozen=True)
class Question:
    """A question to speak and the words its transcript must contain.

    A key word may list spellings separated by "/" (Whisper may write "colour").
    """

    text: str
    key_words: tuple[str, ...]


QUESTIONS: tuple[Question, ...] = (
    Question("What is the capital of France?", ("capital", "france")),
    Question("How many legs does a spider have?", ("legs", "spider")),
    Question("What color is the sky?", ("color/colour", "sky")),
    Question("Name a fruit that is yellow.", ("fruit", "yellow")),
    # Not "Who wrote Romeo and Juliet?": Whisper tiny.en hears Piper's "Romeo" as "Romito" every time.
    Question("Who wrote Hamlet?", ("wrote", "hamlet")),
)
# The harder inputs (--inputs hard): questions of 10-15 words, as people ask them.
HARD_QUESTIONS: tuple[Question, ...] = (
    Question("Could you please tell me the name of the capital city of France?", ("capital", "france")),
    Question("I was wondering how many legs a spider has, could you tell me?", ("legs", "spider")),
    Question("On a clear summer day, what color is the sky above us?", ("color/colour", "sky", "summer")),
    Question("Please name one fruit that is yellow and that monkeys like to eat.", ("fruit", "yellow")),
    Question("Who was the famous writer who wrote the play called Hamlet?", ("writer", "hamlet")),
)


def missing_key_words(transcript: str, key_words: Sequence[str]) -> list[str]:
    """The key words (whole words, any listed spelling, case-insensitive) not in ``transcript``."""
    words = set(re.findall(r"[a-z0-9']+", transcript.lower()))
    return [kw for kw in key_words if not any(alt in words for alt in kw.lower().split("/"))]


@dataclass(frozen=True)
class SpokenQuestion:
    """A question as audio: the WAV's samples and where its voice ends."""

    index: int  # 1-based, in speaking order
    question: Question
    samples: np.ndarray  # float32 mono, as read back from the WAV
    sample_rate: int
    last_voiced_s: float  # just after the last sample above ENERGY_THRESHOLD
    inputs: str = "short ×1"  # its question set and Piper speaking rate (see benchmarks.pipeline_levers)

    @property
    def duration_s(self) -> float:
        """Length of the WAV (Piper's own leading and trailing silence included)."""
        return len(self.samples) / self.sample_rate


def synthesize_questions(
    questions: Sequence[Question],
    directory: Path,
    *,
    length_scale: float = 1.0,
    inputs: str = "short",
    first_index: int = 1,
) -> list[SpokenQuestion]:
    """Render each question with the bundled Piper voice, write it as 16-bit WAV, read it back.

    ``length_scale`` is Piper's speaking rate (above 1: slower).  Questions are numbered from
    ``first_index``.  Blocking (Piper runs on the CPU).  The voice object is the one the app's
    Piper TTS uses (loaded once per process), so this costs no extra model memory.
    """
    from piper import SynthesisConfig

    from voice.tts import bundled_voice_path, load_voice

    voice = load_voice(bundled_voice_path())
    # Noise off: deterministic, the same text gives the same audio.
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale)
    label = input_label(inputs, length_scale)
    spoken: list[SpokenQuestion] = []
    for index, question in enumerate(questions, first_index):
        chunks = list(voice.synthesize(question.text, config))
        if not chunks:
            raise RuntimeError(f"Piper produced no audio for {question.text!r}")
        audio = np.concatenate([c.audio_float_array for c in chunks])
        samples, rate = _through_wav(directory / f"question-{index}.wav", audio, chunks[0].sample_rate)
        loud = np.flatnonzero(np.abs(samples) > ENERGY_THRESHOLD)
        if not loud.size:
            raise RuntimeError(f"Piper's audio for {question.text!r} is silent")
        spoken.append(SpokenQuestion(index, question, samples, rate, (int(loud[-1]) + 1) / rate, label))
    return spoken


def family_questions(
    questions: Sequence[Question], directory: Path, voice: VoiceFamily, *, inputs: str, first_index: int
) -> list[SpokenQuestion]:
    """Each question spoken by a voice family of :mod:`benchmarks.voice_families` (an espeak-ng
    voice, a sox pitch or tempo change, noise), with :data:`FAMILY_PAD_S` of lead-in, as a WAV
    read back.  Its voice ends where the family's clean speech ends: in noise, no energy threshold
    can find it."""
    spoken: list[SpokenQuestion] = []
    for index, question in enumerate(questions, first_index):
        audio = voice_families.render(question.text, voice, pad_s=FAMILY_PAD_S)
        samples, rate = _through_wav(directory / f"question-{index}.wav", audio, SAMPLE_RATE)
        end_s = FAMILY_PAD_S + len(voice_families.speech(question.text, voice)) / SAMPLE_RATE
        spoken.append(SpokenQuestion(index, question, samples, rate, end_s, f"{inputs} {voice.name}"))
    return spoken


def _through_wav(path: Path, audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """``audio`` written as 16-bit WAV and read back: what the session is fed is what a file holds."""
    write_wav(path, audio, rate)
    return read_wav(path)


def spoken_inputs(config: BenchConfig, directory: Path) -> list[SpokenQuestion]:
    """Every question the run asks: per question set of ``--inputs`` and voice family of
    ``--voices`` (else Piper rate of ``--question-rates``), the first ``--questions`` of the set,
    numbered through."""
    spoken: list[SpokenQuestion] = []
    for inputs in config.inputs:
        bank = QUESTIONS if inputs == "short" else HARD_QUESTIONS
        for name in config.voices:
            spoken += family_questions(
                bank[: config.questions],
                directory,
                voice_families.family(name),
                inputs=inputs,
                first_index=len(spoken) + 1,
            )
        for rate in () if config.voices else config.question_rates:
            spoken += synthesize_questions(
                bank[: config.questions], directory, length_scale=rate, inputs=inputs, first_index=len(spoken) + 1
            )
    return spoken
