"""``python -m benchmarks.pipeline``: the end-to-end voice benchmark (issue #6 part 3, issue #8's memory bar).

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

The records are in :mod:`benchmarks.pipeline_records`; their Markdown, JSON and chart in
:mod:`benchmarks.pipeline_report`.
Progress goes to stderr, the Markdown report to stdout; ``--json``, ``--markdown`` and
``--plot`` write files.  Exit status 1 if any turn failed, 2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import inspect
import re
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from benchmarks.common import (
    MACHINE_PACKAGES,
    STRATEGY_ORDER,
    Say,
    TlsFiles,
    bench_server,
    command_line,
    hide_api_key,
    parse_rtt_list,
    progress,
    run_interruptible,
    throwaway_tls,
)
from benchmarks.edge_standin import EdgeStandin, encode_mp3, tone
from benchmarks.machine_probe import start_run
from benchmarks.pipeline_levers import INPUT_SETS, LEVERS, LEVERS_OFF, input_label, lever_settings, off_values
from benchmarks.pipeline_preemptive import replay_hesitations
from benchmarks.pipeline_records import (
    RSS_INTERVAL_S,
    BenchConfig,
    EndpointRecord,
    MemoryPeak,
    PrimerRecord,
    QuestionInfo,
    SessionRecord,
    StandinConfig,
    TtsTurnRecord,
    TurnRecord,
    VoiceBenchRun,
    WarmupRecord,
    format_ms,
)
from benchmarks.pipeline_report import render_markdown, write_json, write_plot
from benchmarks.report import publish
from llm import EmbeddedLLMServer, LatencyProxy, configure_logging, public_endpoint
from voice.audio import read_wav, write_wav
from voice.headless import TurnResult, run_spoken_turn, run_typed_turn, speak_into, trailing_silence_for
from voice.llm_endpoint import LLMEndpoint
from voice.runtime import VoiceRuntime
from voice.session import VoiceSession
from voice.settings import Settings, SettingsError, load_settings
from voice.tts import tts_for

PROG = "python -m benchmarks.pipeline"
DEFAULT_RTTS = (0.0, 150.0)
DEFAULT_PAUSE_S = 1.5
QUICK = {"questions": 2, "strategies": ("prewarmed",), "rtt_ms": (0.0,)}
# Anything quieter than this (about -40 dBFS) is silence when locating the audio's own end of speech.
ENERGY_THRESHOLD = 0.01
TURN_TIMEOUT_S = 120.0
# Greedy sampling, whatever LLM_TEMPERATURE says: every strategy then hears the same replies, so the
# first sentence's length, Piper's time for it and the playback before the next question match.
LLM_TEMPERATURE = 0.0
PLAYBACK_SLACK_S = 5.0  # beyond the reply's own duration, the longest wait for its playback to end
TTS_CONNECTIONS = ("cold", "warm")
STANDIN_AUDIO_S = 1.0  # what the stand-in answers every sentence with (a tone: nobody listens)
SOCKETS_CLOSE_S = 5.0  # how long the stand-in may take to see a stopped session's sockets close
# What the feeding does, read from voice.headless so the report cannot drift from the code.
_FEED = inspect.signature(speak_into).parameters
CHUNK_MS = int(_FEED["chunk_ms"].default)
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
# The harder inputs (--inputs hard): questions of 10-15 words, as people ask them.
HARD_QUESTIONS: tuple[Question, ...] = (
    Question("Could you please tell me the name of the capital city of France?", ("capital", "france")),
    Question("I was wondering how many legs a spider has, could you tell me?", ("legs", "spider")),
    Question("On a clear summer day, what color is the sky above us?", ("color/colour", "sky", "summer")),
    Question("Please name one fruit that is yellow and that monkeys like to eat.", ("fruit", "yellow")),
    Question("Who was the famous writer who wrote the play called Hamlet?", ("writer", "hamlet")),
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
    inputs: str = "short ×1"  # its question set and Piper speaking rate (see benchmarks.pipeline_levers)

    @property
    def duration_s(self) -> float:
        """Length of the WAV (Piper's own leading and trailing silence included)."""
        return len(self.samples) / self.sample_rate


def synthesize_questions(
    questions: Sequence[Question],
    directory: Path,
    *,
    length_scale: float = 1.0,
    inputs: str = "short",
    first_index: int = 1,
) -> list[SpokenQuestion]:
    """Render each question with the bundled Piper voice, write it as 16-bit WAV, read it back.

    ``length_scale`` is Piper's speaking rate (above 1: slower).  Questions are numbered from
    ``first_index``.  Blocking (Piper runs on the CPU).  The voice object is the one the app's
    Piper TTS uses (loaded once per process), so this costs no extra model memory.
    """
    from piper import SynthesisConfig

    from voice.tts import bundled_voice_path, load_voice

    voice = load_voice(bundled_voice_path())
    # Noise off: deterministic, the same text gives the same audio.
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale)
    label = input_label(inputs, length_scale)
    spoken: list[SpokenQuestion] = []
    for index, question in enumerate(questions, first_index):
        chunks = list(voice.synthesize(question.text, config))
        if not chunks:
            raise RuntimeError(f"Piper produced no audio for {question.text!r}")
        path = directory / f"question-{index}.wav"
        write_wav(path, np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate)
        samples, rate = read_wav(path)
        loud = np.flatnonzero(np.abs(samples) > ENERGY_THRESHOLD)
        if not loud.size:
            raise RuntimeError(f"Piper's audio for {question.text!r} is silent")
        spoken.append(SpokenQuestion(index, question, samples, rate, (int(loud[-1]) + 1) / rate, label))
    return spoken


