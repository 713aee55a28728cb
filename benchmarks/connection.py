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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.common import (
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
from benchmarks.connection_report import (
    Baseline,
    BenchConfig,
    BenchRun,
    EndpointInfo,
    RequestRecord,
    SessionRecord,
    WarmupRecord,
    render_markdown,
    write_json,
    write_plot,
)
from benchmarks.machine_probe import start_run
from benchmarks.report import image, publish
from llm import (
    EMBEDDED_MODEL,
    ChatMessage,
    EmbeddedLLMServer,
    LatencyProxy,
    LLMError,
    PooledLLMClient,
    RequestTiming,
    Secret,
    Strategy,
    WarmUpResult,
    configure_logging,
    format_ms,
    public_endpoint,
)

PROG = "python -m benchmarks.connection"
REPORT = "connection"  # docs/measurements/connection.md
SYSTEM_PROMPT = "You are a friendly voice assistant. Answer in two or three short sentences."
PROMPT = "What is a good way to start the day?"
DEFAULT_RTTS = (0.0, 50.0, 150.0, 300.0)
QUICK = {"speak_s": 0.5, "pause_s": 0.3, "idle_pause_s": 0.0, "baseline_requests": 2}
BASELINE_PAUSE_S = 0.2


# ---- the endpoint ---------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: the URL the client uses (its host names the TLS certificate) and the
    host and port the latency proxy forwards to."""

    base_url: str
    target_host: str
    target_port: int
    api_key: Secret
    model: str
    ssl_context: ssl.SSLContext | None
    info: EndpointInfo


def remote_endpoint(base_url: str, api_key: Secret, model: str) -> Endpoint:
    """A real OpenAI-compatible API; the proxy fronts its host and port, TLS verified as usual."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("--base-url must be an absolute http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    tls = parts.scheme == "https"
    info = EndpointInfo(
        kind="remote",
        base_url=public_endpoint(base_url),
        model=model,
        tls=tls,
        description=f"remote API {public_endpoint(base_url)} ({'TLS' if tls else 'plain HTTP'}) behind the "
        f"latency proxy (which adds the emulated RTT on top of the real network distance; the proxy, not "
        f"the client, resolves the host name)",
    )
    return Endpoint(base_url.rstrip("/"), parts.hostname, port, api_key, model, None, info)


def embedded_endpoint(server: EmbeddedLLMServer, api_key: Secret, tls: TlsFiles | None) -> Endpoint:
    """The started embedded server, over TLS when ``tls`` is given."""
    assert server.port is not None
    scheme = "TLS 1.3 with a throw-away trustme certificate" if tls else "plain HTTP (--no-tls)"
    info = EndpointInfo(
        kind="embedded",
        base_url=server.base_url,
        model=EMBEDDED_MODEL,
        tls=tls is not None,
        description=(
            f"the embedded llama.cpp server (uvicorn, SmolLM2-135M-Instruct Q4_1 GGUF) on loopback, {scheme}, "
            f"behind the latency proxy"
        ),
    )
    return Endpoint(
        server.base_url,
        "127.0.0.1",
        server.port,
        api_key,
        EMBEDDED_MODEL,
        tls.client_context if tls else None,
        info,
    )


# ---- the client -----------------------------------------------------------------------


def make_client(
    endpoint: Endpoint, strategy: Strategy, config: BenchConfig, proxy: LatencyProxy | None
) -> PooledLLMClient:
    """A client of ``strategy`` for ``endpoint``, its sockets opened to ``proxy`` (direct if None).

    The URL is kept, so the Host header, SNI and certificate check still name the real host.
    """
    return PooledLLMClient(
        endpoint.base_url,
        endpoint.api_key,
        endpoint.model,
        strategy=strategy,
        ssl=endpoint.ssl_context,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        connect_to=(proxy.host, proxy.port) if proxy is not None else None,
    )


def messages(config: BenchConfig) -> list[ChatMessage]:
    """The one prompt every request sends, so runs are comparable."""
    return [ChatMessage("system", config.system_prompt), ChatMessage("user", config.prompt)]


@dataclass
class _Reply:
    timing: RequestTiming | None
    chars: int
    error: str | None


async def _ask(client: PooledLLMClient, config: BenchConfig) -> _Reply:
    """One request, streamed as sentences to the end; failures are recorded, not raised."""
    before = client.last_request
    chars = 0
    error: str | None = None
    try:
        async with asyncio.timeout(config.request_timeout_s):
            async for sentence in client.stream_sentences(messages(config)):
                chars += len(sentence)
    except LLMError as exc:
        error = str(exc)  # the client's errors never contain the key
    except TimeoutError:
        error = f"no complete reply within {config.request_timeout_s:g} s"
    timing = client.last_request if client.last_request is not before else None
    return _Reply(timing, chars, error)


# ---- sessions -------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return format_ms(value, unit="", width=5)  # a column of the progress lines


class SessionRun:
    """One session at one distance for one strategy, with its own proxy and client."""

    def __init__(
        self, endpoint: Endpoint, config: BenchConfig, rtt_ms: float, strategy: Strategy, index: int, say: Say
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.rtt_ms = rtt_ms
        self.strategy = strategy
        self.index = index
        self.say = say
        self.record = SessionRecord(rtt_ms=rtt_ms, strategy=strategy, index=index, warmup=None)

    async def run(self) -> SessionRecord:
        """Run the session; the client and proxy are closed whatever happens."""
        proxy = LatencyProxy(self.endpoint.target_host, self.endpoint.target_port, rtt_ms=self.rtt_ms)
        await proxy.start()
        try:
            client = make_client(self.endpoint, self.strategy, self.config, proxy)
            try:
                await self._turns(client, proxy)
            finally:
                await client.close()
                self.record.client_connections_opened = client.stats.connections_opened
                self.record.client_warmups = client.stats.warmups
                self.record.proxy_connections_total = proxy.counters().connections_opened
        finally:
            await proxy.stop()
        r = self.record
        self.say(
            f"[{self.rtt_ms:4.0f} ms] {self.strategy:9} s{self.index}: {len(r.requests)} requests, "
            f"{r.proxy_connections_total} connection(s) opened at the proxy, {r.duration_s:.1f} s"
        )
        return r

    async def _turns(self, client: PooledLLMClient, proxy: LatencyProxy) -> None:
        config = self.config
        start = time.perf_counter()  # the user clicks Start speaking
        warm_done: list[float] = []
        warm_task: asyncio.Task[WarmUpResult] | None = None
        if self.strategy == "prewarmed":
            warm_task = client.start_warm_up()
            warm_task.add_done_callback(lambda _t: warm_done.append(time.perf_counter() - start))
        plan = [("first", config.speak_s)]
        plan += [("later", config.pause_s)] * (config.turns - 1)
        if config.idle_pause_s > 0:
            plan.append(("idle", config.idle_pause_s))
        last_end = start
        seen = 0  # proxy connections counted so far
        for turn, (phase, pause) in enumerate(plan, start=1):
            # The first request goes out `speak_s` after Start, the others `pause` after the
            # previous reply ended, as the next voice turn would.
            await asyncio.sleep(max(0.0, last_end + pause - time.perf_counter()))
            opened_before = proxy.counters().connections_opened
            issued = time.perf_counter()
            reply = await _ask(client, config)
            ended = time.perf_counter()
            opened_after = proxy.counters().connections_opened
            self.record.requests.append(
                self._request(
                    turn,
                    phase,
                    pause,
                    reply,
                    idle_before_s=issued - last_end,
                    issued_at_s=issued - start,
                    proxy_connections=opened_after - opened_before,
                    proxy_connections_before=opened_before - seen,
                )
            )
            seen, last_end = opened_after, ended
        if warm_task is not None:
            self.record.warmup = self._warmup(warm_task, warm_done)
        self.record.duration_s = time.perf_counter() - start

    def _warmup(self, task: asyncio.Task[WarmUpResult], done: list[float]) -> WarmupRecord:
        first = self.record.requests[0].issued_at_s if self.record.requests else math.inf
        finished = done[0] if done else None
        ended = task.done() and not task.cancelled() and task.exception() is None
        result = task.result() if ended else None
        return WarmupRecord(
            ok=result is not None and result.ok,
            ms=result.ms if result else 0.0,
            error=result.error if result else "did not finish",
            skipped=bool(result and result.skipped),
            reason=result.reason if result else "",
            status=result.status if result else None,
            finished_at_s=finished,
            done_before_first_request=finished is not None and finished <= first,
        )

    def _request(
        self,
        turn: int,
        phase: str,
        pause: float,
        reply: _Reply,
        *,
        idle_before_s: float,
        issued_at_s: float,
        proxy_connections: int,
        proxy_connections_before: int,
    ) -> RequestRecord:
        t = reply.timing or RequestTiming()
        ok = reply.timing is not None and reply.error is None and t.error is None
        rec = RequestRecord(
            rtt_ms=self.rtt_ms,
            strategy=self.strategy,
            session=self.index,
            turn=turn,
            phase=phase,
            planned_pause_s=pause,
            idle_before_s=idle_before_s,
            issued_at_s=issued_at_s,
            ok=ok,
            error=reply.error or t.error,
            status=t.status,
            reused_connection=t.reused_connection,
            dns_ms=t.dns_ms,
            connect_ms=t.connect_ms,
            tcp_tls_ms=t.tcp_tls_ms,
            ttfb_ms=t.ttfb_ms,
            first_token_ms=t.first_token_ms,
            first_sentence_ms=t.first_sentence_ms,
            total_ms=t.total_ms,
            attempts=t.attempts,
            retries=t.retries,
            stale_retries=t.stale_retries,
            tokens=t.tokens,
            sentences=t.sentences,
            reply_chars=reply.chars,
            proxy_connections=proxy_connections,
            proxy_connections_before=proxy_connections_before,
        )
        self.say(
            f"[{self.rtt_ms:4.0f} ms] {self.strategy:9} s{self.index} t{turn} {phase:5} "
            f"(after {idle_before_s:4.1f} s): status {_fmt(rec.ttfb_ms)} | first token {_fmt(rec.first_token_ms)} | "
            f"first sentence {_fmt(rec.first_sentence_ms)} | total {_fmt(rec.total_ms)} ms | "
            f"{'reused' if rec.reused_connection else 'new   '} | connect {_fmt(rec.connect_ms)} | "
            f"proxy +{proxy_connections} (+{proxy_connections_before} before)"
            + ("" if ok else f" | FAILED: {rec.error}")
        )
        return rec


async def measure_baseline(endpoint: Endpoint, config: BenchConfig, say: Say) -> Baseline:
    """The server's own time to first token: a warm pooled connection straight to the server,
    no proxy.  The first request is discarded (it fills the server's prompt cache)."""
    client = make_client(endpoint, "prewarmed", config, proxy=None)
    samples: list[float] = []
    try:
        await client.warm_up()
        for i in range(1 + config.baseline_requests):
            if i:
                await asyncio.sleep(BASELINE_PAUSE_S)
            reply = await _ask(client, config)
            t = reply.timing
            if i and reply.error is None and t is not None and t.reused_connection and t.first_token_ms is not None:
                samples.append(t.first_token_ms)
            say(
                f"[baseline] request {i + 1}: first token {_fmt(t.first_token_ms if t else None)} ms"
                + (" (discarded: fills the prompt cache)" if i == 0 else "")
                + (f" FAILED: {reply.error}" if reply.error else "")
            )
    finally:
        await client.close()
    where = "on loopback" if endpoint.info.kind == "embedded" else "over the real network"
    method = (
        f"median of {len(samples)} requests on a warm pooled connection straight to the server {where}, "
        f"without the proxy; the first request after start-up was discarded"
    )
    return Baseline(first_token_ms=samples, discarded=1, method=method)


async def run_all(endpoint: Endpoint, config: BenchConfig, say: Say) -> tuple[Baseline, list[SessionRecord]]:
    """The baseline, then every distance; sessions of the three strategies alternate so that
    slow drift of the machine does not favour one of them.  One request on the server at a time."""
    baseline = await measure_baseline(endpoint, config, say)
    sessions: list[SessionRecord] = []
    for rtt in config.rtt_ms:
        for index in range(1, config.sessions + 1):
            for strategy in STRATEGY_ORDER:
                sessions.append(await SessionRun(endpoint, config, rtt, strategy, index, say).run())
    return baseline, sessions


# ---- command line ---------------------------------------------------------------------


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
    """Run the benchmark, print the Markdown report and write the requested files."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from(args, parser)
    configure_logging("WARNING")
    # Clients, proxies, the server and the certificate directory are cleaned up on Ctrl-C or SIGTERM.
    return run_interruptible(lambda: _run(args, config, argv))


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
        command=command_line(PROG, argv),
        argv=hide_api_key(argv),
        machine=start.machine(),
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
