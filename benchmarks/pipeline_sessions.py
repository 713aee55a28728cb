"""The pipeline benchmark's sessions: fresh :class:`voice.session.VoiceSession`\\ s that hear the
spoken questions in real time and record every turn as measured.

:func:`run_all` primes the LLM server, then runs every distance, repeat, strategy and variant one
session at a time, in alternating order; :func:`run_session` is one such session (with the
edge-tts stand-in when the run measures the TTS connection).  :mod:`benchmarks.pipeline` is the
command line around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence

from benchmarks.common import Say
from benchmarks.edge_standin import EdgeStandin, encode_mp3, tone
from benchmarks.pipeline_levers import lever_settings
from benchmarks.pipeline_questions import SpokenQuestion, missing_key_words
from benchmarks.pipeline_records import (
    BenchConfig,
    PrimerRecord,
    SessionRecord,
    TurnRecord,
    WarmupRecord,
    format_ms,
)
from benchmarks.pipeline_tts import tts_turn_record
from benchmarks.process_sampling import cpu_mark, other_cpu_share
from llm import EmbeddedLLMServer, LatencyProxy
from voice.headless import TurnResult, run_spoken_turn, run_typed_turn
from voice.runtime import VoiceRuntime
from voice.session import VoiceSession
from voice.tts import tts_for

TURN_TIMEOUT_S = 120.0
PLAYBACK_SLACK_S = 5.0  # beyond the reply's own duration, the longest wait for its playback to end
SOCKETS_CLOSE_S = 5.0  # how long the stand-in may take to see a stopped session's sockets close


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


def _variant(record: SessionRecord, config: BenchConfig) -> str:
    """The session's question set and levers for the progress lines, when the run varies them."""
    inputs = f" {record.inputs}" if len(config.inputs) > 1 or len(config.question_rates) > 1 or config.voices else ""
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
    if tts_connection:
        # The TTS connection is measured on the turn's path: a first sentence spoken ahead during
        # the pause (PREEMPTIVE_TTS) would open it off the path, in the cold and warm modes alike.
        settings = settings.replace(preemptive_tts=False)
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
