"""``python -m benchmarks.connection``: the connection benchmark of issue #6, measured with the real client.

For each emulated distance (``--rtt-ms``) and each strategy (cold = a new connection per
request, the original "before"; pooled = a pool without warm-up; pre-warmed = the "after")
it runs voice-like sessions: a fresh :class:`llm.client.PooledLLMClient` at "Start speaking"
(the pre-warmed one warms up in the background while the user speaks), the first request
``--speak-s`` later, further turns ``--pause-s`` apart and, unless ``--idle-pause-s 0``, one
more turn after a pause longer than the server's keep-alive.  Every request goes through a
:class:`llm.latency_proxy.LatencyProxy`, which also counts the connections really opened.

By default the endpoint is the embedded llama.cpp server (SmolLM2) behind TLS with a
throw-away certificate; ``--base-url`` measures a real remote API instead (the proxy then
fronts that host and port).  Progress goes to stderr, the Markdown report to stdout.

The endpoint is in :mod:`benchmarks.connection_endpoint`, the sessions in
:mod:`benchmarks.connection_sessions`, the records in :mod:`benchmarks.connection_records`, the
bar of issue #6 in :mod:`benchmarks.connection_checks` and the renderings in
:mod:`benchmarks.connection_report`; this module is the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.common import (
    bench_server,
    parse_command_line,
    parse_rtt_list,
    run_interruptible,
    throwaway_tls,
)
from benchmarks.connection_endpoint import embedded_endpoint, remote_endpoint
from benchmarks.connection_records import BenchConfig, BenchRun
from benchmarks.connection_report import render_markdown, write_json, write_plot
from benchmarks.connection_sessions import run_all
from benchmarks.machine_probe import start_run
from benchmarks.report import image, progress, publish
from llm import Secret, configure_logging

PROG = "python -m benchmarks.connection"
REPORT = "connection"  # docs/measurements/connection.md
SYSTEM_PROMPT = "You are a friendly voice assistant. Answer in two or three short sentences."
PROMPT = "What is a good way to start the day?"
DEFAULT_RTTS = (0.0, 50.0, 150.0, 300.0)
QUICK = {"speak_s": 0.5, "pause_s": 0.3, "idle_pause_s": 0.0, "baseline_requests": 2}


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmark cold vs pooled vs pre-warmed LLM connections at emulated network distances.",
    )
    p.add_argument(
        "--rtt-ms", type=parse_rtt_list, default=DEFAULT_RTTS, help="comma-separated RTTs (default 0,50,150,300)"
    )
    p.add_argument("--turns", type=int, default=5, help="requests per session before the idle turn (default 5)")
    p.add_argument("--sessions", type=int, default=1, help="sessions per strategy and distance (default 1)")
    p.add_argument("--speak-s", type=float, help="user speaking time before the first request (default 2.0)")
    p.add_argument("--pause-s", type=float, help="pause between turns (default 1.0)")
    p.add_argument(
        "--idle-pause-s",
        type=float,
        help=("pause before one last turn, longer than the server's keep-alive; 0: no such turn (default 6.0)"),
    )
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--baseline-requests", type=int, help="requests for the server's own TTFT (default 3)")
    p.add_argument("--request-timeout-s", type=float, default=60.0)
    p.add_argument(
        "--server-threads",
        type=int,
        help=(
            "llama.cpp threads of the embedded server (default: one less than the CPUs, at least 1, so the "
            "client and proxy, which are timed too, keep a core; llama.cpp's threads stall when one is preempted)"
        ),
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="short speak time and pauses, no idle turn, 2 baseline requests (explicit options win)",
    )
    p.add_argument("--base-url", help="a real OpenAI-compatible API instead of the embedded server")
    p.add_argument("--api-key", help="its key (else $OPENAI_API_KEY); with the embedded server: required by it")
    p.add_argument("--model", help="the model name at --base-url")
    p.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="embedded server over TLS (default) or plain HTTP; a --base-url's scheme decides for it",
    )
    p.add_argument("--json", type=Path, help="write all raw measurements here")
    p.add_argument("--plot", type=Path, help="write a PNG chart here")
    p.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    return p


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> BenchConfig:
    """Validate the options and apply the defaults (``--quick`` changes some of them)."""

    def pick(name: str, normal: float) -> float:
        value = getattr(args, name)
        return float(value) if value is not None else float(QUICK[name] if args.quick else normal)

    config = BenchConfig(
        rtt_ms=args.rtt_ms,
        turns=args.turns,
        sessions=args.sessions,
        speak_s=pick("speak_s", 2.0),
        pause_s=pick("pause_s", 1.0),
        idle_pause_s=pick("idle_pause_s", 6.0),
        max_tokens=args.max_tokens,
        temperature=0.0,
        baseline_requests=int(pick("baseline_requests", 3)),
        request_timeout_s=args.request_timeout_s,
        tls=args.tls,
        quick=args.quick,
        server_threads=None if args.base_url else (args.server_threads or max(1, (os.cpu_count() or 2) - 1)),
        system_prompt=SYSTEM_PROMPT,
        prompt=PROMPT,
    )
    if args.server_threads is not None and args.server_threads < 1:
        parser.error("--server-threads must be at least 1")
    if config.turns < 1 or config.sessions < 1 or config.max_tokens < 1 or config.baseline_requests < 1:
        parser.error("--turns, --sessions, --max-tokens and --baseline-requests must be at least 1")
    for name in ("speak_s", "pause_s", "idle_pause_s"):
        if not 0 <= getattr(config, name) <= 600:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 600 seconds")
    if not config.request_timeout_s > 0:
        parser.error("--request-timeout-s must be positive")
    if args.base_url:
        parts = urlsplit(args.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            parser.error("--base-url must be an absolute http:// or https:// URL")
        if not args.model:
            parser.error("--base-url needs --model")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the connection strategies at every distance, then publish the report (exit 1 if a request failed)."""
    parser = build_parser()
    args, shown = parse_command_line(parser, argv)
    config = config_from(args, parser)
    configure_logging("WARNING")
    # Clients, proxies, the server and the certificate directory are cleaned up on Ctrl-C or SIGTERM.
    return run_interruptible(lambda: _run(args, config, shown))


