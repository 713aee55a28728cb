"""One turn's run through the stages: transcript -> reply -> speech, every stage stamped.

The session decides *when* a turn starts and whether a newer one replaces it (it owns the
task); a :class:`TurnRunner` does what happens inside one: take the transcript (usually the one
started during the pause), resume a reply cut for nothing, ask the reply stage for sentences and
have the speech stage say them as they arrive.  A turn never takes the session down: whatever
goes wrong ends that turn as an error the user can read, and the outcome is always reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import numpy as np

from voice.audio import SAMPLE_RATE
from voice.events import Emit, LatencyUpdate, Notice, TurnDone, UserSaid
from voice.incremental import REPLIES
from voice.latency import TurnLatency
from voice.recognizer import SpeechRecognizer, Transcript
from voice.reply import ReplyStage
from voice.speech import SpeechStage
from voice.turns import InterruptionScreen, Speculation

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
        clock: Callable[[], float],
    ) -> None:
        self.transcriber = transcriber
        self.reply = reply
        self.speech = speech
        self.interruption = interruption
        self.resume_cut = resume_cut
        self._emit = emit
        self._clock = clock

    async def run(
        self, lat: TurnLatency, audio: np.ndarray | None, text: str | None, speculation: Speculation | None = None
    ) -> None:
        """Run one turn: spoken (``audio``, maybe with the pause's ``speculation``) or typed
        (``text``).  Sets ``lat.outcome`` and emits :class:`TurnDone` however it ends."""
        spoken: list[str] = []
        try:
            self._update(lat)
            if audio is not None:
                transcript = await self._transcript(lat, audio, speculation)
                cut = self.interruption.false_interruption(transcript.no_speech, transcript.text)
                # The reply was stopped for nothing that forms a turn: say it again from the cut.
                if cut and self.resume_cut:
                    lat.outcome = "resumed"
                    self.interruption.stats.resumed += 1
                    log.info("False interruption in turn %d: resuming the reply (%d sentences)", lat.turn, len(cut))
                    again: list[str] = []
                    try:
                        await self.speech.speak_again(lat, cut, again)
                    finally:  # what was heard again goes back into the reply it belongs to
                        self.reply.remember_resumed(again, complete=again == cut)
                    return
                if transcript.no_speech:
                    lat.outcome = "no_speech"
                    seconds = len(audio) / SAMPLE_RATE
                    log.info("Turn %d: no speech in %.0f ms of audio; no LLM call", lat.turn, seconds * 1000)
                    return
                text = transcript.text
            assert text is not None
            lat.transcript = text
            self._emit(UserSaid(lat.turn, text))
            self._update(lat)
            if await self.reply.ensure_endpoint(lat):
                with REPLIES.running():  # no session hears speech in stretches meanwhile (voice.incremental)
                    await self._reply(lat, text, spoken)
            if lat.outcome == "running":
                lat.outcome = "ok"
        except asyncio.CancelledError:
            if lat.outcome != "continued":  # the session marks a turn it carries on before cancelling it
                lat.outcome = "interrupted"
            raise
        except Exception as exc:  # a turn must never take the session down
            lat.outcome, lat.error = "error", _describe(exc)
            log.exception("Turn %d failed", lat.turn)
            self._emit(Notice(f"Something went wrong in this turn: {lat.error}", "error"))
        finally:
            if spoken:
                self.reply.remember(spoken)
            if lat.outcome == "continued" and lat.transcript:
                self.reply.withdraw(lat.transcript)
            if lat.outcome != "no_speech":
                lat.reply_done_ms = round(lat.since_speech_end(self._clock()), 1)
            if lat.first_sentence_ms is not None:
                log.info("TIMING: First sentence ready %.0f ms after speech end", lat.first_sentence_ms)
            if lat.first_audio_ms is not None:
                log.info("TIMING: First audio ready %.0f ms after speech end", lat.first_audio_ms)
            self._emit(TurnDone(lat.snapshot()))

    async def _transcript(self, lat: TurnLatency, audio: np.ndarray, speculation: Speculation | None) -> Transcript:
        """The turn's transcript: the one started during the pause on the same audio (usually done
        by now), else the recognizer on a worker thread."""
        if speculation is not None and speculation.task is not None:
            transcript = await speculation.task
            lat.mark("transcript_ms", speculation.done_at or self._clock())
            lat.extras["stt_started_ms"] = round(lat.since_speech_end(speculation.started_at), 1)
        else:
            transcript = await asyncio.to_thread(self.transcriber.transcribe, audio)
            lat.mark("transcript_ms", self._clock())
        lat.stt_compute_ms = round(transcript.compute_ms, 1)
        lat.stt_engine = transcript.engine
        lat.transcript = transcript.text
        return transcript

    async def _reply(self, lat: TurnLatency, text: str, spoken: list[str]) -> None:
        """The reply stage's sentences, spoken by the speech stage as they arrive."""
        self.speech.new_reply()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self.speech.speak(lat, sentences, spoken), name=f"tts-{lat.turn}")
        try:
            try:
                await self.reply.run(lat, text, sentences.put_nowait)
            finally:
                sentences.put_nowait(None)
            await speaker
        finally:
            if not speaker.done():
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaker

    def _update(self, lat: TurnLatency) -> None:
        self._emit(LatencyUpdate(lat.snapshot()))


def _describe(exc: BaseException) -> str:
    # Shown to the user: the message only; the class and the traceback are in the log.
    text = str(exc).strip()
    return text or "an unexpected error (details are in the log)"
