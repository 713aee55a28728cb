"""``python -m voice.bench``: the end-to-end voice benchmark (issue #6 part 3, issue #8's memory bar).

Short spoken questions are synthesized at run time with the bundled Piper voice (Piper's own
API, noise off, so every run hears the same audio), written to 16-bit WAV files and read back,
then spoken into real :class:`voice.session.VoiceSession`\\ s through :mod:`voice.headless`:
20 ms chunks paced in real time like a microphone, so endpointing and the end of speech are
the app's own.  Each turn runs the whole pipeline (Silero endpointing, Whisper, the session's
pooled LLM client, TTS) and its :class:`voice.latency.TurnLatency` is recorded as measured.

For every emulated distance (``--rtt-ms``) and connection strategy (cold = a new connection
per request, the original "before"; pooled; pre-warmed = the "after") a fresh session is
started ("Start speaking") and the first question follows at once, so the warm-up overlaps
the speech as it would for a real user; the next questions each follow the previous reply's
playback and ``--pause-s``.  A background thread samples the RSS of this process plus its
children (the embedded llama.cpp server) every 100 ms.

The embedded server serves HTTPS with a throw-away certificate unless ``--no-tls`` (the cold
strategy's cost is mostly the TCP and TLS handshakes); a remote endpoint (``OPENAI_BASE_URL``)
is used as configured.

Progress goes to stderr, the Markdown report to stdout; ``--json``, ``--markdown`` and
``--plot`` write files.  Exit status 1 if any turn failed, 2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import inspect
import json
import re
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from llm import ClientStats, configure_logging, public_endpoint
from llm.bench_common import (
    MACHINE_PACKAGES,
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    STRATEGY_ORDER,
    MachineInfo,
    Say,
    Summary,
    TlsFiles,
    bench_server,
    command_line,
    format_cell,
    format_improvement,
    hide_api_key,
    load_average,
    machine_info,
    parse_rtt_list,
    progress,
    run_interruptible,
    throwaway_tls,
)
from voice.audio import read_wav, write_wav
from voice.headless import TurnResult, run_spoken_turn, run_typed_turn, speak_into
from voice.latency import STAGES, TurnLatency
from voice.llm_endpoint import LLMEndpoint
from voice.runtime import VoiceRuntime
from voice.session import SpeculationStats, VoiceSession
from voice.settings import Settings, SettingsError, load_settings

SCHEMA = "warmvoice-voice-bench/1"
PROG = "python -m voice.bench"
DEFAULT_RTTS = (0.0, 150.0)
DEFAULT_PAUSE_S = 1.5
QUICK = {"questions": 2, "strategies": ("prewarmed",), "rtt_ms": (0.0,)}
RSS_INTERVAL_S = 0.1
# Issue #8: "peak memory ≤ 1.5 GB RSS"; read as 1.5 × 10⁹ bytes, the stricter reading.
RSS_BAR_BYTES = 1_500_000_000
# Anything quieter than this (about -40 dBFS) is silence when locating the audio's own end of speech.
ENERGY_THRESHOLD = 0.01
TURN_TIMEOUT_S = 120.0
# The session's end of speech is normally 30–50 ms after the audio's last loud sample (its VAD
# frame and the 20 ms chunk); beyond this the turn is flagged as disturbed in the report.
SPEECH_END_TOLERANCE_MS = 100.0
# Greedy sampling, whatever LLM_TEMPERATURE says: every strategy then hears the same replies, so the
# first sentence's length, Piper's time for it and the playback before the next question match.
LLM_TEMPERATURE = 0.0
PLAYBACK_SLACK_S = 5.0  # beyond the reply's own duration, the longest wait for its playback to end
# What the feeding does, read from voice.headless so the report cannot drift from the code.
_FEED = inspect.signature(speak_into).parameters
CHUNK_MS = int(_FEED["chunk_ms"].default)
TRAILING_SILENCE_MS = int(_FEED["trailing_silence_ms"].default)
# Versions the report records beyond the connection benchmark's.
PACKAGES = (*MACHINE_PACKAGES, "faster-whisper", "ctranslate2", "piper-tts", "onnxruntime")


# ---- the questions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """A question to speak and the words its transcript must contain.

    A key word may list spellings separated by "/" (Whisper may write "colour").
    """

    text: str
    key_words: tuple[str, ...]


QUESTIONS: tuple[Question, ...] = (
    Question("What is the capital of France?", ("capital", "france")),
    Question("How many legs does a spider have?", ("legs", "spider")),
    Question("What color is the sky?", ("color/colour", "sky")),
    Question("Name a fruit that is yellow.", ("fruit", "yellow")),
    # Not "Who wrote Romeo and Juliet?": Whisper tiny.en hears Piper's "Romeo" as "Romito" every time.
    Question("Who wrote Hamlet?", ("wrote", "hamlet")),
)


def missing_key_words(transcript: str, key_words: Sequence[str]) -> list[str]:
    """The key words (whole words, any listed spelling, case-insensitive) not in ``transcript``."""
    words = set(re.findall(r"[a-z0-9']+", transcript.lower()))
    return [kw for kw in key_words if not any(alt in words for alt in kw.lower().split("/"))]


@dataclass(frozen=True)
class SpokenQuestion:
    """A question as audio: the WAV's samples and where its voice ends."""

    index: int  # 1-based, in speaking order
    question: Question
    samples: np.ndarray  # float32 mono, as read back from the WAV
    sample_rate: int
    last_voiced_s: float  # just after the last sample above ENERGY_THRESHOLD

    @property
    def duration_s(self) -> float:
        """Length of the WAV (Piper's own leading and trailing silence included)."""
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class QuestionInfo:
    """What the report says about a spoken question (no samples)."""

    index: int
    text: str
    key_words: list[str]
    sample_rate: int
    duration_s: float
    last_voiced_s: float


