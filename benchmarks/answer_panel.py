"""The answer-quality panel and its acceptance rules (used by :mod:`benchmarks.answer_eval`).

Every rule is one a reader can check by eye against the reply:

* **expected**: the reply contains one of the question's expected words or numbers (whole words,
  case-insensitive; a number may be written in digits or words where both are listed);
* **english**: no accented or non-Latin letters (symbols such as × or ° are fine) and at most
  one French/Spanish/German/Italian function word (the bundled model's failure was drifting into French);
* **short**: at most three sentences;
* **first sentence**: the first sentence is a real sentence, at least two words and not just
  filler ("Sure!", "Great question.", "Paris.");
* **no copy**: no sentence of the reply (of four words or more) is copied, word for word, from
  one of the prompt's example answers or from an earlier reply of the session, unless the
  question it answered is this very question (issue #23: a misheard "What do these make?"
  got a sum's answer back).  The session's own "Sorry, I didn't catch that." is not an answer
  and is never counted as one copied.

``misheard`` and ``nonsense`` questions have no expected word: any reply passes that rule, and
what they test is the others, above all that a question the model cannot answer is not met
with a copied answer.  The three ``misheard`` ones are Whisper's mishearings quoted in issue
#23 (the copy detector of voice/prompting.py was designed on them); the ``nonsense`` ones were
written apart from it and are reported as a separate kind, held out.

The panel is varied on purpose (facts, small arithmetic, definitions, advice, chit-chat and
follow-ups that only make sense after the turn before) and none of its topics is one of the
example exchanges the embedded model is primed with (voice/prompting.py): the score measures
the prompting, not the examples being copied back.  Questions are asked in this order in one
session, so a follow-up comes right after the question it refers to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.word_error_rate import words
from voice.prompting import NOT_CAUGHT, SMALL_MODEL_EXAMPLES

MAX_SENTENCES = 3
MIN_FIRST_SENTENCE_WORDS = 2


@dataclass(frozen=True)
class PanelQuestion:
    """One question: its kind, and the words of which the reply must contain at least one."""

    text: str
    kind: str  # fact, arithmetic, definition, advice, chit-chat, follow-up, misheard, nonsense
    expected: tuple[str, ...]  # empty: no answer expected (misheard, nonsense)


def _q(kind: str, text: str, *expected: str) -> PanelQuestion:
    return PanelQuestion(text, kind, expected)


PANEL: tuple[PanelQuestion, ...] = (
    _q("chit-chat", "Hello, how are you today?", "good", "well", "fine", "great", "thanks", "thank", "doing"),
    _q("fact", "What is the capital of France?", "paris"),
    _q("follow-up", "And what about Germany?", "berlin"),
    _q("fact", "How many legs does a spider have?", "eight", "8"),
    _q("follow-up", "And an insect?", "six", "6"),
    _q("misheard", "How many lengths done as I do have?"),
    _q("fact", "What do bees make?", "honey"),
    _q("misheard", "What do these make?"),
    _q("fact", "What color is a banana?", "yellow"),
    _q("fact", "What is the opposite of hot?", "cold"),
    _q("misheard", "What is the opposite on part?"),
    _q("fact", "What is the largest planet in our solar system?", "jupiter"),
    _q("arithmetic", "What is two plus two?", "four", "4"),
    _q("nonsense", "Purple the seventeen under a fridge?"),
    _q("fact", "What animal says moo?", "cow", "cows"),
    _q("fact", "Which planet is known as the red planet?", "mars"),
    _q("definition", "What does a thermometer measure?", "temperature", "heat"),
    _q("fact", "What is the capital of Japan?", "tokyo"),
    _q("follow-up", "And Italy?", "rome"),
    _q("arithmetic", "What is ten minus three?", "seven", "7"),
    _q(
        "advice",
        "How can I sleep better?",
        "bed",
        "bedtime",
        "routine",
        "caffeine",
        "screen",
        "screens",
        "dark",
        "relax",
        "schedule",
        "regular",
        "quiet",
        "comfortable",
    ),
    _q("fact", "What is the freezing point of water in Celsius?", "zero", "0"),
    _q("arithmetic", "What is three times four?", "twelve", "12"),
    _q("definition", "What is a noun?", "person", "place", "thing", "name", "object"),
    _q("chit-chat", "What is your name?", "warmvoice"),
    _q("fact", "What color is grass?", "green"),
    _q("follow-up", "And the sky on a clear day?", "blue"),
    _q("nonsense", "Was it the blue and then to which?"),
    _q("arithmetic", "How many minutes are in an hour?", "sixty", "60"),
    _q("definition", "What is photosynthesis?", "light", "sunlight", "sun", "energy", "food", "sugar"),
    _q(
        "advice",
        "How do I stay healthy?",
        "exercise",
        "eat",
        "eating",
        "water",
        "diet",
        "fruit",
        "fruits",
        "vegetables",
        "active",
        "sleep",
    ),
    _q("fact", "Who painted the Mona Lisa?", "leonardo", "vinci"),
    _q("nonsense", "Which one does the table sing for?"),
    _q("arithmetic", "What is five plus three?", "eight", "8"),
    _q("follow-up", "And if I add two more?", "ten", "10"),
    _q("nonsense", "Okay so the, um, window of it."),
    _q("definition", "What is gravity?", "force", "pull", "pulls", "attract", "attracts", "attraction"),
    _q("fact", "What language do people speak in Spain?", "spanish"),
    _q("follow-up", "And in Brazil?", "portuguese"),
    _q(
        "advice",
        "What should I do if I feel stressed?",
        "breath",
        "breaths",
        "breathe",
        "breathing",
        "walk",
        "relax",
        "talk",
        "exercise",
        "break",
        "rest",
        "calm",
        "meditate",
        "meditation",
    ),
    _q("arithmetic", "How many hours are in a day?", "twenty-four", "twenty four", "24"),
    _q("definition", "What is a mammal?", "milk", "warm-blooded", "warm", "fur", "hair", "animal", "animals"),
    _q("fact", "What is the boiling point of water in Celsius?", "hundred", "100"),
    _q(
        "advice",
        "Any tips for learning a new language?",
        "practice",
        "practise",
        "speak",
        "speaking",
        "daily",
        "listen",
        "listening",
        "read",
        "reading",
        "every day",
        "native",
    ),
    _q("arithmetic", "What is half of twenty?", "ten", "10"),
    _q("definition", "What is a verb?", "action", "doing", "word"),
    _q("fact", "Which animal is known as the king of the jungle?", "lion", "lions"),
    _q("advice", "How do I make a cup of tea?", "water", "boil", "boiling", "kettle", "steep", "bag", "leaves"),
    _q("chit-chat", "What can you help me with?", "question", "questions", "answer", "answers", "help", "information"),
    _q("fact", "How many wheels does a bicycle have?", "two", "2"),
    _q("chit-chat", "Thank you, goodbye!", "welcome", "bye", "goodbye", "care", "pleasure", "day"),
)

# Words that only a non-English reply uses this often (French, Spanish, Italian, German function
# words that are not also English words).
_FOREIGN_WORDS = frozenset(
    [
        "le",
        "la",
        "les",
        "est",
        "une",
        "des",
        "du",
        "et",
        "dans",
        "pour",
        "avec",
        "sur",
        "qui",
        "que",
        "ce",
        "cette",
        "il",
        "elle",
        "nous",
        "vous",
        "ils",
        "sont",
        "el",
        "los",
        "las",
        "es",
        "con",
        "por",
        "para",
        "una",
        "del",
        "y",
        "muy",
        "pero",
        "como",
        "il",
        "di",
        "della",
        "che",
        "sono",
        "gli",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "ein",
        "eine",
        "mit",
        "sie",
    ]
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_FILLER = frozenset(
    [
        "sure",
        "okay",
        "ok",
        "well",
        "hmm",
        "um",
        "uh",
        "ah",
        "oh",
        "yes",
        "no",
        "great",
        "good",
        "question",
        "absolutely",
        "certainly",
        "of",
        "course",
        "alright",
        "right",
        "thanks",
        "thank",
        "you",
        "hello",
        "hi",
        "hey",
    ]
)


def sentences(text: str) -> list[str]:
    """``text`` split into sentences at ., ! or ? followed by white space."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text.strip())) if s]


