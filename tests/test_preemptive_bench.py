"""Issue #23 in the pipeline benchmark: preemptive speech off vs on in one run, and the
hesitation replay that counts its waste (a real run in a subprocess: embedded LLM, Whisper, Piper)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.pipeline import build_parser, config_from
from benchmarks.pipeline_levers import lever_settings
from benchmarks.pipeline_preemptive import hesitation_items
from tests.bench_process import offline_env, run_bench
from voice.settings import load_settings


def test_the_off_variant_turns_only_preemptive_speech_off() -> None:
    settings = load_settings({"preemptive_tts": True}, environ={}, dotenv_path=None)  # off by default
    off = lever_settings(settings, "off", ("preemptive_tts",))
    assert settings.preemptive_tts and not off.preemptive_tts
    assert off.replace(preemptive_tts=True) == settings  # nothing else changed


def test_hesitations_are_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    settings = load_settings({}, environ={}, dotenv_path=None)
    assert config_from(parser.parse_args(["--hesitations", "3"]), parser, settings).hesitations == 3
    with pytest.raises(SystemExit):
        config_from(parser.parse_args(["--hesitations", "1000"]), parser, settings)
    assert "--hesitations must be between" in capsys.readouterr().err


@pytest.mark.slow
def test_hesitation_items_mix_every_kind_early() -> None:
    items = hesitation_items(4)
    assert sorted(item.kind for item in items) == ["filler", "filler_final", "hesitation", "hesitation_final"]
    assert all(len(item.part_ends) == 2 and item.pauses_s for item in items)  # a phrase, a pause, the rest


@pytest.mark.slow
def test_preemptive_speech_off_and_on_side_by_side_with_the_hesitation_replay(tmp_path: Path) -> None:
    argv = ["--quick", "--questions", "1", "--levers", "off,on", "--off-levers", "preemptive_tts"]
    out = run_bench(
        "benchmarks.pipeline",
        [*argv, "--hesitations", "1", "--pause-s", "0.5"],
        tmp_path,
        env=offline_env(TTS_ENGINE="", PREEMPTIVE_TTS="true"),  # the variant "on" turns it on
        timeout_s=300,
    )
    sessions = out.report["sessions"]
    assert {s["levers"] for s in sessions} == {"off", "on"}
    for session in sessions:
        pre = session["preemptive"]
        assert pre["tts_started"] == pre["tts_played"] + pre["tts_dropped"]
        assert session["levers"] == "on" or pre["tts_started"] == 0  # off: nothing synthesized ahead
    replay = out.report["hesitations"]
    assert replay["items"] == 1 and replay["turns"] >= 1 and len(replay["per_item"]) == 1
    md = out.markdown
    assert "## Preemptive speech (issue #23), off vs on" in md and "| PREEMPTIVE_TTS off | PREEMPTIVE_TTS on |" in md
    assert "Turn confirmed → first audio when the pause's request was adopted:" in md
    assert "## Waste on the turn-taking set's hesitations" in md and "Machine probe:" in md
