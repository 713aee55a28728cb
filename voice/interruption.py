"""Interruption filtering: what the user says over the reply, and whether it should stop it.

A person listening says "mm-hm", "yeah", "right" without wanting the floor, and coughs.
So speech over the reply is screened before it stops anything:

* it stops the reply at once only after ``barge_in_min_speech_ms`` of voiced speech (a
  cough or a backchannel is shorter);
* a shorter utterance is transcribed when it ends: a backchannel (every word one of
  :data:`BACKCHANNEL_WORDS`) or no speech at all is ignored and the reply plays on; anything
  else ("Stop.", "Wait, no") is a real interruption, and becomes the next turn;
* a confirmed barge-in whose turn then turns out to say nothing that forms a turn (a
  backchannel, noise) was a false interruption: the reply is re-spoken from the sentence
  that was cut (:class:`ReplyTracker` knows which one was playing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Words a listener says to show they follow, not to take the turn.
BACKCHANNEL_WORDS = frozenset(
    {
        "mm",
        "mmm",
        "hmm",
        "hm",
        "mhm",
        "mm-hm",
        "mm-hmm",
        "uh-huh",
        "uh",
        "huh",
        "um",
        "yeah",
        "yes",
        "yep",
        "yup",
        "ok",
        "okay",
        "right",
        "sure",
        "alright",
        "i",
        "see",
        "got",
        "it",
        "cool",
        "nice",
        "ah",
        "oh",
        "wow",
        "exactly",
        "true",
    }
)
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
# Hums however Whisper spells them: "Mmmm", "Hmmm", "Mhmm", "Ahh", "Ooh", and any of them joined
# by hyphens: "Mm-hmm", "Uh-huhh", "Mm-mm", "Hmm-mm".
_HUM_PIECE = r"(?:m+|h+m+|m+h+m+|u+h+|h+u+h+|a+h+|o+h+|o+o+h+)"
_HUM = re.compile(rf"{_HUM_PIECE}(?:-{_HUM_PIECE})*")


def is_backchannel(text: str) -> bool:
    """True if ``text`` is only listener noises ("Mm-hm.", "Yeah, right.", "Okay."), or empty."""
    words = _WORD.findall(text.lower())
    return all(word in BACKCHANNEL_WORDS or _HUM.fullmatch(word) for word in words)


@dataclass
class InterruptionStats:
    """What the user's speech over replies did (shown in the session facts)."""

    barge_ins: int = 0  # replies stopped by the user's speech
    backchannels_ignored: int = 0  # short speech over a reply that did not stop it
    false_interruptions: int = 0  # a stopped reply whose "interruption" said nothing
    resumed: int = 0  # replies re-spoken from the cut sentence after a false interruption

    def describe(self) -> str:
        """One line for the session facts."""
        return (
            f"{self.barge_ins} barge-ins, {self.backchannels_ignored} backchannels ignored, "
            f"{self.false_interruptions} false interruptions ({self.resumed} resumed)"
        )


@dataclass
class ReplyTracker:
    """Which sentences of the current reply have been heard, to resume from the one that was cut.

    ``plays_until[i]``: clock time when sentence i's audio ends in the user's ear (None while
    it is not fully synthesized yet).
    """

    sentences: list[str] = field(default_factory=list)
    plays_until: list[float | None] = field(default_factory=list)

    def start(self) -> None:
        """A new reply begins."""
        self.sentences.clear()
        self.plays_until.clear()

    def add(self, sentence: str) -> None:
        """The reply produced ``sentence`` (it will be spoken in this order)."""
        self.sentences.append(sentence)
        self.plays_until.append(None)

    def spoken(self, sentence: str, until: float) -> None:
        """All of ``sentence``'s audio was sent; it plays until ``until``."""
        for index, (text, end) in enumerate(zip(self.sentences, self.plays_until, strict=True)):
            if text == sentence and end is None:
                self.plays_until[index] = until
                return

    def unheard(self, now: float) -> list[str]:
        """The sentence playing at ``now`` and everything after it."""
        for index, end in enumerate(self.plays_until):
            if end is None or end > now:
                return list(self.sentences[index:])
        return []


class InterruptionScreen:
    """One session's judge of speech over its reply (the rules in this module's docstring).

    The session tells it what happens (speech started, a reply was cut, a turn's transcript) and
    asks it what to do; it keeps the counts in :attr:`stats` and the cut reply to resume.
    """

    def __init__(self, min_speech_ms: float) -> None:
        self.min_speech_ms = min_speech_ms
        self.stats = InterruptionStats()
        self.pending = False  # the user speaks over the reply; not yet a barge-in
        self._cut: list[str] = []

    def speech_started(self, over_reply: bool) -> None:
        """The user started talking (``over_reply``: while the reply is being produced or heard)."""
        self.pending = over_reply

    def confirms_barge_in(self, voiced_ms: float, busy: bool) -> bool:
        """Speech over the reply has gone on for ``voiced_ms``: True when it now stops the reply."""
        if not self.pending or (voiced_ms < self.min_speech_ms and busy):
            return False
        self.pending = False
        return busy

    def needs_screening(self, busy: bool) -> bool:
        """A turn ended: True when it is speech over the reply that never became a barge-in (to be
        transcribed before it may interrupt)."""
        screen, self.pending = self.pending and busy, False
        return screen

    def is_short(self, voiced_ms: float, capped: bool) -> bool:
        """Too short to interrupt unheard (a long one arrived in one chunk with its end)."""
        return not capped and voiced_ms < self.min_speech_ms

    def ignored(self, no_speech: bool, text: str) -> bool:
        """A screened utterance: True (and counted) when it is a backchannel or no speech."""
        if no_speech or is_backchannel(text):
            self.stats.backchannels_ignored += 1
            return True
        return False

    def barged_in(self, unheard: list[str]) -> None:
        """The reply was stopped; ``unheard`` is what a false interruption would say again."""
        self.stats.barge_ins += 1
        self._cut = unheard

    def resumes_cut(self, text: str) -> bool:
        """True when ``text`` (an early transcript) would only resume the cut reply: no new turn."""
        return bool(self._cut) and is_backchannel(text)

    def false_interruption(self, no_speech: bool, text: str) -> list[str]:
        """The turn after a barge-in said ``text``: the cut reply to speak again when it said
        nothing that forms a turn (counted), else []."""
        cut, self._cut = self._cut, []
        if cut and (no_speech or is_backchannel(text)):
            self.stats.false_interruptions += 1
            return cut
        return []
