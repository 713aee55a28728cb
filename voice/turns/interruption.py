"""Interruption filtering: what the user says over the reply, and whether it should stop it.

A person listening says "mm-hm", "yeah", "right" without wanting the floor, and coughs.
So speech over the reply is screened before it stops anything, by what Whisper hears in it:

* once it has ``barge_in_min_speech_ms`` of voice, its words so far are transcribed while it
  goes on (one look at a time, again after :data:`RECHECK_AFTER_MS` more voice): they stop the
  reply unless they are a backchannel (every word one of :data:`BACKCHANNEL_WORDS`, or a hum),
  no speech, or a guess;
* when it ends without having stopped the reply, the whole utterance is judged the same way:
  ignored, and the reply plays on, or a real interruption ("Stop.", "Wait, no"), which becomes
  the next turn;
* a guess is what Whisper makes of a hum or a cough ("Mm-hmm" heard as "in my mouth"): words
  heard with an ``avg_logprob`` below ``barge_in_min_logprob`` (the words so far, cut mid-word,
  with :data:`PARTIAL_LOGPROB_SLACK` less), unless one of them asks for the floor
  (:data:`INTERRUPT_WORDS`: an unsure "Wait" still stops the reply);
* a barge-in whose turn then turns out to say nothing that forms a turn (a backchannel,
  noise) was a false interruption: the reply is re-spoken from the sentence that was cut
  (:class:`ReplyTracker` knows which one was playing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voice.recognizer import Transcript

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
# Words said to take the floor or to stop the speaker.  A short utterance holding one stops the
# reply however unsure Whisper was of it: a missed "Wait" costs more than a reply re-started.
INTERRUPT_WORDS = frozenset(
    {"stop", "wait", "no", "hold", "hang", "pause", "cancel", "enough", "quiet", "shh", "hey", "sorry", "but"}
)
# Voice to wait for before looking again at words that did not stop the reply.  Speech cut
# mid-word is often heard unsurely (Piper's "Tell me about France" at 300-600 ms of voice:
# avg_logprob -0.3 to -0.65), so the next look comes as soon as a little more is in.
RECHECK_AFTER_MS = 200
# ... and judged with this much less sureness than a whole utterance: on the tuning phrases the
# words so far of real speech came at -0.65 or above, what Whisper made of a hum so far at -0.75
# or below (and a hum heard whole as words at -0.47 to -1.26).
PARTIAL_LOGPROB_SLACK = 0.3
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
    """Which sentences of the current reply have been heard: to resume from the one that was cut,
    and to record only what the user heard.

    ``plays_until[i]``: clock time when sentence i's audio ends in the user's ear (None while
    it is not fully synthesized yet).  ``starts_at[i]``: when its audio starts there (None until
    its first chunk is handed to playback).  ``confirmed``: the sentences a page's player said it
    started playing (:meth:`confirm`).
    """

    sentences: list[str] = field(default_factory=list)
    plays_until: list[float | None] = field(default_factory=list)
    starts_at: list[float | None] = field(default_factory=list)
    confirmed: set[int] = field(default_factory=set)

    def start(self) -> None:
        """A new reply begins."""
        self.sentences.clear()
        self.plays_until.clear()
        self.starts_at.clear()
        self.confirmed.clear()

    def add(self, sentence: str) -> int:
        """The reply produced ``sentence`` (it will be spoken in this order); its index."""
        self.sentences.append(sentence)
        self.plays_until.append(None)
        self.starts_at.append(None)
        return len(self.sentences) - 1

    def started(self, index: int, at: float) -> None:
        """Sentence ``index``'s first audio was handed to playback; it starts playing at ``at``."""
        if self.starts_at[index] is None:
            self.starts_at[index] = at

    def confirm(self, index: int) -> None:
        """The page's player says sentence ``index`` started playing."""
        if 0 <= index < len(self.sentences):
            self.confirmed.add(index)

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

    def heard(self, now: float, *, confirmed_only: bool) -> list[str]:
        """The sentences whose playback had started by ``now``, in order.  ``confirmed_only``: a
        page plays the audio, and only what its player said it started counts (the server's clock
        runs ahead of the page's by the chunk's trip there)."""
        return [
            text
            for index, (text, start) in enumerate(zip(self.sentences, self.starts_at, strict=True))
            if start is not None and start <= now and (index in self.confirmed or not confirmed_only)
        ]


