"""How replies are asked for: per kind of model, what is sent besides the chat and when to stop.

A capable remote model (OpenAI, Groq, Ollama...) gets the plain system prompt and the history.
The bundled SmolLM2-135M does not follow a system prompt alone: it drifts into French, repeats
itself and copies an earlier bad reply.  For the embedded backend, :data:`SMALL_MODEL` adds
short English example exchanges after the system prompt (few-shot priming), keeps only the last
few real exchanges (and none that echo each other), samples nearly greedily and cuts off a
runaway reply.  The examples are part
of every request only: they are never in the session's history, its events or the page.

The numbers were chosen with ``python -m benchmarks.answer_eval`` (see README, "Answer
quality").  The example exchanges are deliberately on topics that are NOT in that evaluation's
panel, so the panel measures the prompting rather than the examples being copied back.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from llm import ChatMessage


@dataclass(frozen=True)
class ReplyStyle:
    """What one kind of model is sent on every turn, and when its reply is cut off.

    ``examples``: user/assistant messages placed after the system prompt, before the history.
    ``max_exchanges``: the model sees between 1 and this many earlier user+assistant exchanges,
    dropped in blocks so the prompt cache holds on most turns (None: all that fit the history's
    character budget).  ``temperature``: used unless LLM_TEMPERATURE is set.
    ``max_tokens``/``stop``: sent to the server.  ``max_sentences``: the session speaks at most
    this many sentences of a reply (None: no limit).  ``hide_echoes``: a reply that echoes
    the one before it (see :func:`is_echo`) takes both exchanges out of what the model sees next,
    so a pattern the model fell into does not feed itself turn after turn.  ``check_copies``: a
    reply whose first sentence copies an example's answer or an earlier reply (see
    :func:`copied_answer`) is not spoken; the session recovers (COPIED_REPLY).
    """

    name: str
    examples: tuple[ChatMessage, ...] = ()
    max_exchanges: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    max_sentences: int | None = None
    hide_echoes: bool = False
    check_copies: bool = False


def _exchanges(*pairs: tuple[str, str]) -> tuple[ChatMessage, ...]:
    return tuple(m for q, a in pairs for m in (ChatMessage("user", q), ChatMessage("assistant", a)))


# Topics kept apart from the evaluation panel (benchmarks/answer_panel.py): no capitals, legs,
# colours, sums or greetings that are asked there.  Each reply restates the question's subject
# in one plain sentence; the fourth pair is a follow-up that needs the turn before it.  No
# superlatives: with "the largest ocean" here, the model answered "The largest spider is...".
SMALL_MODEL_EXAMPLES = _exchanges(
    ("What is the main ingredient of bread?", "The main ingredient of bread is flour."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong was the first person to walk on the Moon."),
    ("And in which year?", "He walked on the Moon in 1969."),
    ("Can you recommend a good book?", "You might enjoy Pride and Prejudice by Jane Austen."),
)

PLAIN = ReplyStyle("plain")
SMALL_MODEL = ReplyStyle(
    "small-model",
    examples=SMALL_MODEL_EXAMPLES,
    max_exchanges=3,
    temperature=0.2,
    max_tokens=80,
    # A new line is where SmolLM2 starts a list, a second answer or another language.
    stop=("\n",),
    max_sentences=3,
    hide_echoes=True,
    check_copies=True,
)


def reply_style(embedded: bool) -> ReplyStyle:
    """The style for the embedded small model, or the plain one for a real endpoint."""
    return SMALL_MODEL if embedded else PLAIN


_WORDS = re.compile(r"[a-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
ECHO_PREFIX_WORDS = 4  # "The capital of France is..." / "The capital of Japan is..." share only 3
ECHO_OVERLAP = 0.7


def is_echo(reply: str, earlier: str) -> bool:
    """True if ``reply`` copies ``earlier``: the same first four words, or 70 % of the same words.

    The bundled model, once it has said "The answer is not a specific number, but rather...",
    says it again to every later question when it sees it in the history.
    """
    a, b = _WORDS.findall(reply.lower()), _WORDS.findall(earlier.lower())
    if min(len(a), len(b)) < ECHO_PREFIX_WORDS:
        return False
    if a[:ECHO_PREFIX_WORDS] == b[:ECHO_PREFIX_WORDS]:
        return True
    return _overlap(a, b) >= ECHO_OVERLAP


# What the session does with a reply whose first sentence copies an earlier answer (COPIED_REPLY):
# ask the model again without the examples, say it did not catch the question, or nothing.
COPIED_REPLY_CHOICES = ("ask-again", "not-caught", "off")
NOT_CAUGHT = "Sorry, I didn't catch that. Could you say it again?"
COPY_MIN_WORDS = 4  # "Yes, it is." may honestly recur; four words the same are an answer copied
COPY_OVERLAP = 0.8  # of the words of a whole sentence: the same answer, reworded a little
# An old answer said again is about this question when they share this many topic words ("capital"
# and "France"); one ("blue") is too weak a link: a nonsense question got the sky's answer again.
COPY_SAME_TOPIC_WORDS = 2


# Words that say nothing of what a question or an answer is about.
_FUNCTION_TEXT = """
a an the is are was were be been am it it's its this that these those there here what which who whom
whose how why when where many much do does did done of in on at to for from by with about as and or but
if so then than not no yes i i'm you your he she we they me my our their him her them have has had
can could would should will shall may might must more most some any all one okay ok um uh well just
i'd i'll you're you'll we're they're that's there's what's let's
hello hi hey glad nice meet thanks thank sorry sure welcome great
"""
_FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())


def copied_answer(first: str, question: str, answered: Sequence[tuple[str, str]]) -> str | None:
    """The answer that a reply's ``first`` sentence copies, or None.

    ``answered``: (question, answer) pairs the model has seen: the prompt's examples and the
    conversation's earlier exchanges.  ``first`` copies an answer when it has at least
    :data:`COPY_MIN_WORDS` words and is one of its sentences, the start of one (a first clause
    is spoken before its sentence is complete), starts with one (of as many words), or shares
    :data:`COPY_OVERLAP` of its words with one; unless the answer or its question is about this ``question`` (they share
    :data:`COPY_SAME_TOPIC_WORDS` words that are neither function words nor numbers: "...but it
    was the capital of France" may well get "The capital of France is Paris." again).  The
    bundled model, asked something it cannot make out ("What do these make?", a mishearing),
    falls back on an answer it has in view, whatever it was about.
    """
    said = _WORDS.findall(first.lower())
    if len(said) < COPY_MIN_WORDS:
        return None
    topic = _topic(question)
    for earlier_question, answer in answered:
        if len(topic & _topic(f"{earlier_question} {answer}")) >= COPY_SAME_TOPIC_WORDS:
            continue  # an answer about what was asked (or asked before), even if said before
        for sentence in _SENTENCE_END.split(answer.strip()):
            theirs = _WORDS.findall(sentence.lower())
            if not theirs:
                continue
            starts = len(theirs) >= COPY_MIN_WORDS and said[: len(theirs)] == theirs  # an old answer, then more
            same = theirs[: len(said)] == said or starts or _overlap(said, theirs) >= COPY_OVERLAP
            if same and _says_something(set(said) & set(theirs)):
                return answer
    return None


def _topic(text: str) -> set[str]:
    """The words that say what ``text`` is about: no function words, no numbers (a "10" in a
    question and in an old answer to a sum is no sign they are about the same thing)."""
    return {w for w in _WORDS.findall(text.lower()) if w not in _FUNCTION_WORDS and not w.isdigit()}


def _says_something(words: set[str]) -> bool:
    """Whether words shared with an old answer are an answer, not a pleasantry: a number, or
    :data:`COPY_SAME_TOPIC_WORDS` topic words.  "I'm glad you're here." said again opens many
    of the small model's replies; taking it for a copy made "What is my name?" not caught."""
    return any(w.isdigit() for w in words) or len(_topic(" ".join(words))) >= COPY_SAME_TOPIC_WORDS


def _overlap(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / len(set(a) | set(b))


class UncopiedReply:
    """A reply's sentences passed on, unless its first copies one of ``answered``'s answers
    (None: nothing is checked); :attr:`copied` then says so, and the stream is closed unread."""

    def __init__(self, stream: AsyncIterator[str], question: str, answered: list[tuple[str, str]] | None) -> None:
        self._stream = stream
        self._question = question
        self._answered = answered
        self.copied = False

    async def sentences(self) -> AsyncIterator[str]:
        """The sentences; none at all if the first was a copy."""
        first = True
        try:
            async for sentence in self._stream:
                if first and self._answered is not None and copied_answer(sentence, self._question, self._answered):
                    self.copied = True
                    return
                first = False
                yield sentence
        finally:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()


@dataclass
class RunawayGuard:
    """Decides, sentence by sentence, whether to keep reading a streamed reply.

    It stops after ``max_sentences`` and at the first sentence that repeats an earlier one of the
    same reply (the small model's loops), so a runaway reply is neither spoken nor remembered.
    The session still reads the rest of the stream (``max_tokens`` bounds it): a response read to
    its end leaves its connection in the pool for the next turn, where breaking off would close it.
    """

    max_sentences: int | None = None
    seen: list[tuple[str, ...]] = field(default_factory=list)
    stopped: bool = False

    def accept(self, sentence: str) -> bool:
        """True if ``sentence`` should be spoken; once False, False for the rest of the reply."""
        words = tuple(_WORDS.findall(sentence.lower()))
        full = self.max_sentences is not None and len(self.seen) >= self.max_sentences
        if self.stopped or full or (words and words in self.seen):
            self.stopped = True
            return False
        self.seen.append(words)
        return True
