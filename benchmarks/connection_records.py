"""What ``python -m benchmarks.connection`` records: its configuration, every request and session
as measured by the real client and counted at the latency proxy, the run around them, and the
selections the checks and the report read them through.  Nothing here measures anything.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from benchmarks.common import MachineInfo, Summary

SCHEMA = "warmvoice-llm-bench/1"


@dataclass(frozen=True)
class BenchConfig:
    """The knobs of one run (all from the command line)."""

    rtt_ms: tuple[float, ...]
    turns: int
    sessions: int
    speak_s: float
    pause_s: float
    idle_pause_s: float  # 0: no turn after an idle pause
    max_tokens: int
    temperature: float
    baseline_requests: int
    request_timeout_s: float
    tls: bool
    quick: bool
    server_threads: int | None  # the embedded server's llama.cpp threads (None: remote API)
    system_prompt: str
    prompt: str


@dataclass(frozen=True)
class EndpointInfo:
    """What was measured against (never the API key)."""

    kind: str  # "embedded" or "remote"
    base_url: str  # credentials, query and fragment stripped
    model: str
    tls: bool
    description: str


@dataclass
class RequestRecord:
    """One chat request as measured by the client (offsets in ms from the moment it was issued)
    plus the connections the latency proxy saw."""

    rtt_ms: float
    strategy: str
    session: int
    turn: int
    phase: str  # "first", "later" or "idle" (issued after a pause longer than the keep-alive)
    planned_pause_s: float  # the pause asked for before this request (speak time for the first)
    idle_before_s: float  # measured: since the previous reply ended (first: since session start)
    issued_at_s: float  # since session start
    ok: bool
    error: str | None
    status: int | None
    reused_connection: bool
    dns_ms: float | None
    connect_ms: float | None
    tcp_tls_ms: float | None
    ttfb_ms: float | None
    first_token_ms: float | None
    first_sentence_ms: float | None
    total_ms: float | None
    attempts: int
    retries: int
    stale_retries: int
    tokens: int
    sentences: int
    reply_chars: int
    proxy_connections: int  # opened at the proxy while this request ran
    proxy_connections_before: int  # opened at the proxy since the previous request ended


@dataclass
class WarmupRecord:
    """The background warm-up of a pre-warmed session."""

    ok: bool
    ms: float
    error: str | None
    skipped: bool
    reason: str
    status: int | None
    finished_at_s: float | None  # since session start; None if it never finished
    done_before_first_request: bool


@dataclass
class SessionRecord:
    """One "Start speaking" session: a fresh client, its requests and the proxy's count."""

    rtt_ms: float
    strategy: str
    index: int
    warmup: WarmupRecord | None
    requests: list[RequestRecord] = field(default_factory=list)
    proxy_connections_total: int = 0  # everything the proxy accepted during the session
    client_connections_opened: int = 0  # what the client itself reports (for comparison)
    client_warmups: int = 0  # warm-up plus keep-warm pings sent
    duration_s: float = 0.0


@dataclass
class Baseline:
    """The server's own time to first token: warm-connection requests without the proxy."""

    first_token_ms: list[float]
    discarded: int  # first requests not counted (they fill the server's prompt cache)
    method: str

    @property
    def median_ms(self) -> float | None:
        """Median first-token time, or None if no request succeeded."""
        return statistics.median(self.first_token_ms) if self.first_token_ms else None


@dataclass
class BenchRun:
    """A whole run: how, where, on what, and every measurement."""

    command: str
    argv: list[str]
    machine: MachineInfo
    config: BenchConfig
    endpoint: EndpointInfo
    baseline: Baseline
    sessions: list[SessionRecord]
    wall_time_s: float


# ---- selections -----------------------------------------------------------------------


def rtts(run: BenchRun) -> list[float]:
    """The distances in the order they were run."""
    return list(run.config.rtt_ms)


def sessions_of(run: BenchRun, rtt: float, strategy: str) -> list[SessionRecord]:
    """The sessions of one strategy at one distance."""
    return [s for s in run.sessions if s.rtt_ms == rtt and s.strategy == strategy]


def requests_of(run: BenchRun, rtt: float, strategy: str, *phases: str) -> list[RequestRecord]:
    """Successful requests of one strategy at one distance in the given phases."""
    return [r for s in sessions_of(run, rtt, strategy) for r in s.requests if r.phase in phases and r.ok]


def metric(run: BenchRun, rtt: float, strategy: str, phases: tuple[str, ...], attr: str) -> Summary:
    """Median and range of one timing of the successful requests in ``phases``."""
    return Summary.of(getattr(r, attr) for r in requests_of(run, rtt, strategy, *phases))
