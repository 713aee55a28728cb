"""``python -m benchmarks.connection`` end to end on a tiny configuration, plus its pure helpers.

The benchmark runs for real as a subprocess: the embedded llama.cpp server with SmolLM2 over
TLS (a trustme certificate), the latency proxy at 0 and 40 ms, the real PooledLLMClient.
The tests check that the report is complete and consistent with the raw measurements and
that connection counts seen at the proxy match each strategy.  No time threshold is asserted.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from benchmarks.common import command_line
from benchmarks.connection import PROG, build_parser, config_from
from tests.bench_process import BenchOutput, run_bench
from tests.markdown_tables import row, section

KEY = "sk-bench-test-7f3a9c-do-not-print"
RTTS = (0, 40)
TURNS = 2
ROW_LABELS = (
    "First request: HTTP status",
    "First request: first token",
    "First request: first sentence",
    "Later requests: first token",
    "Later requests after idle > keep-alive: first token",
    "Connections opened per session",
)
SESSION_FIELDS = {
    "rtt_ms",
    "strategy",
    "index",
    "warmup",
    "requests",
    "proxy_connections_total",
    "client_connections_opened",
    "client_warmups",
    "duration_s",
}
REQUEST_FIELDS = {
    "rtt_ms",
    "strategy",
    "session",
    "turn",
    "phase",
    "planned_pause_s",
    "idle_before_s",
    "issued_at_s",
    "ok",
    "error",
    "status",
    "reused_connection",
    "dns_ms",
    "connect_ms",
    "tcp_tls_ms",
    "ttfb_ms",
    "first_token_ms",
    "first_sentence_ms",
    "total_ms",
    "attempts",
    "retries",
    "stale_retries",
    "tokens",
    "sentences",
    "reply_chars",
    "proxy_connections",
    "proxy_connections_before",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> BenchOutput:
    args = [
        "--rtt-ms",
        ",".join(str(r) for r in RTTS),
        "--turns",
        str(TURNS),
        "--quick",
        "--tls",
        "--api-key",
        KEY,  # the embedded server then requires it: requests only succeed if it is sent
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": ""}
    return run_bench("benchmarks.connection", args, tmp_path_factory.mktemp("bench"), env=env, timeout_s=150)


def _sessions(report: dict[str, Any], strategy: str) -> list[dict[str, Any]]:
    return [s for s in report["sessions"] if s["strategy"] == strategy]


# ---- the end-to-end run -----------------------------------------------------------------


@pytest.mark.slow
def test_json_has_the_schema_machine_and_command(run: BenchOutput) -> None:
    r = run.report
    assert r["schema"] == "warmvoice-llm-bench/1"
    assert {
        "command",
        "argv",
        "machine",
        "config",
        "endpoint",
        "baseline",
        "sessions",
        "summary",
        "checks",
        "wall_time_s",
    } <= set(r)
    machine_fields = {
        "cpu_model",
        "cpu_count",
        "python",
        "platform",
        "date",
        "versions",
        "load_start",
        "load_end",
        "ram_bytes",
    }
    assert machine_fields <= set(r["machine"])
    assert r["machine"]["cpu_count"] >= 1 and r["machine"]["cpu_model"] and r["machine"]["ram_bytes"] > 0
    assert r["command"].startswith("python -m benchmarks.connection --rtt-ms 0,40 --turns 2 --quick")
    assert r["config"]["rtt_ms"] == [0, 40] and r["config"]["turns"] == TURNS and r["config"]["tls"] is True
    assert r["config"]["temperature"] == 0 and r["config"]["max_tokens"] == 48
    assert r["endpoint"]["kind"] == "embedded" and r["endpoint"]["tls"] is True
    assert r["endpoint"]["base_url"].startswith("https://127.0.0.1:")
    assert r["baseline"]["first_token_ms"] and r["baseline"]["median_ms"] is not None
    assert len(r["sessions"]) == len(RTTS) * 3
    for session in r["sessions"]:
        assert set(session) == SESSION_FIELDS
        assert [q["turn"] for q in session["requests"]] == list(range(1, TURNS + 1))
        assert [q["phase"] for q in session["requests"]] == ["first", "later"]  # --quick: no idle turn
        for q in session["requests"]:
            assert set(q) == REQUEST_FIELDS
            assert q["ok"] and q["error"] is None and q["status"] == 200, q
            assert q["reply_chars"] > 0 and q["tokens"] > 0
            # The stages happen in order on the request's own time line.
            assert 0 < q["ttfb_ms"] <= q["first_token_ms"] <= q["first_sentence_ms"] <= q["total_ms"]


@pytest.mark.slow
def test_proxy_counts_match_each_strategy(run: BenchOutput) -> None:
    for session in _sessions(run.report, "cold"):
        assert session["proxy_connections_total"] == TURNS
        for q in session["requests"]:
            assert q["proxy_connections"] == 1 and q["proxy_connections_before"] == 0
            assert q["reused_connection"] is False and q["connect_ms"] is not None
    for session in _sessions(run.report, "pooled"):
        assert session["proxy_connections_total"] == 1
        first, *later = session["requests"]
        assert first["proxy_connections"] == 1 and first["reused_connection"] is False
        assert all(q["proxy_connections"] == 0 and q["reused_connection"] for q in later)
    for session in _sessions(run.report, "prewarmed"):
        assert session["proxy_connections_total"] == 1
        assert session["warmup"]["ok"] and session["warmup"]["done_before_first_request"]
        first = session["requests"][0]
        # The warm-up opened the one connection while the user was speaking ...
        assert first["proxy_connections_before"] == 1 and first["proxy_connections"] == 0
        # ... so the first request found it ready.
        assert first["reused_connection"] is True and first["connect_ms"] is None
        assert all(q["reused_connection"] and q["proxy_connections"] == 0 for q in session["requests"])


@pytest.mark.slow
def test_markdown_has_one_consistent_table_per_distance(run: BenchOutput) -> None:
    assert run.stdout == run.markdown
    for rtt in RTTS:
        text = section(run.markdown, f"## RTT {rtt} ms")
        assert "| Metric | Before (cold) | Pooled, no warm-up | After (pre-warmed) | Improvement |" in text
        for label in ROW_LABELS:
            assert len(row(text, label)) == 4
        assert row(text, "Connections opened per session")[:3] == [str(TURNS), "1", "1"]
        assert row(text, "Later requests after idle > keep-alive: first token")[:3] == ["—", "—", "—"]
        # The table shows this run's numbers: one session, so the cell is that request's value.
        for strategy, cell in zip(
            ("cold", "pooled", "prewarmed"), row(text, "First request: first token"), strict=False
        ):
            (session,) = [s for s in _sessions(run.report, strategy) if s["rtt_ms"] == rtt]
            assert cell == f"{session['requests'][0]['first_token_ms']:.0f} ms"
        assert re.search(r"Cold / pre-warmed, first request, first token: \*\*\d+\.\d\d×\*\*", text)
        for key in ("a", "b", "c-time", "c-connections", "d"):
            assert re.search(rf"^- \*\*(PASS|FAIL|n/a)\*\* \({key}\) ", text, re.M), key
        # Structural bars (no timing involved) must hold.
        assert re.search(r"^- \*\*PASS\*\* \(a\) ", text, re.M)
        assert re.search(r"^- \*\*PASS\*\* \(c-connections\) ", text, re.M)
    assert "## Summary: first request, first token" in run.markdown
    assert run.report["machine"]["cpu_model"] in run.markdown and run.report["command"] in run.markdown
    # The machine probe was timed for real and is printed with the machine.
    probe = run.report["machine"]["probe"]
    assert probe["whisper_ms"] > 0 and probe["piper_ms"] > 0 and probe["llm_ms"] > 0 and probe["llm_tokens"] > 0
    assert f"Whisper tiny.en on a fixed 3 s clip {probe['whisper_ms']:.0f} ms" in run.markdown


@pytest.mark.slow
def test_checks_in_json_match_the_markdown(run: BenchOutput) -> None:
    checks = run.report["checks"]
    assert {(c["rtt_ms"], c["key"]) for c in checks} == {
        (float(r), k) for r in RTTS for k in ("a", "b", "c-time", "c-connections", "d")
    }
    for c in checks:
        verdict = "n/a" if c["passed"] is None else ("PASS" if c["passed"] else "FAIL")
        assert f"- **{verdict}** ({c['key']}) {c['text']}" in section(run.markdown, f"## RTT {c['rtt_ms']:g} ms")


@pytest.mark.slow
def test_plot_is_a_png(run: BenchOutput) -> None:
    data = run.png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 5000


@pytest.mark.slow
def test_progress_goes_to_stderr_one_line_per_request(run: BenchOutput) -> None:
    lines = [ln for ln in run.stderr.splitlines() if re.match(r"\[\s*\d+ ms\] \w+\s+s\d+ t\d+ ", ln)]
    assert len(lines) == len(RTTS) * 3 * TURNS


@pytest.mark.slow
def test_the_api_key_is_never_printed(run: BenchOutput) -> None:
    for text in (run.stdout, run.stderr, run.markdown, run.json_text):
        assert KEY not in text
    assert "--api-key '<hidden>'" in run.report["command"]


# ---- pure helpers -----------------------------------------------------------------------


def test_command_line_hides_the_key_in_both_spellings() -> None:
    assert command_line(PROG, ["--api-key", "sk-1", "--turns", "5"]) == (
        "python -m benchmarks.connection --api-key '<hidden>' --turns 5"
    )
    assert command_line(PROG, ["--api-key=sk-1"]) == "python -m benchmarks.connection '--api-key=<hidden>'"


def test_quick_changes_defaults_but_explicit_options_win() -> None:
    parser = build_parser()
    quick = config_from(parser.parse_args(["--quick"]), parser)
    assert quick.idle_pause_s == 0 and quick.speak_s < 2.0 and quick.pause_s < 1.0
    normal = config_from(parser.parse_args([]), parser)
    assert normal.rtt_ms == (0, 50, 150, 300) and normal.turns == 5 and normal.idle_pause_s > 5.0
    assert normal.speak_s == 2.0 and normal.max_tokens == 48 and normal.temperature == 0
    assert normal.server_threads == max(1, (os.cpu_count() or 2) - 1)
    assert config_from(parser.parse_args(["--server-threads", "3"]), parser).server_threads == 3
    mixed = config_from(parser.parse_args(["--quick", "--idle-pause-s", "6.5", "--rtt-ms", "0, 25"]), parser)
    assert mixed.idle_pause_s == 6.5 and mixed.rtt_ms == (0, 25)


def test_bad_options_are_refused() -> None:
    parser = build_parser()
    for argv in (
        ["--rtt-ms", "10,-5"],
        ["--rtt-ms", "x"],
        ["--turns", "0"],
        ["--base-url", "https://api.x/v1"],
        ["--base-url", "api.x/v1", "--model", "m"],
        ["--server-threads", "0"],
    ):
        with pytest.raises(SystemExit):
            config_from(parser.parse_args(argv), parser)
