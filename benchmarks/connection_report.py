"""What ``python -m benchmarks.connection`` measured, and its renderings: Markdown, JSON and a PNG chart.

The records here are filled by :mod:`benchmarks.connection` from real requests; this module only
summarises them (medians with min–max), checks the bar of issue #6 on them and writes them
out.  Nothing here measures or estimates anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import (
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    STRATEGY_ORDER,
    MachineInfo,
    Summary,
    Table,
    format_cell,
    format_improvement,
    ratio_of,
    write_json_file,
)
from llm import format_ms as _fmt  # "123 ms", or "—" for a stage that never happened

SCHEMA = "warmvoice-llm-bench/1"
# Bar (b): the pre-warmed first token may exceed the server's own time to first token by at
# most one round trip plus this much (issue #6).
TTFT_SLACK_MS = 30.0
# Bar (d) is stated for this distance.
RATIO_RTT_MS = 150.0
RATIO_BAR = 2.0


# ---- the data model -------------------------------------------------------------------


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


@dataclass(frozen=True)
class Check:
    """One line of the issue's bar for one distance.  ``passed`` is None when it does not apply."""

    rtt_ms: float
    key: str
    passed: bool | None
    text: str

    def line(self) -> str:
        """The Markdown bullet for this check."""
        verdict = "n/a" if self.passed is None else ("PASS" if self.passed else "FAIL")
        return f"- **{verdict}** ({self.key}) {self.text}"


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


def _metric(run: BenchRun, rtt: float, strategy: str, phases: tuple[str, ...], attr: str) -> Summary:
    return Summary.of(getattr(r, attr) for r in requests_of(run, rtt, strategy, *phases))


# ---- the bar of issue #6 --------------------------------------------------------------


def _connection_budget_ok(session: SessionRecord) -> tuple[bool, str]:
    """Whether a pre-warmed (or pooled) session opened its connections only where it may.

    Allowed: one connection up to and including the first request, and one reconnect across
    the pause longer than the server's keep-alive.  The text says where a reconnect happened:
    in the background during the pause, or on the request path of the turn after it.
    """
    first = session.requests[0] if session.requests else None
    initial = 0 if first is None else first.proxy_connections + first.proxy_connections_before
    if initial != 1:
        return False, f"{initial} connections up to the first request"
    where = ""
    for r in session.requests[1:]:
        opened = r.proxy_connections + r.proxy_connections_before
        if not opened:
            continue
        if r.phase != "idle" or opened > 1:
            return False, f"{opened} new connection(s) at turn {r.turn}"
        where = "on the request path" if r.proxy_connections else "in the background, before the turn"
    return True, f"reconnected once after the idle pause ({where})" if where else "one connection"


