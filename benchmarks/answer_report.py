"""The Markdown and JSON of ``python -m benchmarks.answer_eval``: the score table, the score per
kind of question, then every answer with its verdict (:func:`benchmarks.report.publish` heads it
with the command, the machine and the probe)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmarks.answer_panel import MAX_SENTENCES, MIN_FIRST_SENTENCE_WORDS
from benchmarks.answer_records import AnswerRecord, EvalRun
from benchmarks.common import Table, write_json_file


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _text(text: str) -> str:
    return " ".join(text.split()) or "—"  # one line in a table cell (Table escapes the pipes)


def _verdict(a: AnswerRecord) -> str:
    verdict = "ok" if a.accepted else "FAIL: " + ", ".join(a.failed_rules)
    if a.copied is not None:
        verdict += f" (copies {_text(a.copied)!r})"
    if a.copies_caught:
        verdict += f" [copy caught{' twice' if a.copies_caught > 1 else ''}]"
    return verdict


def render_markdown(run: EvalRun) -> str:
    """The report: the set-up, the score table, then every answer."""
    scores = Table(
        [
            "Mode",
            "Accepted",
            "Score",
            "Copies",
            "Caught",
            "WER (spoken)",
            "Whisper compute",
            "Transcript ready",
            "First token",
            "First audio",
        ]
    )
    for s in run.summaries:
        scores.add(
            s.label,
            f"{s.accepted}/{s.total}",
            f"**{s.score:.0%}**",
            s.copies,
            s.copies_caught,
            "—" if s.wer is None else f"{s.wer:.1%}",
            *(_ms(v) for v in (s.stt_compute_ms, s.transcript_ms, s.first_token_ms, s.first_audio_ms)),
        )
    kinds = Table(["Kind", *(s.label for s in run.summaries)])
    for kind in sorted({k for s in run.summaries for k in s.by_kind}):
        kinds.add(kind, *(f"{s.by_kind.get(kind, (0, 0))[0]}/{s.by_kind.get(kind, (0, 0))[1]}" for s in run.summaries))
    lines = [
        "# WarmVoice answer quality",
        "",
        f"- Wall time: {run.wall_time_s:.0f} s",
        f"- LLM: {run.llm}",
        f"- Prompting: {', '.join(f'{k} {v}' for k, v in run.style.items())}",
        f"- Speech heard by: {run.whisper}; questions voiced with Piper (bundled voice, noise off), "
        "fed in real time through the endpointer",
        f"- Rules per reply: the expected word or number, English only, at most {MAX_SENTENCES} sentences, a "
        f"first sentence of at least {MIN_FIRST_SENTENCE_WORDS} words that is not only filler. "
        f"{len(run.answers) // max(1, len(run.summaries))} questions per run, one session per run.",
        "",
        scores.markdown(),
        "",
        "Times are medians, after the end of speech (spoken) or the typed submission (typed); "
        "Whisper compute is the decode's own duration. Copies: replies with a sentence (4+ words) "
        "copied from an example answer of the prompt or an earlier reply to another question; "
        "Caught: turns whose reply the session dropped as a copy before speaking it (COPIED_REPLY).",
        "",
        kinds.markdown(),
    ]
    for s in run.summaries:
        answers = Table(["#", "Question", "Heard", "Reply", "Verdict"])
        for a in run.answers:
            if (a.mode, a.variant) == (s.mode, s.variant):
                heard = a.heard if a.mode == "spoken" else "(typed)"
                answers.add(a.index, _text(a.question), _text(heard), _text(a.reply), _verdict(a))
        lines += ["", f"## {s.label}", "", answers.markdown()]
    return "\n".join(lines) + "\n"


def write_json(run: EvalRun, path: Path) -> None:
    """Every record, with the summaries' scores."""
    data = dataclasses.asdict(run)
    for summary, raw in zip(run.summaries, data["summaries"], strict=True):
        raw["score"] = round(summary.score, 3)
    write_json_file(data, path)
