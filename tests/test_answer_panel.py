"""The answer evaluation's rules (benchmarks/answer_panel.py), on hand-written good and bad replies, and the
word error rate the benchmarks count (benchmarks/word_error_rate.py)."""

from __future__ import annotations

import pytest

from benchmarks.answer_panel import (
    PANEL,
    Exchange,
    PanelQuestion,
    first_sentence_is_real,
    has_expected,
    is_english,
    judge,
    sentences,
)
from benchmarks.word_error_rate import word_error_rate
from voice.prompting import NOT_CAUGHT, SMALL_MODEL_EXAMPLES

CAPITAL = PanelQuestion("What is the capital of France?", "fact", ("paris",))
SPIDER = PanelQuestion("How many legs does a spider have?", "fact", ("eight", "8"))


@pytest.mark.parametrize(
    ("question", "reply"),
    [
        (CAPITAL, "The capital of France is Paris."),
        (CAPITAL, "It's Paris! It is also France's largest city."),  # an exclamation ends a sentence
        (SPIDER, "A spider has eight legs."),
        (SPIDER, "Spiders have 8 legs, unlike insects which have six."),
        (SPIDER, "I'm sure. A spider has eight legs. That's true of every spider."),
    ],
)
def test_good_replies_are_accepted(question: PanelQuestion, reply: str) -> None:
    verdict = judge(question, reply)
    assert verdict.accepted, verdict.failed


@pytest.mark.parametrize(
    ("question", "reply", "failed"),
    [
        # The issue's own examples of what the offline default said.
        (CAPITAL, 'La Ville Lumière, or "Lighting City" in French.', ["expected word", "English"]),
        (CAPITAL, "Cette cité est le Québec!!", ["expected word", "English"]),
        (CAPITAL, "La capitale de la France est Paris.", ["English"]),  # right, but not in English
        (CAPITAL, "The capital of France is Lyon.", ["expected word"]),
        (CAPITAL, "Sure! The capital of France is Paris.", ["first sentence"]),
        (CAPITAL, "Paris.", ["first sentence"]),  # a fragment
        (CAPITAL, "Great question. Paris is the capital.", ["first sentence"]),
        (
            SPIDER,
            "Legs are nice. Spiders are nice. Webs are nice. Flies are not. Spiders have eight legs.",
            ["<= 3 sentences"],
        ),
        (SPIDER, "", ["expected word", "<= 3 sentences", "first sentence"]),
        (SPIDER, "A spider has eighteen legs.", ["expected word"]),  # whole words only
    ],
)
def test_bad_replies_fail_the_right_rules(question: PanelQuestion, reply: str, failed: list[str]) -> None:
    verdict = judge(question, reply)
    assert not verdict.accepted
    assert verdict.failed == failed


def test_rule_helpers() -> None:
    assert sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]
    assert sentences("It costs 3.5 dollars. Fine.") == ["It costs 3.5 dollars.", "Fine."]
    assert has_expected("It is twenty four hours.", ("twenty four", "24"))
    assert has_expected("It is twenty-four hours.", ("twenty-four",))
    assert not has_expected("Parisian food is good.", ("paris",))
    assert is_english("Three times four is 12, or 3 × 4 = 12 at 20 °C.")  # symbols are not letters
    assert not is_english("Die Hauptstadt ist Berlin und nicht Bonn.")
    assert not is_english("Привет")
    assert first_sentence_is_real("I'm fine. How can I help?")
    assert not first_sentence_is_real("Okay! Sure.")


def test_word_error_rate_counts_word_edits() -> None:
    assert word_error_rate("How many legs does a spider have?", "How many legs does a spider have") == (0, 7)
    assert word_error_rate("How many legs does a spider have?", "How many lenses does a spider have?") == (1, 7)
    assert word_error_rate("What do bees make?", "What do we make?") == (1, 4)
    assert word_error_rate("What do bees make?", "") == (4, 4)
    assert word_error_rate("Hello there", "Hello out there") == (1, 2)
    assert word_error_rate("How many hours are in a day? Twenty-four.", "How many hours are in a day? 24") == (0, 9)
    assert word_error_rate("What is two plus two?", "What is 2 plus 2?") == (0, 5)
    assert word_error_rate("It boils at one hundred.", "It boils at 100.") == (0, 5)


def test_panel_is_varied_and_apart_from_the_prompt_examples() -> None:
    assert len(PANEL) >= 40
    kinds = {q.kind for q in PANEL}
    assert kinds == {"fact", "arithmetic", "definition", "advice", "chit-chat", "follow-up", "misheard", "nonsense"}
    # Only a question that cannot be answered has no expected word.
    assert all(bool(q.expected) == (q.kind not in ("misheard", "nonsense")) for q in PANEL)
    assert PANEL[0].kind != "follow-up"  # a follow-up always has a question before it
    asked = {q.text.lower() for q in PANEL}
    primed = {m.content.lower() for m in SMALL_MODEL_EXAMPLES if m.role == "user"}
    assert not asked & primed
    # No example mentions a panel answer word (e.g. "Paris" or "eight" in a primed reply).
    primed_words = {w for m in SMALL_MODEL_EXAMPLES for w in m.content.lower().replace(".", " ").split()}
    topical = {e for q in PANEL if q.kind in ("fact", "follow-up") for e in q.expected if not e.isdigit()}
    assert not topical & primed_words, topical & primed_words


def test_a_reply_that_copies_an_example_or_an_earlier_answer_fails() -> None:
    misheard = next(q for q in PANEL if q.text == "What do these make?")
    sums = Exchange("What is two plus three?", "The answer is 2 + 3 = 5.")
    # Issue #23's reply, copied from an earlier one; an example's answer; inside a longer reply.
    verdict = judge(misheard, "The answer is 2 + 3 = 5.", [sums])
    assert not verdict.accepted and verdict.failed == ["copied"] and verdict.copied == "The answer is 2 + 3 = 5."
    assert judge(misheard, "Well, there are seven days in a week.").copied == "There are seven days in a week."
    # Anything else goes for a question that has no answer; the same question may get the same answer.
    assert judge(misheard, "I am not sure what you mean.", [sums]).accepted
    # The session's own line for a question it did not catch is no answer copied.
    sorry = Exchange("Purple the 17 under a fridge.", NOT_CAUGHT)
    assert judge(misheard, NOT_CAUGHT, [sorry]).copied is None
    again = PanelQuestion("What is two plus three?", "arithmetic", ("five", "5"))
    assert judge(again, "The answer is 2 + 3 = 5.", [sums]).accepted
