"""``python -m benchmarks.pipeline`` end to end in ``--quick`` mode, plus its pure helpers.

The benchmark runs once, for real, as a subprocess: the embedded llama.cpp server (SmolLM2),
Whisper tiny.en, Piper, questions synthesized by Piper at run time and fed in real time.
The tests check that the JSON and Markdown are complete and consistent with each other, that
every turn's stages are present and in pipeline order, that Whisper heard the key words, and
that memory was sampled.  No time threshold is asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import psutil
import pytest

from benchmarks.common import command_line
from benchmarks.pipeline import PROG, QUICK, build_parser, config_from
from benchmarks.pipeline_levers import LEVERS_OFF, lever_settings
from benchmarks.pipeline_questions import HARD_QUESTIONS, QUESTIONS, missing_key_words, spoken_inputs
from benchmarks.pipeline_report import HEADLINE_ROWS
from benchmarks.pipeline_sessions import session_plan
from benchmarks.process_sampling import CpuMark, RssSampler, other_cpu_share
from tests.bench_process import BenchOutput, run_bench
from tests.markdown_tables import row, section
from voice.latency import STAGES, TurnLatency
from voice.settings import load_settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LATENCY_FIELDS = {f.name for f in fields(TurnLatency)}
TURN_FIELDS = {
    "rtt_ms",
    "strategy",
    "session",
    "question",
    "question_text",
    "key_words",
    "transcript",
    "key_words_ok",
    "missing_key_words",
    "reply",
    "reply_sentences",
    "first_sentence_chars",
    "reply_audio_s",
    "notices",
    "started_at_s",
    "speech_end_error_ms",
    "outcome",
    "latency",
    "tts",  # None unless --tts edge-standin
    "prompt_cache",  # the embedded server only
    "ok",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> BenchOutput:
    # The embedded offline set-up whatever this machine's environment says; a temperature the
    # benchmark must override.
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "TTS_ENGINE": "",
        "LLM_TEMPERATURE": "0.9",
    }
    return run_bench(
        "benchmarks.pipeline",
        ["--quick", "--pause-s", "0.5"],
        tmp_path_factory.mktemp("voice-bench"),
        env=env,
        timeout_s=180,
    )


def _turns(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for s in report["sessions"] for t in s["turns"]]


# ---- the end-to-end run ---------------------------------------------------------------------


@pytest.mark.slow
def test_json_records_the_run_machine_and_command(run: BenchOutput) -> None:
    r = run.report
    assert r["schema"] == "warmvoice-voice-bench/1"
    assert r["command"].startswith("python -m benchmarks.pipeline --quick --pause-s 0.5 --json ")
    m = r["machine"]
    assert m["cpu_count"] >= 1 and m["cpu_model"] and m["ram_bytes"] > 0 and m["date"]
    assert m["probe"]["whisper_ms"] > 0 and m["probe"]["piper_ms"] > 0 and m["probe"]["llm_ms"] > 0
    assert f"- Machine probe: CPU AVX2 {'yes' if 'avx2' in m['probe']['flags'] else 'no'}" in run.markdown
    c = r["config"]
    assert c["strategies"] == list(QUICK["strategies"]) and c["rtt_ms"] == [0.0] and c["questions"] == 2
    assert c["pause_s"] == 0.5 and c["tts"] == "piper" and c["quick"] is True
    assert c["llm_temperature"] == 0  # not the environment's 0.9: strategies compare like for like
    assert r["endpoint"]["embedded"] is True and r["endpoint"]["base_url"].startswith("https://127.0.0.1:")
    assert [q["text"] for q in r["questions"]] == [q.text for q in QUESTIONS[:2]]
    assert all(0 < q["last_voiced_s"] <= q["duration_s"] for q in r["questions"])
    assert len(r["sessions"]) == 1 and r["sessions"][0]["strategy"] == "prewarmed"
    assert 0 <= r["sessions"][0]["other_cpu_share"] <= 1
    assert r["primer"]["text"] == QUESTIONS[0].text and r["primer"]["outcome"] == "ok"
    assert r["wall_time_s"] > 0 and r["startup_s"] > 0


@pytest.mark.slow
def test_every_turn_has_every_stage_in_pipeline_order(run: BenchOutput) -> None:
    turns = _turns(run.report)
    assert [t["question"] for t in turns] == [1, 2]
    for t in turns:
        assert set(t) == TURN_FIELDS
        assert t["ok"] is True and t["outcome"] == "ok"
        lat = t["latency"]
        assert set(lat) == LATENCY_FIELDS  # dataclasses.asdict of the session's TurnLatency
        assert lat["strategy"] == "prewarmed" and lat["rtt_ms"] == 0 and lat["source"] == "voice"
        values = {attr: lat[attr] for attr, _ in STAGES}
        assert all(v is not None and v > 0 for v in values.values()), values
        # The transcript may be ready before the endpoint (Whisper starts early, during the pause);
        # the request needs the transcript, and waits for the endpoint unless it was sent during
        # the pause (preemptive generation); from there on the stages follow the pipeline.
        assert values["transcript_ms"] <= values["request_sent_ms"]
        if "preemptive" not in lat["extras"]:
            assert values["endpoint_ms"] <= values["request_sent_ms"]
        assert (
            values["request_sent_ms"]
            <= values["status_ms"]
            <= values["first_token_ms"]
            <= values["first_sentence_ms"]
            <= values["first_audio_ms"]
        ), values
        assert lat["stt_compute_ms"] > 0 and lat["reused_connection"] is not None
        assert t["reply"].strip() and t["reply_audio_s"] > 0
        assert t["first_sentence_chars"] == len(t["reply_sentences"][0]) > 0
        assert t["speech_end_error_ms"] is not None


@pytest.mark.slow
def test_quick_run_is_over_tls_and_reuses_the_prewarmed_connection(run: BenchOutput) -> None:
    r = run.report
    # TLS by default, as the connection benchmark: the cold strategy's cost is mostly its handshakes.
    assert r["config"]["tls"] is True and r["endpoint"]["tls"] is True
    assert "HTTPS with a throw-away trustme certificate" in r["endpoint"]["reason"]
    (session,) = r["sessions"]
    assert session["warmup"]["ok"] is True and session["warmup"]["connections_opened"] == 1
    # Every turn found a pooled TLS connection ready: the handshakes all happened in the background
    # (the warm-up, and keep-warm pings that may reconnect across the server's 5 s keep-alive).
    for t in session["turns"]:
        assert t["ok"] and t["latency"]["reused_connection"] is True and t["latency"]["connect_ms"] is None
    client = session["client"]
    assert client["connections_reused"] >= len(session["turns"]) == 2
    assert 1 <= client["connections_opened"] <= client["warmups"]
    assert f"- LLM: {r['endpoint']['base_url']}, model" in run.markdown and "HTTPS with a throw-away" in run.markdown


@pytest.mark.slow
def test_transcripts_contain_the_key_words(run: BenchOutput) -> None:
    for t in _turns(run.report):
        assert t["key_words_ok"] is True and t["missing_key_words"] == []
        assert missing_key_words(t["transcript"], t["key_words"]) == []


@pytest.mark.slow
def test_peak_memory_is_sampled_for_the_process_and_the_server(run: BenchOutput) -> None:
    mem = run.report["memory"]
    assert mem["peak_bytes"] > 0 and mem["samples"] > 10
    assert mem["self_bytes_at_peak"] > 0 and mem["children_at_peak"] >= 1 and mem["children_bytes_at_peak"] > 0
    assert mem["peak_bytes"] == mem["self_bytes_at_peak"] + mem["children_bytes_at_peak"]
    assert set(mem["peak_by_phase"]) == {"start-up", "turns"}
    assert max(mem["peak_by_phase"].values()) == mem["peak_bytes"]
    assert mem["within_bar"] == (mem["peak_bytes"] <= mem["bar_bytes"])
    assert 0 < mem["pss_peak_bytes"] <= mem["peak_bytes"]


@pytest.mark.slow
def test_markdown_has_the_headline_rows_and_matches_the_json(run: BenchOutput) -> None:
    md = run.markdown
    assert md == run.stdout  # the report printed is the report written
    assert md.startswith("# WarmVoice end-to-end voice benchmark")
    assert f"- Command: `{run.report['command']}`" in md
    rtt0 = section(md, "## RTT 0 ms")
    assert "| Metric | Before (cold) | After (pre-warmed) | Improvement |" in rtt0
    summary = run.report["summary"]["0"]["prewarmed"]
    for label, attr, first_only in HEADLINE_ROWS:
        before, after, _improvement = row(rtt0, label)
        assert before == "—"  # --quick runs the pre-warmed strategy only
        expected = summary["first_question_first_audio_ms" if first_only else attr]["median"]
        assert re.match(rf"{round(expected)} ms\b", after), (label, after, expected)
    stages = section(md, "### Stage budget at RTT 0 ms")
    for _attr, label in STAGES:
        assert re.match(r"\d+ ms", row(stages, label)[0])
    reused, n = summary["reused_connection"], summary["turns"]
    assert n == 2 and row(rtt0, "LLM requests on a reused connection")[1].startswith(f"{reused}/{n} (")
    heard_table = section(md, "## What was heard and said")
    for index, q in enumerate(QUESTIONS[:2], 1):
        question, key_words, heard, found, reply = row(heard_table, str(index))
        assert question == q.text and key_words == ", ".join(q.key_words)
        assert found == "1/1 PASS" and heard and reply != "—"
    assert "Peak memory" in md and "Issue #8's bar ≤ 1.5 GB" in md
    assert "- LLM temperature 0, set by the benchmark whatever LLM_TEMPERATURE says" in md
    assert "2 of 2 question(s) got the very same reply in every session that answered it" in md
    share = run.report["sessions"][0]["other_cpu_share"]
    assert row(stages, "CPU used by other processes meanwhile (share of the machine)") == [f"{100 * share:.0f} %"]


@pytest.mark.slow
def test_every_turn_shows_the_prompt_cache_measured_in_the_servers_log(run: BenchOutput) -> None:
    for session in run.report["sessions"]:
        reports = [t["prompt_cache"] for t in session["turns"]]
        # After the primer and any earlier session, the system prompt and examples are cached;
        # the second question's request appends to the first's, whose prompt was cached whole.
        assert all(r is not None and r["reused_tokens"] > 100 and r["completed"] for r in reports)
        assert reports[1]["reused_tokens"] > reports[0]["reused_tokens"] + reports[0]["evaluated_tokens"] // 2
    assert "## The LLM's prompt cache, per question of a session" in run.markdown
    assert "| 2 | 1 | 1/1 |" in run.markdown and "prompt: " in run.stderr


@pytest.mark.slow
def test_plot_is_a_png(run: BenchOutput) -> None:
    data = run.png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


@pytest.mark.slow
def test_progress_goes_to_stderr(run: BenchOutput) -> None:
    assert "prewarmed s1 q1:" in run.stderr and "prewarmed s1 q2:" in run.stderr
    assert "Traceback" not in run.stderr


# ---- pure parts -------------------------------------------------------------------------------


def test_key_words_are_whole_words_with_listed_spellings() -> None:
    assert missing_key_words("What colour is the sky?", ("color/colour", "sky")) == []
    assert missing_key_words("What is the capital of France?", ("capital", "france")) == []
    assert missing_key_words("What is the capitol of Francesca?", ("capital", "france")) == ["capital", "france"]
    assert missing_key_words("", ("romeo",)) == ["romeo"]


def _config(*argv: str):
    parser = build_parser()
    settings = load_settings({}, environ={}, dotenv_path=None)
    return config_from(parser.parse_args(list(argv)), parser, settings)


def test_defaults_and_quick_mode() -> None:
    full = _config()
    assert full.strategies == ("cold", "pooled", "prewarmed") and full.rtt_ms == (0.0, 150.0)
    assert full.questions == len(QUESTIONS) == 5 and full.pause_s == 1.5 and full.tts == "piper"
    assert full.tls is True and _config("--no-tls").tls is False
    quick = _config("--quick")
    assert (quick.strategies, quick.rtt_ms, quick.questions) == (("prewarmed",), (0.0,), 2)
    explicit = _config("--quick", "--strategies", "cold,prewarmed", "--rtt-ms", "0,40")
    assert explicit.strategies == ("cold", "prewarmed") and explicit.rtt_ms == (0.0, 40.0)


def test_strategy_order_alternates_between_rounds() -> None:
    plan = session_plan(_config("--rtt-ms", "0,150", "--repeat", "2"))
    assert plan == [
        (0.0, 1, "cold"),
        (0.0, 1, "pooled"),
        (0.0, 1, "prewarmed"),
        (0.0, 2, "prewarmed"),
        (0.0, 2, "pooled"),
        (0.0, 2, "cold"),
        (150.0, 1, "cold"),
        (150.0, 1, "pooled"),
        (150.0, 1, "prewarmed"),
        (150.0, 2, "prewarmed"),
        (150.0, 2, "pooled"),
        (150.0, 2, "cold"),
    ]


def test_voice_families_speak_the_questions(tmp_path: Path) -> None:
    config = _config("--quick", "--questions", "1", "--voices", "espeak-en-gb-m3,noise-10db-m3")
    assert config.voices == ("espeak-en-gb-m3", "noise-10db-m3")
    spoken = spoken_inputs(config, tmp_path)
    assert [q.inputs for q in spoken] == ["short espeak-en-gb-m3", "short noise-10db-m3"]
    for q in spoken:
        assert q.sample_rate == 16000 and 0.3 < q.last_voiced_s < q.duration_s
        assert (tmp_path / f"question-{q.index}.wav").is_file()
    # In noise no energy threshold finds the end of speech: it comes from the clean speech.
    assert spoken[1].last_voiced_s == pytest.approx(spoken[0].last_voiced_s, abs=0.01)


@pytest.mark.parametrize(
    "argv",
    [
        ["--strategies", "warm"],
        ["--rtt-ms", "-5"],
        ["--questions", "9"],
        ["--repeat", "0"],
        ["--pause-s", "-1"],
        ["--rtt-ms", "6000"],
        ["--tts", "edge"],
        ["--levers", "half"],
        ["--inputs", "medium"],
        ["--question-rates", "0.1"],
        ["--question-rates", "fast"],
        ["--voices", "piper-2.0"],
        ["--tts", "edge-standin", "--levers", "off,on"],
        ["--tts", "edge-standin", "--voices", "espeak-en-us"],
    ],
)
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _config(*argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_command_line_is_quoted() -> None:
    assert command_line(PROG, ["--json", "a b.json"]) == "python -m benchmarks.pipeline --json 'a b.json'"


def test_other_cpu_share_is_the_machine_minus_the_app() -> None:
    cores = psutil.cpu_count() or 1
    # 2 s on the whole machine; 1.5 CPU-seconds busy of which the app used 0.5: 1 CPU-second was others'.
    assert other_cpu_share(CpuMark(10.0, 100.0, 20.0), CpuMark(12.0, 101.5, 20.5)) == round(1.0 / (2 * cores), 3)
    assert other_cpu_share(CpuMark(10.0, 100.0, 20.0), CpuMark(12.0, 100.5, 20.6)) == 0.0  # never negative
    assert other_cpu_share(CpuMark(10.0, 100.0, 20.0), CpuMark(10.0, 100.0, 20.0)) is None


def test_rss_sampler_counts_a_child_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        with RssSampler(interval_s=0.05) as sampler:
            sampler.sample()
    finally:
        child.kill()
        child.wait()
    peak = sampler.peak
    assert peak.children_at_peak >= 1 and peak.children_bytes_at_peak > 0
    assert peak.peak_bytes == peak.self_bytes_at_peak + peak.children_bytes_at_peak
    # PSS splits the pages the two share (the interpreter's libraries): at most the RSS sum.
    assert 0 < peak.pss_peak_bytes <= peak.peak_bytes


@pytest.mark.slow
def test_edge_standin_mode_reports_the_tts_connection_cold_and_warm(tmp_path: Path) -> None:
    """``--tts edge-standin``: the stand-in of the edge-tts service (unreachable from here) behind
    the latency proxy; the warm session's sentences go out on sockets opened before them."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "TTS_ENGINE": ""}
    out = run_bench(
        "benchmarks.pipeline",
        ["--quick", "--tts", "edge-standin", "--rtt-ms", "50", "--pause-s", "0.5", "--standin-idle-s", "0"],
        tmp_path,
        env=env,
        timeout_s=240,
    )
    r = out.report
    assert r["config"]["tts"] == "edge-standin" and r["config"]["tts_connections"] == ["cold", "warm"]
    sessions = {s["tts_connection"]: s for s in r["sessions"]}
    assert set(sessions) == {"cold", "warm"}
    for mode, session in sessions.items():
        assert session["tts_sockets_left"] == 0 and session["tts_proxy_connections"] >= 1
        for turn in session["turns"]:
            tts = turn["tts"]
            assert turn["ok"] and turn["latency"]["tts_engine"] == "edge" and tts["sentence_to_audio_ms"] > 0
            if mode == "warm":
                assert tts["connection"] in ("reused spare", "reused socket") and tts["opened_on_path"] is False
            else:
                assert tts["connection"] == "new" and tts["opened_on_path"] is True
    assert "## The text-to-speech connection" in out.markdown and "| 50 ms | warm |" in out.markdown


