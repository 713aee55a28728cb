"""Interruption benchmark: do backchannels leave the reply alone, and do real interruptions stop it?

    python -m benchmarks.interruptions --json interruptions.json   # writes docs/measurements/interruptions.md

Speech said over a reply, synthesized at run time with the bundled Piper voice at three
speaking rates (and a cough-like burst from sox), clean and in sox pink noise at 20 and 10 dB
SNR, is streamed through the app's endpointer frame by frame and screened by the app's rule
(:class:`voice.turns.interruption.InterruptionScreen`): from ``BARGE_IN_MIN_SPEECH_MS`` of voice on,
Whisper looks at the words so far (the decision waits for Whisper's measured time); speech that
ends first is transcribed whole.  Either stops the reply unless it is a backchannel, no speech,
or a guess (``avg_logprob`` below ``BARGE_IN_MIN_LOGPROB`` without a word asking for the floor).

Two phrase sets: ``tuning`` (the rule was tuned on it) and ``heldout`` (other backchannels, other
interruptions, other short commands; never used to tune), reported side by side.

Reported: the share of backchannels that do not stop the reply (and, of those that do, how
many the resume then re-speaks), the share of real interruptions that stop it, and when: ms
from the start of the speech, and ms after the end of its third word (the issue's "≥ 3 words
stop it within 300 ms"); the share of short commands ("Stop.") that stop it, and ms after
their end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import (
    command_line,
    progress,
)
from benchmarks.interruptions_report import InterruptionsRun, Screened, render_markdown, summarise
from benchmarks.machine_probe import start_run
from benchmarks.report import publish_run
from benchmarks.turn_taking import PACKAGES
from benchmarks.voice_families import ENERGY_THRESHOLD, pink_noise, piper_family
from benchmarks.voice_families import speech as voice_speech
from voice.audio import SAMPLE_RATE
from voice.settings import Settings
from voice.transcribe import Transcriber, Transcript
from voice.turns import FRAME, FRAME_MS, Endpointer, InterruptionScreen, TurnEnded

BACKCHANNELS = ("Yeah.", "Okay.", "Mm-hmm.", "Uh-huh.", "Right.", "Sure.", "I see.", "Okay, yeah.", "Yes.", "Got it.")
INTERRUPTIONS = (
    "Wait, stop please.",
    "No, that is wrong.",
    "Hold on a second.",
    "Tell me about France instead.",
    "Can you repeat that?",
    "Sorry, I meant Paris.",
)

PROG = "python -m benchmarks.interruptions"
REPORT = "interruptions"  # docs/measurements/interruptions.md
COUGH = "(cough)"  # not Piper: a double burst sox synthesizes (cough())


@dataclass(frozen=True)
class PhraseSet:
    """Speech to say over a reply: what must not stop it and what must."""

    backchannels: tuple[str, ...]
    interruptions: tuple[str, ...]  # three words or more: stops it within 300 ms of the third word
    commands: tuple[str, ...]  # shorter, but said to stop it ("Stop.")


# The rule is tuned on "tuning" only; "heldout" checks that it was not fitted to those phrases.
SETS = {
    "tuning": PhraseSet(BACKCHANNELS, INTERRUPTIONS, ("No.", "Hold on.", "Cancel.", "Why not?")),
    "heldout": PhraseSet(
        (
            "Mhm.",
            "Yep.",
            "Uh huh, right.",
            "Cool.",
            "Alright.",
            "Oh, okay.",
            "Hmm.",
            "Ah, I see.",
            "Yeah, yeah.",
            "Makes sense.",
            COUGH,
        ),
        (
            "What about Germany then?",
            "No, I asked about Spain.",
            "Stop talking for a moment.",
            "Let me ask something else.",
            "That is not what I meant.",
            "Actually, skip that part.",
        ),
        ("Stop.", "Wait.", "No, no.", "Pause.", "Hang on.", "Why?"),
    ),
}
LEAD_S, TAIL_S = 0.5, 1.5


def third_word_end(text: str, rate: float) -> float:
    """Seconds into ``text``'s speech where its third word ends (Piper renders the three alone)."""
    words = text.split()
    return len(voice_speech(" ".join(words[:3]).rstrip(",.?!") + ".", piper_family(rate))) / SAMPLE_RATE


