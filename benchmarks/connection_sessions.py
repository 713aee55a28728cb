"""The connection benchmark's sessions: a fresh :class:`llm.client.PooledLLMClient` per session
behind its own latency proxy, voice-like turns (speak, pauses, one idle pause past the server's
keep-alive), every request recorded as the client timed it and the proxy counted it; and the
server's own time to first token, measured without the proxy.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from benchmarks.common import STRATEGY_ORDER, Say
from benchmarks.connection_endpoint import Endpoint
from benchmarks.connection_records import (
    Baseline,
    BenchConfig,
    RequestRecord,
    SessionRecord,
    WarmupRecord,
)
from llm import (
    ChatMessage,
    LatencyProxy,
    LLMError,
    PooledLLMClient,
    RequestTiming,
    Strategy,
    WarmUpResult,
    format_ms,
)

BASELINE_PAUSE_S = 0.2


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