def spoken_inputs(config: BenchConfig, directory: Path) -> list[SpokenQuestion]:
    """Every question the run asks: per question set of ``--inputs`` and Piper rate of
    ``--question-rates``, the first ``--questions`` of the set, numbered through."""
    spoken: list[SpokenQuestion] = []
    for inputs in config.inputs:
        bank = QUESTIONS if inputs == "short" else HARD_QUESTIONS
        for rate in config.question_rates:
            spoken += synthesize_questions(
                bank[: config.questions], directory, length_scale=rate, inputs=inputs, first_index=len(spoken) + 1
            )
    return spoken


# ---- peak memory ------------------------------------------------------------------------


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
                total,
                own,
                child_rss,
                alive,
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


# ---- running sessions -------------------------------------------------------------------


async def wait_playback(session: VoiceSession, longest_s: float) -> None:
    """Wait (bounded) until the reply has finished playing, as a listening user would."""
    deadline = time.perf_counter() + longest_s
    while session.busy and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


async def _turn(
    session: VoiceSession,
    q: SpokenQuestion,
    record: SessionRecord,
    started: float,
    config: BenchConfig,
    say: Say,
    server: EmbeddedLLMServer | None = None,
) -> TurnRecord:
    """Speak one question into ``session`` and record the turn; with the embedded ``server``, also
    what llama.cpp did with the prompt of the turn's last completion (the reply's request)."""
    log_mark = await asyncio.to_thread(server.log_position) if server is not None else 0
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
        rtt_ms=record.rtt_ms,
        strategy=record.strategy,
        session=record.index,
        question=q.index,
        question_text=q.question.text,
        key_words=list(q.question.key_words),
        transcript=transcript,
        key_words_ok=not missing,
        missing_key_words=missing,
        reply=result.reply_text if result is not None else "",
        reply_sentences=list(result.reply) if result is not None else [],
        first_sentence_chars=len(result.reply[0]) if result is not None and result.reply else None,
        reply_audio_s=round(audio_s, 3),
        notices=list(result.notices) if result is not None else [],
        started_at_s=round(fed_at - started, 3),
        speech_end_error_ms=(
            round((lat.speech_end_at - (fed_at + q.last_voiced_s)) * 1000.0, 1) if lat is not None else None
        ),
        outcome=lat.outcome if lat is not None else outcome,
        latency=lat,
    )
    if server is not None:  # the stream has ended: llama.cpp has logged its completion
        turn.prompt_cache = next(reversed(await asyncio.to_thread(server.prompt_cache_since, log_mark)), None)
    heard = "ok" if turn.key_words_ok else f"MISSING {', '.join(missing)}"
    conn = "" if lat is None else lat.connection or "?"
    say(
        f"[{record.rtt_ms:4.0f} ms] {record.strategy:9}{_variant(record, config)} s{record.index} q{q.index}: "
        + (
            f"endpoint {format_ms(lat.endpoint_ms)} | transcript {format_ms(lat.transcript_ms)} | first token "
            f"{format_ms(lat.first_token_ms)} | first sentence {format_ms(lat.first_sentence_ms)} | first audio "
            f"{format_ms(lat.first_audio_ms)} ms | {conn} | heard {transcript!r} ({heard})"
            + ("" if turn.prompt_cache is None else f" | prompt: {turn.prompt_cache.describe()}")
            if lat is not None
            else f"no turn ({outcome})"
        )
        + ("" if turn.outcome == "ok" else f" | {turn.outcome}: {lat.error if lat else ''}")
    )
    return turn


