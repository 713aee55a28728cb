"""Streaming end-of-turn detection with the Silero VAD model that faster-whisper ships.

faster-whisper's own ``SileroVADModel`` only scores a whole buffer at once, so this
module runs the same ONNX file (``faster_whisper/assets/silero_vad_v6.onnx``) one
512-sample frame (32 ms at 16 kHz) at a time, carrying the LSTM state ``h``/``c``
and the 64-sample context between frames.  The ONNX session is loaded once per
process and shared; each :class:`Endpointer` owns its own recurrent state.

Decisions per frame (probability ``p``), following Silero's own hysteresis:

* ``p >= threshold``            voiced: extends the speech and cancels a running silence;
* ``p <  threshold - 0.15``     silent: starts the silence timer if none is running;
* anything in between           neither (a fading word does not start the timer).

A turn starts once ``min_speech_ms`` of voiced frames arrive without a gap longer
than ``_CANDIDATE_GAP_MS``; it ends when the silence timer reaches ``silence_ms``,
or is cut at ``max_turn_s`` (``capped=True``) so memory stays bounded.  The
reported end of speech is the end of the last voiced frame, not the moment the
timer fired: the latency breakdown measures from the former.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import numpy as np
import onnxruntime

from voice.audio import SAMPLE_RATE
from voice.model_cache import load_once

FRAME = 512  # Silero v5/v6 at 16 kHz is trained on exactly this window
_CONTEXT = 64  # samples of the previous frame the model sees in front of each window
_STATE_SHAPE = (1, 1, 128)
_NEG_THRESHOLD_GAP = 0.15  # Silero's default distance between start and stop thresholds
_CANDIDATE_GAP_MS = 160  # a gap this long before min_speech is reached drops the candidate
_MODEL_FILE = "silero_vad_v6.onnx"


@load_once
def vad_session() -> onnxruntime.InferenceSession:
    """The process-wide Silero ONNX session (loaded on first use, thread-safe).

    One intra-op thread: a 32 ms frame costs well under a millisecond, and more
    threads would only fight Whisper and the TTS for the CPU.
    """
    from faster_whisper.utils import get_assets_path

    path = os.path.join(get_assets_path(), _MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Silero VAD model not found at {path}; the installed faster-whisper does not ship {_MODEL_FILE}"
        )
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # No memory arena: it keeps the high-water mark of every concurrent session's run.
    opts.enable_cpu_mem_arena = False
    return onnxruntime.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class SpeechStarted:
    """The user started talking; ``start_sample`` is the start of the first voiced frame."""

    start_sample: int


@dataclass(frozen=True)
class TurnEnded:
    """The user's turn is over.

    ``speech_end_sample``: end of the last voiced frame (the true end of speech).
    ``fired_sample``: the sample at which the silence timer (or the cap) fired.
    ``audio``: 16 kHz float32 utterance from ``audio_start_sample`` (pre-roll included)
    to a little past the end of speech.  ``capped``: cut at ``max_turn_s`` while the
    user was still talking.  All positions count samples fed since the last reset.
    """

    start_sample: int
    speech_end_sample: int
    fired_sample: int
    audio_start_sample: int
    audio: np.ndarray
    capped: bool
    voiced_ms: float = 0.0  # voiced audio in the turn (a cough is short, a sentence is not)

    @property
    def silence_waited_ms(self) -> float:
        """How long after the end of speech the turn was declared over."""
        return (self.fired_sample - self.speech_end_sample) * 1000.0 / SAMPLE_RATE


Event = SpeechStarted | TurnEnded


class Endpointer:
    """Feed 16 kHz mono float32 chunks of any size; get speech-start and turn-end events.

    ``silence_ms``: silence after the last voiced frame that ends the turn.
    ``threshold``: Silero probability at or above which a frame is voiced.
    ``min_speech_ms``: voiced audio needed before a turn (and ``is_speaking``) starts.
    ``pre_roll_ms`` / ``post_roll_ms``: audio kept before the start / after the end
    of speech in ``TurnEnded.audio`` (Whisper misses clipped word edges).
    ``max_turn_s``: a turn is cut (``capped=True``) at this length.
    Not thread-safe: feed one instance from one task or thread at a time.
    """

    def __init__(
        self,
        silence_ms: int = 500,
        threshold: float = 0.5,
        min_speech_ms: int = 200,
        pre_roll_ms: int = 300,
        max_turn_s: float = 60.0,
        post_roll_ms: int = 200,
    ) -> None:
        if silence_ms <= 0 or min_speech_ms < 0 or pre_roll_ms < 0 or post_roll_ms < 0:
            raise ValueError("silence_ms must be > 0; min_speech_ms, pre_roll_ms, post_roll_ms >= 0")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        if max_turn_s <= 0:
            raise ValueError(f"max_turn_s must be > 0, got {max_turn_s}")
        self.silence_ms = silence_ms
        self.threshold = threshold
        self.neg_threshold = max(threshold - _NEG_THRESHOLD_GAP, 0.01)
        self.min_speech_ms = min_speech_ms
        self.pre_roll_ms = pre_roll_ms
        self.max_turn_s = max_turn_s
        self.post_roll_ms = min(post_roll_ms, silence_ms)
        self._silence_samples = silence_ms * SAMPLE_RATE // 1000
        self._min_speech_samples = min_speech_ms * SAMPLE_RATE // 1000
        self._pre_roll_samples = pre_roll_ms * SAMPLE_RATE // 1000
        self._post_roll_samples = self.post_roll_ms * SAMPLE_RATE // 1000
        self._max_turn_samples = int(max_turn_s * SAMPLE_RATE)
        self._candidate_gap_samples = _CANDIDATE_GAP_MS * SAMPLE_RATE // 1000
        self._session = vad_session()
        self.reset()

    def reset(self) -> None:
        """Forget everything: model state, buffered audio, sample count."""
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames: deque[np.ndarray] = deque()
        self._frames_start = 0  # sample index of self._frames[0]
        self._processed = 0  # samples scored by the model (whole frames)
        self._samples_seen = 0
        self._prob = 0.0
        self._speaking = False
        self._start: int | None = None  # first voiced sample of the candidate or turn
        self._voiced = 0  # voiced samples in the current candidate
        self._last_voiced_end = 0
        self._silence_start: int | None = None
        # The last turn ended on a pause, (first voiced sample, voiced samples): kept (its audio
        # too) until the next turn has started and its SpeechStarted has been handed out, so that
        # turn can carry on from it (resume_turn); let go at the next feed if it did not.
        self._ended: tuple[int, int] | None = None
        self._resume_offered = False

    # -- public views -------------------------------------------------------------------

    @property
    def samples_seen(self) -> int:
        """Total samples fed since the last reset (including a not yet scored partial frame)."""
        return self._samples_seen

    @property
    def speech_probability(self) -> float:
        """Silero's speech probability for the most recent 32 ms frame."""
        return self._prob

    @property
    def is_speaking(self) -> bool:
        """True from the moment a turn is confirmed (``min_speech_ms`` voiced) until it ends."""
        return self._speaking

    @property
    def voiced_ms(self) -> float:
        """Voiced audio (ms) in the current turn so far (0 when nobody speaks)."""
        return self._voiced * 1000.0 / SAMPLE_RATE if self._start is not None else 0.0

    @property
    def buffered_samples(self) -> int:
        """Audio samples held in memory; bounded by pre-roll + max_turn_s + a frame or two."""
        return sum(len(f) for f in self._frames) + len(self._pending)

    def current_utterance(self) -> np.ndarray:
        """The ongoing turn's audio so far (pre-roll included), or empty when nobody speaks."""
        if not self._speaking or self._start is None:
            return np.zeros(0, dtype=np.float32)
        return self._slice(max(self._start - self._pre_roll_samples, 0), self._processed)

    @property
    def pause(self) -> tuple[int, int] | None:
        """During a turn, once the voice has stopped: (end of the last voiced frame, samples of
        silence scored since).  None while nobody speaks or while the voice goes on."""
        if not self._speaking or self._silence_start is None:
            return None
        return self._last_voiced_end, self._processed - self._last_voiced_end

    def utterance_if_ended_now(self, post_roll_ms: int | None = None) -> np.ndarray:
        """The audio a :class:`TurnEnded` would carry if the current pause ended the turn.

        Identical to the event's ``audio`` when the pause does end it (same start, same
        post-roll), so a transcript made from it early is the transcript of the turn.
        ``post_roll_ms`` keeps that much audio after the end of speech instead (as far as
        it has been scored), for a model that wants more of the pause than the turn keeps.
        """
        if not self._speaking or self._start is None:
            return np.zeros(0, dtype=np.float32)
        audio_start = max(self._start - self._pre_roll_samples, self._frames_start)
        post_roll = self._post_roll_samples if post_roll_ms is None else post_roll_ms * SAMPLE_RATE // 1000
        return self._slice(audio_start, min(self._last_voiced_end + post_roll, self._processed))

    def end_turn_now(self) -> TurnEnded | None:
        """End the current turn at once, during a pause (adaptive endpointing: the caller
        decided the pause is long enough, e.g. after a complete-sounding sentence)."""
        if self.pause is None:
            return None
        return self._end_turn(self._processed, capped=False)

    def resume_turn(self, started: SpeechStarted) -> bool:
        """Make the turn that ``started`` began the continuation of the turn that ended before it:
        its audio, voiced time and pauses run on from that turn's start, as if the pause between
        them had not ended it.  Call it on the :class:`SpeechStarted` event, before the new turn
        ends; False (nothing changed) when there is no such turn (it was capped, or is gone).
        """
        ended, self._ended = self._ended, None
        self._resume_offered = False
        if ended is None or not self._speaking or self._start != started.start_sample:
            return False
        start, voiced = ended
        if start < self._frames_start:
            return False  # its audio is no longer buffered
        self._start = start
        self._voiced += voiced
        return True

    # -- feeding ------------------------------------------------------------------------

    def feed(self, chunk: np.ndarray) -> list[Event]:
        """Score every complete 32 ms frame in ``chunk`` (plus leftovers); return events in order."""
        samples = np.asarray(chunk, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {samples.shape}")
        self._samples_seen += len(samples)
        if self._resume_offered:  # the caller had its SpeechStarted and did not resume: let go
            self._resume_offered = False
            self._ended = None
            self._trim_idle()  # in a turn: the frames before its pre-roll
        if not len(samples):
            return []
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        # A stray NaN would poison the LSTM state for the rest of the session.
        buf = np.nan_to_num(buf, nan=0.0, posinf=0.0, neginf=0.0)
        n_frames = len(buf) // FRAME
        self._pending = buf[n_frames * FRAME :].copy()
        events: list[Event] = []
        for i in range(n_frames):
            events.extend(self._step(buf[i * FRAME : (i + 1) * FRAME].copy()))
        return events

    def _score(self, frame: np.ndarray) -> float:
        window = np.concatenate([self._context, frame])[np.newaxis, :]
        prob, self._h, self._c = self._session.run(None, {"input": window, "h": self._h, "c": self._c})
        self._context = frame[-_CONTEXT:]
        return float(np.asarray(prob).reshape(-1)[0])

    def _step(self, frame: np.ndarray) -> list[Event]:
        frame_start = self._processed
        frame_end = frame_start + FRAME
        self._frames.append(frame)
        self._processed = frame_end
        p = self._prob = self._score(frame)

        if p >= self.threshold:
            if self._start is None:
                self._start = frame_start
                self._voiced = 0
            self._voiced += FRAME
            self._last_voiced_end = frame_end
            self._silence_start = None
        elif p < self.neg_threshold and self._start is not None and self._silence_start is None:
            self._silence_start = frame_start

        events: list[Event] = []
        if not self._speaking:
            if self._start is not None:
                if self._voiced >= self._min_speech_samples:
                    self._speaking = True
                    events.append(SpeechStarted(start_sample=self._start))
                    self._resume_offered = self._ended is not None
                elif self._silence_start is not None and frame_end - self._silence_start >= self._candidate_gap_samples:
                    self._start = None  # a click or a breath, not a turn
                    self._silence_start = None
            if not self._speaking:
                self._trim_idle()
                return events

        assert self._start is not None
        if self._silence_start is not None and frame_end - self._silence_start >= self._silence_samples:
            events.append(self._end_turn(frame_end, capped=False))
        elif frame_end - self._start >= self._max_turn_samples:
            events.append(self._end_turn(frame_end, capped=True))
        return events

    def _end_turn(self, fired: int, *, capped: bool) -> TurnEnded:
        assert self._start is not None
        audio_start = max(self._start - self._pre_roll_samples, self._frames_start)
        audio_end = fired if capped else min(self._last_voiced_end + self._post_roll_samples, fired)
        event = TurnEnded(
            start_sample=self._start,
            speech_end_sample=fired if capped and self._silence_start is None else self._last_voiced_end,
            fired_sample=fired,
            audio_start_sample=audio_start,
            audio=self._slice(audio_start, audio_end),
            capped=capped,
            voiced_ms=self._voiced * 1000.0 / SAMPLE_RATE,
        )
        self._ended = None if capped else (self._start, self._voiced)
        self._speaking = False
        self._start = None
        self._voiced = 0
        self._silence_start = None
        if capped:
            # The next turn must not re-send the tail of this one as its pre-roll.
            self._frames.clear()
            self._frames_start = fired
        self._trim_idle()
        return event

    def _trim_idle(self) -> None:
        """Outside a turn keep only the pre-roll (plus a pending candidate's audio, and the ended
        turn's while it may still be resumed: at most ``max_turn_s`` back)."""
        keep_from = self._processed - self._pre_roll_samples - FRAME
        if self._start is not None:
            keep_from = min(keep_from, self._start - self._pre_roll_samples)
        if self._ended is not None and self._processed - self._ended[0] >= self._max_turn_samples:
            self._ended = None  # a turn resumed from it would already be over the cap
        if self._ended is not None:
            keep_from = min(keep_from, self._ended[0] - self._pre_roll_samples)
        while self._frames and self._frames_start + len(self._frames[0]) <= keep_from:
            self._frames_start += len(self._frames.popleft())

    def _slice(self, start: int, end: int) -> np.ndarray:
        """Audio between two absolute sample positions, clamped to what is still buffered."""
        if end <= start or not self._frames:
            return np.zeros(0, dtype=np.float32)
        whole = np.concatenate(list(self._frames))
        lo = max(start - self._frames_start, 0)
        hi = max(min(end - self._frames_start, len(whole)), lo)
        return whole[lo:hi].copy()