def cough(directory: Path, rate: float) -> np.ndarray:
    """A double cough-like burst from sox: pink noise plus a 140 Hz buzz through a vocal-tract-like
    band, sharp attack, each burst ``0.25 * rate`` s, 120 ms apart (``-R``: the same every run)."""
    path = directory / f"cough-{rate}.wav"
    burst = 0.25 * rate
    effects = ["band", "600", "900", "fade", "q", "0.005", f"{burst:.3f}", f"{0.8 * burst:.3f}", "gain", "-n", "-6"]
    subprocess.run(
        [
            *("sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path)),
            *("synth", f"{burst:.3f}", "pinknoise", "synth", f"{burst:.3f}", "sawtooth", "mix", "140"),
            *effects,
            *("pad", "0", "0.12", "repeat", "1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with wave.open(str(path), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def screen(
    audio: np.ndarray, whisper: Transcriber, rule: InterruptionScreen
) -> tuple[bool, str, Transcript | None, float | None]:
    """The session's rule on one utterance over a reply: (stopped, how, the transcript that decided,
    decision time in s from the start).  A look at the words so far is ready only once Whisper's
    measured time for it has passed in the audio, as in the session, where the speech goes on
    meanwhile."""
    # The turn keeps what the app's does after the speech (voice.turns.detection): Whisper hears the same audio.
    post_roll_ms = max(Settings().early_transcript_after_ms, FRAME_MS)
    endpointer = Endpointer(silence_ms=500, post_roll_ms=post_roll_ms)
    rule.speech_started(over_reply=True)
    check: tuple[int, Transcript, float] | None = None  # (utterance, words so far, ready at s)
    for offset in range(0, len(audio), FRAME):
        now_s = (offset + FRAME) / SAMPLE_RATE
        for event in endpointer.feed(audio[offset : offset + FRAME]):
            if isinstance(event, TurnEnded):  # it ended before it stopped the reply
                rule.needs_screening(busy=True)
                # The session's transcript is the early one, made during the pause (ready at the end).
                heard = whisper.transcribe(event.audio)
                if rule.ignored(heard):
                    return False, "ignored", heard, None
                return True, "words", heard, endpointer.samples_seen / SAMPLE_RATE
        stops = rule.confirms_barge_in(endpointer.voiced_ms, busy=True)
        if check is not None and now_s >= check[2]:
            stops = rule.checked(check[0], check[1], endpointer.voiced_ms, busy=True)
            check = None
        if stops:
            # The session then transcribes the whole turn: one that says nothing resumes the reply.
            heard = whisper.transcribe(audio)
            rule.barged_in(["the cut sentence"])
            resumed = rule.false_interruption(heard.no_speech, heard.text)
            return True, "voiced, resumed" if resumed else "voiced", heard, now_s
        looking = rule.wants_check(endpointer.voiced_ms, busy=True)
        if looking is not None:
            so_far = whisper.transcribe(endpointer.current_utterance())
            check = (looking, so_far, now_s + so_far.compute_ms / 1000)
    return False, "unheard", None, None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--set",
        choices=(*SETS, "all"),
        default="all",
        help="phrases to say over the reply: the ones the rule was tuned on, the held-out ones, or both "
        "(each reported on its own; default all)",
    )
    p.add_argument("--rates", default="0.85,1.0,1.2", help="Piper length_scales (default 0.85,1.0,1.2)")
    p.add_argument("--snr-db", default="20,10", help="noise levels besides clean (default 20,10)")
    p.add_argument(
        "--min-speech-ms",
        type=int,
        default=Settings().barge_in_min_speech_ms,
        help=f"BARGE_IN_MIN_SPEECH_MS to test (default {Settings().barge_in_min_speech_ms}, the app's)",
    )
    p.add_argument(
        "--min-logprob",
        type=float,
        default=Settings().barge_in_min_logprob,
        help=f"BARGE_IN_MIN_LOGPROB to test (default {Settings().barge_in_min_logprob}, the app's)",
    )
    p.add_argument("--json", type=Path, help="write every result here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here")
    return p.parse_args(argv)


def run(argv: Sequence[str]) -> InterruptionsRun:
    """Build the utterances, screen each; return the report data."""
    args = parse_args(argv)
    names = list(SETS) if args.set == "all" else [args.set]
    rates = [float(r) for r in args.rates.split(",")]
    snrs: list[float | None] = [None, *(float(s) for s in args.snr_db.split(",") if s.strip())]
    min_speech_ms = args.min_speech_ms
    start = start_run()
    whisper = Transcriber("", "cpu", "int8", "en")
    whisper.warm()
    results: list[Screened] = []
    with tempfile.TemporaryDirectory(prefix="warmvoice-interruptions-") as tmp:
        noise = pink_noise()
        for name in names:
            phrases = SETS[name]
            for kind, texts in (
                ("backchannel", phrases.backchannels),
                ("interruption", phrases.interruptions),
                ("command", phrases.commands),
            ):
                for text in texts:
                    for rate in rates:
                        speech = cough(Path(tmp), rate) if text == COUGH else voice_speech(text, piper_family(rate))
                        lead = np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)
                        clean = np.concatenate([lead, speech, np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])
                        third = third_word_end(text, rate) if kind == "interruption" else None
                        end_s = LEAD_S + len(speech) / SAMPLE_RATE
                        for snr in snrs:
                            audio = clean
                            if snr is not None:
                                voiced = speech[np.abs(speech) > ENERGY_THRESHOLD]
                                scale = float(np.sqrt(np.mean(voiced**2))) / 10 ** (snr / 20)
                                audio = np.clip(clean + noise[: len(clean)] * scale, -1, 1).astype(np.float32)
                            rule = InterruptionScreen(min_speech_ms, args.min_logprob)
                            stopped, how, heard, at_s = screen(audio, whisper, rule)
                            after_start = None if at_s is None else (at_s - LEAD_S) * 1000
                            after_end = None if at_s is None else (at_s - end_s) * 1000
                            after_third = None if at_s is None or third is None else (at_s - LEAD_S - third) * 1000
                            results.append(
                                Screened(
                                    name,
                                    text,
                                    kind,
                                    rate,
                                    snr,
                                    stopped,
                                    how,
                                    heard.text if heard else "",
                                    heard.avg_logprob if heard else None,
                                    after_start,
                                    after_end,
                                    after_third,
                                )
                            )
                progress(f"{name}: {kind}s screened")
    return InterruptionsRun(
        command=command_line(PROG, argv),
        machine=start.machine(PACKAGES),
        min_speech_ms=min_speech_ms,
        min_logprob=args.min_logprob,
        sets={name: summarise([r for r in results if r.set == name]) for name in names},
        results=results,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write the report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    report = run(argv)
    args = parse_args(argv)
    publish_run(REPORT, render_markdown(report), report, json_path=args.json, markdown_path=args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
