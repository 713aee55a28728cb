"""The labelled turn-taking set, generated at run time: Piper speech, pauses we place, sox noise.

Nothing recorded is committed.  Every item is built from text with the bundled Piper voice
(deterministic: noise scales 0) at several speaking rates (Piper's ``length_scale``), with
silences of known length between its parts, then mixed with steady pink noise that sox
synthesizes, at a given signal-to-noise ratio.  Each hesitation is built twice: cut from the
whole sentence spoken at once (the unfinished part keeps the prosody of a phrase that goes
on, as a person pausing mid-sentence sounds) and with the unfinished part spoken alone (it
ends with a sentence's final fall: the robotic hard case the issue's probe found).  Each
item knows where every part of the speech ends, so a detector's decision can be scored: a
turn ended inside one of the item's own pauses is a false cut; the end of the last part is
the true end of speech.
"""

from __future__ import annotations

import functools
import itertools
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from voice.audio import SAMPLE_RATE

ENERGY_THRESHOLD = 0.01  # about -40 dBFS: where Piper's speech starts and ends
LEAD_IN_S = 0.5
TAIL_S = 3.5  # longer than any wait swept, so every detector ends the last pause


@dataclass(frozen=True)
class TextSet:
    """The words of one labelled set: what is said, and where the speaker pauses."""

    complete: tuple[str, ...]
    # (unfinished first part, the rest): the pause between them is the hesitation.
    hesitations: tuple[tuple[str, str], ...]
    fillers: tuple[tuple[str, str], ...]
    two_sentences: tuple[tuple[str, str], ...]
    # Lines of one passage read aloud; a line ending in "," is a clause of a longer sentence.
    reading: tuple[str, ...]


# The set the detectors' defaults were chosen on.
TUNING = TextSet(
    complete=(
        "What is the capital of France?",
        "Tell me a joke about the weather.",
        "How far away is the moon?",
        "Can you recommend a good book?",
        "What time does the sun set today?",
        "Turn off the lights in the kitchen.",
        "Why is the sky blue?",
        "Set a timer for ten minutes.",
    ),
    hesitations=(
        ("What is the capital of", "France?"),
        ("I would like to book a table for", "two people tonight."),
        ("Can you tell me how to get to", "the train station?"),
        ("My favourite colour is", "dark green."),
        ("Remind me to call my", "sister tomorrow."),
    ),
    fillers=(
        ("What is the capital of, um,", "France?"),
        ("I need, uh,", "a recipe for pancakes."),
        ("Could you, um,", "play some music?"),
        ("So, uh,", "what should I cook tonight?"),
    ),
    two_sentences=(
        ("I am planning a trip.", "What should I pack for Iceland?"),
        ("My printer is broken.", "How do I fix a paper jam?"),
        ("I just moved to Berlin.", "Where can I learn German?"),
        ("Let us play a game.", "Think of a number between one and ten."),
    ),
    reading=(
        "The old lighthouse stood at the edge of the cliff,",
        "its white paint worn thin by a hundred winters.",
        "Every evening the keeper climbed the narrow stairs,",
        "lit the great lamp,",
        "and watched the ships pass far below.",
        "Some nights the fog rolled in so thick",
        "that he could not see his own hands.",
        "On those nights he rang the bell,",
        "slow and steady,",
        "until the morning light returned.",
        "He kept a journal of every ship he saw,",
        "their names,",
        "their flags,",
        "and the weather they sailed through.",
        "Years later,",
        "when the lamp was replaced by a machine,",
        "the journal was found in a drawer,",
        "and it told the story of the whole coast.",
    ),
)
# Written before any rule was tuned and never used to choose one: other sentences, other
# unfinished endings (verbs and nouns as well as the function words the text rule knows),
# other fillers, another passage.  A rule that only holds on TUNING shows it here.  (Each
# sentence must be one Piper can be cut at its parts: espeak joins some word pairs.)
HELDOUT = TextSet(
    complete=(
        "Is it going to rain this weekend?",
        "Play some relaxing jazz.",
        "How many ounces are in a cup?",
        "Who wrote the novel Pride and Prejudice?",
        "Add eggs and butter to my shopping list.",
        "What is the difference between a virus and a bacterium?",
        "Thanks, that was really helpful.",
        "Where is the nearest pharmacy?",
    ),
    hesitations=(
        ("I want to visit", "my grandmother next week."),
        ("How many people live in", "Tokyo?"),
        ("Send a text to", "my boss saying I will be late."),
        ("The thing I keep forgetting is", "where I parked the car."),
        ("Could you explain how a rainbow", "forms after the rain?"),
    ),
    fillers=(
        ("Tell me, er,", "something interesting about octopuses."),
        ("I was wondering, um,", "whether penguins can fly."),
        ("Can you, uh,", "turn the volume down?"),
        ("Well, um,", "how do I cook rice?"),
    ),
    two_sentences=(
        ("My phone battery dies quickly.", "How can I make it last longer?"),
        ("I have a job interview tomorrow.", "Can you give me some tips?"),
        ("It is my friend's birthday.", "What should I buy her?"),
        ("I am learning to play chess.", "Which opening should I learn first?"),
    ),
    reading=(
        "The river began as a thin stream high in the mountains,",
        "fed by snow that melted every spring.",
        "It wound through forests of pine,",
        "past villages where children played on its banks,",
        "and slowly grew wider and deeper.",
        "By the time it reached the plains",
        "it carried boats loaded with grain and timber.",
        "Farmers built their fields along its course,",
        "and towns grew where it could be crossed.",
        "In dry summers the water sank so low",
        "that old stones appeared in its bed,",
        "each one carved by hands long gone.",
        "At last,",
        "after hundreds of miles,",
        "it spread into a wide delta",
        "and met the sea.",
    ),
)
TEXT_SETS = {"tuning": TUNING, "heldout": HELDOUT}
HESITATION_PAUSES_S = (0.3, 0.6, 0.9, 1.2)
FILLER_PAUSES_S = (0.6, 0.9)
TWO_SENTENCE_PAUSE_S = 0.5
# Pauses a reader makes: after a comma-ending line, after a full stop (cycled through).
READING_CLAUSE_PAUSES_S = (0.35, 0.5, 0.7)
READING_SENTENCE_PAUSES_S = (0.6, 0.9, 1.1)