def synthesize_questions(questions: Sequence[Question], directory: Path) -> list[SpokenQuestion]:
    """Render each question with the bundled Piper voice, write it as 16-bit WAV, read it back.

    Blocking (Piper runs on the CPU).  The voice object is the one the app's Piper TTS uses
    (loaded once per process), so this costs no extra model memory.
    """
    from piper import SynthesisConfig

    from voice.tts_piper import bundled_voice_path, load_voice

    voice = load_voice(bundled_voice_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # deterministic: same text, same audio
    spoken: list[SpokenQuestion] = []
    for index, question in enumerate(questions, 1):
        chunks = list(voice.synthesize(question.text, config))
        if not chunks:
            raise RuntimeError(f"Piper produced no audio for {question.text!r}")
        path = directory / f"question-{index}.wav"
        write_wav(path, np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate)
        samples, rate = read_wav(path)
        loud = np.flatnonzero(np.abs(samples) > ENERGY_THRESHOLD)
        if not loud.size:
            raise RuntimeError(f"Piper's audio for {question.text!r} is silent")
        spoken.append(SpokenQuestion(index, question, samples, rate, (int(loud[-1]) + 1) / rate))
    return spoken


# ---- peak memory ------------------------------------------------------------------------


@dataclass
class MemoryPeak:
    """Peak RSS of the whole app: this process plus its child processes (the embedded server).

    RSS counts shared pages in each process, so the sum is an upper bound of the real footprint.
    """

    peak_bytes: int = 0  # max over samples of (this process + children)
    self_bytes_at_peak: int = 0
    children_bytes_at_peak: int = 0
    children_at_peak: int = 0
    peak_by_phase: dict[str, int] = field(default_factory=dict)  # "start-up" / "turns"
    samples: int = 0
    interval_s: float = RSS_INTERVAL_S
    bar_bytes: int = RSS_BAR_BYTES

    @property
    def within_bar(self) -> bool:
        """True if the peak is at most issue #8's 1.5 GB."""
        return 0 < self.peak_bytes <= self.bar_bytes


class RssSampler:
    """Samples RSS every ``interval_s`` in a daemon thread (the event loop may be busy, and
    start-up is blocking).  Use as a context manager; ``phase`` labels what runs now."""

    def __init__(self, interval_s: float = RSS_INTERVAL_S) -> None:
        self.peak = MemoryPeak(interval_s=interval_s)
        self.phase = "start-up"
        self._interval_s = interval_s
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one sample now."""
        try:
            own = self._me.memory_info().rss
            children = self._me.children(recursive=True)
        except psutil.Error:
            return
        child_rss = 0
        alive = 0
        for child in children:
            with contextlib.suppress(psutil.Error):  # a child may exit between listing and reading
                child_rss += child.memory_info().rss
                alive += 1
        total = own + child_rss
        p = self.peak
        p.samples += 1
        p.peak_by_phase[self.phase] = max(p.peak_by_phase.get(self.phase, 0), total)
        if total > p.peak_bytes:
            p.peak_bytes, p.self_bytes_at_peak, p.children_bytes_at_peak, p.children_at_peak = (
                total, own, child_rss, alive,
            )


# ---- other processes' CPU -----------------------------------------------------------------


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds used so far by the whole machine and by this app (process + live children)."""

    at: float  # perf_counter()
    machine_busy_s: float
    app_s: float


def cpu_mark() -> CpuMark:
    """Take a :class:`CpuMark` now."""
    t = psutil.cpu_times()
    # Linux counts guest time inside user time; steal is the hypervisor's, not another process's.
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    me = psutil.Process()
    own = me.cpu_times()
    app = own.user + own.system + own.children_user + own.children_system
    with contextlib.suppress(psutil.Error):
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                app += c.user + c.system
    return CpuMark(time.perf_counter(), busy, app)


def other_cpu_share(start: CpuMark, end: CpuMark) -> float | None:
    """Share of the machine's CPU (0..1) used by other processes between two marks."""
    capacity = (end.at - start.at) * (psutil.cpu_count() or 1)
    if capacity <= 0:
        return None
    other = (end.machine_busy_s - start.machine_busy_s) - (end.app_s - start.app_s)
    return round(min(1.0, max(0.0, other / capacity)), 3)


# ---- records ----------------------------------------------------------------------------


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
    # Share of the whole machine's CPU that processes other than this app used meanwhile (0..1):
    # on a shared machine, the disturbance behind this session's numbers.
    other_cpu_share: float | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class PrimerRecord:
    """The typed turn that primes the LLM server before the measurements (not measured)."""

    text: str
    outcome: str
    first_token_ms: float | None
    reply_done_ms: float | None


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

    @property
    def turns(self) -> list[TurnRecord]:
        """Every turn, in run order."""
        return [t for s in self.sessions for t in s.turns]


# ---- running sessions -------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


async def _wait_playback(session: VoiceSession, longest_s: float) -> None:
    """Wait (bounded) until the reply has finished playing, as a listening user would."""
    deadline = time.perf_counter() + longest_s
    while session.busy and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


async def _turn(session: VoiceSession, q: SpokenQuestion, record: SessionRecord, started: float,
                config: BenchConfig, say: Say) -> TurnRecord:
    fed_at = time.perf_counter()
    result: TurnResult | None = None
    outcome = "no_turn"
    try:
        result = await run_spoken_turn(session, q.samples, q.sample_rate, timeout_s=config.turn_timeout_s)
    except TimeoutError:
        outcome = "timeout"
    lat = result.latency if result is not None else None
    transcript = result.transcript if result is not None else ""
    missing = missing_key_words(transcript, q.question.key_words)
    audio_s = len(result.reply_audio) / result.sample_rate if result is not None and result.sample_rate else 0.0
    turn = TurnRecord(
        rtt_ms=record.rtt_ms, strategy=record.strategy, session=record.index, question=q.index,
        question_text=q.question.text, key_words=list(q.question.key_words), transcript=transcript,
        key_words_ok=not missing, missing_key_words=missing,
        reply=result.reply_text if result is not None else "",
        reply_sentences=list(result.reply) if result is not None else [],
        first_sentence_chars=len(result.reply[0]) if result is not None and result.reply else None,
        reply_audio_s=round(audio_s, 3), notices=list(result.notices) if result is not None else [],
        started_at_s=round(fed_at - started, 3),
        speech_end_error_ms=(
            round((lat.speech_end_at - (fed_at + q.last_voiced_s)) * 1000.0, 1) if lat is not None else None
        ),
        outcome=lat.outcome if lat is not None else outcome, latency=lat,
    )
    heard = "ok" if turn.key_words_ok else f"MISSING {', '.join(missing)}"
    conn = "" if lat is None else lat.connection or "?"
    say(
        f"[{record.rtt_ms:4.0f} ms] {record.strategy:9} s{record.index} q{q.index}: "
        + (
            f"endpoint {_ms(lat.endpoint_ms)} | transcript {_ms(lat.transcript_ms)} | first token "
            f"{_ms(lat.first_token_ms)} | first sentence {_ms(lat.first_sentence_ms)} | first audio "
            f"{_ms(lat.first_audio_ms)} ms | {conn} | heard {transcript!r} ({heard})"
            if lat is not None else f"no turn ({outcome})"
        )
        + ("" if turn.outcome == "ok" else f" | {turn.outcome}: {lat.error if lat else ''}")
    )
    return turn


async def run_session(runtime: VoiceRuntime, questions: Sequence[SpokenQuestion], config: BenchConfig,
                      rtt: float, strategy: str, index: int, say: Say) -> SessionRecord:
    """One fresh session: start it, speak every question, stop it (whatever happens)."""
    settings = runtime.settings.replace(connection_strategy=strategy, emulated_rtt_ms=rtt)
    session = runtime.new_session(f"bench-{strategy}-{rtt:g}-{index}", settings=settings)
    record = SessionRecord(rtt_ms=rtt, strategy=strategy, index=index)
    started = time.perf_counter()  # the user clicks Start speaking ...
    cpu_start = cpu_mark()
    await session.start()
    try:
        for n, q in enumerate(questions):
            if n:  # ... and asks the first question at once; later ones after the reply and a pause
                previous = record.turns[-1]
                await _wait_playback(session, previous.reply_audio_s + PLAYBACK_SLACK_S)
                await asyncio.sleep(config.pause_s)
            record.turns.append(await _turn(session, q, record, started, config, say))
        if session.client is not None:
            record.client = dataclasses.replace(session.client.stats)
        record.speculation = dataclasses.replace(session.speculation_stats)
        warm = session.warmup
        if warm is not None:
            finished = warm.timing.started_at + warm.ms / 1000.0 - started if warm.timing is not None else None
            record.warmup = WarmupRecord(
                ok=warm.ok, ms=round(warm.ms, 1), skipped=warm.skipped, reason=warm.reason, error=warm.error,
                connections_opened=warm.connections_opened,
                finished_at_s=None if finished is None else round(finished, 3),
            )
    finally:
        await session.stop()
        record.duration_s = round(time.perf_counter() - started, 3)
        record.other_cpu_share = other_cpu_share(cpu_start, cpu_mark())
    stats = record.client
    say(
        f"[{rtt:4.0f} ms] {strategy:9} s{index}: {sum(t.ok for t in record.turns)}/{len(record.turns)} turns ok"
        + (f", {stats.connections_opened} connection(s) opened, {stats.connections_reused} reused" if stats else "")
        + (f", warm-up {record.warmup.ms:.0f} ms" if record.warmup and not record.warmup.skipped else "")
        + f", {record.duration_s:.1f} s"
        + ("" if record.other_cpu_share is None else f"; other processes used {record.other_cpu_share:.0%} of the CPU")
    )
    return record


async def prime_server(runtime: VoiceRuntime, text: str, say: Say) -> PrimerRecord:
    """One typed turn in a throw-away session, before anything is measured.

    The LLM server's first completion after start-up is slower than any later one (its prompt
    cache is empty: the whole system prompt is evaluated once).  Without this, whichever session
    runs first would pay it; with the first question's text, every session's first request then
    finds the same prefix cached.
    """
    session = runtime.new_session("bench-primer", settings=runtime.settings.replace(
        connection_strategy="prewarmed", emulated_rtt_ms=0.0))
    await session.start()
    try:
        await session.wait_warm()
        result = await run_typed_turn(session, text, timeout_s=TURN_TIMEOUT_S)
    finally:
        await session.stop()
    lat = result.latency
    say(f"[primer] typed {text!r} (not measured): first token {_ms(lat.first_token_ms)} ms, {lat.outcome}")
    return PrimerRecord(text=text, outcome=lat.outcome, first_token_ms=lat.first_token_ms,
                        reply_done_ms=lat.reply_done_ms)


async def run_all(runtime: VoiceRuntime, questions: Sequence[SpokenQuestion], config: BenchConfig,
                  say: Say) -> tuple[PrimerRecord, list[SessionRecord]]:
    """The primer, then every distance and repeat; each such round runs the strategies in the
    opposite order of the round before, so a drift of the machine (other processes starting or
    ending) does not always land on the same strategy.  One session at a time."""
    primer = await prime_server(runtime, questions[0].question.text, say)
    sessions: list[SessionRecord] = []
    for rtt, index, strategy in session_plan(config):
        sessions.append(await run_session(runtime, questions, config, rtt, strategy, index, say))
    return primer, sessions


def session_plan(config: BenchConfig) -> list[tuple[float, int, str]]:
    """(RTT, repeat index, strategy) of every session in run order (see :func:`run_all`)."""
    rounds = [(rtt, index) for rtt in config.rtt_ms for index in range(1, config.repeat + 1)]
    plan: list[tuple[float, int, str]] = []
    for n, (rtt, index) in enumerate(rounds):
        order = config.strategies if n % 2 == 0 else tuple(reversed(config.strategies))
        plan += [(rtt, index, strategy) for strategy in order]
    return plan


# ---- summaries --------------------------------------------------------------------------


def turns_of(run: VoiceBenchRun, rtt: float, strategy: str, *, first_only: bool = False) -> list[TurnRecord]:
    """The completed turns of one strategy at one distance (only each session's first question
    with ``first_only``)."""
    return [
        t for s in run.sessions if s.rtt_ms == rtt and s.strategy == strategy
        for t in s.turns if t.ok and (not first_only or t.question == 1)
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


def stage_summary(run: VoiceBenchRun, rtt: float, strategy: str, attr: str, *, first_only: bool = False) -> Summary:
    """Median and range of one number of the completed turns (see :func:`turn_value`)."""
    return Summary.of(turn_value(t, attr) for t in turns_of(run, rtt, strategy, first_only=first_only))


def reuse_share(run: VoiceBenchRun, rtt: float, strategy: str) -> tuple[int, int]:
    """(requests on a reused connection, requests) over the completed turns."""
    turns = turns_of(run, rtt, strategy)
    return sum(bool(t.latency and t.latency.reused_connection) for t in turns), len(turns)


# Below the stages in the stage table: (attribute, label, unit).  The first two are the session's
# extras for its early transcription and adaptive end of turn; the first sentence's length is
# there because Piper's time to the first audio grows with it.
EXTRA_ROWS: tuple[tuple[str, str, str], ...] = (
    ("reply_done_ms", "Reply fully synthesized", " ms"),
    ("silence_waited_ms", "Silence heard before the turn ended (audio time)", " ms"),
    ("stt_started_ms", "Whisper started (early, during the pause)", " ms"),
    ("stt_compute_ms", "Whisper compute time (a duration)", " ms"),
    ("first_sentence_chars", "First sentence length", " chars"),
)
SUMMARY_FIELDS: tuple[str, ...] = (*(attr for attr, _ in STAGES), *(attr for attr, _, _ in EXTRA_ROWS), *DERIVED)


def summary_dict(run: VoiceBenchRun) -> dict[str, Any]:
    """Per distance and strategy: the summaries behind the tables."""
    out: dict[str, Any] = {}
    for rtt in run.config.rtt_ms:
        per: dict[str, Any] = {}
        for st in strategies_run(run):
            reused, n = reuse_share(run, rtt, st)
            per[st] = {
                "turns": n,
                "reused_connection": reused,
                "first_question_first_audio_ms": asdict(stage_summary(run, rtt, st, "first_audio_ms", first_only=True)),
                **{attr: asdict(stage_summary(run, rtt, st, attr)) for attr in SUMMARY_FIELDS},
            }
        out[f"{rtt:g}"] = per
    return out


def strategies_run(run: VoiceBenchRun) -> list[str]:
    """The strategies of this run in report order (cold, pooled, pre-warmed)."""
    return [s for s in STRATEGY_ORDER if s in run.config.strategies]


# ---- Markdown ---------------------------------------------------------------------------

HEADLINE_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("Speech end → first sentence ready", "first_sentence_ms", False),
    ("Speech end → first audio", "first_audio_ms", False),
    ("First LLM token", "first_token_ms", False),
    ("First question of a session: speech end → first audio", "first_audio_ms", True),
    ("LLM request sent → HTTP status (connection set-up and round trips)", "request_to_status_ms", False),
    ("LLM request sent → first token", "request_to_first_token_ms", False),
)


def _mb(value: int) -> str:
    return f"{value / 1e6:,.0f} MB"


def _share(reused: int, n: int) -> str:
    return "—" if not n else f"{reused}/{n} ({100 * reused / n:.0f} %)"


def headline_table(run: VoiceBenchRun, rtt: float) -> str:
    """The original's shape: Metric | Before (cold) | After (pre-warmed) | Improvement."""
    lines = [f"| Metric | {STRATEGY_LABELS['cold']} | {STRATEGY_LABELS['prewarmed']} | Improvement |",
             "|---|---|---|---|"]
    for label, attr, first_only in HEADLINE_ROWS:
        before = stage_summary(run, rtt, "cold", attr, first_only=first_only)
        after = stage_summary(run, rtt, "prewarmed", attr, first_only=first_only)
        lines.append(f"| {label} | {format_cell(before)} | {format_cell(after)} | "
                     f"{format_improvement(before, after)} |")
    lines.append(f"| LLM requests on a reused connection | {_share(*reuse_share(run, rtt, 'cold'))} | "
                 f"{_share(*reuse_share(run, rtt, 'prewarmed'))} | — |")
    return "\n".join(lines)


def stage_table(run: VoiceBenchRun, rtt: float) -> str:
    """The full stage budget at one distance: one column per strategy, median (min–max) ms."""
    strategies = strategies_run(run)
    lines = ["| Stage (ms after the end of speech) | " + " | ".join(STRATEGY_LABELS[s] for s in strategies) + " |",
             "|---|" + "---|" * len(strategies)]
    rows = [*((attr, label, " ms") for attr, label in STAGES), *EXTRA_ROWS]
    for attr, label, unit in rows:
        cells = (format_cell(stage_summary(run, rtt, s, attr), unit) for s in strategies)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| LLM requests on a reused connection | "
                 + " | ".join(_share(*reuse_share(run, rtt, s)) for s in strategies) + " |")
    lines.append("| CPU used by other processes meanwhile (share of the machine) | "
                 + " | ".join(_other_cpu_cell(run, rtt, s) for s in strategies) + " |")
    return "\n".join(lines)


