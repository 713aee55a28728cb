"""The turn-detection stage: microphone audio in, "the user's turn is over" out.

It owns the streaming endpointer (Silero VAD, :mod:`voice.turns.endpointing`) and, on every
pause, gathers the evidence :func:`voice.turns.policy.decide` weighs:

* an early transcript (the session's speech recognizer, in a thread), started ``TurnPolicy.transcript_after_ms`` into
  the pause (0: at its first silent frame): adopted by the turn if the pause ends it, so
  the transcript is (nearly) ready when the turn ends; discarded if the user goes on, and
  started again on the next pause;
* the text end-of-turn model's probability on that transcript (:mod:`voice.turns.end_of_turn_text`,
  in the same thread, right after Whisper: about a millisecond);
* the audio model's completeness probability (Smart Turn, in a thread), started once the
  voice has paused for ``SPECULATE_AFTER_MS``: once per pause, never per chunk.

The decision is re-taken on every chunk (the silence grew) and the moment a signal
arrives (no need to wait for the next chunk, 100 ms away from a browser).  What ended
the turn travels with it as a :class:`~voice.latency.TurnEnd`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from voice.incremental import IncrementalTranscriber
from voice.latency import TurnEnd
from voice.recognizer import SpeechRecognizer, Transcript
from voice.turns.end_of_turn_text import EndOfTurnModelError, TextEndOfTurn, TextVerdict, load_text_end_of_turn
from voice.turns.endpointing import FRAME, SAMPLE_RATE, Endpointer, SpeechStarted, TurnEnded
from voice.turns.policy import EndSignal, TurnPolicy, decide, text_sounds_complete
from voice.turns.smart_turn import SmartTurnModel, TurnPrediction

log = logging.getLogger(__name__)

# Ask the audio model once the voice has paused this long, on the audio up to there.
SPECULATE_AFTER_MS = 150
FRAME_MS = FRAME * 1000 // SAMPLE_RATE  # the VAD's frame: the earliest a pause can be seen


@dataclass
class Speculation:
    """The evidence gathered on one pause, before the turn is known to be over.

    Adopted by the turn if the pause does end it (same last voiced frame), discarded if the
    user speaks again.  Its audio equals the turn's, so its transcript is the turn's.
    """

    speech_end_sample: int
    started_at: float
    task: asyncio.Task[Transcript] | None = None
    transcript: Transcript | None = None
    done_at: float | None = None
    model_task: asyncio.Task[TurnPrediction | None] | None = None
    prediction: TurnPrediction | None = None
    text_verdict: TextVerdict | None = None  # the text model's, with the transcript

    def text_complete(self) -> bool | None:
        """The word-list rule's verdict on the early transcript, None until it is ready."""
        return None if self.transcript is None else text_sounds_complete(self.transcript.text)

    @property
    def text_probability(self) -> float | None:
        """The text model's verdict, None until the transcript (and it) is ready."""
        return None if self.text_verdict is None else self.text_verdict.probability

    @property
    def probability(self) -> float | None:
        """The audio model's verdict, None until it has answered (or if it does not run)."""
        return None if self.prediction is None else self.prediction.probability

    def cancel_model(self) -> None:
        """Stop waiting for the audio model (the transcript task may still be adopted)."""
        if self.model_task is not None and not self.model_task.done():
            self.model_task.cancel()

    def cancel(self) -> None:
        """Discard the whole speculation (the user went on talking, or the session stops)."""
        self.cancel_model()
        if self.task is not None and not self.task.done():
            self.task.cancel()


@dataclass
class SpeculationStats:
    """How the early transcripts fared: adopted by a turn, or discarded because the user went on."""

    started: int = 0
    adopted: int = 0
    discarded: int = 0
    early_ends: int = 0  # turns ended before the detector's longest wait, on the evidence
    continued: int = 0  # ended turns the user went on with before hearing the reply (resume)


@dataclass(frozen=True)
class DetectedTurn:
    """A finished user turn: the endpointer's event, when speech ended, and why it ended."""

    ended: TurnEnded
    speech_end_at: float  # clock() time of the true end of speech
    turn_end: TurnEnd
    speculation: Speculation | None = field(default=None, compare=False)
    heard_at: float = 0.0  # arrival of the last chunk fed: the one speech_end_at was stamped from


