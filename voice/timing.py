"""A turn's timing flows one way: stages emit small timestamped events, one recorder builds the
turn's :class:`~voice.latency.TurnLatency` from them.

A stage never holds a turn's record: it says what happened and when (a ``perf_counter()``
stamp taken where it happened), through the narrow :data:`Timing` callable it was given.  The
:class:`TurnRecorder` is the only writer of the records (they are frozen; it replaces them): it
turns each stamp into ms from the turn's true end of speech, keeps a stage's first stamp, and
publishes the new record to the session's listeners (:class:`~voice.events.LatencyUpdate`, and
:class:`~voice.events.TurnDone` once the turn is over).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm import RequestTiming, Strategy
from voice.events import Emit, LatencyUpdate, TurnDone
from voice.latency import Clock, Outcome, TurnEnd, TurnLatency, TurnSource
from voice.tts import TTSConnection
from voice.uplink import ChunkCapture

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnOpened:
    """A turn began (the session's decision).  ``speech_end_at``: the true end of speech (or the
    typed text's arrival); ``endpoint_at``: when the turn was judged over; ``capture``: the
    page's capture time of the chunk the end of speech was stamped from (the zero moves to it);
    ``stretch_runs``: incremental transcription's runs while the user spoke."""

    turn: int
    source: TurnSource
    speech_end_at: float
    strategy: Strategy = "prewarmed"
    rtt_ms: float = 0.0
    warmup_ms: float | None = None
    endpoint_at: float | None = None
    turn_end: TurnEnd | None = None
    capture: ChunkCapture | None = None
    stretch_runs: int | None = None
    transcript: str = ""  # a typed turn's text


@dataclass(frozen=True)
class TranscriptReady:
    """The speech recognizer heard the turn (``started_at``: when it began, if during the pause)."""

    turn: int
    at: float
    text: str
    compute_ms: float
    engine: str
    started_at: float | None = None


@dataclass(frozen=True)
class RequestSent:
    """The turn's LLM request left (``preemptive``: it left during the pause and was adopted)."""

    turn: int
    at: float
    preemptive: bool = False


@dataclass(frozen=True)
class RequestTimed:
    """What the client measured of the turn's request so far (status, first token, connection)."""

    turn: int
    timing: RequestTiming


@dataclass(frozen=True)
class RequestRetried:
    """An attempt of the turn's request failed and another follows."""

    turn: int
    attempts: int
    retries: int


@dataclass(frozen=True)
class ReplyCopied:
    """The reply copied an answer the model was shown (``copies`` so far); ``asked_again``: the
    model is asked again without its examples."""

    turn: int
    copies: int
    asked_again: bool


@dataclass(frozen=True)
class SentenceReady:
    """One more sentence of the reply, ``chars`` long; ``request``: its request's timing then."""

    turn: int
    at: float
    chars: int
    request: RequestTiming | None = None


@dataclass(frozen=True)
class PromptCacheRead:
    """The embedded server's own count of the reply's prompt: tokens from its cache, evaluated."""

    turn: int
    cached_tokens: int
    evaluated_tokens: int


@dataclass(frozen=True)
class AudioPlayed:
    """Reply audio went to playback: the turn's first, or the first of another engine
    (``fallback``: the offline engine stood in).  ``connection``: the first sentence's TTS socket."""

    turn: int
    at: float
    engine: str
    connection: TTSConnection | None = None
    fallback: bool = False


@dataclass(frozen=True)
class SpeechFailed:
    """Speech output failed: the rest of the reply is text only."""

    turn: int


@dataclass(frozen=True)
class BufferedSpeechUsed:
    """The turn plays a first sentence synthesized during the pause; its synthesis ran from
    ``started_at`` to ``done_at`` (None: not yet), ``cpu_ms`` of CPU (None: not known)."""

    turn: int
    started_at: float | None
    done_at: float | None
    cpu_ms: float | None


@dataclass(frozen=True)
class PlaybackConfirmed:
    """The page's player said the first audio plays; its word arrived ``at``; ``player_ms``: the
    player's own share (the chunk's arrival in the page to the report)."""

    turn: int
    at: float
    player_ms: float | None = None


@dataclass(frozen=True)
class TurnContinued:
    """The user went on before hearing any of the reply: the turn carries on into the next."""

    turn: int


@dataclass(frozen=True)
class TurnClosed:
    """The turn is over, ``at`` (None: it never ran); an outcome already decided (continued) stays."""

    turn: int
    outcome: Outcome
    at: float | None = None
    error: str | None = None


TimingEvent = (
    TurnOpened
    | TranscriptReady
    | RequestSent
    | RequestTimed
    | RequestRetried
    | ReplyCopied
    | SentenceReady
    | PromptCacheRead
    | AudioPlayed
    | SpeechFailed
    | BufferedSpeechUsed
    | PlaybackConfirmed
    | TurnContinued
    | TurnClosed
)
# What a stage is given to report its timing with.
Timing = Callable[[TimingEvent], object]


class TurnRecorder:
    """A session's turns, as their records: built from timing events, published as they change."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._turns: list[TurnLatency] = []
        self._where: dict[int, int] = {}  # turn -> its index in _turns
        self._closed: set[int] = set()

    @property
    def turns(self) -> list[TurnLatency]:
        """Every turn's record so far, oldest first."""
        return list(self._turns)

    def latest(self) -> TurnLatency | None:
        """The turn begun last."""
        return self._turns[-1] if self._turns else None

    def get(self, turn: int) -> TurnLatency | None:
        """Turn ``turn``'s record, None for a turn never opened."""
        index = self._where.get(turn)
        return None if index is None else self._turns[index]

    def record(self, event: TimingEvent) -> bool:
        """Fold ``event`` into its turn's record; True if it changed it (then it is published).
        Events of an unknown turn, and a second close, change nothing."""
        if isinstance(event, TurnOpened):
            lat = _opened(event)
            self._where[lat.turn] = len(self._turns)
            self._turns.append(lat)
            self._emit(LatencyUpdate(lat))
            return True
        old = self.get(event.turn)
        if old is None or (isinstance(event, TurnClosed) and event.turn in self._closed):
            return False
        new = _apply(old, event)
        if isinstance(event, TurnClosed):
            self._closed.add(event.turn)
            _log_closed(new)
        elif new == old:
            return False
        self._turns[self._where[event.turn]] = new
        self._emit(TurnDone(new) if isinstance(event, TurnClosed) else LatencyUpdate(new))
        if isinstance(event, PlaybackConfirmed):
            log.info(
                "TIMING: Playback confirmed by the browser %.0f ms after speech end (turn %d; first audio "
                "sent at %.0f ms, %s ms of the gap in the browser's player)",
                new.playback_confirmed_ms,
                new.turn,
                new.first_audio_ms,
                "?" if event.player_ms is None else f"{event.player_ms:.0f}",
            )
        return True


def _opened(event: TurnOpened) -> TurnLatency:
    extras: dict[str, float] = {}
    speech_end_at, uplink_ms, uncertainty_ms, path = event.speech_end_at, None, None, None
    clock: Clock = "arrival"
    if event.source == "text":
        clock = "typed"
    elif event.capture is not None:  # the zero moves back to the page's capture of the chunk
        uplink_ms = round(max(event.capture.uplink_ms, 0.0), 1)  # a negative way up is the offset's error
        speech_end_at -= uplink_ms / 1000.0
        clock, uncertainty_ms = "page", round(event.capture.uncertainty_ms, 1)
        if event.capture.in_page_ms is not None:
            extras["uplink_in_page_ms"] = event.capture.in_page_ms
        path = event.capture.path.value
    end = event.turn_end
    if end is not None:
        extras["silence_waited_ms"] = end.silence_waited_ms
        if end.model_ms is not None:
            extras["turn_model_ms"] = end.model_ms
        if end.text_ms is not None:
            extras["text_model_ms"] = end.text_ms
    if event.stretch_runs is not None:
        extras["stt_stretch_runs"] = event.stretch_runs
    lat = TurnLatency(
        turn=event.turn,
        source=event.source,
        strategy=event.strategy,
        rtt_ms=event.rtt_ms,
        speech_end_at=speech_end_at,
        clock=clock,
        uplink_ms=uplink_ms,
        uplink_path=path,
        clock_uncertainty_ms=uncertainty_ms,
        warmup_ms=event.warmup_ms,
        transcript=event.transcript,
        turn_end=end,
        extras=extras,
    )
    return _stage(lat, "endpoint_ms", event.endpoint_at)


def _ms(lat: TurnLatency, at: float) -> float:
    return round(lat.since_speech_end(at), 1)


def _stage(lat: TurnLatency, stage: str, at: float | None, **more: Any) -> TurnLatency:
    """``lat`` with ``stage`` stamped at ``at`` unless it was already (a stage keeps its first)."""
    if at is not None and getattr(lat, stage) is None:
        more[stage] = _ms(lat, at)
    return dataclasses.replace(lat, **more) if more else lat


def _extras(lat: TurnLatency, **values: float) -> dict[str, float]:
    return {**lat.extras, **values}


def _request(lat: TurnLatency, timing: RequestTiming | None) -> TurnLatency:
    if timing is None:
        return lat
    offset = lat.since_speech_end(timing.started_at)
    known: dict[str, Any] = {}
    for stage, value in (("status_ms", timing.ttfb_ms), ("first_token_ms", timing.first_token_ms)):
        if value is not None and getattr(lat, stage) is None:
            known[stage] = round(offset + value, 1)
    return dataclasses.replace(
        lat,
        **known,
        reused_connection=timing.reused_connection,
        dns_ms=timing.dns_ms,
        connect_ms=timing.connect_ms,
        llm_attempts=timing.attempts,
    )


def _apply(lat: TurnLatency, event: TimingEvent) -> TurnLatency:
    """``lat`` after ``event`` (a new record; ``lat`` is frozen)."""
    match event:
        case TranscriptReady():
            extras = lat.extras if event.started_at is None else _extras(lat, stt_started_ms=_ms(lat, event.started_at))
            return _stage(
                lat,
                "transcript_ms",
                event.at,
                stt_compute_ms=event.compute_ms,
                stt_engine=event.engine,
                transcript=event.text,
                extras=extras,
            )
        case RequestSent():
            return _stage(
                lat,
                "request_sent_ms",
                event.at,
                **({"extras": _extras(lat, preemptive=1.0)} if event.preemptive else {}),
            )
        case RequestTimed():
            return _request(lat, event.timing)
        case RequestRetried():
            retries = float(event.retries)
            extras = _extras(lat, llm_retries=retries) if retries > lat.extras.get("llm_retries", 0) else lat.extras
            return dataclasses.replace(lat, llm_attempts=event.attempts, extras=extras)
        case ReplyCopied():
            copied = {"copied_replies": float(event.copies), **({"asked_again": 1.0} if event.asked_again else {})}
            return dataclasses.replace(lat, extras=_extras(lat, **copied))
        case SentenceReady():
            lat = _request(_stage(lat, "first_sentence_ms", event.at), event.request)
            return dataclasses.replace(lat, sentences=lat.sentences + 1, chars=lat.chars + event.chars)
        case PromptCacheRead():
            cache = {
                "prompt_cached_tokens": float(event.cached_tokens),
                "prompt_evaluated_tokens": float(event.evaluated_tokens),
            }
            return dataclasses.replace(lat, extras=_extras(lat, **cache))
        case AudioPlayed():
            first = lat.first_audio_ms is None
            voice: dict[str, Any] = {"tts_engine": event.engine, "tts_fallback": lat.tts_fallback or event.fallback}
            if first and event.connection is not None:
                voice.update(
                    tts_connection=event.connection.label,
                    tts_setup_ms=event.connection.setup_ms,
                    tts_wait_ms=event.connection.waited_ms,
                )
            return _stage(lat, "first_audio_ms", event.at, **voice)
        case SpeechFailed():
            return dataclasses.replace(lat, tts_engine="none (failed)")
        case BufferedSpeechUsed():
            buffered = {"tts_buffered": 1.0}
            if event.started_at is not None:
                buffered["tts_buffer_started_ms"] = _ms(lat, event.started_at)
            if event.done_at is not None:
                buffered["tts_buffer_ready_ms"] = _ms(lat, event.done_at)
            if event.cpu_ms is not None:
                buffered["tts_buffer_cpu_ms"] = event.cpu_ms
            return dataclasses.replace(lat, extras=_extras(lat, **buffered))
        case PlaybackConfirmed():
            # Once, and only after the first audio was sent: the report's arrival is an upper bound of "heard".
            if lat.first_audio_ms is None or lat.playback_confirmed_ms is not None:
                return lat
            player = {} if event.player_ms is None else {"player_ms": round(event.player_ms, 1)}
            return dataclasses.replace(lat, playback_confirmed_ms=_ms(lat, event.at), extras=_extras(lat, **player))
        case TurnContinued():
            return dataclasses.replace(lat, outcome="continued") if lat.outcome == "running" else lat
        case TurnClosed():
            outcome = lat.outcome if lat.outcome != "running" else event.outcome
            done = None if event.at is None or outcome == "no_speech" else _ms(lat, event.at)
            return dataclasses.replace(lat, outcome=outcome, error=event.error, reply_done_ms=done)
    raise TypeError(f"not a timing event: {event!r}")  # a new event kind must be folded above


def _log_closed(lat: TurnLatency) -> None:
    if lat.first_sentence_ms is not None:
        log.info("TIMING: First sentence ready %.0f ms after speech end", lat.first_sentence_ms)
    if lat.first_audio_ms is not None:
        log.info("TIMING: First audio ready %.0f ms after speech end", lat.first_audio_ms)
