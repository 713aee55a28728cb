"""InterruptionScreen on its own: the rules for speech over the reply, without audio or a session."""

from __future__ import annotations

from voice.interruption import InterruptionScreen


def test_speech_over_the_reply_stops_it_only_once_it_is_long_enough() -> None:
    screen = InterruptionScreen(min_speech_ms=700)
    screen.speech_started(over_reply=True)
    assert not screen.confirms_barge_in(voiced_ms=300, busy=True)  # a cough, a "mm-hm" so far
    assert screen.pending
    assert screen.confirms_barge_in(voiced_ms=700, busy=True)
    assert not screen.pending and not screen.confirms_barge_in(voiced_ms=900, busy=True)  # once


def test_speech_when_the_reply_has_ended_is_not_a_barge_in() -> None:
    screen = InterruptionScreen(min_speech_ms=700)
    screen.speech_started(over_reply=True)
    assert not screen.confirms_barge_in(voiced_ms=100, busy=False)  # the reply ended meanwhile
    assert not screen.pending
    screen.speech_started(over_reply=False)
    assert not screen.pending and not screen.needs_screening(busy=True)


def test_a_short_utterance_over_the_reply_is_screened_and_a_backchannel_ignored() -> None:
    screen = InterruptionScreen(min_speech_ms=700)
    screen.speech_started(over_reply=True)
    assert screen.needs_screening(busy=True) and not screen.pending
    assert screen.is_short(voiced_ms=400, capped=False) and not screen.is_short(voiced_ms=400, capped=True)
    assert screen.ignored(no_speech=False, text="Mm-hm.") and screen.ignored(no_speech=True, text="")
    assert not screen.ignored(no_speech=False, text="Stop.")
    assert screen.stats.backchannels_ignored == 2


def test_a_false_interruption_gives_back_the_cut_reply_once() -> None:
    screen = InterruptionScreen(min_speech_ms=700)
    screen.barged_in(["The second sentence.", "The third."])
    assert screen.stats.barge_ins == 1
    assert screen.resumes_cut("Yeah.") and not screen.resumes_cut("What about Germany?")
    assert screen.false_interruption(no_speech=False, text="Okay, right.") == ["The second sentence.", "The third."]
    assert screen.stats.false_interruptions == 1
    assert screen.false_interruption(no_speech=False, text="Okay.") == []  # given back once


def test_a_real_turn_after_a_barge_in_drops_the_cut_reply() -> None:
    screen = InterruptionScreen(min_speech_ms=700)
    screen.barged_in(["Unheard sentence."])
    assert screen.false_interruption(no_speech=False, text="What is the capital of Spain?") == []
    assert screen.stats.false_interruptions == 0 and not screen.resumes_cut("Yeah.")