class TurnDetector:
    """Feed converted 16 kHz audio; get speech starts and finished turns.

    ``on_turn`` receives turns that a signal ends between two chunks (a transcript or the
    model answered); turns found while feeding are returned by :meth:`feed` in order.
    ``audio_model`` loads Smart Turn (only called if the policy uses it); ``text_model`` loads
    the text end-of-turn model (called on every early transcript: the panel shows its verdict
    whichever detector runs).
    """

    def __init__(
        self,
        policy: TurnPolicy,
        *,
        transcriber: SpeechRecognizer,
        audio_model: Callable[[], SmartTurnModel],
        on_turn: Callable[[DetectedTurn], None],
        text_model: Callable[[], TextEndOfTurn] = load_text_end_of_turn,
        clock: Callable[[], float],
        early_transcript: bool = True,
        max_turn_s: float = 60.0,
        on_early_transcript: Callable[[str, bool], None] | None = None,
        on_discard: Callable[[], None] | None = None,
        incremental: bool = False,
    ) -> None:
        self.policy = policy
        self.transcriber = transcriber
        self.early_transcript = early_transcript or policy.uses_text
        self.stats = SpeculationStats()
        self._audio_model = audio_model
        self._text_model = text_model
        self._on_turn = on_turn
        # Preemptive generation (voice.preemptive): told of each pause's transcript while the pause
        # goes on (and whether the policy reads it unfinished), and of the user going on talking.
        self._on_early_transcript = on_early_transcript
        self._on_discard = on_discard
        self._clock = clock
        self._max_turn_s = max_turn_s
        self._lock = asyncio.Lock()  # the endpointer is fed by one task at a time
        self._speculation: Speculation | None = None
        self._last_feed: tuple[float, float] | None = None  # the last chunk's arrival and resampler delay
        self.endpointer = self._new_endpointer()
        # INCREMENTAL_TRANSCRIPT: the utterance is heard in stretches while it goes on (voice.incremental).
        self.incremental = IncrementalTranscriber(lambda: self.transcriber) if incremental else None

    def _new_endpointer(self) -> Endpointer:
        # The post-roll (audio kept after the last voiced frame) is what the early transcript
        # must wait for, so it is as short as its start: its audio is then the turn's.
        post_roll = max(self.policy.transcript_after_ms, FRAME_MS)
        return Endpointer(silence_ms=self.policy.backstop_ms, max_turn_s=self._max_turn_s, post_roll_ms=post_roll)

    async def set_policy(self, policy: TurnPolicy) -> None:
        """Switch detector or waits; a turn in progress starts over (its audio is dropped)."""
        async with self._lock:
            self._discard_speculation()
            self.policy = policy
            self.early_transcript = self.early_transcript or policy.uses_text
            self.endpointer = self._new_endpointer()

    async def close(self) -> None:
        """Cancel the pause's work in flight."""
        if self.incremental is not None:
            await self.incremental.close()
        spec, self._speculation = self._speculation, None
        if spec is not None:
            spec.cancel()
            for task in (spec.task, spec.model_task):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def feed(
        self, audio: np.ndarray, now: float, delay_samples: float = 0.0
    ) -> list[SpeechStarted | DetectedTurn]:
        """Score ``audio`` (16 kHz float32); ``now``: its arrival; ``delay_samples``: audio the
        resampler still holds (captured before ``now``, not yet fed)."""
        async with self._lock:
            self._last_feed = (now, delay_samples)
            endpointer = self.endpointer
            found = await asyncio.to_thread(endpointer.feed, audio)
            out: list[SpeechStarted | DetectedTurn] = []
            for event in found:
                if isinstance(event, SpeechStarted):
                    out.append(event)
                else:
                    signal: EndSignal = "capped" if event.capped else self.policy.backstop_signal
                    out.append(self._finish(event, signal, now, delay_samples))
            if self.incremental is not None:
                self.incremental.observe(
                    endpointer.pause, lambda ms: endpointer.utterance_if_ended_now(post_roll_ms=ms)
                )
            turn = self._on_pause(now, delay_samples)
            if turn is not None:
                out.append(turn)
            return out

    def resume(self, started: SpeechStarted) -> bool:
        """The user went on talking before hearing any reply to the turn that just ended: that
        pause was a hesitation, not the end.  The speech ``started`` carries that turn on (its
        audio from the turn's start), so the next pause is judged, and transcribed, on the whole
        utterance.  Call it on the event, before feeding more audio; False when the turn cannot
        be carried on (it was capped)."""
        if not self.endpointer.resume_turn(started):
            return False
        self.stats.continued += 1
        return True

    # -- the pause ----------------------------------------------------------------------

    def _on_pause(self, now: float, delay_samples: float) -> DetectedTurn | None:
        """Start gathering evidence on a new pause; end the turn if the evidence says so."""
        pause = self.endpointer.pause
        spec = self._speculation
        if spec is not None and (pause is None or spec.speech_end_sample != pause[0]):
            self._discard_speculation()  # the user went on talking: the evidence is stale
            spec = None
        if pause is None:
            return None
        speech_end, silence = pause
        silence_ms = silence * 1000 / SAMPLE_RATE
        if spec is None and silence_ms >= self.endpointer.post_roll_ms:  # the transcript's audio is in
            spec = self._speculation = self._start_speculation(speech_end)
        if spec is not None and spec.model_task is None and silence_ms >= SPECULATE_AFTER_MS:
            self._start_model(spec)
        return self._decide(now, delay_samples)

    def _start_speculation(self, speech_end: int) -> Speculation:
        spec = Speculation(speech_end, self._clock())
        if self.early_transcript:
            audio = self.endpointer.utterance_if_ended_now()
            spec.task = asyncio.create_task(self._transcribe(spec, audio), name="early-stt")
            self.stats.started += 1
        return spec

    def _start_model(self, spec: Speculation) -> None:
        if self.policy.uses_audio_model:
            audio = self.endpointer.utterance_if_ended_now(post_roll_ms=SPECULATE_AFTER_MS)
            spec.model_task = asyncio.create_task(self._predict(spec, audio), name="smart-turn")

    async def _transcribe(self, spec: Speculation, audio: np.ndarray) -> Transcript:
        if self.incremental is None:
            transcript, spec.text_verdict = await asyncio.to_thread(self._transcribe_and_score, audio)
        else:  # the audio runs from its start to post_roll_ms past the pause's last voiced frame
            origin = spec.speech_end_sample + self.endpointer.post_roll_ms * SAMPLE_RATE // 1000 - len(audio)
            transcript = await self.incremental.transcribe(audio, origin, spec.speech_end_sample)
            spec.text_verdict = await asyncio.to_thread(self._score, transcript.text)
        spec.transcript = transcript
        spec.done_at = self._clock()
        if self._speculation is spec and self._on_early_transcript is not None and transcript.text:
            probability = None if spec.text_verdict is None else spec.text_verdict.probability
            # Before the turn may end on it, just below.
            self._on_early_transcript(transcript.text, self.policy.reads_unfinished(probability))
        await self._recheck(spec)
        return transcript

    def _transcribe_and_score(self, audio: np.ndarray) -> tuple[Transcript, TextVerdict | None]:
        """The recognizer, then the text model on its words (one thread: the model needs the text)."""
        transcript = self.transcriber.transcribe(audio)
        return transcript, self._score(transcript.text)

    def _score(self, text: str) -> TextVerdict | None:
        try:
            return self._text_model().verdict(text)
        except EndOfTurnModelError as exc:  # the turn goes on without it (its waits still hold)
            log.warning("The text end-of-turn model is unavailable: %s", exc)
            return None

    async def _predict(self, spec: Speculation, audio: np.ndarray) -> TurnPrediction | None:
        try:
            model = await asyncio.to_thread(self._audio_model)
            spec.prediction = await asyncio.to_thread(model.predict, audio)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the turn goes on without the model (its waits still hold)
            log.warning("The audio turn model failed on this pause: %s", exc)
            return None
        await self._recheck(spec)
        return spec.prediction

    async def _recheck(self, spec: Speculation) -> None:
        """A signal arrived between chunks: decide now instead of at the next chunk."""
        async with self._lock:
            if self._speculation is not spec or self._last_feed is None:
                return
            turn = self._decide(*self._last_feed)
        if turn is not None:
            self._on_turn(turn)

    def _decide(self, now: float, delay_samples: float) -> DetectedTurn | None:
        pause = self.endpointer.pause
        spec = self._speculation
        if pause is None:
            return None
        silence_ms = pause[1] * 1000 / SAMPLE_RATE
        text = spec.text_complete() if spec is not None else None
        probability = spec.probability if spec is not None else None
        text_probability = spec.text_probability if spec is not None else None
        signal = decide(self.policy, silence_ms, text, probability, text_probability)
        if signal is None:
            return None
        event = self.endpointer.end_turn_now()
        if event is None:
            return None
        return self._finish(event, signal, now, delay_samples)

    def _finish(self, event: TurnEnded, signal: EndSignal, now: float, delay_samples: float) -> DetectedTurn:
        spec, self._speculation = self._speculation, None
        if spec is not None and spec.speech_end_sample != event.speech_end_sample:
            spec.cancel()  # gathered on an earlier pause of this turn (a capped turn, say)
            if spec.task is not None:
                self.stats.discarded += 1
            spec = None
        if signal not in ("capped", self.policy.backstop_signal):
            self.stats.early_ends += 1
        turn_end = TurnEnd(
            detector=self.policy.detector,
            signal=signal,
            silence_waited_ms=round(event.silence_waited_ms, 1),
            probability=None if spec is None else spec.probability,
            text_complete=None if spec is None or self.policy.uses_text_model else spec.text_complete(),
            model_ms=None if spec is None or spec.prediction is None else round(spec.prediction.compute_ms, 1),
            text_probability=None if spec is None else spec.text_probability,
            text_ms=None if spec is None or spec.text_verdict is None else round(spec.text_verdict.compute_ms, 2),
        )
        adopted: Speculation | None = None
        if spec is not None:
            spec.cancel_model()  # decided: the model's answer is no longer needed
            if spec.task is not None:  # its transcript is the turn's
                self.stats.adopted += 1
                adopted = spec
        # The audio received after the end of speech (plus what the resampler still holds) was
        # captured after it: its duration before ``now`` is when the user stopped talking.
        lag = self.endpointer.samples_seen - event.speech_end_sample + delay_samples
        return DetectedTurn(event, now - lag / SAMPLE_RATE, turn_end, adopted, heard_at=now)

    def _discard_speculation(self) -> None:
        spec, self._speculation = self._speculation, None
        if spec is not None:
            if self._on_discard is not None:
                self._on_discard()
            spec.cancel()
            if spec.task is not None:
                self.stats.discarded += 1
