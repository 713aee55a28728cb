"""voice.turns.endpointing with the real Silero model on speech synthesized at test time (tests/speech.py)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from tests.speech import Speech, chunks, first_loud_sample, last_loud_sample, resample, silence, synthesize, trimmed
from voice.audio import SAMPLE_RATE, StreamingConverter
from voice.turns.endpointing import FRAME, Endpointer, Event, SpeechStarted, TurnEnded, vad_session

QUESTION = "What is the capital of France?"
STATEMENT = "Tell me a joke about the weather."
TOLERANCE_S = 0.100
FRAME_S = FRAME / SAMPLE_RATE


def run(ep: Endpointer, audio_16k: np.ndarray, chunk: int = 512) -> list[Event]:
    """Feed 16 kHz audio in fixed-size chunks; all events in order."""
    events: list[Event] = []
    for part in chunks(audio_16k, chunk):
        events.extend(ep.feed(part))
    return events


def turns(events: list[Event]) -> list[TurnEnded]:
    return [e for e in events if isinstance(e, TurnEnded)]


def starts(events: list[Event]) -> list[SpeechStarted]:
    return [e for e in events if isinstance(e, SpeechStarted)]


@pytest.fixture(scope="module")
def question() -> Speech:
    return synthesize(QUESTION)


@pytest.fixture(scope="module")
def statement() -> Speech:
    return synthesize(STATEMENT)


# -- where the end of speech is ---------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 48000, 8000])
@pytest.mark.parametrize("chunk", [160, 512, 4800])
def test_end_of_speech_found_within_100ms_across_rates_and_chunk_sizes(question: Speech, rate: int, chunk: int) -> None:
    # The speech as the microphone would deliver it at `rate`, after a lead-in whose
    # length is not a multiple of the 32 ms frame (so frame boundaries fall anywhere).
    spoken = question.at(rate)
    lead_s = 0.6 + chunk / 100_000
    mic = np.concatenate([silence(lead_s, rate), spoken, silence(1.5, rate)])
    true_start_s = lead_s + first_loud_sample(spoken) / rate
    true_end_s = lead_s + (last_loud_sample(spoken) + 1) / rate

    conv = StreamingConverter(rate)
    ep = Endpointer(silence_ms=500)
    events: list[Event] = []
    for part in chunks(mic, chunk):
        events.extend(ep.feed(conv.process(part).audio))

    assert [type(e) for e in events] == [SpeechStarted, TurnEnded]
    started, ended = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, TurnEnded)
    assert started.start_sample / SAMPLE_RATE == pytest.approx(true_start_s, abs=TOLERANCE_S)
    assert ended.speech_end_sample / SAMPLE_RATE == pytest.approx(true_end_s, abs=TOLERANCE_S)
    assert not ended.capped
    assert ended.start_sample == started.start_sample
    # The utterance covers the whole of the speech plus the pre-roll before it.
    assert ended.audio_start_sample <= started.start_sample - 0.3 * SAMPLE_RATE + 1
    assert ended.audio_start_sample / SAMPLE_RATE < true_start_s
    assert (ended.audio_start_sample + len(ended.audio)) / SAMPLE_RATE > true_end_s
    assert ep.samples_seen <= round(len(mic) * SAMPLE_RATE / rate)


@pytest.mark.parametrize("silence_ms", [300, 500, 800])
def test_turn_fires_after_silence_ms_of_silence(statement: Speech, silence_ms: int) -> None:
    audio = np.concatenate([silence(0.5, SAMPLE_RATE), statement.at(SAMPLE_RATE), silence(2.0, SAMPLE_RATE)])
    ep = Endpointer(silence_ms=silence_ms)
    ended = turns(run(ep, audio, chunk=160))

    assert len(ended) == 1
    waited_s = (ended[0].fired_sample - ended[0].speech_end_sample) / SAMPLE_RATE
    assert silence_ms / 1000 <= waited_s <= silence_ms / 1000 + 2 * FRAME_S
    assert ended[0].silence_waited_ms == pytest.approx(waited_s * 1000)


def test_caller_can_map_the_end_of_speech_to_its_own_clock(question: Speech) -> None:
    # The session knows only when the latest chunk arrived; samples_seen tells it how
    # far behind that the end of speech lies.
    audio = np.concatenate([silence(0.4, SAMPLE_RATE), question.at(SAMPLE_RATE), silence(1.5, SAMPLE_RATE)])
    ep = Endpointer()
    fed = 0
    for part in chunks(audio, 320):
        fed += len(part)
        found = turns(ep.feed(part))
        if found:
            behind = ep.samples_seen - found[0].speech_end_sample
            assert ep.samples_seen == fed
            assert behind == fed - found[0].speech_end_sample
            assert 0.5 <= behind / SAMPLE_RATE <= 0.5 + 2 * FRAME_S + 320 / SAMPLE_RATE
            return
    pytest.fail("no TurnEnded")


# -- what must not end (or start) a turn ------------------------------------------------


def test_pure_silence_produces_nothing() -> None:
    ep = Endpointer()
    assert run(ep, silence(5.0, SAMPLE_RATE), chunk=4800) == []
    assert not ep.is_speaking
    assert ep.speech_probability < 0.5


@pytest.mark.parametrize(("kind", "level"), [("white", 0.02), ("white", 0.5), ("brown", 0.8), ("hum", 0.8)])
def test_noise_produces_no_turn(kind: str, level: float) -> None:
    rng = np.random.default_rng(7)
    n = 6 * SAMPLE_RATE
    if kind == "white":
        noise = rng.standard_normal(n) * level
    elif kind == "brown":
        walk = np.cumsum(rng.standard_normal(n))
        walk -= np.convolve(walk, np.ones(400) / 400, mode="same")  # keep it from drifting off
        noise = walk / np.abs(walk).max() * level
    else:  # mains hum with harmonics, like a cheap mic on a laptop charger
        t = np.arange(n) / SAMPLE_RATE
        noise = level * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 6)) / 2.3
    noise = np.clip(noise, -1, 1).astype(np.float32)

    ep = Endpointer()
    events = run(ep, np.concatenate([noise, silence(1.0, SAMPLE_RATE)]), chunk=4800)
    assert turns(events) == []
    assert starts(events) == []


def test_pause_shorter_than_silence_ms_does_not_end_the_turn(question: Speech, statement: Speech) -> None:
    first, second = trimmed(question), trimmed(statement)
    first_16k = resample(first, question.sample_rate, SAMPLE_RATE)
    second_16k = resample(second, statement.sample_rate, SAMPLE_RATE)

    def speak(pause_s: float) -> tuple[list[TurnEnded], float]:
        audio = np.concatenate(
            [silence(0.5, SAMPLE_RATE), first_16k, silence(pause_s, SAMPLE_RATE), second_16k, silence(1.5, SAMPLE_RATE)]
        )
        end_s = (0.5 * SAMPLE_RATE + len(first_16k) + round(pause_s * SAMPLE_RATE) + len(second_16k)) / SAMPLE_RATE
        return turns(run(Endpointer(silence_ms=500), audio, chunk=512)), end_s

    one, end_s = speak(0.25)
    assert len(one) == 1
    assert one[0].speech_end_sample / SAMPLE_RATE == pytest.approx(end_s, abs=TOLERANCE_S)
    # Both sentences are in the one utterance.
    assert len(one[0].audio) / SAMPLE_RATE > (len(first_16k) + len(second_16k)) / SAMPLE_RATE

    two, _ = speak(1.0)  # the same speech with a pause longer than silence_ms is two turns
    assert len(two) == 2


def test_a_short_click_is_not_speech(question: Speech) -> None:
    # 64 ms of speech (a lip smack, a word fragment) is below min_speech_ms.
    blip = resample(trimmed(question), question.sample_rate, SAMPLE_RATE)[: int(0.064 * SAMPLE_RATE)]
    audio = np.concatenate([silence(0.5, SAMPLE_RATE), blip, silence(1.5, SAMPLE_RATE)])
    assert run(Endpointer(min_speech_ms=200), audio) == []


# -- bounded memory ---------------------------------------------------------------------


def _continuous_speech(seconds: float) -> np.ndarray:
    """Sentences back to back with 80 ms gaps: speech with no pause a turn could end in."""
    texts = [QUESTION, STATEMENT, "Hello there, how are you doing today?", "Please read me the news."]
    parts: list[np.ndarray] = []
    total, i = 0, 0
    while total < seconds * SAMPLE_RATE:
        sp = synthesize(texts[i % len(texts)])
        parts += [resample(trimmed(sp), sp.sample_rate, SAMPLE_RATE), silence(0.08, SAMPLE_RATE)]
        total += len(parts[-2]) + len(parts[-1])
        i += 1
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]


def test_long_turn_is_capped_and_memory_stays_bounded() -> None:
    ep = Endpointer(max_turn_s=3.0, pre_roll_ms=300)
    bound = int((3.0 + 0.3) * SAMPLE_RATE) + 2 * FRAME
    speech = _continuous_speech(5.0)
    events: list[Event] = []
    peak = 0
    for part in chunks(np.concatenate([speech, silence(1.5, SAMPLE_RATE)]), 1600):
        events.extend(ep.feed(part))
        peak = max(peak, ep.buffered_samples)

    ended = turns(events)
    assert ended[0].capped
    assert (ended[0].fired_sample - ended[0].start_sample) / SAMPLE_RATE == pytest.approx(3.0, abs=FRAME_S)
    assert len(ended[0].audio) <= bound
    # The rest of the speech is a second, normal turn; nothing lost in between.
    assert len(ended) == 2 and not ended[1].capped
    assert ended[1].start_sample >= ended[0].fired_sample
    assert peak <= bound


def test_ten_minutes_of_talk_stays_bounded() -> None:
    # A stuck-open microphone: continuous speech far longer than max_turn_s.
    ep = Endpointer(max_turn_s=2.0, pre_roll_ms=300)
    bound = int((2.0 + 0.3) * SAMPLE_RATE) + 2 * FRAME
    speech = _continuous_speech(6.0)
    capped, peak = 0, 0
    for _ in range(5):  # 30 s is plenty to show the bound holds turn after turn
        for part in chunks(speech, 4800):
            capped += sum(1 for e in turns(ep.feed(part)) if e.capped)
            peak = max(peak, ep.buffered_samples)
    assert capped >= 10
    assert peak <= bound


# -- barge-in view, partial utterance, state --------------------------------------------


def test_is_speaking_soon_after_speech_starts(question: Speech) -> None:
    spoken = question.at(SAMPLE_RATE)
    audio = np.concatenate([silence(0.5, SAMPLE_RATE), spoken, silence(1.5, SAMPLE_RATE)])
    onset_s = 0.5 + first_loud_sample(spoken) / SAMPLE_RATE
    ep = Endpointer(min_speech_ms=200)
    speaking_at: float | None = None
    probs: list[float] = []
    partial_lengths: list[int] = []
    for part in chunks(audio, 160):  # 10 ms, like a real-time microphone
        ep.feed(part)
        probs.append(ep.speech_probability)
        if ep.is_speaking:
            if speaking_at is None:
                speaking_at = ep.samples_seen / SAMPLE_RATE
            partial_lengths.append(len(ep.current_utterance()))

    assert speaking_at is not None
    # Known within ~min_speech_ms of the voice starting, not at the end of the turn.
    assert onset_s + 0.2 - TOLERANCE_S <= speaking_at <= onset_s + 0.2 + TOLERANCE_S
    assert max(probs) > 0.9
    # The ongoing turn's audio can be read while the user still talks, and it grows.
    assert partial_lengths[0] > 0
    assert partial_lengths[-1] > partial_lengths[0]
    assert partial_lengths == sorted(partial_lengths)
    assert not ep.is_speaking  # the turn ended in the trailing silence
    assert len(ep.current_utterance()) == 0


def test_zero_length_chunks_and_sample_count() -> None:
    ep = Endpointer()
    assert ep.feed(np.zeros(0, dtype=np.float32)) == []
    assert ep.samples_seen == 0
    ep.feed(np.zeros(700, dtype=np.float32))
    ep.feed(np.zeros(0, dtype=np.float32))
    assert ep.samples_seen == 700
    with pytest.raises(ValueError):
        ep.feed(np.zeros((10, 2), dtype=np.float32))


def test_reset_gives_identical_results(question: Speech) -> None:
    audio = np.concatenate([silence(0.3, SAMPLE_RATE), question.at(SAMPLE_RATE), silence(1.0, SAMPLE_RATE)])
    ep = Endpointer()
    first = turns(run(ep, audio))
    ep.reset()
    assert ep.samples_seen == 0 and ep.buffered_samples == 0
    second = turns(run(ep, audio))
    assert len(first) == len(second) == 1
    assert first[0].speech_end_sample == second[0].speech_end_sample
    np.testing.assert_array_equal(first[0].audio, second[0].audio)


def test_session_is_shared_but_state_is_per_instance(question: Speech, statement: Speech) -> None:
    a_audio = np.concatenate([silence(0.3, SAMPLE_RATE), question.at(SAMPLE_RATE), silence(1.0, SAMPLE_RATE)])
    b_audio = np.concatenate([silence(1.0, SAMPLE_RATE), statement.at(SAMPLE_RATE), silence(1.0, SAMPLE_RATE)])
    n = max(len(a_audio), len(b_audio))
    a_audio = np.pad(a_audio, (0, n - len(a_audio)))
    b_audio = np.pad(b_audio, (0, n - len(b_audio)))
    alone_a = turns(run(Endpointer(), a_audio))
    alone_b = turns(run(Endpointer(), b_audio))

    a, b = Endpointer(), Endpointer()
    assert a._session is b._session is vad_session()
    interleaved_a: list[Event] = []
    interleaved_b: list[Event] = []
    for part_a, part_b in zip(chunks(a_audio, 512), chunks(b_audio, 512), strict=True):
        interleaved_a += a.feed(part_a)
        interleaved_b += b.feed(part_b)

    assert len(alone_a) == len(alone_b) == 1
    assert [t.speech_end_sample for t in turns(interleaved_a)] == [t.speech_end_sample for t in alone_a]
    assert [t.speech_end_sample for t in turns(interleaved_b)] == [t.speech_end_sample for t in alone_b]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        Endpointer(silence_ms=0)
    with pytest.raises(ValueError):
        Endpointer(threshold=1.5)
    with pytest.raises(ValueError):
        Endpointer(max_turn_s=0)
