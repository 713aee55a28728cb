"""A turn's latency breakdown: every stage in ms from the true end of the user's speech.

All stages are measured from ``time.perf_counter()`` stamps taken where the event
happened; nothing here is estimated.  ``None`` means "not reached (yet)" or "does not
apply" (a typed turn has no endpointing and no speech-to-text).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from voice.tts import TTSConnection

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


@dataclass
class TurnLatency:
    """Where one turn's time went.  Stage fields are ms after the true end of speech."""

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
    extras: dict[str, float] = field(default_factory=dict)  # e.g. speculative-STT savings
    turn_end: TurnEnd | None = None  # what ended a spoken turn (None for typed turns)

    def since_speech_end(self, at: float) -> float:
        """Milliseconds between the true end of speech and ``at`` (a perf_counter stamp)."""
        return (at - self.speech_end_at) * 1000.0

    def mark(self, stage: str, at: float) -> None:
        """Record ``stage`` (one of STAGES' attributes) at ``at`` unless already recorded."""
        if getattr(self, stage) is None:
            setattr(self, stage, round(self.since_speech_end(at), 1))

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

    def confirm_playback(self, at: float, player_ms: float | None = None) -> bool:
        """The front-end says the first audio started playing; the report arrived at ``at``.

        Stamps ``playback_confirmed_ms`` (the report's arrival: an upper bound of when the user
        heard it) once, and only after the first audio was sent; returns True if it did.
        ``player_ms`` is the front-end's own share (the chunk's arrival to the report).
        """
        if self.first_audio_ms is None or self.playback_confirmed_ms is not None:
            return False
        self.playback_confirmed_ms = round(self.since_speech_end(at), 1)
        if player_ms is not None:
            self.extras["player_ms"] = round(player_ms, 1)
        return True

    def start_at_capture(self, uplink_ms: float, uncertainty_ms: float) -> bool:
        """Move the zero from the audio's arrival to its capture in the page: the end of speech
        is ``uplink_ms`` earlier, so every figure grows by it, those already stamped too.

        A negative way up (the clock offset's error, at most ``uncertainty_ms``) moves nothing.
        Once per turn, and only for a spoken turn timed from arrival; returns True if it did.
        """
        if self.source != "voice" or self.clock != "arrival":
            return False
        shift = round(max(uplink_ms, 0.0), 1)
        self.speech_end_at -= shift / 1000.0
        for attr in (*(attr for attr, _ in STAGES), "reply_done_ms", "playback_confirmed_ms"):
            value = getattr(self, attr)
            if value is not None:
                setattr(self, attr, round(value + shift, 1))
        self.clock = "page"
        self.uplink_ms = shift
        self.clock_uncertainty_ms = round(uncertainty_ms, 1)
        return True

    def set_tts_connection(self, connection: TTSConnection | None) -> None:
        """Record the TTS connection of the first audio (nothing for an engine without one)."""
        if connection is not None:
            self.tts_connection = connection.label
            self.tts_setup_ms = connection.setup_ms
            self.tts_wait_ms = connection.waited_ms

    def snapshot(self) -> TurnLatency:
        """An independent copy, safe to hand to another task or the UI."""
        return dataclasses.replace(self, extras=dict(self.extras))

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
