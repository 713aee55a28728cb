"""The labelled turn-taking set, generated at run time in many voices, with pauses we place.

Nothing recorded is committed.  Every item of a text set (:mod:`benchmarks.turn_taking_texts`)
is built in every chosen voice family (:mod:`benchmarks.voice_families`: Piper at several
settings, espeak-ng voices, sox pitch and tempo, pink noise): each part of the speech is
rendered on its own and the parts are joined with silences of known length, so any voice can
speak any item; a noise family's noise is laid over the whole item, pauses included.

A hesitation spoken this way ends its unfinished part with a sentence's final fall (the
robotic hard case issue #13's probe found: class ``hesitation_final``).  Where the voice is
Piper's (Piper families, and the sox and noise families built on one), each hesitation is
also built cut from the whole sentence spoken at once (class ``hesitation``): Piper's phoneme
alignments say where the words end, and the unfinished part keeps the prosody of a phrase that
goes on, as a person pausing mid-sentence sounds.

Each item knows where every part of the speech ends, so a detector's decision can be scored: a
turn ended inside one of the item's own pauses is a false cut; the end of the last part is the
true end of speech.
"""

from __future__ import annotations

import functools
import itertools
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from benchmarks.turn_taking_texts import (
    FILLER_PAUSES_S,
    HESITATION_PAUSES_S,
    READING_CLAUSE_PAUSES_S,
    READING_SENTENCE_PAUSES_S,
    TEXT_SETS,
    TWO_SENTENCE_PAUSE_S,
    TextSet,
)
from benchmarks.voice_families import VoiceFamily, add_noise, piper_config, speech, transform, trimmed_speech
from voice.audio import SAMPLE_RATE

LEAD_IN_S = 0.5
TAIL_S = 2.8  # longer than the longest wait (2.5 s), so every policy ends the last pause


@dataclass(frozen=True)
class Item:
    """One labelled utterance: 16 kHz audio with speech parts separated by known pauses.

    ``part_ends``: sample where each part's speech ends (its last loud sample + 1); every
    part but the last is followed by a pause that is *not* the end of the turn.
    """

    name: str
    kind: str
    family: str  # the voice family's name
    text_set: str  # "tuning" or "heldout"
    snr_db: float | None  # None: clean
    audio: np.ndarray
    part_ends: tuple[int, ...]
    pauses_s: tuple[float, ...]

    @property
    def true_end(self) -> int:
        """The true end of speech (sample)."""
        return self.part_ends[-1]

    @property
    def speech_s(self) -> float:
        """Seconds from the first part's start to the true end (pauses included)."""
        return (self.true_end - int(LEAD_IN_S * SAMPLE_RATE)) / SAMPLE_RATE


def can_cut_whole(voice: VoiceFamily) -> bool:
    """Whether ``voice`` can speak a sentence at once and be cut at its words (a Piper voice)."""
    return voice.root.kind == "piper"


@functools.lru_cache(maxsize=1)
def _aligned_piper() -> Any:
    """The bundled Piper voice with phoneme alignments (the model patched in memory; needs ``onnx``)."""
    from piper import PiperVoice

    from voice.tts import bundled_voice_path

    return PiperVoice.load(bundled_voice_path(), include_alignments=True)


@functools.lru_cache(maxsize=512)
def speech_in_parts(parts: tuple[str, ...], voice: VoiceFamily) -> tuple[np.ndarray, ...]:
    """The whole sentence ``" ".join(parts)`` spoken at once by ``voice`` (a Piper voice, then
    its sox effects), cut at the word boundaries between the parts (Piper's phoneme alignments
    say where).

    Each part but the last keeps the prosody of a phrase that goes on (no final fall, no
    final lengthening), which is what a speaker who pauses mid-sentence sounds like; the same
    part spoken alone (:func:`benchmarks.voice_families.speech`) ends like a finished sentence.
    """
    if not can_cut_whole(voice):
        raise ValueError(f"voice family {voice.name!r} is not a Piper voice: it cannot be cut at its words")
    return tuple(
        trimmed_speech(transform(piece, voice), f"{voice.name}: {part!r}")
        for piece, part in zip(_piper_pieces(parts, voice.root), parts, strict=True)
    )


@functools.lru_cache(maxsize=256)
def _piper_pieces(parts: tuple[str, ...], root: VoiceFamily) -> tuple[np.ndarray, ...]:
    """The parts cut from one Piper rendering of the whole sentence, 16 kHz, untrimmed (shared by
    every family built on the same Piper settings)."""
    text = " ".join(parts)
    chunks = list(_aligned_piper().synthesize(text, piper_config(root), include_alignments=True))
    if len(chunks) != 1 or not chunks[0].phoneme_alignments:
        raise RuntimeError(f"Piper gave no single aligned sentence for {text!r}")
    chunk = chunks[0]
    # Boundaries: the start and end (native samples) of each space phoneme, and of each comma.
    spaces, commas, position = [], [], 0
    for alignment in chunk.phoneme_alignments:
        span = (position, position + int(alignment.num_samples))
        if alignment.phoneme == " ":
            spaces.append(span)
        elif alignment.phoneme == ",":
            commas.append(span)
        position += int(alignment.num_samples)
    if len(spaces) == len(text.split()) - 1:  # one space per word boundary: cut after the part's last word
        ends = list(itertools.accumulate(len(part.split()) for part in parts[:-1]))
        cuts = [spaces[word - 1] for word in ends]
    elif all(part.endswith(",") for part in parts[:-1]) and len(commas) == text.count(","):
        # espeak joined some words ("of the" -> one word), but every part ends at a comma.
        cuts = [commas[count - 1] for count in itertools.accumulate(part.count(",") for part in parts[:-1])]
    else:
        raise RuntimeError(f"cannot find the part boundaries of {text!r} in Piper's phonemes")
    native = chunk.audio_float_array.astype(np.float32)
    pieces, start = [], 0
    for cut_start, cut_end in cuts:
        pieces.append(native[start:cut_start])
        start = cut_end
    pieces.append(native[start:])
    return tuple(np.asarray(soxr.resample(piece, chunk.sample_rate, SAMPLE_RATE), np.float32) for piece in pieces)