CLASSES = (
    "complete",
    "hesitation",
    "hesitation_final",
    "filler",
    "filler_final",
    "two_sentences",
    "reading",
    "reading_final",
)
CLASS_LABELS = {
    "complete": "complete questions",
    "hesitation": "unfinished phrase + pause (cut from the whole sentence)",
    "hesitation_final": "unfinished phrase + pause (phrase said alone: final intonation)",
    "filler": "filler (um/uh) + pause (cut from the whole sentence)",
    "filler_final": "filler (um/uh) + pause (phrase said alone: final intonation)",
    "two_sentences": "two sentences",
    "reading": "long reading (sentences cut at their clauses)",
    "reading_final": "long reading (each line said alone)",
}
# The target class: a speaker who pauses mid-sentence, however the pause was voiced.
HESITATION_CLASSES = ("hesitation", "hesitation_final", "filler", "filler_final")


@dataclass(frozen=True)
class Item:
    """One labelled utterance: 16 kHz audio with speech parts separated by known pauses.

    ``part_ends``: sample where each part's speech ends (its last loud sample + 1); every
    part but the last is followed by a pause that is *not* the end of the turn.
    """

    name: str
    kind: str
    rate: float  # Piper length_scale (1.0 normal, > 1 slower)
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


class Piper:
    """The bundled Piper voice, rendering trimmed 16 kHz speech at a given speaking rate."""

    def __init__(self) -> None:
        from voice.tts_piper import bundled_voice_path, load_voice

        self._voice = load_voice(bundled_voice_path())
        self._aligned: Any = None  # the same voice with phoneme alignments, loaded on first use

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one Piper per run; the cache dies with it
    def speech(self, text: str, rate: float) -> np.ndarray:
        """``text`` spoken at ``rate`` (length_scale), without leading or trailing silence."""
        from piper import SynthesisConfig

        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=rate)
        chunks = list(self._voice.synthesize(text, config))
        if not chunks:
            raise RuntimeError(f"Piper produced no audio for {text!r}")
        native = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return _trimmed(soxr.resample(native, chunks[0].sample_rate, SAMPLE_RATE), text)

    @functools.lru_cache(maxsize=512)  # noqa: B019 - as above
    def speech_in_parts(self, parts: tuple[str, ...], rate: float) -> tuple[np.ndarray, ...]:
        """The whole sentence ``" ".join(parts)`` spoken at once, cut at the word boundaries
        between the parts (Piper's phoneme alignments say where).

        Each part but the last keeps the prosody of a phrase that goes on (no final fall, no
        final lengthening), which is what a speaker who pauses mid-sentence sounds like; the
        same part synthesized alone (:meth:`speech`) ends like a finished sentence.
        """
        from piper import PiperVoice, SynthesisConfig

        if self._aligned is None:  # the model patched in memory for alignments (needs ``onnx``)
            from voice.tts_piper import bundled_voice_path

            self._aligned = PiperVoice.load(bundled_voice_path(), include_alignments=True)
        text = " ".join(parts)
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=rate)
        chunks = list(self._aligned.synthesize(text, config, include_alignments=True))
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
        rate_in = chunk.sample_rate
        return tuple(
            _trimmed(soxr.resample(piece, rate_in, SAMPLE_RATE), part)
            for piece, part in zip(pieces, parts, strict=True)
        )


def _trimmed(audio: np.ndarray, text: str) -> np.ndarray:
    """``audio`` (16 kHz) from its first to its last sample above the energy threshold."""
    audio = np.asarray(audio, dtype=np.float32)
    loud = np.flatnonzero(np.abs(audio) > ENERGY_THRESHOLD)
    if not loud.size:
        raise RuntimeError(f"Piper's audio for {text!r} is silent")
    return audio[loud[0] : loud[-1] + 1]