def tts_turn_record(turn: TurnRecord, standin: EdgeStandin, first_request: int, proxy_opened: int) -> TtsTurnRecord:
    """The TTS hop of ``turn``: the session's own stamps, and what the stand-in saw of the first
    sentence's request (its requests from number ``first_request`` on belong to this turn)."""
    lat = turn.latency
    ready_at = None
    if lat is not None and lat.first_sentence_ms is not None:
        ready_at = lat.speech_end_at + lat.first_sentence_ms / 1000.0
    request = next(iter(standin.requests[first_request:]), None)
    on_path = age = None
    if request is not None and ready_at is not None:
        on_path = request.connected_at >= ready_at
        age = round((request.received_at - request.connected_at) * 1000.0, 1)
    gap = None
    if lat is not None and lat.first_audio_ms is not None and lat.first_sentence_ms is not None:
        gap = round(lat.first_audio_ms - lat.first_sentence_ms, 1)
    return TtsTurnRecord(
        sentence_to_audio_ms=gap,
        connection=lat.tts_connection if lat is not None else "",
        setup_ms=lat.tts_setup_ms if lat is not None else None,
        wait_ms=lat.tts_wait_ms if lat is not None else None,
        opened_on_path=on_path,
        connection_age_ms=age,
        proxy_connections=proxy_opened,
    )


def _variant(record: SessionRecord, config: BenchConfig) -> str:
    """The session's question set and levers for the progress lines, when the run varies them."""
    inputs = f" {record.inputs}" if len(config.inputs) > 1 or len(config.question_rates) > 1 else ""
    return inputs + (f" levers {record.levers}" if len(config.levers) > 1 else "")


async def run_session(
    runtime: VoiceRuntime,
    questions: Sequence[SpokenQuestion],
    config: BenchConfig,
    rtt: float,
    strategy: str,
    index: int,
    say: Say,
    *,
    standin: EdgeStandin | None = None,
    tts_connection: str = "",
    levers: str = "on",
) -> SessionRecord:
    """One fresh session: start it, speak every question, stop it (whatever happens).

    With ``standin`` the session speaks with edge-tts through a latency proxy (the session's RTT)
    to the stand-in, over a new connection per sentence (``tts_connection`` "cold") or the warm
    transport ("warm"), and the TTS hop of every turn is recorded.  ``levers``: issue #14's
    levers "on" (the app's settings) or "off" (see :mod:`benchmarks.pipeline_levers`).
    """
    settings = runtime.settings.replace(connection_strategy=strategy, emulated_rtt_ms=rtt)
    settings = lever_settings(settings, levers, config.off_levers)
    inputs = questions[0].inputs if questions else ""
    name = f"bench-{strategy}-{rtt:g}-{index}-{inputs.replace(' ×', '-x')}-levers-{levers}" + (
        f"-tts-{tts_connection}" if tts_connection else ""
    )
    record = SessionRecord(
        rtt_ms=rtt, strategy=strategy, index=index, tts_connection=tts_connection, levers=levers, inputs=inputs
    )
    async with contextlib.AsyncExitStack() as stack:
        proxy: LatencyProxy | None = None
        if standin is None:
            session = runtime.new_session(name, settings=settings)
        else:
            proxy = await stack.enter_async_context(LatencyProxy("127.0.0.1", standin.port, rtt_ms=rtt))
            stack.enter_context(standin.patched(port=proxy.port))
            settings = settings.replace(tts_engine="edge", edge_tts_warm=tts_connection == "warm")
            session = VoiceSession(
                settings,
                runtime.endpoint,
                transcriber=runtime.transcriber,
                tts=tts_for(settings),
                session_id=name,
                synthesis_gate=runtime.synthesis_gate,
            )
        await _run_questions(session, questions, config, record, say, standin, proxy, runtime.endpoint.server)
        if standin is not None and proxy is not None:
            record.tts_proxy_connections = proxy.connections_opened
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SOCKETS_CLOSE_S):
                    while standin.open_connections:
                        await asyncio.sleep(0.05)
            record.tts_sockets_left = standin.open_connections
    return record


