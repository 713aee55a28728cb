"""A turn's latency breakdown: every stage in ms from the true end of the user's speech.

All stages are measured from ``time.perf_counter()`` stamps taken where the event
happened; nothing here is estimated.  ``None`` means "not reached (yet)" or "does not
apply" (a typed turn has no endpointing and no speech-to-text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from llm import Strategy

# (attribute, label) in pipeline order: the UI and the CLI render exactly these.
STAGES: tuple[tuple[str, str], ...] = (
    ("endpoint_ms", "Endpoint detected"),
    ("transcript_ms", "Transcript ready"),
    ("request_sent_ms", "LLM request sent"),
    ("status_ms", "HTTP status received"),
    ("first_token_ms", "First token"),
    ("first_sentence_ms", "First sentence ready"),
    ("first_audio_ms", "First audio ready"),
)
# Before them in the panel: the microphone audio's way up from the page (voice.uplink).  Known
# only where a page reports its chunks' capture times, so the headless pipeline has no such stage.
UPLINK_STAGE = ("uplink_ms", "Your audio reached the server")
PANEL_STAGES: tuple[tuple[str, str], ...] = (UPLINK_STAGE, *STAGES)
# What the zero of a turn's figures is: the end of speech as the page captured it ("page"), as
# its audio reached the server ("arrival": no capture time from the page, e.g. the local
# microphone, headless WAV turns, an older browser), or when a typed turn reached it ("typed").
Clock = Literal["page", "arrival", "typed"]


# How a turn ended ("running" until it does).
# "resumed": a false interruption; the cut reply was spoken again (voice.turns.interruption).
# "continued": the user went on talking before any of the reply was heard; the turn carried on
# into the next one (voice.turns.detection.TurnDetector.resume).
Outcome = Literal["running", "ok", "no_speech", "error", "interrupted", "resumed", "continued"]
# Where the turn came from: the microphone or the text box.
TurnSource = Literal["voice", "text"]


@dataclass(frozen=True)
class TurnEnd:
    """What ended a spoken turn (the panel shows it next to the breakdown).

    ``detector``: the turn detector in use (see :mod:`voice.turns.policy`); ``signal``: what
    ended the turn (an :data:`voice.turns.policy.EndSignal`: "text_model", "hold", "max_wait"...);
    ``probability``: the audio model's completeness probability (None if it did not run);
    ``text_complete``: the early transcript's verdict (None if it was not ready);
    ``silence_waited_ms``: silence after the true end of speech when the turn was ended;
    ``model_ms``: the audio model's compute time on that pause;
    ``text_probability`` / ``text_ms``: the text end-of-turn model's probability that the early
    transcript is a finished turn, and its compute time (None if no transcript was ready).
    """

    detector: str
    signal: str
    silence_waited_ms: float
    probability: float | None = None
    text_complete: bool | None = None
    model_ms: float | None = None
    text_probability: float | None = None
    text_ms: float | None = None

    def describe(self) -> str:
        """One line for people: "text_model after 410 ms of silence (text model p=0.97, 0.2 ms;
        audio model p=0.12, 41 ms)"."""
        parts = [f"{self.signal} after {self.silence_waited_ms:,.0f} ms of silence"]
        details = []
        if self.text_probability is not None:
            details.append(
                f"text model p={self.text_probability:.2f}" + (f", {self.text_ms:.1f} ms" if self.text_ms else "")
            )
        if self.probability is not None:
            details.append(
                f"audio model p={self.probability:.2f}" + (f", {self.model_ms:,.0f} ms" if self.model_ms else "")
            )
        if self.text_complete is not None:
            details.append("word list: complete" if self.text_complete else "word list: unfinished")
        if details:
            parts.append(f"({'; '.join(details)})")
        return " ".join(parts)


