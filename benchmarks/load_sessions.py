"""Ten concurrent sessions for a minute, and what they leave behind: the scenario that
``python -m benchmarks.load`` publishes and ``tests/test_load.py`` holds to its behaviour.

Each session does a turn, pauses 2-4 s (a person listening and thinking), and goes again; two of
them speak (Piper-made speech, paced like a microphone, real Whisper), the rest type.  Three of
the typing sessions speak their replies with edge-tts and its warm transport (a spare socket per
session) against :class:`benchmarks.edge_standin.EdgeStandin`, the local stand-in of the speech
service; the others with Piper.  Afterwards the sockets, tasks, child processes, threads and
memory of the process are read again: :class:`LoadRun` holds all of it, measured, for the test to
judge and the benchmark to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import psutil

from benchmarks.edge_standin import EdgeStandin
from benchmarks.voice_families import family, piper_speech
from voice.audio import SAMPLE_RATE
from voice.headless import TurnResult, run_spoken_turn, run_typed_turn
from voice.native_memory import release_freed_memory
from voice.runtime import VoiceRuntime
from voice.session import VoiceSession
from voice.tts import make_tts

SESSIONS = 10
SPOKEN_SESSIONS = 2
PIPER_VOICE = family("piper-1.0")  # the bundled voice at its own pace, noise off
EDGE_SESSIONS = 3  # typing sessions whose replies edge-tts speaks (warm transport, stand-in service)
DURATION_S = 60.0
PAUSE_S = (2.0, 4.0)
TURN_TIMEOUT_S = 120.0
SEED = 20241125
TTS_KINDS = ("reused spare", "reused socket", "new")
QUESTIONS = [
    "What is the capital of France?",
    "Name a fruit that is yellow.",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "Say something kind.",
    "What do bees make?",
]


@dataclass(frozen=True)
class Speech:
    """A question spoken by the bundled Piper voice: float32 mono samples at ``sample_rate``."""

    text: str
    samples: np.ndarray
    sample_rate: int


def speak(text: str) -> Speech:
    """``text`` in the bundled Piper voice, noise off so the same text gives the same samples (blocking)."""
    return Speech(text, piper_speech(text, PIPER_VOICE), SAMPLE_RATE)


@dataclass
class SessionRun:
    """What one session did under load."""

    name: str
    spoken: bool
    edge: bool = False
    results: list[TurnResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    connections_opened: int = 0
    connections_reused: int = 0
    pool_limit: int = 0


@dataclass(frozen=True)
class Aftermath:
    """The process before the sessions and after they all ended."""

    rss_before: int  # bytes, after gc + malloc_trim
    rss_after: int
    raw_rss_before: int  # bytes, as the OS reads it
    raw_rss_after: int
    objects_before: int  # gc-tracked Python objects
    objects_after: int
    new_sockets: int  # inet sockets of this process that were not there before
    leftover_tasks: int
    foreign_children: list[int]  # child processes other than the embedded server (and its own)
    threads_before: int
    threads_after: int

    @property
    def growth_mb(self) -> float:
        """RSS growth after gc + malloc_trim, MB."""
        return (self.rss_after - self.rss_before) / 1e6


@dataclass
class LoadRun:
    """Everything one run of the scenario measured."""

    elapsed_s: float
    runs: list[SessionRun]
    aftermath: Aftermath
    standin_sockets: int  # connections the edge-tts stand-in accepted
    standin_sentences: int  # sentences it was asked to speak
    standin_open_after: int  # its connections still open after the sessions ended

    def results(self) -> list[TurnResult]:
        """Every turn that succeeded."""
        return [r for run in self.runs for r in run.results]

    def failures(self) -> list[str]:
        """Every turn that failed, named by its session."""
        return [f"{run.name} {f}" for run in self.runs for f in run.failures]

    def first_sentences(self, source: str | None = None) -> list[float]:
        """Speech end → first sentence (ms) of the turns from ``source`` ("text", "voice"; None: all)."""
        return [
            r.latency.first_sentence_ms
            for r in self.results()
            if r.latency.first_sentence_ms is not None and source in (None, r.latency.source)
        ]

    def first_audio(self) -> list[float]:
        """Speech end → first audio (ms) of every turn that had one."""
        return [r.latency.first_audio_ms for r in self.results() if r.latency.first_audio_ms is not None]

    def edge_turns(self) -> list[TurnResult]:
        """The turns of the sessions whose replies edge-tts spoke."""
        return [r for run in self.runs if run.edge for r in run.results]

    def edge_sockets(self) -> dict[str, int]:
        """How many edge turns sent their first sentence on each kind of socket ("" : none said)."""
        turns = self.edge_turns()
        return {kind: sum(r.latency.tts_connection == kind for r in turns) for kind in ("", *TTS_KINDS)}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy computes it."""
    return float(np.percentile(np.asarray(values, dtype=float), q))


def settled_rss(proc: psutil.Process) -> int:
    """RSS after garbage collection and after glibc returned its freed heap pages to the OS:
    what the process still uses, not what the allocator keeps cached for its threads."""
    gc.collect()
    release_freed_memory()
    return int(proc.memory_info().rss)


def our_sockets(proc: psutil.Process) -> set[tuple[object, ...]]:
    """This process's inet sockets (the embedded server is a child: its sockets are not here)."""
    return {(c.fd, c.laddr, c.raddr, c.status) for c in proc.net_connections(kind="inet")}


