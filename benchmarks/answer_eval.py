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
import functools
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.answer_panel import PANEL, Exchange, PanelQuestion
from benchmarks.answer_records import AnswerRecord, EvalRun, record, summarise
from benchmarks.answer_report import render_markdown, write_json
from benchmarks.common import (
    MACHINE_PACKAGES,
    Say,
    parse_command_line,
    progress,
    run_interruptible,
)
from benchmarks.machine_probe import cpu_flags, start_run
from benchmarks.pipeline_questions import Question, SpokenQuestion, synthesize_questions
from benchmarks.pipeline_sessions import PLAYBACK_SLACK_S, wait_playback
from benchmarks.report import publish
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
        help="also write the Markdown report here (no path: only docs/measurements/answer_eval*.md, "
        "which every run writes)",
    )
    return p


def report_name(modes: Sequence[str]) -> str:
    """The report the run publishes: answer_eval for both modes, answer_eval_typed or _spoken for one."""
    return "answer_eval" if set(modes) == set(MODES) else f"answer_eval_{'_'.join(modes)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; exit status 0 when it ran (the score is the output, not a pass/fail)."""
    parser = build_parser()
    args, shown = parse_command_line(parser, argv)
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
    return run_interruptible(lambda: _run(args, settings, modes, variants, PANEL[:count], shown))


def _run(
    args: argparse.Namespace,
    settings: Settings,
    modes: Sequence[str],
    variants: Sequence[str],
    panel: Sequence[PanelQuestion],
    argv: list[str],
) -> int:
    """Start the app's runtime, ask the panel in every mode under every COPIED_REPLY, then report."""
    start = start_run()
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
        *start.identity(PROG, argv, PACKAGES),
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
        wall_time_s=round(start.wall_time_s(), 1),
    )
    outputs = [(args.json, functools.partial(write_json, run))]
    publish(
        report_name(modes), render_markdown(run), run.command, run.machine, outputs=outputs, markdown_path=args.markdown
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