def checks_for(run: BenchRun, rtt: float) -> list[Check]:
    """The issue's bar at one distance, as PASS/FAIL lines (not asserts)."""
    out: list[Check] = []
    warm = sessions_of(run, rtt, "prewarmed")
    cold = sessions_of(run, rtt, "cold")
    warm_first = [s.requests[0] for s in warm if s.requests]

    # (a) nothing of the connection set-up on the pre-warmed first request's path.
    clean = [
        r for r in warm_first if r.ok and r.reused_connection and r.connect_ms is None and r.proxy_connections == 0
    ]
    if warm_first:
        out.append(
            Check(
                rtt,
                "a",
                len(clean) == len(warm_first),
                (
                    "pre-warmed first request has no connection set-up on its path: reused a pooled connection, "
                    "no connect time and no connection opened at the proxy in "
                    f"{len(clean)}/{len(warm_first)} session(s)"
                ),
            )
        )
    else:
        out.append(Check(rtt, "a", None, "no pre-warmed session was run"))

    # (b) pre-warmed first token within one RTT + 30 ms of the server's own time to first token.
    server = run.baseline.median_ms
    first = Summary.of(r.first_token_ms for r in warm_first if r.ok)
    if server is None or first.median is None:
        out.append(Check(rtt, "b", None, "no server baseline or no pre-warmed first token measured"))
    else:
        limit = server + rtt + TTFT_SLACK_MS
        out.append(
            Check(
                rtt,
                "b",
                first.median <= limit,
                (
                    f"pre-warmed first request first token {_fmt(first.median)} (median; worst {_fmt(first.high)}) "
                    f"≤ server's own {_fmt(server)} + RTT {_fmt(rtt)} + {TTFT_SLACK_MS:.0f} ms = {_fmt(limit)}"
                ),
            )
        )

    # (c) cold pays >= 2 extra round trips per request; the pool pays them once per session.
    # Judged on the HTTP status time: it holds every round trip of the request but not the
    # model's generation, whose jitter (±10 ms) would otherwise blur a 2-RTT difference.
    phases = ("first", "later")
    diffs = {
        attr: _diff(_metric(run, rtt, "cold", phases, attr), _metric(run, rtt, "prewarmed", phases, attr))
        for attr in ("ttfb_ms", "first_token_ms")
    }
    setup = _metric(run, rtt, "cold", phases, "connect_ms")
    status_extra, token_extra = diffs["ttfb_ms"], diffs["first_token_ms"]
    if status_extra is None or token_extra is None:
        out.append(Check(rtt, "c-time", None, "cold or pre-warmed requests missing"))
    elif rtt <= 0:
        out.append(
            Check(
                rtt,
                "c-time",
                None,
                (
                    f"no emulated distance: cold pays {status_extra:.0f} ms more to HTTP status per request "
                    f"(TCP + TLS on loopback; its connection set-up {_fmt(setup.median)})"
                ),
            )
        )
    else:
        out.append(
            Check(
                rtt,
                "c-time",
                status_extra >= 2 * rtt,
                (
                    f"cold pays {status_extra:.0f} ms = {status_extra / rtt:.2f} RTTs more per request than pre-warmed "
                    f"to HTTP status ({token_extra / rtt:.2f} RTTs to first token; its connection set-up "
                    f"{_fmt(setup.median)} = {(setup.median or 0) / rtt:.2f} RTTs); medians over the turns without a "
                    f"long idle; bar: ≥ 2 RTTs (TCP + TLS)"
                ),
            )
        )
    cold_counts = [(s.proxy_connections_total, len(s.requests)) for s in cold]
    cold_ok = all(total == n for total, n in cold_counts) and bool(cold_counts)
    budgets = [_connection_budget_ok(s) for s in warm]
    warm_ok = all(ok for ok, _ in budgets) and bool(budgets)
    warm_totals = ", ".join(str(s.proxy_connections_total) for s in warm) or "—"
    cold_totals = ", ".join(f"{t}/{n}" for t, n in cold_counts) or "—"
    notes = sorted({why for _, why in budgets if why != "one connection"})
    out.append(
        Check(
            rtt,
            "c-connections",
            cold_ok and warm_ok,
            (
                f"connections opened at the proxy per session: cold {cold_totals} (connections/requests), "
                f"pre-warmed {warm_totals}" + (f" — {'; '.join(notes)}" if notes else "")
            ),
        )
    )

    # (d) cold / pre-warmed first-request ratio >= 2x at 150 ms.
    cold_first = _metric(run, rtt, "cold", ("first",), "first_token_ms")
    ratio = ratio_of(cold_first.median, first.median)
    if ratio is None:
        out.append(Check(rtt, "d", None, "cold or pre-warmed first request missing"))
    elif rtt == RATIO_RTT_MS:
        out.append(
            Check(
                rtt,
                "d",
                ratio >= RATIO_BAR,
                (
                    f"cold/pre-warmed first-request first token = {ratio:.2f}× (bar: ≥ {RATIO_BAR:.0f}× at "
                    f"{RATIO_RTT_MS:.0f} ms)"
                ),
            )
        )
    else:
        out.append(
            Check(
                rtt,
                "d",
                None,
                (f"cold/pre-warmed first-request first token = {ratio:.2f}× (the bar is set at {RATIO_RTT_MS:.0f} ms)"),
            )
        )
    return out


def all_checks(run: BenchRun) -> list[Check]:
    """Every distance's checks, in run order."""
    return [c for rtt in rtts(run) for c in checks_for(run, rtt)]


def _diff(before: Summary, after: Summary) -> float | None:
    if before.median is None or after.median is None:
        return None
    return before.median - after.median


# ---- Markdown -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    label: str
    summarise: Callable[[BenchRun, float, str], Summary]
    count: bool = False


def _phase_row(label: str, phases: tuple[str, ...], attr: str) -> _Row:
    return _Row(label, lambda run, rtt, strategy: _metric(run, rtt, strategy, phases, attr))