async def _run_questions(
    session: VoiceSession,
    questions: Sequence[SpokenQuestion],
    config: BenchConfig,
    record: SessionRecord,
    say: Say,
    standin: EdgeStandin | None,
    proxy: LatencyProxy | None,
    server: EmbeddedLLMServer | None = None,
) -> None:
    rtt, strategy, index = record.rtt_ms, record.strategy + _variant(record, config), record.index
    started = time.perf_counter()  # the user clicks Start speaking ...
    cpu_start = cpu_mark()
    await session.start()
    try:
        for n, q in enumerate(questions):
            if n:  # ... and asks the first question at once; later ones after the reply and a pause
                previous = record.turns[-1]
                await wait_playback(session, previous.reply_audio_s + PLAYBACK_SLACK_S)
                await asyncio.sleep(config.pause_s)
            first_request = len(standin.requests) if standin is not None else 0
            opened_before = proxy.connections_opened if proxy is not None else 0
            turn = await _turn(session, q, record, started, config, say, server)
            if standin is not None and proxy is not None:
                turn.tts = tts_turn_record(turn, standin, first_request, proxy.connections_opened - opened_before)
                say(
                    f"    TTS ({record.tts_connection}): sentence -> first audio "
                    f"{format_ms(turn.tts.sentence_to_audio_ms)} ms, socket: {turn.tts.connection or '?'}, "
                    f"opened on the path: {turn.tts.opened_on_path}"
                )
            record.turns.append(turn)
        if session.client is not None:
            record.client = dataclasses.replace(session.client.stats)
        record.speculation = dataclasses.replace(session.speculation_stats)
        record.preemptive = dataclasses.replace(session.reply.preemptive.stats)
        warm = session.reply.warmup
        if warm is not None:
            finished = warm.timing.started_at + warm.ms / 1000.0 - started if warm.timing is not None else None
            record.warmup = WarmupRecord(
                ok=warm.ok,
                ms=round(warm.ms, 1),
                skipped=warm.skipped,
                reason=warm.reason,
                error=warm.error,
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


async def prime_server(runtime: VoiceRuntime, text: str, say: Say) -> PrimerRecord:
    """One typed turn in a throw-away session, before anything is measured.

    The LLM server's first completion after start-up is slower than any later one (its prompt
    cache is empty: the whole system prompt is evaluated once).  Without this, whichever session
    runs first would pay it; with the first question's text, every session's first request then
    finds the same prefix cached.
    """
    session = runtime.new_session(
        "bench-primer", settings=runtime.settings.replace(connection_strategy="prewarmed", emulated_rtt_ms=0.0)
    )
    await session.start()
    try:
        await session.wait_warm()
        result = await run_typed_turn(session, text, timeout_s=TURN_TIMEOUT_S)
    finally:
        await session.stop()
    lat = result.latency
    say(f"[primer] typed {text!r} (not measured): first token {format_ms(lat.first_token_ms)} ms, {lat.outcome}")
    return PrimerRecord(
        text=text, outcome=lat.outcome, first_token_ms=lat.first_token_ms, reply_done_ms=lat.reply_done_ms
    )


async def run_all(
    runtime: VoiceRuntime, questions: Sequence[SpokenQuestion], config: BenchConfig, say: Say
) -> tuple[PrimerRecord, list[SessionRecord]]:
    """The primer, then every distance and repeat; each such round runs the strategies in the
    opposite order of the round before, so a drift of the machine (other processes starting or
    ending) does not always land on the same strategy.  One session at a time."""
    primer = await prime_server(runtime, questions[0].question.text, say)
    for levers in config.levers:  # each variant's TTS loaded and warm, as the runtime's own is
        tts = tts_for(lever_settings(runtime.settings, levers, config.off_levers))
        await tts.warm()
        await tts.aclose()
    sessions: list[SessionRecord] = []
    if config.standin is None:
        # Per question set, the lever variants back to back, in alternating order: an on/off pair
        # shares the machine's state of the moment.
        groups = [[q for q in questions if q.inputs == label] for label in dict.fromkeys(q.inputs for q in questions)]
        flip = 0
        for rtt, index, strategy in session_plan(config):
            for group in groups:
                order = config.levers if flip % 2 == 0 else tuple(reversed(config.levers))
                flip += 1
                for levers in order:
                    sessions.append(await run_session(runtime, group, config, rtt, strategy, index, say, levers=levers))
        return primer, sessions
    import trustme

    st = config.standin
    mp3 = encode_mp3(tone(440.0, st.audio_s))
    async with EdgeStandin(
        mp3, trustme.CA(), reuse=st.reuse, idle_limit_s=st.idle_limit_s, synthesis_s=st.synthesis_ms / 1000.0
    ) as standin:
        for n, (rtt, index, strategy) in enumerate(session_plan(config)):
            modes = config.tts_connections if n % 2 == 0 else tuple(reversed(config.tts_connections))
            for mode in modes:
                sessions.append(
                    await run_session(
                        runtime, questions, config, rtt, strategy, index, say, standin=standin, tts_connection=mode
                    )
                )
    return primer, sessions


def session_plan(config: BenchConfig) -> list[tuple[float, int, str]]:
    """(RTT, repeat index, strategy) of every session in run order (see :func:`run_all`)."""
    rounds = [(rtt, index) for rtt in config.rtt_ms for index in range(1, config.repeat + 1)]
    plan: list[tuple[float, int, str]] = []
    for n, (rtt, index) in enumerate(rounds):
        order = config.strategies if n % 2 == 0 else tuple(reversed(config.strategies))
        plan += [(rtt, index, strategy) for strategy in order]
    return plan


# ---- command line -----------------------------------------------------------------------


def _strategy_list(text: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [v for v in values if v not in STRATEGY_ORDER]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(STRATEGY_ORDER)} (comma-separated), got {text!r}")
    return values


def _tts_connection_list(text: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not values or any(v not in TTS_CONNECTIONS for v in values):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(TTS_CONNECTIONS)} (comma-separated), got {text!r}")
    return values


def _choice_list(choices: Sequence[str]) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        if not values or any(v not in choices for v in values):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated), got {text!r}")
        return tuple(c for c in choices if c in values)

    return parse