def _run(args: argparse.Namespace, config: BenchConfig, argv: list[str]) -> int:
    """Start the endpoint, measure, stop it, then report; 1 if any request failed."""
    api_key = Secret(args.api_key or (os.environ.get("OPENAI_API_KEY", "") if args.base_url else ""))
    start = start_run()
    with contextlib.ExitStack() as stack:
        if args.base_url:
            endpoint = remote_endpoint(args.base_url, api_key, args.model)
        else:
            tls = stack.enter_context(throwaway_tls()) if config.tls else None
            server = bench_server(tls, api_key, config.server_threads)
            progress(f"starting the embedded server ({'TLS' if tls else 'plain HTTP'})...")
            stack.callback(server.stop)
            server.start()
            endpoint = embedded_endpoint(server, api_key, tls)
        progress(f"endpoint: {endpoint.info.description}")
        baseline, sessions = asyncio.run(run_all(endpoint, config, progress))
    run = BenchRun(
        *start.identity(PROG, argv),
        config=config,
        endpoint=endpoint.info,
        baseline=baseline,
        sessions=sessions,
        wall_time_s=start.wall_time_s(),
    )
    outputs = [(args.json, functools.partial(write_json, run)), (args.plot, functools.partial(write_plot, run))]
    markdown = render_markdown(run) + image(args.plot, "First token against the emulated RTT, per strategy")
    publish(REPORT, markdown, run.command, run.machine, outputs=outputs, markdown_path=args.markdown)
    failed = sum(not r.ok for s in sessions for r in s.requests)
    if failed:
        progress(f"{failed} request(s) failed; see the report")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