def _other_cpu_cell(run: VoiceBenchRun, rtt: float, strategy: str) -> str:
    shares = [s.other_cpu_share for s in run.sessions
              if s.rtt_ms == rtt and s.strategy == strategy and s.other_cpu_share is not None]
    return ", ".join(f"{100 * v:.0f} %" for v in shares) or "—"


def disturbed_turns(run: VoiceBenchRun, rtt: float) -> list[TurnRecord]:
    """Turns whose end of speech the session placed more than SPEECH_END_TOLERANCE_MS away from
    the audio's: the feeding or the session fell behind real time, so their times are off by that."""
    return [t for t in run.turns if t.rtt_ms == rtt and t.speech_end_error_ms is not None
            and abs(t.speech_end_error_ms) > SPEECH_END_TOLERANCE_MS]


def _md(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split()) or "—"


def heard_table(run: VoiceBenchRun) -> str:
    """Per question: what Whisper heard (distinct transcripts), key words found, and a reply."""
    lines = ["| # | Question | Key words | Heard | Key words found | Reply (first session that answered) |",
             "|---|---|---|---|---|---|"]
    for q in run.questions:
        turns = [t for t in run.turns if t.question == q.index]
        heard = list(dict.fromkeys(t.transcript for t in turns if t.transcript))
        passed = sum(t.key_words_ok for t in turns)
        reply = next((t.reply for t in turns if t.reply), "")
        lines.append(
            f"| {q.index} | {_md(q.text)} | {', '.join(q.key_words)} | "
            f"{'<br>'.join(_md(h) for h in heard) or '—'} | {passed}/{len(turns)} "
            f"{'PASS' if turns and passed == len(turns) else 'FAIL'} | {_md(reply)} |"
        )
    return "\n".join(lines)