def _rate_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(dict.fromkeys(float(part) for part in text.split(",") if part.strip()))
    except ValueError:
        values = ()
    if not values or any(not 0.5 <= v <= 2.0 for v in values):
        raise argparse.ArgumentTypeError(f"comma-separated numbers between 0.5 and 2, got {text!r}")
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
    p.add_argument(
        "--pause-s",
        type=float,
        default=DEFAULT_PAUSE_S,
        help=f"pause after a reply has played, before the next question (default {DEFAULT_PAUSE_S:g})",
    )
    p.add_argument(
        "--tts",
        choices=("piper", "auto", "edge-standin"),
        default="piper",
        help=(
            "TTS engine (default piper); edge-standin: edge-tts against the local stand-in of its service, over TLS "
            "behind the latency proxy, cold (a connection per sentence) and warm (spare sockets) sessions"
        ),
    )
    p.add_argument(
        "--tts-connections",
        type=_tts_connection_list,
        default=TTS_CONNECTIONS,
        help="with --tts edge-standin: cold, warm or both (default cold,warm)",
    )
    p.add_argument(
        "--standin-synthesis-ms", type=float, default=50.0, help="the stand-in's time to its first audio (default 50)"
    )
    p.add_argument(
        "--standin-idle-s",
        type=float,
        default=12.0,
        help="the stand-in closes a socket idle this long (default 12; 0: never)",
    )
    p.add_argument(
        "--standin-reuse",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the stand-in answers further requests on a socket (default) or closes it after one",
    )
    p.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "embedded LLM server over HTTPS with a throw-away certificate (default) or plain HTTP; "
            "a remote endpoint's (OPENAI_BASE_URL) scheme decides for it"
        ),
    )
    p.add_argument(
        "--levers",
        type=_choice_list(LEVERS),
        default=("on",),
        help="issue #14's levers: on (the app's settings), off, or off,on to compare them (default on)",
    )
    p.add_argument(
        "--off-levers",
        type=_choice_list(tuple(LEVERS_OFF)),
        default=(),
        help="the levers the off variant puts back (default: all of them), to compare one lever against the app",
    )
    p.add_argument(
        "--inputs",
        type=_choice_list(INPUT_SETS),
        default=("short",),
        help="question sets: short (4-7 words), long (10-15 words) or both (default short)",
    )
    p.add_argument(
        "--question-rates",
        type=_rate_list,
        default=(1.0,),
        help="Piper speaking rates (length_scale, above 1 slower) to speak the questions at (default 1)",
    )
    p.add_argument(
        "--hesitations",
        type=int,
        default=0,
        help="also replay this many of the turn-taking set's hesitations with preemptive speech on (default 0)",
    )
    p.add_argument(
        "--quick", action="store_true", help="2 questions, pre-warmed only, RTT 0 (for tests; explicit options win)"
    )
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
        strategies=pick("strategies", STRATEGY_ORDER),
        rtt_ms=pick("rtt_ms", DEFAULT_RTTS),
        questions=pick("questions", len(QUESTIONS)),
        repeat=args.repeat,
        pause_s=args.pause_s,
        tts=args.tts,
        tls=args.tls,
        llm_temperature=settings.llm_temperature,
        quick=args.quick,
        chunk_ms=CHUNK_MS,
        trailing_silence_ms=trailing_silence_for(settings),
        end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
        min_end_of_turn_silence_ms=settings.min_end_of_turn_silence_ms,
        early_transcript=settings.early_transcript,
        turn_timeout_s=TURN_TIMEOUT_S,
        tts_connections=args.tts_connections if args.tts == "edge-standin" else (),
        levers=args.levers,
        inputs=args.inputs,
        question_rates=args.question_rates,
        levers_on={name: getattr(settings, name) for name in off_values(args.off_levers)},
        off_levers=args.off_levers,
        standin=(
            StandinConfig(
                synthesis_ms=args.standin_synthesis_ms,
                idle_limit_s=args.standin_idle_s or None,
                reuse=args.standin_reuse,
                audio_s=STANDIN_AUDIO_S,
                max_idle_s=settings.edge_tts_max_idle_s,
            )
            if args.tts == "edge-standin"
            else None
        ),
        turn_detector=settings.turn_detector,
        hesitations=args.hesitations,
    )
    if not 0 <= config.hesitations <= 64:
        parser.error("--hesitations must be between 0 and 64")
    if not 1 <= config.questions <= len(QUESTIONS):
        parser.error(f"--questions must be between 1 and {len(QUESTIONS)}")
    if args.tts == "edge-standin" and (
        len(config.levers) > 1 or len(config.inputs) > 1 or len(config.question_rates) > 1
    ):
        parser.error("--tts edge-standin compares TTS connections: give one --levers, --inputs and --question-rates")
    if config.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not 0 <= config.pause_s <= 600:
        parser.error("--pause-s must be between 0 and 600 seconds")
    if any(r > 5000 for r in config.rtt_ms):
        parser.error("--rtt-ms values must be at most 5000")
    if not 0 <= args.standin_synthesis_ms <= 10_000 or not 0 <= args.standin_idle_s <= 3600:
        parser.error("--standin-synthesis-ms must be 0-10000 and --standin-idle-s 0-3600")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the Markdown report and write the requested files."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # With the stand-in, the runtime's own TTS (its start-up warm-up) is Piper: only the measured
        # sessions speak edge-tts, to the stand-in (the real service is not reachable from here).
        engine = "piper" if args.tts == "edge-standin" else args.tts
        settings = load_settings({"tts_engine": engine, "llm_temperature": LLM_TEMPERATURE})
    except SettingsError as exc:
        parser.error(str(exc))
    config = config_from(args, parser, settings)
    configure_logging("WARNING")
    # Sessions, proxies, the server and temp files are cleaned up on Ctrl-C or SIGTERM.
    return run_interruptible(lambda: _run(args, settings, config, argv))


