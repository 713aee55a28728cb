"""The records of ``python -m benchmarks.pipeline``: what its sessions measured, turn by turn.

Plain dataclasses (stored whole in the JSON) and the few functions that read numbers off them;
:mod:`benchmarks.pipeline_report` renders them and :mod:`benchmarks.pipeline_levers` compares
the levers with them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import llm
from benchmarks.common import MachineInfo
from llm import ClientStats, PromptCacheReport
from voice.latency import TurnLatency
from voice.preemptive import PreemptiveStats
from voice.turns import SpeculationStats

SCHEMA = "warmvoice-voice-bench/1"
RSS_INTERVAL_S = 0.1
# Issue #8: "peak memory ≤ 1.5 GB RSS"; read as 1.5 × 10⁹ bytes, the stricter reading.
RSS_BAR_BYTES = 1_500_000_000
# The session's end of speech is normally 30–50 ms after the audio's last loud sample (its VAD
# frame and the 20 ms chunk); beyond this the turn is flagged as disturbed in the report.
SPEECH_END_TOLERANCE_MS = 100.0


# ---- records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionInfo:
    """What the report says about a spoken question (no samples)."""

    index: int
    text: str
    key_words: list[str]
    sample_rate: int
    duration_s: float
    last_voiced_s: float
    inputs: str = "short ×1"  # its set of questions and Piper speaking rate (benchmarks.pipeline_levers)


@dataclass
class MemoryPeak:
    """Peak RSS of the whole app: this process plus its child processes (the embedded server).

    RSS counts shared pages in each process, so the sum is an upper bound of the real footprint:
    the SmolLM2 file both the app (its text end-of-turn model) and the embedded server map, and
    the shared libraries, count twice.  ``pss_peak_bytes`` is the peak of the proportional set
    sizes (Linux's PSS: a page shared by n processes counts 1/n in each), the physical footprint;
    0 where the kernel does not report it.  Issue #8's bar is on RSS.
    """

    peak_bytes: int = 0  # max over samples of (this process + children)
    self_bytes_at_peak: int = 0
    children_bytes_at_peak: int = 0
    children_at_peak: int = 0
    peak_by_phase: dict[str, int] = field(default_factory=dict)  # "start-up" / "turns"
    samples: int = 0
    interval_s: float = RSS_INTERVAL_S
    bar_bytes: int = RSS_BAR_BYTES
    pss_peak_bytes: int = 0

    @property
    def within_bar(self) -> bool:
        """True if the peak is at most issue #8's 1.5 GB."""
        return 0 < self.peak_bytes <= self.bar_bytes


@dataclass(frozen=True)
class StandinConfig:
    """The edge-tts stand-in as ``--tts edge-standin`` served it (over TLS, behind a latency proxy
    with the session's RTT): the real service is unreachable from the machines this runs on."""

    synthesis_ms: float  # the stand-in's own time from a request to its first audio frame
    idle_limit_s: float | None  # it closes a socket idle this long (None: never)
    reuse: bool  # it answers further requests on a socket after turn.end
    audio_s: float  # length of the MP3 it answers every sentence with
    max_idle_s: float  # EDGE_TTS_MAX_IDLE of the warm sessions: they replace older spares


@dataclass(frozen=True)
class BenchConfig:
    """The knobs of one run."""

    strategies: tuple[str, ...]
    rtt_ms: tuple[float, ...]
    questions: int
    repeat: int  # fresh sessions per strategy and distance
    pause_s: float
    tts: str
    tls: bool  # --tls: the embedded server over HTTPS (a remote endpoint's own scheme decides for it)
    llm_temperature: float | None  # what the sessions send (None: the server's default)
    quick: bool
    chunk_ms: int
    trailing_silence_ms: int
    end_of_turn_silence_ms: int
    min_end_of_turn_silence_ms: int  # after an early transcript that reads as a finished sentence
    early_transcript: bool  # EARLY_TRANSCRIPT: Whisper starts during the pause
    turn_timeout_s: float
    # --tts edge-standin: the TTS connection modes compared ("cold": a new connection per
    # sentence, "warm": the spare-socket transport) and the stand-in's set-up.
    tts_connections: tuple[str, ...] = ()
    standin: StandinConfig | None = None
    turn_detector: str = "text"  # TURN_DETECTOR (runs before it existed used the word-list rule)
    # Issue #14: the lever variants compared ("off", "on"), the question sets and Piper speaking
    # rates (length_scale) of the spoken questions; see benchmarks.pipeline_levers.
    levers: tuple[str, ...] = ("on",)
    inputs: tuple[str, ...] = ("short",)
    question_rates: tuple[float, ...] = (1.0,)
    # Voice families (benchmarks.voice_families) the questions are spoken in, instead of the rates.
    voices: tuple[str, ...] = ()
    # The settings the levers change, as the "on" sessions ran them (the environment may set them).
    levers_on: dict[str, Any] = field(default_factory=dict)
    # The levers the "off" sessions put back (settings names); empty: all of them.
    off_levers: tuple[str, ...] = ()
    # Issue #23: how many of the turn-taking set's hesitations are replayed (0: none).
    hesitations: int = 0


@dataclass(frozen=True)
class EndpointRecord:
    """The LLM the sessions talked to (never the key)."""

    embedded: bool
    base_url: str
    model: str
    reason: str
    server_threads: int | None
    tls: bool  # the sessions' requests went over HTTPS


@dataclass
class TtsTurnRecord:
    """The TTS hop of one turn (``--tts edge-standin``): the first sentence to its first audio."""

    sentence_to_audio_ms: float | None  # first sentence ready -> its first audio (session clock)
    connection: str  # TurnLatency.tts_connection: "reused spare", "reused socket", "new"
    setup_ms: float | None  # how long that socket took to open
    wait_ms: float | None  # how long the sentence waited for its socket
    # Server-side (the stand-in's clock is the same perf_counter): the first sentence's request
    # came on a connection upgraded after the sentence was ready, and that connection's age.
    opened_on_path: bool | None
    connection_age_ms: float | None
    proxy_connections: int  # connections opened at the TTS proxy from the question's start to the turn's end


@dataclass
class TurnRecord:
    """One spoken question in one session: what was heard and said, and the raw breakdown."""

    rtt_ms: float
    strategy: str
    session: int
    question: int
    question_text: str
    key_words: list[str]
    transcript: str
    key_words_ok: bool
    missing_key_words: list[str]
    reply: str
    reply_sentences: list[str]
    first_sentence_chars: int | None
    reply_audio_s: float
    notices: list[str]
    started_at_s: float  # since the session started: when the question began to be spoken
    # The session's end of speech (last voiced VAD frame) minus the fed audio's last loud sample:
    # a check that every stage really counts from the end of speech.
    speech_end_error_ms: float | None
    outcome: str  # TurnLatency.outcome, or "no_turn" / "timeout" when the session made none
    latency: TurnLatency | None
    tts: TtsTurnRecord | None = None  # --tts edge-standin only
    # The embedded server only: what llama.cpp did with the prompt of the turn's last completion
    # (the reply's request), read from its log: tokens taken from its prefix cache, tokens evaluated.
    prompt_cache: PromptCacheReport | None = None

    @property
    def ok(self) -> bool:
        """The turn ran to the end with a reply."""
        return self.latency is not None and self.outcome == "ok"


@dataclass
class WarmupRecord:
    """A pre-warmed session's background warm-up."""

    ok: bool
    ms: float
    skipped: bool
    reason: str
    error: str | None
    connections_opened: int
    finished_at_s: float | None  # since the session started


@dataclass
class SessionRecord:
    """One "Start speaking" session at one distance with one strategy."""

    rtt_ms: float
    strategy: str
    index: int
    turns: list[TurnRecord] = field(default_factory=list)
    warmup: WarmupRecord | None = None
    client: ClientStats | None = None
    speculation: SpeculationStats | None = None  # early transcripts started / adopted / discarded
    preemptive: PreemptiveStats | None = None  # LLM requests sent during pauses: adopted / wasted
    # Share of the whole machine's CPU that processes other than this app used meanwhile (0..1):
    # on a shared machine, the disturbance behind this session's numbers.
    other_cpu_share: float | None = None
    duration_s: float = 0.0
    levers: str = "on"  # issue #14's levers: "on" (the app's settings) or "off"
    inputs: str = "short ×1"  # the questions it was asked: set and Piper speaking rate
    # --tts edge-standin: "cold" or "warm", connections opened at the TTS proxy over the whole
    # session, and sockets still open at the stand-in after the session stopped.
    tts_connection: str = ""
    tts_proxy_connections: int | None = None
    tts_sockets_left: int | None = None


@dataclass(frozen=True)
class PrimerRecord:
    """The typed turn that primes the LLM server before the measurements (not measured)."""

    text: str
    outcome: str
    first_token_ms: float | None
    reply_done_ms: float | None


@dataclass
class HesitationReplay:
    """The turn-taking set's hesitations spoken into one session with preemptive speech on
    (issue #23's waste): what its preemptive requests and syntheses did, in total and per item."""

    items: int
    turns: int  # turns the session started (more than items when a hesitation was cut)
    preemptive: PreemptiveStats
    per_item: list[str] = field(default_factory=list)  # one line each: name, turns, syntheses dropped


@dataclass
class VoiceBenchRun:
    """A whole run: how, where, against what, and every turn."""

    command: str
    argv: list[str]
    machine: MachineInfo
    config: BenchConfig
    endpoint: EndpointRecord
    questions: list[QuestionInfo]
    primer: PrimerRecord
    sessions: list[SessionRecord]
    memory: MemoryPeak
    startup_s: float
    wall_time_s: float
    hesitations: HesitationReplay | None = None  # --hesitations

    @property
    def turns(self) -> list[TurnRecord]:
        """Every turn, in run order."""
        return [t for s in self.sessions for t in s.turns]


def format_ms(value: float | None) -> str:
    """A time in whole ms without the unit (the line says "ms"), or "—" when the stage never happened."""
    return llm.format_ms(value, unit="")


# ---- summaries --------------------------------------------------------------------------


def turns_of(run: VoiceBenchRun, rtt: float, strategy: str, *, first_only: bool = False) -> list[TurnRecord]:
    """The completed turns of one strategy at one distance (only each session's first question
    with ``first_only``); with issue #14's levers compared, only the sessions with levers on."""
    return [
        t
        for s in main_sessions(run.sessions)
        if s.rtt_ms == rtt and s.strategy == strategy
        for n, t in enumerate(s.turns)
        if t.ok and (not first_only or n == 0)
    ]


# Spans between two stages of a turn: name -> (later stage, earlier stage).  The strategy only
# changes the connection, and these isolate it from Whisper, generation and Piper.
DERIVED: dict[str, tuple[str, str]] = {
    "request_to_status_ms": ("status_ms", "request_sent_ms"),
    "request_to_first_token_ms": ("first_token_ms", "request_sent_ms"),
}


def turn_value(turn: TurnRecord, attr: str) -> float | None:
    """A number of the turn: its own field (``first_sentence_chars``), a span of :data:`DERIVED`,
    a TurnLatency field, or else an entry of the latency's ``extras`` (e.g. ``stt_started_ms``);
    None if absent."""
    if attr in _TURN_FIELDS:
        return getattr(turn, attr)
    if turn.latency is None:
        return None
    if attr in DERIVED:
        later, earlier = (getattr(turn.latency, a) for a in DERIVED[attr])
        return None if later is None or earlier is None else round(later - earlier, 1)
    if attr in _LATENCY_FIELDS:
        return getattr(turn.latency, attr)
    return turn.latency.extras.get(attr)


_LATENCY_FIELDS = frozenset(f.name for f in dataclasses.fields(TurnLatency))
_TURN_FIELDS = frozenset(f.name for f in dataclasses.fields(TurnRecord))


def main_sessions(sessions: list[SessionRecord]) -> list[SessionRecord]:
    """The sessions the report's main tables summarise: the app as configured (levers on)."""
    return [s for s in sessions if s.levers == "on"] or sessions
