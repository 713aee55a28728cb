"""benchmarks.turn_taking's scoring: how a replayed detector's decisions become cuts and delays.

The evidence is written by hand here (no audio, no models): the replay must count a turn
ended inside an item's own pause as a cut, measure the final delay from the labelled end of
speech, and let a signal count only once it would have been computed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.turn_taking_replay import Evidence, Pause, ended_at, replay, transcript_start
from benchmarks.turn_taking_summary import reply_time, summarise
from voice.audio import SAMPLE_RATE
from voice.turns.policy import TurnPolicy

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
        "piper-1.0",
        "tuning",
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
    never = Evidence("x", "complete", "piper-1.0", "tuning", None, SAMPLE_RATE, (), 1.0, (pause(1.0, 100, True, 0.9),))
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
    from benchmarks.turn_taking_data import speech_in_parts
    from benchmarks.voice_families import family, speech
    from voice.transcribe import Transcriber

    first, rest = speech_in_parts(("Can you tell me how to get to", "the train station?"), family("sox-pitch-up"))
    whole = speech("Can you tell me how to get to the train station?", family("sox-pitch-up"))
    assert len(first) > 0 and len(rest) > 0 and len(first) + len(rest) <= len(whole)
    whisper = Transcriber("", "cpu", "int8", "en")
    assert "station" not in whisper.transcribe(first).text.lower()
    assert "station" in whisper.transcribe(rest).text.lower()


def test_the_last_pause_after_the_last_part_began_is_the_end_not_a_cut() -> None:
    """In noise the VAD may hear the last word end early (a soft final "s"): that pause is still
    the end of the turn; a pause the voice came back after is a cut wherever it lies."""
    early_end = Evidence(
        "capital [x] France (noise-20db)",
        "hesitation",
        "noise-20db",
        "tuning",
        20.0,
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


def test_every_metric_is_reported_per_family_and_the_splits_apart() -> None:
    """A tuning family and a held-out family: the named policies get a row per family, every
    policy a row per split, and a split's rows hold only its own families' items."""
    fast = Evidence("q", "complete", "piper-1.0", "tuning", None, SAMPLE_RATE, (), 1.0, (pause(1.0, 3000, True, 0.9),))
    # The held-out voice: the audio model hears it unfinished, so the combined detector holds.
    slow = replace(fast, family="espeak-klatt", text_set="heldout", pauses=(pause(1.0, 3000, True, 0.1),))
    results = {(name, 0): [(ev, replay(COMBINED, ev)) for ev in (fast, slow)] for name in ("named", "curve")}
    rows = summarise(results, per_family=["named"])

    def median(curve: str, families: str, text: str) -> object:
        found = [
            r for r in rows if (r["curve"], r["families"], r["text"], r["class"]) == (curve, families, text, "complete")
        ]
        return found[0]["median_ms"] if found else "no row"

    tuning, heldout = median("named", "tuning", "tuning"), median("named", "heldout", "heldout")
    assert isinstance(tuning, float) and isinstance(heldout, float) and tuning < 400 <= COMBINED.hold_ms <= heldout
    assert median("named", "piper-1.0", "all") == tuning and median("named", "espeak-klatt", "all") == heldout
    assert median("named", "tuning", "heldout") == "no row", "no tuning family spoke the held-out sentences"
    assert median("curve", "heldout", "heldout") == heldout
    assert median("curve", "espeak-klatt", "all") == "no row", "curves are summarised per split only"


def test_a_long_wait_counts_unless_the_text_model_said_unfinished() -> None:
    """The target's exception: a complete item may wait past 1.1 s only when the text model the
    policy reads said unfinished (below the policy's own threshold)."""
    late = Evidence("q", "complete", "piper-1.0", "tuning", None, SAMPLE_RATE, (), 1.0, (pause(1.0, 3000, True, 0.1),))
    for below, not_unfinished in ((0.5, 0), (0.1, 1)):
        policy = replace(COMBINED, hold_ms=1500, text_unfinished_below=below)
        outcome = replay(policy, late, scorer=lambda _text: 0.2)
        assert outcome.delay_ms is not None and outcome.delay_ms > 1100
        assert outcome.end_read_unfinished is (below == 0.5)
        row = next(r for r in summarise({("c", 0): [(late, outcome)]}) if r["class"] == "complete")
        assert row["long_waits"] == 1 and row["long_waits_not_unfinished"] == not_unfinished


def test_a_hesitation_in_any_voice_pauses_where_its_labels_say() -> None:
    """Items are built in any voice family: the pause after the unfinished part is the labelled
    length of silence (of noise, in a noise family); only a Piper voice is also cut from the
    whole sentence."""
    from benchmarks.turn_taking_data import LEAD_IN_S, family_items
    from benchmarks.voice_families import family

    for name, whole in (("espeak-en-us-f2", False), ("noise-10db-m3", False), ("sox-pitch-down", True)):
        items = list(family_items(family(name), "heldout", ["hesitation", "hesitation_final"], [0.6]))
        kinds = {item.kind for item in items}
        assert kinds == ({"hesitation", "hesitation_final"} if whole else {"hesitation_final"}), name
        item = items[0]
        assert item.family == name and item.text_set == "heldout" and item.pauses_s == (0.6,)
        gap = item.audio[item.part_ends[0] : item.part_ends[0] + int(0.6 * SAMPLE_RATE)]
        lead = item.audio[: int(LEAD_IN_S * SAMPLE_RATE)]
        if family(name).snr_db is None:
            assert not np.any(gap) and not np.any(lead)
        else:  # steady noise well under the speech, through the pause
            assert 0 < float(np.sqrt(np.mean(gap**2))) < 0.5 * float(np.sqrt(np.mean(item.audio[: item.true_end] ** 2)))
        assert np.any(item.audio[item.part_ends[0] + int(0.6 * SAMPLE_RATE) : item.true_end]), "the rest is spoken"


def test_the_replay_reads_the_transcript_with_the_text_model() -> None:
    """ "Where are you from?" ends on a word the word list calls unfinished: the old default holds
    it; the text model (the committed one, judged at replay) reads it finished and ends the turn at
    the minimum silence.  A fragment it reads unfinished waits to the maximum."""
    text_model = TurnPolicy("text_model", min_silence_ms=400, hold_ms=1000, max_wait_ms=2500)
    question = replace(pause(1.0, 3000, True, 0.1), text="Where are you from?")
    assert 400 <= (ended_at(text_model, question, instant=True) or 0) < 500
    assert (ended_at(COMBINED, question, instant=True) or 0) >= COMBINED.hold_ms
    fragment = replace(pause(1.0, 3000, False, 0.9), text="What is the capital of.")
    assert ended_at(text_model, fragment, instant=True) == pytest.approx(2500, abs=40)


def test_the_threshold_is_chosen_on_the_tuning_scope_only() -> None:
    """The tuned text-model policy takes the lowest swept threshold that meets the cut-in target on
    the tuning families and sentences, whatever the held-out rows say."""
    from benchmarks.turn_taking_policies import thresholds_x1000, tuned_contenders

    def row(curve: str, x1000: int, families: str, rate: float) -> dict[str, object]:
        return {
            "curve": curve,
            "wait_ms": x1000,
            "class": "pauses<=1s",
            "families": families,
            "text": families,
            "r": rate,
        }

    rows = [row("text_model_at", x, "tuning", 0.2 if x < 800 else 0.04) for x in thresholds_x1000()]
    rows += [row("text_model_at", x, "heldout", 0.0) for x in thresholds_x1000()]  # must not be looked at
    tuned = tuned_contenders(rows, 96, "r")
    assert list(tuned) == ["text_model@tuned"], "no rows for the Smart Turn variant: no choice for it"
    label, policy = tuned["text_model@tuned"]
    assert policy.detector == "text_model" and policy.text_complete_at == 0.8 and "0.8" in label


def test_a_complete_turn_that_waited_for_its_transcript_says_so() -> None:
    """The text model reads "Where are you from?" complete: with a fast Whisper the turn ends at
    the minimum silence, with a slow one when the transcript arrives; the timing rows tell the two
    apart and give the transcript's readiness after the true end of speech."""
    from benchmarks.turn_taking_timing import timing_rows

    policy = TurnPolicy("text_model", min_silence_ms=400, hold_ms=1000, max_wait_ms=2500)

    def complete(whisper_ms: float, name: str) -> Evidence:
        last = replace(pause(1.0, 3000, True, 0.1, whisper_ms=whisper_ms), text="Where are you from?")
        return Evidence(name, "complete", "piper-1.0", "tuning", None, SAMPLE_RATE, (), 1.0, (last,))

    items = [complete(100, "fast"), complete(700, "slow")]
    results = {"text_model": [(ev, replay(policy, ev)) for ev in items]}
    (row,) = timing_rows({"text_model": ("text model", policy)}, results)
    assert (row["families"], row["text"], row["n"]) == ("tuning", "tuning", 2)
    assert row["ended_by"] == {"min silence": 1, "transcript": 1, "band": 0, "max wait": 0}
    ready = transcript_start(policy) + (100 + 700) / 2
    assert row["transcript_ready_median_ms"] == pytest.approx(ready, abs=1)
    slow = results["text_model"][1][1]
    assert slow.delay_ms is not None and slow.delay_ms >= transcript_start(policy) + 700


def test_a_replayed_report_names_the_machine_its_evidence_was_measured_on() -> None:
    from dataclasses import asdict

    from benchmarks.common import MachineProbe, machine_info
    from benchmarks.turn_taking import machine_of

    probe = MachineProbe(("avx2",), 450.0, 380.0, 500.0, 20, 3)
    measured = machine_info(1.0, probe=probe)
    recorded = asdict(measured)  # what a run's --json holds
    assert machine_of(recorded) == measured
    assert "Whisper tiny.en on a fixed 3 s clip 450 ms" in machine_of(recorded).markdown()
