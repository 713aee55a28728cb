"""Table-driven tests of the incremental sentence splitter (llm/sentences.py)."""

from __future__ import annotations

import re

import pytest

from llm.sentences import SentenceSplitter, SplitterConfig, split_sentences

CASES: list[tuple[str, str, list[str]]] = [
    ("plain", "Hello there. How are you? I am fine!", ["Hello there.", "How are you?", "I am fine!"]),
    ("title abbreviation", "Dr. Smith is here. Mrs. Jones too.", ["Dr. Smith is here.", "Mrs. Jones too."]),
    ("e.g. inside", "Use a fruit, e.g. an apple. Then rest.", ["Use a fruit, e.g. an apple.", "Then rest."]),
    ("i.e. inside", "The best one, i.e. the red one. Okay.", ["The best one, i.e. the red one.", "Okay."]),
    ("U.S. inside", "The U.S. Army is large. It has bases.", ["The U.S. Army is large.", "It has bases."]),
    ("decimal", "Pi is 3.14 roughly. Good.", ["Pi is 3.14 roughly.", "Good."]),
    ("price at sentence end", "It costs 3.50. Cheap!", ["It costs 3.50.", "Cheap!"]),
    ("ellipsis", "Well... I think so. Yes.", ["Well... I think so.", "Yes."]),
    ("unicode ellipsis", "Hmm… let me see. Sure.", ["Hmm… let me see.", "Sure."]),
    ("closing quote", 'He said "Hi." Then he left.', ['He said "Hi."', "Then he left."]),
    ("closing curly quote", "She wrote “Done.” Next step.", ["She wrote “Done.”", "Next step."]),
    ("closing bracket", "It works (mostly.) Try it.", ["It works (mostly.)", "Try it."]),
    ("question then lowercase", 'She asked "why?" and left. Fine.', ['She asked "why?" and left.', "Fine."]),
    ("double stop", "Really?! Wow. Okay.", ["Really?!", "Wow.", "Okay."]),
    ("lowercase after period", "Bring approx. five items. Thanks.", ["Bring approx. five items.", "Thanks."]),
    ("middle initial", "John F. Kennedy spoke. We sat.", ["John F. Kennedy spoke.", "We sat."]),
    ("newline ends a line", "First line\nSecond line.", ["First line", "Second line."]),
    ("blank lines", "Para one.\n\nPara two.", ["Para one.", "Para two."]),
    (
        "numbered list",
        "Steps:\n1. Open the app.\n2. Tap Settings.\n3. Done",
        ["Steps:", "1. Open the app.", "2. Tap Settings.", "3. Done"],
    ),
    ("url-like", "Visit example.com today. Bye.", ["Visit example.com today.", "Bye."]),
    ("no stop at all", "just some words", ["just some words"]),
    ("empty", "", []),
    ("only spaces", "   \n  ", []),
    ("collapses whitespace", "One  two\tthree. Four.", ["One two three.", "Four."]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_split_whole_text(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def _tokens(text: str) -> list[str]:
    """Roughly how an LLM streams text: words with their leading space, punctuation apart."""
    return re.findall(r"\s*[\w']+|\s*[^\w\s]|\s+", text)


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("chunking", ["chars", "tokens"])
def test_split_incremental_matches_whole(text: str, expected: list[str], chunking: str) -> None:
    pieces = list(text) if chunking == "chars" else _tokens(text)
    assert "".join(pieces) == text
    splitter = SentenceSplitter()
    got: list[str] = []
    for piece in pieces:
        got.extend(splitter.push(piece))
    got.extend(splitter.flush())
    assert got == expected


def test_sentence_is_emitted_as_soon_as_the_next_word_starts() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello there.") == []  # a final period may still be "Dr."
    assert splitter.push(" How") == ["Hello there."]
    assert splitter.pending == "How"
    assert splitter.push(" are you?") == []
    assert splitter.push(" ") == []  # 'she asked "why?" and left' : the next letter decides
    assert splitter.push("I") == ["How are you?"]
    assert splitter.flush() == ["I"]


def test_abbreviation_at_chunk_end_is_not_cut_when_the_name_follows() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Ask Dr.") == []
    assert splitter.push(" Smith.") == []
    assert splitter.flush() == ["Ask Dr. Smith."]


LONG = (
    "When you get to the station you should take the second exit on the left, then walk "
    "past the bakery and the small park until you reach the big red door at the corner"
)


def test_long_run_is_cut_at_a_clause_boundary() -> None:
    got = split_sentences(LONG, SplitterConfig(max_words=20))
    assert got == [
        "When you get to the station you should take the second exit on the left,",
        "then walk past the bakery and the small park until you reach the big red door at the corner",
    ]


def test_long_run_cut_happens_while_streaming_not_only_at_flush() -> None:
    splitter = SentenceSplitter(max_words=20)
    emitted_before_flush: list[str] = []
    for token in _tokens(LONG):
        emitted_before_flush.extend(splitter.push(token))
    assert emitted_before_flush == ["When you get to the station you should take the second exit on the left,"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "alpha beta gamma delta epsilon; zeta eta theta iota kappa",
            ["alpha beta gamma delta epsilon;", "zeta eta theta iota kappa"],
        ),
        (
            "alpha beta gamma delta epsilon - zeta eta theta iota kappa",
            ["alpha beta gamma delta epsilon -", "zeta eta theta iota kappa"],
        ),
        (
            "alpha beta gamma delta epsilon: zeta eta theta iota kappa",
            ["alpha beta gamma delta epsilon:", "zeta eta theta iota kappa"],
        ),
        (
            "alpha beta gamma delta epsilon—zeta eta theta iota kappa",
            ["alpha beta gamma delta epsilon—", "zeta eta theta iota kappa"],
        ),
        # A dash next to a number is a minus or a range, not a clause boundary.
        (
            "ten minus three is 10 - 3 and 1990–2000 was long",
            ["ten minus three is 10 - 3 and 1990–2000 was long"],
        ),
        # "1,000" and "10:30" are not clause boundaries: no space after the mark.
        (
            "we have 1,000 apples at 10:30 today and many more tomorrow",
            ["we have 1,000 apples at 10:30 today and many more tomorrow"],
        ),
    ],
)
def test_clause_boundaries(text: str, expected: list[str]) -> None:
    assert split_sentences(text, SplitterConfig(max_words=6, hard_max_words=12)) == expected


def test_no_clause_boundary_falls_back_to_hard_limit() -> None:
    words = [f"w{i}" for i in range(12)]
    got = split_sentences(" ".join(words), SplitterConfig(max_words=4, hard_max_words=8))
    assert got == [" ".join(words[:8]), " ".join(words[8:])]


def test_whole_text_prefers_the_last_boundary_within_the_limit() -> None:
    text = "one two three four, five six seven, eight nine ten eleven twelve thirteen, fourteen"
    got = split_sentences(text, SplitterConfig(max_words=8, hard_max_words=20, min_clause_words=2))
    assert got == ["one two three four, five six seven,", "eight nine ten eleven twelve thirteen, fourteen"]


def test_clause_cut_keeps_a_minimum_number_of_words() -> None:
    text = "Yes, " + " ".join(["word"] * 8)
    got = split_sentences(text, SplitterConfig(max_words=5, hard_max_words=30, min_clause_words=3))
    assert got == [text]  # the only comma comes after 1 word: too early to cut there


@pytest.mark.parametrize(
    ("min_first_chars", "expected"),
    [
        (0, ["Hi.", "How can I help you today?", "Ask me."]),
        (10, ["Hi. How can I help you today?", "Ask me."]),
    ],
)
def test_min_first_chars(min_first_chars: int, expected: list[str]) -> None:
    config = SplitterConfig(min_first_chars=min_first_chars)
    got = split_sentences("Hi. How can I help you today? Ask me.", config)
    assert got == expected


def test_min_first_chars_short_reply_is_still_flushed() -> None:
    splitter = SentenceSplitter(min_first_chars=20)
    assert splitter.push("Hi. ") == []
    assert splitter.pending == "Hi."
    assert splitter.flush() == ["Hi."]


@pytest.mark.parametrize("bad", [{"max_words": 0}, {"max_words": 10, "hard_max_words": 5}, {"min_first_chars": -1}])
def test_config_is_validated(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        SplitterConfig(**bad)


@pytest.mark.parametrize(
    ("first_max_words", "expected"),
    [
        (0, ["Paris is the capital of France, and it is known for its art and food.", "Come visit."]),
        (8, ["Paris is the capital of France,", "and it is known for its art and food.", "Come visit."]),
    ],
)
def test_first_sentence_can_be_cut_at_its_first_clause(first_max_words: int, expected: list[str]) -> None:
    text = "Paris is the capital of France, and it is known for its art and food. Come visit."
    config = SplitterConfig(first_max_words=first_max_words)
    assert split_sentences(text, config) == expected
    splitter = SentenceSplitter(config)
    streamed = [s for token in text.split(" ") for s in splitter.push(token + " ")] + splitter.flush()
    assert streamed == expected
