"""Headless WarmVoice: ``python -m voice --wav question.wav [more.wav ...]`` or ``--text "question"``.

Each WAV is one spoken turn of one session, fed in real time like a microphone; each
``--text`` is one typed turn through the same session path.  Prints the transcript, the reply
and the latency breakdown; writes the reply audio to WAV.  ``--mic`` talks through the default
sound device instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from llm import configure_logging, hide_in_logs
from voice.audio import read_wav, write_wav
from voice.cli import add_settings_flags, settings_from_args
from voice.headless import TurnResult, run_spoken_turn, run_typed_turn
from voice.latency import format_table
from voice.runtime import VoiceRuntime
from voice.session import VoiceSession
from voice.settings import SettingsError

log = logging.getLogger("voice")
T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the rest of the settings come from the environment and .env, as in the app."""
    p = argparse.ArgumentParser(prog="python -m voice", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--wav",
        action="extend",
        nargs="+",
        type=Path,
        help="spoken turns, one per WAV file (--wav a.wav b.wav or --wav a.wav --wav b.wav)",
    )
    src.add_argument("--text", action="append", help="a typed turn (repeat for more turns)")
    src.add_argument("--mic", action="store_true", help="use the default microphone and speaker")
    add_settings_flags(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reply.wav"),
        help="reply audio (turn N goes to reply-N.wav when there are several)",
    )
    p.add_argument("--pause-s", type=float, default=1.0, help="pause between turns")
    return p.parse_args(argv)


async def run_wavs(runtime: VoiceRuntime, wavs: list[Path], out: Path, pause_s: float) -> list[TurnResult]:
    """Run each WAV as a spoken turn of one session; print and save what happened."""

    async def turn(session: VoiceSession, path: Path) -> TurnResult | None:
        samples, rate = await asyncio.to_thread(read_wav, path)
        return await run_spoken_turn(session, samples, rate)

    return await _run_turns(runtime, [(p.name, p) for p in wavs], turn, out, pause_s)


async def run_texts(runtime: VoiceRuntime, texts: list[str], out: Path, pause_s: float) -> list[TurnResult]:
    """Run each text as a typed turn of one session; print and save what happened."""

    async def turn(session: VoiceSession, text: str) -> TurnResult | None:
        return await run_typed_turn(session, text)

    return await _run_turns(runtime, [(repr(t), t) for t in texts], turn, out, pause_s)


async def _run_turns(
    runtime: VoiceRuntime,
    inputs: list[tuple[str, T]],
    turn: Callable[[VoiceSession, T], Awaitable[TurnResult | None]],
    out: Path,
    pause_s: float,
) -> list[TurnResult]:
    session = runtime.new_session("cli")
    await session.start()
    results: list[TurnResult] = []
    try:
        for index, (label, item) in enumerate(inputs, 1):
            result = await turn(session, item)
            if result is None:
                print(f"[turn {index}] {label}: no speech detected")
                continue
            results.append(result)
            print(f"[turn {index}] you: {result.transcript or '(nothing recognised)'}")
            print(f"[turn {index}] assistant: {result.reply_text or '(no reply)'}")
            for notice in result.notices:
                print(f"[turn {index}] note: {notice}")
            if result.audio:
                target = out if len(inputs) == 1 else out.with_name(f"{out.stem}-{index}{out.suffix}")
                await asyncio.to_thread(write_wav, target, result.reply_audio, result.sample_rate)
                print(f"[turn {index}] reply audio: {target}")
            await asyncio.sleep(pause_s)
    finally:
        await session.stop()
    if results:
        print()
        print(format_table([r.latency for r in results]))
    return results


async def run_mic(runtime: VoiceRuntime) -> None:
    """Talk through the default sound devices until Ctrl-C."""
    from voice.local_audio import LocalAudioError, converse_locally

    session = runtime.new_session("mic")
    await session.start()
    print("Listening: speak, pause, and WarmVoice answers. Ctrl-C to stop.")
    try:
        await converse_locally(session, on_turn=lambda lat: print(format_table([lat])))
    except LocalAudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
    finally:
        await session.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the process exit code."""
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    hide_in_logs(settings.openai_api_key)
    for text in args.text or []:
        if not text.strip():
            print("error: --text needs a non-empty question", file=sys.stderr)
            return 2
    for path in args.wav or []:
        if not path.is_file():
            print(f"error: no such WAV file: {path}", file=sys.stderr)
            return 2
    runtime = VoiceRuntime.create(settings)
    try:
        results: list[TurnResult] = []
        if args.mic:
            asyncio.run(run_mic(runtime))
        elif args.text:
            results = asyncio.run(run_texts(runtime, args.text, args.out, args.pause_s))
        else:
            results = asyncio.run(run_wavs(runtime, args.wav, args.out, args.pause_s))
        if any(r.latency.outcome == "error" for r in results):
            return 1
    except KeyboardInterrupt:
        print("stopped")
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