def report_name(config: BenchConfig) -> str:
    """The report the run publishes (docs/measurements/<name>.md): the TTS connection, preemptive
    speech and levers comparisons each have their own beside the connection strategies' one."""
    if config.standin is not None:
        return "pipeline_tts"
    if config.hesitations or "preemptive_tts" in config.off_levers:
        return "pipeline_preemptive_tts"
    if config.levers != ("on",):
        return "pipeline_levers"
    return "pipeline"


def bench_endpoint(settings: Settings, tls: TlsFiles | None) -> LLMEndpoint:
    """The endpoint the settings describe, with the embedded server (if it is the one) over HTTPS
    with ``tls``'s certificate, which the sessions' clients then trust; plain HTTP if None."""
    endpoint = LLMEndpoint.from_settings(settings)
    if not endpoint.is_embedded:
        return endpoint
    if tls is None:
        return dataclasses.replace(endpoint, reason=f"{endpoint.reason}; plain HTTP (--no-tls)")
    return dataclasses.replace(
        endpoint,
        server=bench_server(tls),
        ssl=tls.client_context,
        reason=f"{endpoint.reason}; HTTPS with a throw-away trustme certificate",
    )


def _run(args: argparse.Namespace, settings: Settings, config: BenchConfig, argv: list[str]) -> int:
    """Start the app's runtime, synthesize the questions, run every session, then report."""
    start = start_run()
    with (
        RssSampler() as sampler,
        tempfile.TemporaryDirectory(prefix="warmvoice-voice-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        # The certificate's directory outlives the server, which runtime.close() stops.
        tls = stack.enter_context(throwaway_tls()) if config.tls and settings.uses_embedded_llm else None
        runtime = VoiceRuntime.create(settings, progress=progress, endpoint=bench_endpoint(settings, tls))
        try:
            questions = spoken_inputs(config, Path(tmp))
            lengths = ", ".join(f"{q.duration_s:.1f} s" for q in questions)
            progress(f"{len(questions)} question(s) synthesized with Piper ({lengths})")
            startup_s = start.wall_time_s()
            sampler.phase = "turns"
            primer, sessions = asyncio.run(run_all(runtime, questions, config, progress))
            hesitations = (
                asyncio.run(replay_hesitations(runtime, config.hesitations, progress)) if config.hesitations else None
            )
            server = runtime.endpoint.server
            endpoint = EndpointRecord(
                embedded=runtime.endpoint.is_embedded,
                base_url=public_endpoint(runtime.endpoint.base_url),
                model=runtime.endpoint.model,
                reason=runtime.endpoint.reason,
                server_threads=server.n_threads if server is not None else None,
                tls=runtime.endpoint.base_url.startswith("https://"),
            )
        finally:
            runtime.close()
    run = VoiceBenchRun(
        command=command_line(PROG, argv),
        argv=hide_api_key(argv),
        machine=start.machine(PACKAGES),
        config=config,
        endpoint=endpoint,
        questions=[
            QuestionInfo(
                q.index,
                q.question.text,
                list(q.question.key_words),
                q.sample_rate,
                round(q.duration_s, 3),
                round(q.last_voiced_s, 3),
                q.inputs,
            )
            for q in questions
        ],
        primer=primer,
        sessions=sessions,
        memory=sampler.peak,
        startup_s=round(startup_s, 1),
        wall_time_s=round(start.wall_time_s(), 1),
        hesitations=hesitations,
    )
    outputs = [(args.json, functools.partial(write_json, run)), (args.plot, functools.partial(write_plot, run))]
    publish(
        report_name(config),
        render_markdown(run),
        run.command,
        run.machine,
        outputs=outputs,
        markdown_path=args.markdown,
    )
    failed = [t for t in run.turns if not t.ok]
    if failed:
        progress(f"{len(failed)} turn(s) failed; see the report")
    unheard = [t for t in run.turns if not t.key_words_ok]
    if unheard:
        progress(f"{len(unheard)} transcript(s) missed key words; see the report")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
