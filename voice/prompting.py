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
    so a pattern the model fell into does not feed itself turn after turn.
    """

    name: str
    examples: tuple[ChatMessage, ...] = ()
    max_exchanges: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    max_sentences: int | None = None
    hide_echoes: bool = False


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
)


def reply_style(embedded: bool) -> ReplyStyle:
    """The style for the embedded small model, or the plain one for a real endpoint."""
    return SMALL_MODEL if embedded else PLAIN


_WORDS = re.compile(r"[a-z0-9']+")
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
    return len(set(a) & set(b)) / len(set(a) | set(b)) >= ECHO_OVERLAP


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
