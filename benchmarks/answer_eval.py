"""``python -m benchmarks.answer_eval``: are WarmVoice's answers worth hearing? (issue #12)

Asks the panel of :mod:`benchmarks.answer_panel` through the app's own session path
(:mod:`voice.headless`) in two modes, one fresh session each so history effects show:

* **typed**: each question typed into the session (LLM and TTS, no speech recognition);
* **spoken**: each question voiced at run time with the bundled Piper voice (as
  :mod:`benchmarks.pipeline` does), fed in real time through Silero endpointing and Whisper.

Every reply is judged by the panel's rules (expected word, English, <= 3 sentences, a real
first sentence); spoken mode also reports Whisper's word error rate against the question text.
Latency medians (first token, first audio, after the end of speech or the typed submission)
are reported per mode, so a quality change that costs latency is visible.

The Markdown report goes to stdout, progress to stderr, ``--json`` writes every record.
The LLM is whatever the settings say (the embedded SmolLM2 by default; EMBEDDED_MODEL for
another local .gguf; OPENAI_BASE_URL/OPENAI_API_KEY for a remote one).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.answer_panel import (
    MAX_SENTENCES,
    MIN_FIRST_SENTENCE_WORDS,
    PANEL,
    Exchange,
    PanelQuestion,
    judge,
    word_error_rate,
)
from benchmarks.common import (
    MACHINE_PACKAGES,
    MachineInfo,
    Say,
    command_line,
    hide_api_key,
    load_average,
    machine_info,
    progress,
    publish,
    run_interruptible,
    write_json_file,
)
from benchmarks.machine_probe import cpu_flags, run_probe
from benchmarks.pipeline import PLAYBACK_SLACK_S, Question, SpokenQuestion, synthesize_questions, wait_playback
from llm import configure_logging, public_endpoint
from voice.headless import TurnResult, run_spoken_turn, run_typed_turn
from voice.prompting import COPIED_REPLY_CHOICES, PLAIN, ReplyStyle, reply_style
from voice.recognizer import engine_label
from voice.runtime import VoiceRuntime
from voice.settings import Settings, SettingsError, load_settings
from voice.transcribe import Transcriber

PROG = "python -m benchmarks.answer_eval"
MODES = ("typed", "spoken")
TURN_TIMEOUT_S = 120.0
PAUSE_S = 0.5  # after a spoken reply has played, before the next question
PACKAGES = (*MACHINE_PACKAGES, "faster-whisper", "piper-tts")
REPORT = Path("docs/measurements/answer_eval.md")  # where --markdown writes by default


@dataclass
class AnswerRecord:
    """One question asked in one mode, what came back and how it was judged."""

    mode: str
    index: int
    kind: str
    variant: str  # the COPIED_REPLY setting the session ran with
    question: str
    expected: list[str]
    heard: str  # the transcript (spoken) or the typed text
    reply: str
    accepted: bool
    failed_rules: list[str]
    outcome: str
    copied: str | None = None  # the example's or earlier reply's sentence the reply copied
    copies_caught: int = 0  # replies the session dropped as copies before speaking (COPIED_REPLY)
    wer_edits: int | None = None
    wer_words: int | None = None
    first_token_ms: float | None = None
    first_audio_ms: float | None = None
    transcript_ms: float | None = None
    stt_compute_ms: float | None = None


@dataclass
class ModeSummary:
    """A mode's score, WER and latency medians."""

    mode: str
    variant: str  # the COPIED_REPLY setting
    accepted: int
    total: int
    wer: float | None
    first_token_ms: float | None
    first_audio_ms: float | None
    transcript_ms: float | None
    stt_compute_ms: float | None
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    copies: int = 0  # replies that copied an example's answer or an earlier reply
    copies_caught: int = 0  # turns where the session caught a copy before it was spoken

    @property
    def label(self) -> str:
        """The mode and the setting it ran with: how the report names this run."""
        return f"{self.mode}, COPIED_REPLY={self.variant}"

    @property
    def score(self) -> float:
        """Share of the panel accepted (0..1)."""
        return self.accepted / self.total if self.total else 0.0


@dataclass
class EvalRun:
    """Everything one run measured, for the Markdown and the JSON."""

    command: str
    argv: list[str]
    machine: MachineInfo
    cpu_flags: list[str]
    llm: str
    style: dict[str, object]
    whisper: str
    summaries: list[ModeSummary]
    answers: list[AnswerRecord]
    wall_time_s: float


