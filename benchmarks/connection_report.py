"""The renderings of what ``python -m benchmarks.connection`` measured: Markdown, JSON and a PNG chart.

The records (:mod:`benchmarks.connection_records`) are filled from real requests; this module only
summarises them (medians with min–max), with the verdicts of :mod:`benchmarks.connection_checks`.
Nothing here measures or estimates anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.charts import panels, strategy_style
from benchmarks.common import (
    STRATEGY_LABELS,
    STRATEGY_ORDER,
    Summary,
    format_cell,
    format_improvement,
    ratio_of,
    write_json_file,
)
from benchmarks.connection_checks import all_checks, checks_for
from benchmarks.connection_records import SCHEMA, BenchRun, metric, requests_of, rtts, sessions_of
from benchmarks.report import Table
from llm import format_ms as _fmt  # "123 ms", or "—" for a stage that never happened

# ---- Markdown -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    label: str
    summarise: Callable[[BenchRun, float, str], Summary]
    count: bool = False


def _phase_row(label: str, phases: tuple[str, ...], attr: str) -> _Row:
    return _Row(label, lambda run, rtt, strategy: metric(run, rtt, strategy, phases, attr))


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
        cold = metric(run, rtt, "cold", ("first",), "first_token_ms")
        warm = metric(run, rtt, "prewarmed", ("first",), "first_token_ms")
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
        cells = [metric(run, rtt, st, ("first",), "first_token_ms") for st in STRATEGY_ORDER]
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
    shown = [(t, p) for t, p in _PANELS if any(requests_of(run, r, s, *p) for r in rtts(run) for s in STRATEGY_ORDER)]
    xs = rtts(run)
    server = run.baseline.median_ms
    with panels(path, len(shown), "WarmVoice LLM connection benchmark", run.machine) as axes:
        for ax, (title, phases) in zip(axes, shown, strict=False):
            for st in STRATEGY_ORDER:
                pts = [(x, metric(run, x, st, phases, "first_token_ms")) for x in xs]
                pts = [(x, s) for x, s in pts if s.median is not None]
                if not pts:
                    continue
                meds = [s.median or 0.0 for _, s in pts]
                lo = [m - (s.low or m) for m, (_, s) in zip(meds, pts, strict=True)]
                hi = [(s.high or m) - m for m, (_, s) in zip(meds, pts, strict=True)]
                ax.errorbar([x for x, _ in pts], meds, yerr=[lo, hi], marker="o", capsize=3, **strategy_style(st))
            if server is not None:
                ax.plot(xs, [server + x for x in xs], linestyle="--", color="grey", label="server TTFT + 1 RTT")
            ax.set_title(f"{title}: first token")
            ax.set_xlabel("emulated RTT (ms)")
            ax.set_ylabel("ms from request issued")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