def _describe(run: VoiceBenchRun) -> list[str]:
    c, m, e, mem = run.config, run.machine, run.endpoint, run.memory
    load = " → ".join("unknown" if v is None else f"{v:.2f}" for v in (m.load_start, m.load_end))
    others = [s.other_cpu_share for s in run.sessions if s.other_cpu_share is not None]
    others_text = (f"; other processes used {100 * min(others):.0f}–{100 * max(others):.0f} % of the CPU during "
                   "the sessions" if others else "")
    errors = Summary.of(t.speech_end_error_ms for t in run.turns if t.ok)
    n_turns = len(run.turns)
    phases = ", ".join(f"{k} {_mb(v)}" for k, v in mem.peak_by_phase.items())
    verdict = "PASS" if mem.within_bar else "FAIL"
    spec = SpeculationStats()
    for s in run.sessions:
        if s.speculation is not None:
            for name in ("started", "adopted", "discarded", "early_ends"):
                setattr(spec, name, getattr(spec, name) + getattr(s.speculation, name))
    return [
        f"- Machine: {m.cpu_model}, {m.cpu_count} CPUs, {m.ram_bytes / 2**30:.1f} GiB RAM, Python {m.python}, "
        f"{m.platform}; {m.date}; load average (1 min) {load} from start to end{others_text}",
        f"- Command: `{run.command}` (wall time {run.wall_time_s:.0f} s, of which start-up {run.startup_s:.0f} s)",
        f"- LLM: {e.base_url}, model `{e.model}` — {e.reason}"
        + (f"; {e.server_threads} llama.cpp thread(s)" if e.server_threads else ""),
        (
            f"- Input: {c.questions} question(s) synthesized at run time with Piper (bundled en_US-joe-medium, noise "
            f"off), written as 16-bit WAV, fed in {c.chunk_ms} ms chunks paced in real time and followed by "
            f"{c.trailing_silence_ms / 1000:g} s of silence. " + (
                f"The session transcribes early, during the pause (EARLY_TRANSCRIPT on), and ends the turn after "
                f"{c.end_of_turn_silence_ms} ms of silence, or after {c.min_end_of_turn_silence_ms} ms when the early "
                f"transcript reads as a finished sentence"
                if c.early_transcript else
                f"EARLY_TRANSCRIPT off: Whisper starts when the turn ends, after {c.end_of_turn_silence_ms} ms of "
                f"silence"
            ) + f"; Whisper tiny.en; TTS `{c.tts}`."
        ),
        (
            f"- Sessions: {c.repeat} fresh session(s) per strategy and distance, one at a time, the strategies in "
            f"alternating order from one distance (or repeat) to the next. A session starts as "
            f"\"Start speaking\" does and the first question follows at once (a pre-warmed session warms up while "
            f"it is spoken); each next question follows the previous reply's playback and a {c.pause_s:g} s pause. "
            f"{n_turns} turns in all, {sum(t.ok for t in run.turns)} completed. Early transcripts: "
            f"{spec.started} started, {spec.adopted} adopted by their turn, {spec.discarded} discarded; "
            f"{spec.early_ends} turn(s) ended on the shorter silence. Before the first session, one typed turn "
            f"({run.primer.text!r}, not measured) filled the LLM server's prompt cache: its first token came "
            f"{_ms(run.primer.first_token_ms)} ms after submission."
        ),
        _temperature_line(run),
        (
            "- The strategy changes only the connection: \"LLM request sent → HTTP status\" isolates it. The "
            "end-to-end rows also carry Whisper, the server's generation and Piper, which vary with the CPU other "
            "processes leave (see the last row of each stage budget)."
        ),
        (
            "- Every time is ms after the true end of speech (the session's last voiced frame), measured where the "
            "stage happened: median (min–max) over the completed turns. Check: the session's end of speech minus the "
            f"fed audio's last sample above -40 dBFS = {format_cell(errors)} (VAD frames are 32 ms)."
        ),
        (
            f"- Peak memory (RSS of this process + its children, i.e. the embedded server; sampled every "
            f"{mem.interval_s * 1000:.0f} ms, {mem.samples} samples): **{_mb(mem.peak_bytes)}** "
            f"(process {_mb(mem.self_bytes_at_peak)} + {mem.children_at_peak} child(ren) "
            f"{_mb(mem.children_bytes_at_peak)} at the peak; by phase: {phases}). "
            f"Issue #8's bar ≤ 1.5 GB: **{verdict}**."
        ),
    ]