def _median(values: Sequence[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return round(statistics.median(data), 1) if data else None


def summarise(mode: str, variant: str, answers: Sequence[AnswerRecord]) -> ModeSummary:
    """The score, the WER (edits over all reference words) and the medians of ``answers``."""
    words = sum(a.wer_words or 0 for a in answers)
    edits = sum(a.wer_edits or 0 for a in answers)
    by_kind: dict[str, tuple[int, int]] = {}
    for a in answers:
        ok, n = by_kind.get(a.kind, (0, 0))
        by_kind[a.kind] = (ok + a.accepted, n + 1)
    return ModeSummary(
        mode=mode,
        variant=variant,
        accepted=sum(a.accepted for a in answers),
        total=len(answers),
        wer=round(edits / words, 3) if words and mode == "spoken" else None,
        first_token_ms=_median([a.first_token_ms for a in answers]),
        first_audio_ms=_median([a.first_audio_ms for a in answers]),
        transcript_ms=_median([a.transcript_ms for a in answers]),
        stt_compute_ms=_median([a.stt_compute_ms for a in answers]),
        by_kind=by_kind,
        copies=sum(a.copied is not None for a in answers),
        copies_caught=sum(a.copies_caught > 0 for a in answers),
    )


def record(
    mode: str,
    index: int,
    q: PanelQuestion,
    result: TurnResult | None,
    earlier: Sequence[Exchange] = (),
    variant: str = "",
) -> AnswerRecord:
    """Judge one turn's result (None: the endpointer heard nothing, so no turn); ``earlier``: the
    session's exchanges before it (what the model was asked, what it replied)."""
    reply = result.reply_text if result is not None else ""
    heard = (result.transcript if result is not None else "") if mode == "spoken" else q.text
    verdict = judge(dataclasses.replace(q, text=heard), reply, earlier)
    lat = result.latency if result is not None else None
    edits, words = word_error_rate(q.text, heard) if mode == "spoken" else (None, None)
    return AnswerRecord(
        mode=mode,
        variant=variant,
        index=index,
        kind=q.kind,
        question=q.text,
        expected=list(q.expected),
        heard=heard,
        reply=reply,
        accepted=verdict.accepted,
        failed_rules=verdict.failed,
        copied=verdict.copied,
        copies_caught=int(lat.extras.get("copied_replies", 0)) if lat is not None else 0,
        outcome=lat.outcome if lat is not None else "no_turn",
        wer_edits=edits,
        wer_words=words,
        first_token_ms=lat.first_token_ms if lat is not None else None,
        first_audio_ms=lat.first_audio_ms if lat is not None else None,
        transcript_ms=lat.transcript_ms if lat is not None and mode == "spoken" else None,
        stt_compute_ms=lat.stt_compute_ms if lat is not None and mode == "spoken" else None,
    )


async def run_mode(
    runtime: VoiceRuntime,
    mode: str,
    panel: Sequence[PanelQuestion],
    spoken: Sequence[SpokenQuestion],
    say: Say,
    style: ReplyStyle | None = None,
    copied_reply: str | None = None,
) -> list[AnswerRecord]:
    """Ask every question in one fresh session; a spoken question waits for the previous reply
    to finish playing, as a listening user would.  ``style`` replaces the session's own (the
    plain one, to measure how the embedded model answered before it had its own prompting);
    ``copied_reply`` the runtime's COPIED_REPLY."""
    settings = runtime.settings.replace(copied_reply=copied_reply or runtime.settings.copied_reply)
    session = runtime.new_session(f"eval-{mode}", settings)
    if style is not None:
        session.reply.conversation.style = style  # before start(): the client's temperature follows it
    await session.start()
    answers: list[AnswerRecord] = []
    try:
        await session.wait_warm()
        for index, q in enumerate(panel, 1):
            if mode == "typed":
                result: TurnResult | None = await run_typed_turn(session, q.text, timeout_s=TURN_TIMEOUT_S)
            else:
                sq = spoken[index - 1]
                result = await run_spoken_turn(session, sq.samples, sq.sample_rate, timeout_s=TURN_TIMEOUT_S)
                audio_s = len(result.reply_audio) / result.sample_rate if result and result.sample_rate else 0.0
                await wait_playback(session, audio_s + PLAYBACK_SLACK_S)
                await asyncio.sleep(PAUSE_S)
            earlier = [Exchange(a.heard, a.reply) for a in answers]
            answer = record(mode, index, q, result, earlier, settings.copied_reply)
            answers.append(answer)
            mark = "ok  " if answer.accepted else "FAIL"
            heard = f" heard {answer.heard!r}" if mode == "spoken" else ""
            why = f" ({', '.join(answer.failed_rules)})" if answer.failed_rules else ""
            say(f"[{mode} {settings.copied_reply} {index:2}] {mark} {q.text!r}{heard} -> {answer.reply!r}{why}")
    finally:
        await session.stop()
    return answers


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split()) or "—"


def render_markdown(run: EvalRun) -> str:
    """The report: machine and set-up, the score table, then every answer."""
    m = run.machine
    load = "?" if m.load_start is None else f"{m.load_start:.2f}"
    load_end = "?" if m.load_end is None else f"{m.load_end:.2f}"
    lines = [
        "# WarmVoice answer quality",
        "",
        f"- Machine: {m.cpu_model}, {m.cpu_count} CPUs ({', '.join(run.cpu_flags) or 'no AVX'}), "
        f"Python {m.python}, {m.platform}; {m.date}; load average (1 min) {load} → {load_end}",
        *([f"- Machine probe: {m.probe.describe()}"] if m.probe is not None else []),
        f"- Command: `{run.command}` (wall time {run.wall_time_s:.0f} s)",
        f"- LLM: {run.llm}",
        f"- Prompting: {', '.join(f'{k} {v}' for k, v in run.style.items())}",
        f"- Speech heard by: {run.whisper}; questions voiced with Piper (bundled voice, noise off), "
        "fed in real time through the endpointer",
        f"- Rules per reply: the expected word or number, English only, at most {MAX_SENTENCES} sentences, a "
        f"first sentence of at least {MIN_FIRST_SENTENCE_WORDS} words that is not only filler. "
        f"{len(run.answers) // max(1, len(run.summaries))} questions per run, one session per run.",
        "",
        "| Mode | Accepted | Score | Copies | Caught | WER (spoken) | Whisper compute | Transcript ready | First token "
        "| First audio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in run.summaries:
        wer = "—" if s.wer is None else f"{s.wer:.1%}"
        lines.append(
            f"| {s.label} | {s.accepted}/{s.total} | **{s.score:.0%}** | {s.copies} | {s.copies_caught} | {wer} | "
            f"{_ms(s.stt_compute_ms)} | {_ms(s.transcript_ms)} | {_ms(s.first_token_ms)} | {_ms(s.first_audio_ms)} |"
        )
    lines += [
        "",
        "Times are medians, after the end of speech (spoken) or the typed submission (typed); "
        "Whisper compute is the decode's own duration. Copies: replies with a sentence (4+ words) "
        "copied from an example answer of the prompt or an earlier reply to another question; "
        "Caught: turns whose reply the session dropped as a copy before speaking it (COPIED_REPLY).",
        "",
    ]
    kinds = sorted({k for s in run.summaries for k in s.by_kind})
    lines += ["| Kind | " + " | ".join(s.label for s in run.summaries) + " |", "|---" * (len(run.summaries) + 1) + "|"]
    for kind in kinds:
        cells = [f"{s.by_kind.get(kind, (0, 0))[0]}/{s.by_kind.get(kind, (0, 0))[1]}" for s in run.summaries]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for s in run.summaries:
        answers = [a for a in run.answers if (a.mode, a.variant) == (s.mode, s.variant)]
        lines += ["", f"## {s.label}", "", "| # | Question | Heard | Reply | Verdict |", "|---|---|---|---|---|"]
        for a in answers:
            verdict = "ok" if a.accepted else "FAIL: " + ", ".join(a.failed_rules)
            if a.copied is not None:
                verdict += f" (copies {_cell(a.copied)!r})"
            if a.copies_caught:
                verdict += f" [copy caught{' twice' if a.copies_caught > 1 else ''}]"
            heard = a.heard if a.mode == "spoken" else "(typed)"
            lines.append(f"| {a.index} | {_cell(a.question)} | {_cell(heard)} | {_cell(a.reply)} | {verdict} |")
    return "\n".join(lines) + "\n"


def write_json(run: EvalRun, path: Path) -> None:
    """Every record, with the summaries' scores."""
    data = dataclasses.asdict(run)
    for summary, raw in zip(run.summaries, data["summaries"], strict=True):
        raw["score"] = round(summary.score, 3)
    write_json_file(data, path)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(prog=PROG, description="Answer quality of WarmVoice on a panel of questions.")
    p.add_argument("--modes", default="typed,spoken", help="comma-separated: typed, spoken (default both)")
    p.add_argument("--questions", type=int, help=f"only the first N of the {len(PANEL)} questions")
    p.add_argument(
        "--plain-prompt",
        action="store_true",
        help="give the embedded model only the plain system prompt and full history, as before issue #12",
    )
    p.add_argument(
        "--whisper-prompt",
        help="try Whisper with this initial prompt (everyday vocabulary); the app uses none",
    )
    p.add_argument(
        "--copied-reply",
        help="comma-separated: what the session does with a reply that copies an earlier answer "
        f"({', '.join(COPIED_REPLY_CHOICES)}); each value is a run of every mode (default: COPIED_REPLY's)",
    )
    p.add_argument("--json", type=Path, help="write every record here")
    p.add_argument(
        "--markdown",
        type=Path,
        nargs="?",
        const=REPORT,
        help=f"also write the Markdown report here (no path: {REPORT})",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; exit status 0 when it ran (the score is the output, not a pass/fail)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    modes = tuple(dict.fromkeys(m.strip() for m in args.modes.split(",") if m.strip()))
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes takes {', '.join(MODES)} (comma-separated)")
    variants = tuple(dict.fromkeys(v.strip() for v in (args.copied_reply or "").split(",") if v.strip()))
    if any(v not in COPIED_REPLY_CHOICES for v in variants):
        parser.error(f"--copied-reply takes {', '.join(COPIED_REPLY_CHOICES)} (comma-separated)")
    count = args.questions or len(PANEL)
    if not 1 <= count <= len(PANEL):
        parser.error(f"--questions must be between 1 and {len(PANEL)}")
    try:
        settings = load_settings({"tts_engine": "piper"})
    except SettingsError as exc:
        parser.error(str(exc))
    configure_logging("WARNING")
    variants = variants or (settings.copied_reply,)
    return run_interruptible(lambda: _run(args, settings, modes, variants, PANEL[:count], argv))


def _run(
    args: argparse.Namespace,
    settings: Settings,
    modes: Sequence[str],
    variants: Sequence[str],
    panel: Sequence[PanelQuestion],
    argv: list[str],
) -> int:
    """Start the app's runtime, ask the panel in every mode under every COPIED_REPLY, then report."""
    progress("timing the machine probe (CPU flags, Whisper, Piper, 20 tokens)...")
    probe = run_probe()  # before the clock starts: not part of the run's wall time
    progress(f"machine probe: {probe.describe()}")
    started, load_start = time.perf_counter(), load_average()
    runtime = VoiceRuntime.create(settings, progress=progress)
    style = PLAIN if args.plain_prompt else reply_style(runtime.endpoint.is_embedded)
    stt = runtime.transcriber
    if args.whisper_prompt and isinstance(stt, Transcriber):  # a Whisper option (STT_ENGINE=whisper)
        stt.initial_prompt = args.whisper_prompt
    try:
        with tempfile.TemporaryDirectory(prefix="warmvoice-answer-eval-") as tmp:
            spoken = synthesize_questions([Question(q.text, ()) for q in panel], Path(tmp)) if "spoken" in modes else []
            answers: list[AnswerRecord] = []
            for variant in variants:
                for mode in modes:
                    answers += asyncio.run(run_mode(runtime, mode, panel, spoken, progress, style, variant))
        endpoint = runtime.endpoint
        llm = f"{public_endpoint(endpoint.base_url)}, model `{endpoint.model}` ({endpoint.reason})"
        if endpoint.server is not None:
            llm += f", file {Path(endpoint.server.model_path or '').name or 'bundled SmolLM2-135M-Instruct.Q4_1.gguf'}"
        whisper = engine_label(stt.engine)
        if isinstance(stt, Transcriber):
            whisper = f"Whisper {stt.model_name or 'tiny.en (bundled)'}"
            if stt.initial_prompt:
                whisper += f", initial prompt {stt.initial_prompt!r}"
    finally:
        runtime.close()
    run = EvalRun(
        command=command_line(PROG, argv),
        argv=hide_api_key(argv),
        machine=machine_info(load_start, PACKAGES, probe),
        cpu_flags=list(cpu_flags()),
        llm=llm,
        style={
            "style": style.name,
            "examples": len(style.examples) // 2,
            "history exchanges": style.max_exchanges,
            "temperature": settings.llm_temperature if settings.llm_temperature is not None else style.temperature,
            "max_tokens": style.max_tokens,
            "stop": list(style.stop),
            "max sentences": style.max_sentences,
            "copied reply": "checked" if style.check_copies else "not checked",
        },
        whisper=whisper,
        summaries=[
            summarise(m, v, [a for a in answers if (a.mode, a.variant) == (m, v)]) for v in variants for m in modes
        ],
        answers=answers,
        wall_time_s=round(time.perf_counter() - started, 1),
    )
    publish(render_markdown(run), [(args.json, functools.partial(write_json, run))], args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
