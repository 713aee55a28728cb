"""Headless WarmVoice: ``python -m voice --wav question.wav [--wav more.wav ...]``.

Each WAV is one spoken turn of one session, fed in real time like a microphone.  Prints
the transcript, the reply and the latency breakdown; writes the reply audio to WAV.
``--mic`` talks through the default sound device instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from llm import STRATEGIES, configure_logging, hide_in_logs
from voice.audio import read_wav, write_wav
from voice.headless import TurnResult, run_spoken_turn
from voice.latency import format_table
from voice.runtime import VoiceRuntime
from voice.settings import SettingsError, load_settings

log = logging.getLogger("voice")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; LLM/TTS settings come from the environment and .env as in the app."""
    p = argparse.ArgumentParser(prog="python -m voice", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", action="append", type=Path, help="a spoken turn (repeat for more turns)")
    src.add_argument("--mic", action="store_true", help="use the default microphone and speaker")
    p.add_argument("--strategy", choices=STRATEGIES, help="LLM connection strategy")
    p.add_argument("--rtt-ms", type=float, help="emulated network distance to the LLM")
    p.add_argument("--tts", choices=("auto", "edge", "piper"), help="TTS engine")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reply.wav"),
        help="reply audio (turn N goes to reply-N.wav when there are several)",
    )
    p.add_argument("--pause-s", type=float, default=1.0, help="pause between turns")
    p.add_argument("--log-level", default=None)
    return p.parse_args(argv)


async def run_wavs(runtime: VoiceRuntime, wavs: list[Path], out: Path, pause_s: float) -> list[TurnResult]:
    """Run each WAV as a turn of one session; print and save what happened."""
    session = runtime.new_session("cli")
    await session.start()
    results: list[TurnResult] = []
    try:
        for index, path in enumerate(wavs, 1):
            samples, rate = await asyncio.to_thread(read_wav, path)
            result = await run_spoken_turn(session, samples, rate)
            if result is None:
                print(f"[turn {index}] {path.name}: no speech detected")
                continue
            results.append(result)
            print(f"[turn {index}] you: {result.transcript or '(nothing recognised)'}")
            print(f"[turn {index}] assistant: {result.reply_text or '(no reply)'}")
            for notice in result.notices:
                print(f"[turn {index}] note: {notice}")
            if result.audio:
                target = out if len(wavs) == 1 else out.with_name(f"{out.stem}-{index}{out.suffix}")
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
        settings = load_settings(
            {
                "connection_strategy": args.strategy,
                "emulated_rtt_ms": args.rtt_ms,
                "tts_engine": args.tts,
                "log_level": args.log_level,
            }
        )
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    hide_in_logs(settings.openai_api_key)
    for path in args.wav or []:
        if not path.is_file():
            print(f"error: no such WAV file: {path}", file=sys.stderr)
            return 2
    runtime = VoiceRuntime.create(settings)
    try:
        if args.mic:
            asyncio.run(run_mic(runtime))
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