class InterruptionScreen:
    """One session's judge of speech over its reply (the rules in this module's docstring).

    The session tells it what happens (speech started, a transcript of it, a reply was cut, a
    turn's transcript) and asks it what to do; it keeps the counts in :attr:`stats` and the cut
    reply to resume.  ``min_logprob``: a short utterance Whisper heard less surely than this
    (``Transcript.avg_logprob``) is a guess, not an interruption, unless it holds an
    :data:`INTERRUPT_WORDS` word.
    """

    def __init__(self, min_speech_ms: float, min_logprob: float) -> None:
        self.min_speech_ms = min_speech_ms
        self.min_logprob = min_logprob
        self.stats = InterruptionStats()
        self.pending = False  # the user speaks over the reply; not yet a barge-in
        self._utterance = 0  # which utterance over the reply a check belongs to
        self._next_check_ms = min_speech_ms
        self._checking = False
        self._cut: list[str] = []

    def speech_started(self, over_reply: bool) -> None:
        """The user started talking (``over_reply``: while the reply is being produced or heard)."""
        self.pending = over_reply
        self._utterance += 1
        self._next_check_ms = self.min_speech_ms
        self._checking = False

    def confirms_barge_in(self, voiced_ms: float, busy: bool) -> bool:
        """Speech over the reply has gone on for ``voiced_ms``: True when it stops the reply now
        without a transcript (only with ``min_speech_ms`` 0: any voice stops it)."""
        if self.pending and not busy:
            self.pending = False  # the reply ended meanwhile: an ordinary turn
        if not self.pending or self.min_speech_ms > 0:
            return False
        self.pending = False
        return True

    def wants_check(self, voiced_ms: float, busy: bool) -> int | None:
        """Speech over the reply has gone on for ``voiced_ms``: the utterance's number when its
        words so far should be transcribed now (from ``min_speech_ms`` of voice on, one at a
        time) to decide whether it stops the reply (:meth:`checked`); else None."""
        if not self.pending or not busy or self._checking or voiced_ms < self._next_check_ms:
            return None
        self._checking = True
        return self._utterance

    def checked(self, utterance: int, heard: Transcript, voiced_ms: float, busy: bool) -> bool:
        """The words so far of ``utterance`` (from :meth:`wants_check`; ``voiced_ms`` of voice now):
        True when they stop the reply now.  Words that would be ignored at its end (:meth:`ignored`)
        keep listening: the next check comes after :data:`RECHECK_AFTER_MS` more voice, and the
        end is screened anyway."""
        if utterance != self._utterance:
            return False  # a later utterance started: this one was screened when it ended
        self._checking = False
        if not self.pending or not busy:
            return False
        if self.is_backchannel_or_guess(heard, self.min_logprob - PARTIAL_LOGPROB_SLACK):
            self._next_check_ms = voiced_ms + RECHECK_AFTER_MS
            return False
        self.pending = False
        return True

    def needs_screening(self, busy: bool) -> bool:
        """A turn ended: True when it is speech over the reply that never became a barge-in (to be
        transcribed before it may interrupt)."""
        screen, self.pending = self.pending and busy, False
        return screen

    def ignored(self, heard: Transcript) -> bool:
        """A screened utterance: True (and counted) when it does not stop the reply."""
        if self.is_backchannel_or_guess(heard, self.min_logprob):
            self.stats.backchannels_ignored += 1
            return True
        return False

    @staticmethod
    def is_backchannel_or_guess(heard: Transcript, min_logprob: float) -> bool:
        """No speech, a backchannel, or a guess: heard with ``avg_logprob`` below ``min_logprob``
        and without a word that asks for the floor (what Whisper makes of a hum or a cough)."""
        if heard.no_speech or is_backchannel(heard.text):
            return True
        words = _WORD.findall(heard.text.lower())
        return heard.avg_logprob < min_logprob and not any(word in INTERRUPT_WORDS for word in words)

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