async def drive(
    session: VoiceSession, run: SessionRun, deadline: float, rng: random.Random, speech: list[Speech]
) -> None:
    """Turns until ``deadline``, each followed by a 2-4 s pause; a speaking session says ``speech`` in turn."""
    await session.start()
    try:
        await session.wait_warm()
        i = 0
        while time.perf_counter() < deadline:
            question = QUESTIONS[(i + rng.randrange(len(QUESTIONS))) % len(QUESTIONS)]
            if run.spoken:
                said = speech[i % len(speech)]
                result = await run_spoken_turn(session, said.samples, said.sample_rate, timeout_s=TURN_TIMEOUT_S)
            else:
                result = await run_typed_turn(session, question, timeout_s=TURN_TIMEOUT_S)
            i += 1
            if result is None:
                run.failures.append(f"turn {i}: no turn detected")
            elif result.latency.outcome != "ok" or not result.reply or result.latency.first_sentence_ms is None:
                run.failures.append(f"turn {i}: {result.latency.outcome} {result.latency.error} {result.notices}")
            else:
                run.results.append(result)
            await asyncio.sleep(rng.uniform(*PAUSE_S))
        client = session.client
        if client is None:
            raise RuntimeError(f"{run.name}: the session has no LLM client after its turns")
        run.connections_opened = client.stats.connections_opened
        run.connections_reused = client.stats.connections_reused
        run.pool_limit = session.settings.pool_limit
    finally:
        await session.stop()
        await session.speech.tts.aclose()


async def warm_everything(runtime: VoiceRuntime, speech: Speech) -> None:
    """One typed and one spoken turn first, so one-time allocations (model arenas, caches,
    thread pools) are in the baseline rather than counted as growth."""
    session = runtime.new_session("load-warm-up")
    await session.start()
    try:
        await run_typed_turn(session, "Say hello.", timeout_s=TURN_TIMEOUT_S)
        await run_spoken_turn(session, speech.samples, speech.sample_rate, realtime=False, timeout_s=TURN_TIMEOUT_S)
    finally:
        await session.stop()
        await session.speech.tts.aclose()


def new_session(runtime: VoiceRuntime, run: SessionRun) -> VoiceSession:
    """The session ``run`` describes: the runtime's own, or one whose replies edge-tts speaks."""
    if not run.edge:
        return runtime.new_session(run.name)
    tts = make_tts("auto", "en-US-AriaNeural", 5.0)  # its own edge breaker
    return VoiceSession(
        runtime.settings, runtime.endpoint, transcriber=runtime.transcriber, tts=tts, session_id=run.name
    )


async def run_load(runtime: VoiceRuntime, standin: EdgeStandin, duration_s: float = DURATION_S) -> LoadRun:
    """Warm up, run the ten sessions for ``duration_s`` (plus the turns in flight), then read what
    is left.  edge-tts must already point at ``standin``."""
    proc = psutil.Process()
    server_pid = runtime.endpoint.server.pid if runtime.endpoint.server else None
    speech = await asyncio.to_thread(lambda: [speak(q) for q in QUESTIONS[:3]])
    await warm_everything(runtime, speech[0])
    raw_before = proc.memory_info().rss
    rss_before = settled_rss(proc)
    objects_before = len(gc.get_objects())
    sockets_before = our_sockets(proc)
    threads_before = proc.num_threads()

    rng = random.Random(SEED)
    runs = [
        SessionRun(f"load-{i}", spoken=i < SPOKEN_SESSIONS, edge=SPOKEN_SESSIONS <= i < SPOKEN_SESSIONS + EDGE_SESSIONS)
        for i in range(SESSIONS)
    ]
    sessions = [new_session(runtime, run) for run in runs]
    started = time.perf_counter()
    deadline = started + duration_s
    async with asyncio.timeout(duration_s + 4 * TURN_TIMEOUT_S):
        await asyncio.gather(
            *(
                drive(session, run, deadline, random.Random(rng.random()), speech)
                for session, run in zip(sessions, runs, strict=True)
            )
        )
    elapsed = time.perf_counter() - started
    del sessions

    # Tasks are given a moment to finish closing, the stand-in's end of the sockets to close.
    current = asyncio.current_task()
    with contextlib.suppress(TimeoutError):  # counted below, for the report and the test to judge
        async with asyncio.timeout(5):
            while asyncio.all_tasks() - {current}:
                await asyncio.sleep(0.05)
    leftover = len(asyncio.all_tasks() - {current})
    raw_after = proc.memory_info().rss
    rss_after = settled_rss(proc)
    objects_after = len(gc.get_objects())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while standin.open_connections:
                await asyncio.sleep(0.05)
    sockets_after = our_sockets(proc)
    children = proc.children(recursive=True)
    foreign = [c.pid for c in children if c.pid != server_pid and server_pid not in {p.pid for p in c.parents()}]
    aftermath = Aftermath(
        rss_before,
        rss_after,
        raw_before,
        raw_after,
        objects_before,
        objects_after,
        len(sockets_after - sockets_before),
        leftover,
        foreign,
        threads_before,
        proc.num_threads(),
    )
    return LoadRun(elapsed, runs, aftermath, standin.connections, len(standin.requests), standin.open_connections)


def median_turns(run: LoadRun) -> float:
    """The median number of successful turns per session."""
    return statistics.median(len(r.results) for r in run.runs)
