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

The questions are in :mod:`benchmarks.pipeline_questions`, the sessions that hear them in
:mod:`benchmarks.pipeline_sessions`, the memory and CPU sampling in :mod:`benchmarks.process_sampling`;
the records in :mod:`benchmarks.pipeline_records`, their Markdown, JSON and chart in
:mod:`benchmarks.pipeline_report`.  This module is the command line.
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
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import voice_families
from benchmarks.common import (
    MACHINE_PACKAGES,
    STRATEGY_ORDER,
    TlsFiles,
    bench_server,
    parse_command_line,
    parse_rtt_list,
    run_interruptible,
    throwaway_tls,
)
from benchmarks.machine_probe import start_run
from benchmarks.pipeline_levers import INPUT_SETS, LEVERS, LEVERS_OFF, off_values
from benchmarks.pipeline_preemptive import replay_hesitations
from benchmarks.pipeline_questions import QUESTIONS, spoken_inputs
from benchmarks.pipeline_records import (
    BenchConfig,
    EndpointRecord,
    QuestionInfo,
    StandinConfig,
    VoiceBenchRun,
)
from benchmarks.pipeline_report import render_markdown, write_json, write_plot
from benchmarks.pipeline_sessions import TURN_TIMEOUT_S, run_all
from benchmarks.process_sampling import RssSampler
from benchmarks.report import progress, publish
from llm import configure_logging, public_endpoint
from voice.headless import speak_into, trailing_silence_for
from voice.llm_endpoint import LLMEndpoint
from voice.runtime import VoiceRuntime
from voice.settings import Settings, SettingsError, load_settings

PROG = "python -m benchmarks.pipeline"
DEFAULT_RTTS = (0.0, 150.0)
DEFAULT_PAUSE_S = 1.5
QUICK = {"questions": 2, "strategies": ("prewarmed",), "rtt_ms": (0.0,)}
# Greedy sampling, whatever LLM_TEMPERATURE says: every strategy then hears the same replies, so the
# first sentence's length, Piper's time for it and the playback before the next question match.
LLM_TEMPERATURE = 0.0
TTS_CONNECTIONS = ("cold", "warm")
STANDIN_AUDIO_S = 1.0  # what the stand-in answers every sentence with (a tone: nobody listens)
# What the feeding does, read from voice.headless so the report cannot drift from the code.
_FEED = inspect.signature(speak_into).parameters
CHUNK_MS = int(_FEED["chunk_ms"].default)
# Versions the report records beyond the connection benchmark's.
PACKAGES = (*MACHINE_PACKAGES, "faster-whisper", "ctranslate2", "piper-tts", "onnxruntime")


# ---- command line -----------------------------------------------------------------------


def _comma_list(choices: Sequence[str], *, given_order: bool = False) -> Callable[[str], tuple[str, ...]]:
    """An argparse ``type``: comma-separated values among ``choices``, each once, in the order given
    (``given_order``: the order the sessions then run in) or in that of ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        if not values or any(v not in choices for v in values):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (comma-separated), got {text!r}")
        return values if given_order else tuple(c for c in choices if c in values)

    return parse


def _voice_list(text: str) -> tuple[str, ...]:
    try:
        return tuple(voice.name for voice in voice_families.select(text))
    except (ValueError, KeyError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


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
    p.add_argument(
        "--strategies",
        type=_comma_list(STRATEGY_ORDER, given_order=True),
        help="comma-separated (default cold,pooled,prewarmed)",
    )
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
        type=_comma_list(TTS_CONNECTIONS, given_order=True),
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
        type=_comma_list(LEVERS),
        default=("on",),
        help="issue #14's levers: on (the app's settings), off, or off,on to compare them (default on)",
    )
    p.add_argument(
        "--off-levers",
        type=_comma_list(tuple(LEVERS_OFF)),
        default=(),
        help="the levers the off variant puts back (default: all of them), to compare one lever against the app",
    )
    p.add_argument(
        "--inputs",
        type=_comma_list(INPUT_SETS),
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
        "--voices",
        type=_voice_list,
        default=(),
        help="voice families to speak the questions in (benchmarks.voice_families: names, tuning, heldout, "
        "all), instead of Piper at --question-rates",
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
        voices=args.voices,
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
        len(config.levers) > 1 or len(config.inputs) > 1 or len(config.question_rates) > 1 or config.voices
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
    """Speak the questions into fresh sessions per strategy and distance, then publish the report
    (exit 1 if a turn failed)."""
    parser = build_parser()
    args, shown = parse_command_line(parser, argv)
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
    return run_interruptible(lambda: _run(args, settings, config, shown))


def report_name(config: BenchConfig) -> str:
    """The report the run publishes (docs/measurements/<name>.md): the TTS connection, preemptive
    speech, single-lever and levers comparisons each have their own beside the connection strategies' one."""
    if config.standin is not None:
        return "pipeline_tts"
    if config.hesitations or "preemptive_tts" in config.off_levers:
        return "pipeline_preemptive_tts"
    if len(config.off_levers) == 1:  # one lever against the app: a report of its own
        return f"pipeline_{config.off_levers[0]}"
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
        *start.identity(PROG, argv, PACKAGES),
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
