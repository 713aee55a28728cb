"""Incremental transcription: the growing utterance heard in stretches while the user speaks.

Without it, a pause's transcript is one run of the recognizer on the whole utterance, started
when the pause is seen (``EARLY_TRANSCRIPT_AFTER_MS`` into it).  With it (``INCREMENTAL_TRANSCRIPT``),
each time the voice dips between words (:data:`DIP_MS` of silence) after at least
:data:`MIN_STRETCH_MS` of new audio, the stretch up to the middle of that dip is transcribed in
the background; at the pause only the last stretch is new, so the transcript is ready sooner
with an engine whose cost grows with the clip (Moonshine, and Whisper in its fitted window, :mod:`voice.whisper_window`;
in its own 30 s window a Whisper run costs the same whatever the clip).

Cutting at dips between words keeps words whole, but each stretch is heard without the words
around it, so the stitched text can differ from what one run on the whole turn hears
(``python -m benchmarks.stt_engines --incremental`` measures how often).  So the stitched text is
used only when every stretch was heard surely (:data:`MIN_LOGPROB`); otherwise the pause's
transcript is the one-shot run on the whole utterance, as without this module.

The CPU is bounded: one run at a time per session, none while any session's reply is being
produced (:data:`REPLIES`: that session's first audio must not wait behind someone's speech), a
run whose utterance was reset (a new turn, or a turn carried on from an earlier start) is
dropped, and every run is counted (:class:`IncrementalStats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from voice.audio import SAMPLE_RATE
from voice.recognizer import SpeechRecognizer, Transcript

log = logging.getLogger(__name__)

DIP_MS = 64  # two VAD frames of silence: a dip between words, not a pause
MIN_STRETCH_MS = 700  # new audio needed before a dip starts a run (each stretch a few words)
MIN_LOGPROB = -0.6  # a stretch heard less surely than this: the pause uses the one-shot instead


class ReplyActivity:
    """How many sessions are producing a reply right now (process-wide)."""

    def __init__(self) -> None:
        self._count = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Count a reply (LLM -> speech) while the block runs."""
        self._count += 1
        try:
            yield
        finally:
            self._count -= 1

    @property
    def busy(self) -> bool:
        """True while any session's reply is being produced."""
        return self._count > 0


REPLIES = ReplyActivity()


@dataclass(frozen=True)
class Stretch:
    """A transcribed stretch of the utterance: samples ``[start, end)`` from its audio's start."""

    start: int
    end: int
    transcript: Transcript


@dataclass
class IncrementalStats:
    """Runs in the background and how the pauses' transcripts were made."""

    runs: int = 0  # stretches transcribed during speech
    dropped: int = 0  # runs whose utterance was reset before they finished
    skipped_busy: int = 0  # dips that started no run because a reply was being produced
    stitched: int = 0  # pauses whose transcript was the stretches + the last one
    one_shot: int = 0  # pauses transcribed whole (no stretch, or one heard unsurely)
    runs_per_turn: list[int] = field(default_factory=list)


def plan_cut(committed: int, pause: tuple[int, int] | None, dip: int, min_stretch: int) -> int | None:
    """Where the next stretch ends (absolute sample), or None: in the middle of the current dip,
    once ``dip`` samples of silence follow at least ``min_stretch`` samples after ``committed``."""
    if pause is None:
        return None
    speech_end, silence = pause
    if silence < dip or speech_end - committed < min_stretch:
        return None
    return speech_end + silence // 2


