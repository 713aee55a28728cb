"""Incremental sentence splitting for speech: text arrives token by token, sentences leave
the moment they are complete.

The splitter is pure (no I/O, no clock) so it can be table-tested.  It errs on the side of
*not* cutting: a sentence spoken as one piece sounds natural, a sentence cut at "Dr." does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that end with a period but almost never end a sentence: titles before a name and
# a few reference words before a number.  Compared lower-case, without the period.
ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "rev",
        "gen",
        "capt",
        "lt",
        "col",
        "sgt",
        "hon",
        "sen",
        "rep",
        "gov",
        "pres",
        "st",
        "mt",
        "ft",
        "vs",
        "cf",
        "approx",
        "no",
        "nos",
        "fig",
        "figs",
        "vol",
        "pp",
        "ch",
        "sec",
        "dept",
        "est",
        "jr",
        "sr",
    }
)
STOPS = ".!?"
ELLIPSIS = "…"
# Characters that belong to the sentence when they follow its stop: `He said "Hi."` ends after the quote.
CLOSERS = "\"'”’)]}»"
OPENERS = "\"'(“‘["
# A run of dotted single letters: "e.g", "U.S", "i.e", "a.m" (the final period is the stop itself).
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
# Clause boundaries used to break an over-long sentence: punctuation followed by a space, or a dash.
_WORD = re.compile(r"\S+")
UNDECIDED = -1  # a stop at the end of the text so far: the next character decides
# A dash next to a number is arithmetic or a range ("10 - 3", "1990–2000"), not a clause: cut there,
# the first piece would end on "ten minus".
_CLAUSE = re.compile(r"[,;:](?=\s)|(?<!\d)\s[-–—]+(?=\s)(?!\s\d)|(?<![\d\s])[–—](?!\d)")


@dataclass(frozen=True)
class SplitterConfig:
    """Tuning of :class:`SentenceSplitter`.

    ``max_words``: once the pending text has more words than this without a sentence stop,
    it is cut at the last clause boundary (comma, semicolon, colon, dash), so speech never
    waits for a 60-word sentence.  ``hard_max_words``: with no clause boundary either, cut at
    the last space.  ``min_clause_words``: a clause cut keeps at least this many words.
    ``min_first_chars``: a first sentence shorter than this ("Hi.") is held back and joined
    to the next one; 0 (the default) emits it immediately.  ``first_max_words``: a tighter
    ``max_words`` for the first sentence only, so speech can start on its first clause
    (a voice agent's time to first audio grows with the first sentence's length); 0: same as
    ``max_words``.
    """

    max_words: int = 20
    hard_max_words: int = 40
    min_clause_words: int = 4
    min_first_chars: int = 0
    first_max_words: int = 0

    def __post_init__(self) -> None:
        if self.max_words < 1 or self.hard_max_words < self.max_words:
            raise ValueError("need 1 <= max_words <= hard_max_words")
        if self.min_clause_words < 1 or self.min_first_chars < 0 or self.first_max_words < 0:
            raise ValueError("min_clause_words must be >= 1; min_first_chars, first_max_words >= 0")


class SentenceSplitter:
    """Feed text with :meth:`push`, get complete sentences back; :meth:`flush` at the end.

    Cuts after ``.``, ``!``, ``?`` (plus closing quotes/brackets) followed by whitespace, and
    at newlines.  It does not cut after an abbreviation ("Dr."), an initialism ("e.g.",
    "U.S."), a decimal ("3.14"), an ellipsis ("..." or "…"), a list number at the start of a
    line ("1."), or a period followed by a lower-case word.  A period at the very end of the
    text so far waits for the next character before it is trusted.
    """

    def __init__(self, config: SplitterConfig | None = None, **options: int) -> None:
        self.config = config if config is not None else SplitterConfig(**options)
        self._buf = ""
        self._held = ""  # a short first sentence waiting to be merged (min_first_chars)
        self._emitted_any = False

    def push(self, text: str) -> list[str]:
        """Add ``text``; return the sentences it completed (often none, sometimes several)."""
        self._buf += text
        out: list[str] = []
        while True:
            cut = self._next_cut(final=False)
            if cut is None:
                break
            out.extend(self._emit(self._buf[:cut]))
            self._buf = self._buf[cut:]
        return out

    def flush(self) -> list[str]:
        """End of text: return every sentence still pending, the remainder included."""
        out: list[str] = []
        while True:
            cut = self._next_cut(final=True)
            if cut is None:
                break
            out.extend(self._emit(self._buf[:cut]))
            self._buf = self._buf[cut:]
        out.extend(self._emit(self._buf, last=True))
        self._buf = ""
        return out

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a sentence."""
        return (self._held + " " + self._buf).strip() if self._held else self._buf.strip()

    def _emit(self, piece: str, *, last: bool = False) -> list[str]:
        sentence = " ".join(piece.split())  # newlines and runs of spaces become one space
        if self._held:
            sentence = f"{self._held} {sentence}".strip()
            self._held = ""
        if not sentence:
            return []
        if not self._emitted_any and not last and len(sentence) < self.config.min_first_chars:
            self._held = sentence
            return []
        self._emitted_any = True
        return [sentence]

    def _next_cut(self, *, final: bool) -> int | None:
        """Index just past the first complete sentence in the buffer, or None if undecided."""
        buf = self._buf
        n = len(buf)
        i = 0
        while i < n:
            c = buf[i]
            if c == "\n":
                if buf[:i].strip():
                    return i + 1
            elif c in STOPS or c == ELLIPSIS:
                j = i
                while j < n and (buf[j] in STOPS or buf[j] == ELLIPSIS):
                    j += 1
                cut = self._stop_decision(buf, i, j, final)
                if cut == UNDECIDED:
                    return None  # wait for the next character before trusting this stop
                if cut is not None:
                    # Streamed, an over-long sentence is cut at a clause before its stop arrives;
                    # cut the whole text the same way.
                    early = self._long_run_cut(buf[:cut])
                    return early if early is not None and early < cut else cut
                i = j
                continue
            i += 1
        return self._long_run_cut(buf)

    def _stop_decision(self, buf: str, start: int, end: int, final: bool) -> int | None:
        """For the stop run ``buf[start:end]``: the cut index, None (no cut) or UNDECIDED."""
        run = buf[start:end]
        if "..." in run or ELLIPSIS in run:
            return None  # an ellipsis is a pause inside the sentence, not its end
        k = end
        while k < len(buf) and buf[k] in CLOSERS:
            k += 1
        if k == len(buf):
            return k if final else UNDECIDED
        if not buf[k].isspace():
            return None  # "3.14", "U.S.A", "example.com"
        if run == ".":
            word_start = start
            while word_start > 0 and not buf[word_start - 1].isspace() and buf[word_start - 1] not in OPENERS:
                word_start -= 1
            word = buf[word_start:start]
            if word.lower() in ABBREVIATIONS or _INITIALISM.fullmatch(word):
                return None
            if len(word) == 1 and word.isupper():
                return None  # a middle initial: "John F. Kennedy"
            if word.isdigit() and not buf[:word_start].strip():
                return None  # "1." opening a numbered list item
        m = k
        while m < len(buf) and buf[m].isspace() and buf[m] != "\n":
            m += 1
        if m == len(buf):
            return k if final else UNDECIDED
        if buf[m].islower():
            return None  # "approx. five", 'she asked "why?" and left': the sentence goes on
        return k

    def _long_run_cut(self, buf: str) -> int | None:
        """Where to cut a run longer than ``max_words`` that has no sentence stop yet."""
        cfg = self.config
        max_words = cfg.first_max_words if cfg.first_max_words and not self._emitted_any else cfg.max_words
        word_ends = [m.end() for m in _WORD.finditer(buf)]
        if len(word_ends) <= max_words:
            return None
        short: int | None = None  # last boundary leaving at most max_words words
        long: int | None = None  # first boundary after that
        for match in _CLAUSE.finditer(buf):
            words = len(_WORD.findall(buf, 0, match.end()))
            if words < cfg.min_clause_words:
                continue
            if words <= max_words:
                short = match.end()
            elif long is None:
                long = match.end()
        if short is not None or long is not None:
            return short if short is not None else long
        if len(word_ends) > cfg.hard_max_words:
            return word_ends[cfg.hard_max_words - 1]  # the word after it may still be arriving
        return None


def split_sentences(text: str, config: SplitterConfig | None = None) -> list[str]:
    """All sentences of a complete ``text`` (a convenience over :class:`SentenceSplitter`)."""
    splitter = SentenceSplitter(config)
    return splitter.push(text) + splitter.flush()
