"""benchmarks.turn_taking's scoring: how a replayed detector's decisions become cuts and delays.

The evidence is written by hand here (no audio, no models): the replay must count a turn
ended inside an item's own pause as a cut, measure the final delay from the labelled end of
speech, and let a signal count only once it would have been computed.
"""

from __future__ import annotations

from dataclasses import replace

from benchmarks.turn_taking import Evidence, Pause, ended_at, replay, reply_time, summarise, transcript_start
from benchmarks.turn_taking_data import SAMPLE_RATE
from voice.turn_policy import TurnPolicy

COMBINED = TurnPolicy("combined", min_silence_ms=200, hold_ms=1000, max_wait_ms=2500)
VAD = TurnPolicy("vad", silence_ms=500)


def pause(at_s: float, length_ms: float, text_complete: bool, probability: float, whisper_ms: float = 100) -> Pause:
    # The replay judges the transcript itself (with the current word list), not the stored verdict.
    text = "What is the capital of France?" if text_complete else "What is the capital of."
    return Pause(int(at_s * SAMPLE_RATE), length_ms, text, text_complete, probability, whisper_ms, 40.0)


def hesitation(first: Pause, name: str = "capital [x] France") -> Evidence:
    """A hesitation: the pause ``first`` 1.5 s in, then the true end at 3 s (both complete)."""
    return Evidence(
        name,
        "hesitation",
        1.0,
        None,
        true_end=3 * SAMPLE_RATE,
        internal_ends=(int(1.5 * SAMPLE_RATE),),
        speech_s=2.5,
        pauses=(first, pause(3.0, 3500, True, 0.9)),
    )


def test_silence_only_cuts_a_long_hesitation_and_the_combined_detector_does_not() -> None:
    unfinished = hesitation(pause(1.5, 900, False, 0.97))  # "What is the capital of [0.9 s] France?"
    assert replay(VAD, unfinished).cuts == 1
    outcome = replay(COMBINED, unfinished)
    assert outcome.cuts == 0
    # The final pause: both complete, but the text only exists 100 ms after Whisper started.
    assert outcome.delay_ms is not None and transcript_start(COMBINED) + 100 <= outcome.delay_ms < 400


def test_a_signal_counts_only_once_it_is_computed() -> None:
    slow = pause(1.0, 3500, True, 0.9, whisper_ms=700)
    assert ended_at(COMBINED, slow) is not None and ended_at(COMBINED, slow) >= transcript_start(COMBINED) + 700
    late_start = replace(COMBINED, transcript_after_ms=300)
    assert ended_at(late_start, slow) is not None and ended_at(late_start, slow) >= 300 + 700


def test_a_turn_nobody_ends_is_late_and_summaries_count_it() -> None:
    never = Evidence("x", "complete", 1.0, None, SAMPLE_RATE, (), 1.0, (pause(1.0, 100, True, 0.9),))
    outcome = replay(COMBINED, never)
    assert outcome.delay_ms is None
    rows = summarise({("combined", 1000): [(never, outcome)]})
    complete = next(r for r in rows if r["class"] == "complete")
    assert complete["late_rate"] == 1.0 and complete["median_ms"] is None


def test_instant_signals_bound_the_cuts_from_above() -> None:
    """A slow transcript can hide a cut (the voice came back before it answered); the replay
    with instant signals counts it, so that figure does not depend on the machine's load."""
    # Both signals wrongly say "complete" on the hesitation; Whisper needs 700 ms for it.
    slow_but_wrong = hesitation(pause(1.5, 600, True, 0.9, whisper_ms=700), "book a table for [0.6s] two")
    outcome = replay(COMBINED, slow_but_wrong)
    assert outcome.cuts == 0 and outcome.cuts_if_instant == 1
    rows = summarise({("combined", 1000): [(slow_but_wrong, outcome)]})
    row = next(r for r in rows if r["class"] == "hesitation")
    assert row["false_cut_rate"] == 0.0 and row["false_cut_rate_instant"] == 1.0