@dataclass(frozen=True)
class TurnLatency:
    """Where one turn's time went.  Stage fields are ms after the true end of speech.

    Frozen: only the session's :class:`voice.timing.TurnRecorder` makes these, from the stages'
    timing events, so a record handed to a listener never changes under it.
    """

    turn: int
    source: TurnSource = "voice"
    strategy: Strategy = "prewarmed"
    rtt_ms: float = 0.0
    speech_end_at: float = 0.0  # perf_counter() of the last voiced frame (or of text submission)
    clock: Clock = "arrival"
    uplink_ms: float | None = None  # the chunk that held the speech end: capture -> server
    uplink_path: str | None = None  # which way that chunk came (voice.uplink.MicPath's value)
    clock_uncertainty_ms: float | None = None  # the page clock's offset, known to within this
    endpoint_ms: float | None = None
    transcript_ms: float | None = None
    stt_compute_ms: float | None = None
    stt_engine: str = ""  # which recognizer heard the turn (voice.recognizer.STT_ENGINES); "" typed
    request_sent_ms: float | None = None
    status_ms: float | None = None
    first_token_ms: float | None = None
    first_sentence_ms: float | None = None
    first_audio_ms: float | None = None
    reply_done_ms: float | None = None
    # The page's player said the first audio had started playing: when that word reached the
    # server.  An upper bound of "heard" (it includes the message's own trip back); not a stage
    # of the pipeline, and None wherever no browser plays the reply (CLI, benchmark, local audio).
    playback_confirmed_ms: float | None = None
    reused_connection: bool | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    llm_attempts: int = 0
    warmup_ms: float | None = None
    tts_engine: str = ""
    tts_fallback: bool = False
    # The socket the turn's first spoken sentence used: "reused spare", "reused socket", "new"
    # ("" for an engine without a connection, e.g. Piper), how long it took to open, and how
    # long that sentence waited for it (the part of the set-up on the path).
    tts_connection: str = ""
    tts_setup_ms: float | None = None
    tts_wait_ms: float | None = None
    sentences: int = 0
    chars: int = 0
    transcript: str = ""
    outcome: Outcome = "running"
    error: str | None = None
    extras: Mapping[str, float] = field(default_factory=dict)  # e.g. speculative-STT savings
    turn_end: TurnEnd | None = None  # what ended a spoken turn (None for typed turns)

    def since_speech_end(self, at: float) -> float:
        """Milliseconds between the true end of speech and ``at`` (a perf_counter stamp)."""
        return (at - self.speech_end_at) * 1000.0

    @property
    def total_ms(self) -> float | None:
        """The headline number: speech end -> first audio."""
        return self.first_audio_ms

    @property
    def connection(self) -> str:
        """ "reused", "new" or "" (unknown yet)."""
        if self.reused_connection is None:
            return ""
        return "reused" if self.reused_connection else "new"

    @property
    def playback_trip_ms(self) -> float | None:
        """Of "playing in your browser (confirmed)", the part neither the server's pipeline (up to
        first audio) nor the page's player (``extras["player_ms"]``) spent: the first chunk's trip
        to the page and the report's trip back (network and Gradio's transport).  None until the
        player has reported its part."""
        player_ms = self.extras.get("player_ms")
        if self.playback_confirmed_ms is None or self.first_audio_ms is None or player_ms is None:
            return None
        return round(max(self.playback_confirmed_ms - self.first_audio_ms - player_ms, 0.0), 1)

    def stages(self) -> list[tuple[str, float | None]]:
        """(label, ms) for every stage in order; ms is None until known."""
        return [(label, getattr(self, attr)) for attr, label in STAGES]


def format_table(latencies: list[TurnLatency]) -> str:
    """A plain-text table of turns, one row each, for logs and the headless CLI."""
    header = ["turn", "strategy", "rtt", "conn", *[label for _, label in STAGES], "outcome"]
    rows = [header]
    for lat in latencies:
        rows.append(
            [
                str(lat.turn),
                lat.strategy,
                f"{lat.rtt_ms:.0f}",
                lat.connection or "-",
                *["-" if ms is None else f"{ms:.0f}" for _, ms in lat.stages()],
                lat.outcome,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
