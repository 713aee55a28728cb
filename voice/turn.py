"""One turn's run through the stages: transcript -> reply -> speech, every stage timed.

The session decides *when* a turn starts and whether a newer one replaces it; its
:class:`TurnTasks` runs them one at a time (a turn opens its record as it begins, a newer one
cancels it), and a :class:`TurnRunner` does what happens inside one: take the transcript (usually
the one started during the pause), resume a reply cut for nothing, ask the reply stage for
sentences and have the speech stage say them as they arrive.  A turn never takes the session
down: whatever goes wrong ends that turn as an error the user can read, and the outcome is always
reported (:class:`~voice.timing.TurnClosed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llm import WarmUpResult
from voice.audio import SAMPLE_RATE
from voice.events import Emit, Notice, UserSaid
from voice.incremental import REPLIES
from voice.latency import Outcome, TurnEnd, TurnLatency, TurnSource
from voice.recognizer import SpeechRecognizer, Transcript
from voice.reply import ReplyStage
from voice.settings import Settings
from voice.speech import SpeechStage
from voice.timing import Timing, TranscriptReady, TurnClosed, TurnContinued, TurnOpened, TurnRecorder
from voice.turns import DetectedTurn, InterruptionScreen, Speculation
from voice.uplink import ChunkCapture

log = logging.getLogger(__name__)


class TurnRunner:
    """Runs a session's turns through its stages (one at a time; the session cancels a turn that a
    newer one replaces).  ``resume_cut``: re-speak a reply stopped by a false interruption."""

    def __init__(
        self,
        *,
        transcriber: SpeechRecognizer,
        reply: ReplyStage,
        speech: SpeechStage,
        interruption: InterruptionScreen,
        resume_cut: bool,
        emit: Emit,
        timing: Timing,
        clock: Callable[[], float],
    ) -> None:
        self.transcriber = transcriber
        self.reply = reply
        self.speech = speech
        self.interruption = interruption
        self.resume_cut = resume_cut
        self._emit = emit
        self._timing = timing
        self._clock = clock

    async def run(
        self, turn: int, audio: np.ndarray | None, text: str | None, speculation: Speculation | None = None
    ) -> None:
        """Run turn ``turn``: spoken (``audio``, maybe with the pause's ``speculation``) or typed
        (``text``).  However it ends, it is closed with its outcome (:class:`TurnClosed`)."""
        spoken: list[str] = []
        outcome: Outcome = "running"
        error: str | None = None
        try:
            if audio is not None:
                transcript = await self._transcript(turn, audio, speculation)
                cut = self.interruption.false_interruption(transcript.no_speech, transcript.text)
                # The reply was stopped for nothing that forms a turn: say it again from the cut.
                if cut and self.resume_cut:
                    outcome = "resumed"
                    self.interruption.stats.resumed += 1
                    log.info("False interruption in turn %d: resuming the reply (%d sentences)", turn, len(cut))
                    again: list[str] = []
                    try:
                        await self.speech.speak_again(turn, cut, again)
                    finally:  # what was heard again goes back into the reply it belongs to
                        self.reply.remember_resumed(again, complete=again == cut)
                    return
                if transcript.no_speech:
                    outcome = "no_speech"
                    seconds = len(audio) / SAMPLE_RATE
                    log.info("Turn %d: no speech in %.0f ms of audio; no LLM call", turn, seconds * 1000)
                    return
                text = transcript.text
            assert text is not None
            self._emit(UserSaid(turn, text))
            error = await self.reply.ensure_endpoint()
            if error is None:
                with REPLIES.running():  # no session hears speech in stretches meanwhile (voice.incremental)
                    error = await self._reply(turn, text, spoken)
            outcome = "ok" if error is None else "error"
        except asyncio.CancelledError:
            outcome = "interrupted"  # unless the session said the turn carries on (TurnContinued)
            raise
        except Exception as exc:  # a turn must never take the session down
            outcome, error = "error", _describe(exc)
            log.exception("Turn %d failed", turn)
            self._emit(Notice(f"Something went wrong in this turn: {error}", "error"))
        finally:
            if spoken:
                self.reply.remember(spoken)
            self._timing(TurnClosed(turn, outcome, self._clock(), error))

    async def _transcript(self, turn: int, audio: np.ndarray, speculation: Speculation | None) -> Transcript:
        """The turn's transcript: the one started during the pause on the same audio (usually done
        by now), else the recognizer on a worker thread."""
        started_at = None
        if speculation is not None and speculation.task is not None:
            transcript = await speculation.task
            at, started_at = speculation.done_at or self._clock(), speculation.started_at
        else:
            transcript = await asyncio.to_thread(self.transcriber.transcribe, audio)
            at = self._clock()
        compute_ms = round(transcript.compute_ms, 1)
        self._timing(TranscriptReady(turn, at, transcript.text, compute_ms, transcript.engine, started_at))
        return transcript

    async def _reply(self, turn: int, text: str, spoken: list[str]) -> str | None:
        """The reply stage's sentences, spoken by the speech stage as they arrive; the turn's error, or None."""
        self.speech.new_reply()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self.speech.speak(turn, sentences, spoken), name=f"tts-{turn}")
        try:
            try:
                error = await self.reply.run(turn, text, sentences.put_nowait)
            finally:
                sentences.put_nowait(None)
            await speaker
            return error
        finally:
            if not speaker.done():
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaker


@dataclass(frozen=True)
class TurnStart:
    """What a turn begins with: spoken (its audio, what ended it and when, the page's capture time
    of its end, the pause's early transcript) or typed (its text)."""

    source: TurnSource
    speech_end_at: float
    audio: np.ndarray | None = None
    text: str | None = None
    endpoint_at: float | None = None
    turn_end: TurnEnd | None = None
    capture: ChunkCapture | None = None
    stretch_runs: int | None = None
    speculation: Speculation | None = None

    @classmethod
    def spoken(
        cls, detected: DetectedTurn, endpoint_at: float, capture: ChunkCapture | None, stretch_runs: int | None
    ) -> TurnStart:
        """A spoken turn the turn-detection stage found, judged over at ``endpoint_at``."""
        return cls(
            "voice",
            detected.speech_end_at,
            audio=detected.ended.audio,
            endpoint_at=endpoint_at,
            turn_end=detected.turn_end,
            capture=capture,
            stretch_runs=stretch_runs,
            speculation=detected.speculation,
        )


class TurnTasks:
    """A session's turns as tasks, one at a time: each opens its record as it begins
    (:class:`~voice.timing.TurnOpened`), a newer one cancels the one before, and one cancelled
    before it ever ran is closed as interrupted."""

    def __init__(self, runner: TurnRunner, recorder: TurnRecorder) -> None:
        self.runner = runner
        self.started = 0  # turns begun so far; the last one's number
        self._recorder = recorder
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while the last turn's task runs."""
        return self._task is not None and not self._task.done()

    def begin(self, start: TurnStart, settings: Settings, warmup: WarmUpResult | None) -> asyncio.Task[None]:
        """Begin the next turn (under ``settings``' connection, after ``warmup``), replacing the running one."""
        self.started += 1
        turn = self.started
        self._recorder.record(
            TurnOpened(
                turn,
                start.source,
                start.speech_end_at,
                strategy=settings.connection_strategy,
                rtt_ms=settings.emulated_rtt_ms,
                warmup_ms=warmup.ms if warmup is not None and warmup.ok else None,
                endpoint_at=start.endpoint_at,
                turn_end=start.turn_end,
                capture=start.capture,
                stretch_runs=start.stretch_runs,
                transcript=start.text or "",
            )
        )
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.create_task(
            self.runner.run(turn, start.audio, start.text, start.speculation), name=f"turn-{turn}"
        )
        # A task cancelled before its first step never runs TurnRunner.run's finally: end the turn here.
        self._task.add_done_callback(lambda _task: self._close_unstarted(turn))
        return self._task

    def _close_unstarted(self, turn: int) -> None:
        # A newer turn replaced this one before it began (typed turns in a burst): it was
        # interrupted, and says so, instead of staying "running" in the panel forever.
        lat = self._recorder.get(turn)
        if lat is not None and lat.outcome == "running":
            self._recorder.record(TurnClosed(turn, "interrupted"))

    def unheard(self, speaking: bool) -> TurnLatency | None:
        """The spoken turn in progress if none of its reply has been heard yet (no audio of it went
        out, and nothing is ``speaking``), else None."""
        lat = self._recorder.latest()
        if lat is None or lat.source != "voice" or not self.running or lat.first_audio_ms is not None or speaking:
            return None
        return lat

    async def carry_on(self, turn: int) -> None:
        """Turn ``turn`` was not over: the user went on before hearing any of its reply.  It ends as
        continued, and its words leave the history: they come again, whole, in the next turn."""
        self._recorder.record(TurnContinued(turn))
        await self.cancel()
        lat = self._recorder.get(turn)
        if lat is not None and lat.transcript:
            self.runner.reply.withdraw(lat.transcript)
        self.runner.reply.preemptive.discard()  # a request sent for the fragment, if the turn had not taken it

    async def cancel(self) -> None:
        """Cancel the running turn and wait until it has ended."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _describe(exc: BaseException) -> str:
    # Shown to the user: the message only; the class and the traceback are in the log.
    text = str(exc).strip()
    return text or "an unexpected error (details are in the log)"