def build(
    voice: VoiceFamily,
    kind: str,
    name: str,
    parts: Sequence[str],
    pauses: Sequence[float],
    *,
    text_set: str = "tuning",
    whole: bool = False,
) -> Item:
    """Parts of speech by ``voice`` with ``pauses`` (seconds) between them, after a lead-in,
    before a tail, in ``voice``'s noise (if any) from start to end.

    ``whole``: each sentence (parts up to one ending in ".", "?" or "!") is spoken at once and
    cut into its parts (mid-sentence prosody; Piper voices only); otherwise each part is spoken
    on its own (each ends with a sentence's final intonation).
    """
    spoken: list[np.ndarray] = []
    sentence: list[str] = []
    for index, text in enumerate(parts):
        if not whole:
            spoken.append(speech(text, voice))
            continue
        sentence.append(text)
        if text.endswith((".", "?", "!")) or index == len(parts) - 1:
            spoken.extend(speech_in_parts(tuple(sentence), voice))
            sentence = []
    pieces = [np.zeros(int(LEAD_IN_S * SAMPLE_RATE), np.float32)]
    position = len(pieces[0])
    ends = []
    for index, part in enumerate(spoken):
        gap = int((pauses[index] if index < len(pauses) else TAIL_S) * SAMPLE_RATE)
        pieces += [part, np.zeros(gap, np.float32)]
        ends.append(position + len(part))
        position += len(part) + gap
    # A different stretch of the (fixed) noise for each item, the same every run.
    offset = zlib.crc32(f"{text_set}/{name}".encode()) % (30 * SAMPLE_RATE)
    audio = add_noise(np.concatenate(pieces), voice, offset)
    return Item(f"{name} ({voice.name})", kind, voice.name, text_set, voice.snr_db, audio, tuple(ends), tuple(pauses))


def family_items(
    voice: VoiceFamily,
    text_set: str,
    classes: Sequence[str],
    hesitation_pauses: Sequence[float] = HESITATION_PAUSES_S,
) -> Iterator[Item]:
    """Every item of the text set ``text_set`` whose class is in ``classes``, spoken by ``voice``
    (the classes cut from a whole sentence only for a Piper voice)."""
    texts: TextSet = TEXT_SETS[text_set]
    whole = can_cut_whole(voice)
    if "complete" in classes:
        for text in texts.complete:
            yield build(voice, "complete", text, [text], [], text_set=text_set)
    for kind, phrases, pauses_s in (
        ("hesitation", texts.hesitations, hesitation_pauses),
        ("filler", texts.fillers, FILLER_PAUSES_S),
    ):
        for first, rest in phrases:
            for pause in pauses_s:
                name = f"{first} [{pause:g}s] {rest}"
                if whole and kind in classes:
                    yield build(voice, kind, name, [first, rest], [pause], whole=True, text_set=text_set)
                if f"{kind}_final" in classes:
                    yield build(voice, f"{kind}_final", f"{name} (alone)", [first, rest], [pause], text_set=text_set)
    if "two_sentences" in classes:
        for first, rest in texts.two_sentences:
            yield build(
                voice, "two_sentences", f"{first} {rest}", [first, rest], [TWO_SENTENCE_PAUSE_S], text_set=text_set
            )
    # Read as a person reads (each sentence at once, its clauses cut apart) where the voice can
    # be cut, line by line where it cannot (one reading per voice: each costs ~30 s of compute).
    pauses = []
    for index, line in enumerate(texts.reading[:-1]):
        table = READING_CLAUSE_PAUSES_S if line.endswith(",") else READING_SENTENCE_PAUSES_S
        pauses.append(table[index % len(table)])
    if whole and "reading" in classes:
        yield build(voice, "reading", "passage", list(texts.reading), pauses, whole=True, text_set=text_set)
    if "reading_final" in classes and not (whole and "reading" in classes):
        yield build(voice, "reading_final", "passage (lines alone)", list(texts.reading), pauses, text_set=text_set)


def labelled_set(
    plan: Sequence[tuple[VoiceFamily, str]],
    classes: Sequence[str],
    hesitation_pauses: Sequence[float] = HESITATION_PAUSES_S,
    limit: int | None = None,
) -> Iterator[Item]:
    """The items of each (voice, text set) of ``plan`` (the first ``limit`` of each), one at a
    time (renderings stay cached, the items' audio does not)."""
    for voice, text_set in plan:
        yield from itertools.islice(family_items(voice, text_set, classes, hesitation_pauses), limit)