ROWS: tuple[_Row, ...] = (
    _phase_row("First request: HTTP status", ("first",), "ttfb_ms"),
    _phase_row("First request: first token", ("first",), "first_token_ms"),
    _phase_row("First request: first sentence", ("first",), "first_sentence_ms"),
    _phase_row("First request: connection set-up on the request path", ("first",), "connect_ms"),
    _phase_row("Later requests: first token", ("later",), "first_token_ms"),
    _phase_row("Later requests after idle > keep-alive: first token", ("idle",), "first_token_ms"),
    _Row(
        "Connections opened per session",
        lambda run, rtt, strategy: Summary.of(
            float(s.proxy_connections_total) for s in sessions_of(run, rtt, strategy)
        ),
        count=True,
    ),
)


def _reuse_cell(run: BenchRun, rtt: float, strategy: str) -> str:
    reqs = [r for s in sessions_of(run, rtt, strategy) for r in s.requests]
    if not reqs:
        return "—"
    return f"{sum(r.reused_connection for r in reqs)}/{len(reqs)}"


def table_for(run: BenchRun, rtt: float) -> str:
    """The per-distance table in the original's shape, plus the pooled column."""
    table = Table(["Metric", *(STRATEGY_LABELS[st] for st in STRATEGY_ORDER), "Improvement"])
    for row in ROWS:
        cells = {st: row.summarise(run, rtt, st) for st in STRATEGY_ORDER}
        unit = "" if row.count else " ms"
        values = [format_cell(cells[st], unit) for st in STRATEGY_ORDER]
        improvement = format_improvement(cells["cold"], cells["prewarmed"], count=row.count)
        if row.label.endswith("connection set-up on the request path"):
            # A set-up that did not happen has no time: show how many requests paid one.
            values = [_setup_cell(run, rtt, st) for st in STRATEGY_ORDER]
            improvement = "—"
        table.add(row.label, *values, improvement)
    table.add("Requests on a reused connection", *(_reuse_cell(run, rtt, st) for st in STRATEGY_ORDER), "—")
    return table.markdown()


def _setup_cell(run: BenchRun, rtt: float, strategy: str) -> str:
    firsts = [s.requests[0] for s in sessions_of(run, rtt, strategy) if s.requests and s.requests[0].ok]
    if not firsts:
        return "—"
    paid = [r.connect_ms for r in firsts if r.connect_ms is not None]
    if not paid:
        return f"none (0/{len(firsts)})"
    return f"{format_cell(Summary.of(paid))} ({len(paid)}/{len(firsts)})"


def _failures(run: BenchRun, rtt: float) -> list[str]:
    lines = []
    for s in run.sessions:
        if s.rtt_ms != rtt:
            continue
        for r in s.requests:
            if not r.ok:
                lines.append(f"- {r.strategy} session {r.session} turn {r.turn} failed: {r.error}")
        if s.warmup is not None and not s.warmup.ok:
            lines.append(f"- {s.strategy} session {s.index} warm-up failed: {s.warmup.error}")
    return lines


def _describe(run: BenchRun) -> list[str]:
    c, e = run.config, run.endpoint
    idle = (
        f", then one more turn after {c.idle_pause_s:g} s idle (longer than the server's keep-alive; uvicorn's is 5 s)"
        if c.idle_pause_s > 0
        else " (no turn after a long idle in this run)"
    )
    server = run.baseline.median_ms
    return [
        f"- Wall time: {run.wall_time_s:.0f} s",
        f"- Endpoint: {e.description}; model `{e.model}`"
        + (f"; {c.server_threads} llama.cpp thread(s)" if c.server_threads else ""),
        (
            f"- Each session is a fresh client, as if the user clicked Start speaking: the pre-warmed one warms up "
            f"in the background while the user speaks for {c.speak_s:g} s, then the first request is issued; "
            f"{c.turns} turns {c.pause_s:g} s apart{idle}. {c.sessions} session(s) per strategy and distance, "
            f"run one at a time."
        ),
        (
            f"- Every request: the same prompt, max_tokens {c.max_tokens}, temperature {c.temperature:g}. Times are ms "
            f"from the moment the request was issued, measured by the real PooledLLMClient: median (min–max). "
            f"Connections are counted at the latency proxy (warm-up and keep-warm ones included), not reported by "
            f"the client."
        ),
        (f"- Server's own time to first token: {_fmt(server)} ({run.baseline.method})."),
        (
            "- The latency proxy delays every byte by RTT/2 each way and a new connection's first bytes by one more "
            "RTT (the TCP handshake); TLS passes through it, so its handshake pays real round trips."
        ),
    ]


