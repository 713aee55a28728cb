"""The answer evaluation end to end on the embedded model: a few panel questions, typed and spoken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.answer_panel import PANEL, is_english, judge
from tests.bench_process import offline_env, run_module
from tests.speech import synthesize
from voice.headless import run_spoken_turn, run_typed_turn

pytestmark = pytest.mark.slow

# Facts the bundled SmolLM2-135M answers with the embedded prompting (see README, "Answer quality").
FACTS = [q for q in PANEL if q.text in ("What is the capital of France?", "How many legs does a spider have?")]


async def test_panel_questions_get_english_answers_with_the_expected_word(voice_runtime) -> None:
    # Greedy sampling so the test is repeatable; the app's default samples at a low temperature.
    settings = voice_runtime.settings.replace(llm_temperature=0.0)
    session = voice_runtime.new_session("answer-test", settings=settings)
    await session.start()
    try:
        await session.wait_warm()
        bees = next(q for q in PANEL if q.text == "What do bees make?")
        for question in [*FACTS, bees]:
            result = await run_typed_turn(session, question.text)
            verdict = judge(question, result.reply_text)
            assert verdict.english and verdict.expected, (question.text, result.reply_text, verdict.failed)
        spoken = synthesize(FACTS[0].text)
        result = await run_spoken_turn(session, spoken.samples, spoken.sample_rate)
        assert result is not None and "france" in result.transcript.lower()
        assert is_english(result.reply_text) and "paris" in result.reply_text.lower(), result.reply_text
        # The examples were sent, never stored: the session's history is only what was said.
        assert [m["role"] for m in session.reply.conversation.turns] == ["user", "assistant"] * 4
    finally:
        await session.stop()


def test_command_prints_markdown_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    run = run_module(
        "benchmarks.answer_eval", ["--questions", "2", "--json", str(out)], env=offline_env(), timeout_s=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = run.stdout
    assert report.startswith("# WarmVoice answer quality")
    assert "avx" in report.split("- Machine:", 1)[1].splitlines()[0]  # the CPU's flags are shown
    assert "| typed, COPIED_REPLY=ask-again | " in report and "| spoken, COPIED_REPLY=ask-again | " in report
    data = json.loads(out.read_text())
    assert [s["mode"] for s in data["summaries"]] == ["typed", "spoken"]
    assert len(data["answers"]) == 4
    spoken = [a for a in data["answers"] if a["mode"] == "spoken"]
    assert all(a["wer_words"] and a["heard"] for a in spoken)
    assert data["summaries"][1]["wer"] is not None and data["summaries"][0]["wer"] is None
    assert all(0 <= s["score"] <= 1 for s in data["summaries"])
    assert "Traceback" not in run.stderr