def test_levers_off_put_back_what_each_lever_replaced() -> None:
    # Whisper at the first silent frame and preemptive speech are levers the app does not turn on by default.
    on = {"tts_engine": "piper", "early_transcript_after_ms": 0, "preemptive_tts": True}
    settings = load_settings(on, environ={}, dotenv_path=None)
    assert lever_settings(settings, "on") is settings
    off = lever_settings(settings, "off")
    assert {k: getattr(off, k) for k in LEVERS_OFF} == LEVERS_OFF
    assert all(getattr(settings, k) != v for k, v in LEVERS_OFF.items())  # each lever changes something
    assert _config("--levers", "on,off").levers == ("off", "on")  # report order, whatever the order given


def test_off_levers_puts_back_only_the_named_lever() -> None:
    settings = load_settings({"tts_engine": "piper", "early_transcript_after_ms": 0}, environ={}, dotenv_path=None)
    off = lever_settings(settings, "off", ("early_transcript_after_ms",))
    assert off.early_transcript_after_ms == LEVERS_OFF["early_transcript_after_ms"] == 150
    others = [k for k in LEVERS_OFF if k != "early_transcript_after_ms"]
    assert all(getattr(off, k) == getattr(settings, k) for k in others)
    config = _config("--levers", "off,on", "--off-levers", "early_transcript_after_ms")
    assert config.off_levers == ("early_transcript_after_ms",)
    assert config.levers_on == {"early_transcript_after_ms": 96}  # the app's default: three VAD frames in
    assert _config("--levers", "off,on").off_levers == ()  # all of them
    with pytest.raises(ValueError, match="unknown lever"):
        lever_settings(settings, "off", ("warp_drive",))