def same_reply_questions(run: VoiceBenchRun) -> tuple[int, int]:
    """(questions whose completed turns all got the very same reply, questions with a completed turn)."""
    replies: dict[int, set[str]] = {}
    for t in run.turns:
        if t.ok:
            replies.setdefault(t.question, set()).add(t.reply)
    return sum(len(r) == 1 for r in replies.values()), len(replies)


def _temperature_line(run: VoiceBenchRun) -> str:
    temperature = run.config.llm_temperature
    same, asked = same_reply_questions(run)
    outcome = (f"{same} of {asked} question(s) got the very same reply in every session that answered it, and with "
               "it the same first sentence, Piper time for it and playback before the next question")
    if temperature is None:
        return f"- LLM temperature: the server's default (replies are sampled); {outcome}."
    return (f"- LLM temperature {temperature:g}, set by the benchmark whatever LLM_TEMPERATURE says, so that every "
            f"strategy hears the same replies: {outcome}.")


def render_markdown(run: VoiceBenchRun) -> str:
    """The whole report: set-up, per distance the headline and stage tables, then what was heard."""
    out = ["# WarmVoice end-to-end voice benchmark", "", *_describe(run), ""]
    for rtt in run.config.rtt_ms:
        out += [f"## RTT {rtt:g} ms", "", headline_table(run, rtt), "", f"### Stage budget at RTT {rtt:g} ms", "",
                stage_table(run, rtt), ""]
        disturbed = disturbed_turns(run, rtt)
        if disturbed:
            out += ["Disturbed turns (the feeding or the session fell behind real time: the session placed the end "
                    "of speech away from the audio's, so this turn's times are off by about that much):", *(
                f"- {t.strategy} session {t.session} question {t.question}: end of speech placed "
                f"{abs(t.speech_end_error_ms or 0):.0f} ms {'after' if (t.speech_end_error_ms or 0) > 0 else 'before'} "
                "the audio's"
                for t in disturbed
            ), ""]
        failed = [t for t in run.turns if t.rtt_ms == rtt and not t.ok]
        if failed:
            out += ["Failed turns:", *(
                f"- {t.strategy} session {t.session} question {t.question}: {t.outcome}"
                + (f" ({t.latency.error})" if t.latency is not None and t.latency.error else "")
                for t in failed
            ), ""]
    out += ["## What was heard and said", "", heard_table(run), ""]
    return "\n".join(out).rstrip() + "\n"