def pink_noise(seconds: float, directory: Path) -> np.ndarray:
    """Steady pink noise from sox (``synth pinknoise``), 16 kHz mono, unit RMS; the same every run
    (``-R``: sox seeds its generator), so two runs hear the same noise."""
    path = directory / "noise.wav"
    output = ["-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path)]
    subprocess.run(
        ["sox", "-R", "-n", *output, "synth", f"{seconds:.1f}", "pinknoise"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with wave.open(str(path), "rb") as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    return data / float(np.sqrt(np.mean(data**2)))


def build(
    piper: Piper,
    kind: str,
    name: str,
    rate: float,
    parts: Sequence[str],
    pauses: Sequence[float],
    *,
    whole: bool = False,
) -> Item:
    """Parts of speech with ``pauses`` (seconds) between them, after a lead-in, before a tail.

    ``whole``: each sentence (parts up to one ending in ".", "?" or "!") is spoken at once and
    cut into its parts (mid-sentence prosody); otherwise each part is spoken on its own (each
    ends with a sentence's final intonation).
    """
    pieces = [np.zeros(int(LEAD_IN_S * SAMPLE_RATE), np.float32)]
    ends = []
    position = len(pieces[0])
    spoken: list[np.ndarray] = []
    sentence: list[str] = []
    for index, text in enumerate(parts):
        if not whole:
            spoken.append(piper.speech(text, rate))
            continue
        sentence.append(text)
        if text.endswith((".", "?", "!")) or index == len(parts) - 1:
            spoken.extend(piper.speech_in_parts(tuple(sentence), rate))
            sentence = []
    for index, speech in enumerate(spoken):
        pieces.append(speech)
        position += len(speech)
        ends.append(position)
        gap = pauses[index] if index < len(pauses) else TAIL_S
        pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
        position += int(gap * SAMPLE_RATE)
    return Item(name, kind, rate, None, np.concatenate(pieces), tuple(ends), tuple(pauses))


def with_noise(item: Item, noise: np.ndarray, snr_db: float, offset: int) -> Item:
    """``item`` in steady noise at ``snr_db`` (speech RMS over its voiced parts vs noise RMS)."""
    voiced = item.audio[np.abs(item.audio) > ENERGY_THRESHOLD]
    speech_rms = float(np.sqrt(np.mean(voiced**2)))
    noise_rms = speech_rms / (10 ** (snr_db / 20))
    start = offset % max(len(noise) - len(item.audio), 1)
    mixed = item.audio + noise[start : start + len(item.audio)] * noise_rms
    return Item(
        f"{item.name} @{snr_db:g}dB",
        item.kind,
        item.rate,
        snr_db,
        np.clip(mixed, -1.0, 1.0).astype(np.float32),
        item.part_ends,
        item.pauses_s,
    )


def clean_items(piper: Piper, rates: Sequence[float], texts: TextSet = TUNING) -> Iterator[Item]:
    """Every class of ``texts`` at every speaking rate, without noise."""
    for rate in rates:
        for text in texts.complete:
            yield build(piper, "complete", text, rate, [text], [])
        for kind, phrases, pauses_s in (
            ("hesitation", texts.hesitations, HESITATION_PAUSES_S),
            ("filler", texts.fillers, FILLER_PAUSES_S),
        ):
            for first, rest in phrases:
                for pause in pauses_s:
                    name = f"{first} [{pause:g}s] {rest}"
                    yield build(piper, kind, name, rate, [first, rest], [pause], whole=True)
                    yield build(piper, f"{kind}_final", f"{name} (alone)", rate, [first, rest], [pause])
        for first, rest in texts.two_sentences:
            yield build(piper, "two_sentences", f"{first} {rest}", rate, [first, rest], [TWO_SENTENCE_PAUSE_S])
    # The reading is long: one rate (the voice's own) keeps the run short.  Read as a person
    # reads (each sentence at once, its clauses cut apart) and line by line (each line alone).
    pauses = []
    for index, line in enumerate(texts.reading[:-1]):
        table = READING_CLAUSE_PAUSES_S if line.endswith(",") else READING_SENTENCE_PAUSES_S
        pauses.append(table[index % len(table)])
    yield build(piper, "reading", "passage", 1.0, list(texts.reading), pauses, whole=True)
    yield build(piper, "reading_final", "passage (lines alone)", 1.0, list(texts.reading), pauses)


def labelled_set(rates: Sequence[float], snrs: Sequence[float], texts: TextSet = TUNING) -> list[Item]:
    """The whole set of ``texts``: clean items, then each again at every SNR in ``snrs`` (dB)."""
    piper = Piper()
    clean = list(clean_items(piper, rates, texts))
    longest = max(len(item.audio) for item in clean)
    with tempfile.TemporaryDirectory(prefix="warmvoice-turns-") as tmp:
        noise = pink_noise(longest / SAMPLE_RATE + 30, Path(tmp))
    items = list(clean)
    for snr in snrs:
        items.extend(with_noise(item, noise, snr, index * 7919) for index, item in enumerate(clean))
    return items