def render_markdown(run: BenchRun) -> str:
    """The whole report: set-up, one table and the bar per distance, and a summary."""
    out = ["# WarmVoice LLM connection benchmark", "", *_describe(run), ""]
    for rtt in rtts(run):
        out += [f"## RTT {rtt:g} ms", "", table_for(run, rtt), ""]
        cold = _metric(run, rtt, "cold", ("first",), "first_token_ms")
        warm = _metric(run, rtt, "prewarmed", ("first",), "first_token_ms")
        ratio = ratio_of(cold.median, warm.median)
        ratio_text = "—" if ratio is None else f"{ratio:.2f}×"
        out += [f"Cold / pre-warmed, first request, first token: **{ratio_text}**", ""]
        out += [c.line() for c in checks_for(run, rtt)]
        failures = _failures(run, rtt)
        if failures:
            out += ["", "Failures:", *failures]
        out.append("")
    summary = Table(["RTT", *(STRATEGY_LABELS[s] for s in STRATEGY_ORDER), "Cold / pre-warmed", "Bar"])
    for rtt in rtts(run):
        cells = [_metric(run, rtt, st, ("first",), "first_token_ms") for st in STRATEGY_ORDER]
        ratio = ratio_of(cells[0].median, cells[2].median)
        verdicts = [c for c in checks_for(run, rtt) if c.passed is not None]
        bar = f"{sum(bool(c.passed) for c in verdicts)}/{len(verdicts)} PASS" if verdicts else "—"
        summary.add(f"{rtt:g} ms", *(format_cell(c) for c in cells), "—" if ratio is None else f"{ratio:.2f}×", bar)
    out += ["## Summary: first request, first token", "", summary.markdown()]
    return "\n".join(out).rstrip() + "\n"


# ---- JSON -----------------------------------------------------------------------------


def summary_dict(run: BenchRun) -> dict[str, Any]:
    """Per distance and strategy: the summaries behind the tables."""
    out: dict[str, Any] = {}
    for rtt in rtts(run):
        per: dict[str, Any] = {}
        for st in STRATEGY_ORDER:
            per[st] = {row.label: asdict(row.summarise(run, rtt, st)) for row in ROWS}
        out[f"{rtt:g}"] = per
    return out


def to_json_dict(run: BenchRun) -> dict[str, Any]:
    """Everything: raw per-request measurements, machine, command, summaries and checks."""
    data = asdict(run)
    data["config"]["rtt_ms"] = list(run.config.rtt_ms)
    data["baseline"]["median_ms"] = run.baseline.median_ms
    return {
        "schema": SCHEMA,
        **data,
        "summary": summary_dict(run),
        "checks": [asdict(c) for c in all_checks(run)],
    }


def write_json(run: BenchRun, path: Path) -> None:
    """Write :func:`to_json_dict` as indented JSON."""
    write_json_file(to_json_dict(run), path)


# ---- the chart ------------------------------------------------------------------------

_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("First request", ("first",)),
    ("Later requests", ("later",)),
    ("After idle > keep-alive", ("idle",)),
)


def write_plot(run: BenchRun, path: Path) -> None:
    """A PNG: first-token time against RTT per strategy (median, min–max bars), one panel per
    request kind, with the ideal "server's own TTFT + 1 RTT" line."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    panels = [(t, p) for t, p in _PANELS if any(requests_of(run, r, s, *p) for r in rtts(run) for s in STRATEGY_ORDER)]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.0 * max(len(panels), 1), 4.2), squeeze=False)
    xs = rtts(run)
    server = run.baseline.median_ms
    for ax, (title, phases) in zip(axes[0], panels, strict=False):
        for st in STRATEGY_ORDER:
            pts = [(x, _metric(run, x, st, phases, "first_token_ms")) for x in xs]
            pts = [(x, s) for x, s in pts if s.median is not None]
            if not pts:
                continue
            meds = [s.median or 0.0 for _, s in pts]
            lo = [m - (s.low or m) for m, (_, s) in zip(meds, pts, strict=True)]
            hi = [(s.high or m) - m for m, (_, s) in zip(meds, pts, strict=True)]
            ax.errorbar(
                [x for x, _ in pts],
                meds,
                yerr=[lo, hi],
                marker="o",
                capsize=3,
                color=STRATEGY_COLOURS[st],
                label=STRATEGY_LABELS[st],
            )
        if server is not None:
            ax.plot(xs, [server + x for x in xs], linestyle="--", color="grey", label="server TTFT + 1 RTT")
        ax.set_title(f"{title}: first token")
        ax.set_xlabel("emulated RTT (ms)")
        ax.set_ylabel("ms from request issued")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"WarmVoice LLM connection benchmark — {run.machine.cpu_model}, {run.machine.date[:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