def has_expected(reply: str, expected: tuple[str, ...]) -> bool:
    """True if the reply contains one of ``expected`` as whole word(s) (or nothing is expected)."""
    if not expected:
        return True
    said = " " + " ".join(words(reply)) + " "
    return any(f" {' '.join(words(e))} " in said for e in expected)


def is_english(reply: str) -> bool:
    """True if the reply has no accented/non-Latin letters and at most one foreign function word."""
    if any(ch.isalpha() and not ch.isascii() for ch in reply):  # é, ß, ñ, Cyrillic, CJK...
        return False
    return sum(w in _FOREIGN_WORDS for w in words(reply)) <= 1


def first_sentence_is_real(reply: str) -> bool:
    """True if the first sentence has at least two words and is not only filler."""
    parts = sentences(reply)
    if not parts:
        return False
    first = words(parts[0])
    return len(first) >= MIN_FIRST_SENTENCE_WORDS and not all(w in _FILLER for w in first)


@dataclass(frozen=True)
class Verdict:
    """Which rules a reply passed; ``accepted`` only if all of them."""

    expected: bool
    english: bool
    short: bool
    first_sentence: bool
    copied: str | None = None  # the sentence the reply copied, if it did

    @property
    def accepted(self) -> bool:
        """Every rule passed."""
        return self.expected and self.english and self.short and self.first_sentence and self.copied is None

    @property
    def failed(self) -> list[str]:
        """Names of the rules that failed, for the report."""
        checks = {
            "expected word": self.expected,
            "English": self.english,
            f"<= {MAX_SENTENCES} sentences": self.short,
            "first sentence": self.first_sentence,
            "copied": self.copied is None,
        }
        return [name for name, ok in checks.items() if not ok]