def test_a_hesitation_cut_from_the_whole_sentence_keeps_its_words_apart() -> None:
    """The set's mid-sentence hesitations: the parts are slices of one rendering of the whole
    sentence, in order, cut at the word boundary (Whisper hears each part's own words)."""
    from benchmarks.turn_taking_data import Piper
    from voice.transcribe import Transcriber

    first, rest = Piper().speech_in_parts(("Can you tell me how to get to", "the train station?"), 1.0)
    whole = Piper().speech("Can you tell me how to get to the train station?", 1.0)
    assert len(first) > 0 and len(rest) > 0 and len(first) + len(rest) <= len(whole)
    whisper = Transcriber("", "cpu", "int8", "en")
    assert "station" not in whisper.transcribe(first).text.lower()
    assert "station" in whisper.transcribe(rest).text.lower()


def test_the_last_pause_after_the_last_part_began_is_the_end_not_a_cut() -> None:
    """In noise the VAD may hear the last word end early (a soft final "s"): that pause is still
    the end of the turn; a pause the voice came back after is a cut wherever it lies."""
    early_end = Evidence(
        "capital [x] France @10dB",
        "hesitation",
        1.0,
        10.0,
        true_end=3 * SAMPLE_RATE,
        internal_ends=(int(1.5 * SAMPLE_RATE),),
        speech_s=2.5,
        pauses=(pause(1.5, 600, False, 0.1), pause(2.8, 3500, True, 0.9)),
        last_part_start=int(2.1 * SAMPLE_RATE),
    )
    outcome = replay(COMBINED, early_end)
    assert outcome.cuts == 0 and outcome.delay_ms is not None and outcome.delay_ms < 200
    inside_last_part = Evidence(
        **{**early_end.__dict__, "pauses": (pause(2.5, 400, True, 0.9), pause(3.0, 3500, True, 0.9))}
    )
    assert replay(COMBINED, inside_last_part).cuts == 1


def test_a_cut_is_heard_only_if_the_reply_plays_before_the_voice_comes_back() -> None:
    """The app carries a turn on when the user goes on before any reply was heard: a cut at 200 ms
    into a 600 ms pause is heard with a reply 300 ms after the decision, and is no cut with one
    500 ms after it (the turn then ends at its real end, as in the app)."""
    wrong = hesitation(pause(1.5, 600, True, 0.9), "book a table for [0.6s] two")
    fast = replay(COMBINED, wrong, reply_ms=300)
    assert fast.cuts_if_instant == 1 and fast.heard_cuts_if_instant == 1
    slow = replay(COMBINED, wrong, reply_ms=500)
    assert slow.cuts_if_instant == 1 and slow.heard_cuts_if_instant == 0
    assert slow.delay_ms is not None, "the carried-on turn still ends at the true end"
    rows = summarise({("combined", 1000): [(wrong, slow)]})
    row = next(r for r in rows if r["class"] == "hesitation")
    assert row["false_cut_rate_instant"] == 1.0 and row["heard_cut_rate_instant"] == 0.0
    assert replay(COMBINED, wrong).heard_cuts is None, "no reply time given: nothing said about hearing"


def test_the_reply_time_is_the_median_of_pre_warmed_turns_at_no_distance() -> None:
    def turn(endpoint: float, first_audio: float | None) -> dict[str, object]:
        return {"latency": {"endpoint_ms": endpoint, "first_audio_ms": first_audio}}

    pipeline = {
        "command": "python -m benchmarks.pipeline",
        "machine": {"date": "2026-11-29"},
        "sessions": [
            {"strategy": "prewarmed", "rtt_ms": 0.0, "turns": [turn(400, 600), turn(450, 750), turn(500, None)]},
            {"strategy": "prewarmed", "rtt_ms": 150.0, "turns": [turn(400, 1400)]},
            {"strategy": "cold", "rtt_ms": 0.0, "turns": [turn(400, 1400)]},
        ],
    }
    measured = reply_time(pipeline)
    assert measured.ms == 250.0 and measured.turns == 2
