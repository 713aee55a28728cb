"""InterruptionScreen on its own: the rules for speech over the reply, on transcripts written here
(what Whisper would say; tests/test_interruption.py runs them on real Whisper and Piper)."""

from __future__ import annotations

from voice.transcribe import Transcript
from voice.turns.interruption import RECHECK_AFTER_MS, InterruptionScreen


def heard(text: str, avg_logprob: float = -0.2) -> Transcript:
    """A transcript of ``text`` heard this surely."""
    return Transcript(text, compute_ms=100.0, audio_ms=500.0, no_speech=not text, avg_logprob=avg_logprob)


def test_long_speech_over_the_reply_is_looked_at_once_it_has_enough_voice_one_look_at_a_time() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.speech_started(over_reply=True)
    assert screen.wants_check(voiced_ms=300, busy=True) is None  # a cough, a "mm-hm" so far
    look = screen.wants_check(voiced_ms=400, busy=True)
    assert look is not None and screen.wants_check(voiced_ms=450, busy=True) is None, "one look at a time"
    assert screen.checked(look, heard("Wait, stop"), voiced_ms=500, busy=True)
    assert not screen.pending and screen.wants_check(voiced_ms=900, busy=True) is None  # stopped once


def test_a_backchannel_so_far_keeps_listening_and_is_looked_at_again() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.speech_started(over_reply=True)
    look = screen.wants_check(voiced_ms=400, busy=True)
    assert look is not None and not screen.checked(look, heard("Okay, yeah"), voiced_ms=450, busy=True)
    assert screen.pending, "still listening"
    assert screen.wants_check(voiced_ms=450 + RECHECK_AFTER_MS - 1, busy=True) is None
    again = screen.wants_check(voiced_ms=450 + RECHECK_AFTER_MS, busy=True)
    assert again is not None and screen.checked(again, heard("Okay, yeah, but why?"), voiced_ms=700, busy=True)


def test_a_look_at_an_earlier_utterance_decides_nothing() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.speech_started(over_reply=True)
    look = screen.wants_check(voiced_ms=400, busy=True)
    assert look is not None and screen.needs_screening(busy=True)  # it ended while Whisper listened
    screen.speech_started(over_reply=True)
    assert not screen.checked(look, heard("Stop"), voiced_ms=100, busy=True), "screened when it ended"
    assert screen.pending


def test_speech_when_the_reply_has_ended_is_not_a_barge_in() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.speech_started(over_reply=True)
    assert screen.wants_check(voiced_ms=500, busy=False) is None  # the reply ended meanwhile
    assert not screen.confirms_barge_in(voiced_ms=500, busy=False) and not screen.pending
    screen.speech_started(over_reply=False)
    assert not screen.pending and not screen.needs_screening(busy=True)


def test_with_no_minimum_any_voice_stops_the_reply_at_once() -> None:
    screen = InterruptionScreen(min_speech_ms=0, min_logprob=-0.5)
    screen.speech_started(over_reply=True)
    assert screen.confirms_barge_in(voiced_ms=32, busy=True) and not screen.pending
    assert not InterruptionScreen(min_speech_ms=400, min_logprob=-0.5).confirms_barge_in(voiced_ms=32, busy=True)


def test_an_utterance_that_ended_is_ignored_when_a_backchannel_nothing_or_a_guess() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.speech_started(over_reply=True)
    assert screen.needs_screening(busy=True) and not screen.pending
    assert screen.ignored(heard("Mm-hm.")) and screen.ignored(heard(""))
    assert screen.ignored(heard("in my mouth", avg_logprob=-1.1)), "a hum heard unsurely as words"
    assert not screen.ignored(heard("Why not?", avg_logprob=-0.15)), "the same rule lets sure words through"
    assert screen.stats.backchannels_ignored == 3


def test_a_word_that_asks_for_the_floor_stops_the_reply_however_unsure() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    assert not screen.ignored(heard("Cancel", avg_logprob=-1.0))
    assert not screen.ignored(heard("Wait.", avg_logprob=-0.9))
    assert screen.ignored(heard("Cab sell", avg_logprob=-1.0))
    assert not InterruptionScreen(400, min_logprob=-10).ignored(heard("Cab sell", avg_logprob=-1.0)), "trust all"


def test_words_so_far_are_judged_with_the_slack_of_speech_cut_mid_word() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.speech_started(over_reply=True)
    look = screen.wants_check(voiced_ms=400, busy=True)
    assert look is not None and screen.checked(look, heard("Tell me the...", avg_logprob=-0.63), 450, busy=True)
    screen.speech_started(over_reply=True)
    look = screen.wants_check(voiced_ms=400, busy=True)
    assert look is not None and not screen.checked(look, heard("in a month.", avg_logprob=-1.06), 450, busy=True)


def test_a_false_interruption_gives_back_the_cut_reply_once() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.barged_in(["The second sentence.", "The third."])
    assert screen.stats.barge_ins == 1
    assert screen.resumes_cut("Yeah.") and not screen.resumes_cut("What about Germany?")
    assert screen.false_interruption(no_speech=False, text="Okay, right.") == ["The second sentence.", "The third."]
    assert screen.stats.false_interruptions == 1
    assert screen.false_interruption(no_speech=False, text="Okay.") == []  # given back once


def test_a_real_turn_after_a_barge_in_drops_the_cut_reply() -> None:
    screen = InterruptionScreen(min_speech_ms=400, min_logprob=-0.5)
    screen.barged_in(["Unheard sentence."])
    assert screen.false_interruption(no_speech=False, text="What is the capital of Spain?") == []
    assert screen.stats.false_interruptions == 0 and not screen.resumes_cut("Yeah.")