# ---- JSON and the chart -----------------------------------------------------------------


def to_json_dict(run: VoiceBenchRun) -> dict[str, Any]:
    """Everything: raw per-turn TurnLatency fields, transcripts, replies, memory, summaries."""
    data = asdict(run)
    data["memory"]["within_bar"] = run.memory.within_bar
    for session, raw in zip(run.sessions, data["sessions"], strict=True):
        for turn, raw_turn in zip(session.turns, raw["turns"], strict=True):
            raw_turn["ok"] = turn.ok
    return {"schema": SCHEMA, **data, "summary": summary_dict(run)}


def write_json(run: VoiceBenchRun, path: Path) -> None:
    """Write :func:`to_json_dict` as indented JSON."""
    path.write_text(json.dumps(to_json_dict(run), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


PLOT_METRICS = (("first_sentence_ms", "Speech end → first sentence ready"),
                ("first_audio_ms", "Speech end → first audio"))


def write_plot(run: VoiceBenchRun, path: Path) -> None:
    """A PNG of grouped bars: per RTT one bar per strategy (median, min–max whiskers), one panel
    for the first sentence and one for the first audio."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    strategies = strategies_run(run)
    rtts = list(run.config.rtt_ms)
    width = 0.8 / max(len(strategies), 1)
    fig, axes = plt.subplots(1, len(PLOT_METRICS), figsize=(5.5 * len(PLOT_METRICS), 4.4), squeeze=False)
    for ax, (attr, title) in zip(axes[0], PLOT_METRICS, strict=True):
        for i, st in enumerate(strategies):
            xs, meds, lo, hi = [], [], [], []
            for j, rtt in enumerate(rtts):
                s = stage_summary(run, rtt, st, attr)
                if s.median is None or s.low is None or s.high is None:
                    continue
                xs.append(j + (i - (len(strategies) - 1) / 2) * width)
                meds.append(s.median)
                lo.append(s.median - s.low)
                hi.append(s.high - s.median)
            if xs:
                ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, color=STRATEGY_COLOURS[st], label=STRATEGY_LABELS[st])
        ax.set_xticks(range(len(rtts)), [f"{r:g} ms" for r in rtts])
        ax.set_xlabel("emulated RTT to the LLM")
        ax.set_ylabel("ms after the end of speech (median, min–max)")
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"WarmVoice end-to-end voice benchmark — {run.machine.cpu_model}, {run.machine.date[:10]}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# ---- command line -----------------------------------------------------------------------


def _strategy_list(text: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [v for v in values if v not in STRATEGY_ORDER]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(STRATEGY_ORDER)} (comma-separated), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Spoken questions through the whole WarmVoice pipeline, per connection strategy and distance.",
    )
    p.add_argument("--strategies", type=_strategy_list, help="comma-separated (default cold,pooled,prewarmed)")
    p.add_argument("--rtt-ms", type=parse_rtt_list, help="comma-separated emulated RTTs to the LLM (default 0,150)")
    p.add_argument("--questions", type=int, help=f"how many of the {len(QUESTIONS)} questions (default all)")
    p.add_argument("--repeat", type=int, default=1, help="fresh sessions per strategy and distance (default 1)")
    p.add_argument("--pause-s", type=float, default=DEFAULT_PAUSE_S,
                   help=f"pause after a reply has played, before the next question (default {DEFAULT_PAUSE_S:g})")
    p.add_argument("--tts", choices=("piper", "auto"), default="piper", help="TTS engine (default piper)")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True, help=(
        "embedded LLM server over HTTPS with a throw-away certificate (default) or plain HTTP; "
        "a remote endpoint's (OPENAI_BASE_URL) scheme decides for it"
    ))
    p.add_argument("--quick", action="store_true",
                   help="2 questions, pre-warmed only, RTT 0 (for tests; explicit options win)")
    p.add_argument("--json", type=Path, help="write every raw measurement here")
    p.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    p.add_argument("--plot", type=Path, help="write a PNG chart here")
    return p


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings) -> BenchConfig:
    """Validate the options and apply the defaults (``--quick`` changes some of them)."""
    def pick(name: str, normal: Any) -> Any:
        value = getattr(args, name)
        if value is not None:
            return value
        return QUICK[name] if args.quick else normal

    config = BenchConfig(
        strategies=pick("strategies", STRATEGY_ORDER), rtt_ms=pick("rtt_ms", DEFAULT_RTTS),
        questions=pick("questions", len(QUESTIONS)), repeat=args.repeat, pause_s=args.pause_s, tts=args.tts,
        tls=args.tls, llm_temperature=settings.llm_temperature, quick=args.quick, chunk_ms=CHUNK_MS,
        trailing_silence_ms=TRAILING_SILENCE_MS,
        end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
        min_end_of_turn_silence_ms=settings.min_end_of_turn_silence_ms, early_transcript=settings.early_transcript,
        turn_timeout_s=TURN_TIMEOUT_S,
    )
    if not 1 <= config.questions <= len(QUESTIONS):
        parser.error(f"--questions must be between 1 and {len(QUESTIONS)}")
    if config.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not 0 <= config.pause_s <= 600:
        parser.error("--pause-s must be between 0 and 600 seconds")
    if any(r > 5000 for r in config.rtt_ms):
        parser.error("--rtt-ms values must be at most 5000")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the Markdown report and write the requested files."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings({"tts_engine": args.tts, "llm_temperature": LLM_TEMPERATURE})
    except SettingsError as exc:
        parser.error(str(exc))
    config = config_from(args, parser, settings)
    configure_logging("WARNING")
    # Sessions, proxies, the server and temp files are cleaned up on Ctrl-C or SIGTERM.
    return run_interruptible(lambda: _run(args, settings, config, argv))


def bench_endpoint(settings: Settings, tls: TlsFiles | None) -> LLMEndpoint:
    """The endpoint the settings describe, with the embedded server (if it is the one) over HTTPS
    with ``tls``'s certificate, which the sessions' clients then trust; plain HTTP if None."""
    endpoint = LLMEndpoint.from_settings(settings)
    if not endpoint.is_embedded:
        return endpoint
    if tls is None:
        return dataclasses.replace(endpoint, reason=f"{endpoint.reason}; plain HTTP (--no-tls)")
    return dataclasses.replace(endpoint, server=bench_server(tls), ssl=tls.client_context,
                               reason=f"{endpoint.reason}; HTTPS with a throw-away trustme certificate")


def _run(args: argparse.Namespace, settings: Settings, config: BenchConfig, argv: list[str]) -> int:
    """Start the app's runtime, synthesize the questions, run every session, then report."""
    started, load_start = time.perf_counter(), load_average()
    with (RssSampler() as sampler, tempfile.TemporaryDirectory(prefix="warmvoice-voice-bench-") as tmp,
          contextlib.ExitStack() as stack):
        # The certificate's directory outlives the server, which runtime.close() stops.
        tls = stack.enter_context(throwaway_tls()) if config.tls and settings.uses_embedded_llm else None
        runtime = VoiceRuntime.create(settings, progress=progress, endpoint=bench_endpoint(settings, tls))
        try:
            questions = synthesize_questions(QUESTIONS[:config.questions], Path(tmp))
            lengths = ", ".join(f"{q.duration_s:.1f} s" for q in questions)
            progress(f"{len(questions)} question(s) synthesized with Piper ({lengths})")
            startup_s = time.perf_counter() - started
            sampler.phase = "turns"
            primer, sessions = asyncio.run(run_all(runtime, questions, config, progress))
            server = runtime.endpoint.server
            endpoint = EndpointRecord(
                embedded=runtime.endpoint.is_embedded, base_url=public_endpoint(runtime.endpoint.base_url),
                model=runtime.endpoint.model, reason=runtime.endpoint.reason,
                server_threads=server.n_threads if server is not None else None,
                tls=runtime.endpoint.base_url.startswith("https://"),
            )
        finally:
            runtime.close()
    run = VoiceBenchRun(
        command=command_line(PROG, argv), argv=hide_api_key(argv), machine=machine_info(load_start, PACKAGES),
        config=config, endpoint=endpoint,
        questions=[QuestionInfo(q.index, q.question.text, list(q.question.key_words), q.sample_rate,
                                round(q.duration_s, 3), round(q.last_voiced_s, 3)) for q in questions],
        primer=primer, sessions=sessions, memory=sampler.peak, startup_s=round(startup_s, 1),
        wall_time_s=round(time.perf_counter() - started, 1),
    )
    markdown = render_markdown(run)
    print(markdown, end="", flush=True)
    if args.json is not None:
        write_json(run, args.json)
        progress(f"wrote {args.json}")
    if args.plot is not None:
        write_plot(run, args.plot)
        progress(f"wrote {args.plot}")
    if args.markdown is not None:
        args.markdown.write_text(markdown, encoding="utf-8")
        progress(f"wrote {args.markdown}")
    failed = [t for t in run.turns if not t.ok]
    if failed:
        progress(f"{len(failed)} turn(s) failed; see the report")
    unheard = [t for t in run.turns if not t.key_words_ok]
    if unheard:
        progress(f"{len(unheard)} transcript(s) missed key words; see the report")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