class IncrementalTranscriber:
    """One session's stretches of the utterance in progress.

    ``recognizer`` is asked for the engine at each run (the page may switch it); ``activity``:
    replies in progress anywhere (:data:`REPLIES`).
    """

    def __init__(
        self,
        recognizer: Callable[[], SpeechRecognizer],
        *,
        activity: ReplyActivity = REPLIES,
        dip_ms: int = DIP_MS,
        min_stretch_ms: int = MIN_STRETCH_MS,
        min_logprob: float = MIN_LOGPROB,
    ) -> None:
        self._recognizer = recognizer
        self._activity = activity
        self._dip = dip_ms * SAMPLE_RATE // 1000
        self._min_stretch = min_stretch_ms * SAMPLE_RATE // 1000
        self.min_logprob = min_logprob
        self.stats = IncrementalStats()
        self.stretches: list[Stretch] = []
        self._origin: int | None = None  # absolute sample where the utterance's audio starts
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Lock()  # held by every run of this session's: one at a time
        self._runs = 0

    @property
    def runs_this_turn(self) -> int:
        """Stretch runs made on the utterance in progress (or the one that just ended)."""
        return self._runs

    @property
    def committed(self) -> int:
        """Samples of the utterance (from its audio's start) already transcribed."""
        return self.stretches[-1].end if self.stretches else 0

    def observe(self, pause: tuple[int, int] | None, utterance_to: Callable[[int], np.ndarray]) -> None:
        """After each fed chunk: start a run on the next stretch if the voice dips now.

        ``pause`` is the endpointer's (end of the last voiced frame, silence since), None while
        the voice goes on; ``utterance_to(post_roll_ms)`` the utterance's audio up to that far
        after the end of speech (:meth:`voice.turns.endpointing.Endpointer.utterance_if_ended_now`).
        """
        if pause is None or pause[1] < self._dip or not self._recognizer().cost_follows_clip:
            return  # (with Whisper every stretch would cost a whole run: the pause's one-shot is as quick)
        speech_end, silence = pause
        post_ms = silence // 2 * 1000 // SAMPLE_RATE  # the middle of the dip: no word is cut
        cut = speech_end + post_ms * SAMPLE_RATE // 1000
        audio = utterance_to(post_ms)
        origin = cut - len(audio)  # absolute sample where the utterance's audio starts
        if origin != self._origin:
            # A new utterance, or one carried on from an earlier start: a run in flight is stale
            # (its thread cannot be stopped; what it hears is dropped when it lands).
            self._reset_turn(origin)
        if self._running.locked() or (self._task is not None and not self._task.done()):
            return  # one run at a time (a stretch, or the pause's transcript)
        start = self.committed
        if speech_end - origin - start < self._min_stretch:
            return
        if self._activity.busy:
            self.stats.skipped_busy += 1
            return
        self._task = asyncio.create_task(self._run(origin, start, audio[start:]), name="stt-stretch")

    async def _run(self, origin: int, start: int, audio: np.ndarray) -> None:
        async with self._running:
            heard = await asyncio.to_thread(self._recognizer().transcribe, audio)
        self.stats.runs += 1
        self._runs += 1
        if origin != self._origin or start != self.committed:
            self.stats.dropped += 1  # the utterance was reset meanwhile: stale
            return
        self.stretches.append(Stretch(start, start + len(audio), heard))

    async def transcribe(self, audio: np.ndarray, origin: int, speech_end: int) -> Transcript:
        """The pause's transcript of ``audio`` (the whole utterance so far; ``origin``: the absolute
        sample it starts at, ``speech_end``: the pause's last voiced sample): the stretches heard so
        far and a run on the rest, or one run on the whole."""
        async with self._running:  # after a stretch in flight: it is nearly heard, the rest follows it
            return await self._pause_transcript(audio, origin, speech_end)

    async def _pause_transcript(self, audio: np.ndarray, origin: int, speech_end: int) -> Transcript:
        recognizer = self._recognizer()
        stretches = list(self.stretches) if origin == self._origin else []
        sure = all(s.transcript.avg_logprob >= self.min_logprob or s.transcript.no_speech for s in stretches)
        if not stretches or not sure:
            self.stats.one_shot += 1
            return await asyncio.to_thread(recognizer.transcribe, audio)
        self.stats.stitched += 1
        done = stretches[-1].end
        if origin + done >= speech_end:
            # The last stretch, cut in this very pause, already holds all the speech.
            return stitch([s.transcript for s in stretches[:-1]], stretches[-1].transcript, len(audio))
        tail = await asyncio.to_thread(recognizer.transcribe, audio[done:])
        return stitch([s.transcript for s in stretches], tail, len(audio))

    def _reset_turn(self, origin: int | None) -> None:
        """A new utterance (its audio starts at ``origin``): the last one's stretches are let go
        (not when its turn ended: the pause's transcript may still be stitching them)."""
        if self._origin is not None:
            self.stats.runs_per_turn.append(self._runs)
        self._origin = origin
        self.stretches = []
        self._runs = 0

    async def close(self) -> None:
        """Wait out a run in flight (its thread cannot be interrupted) and forget the turn."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reset_turn(None)


def stitch(parts: list[Transcript], tail: Transcript, samples: int) -> Transcript:
    """The stretches' transcripts and the last one's as one transcript of the whole utterance:
    its compute time is the last run's (the only one after the pause started)."""
    heard = [t for t in (*parts, tail) if t.text]
    text = " ".join(t.text for t in heard)
    return Transcript(
        text=text,
        compute_ms=tail.compute_ms,
        audio_ms=samples * 1000.0 / SAMPLE_RATE,
        no_speech=not text,
        raw_text=" ".join(t.raw_text for t in (*parts, tail) if t.raw_text),
        avg_logprob=min((t.avg_logprob for t in heard), default=0.0),
        engine=tail.engine,
    )