@pytest.mark.slow
def test_levers_off_and_on_hear_and_say_the_same_on_long_slow_questions(tmp_path: Path) -> None:
    """``--levers off,on`` on the 10-15-word questions at two speaking rates: every group runs once
    per variant, and (temperature 0) both variants hear the same transcripts and say the same text."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "TTS_ENGINE": ""}
    argv = ["--quick", "--questions", "1", "--inputs", "long", "--question-rates", "1,1.3", "--levers", "off,on"]
    out = run_bench("benchmarks.pipeline", [*argv, "--pause-s", "0.5"], tmp_path, env=env, timeout_s=240)
    r = out.report
    groups = {(s["inputs"], s["levers"]) for s in r["sessions"]}
    assert groups == {(i, v) for i in ("long ×1", "long ×1.3") for v in ("off", "on")}
    questions = {q["inputs"]: q for q in r["questions"]}
    assert questions["long ×1"]["text"] == questions["long ×1.3"]["text"] == HARD_QUESTIONS[0].text
    assert 10 <= len(HARD_QUESTIONS[0].text.split()) <= 15
    assert questions["long ×1.3"]["duration_s"] > questions["long ×1"]["duration_s"]  # spoken slower
    turns = [(s["levers"], t) for s in r["sessions"] for t in s["turns"]]
    assert all(t["ok"] for _, t in turns)
    for q in (1, 2):  # the same words (Whisper's capitals may differ with a little less audio after them)
        heard = {(t["transcript"].lower(), t["reply"]) for _, t in turns if t["question"] == q}
        assert len(heard) == 1, heard
    for session in r["sessions"]:  # every request sent during a pause was adopted or wasted, never both
        pre = session["preemptive"]
        assert pre["started"] == pre["adopted"] + pre["wasted"]
        assert session["levers"] == "on" or pre["started"] == 0
    assert "## Issue #14's levers, off vs on" in out.markdown
    assert "- Preemptive LLM requests (all sessions):" in out.markdown
    assert "transcripts differ for none and reply text differs for none" in out.markdown