@dataclass(frozen=True)
class Exchange:
    """A question and the reply it got: an example of the prompt or an earlier turn."""

    question: str
    reply: str


EXAMPLE_EXCHANGES = tuple(
    Exchange(q.content, a.content) for q, a in zip(SMALL_MODEL_EXAMPLES[::2], SMALL_MODEL_EXAMPLES[1::2], strict=True)
)
MIN_COPY_WORDS = 4  # "Yes, it is." may recur honestly; a copied four-word sentence does not


def copied_sentence(question: str, reply: str, earlier: Sequence[Exchange]) -> str | None:
    """The sentence of an example answer or an ``earlier`` reply that ``reply`` contains word for
    word (at least :data:`MIN_COPY_WORDS` words), unless its question was this one; else None."""
    said = " " + " ".join(words(reply)) + " "
    asked = words(question)
    for source in (*EXAMPLE_EXCHANGES, *earlier):
        if words(source.question) == asked:
            continue  # the same question may well get the same answer
        for sentence in sentences(source.reply):
            run = words(sentence)
            if sentence in NOT_CAUGHT:  # the session's own line when it did not catch a question
                continue
            if len(run) >= MIN_COPY_WORDS and f" {' '.join(run)} " in said:
                return sentence
    return None


def judge(question: PanelQuestion, reply: str, earlier: Sequence[Exchange] = ()) -> Verdict:
    """Apply every rule to ``reply``; ``earlier``: the session's exchanges before it."""
    return Verdict(
        expected=has_expected(reply, question.expected),
        english=is_english(reply),
        short=0 < len(sentences(reply)) <= MAX_SENTENCES,
        first_sentence=first_sentence_is_real(reply),
        copied=copied_sentence(question.text, reply, earlier),
    )
