"""Interruption benchmark: do backchannels leave the reply alone, and do real interruptions stop it?

    python -m benchmarks.interruptions --markdown interruptions.md --json interruptions.json

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
import functools
import statistics
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import (
    MachineInfo,
    Table,
    command_line,
    load_average,
    machine_info,
    progress,
    write_json_file,
)
from benchmarks.machine_probe import run_probe
from benchmarks.report import publish
from benchmarks.turn_taking import PACKAGES
from benchmarks.turn_taking_summary import percentile
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


@dataclass(frozen=True)
class Screened:
    """What one utterance over the reply did."""

    set: str  # "tuning" or "heldout"
    text: str
    kind: str  # "backchannel", "interruption" (3+ words) or "command" (shorter)
    rate: float
    snr_db: float | None
    stopped: bool
    how: str  # "voiced" (long enough), "words" (transcribed, not a backchannel), "ignored", "unheard"
    heard: str  # the transcript that decided, when one was made
    logprob: float | None  # Whisper's avg_logprob for it
    stop_after_start_ms: float | None  # from the first loud sample to the barge-in decision
    stop_after_end_ms: float | None  # decision minus the end of the speech
    stop_after_third_word_ms: float | None  # decision minus the end of the third word (interruptions)


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


@dataclass(frozen=True)
class SetSummary:
    """One phrase set's figures (shares are 0-1; times in ms, None when nothing was measured)."""

    backchannels: int
    backchannels_not_stopping: float
    backchannels_resumed: int  # stopped it, then the resume re-spoke it (a false interruption)
    interruptions: int
    interruptions_stopping: float
    stop_after_start_ms_median: float | None
    stop_after_third_word_ms_median: float | None
    stop_after_third_word_ms_p90: float | None
    commands: int
    commands_stopping: float
    command_stop_after_end_ms_median: float | None
    command_stop_after_end_ms_p90: float | None


@dataclass(frozen=True)
class InterruptionsRun:
    """The whole run: where, with which rule settings, each set's figures and every utterance."""

    command: str
    machine: MachineInfo
    min_speech_ms: int
    min_logprob: float
    sets: dict[str, SetSummary]
    results: list[Screened]


def _share(hits: int, items: Sequence[Screened]) -> float:
    return hits / len(items) if items else 0.0


def summarise(results: Sequence[Screened]) -> SetSummary:
    """One set's figures."""
    back = [r for r in results if r.kind == "backchannel"]
    inter = [r for r in results if r.kind == "interruption"]
    commands = [r for r in results if r.kind == "command"]
    third = [r.stop_after_third_word_ms for r in inter if r.stop_after_third_word_ms is not None]
    after_end = [r.stop_after_end_ms for r in commands if r.stop_after_end_ms is not None]
    after_start = [r.stop_after_start_ms for r in inter if r.stop_after_start_ms is not None]
    return SetSummary(
        backchannels=len(back),
        backchannels_not_stopping=_share(sum(not r.stopped for r in back), back),
        backchannels_resumed=sum(r.how == "voiced, resumed" for r in back),
        interruptions=len(inter),
        interruptions_stopping=_share(sum(r.stopped for r in inter), inter),
        stop_after_start_ms_median=statistics.median(after_start) if after_start else None,
        stop_after_third_word_ms_median=percentile(third, 50),
        stop_after_third_word_ms_p90=percentile(third, 90),
        commands=len(commands),
        commands_stopping=_share(sum(r.stopped for r in commands), commands),
        command_stop_after_end_ms_median=percentile(after_end, 50),
        command_stop_after_end_ms_p90=percentile(after_end, 90),
    )


def run(argv: Sequence[str]) -> InterruptionsRun:
    """Build the utterances, screen each; return the report data."""
    args = parse_args(argv)
    names = list(SETS) if args.set == "all" else [args.set]
    rates = [float(r) for r in args.rates.split(",")]
    snrs: list[float | None] = [None, *(float(s) for s in args.snr_db.split(",") if s.strip())]
    min_speech_ms = args.min_speech_ms
    load_start = load_average()
    progress("timing the machine probe (CPU flags, Whisper, Piper, 20 tokens)...")
    probe = run_probe()
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
        machine=machine_info(load_start, PACKAGES, probe),
        min_speech_ms=min_speech_ms,
        min_logprob=args.min_logprob,
        sets={name: summarise([r for r in results if r.set == name]) for name in names},
        results=results,
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:+.0f}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def render_markdown(report: InterruptionsRun) -> str:
    """The summary per phrase set and every utterance that went the wrong way."""
    sets = report.sets
    table = Table(["measure", *sets])

    def row(label: str, cell: Callable[[SetSummary], str]) -> None:
        table.add(label, *(cell(s) for s in sets.values()))

    row("backchannels that do not stop the reply", lambda s: f"{_pct(s.backchannels_not_stopping)} of {s.backchannels}")
    row("backchannels that stop it, then resume it (false interruption)", lambda s: str(s.backchannels_resumed))
    row(
        "real interruptions (≥ 3 words) that stop it",
        lambda s: f"{_pct(s.interruptions_stopping)} of {s.interruptions}",
    )
    row("stop decision after the speech starts (median)", lambda s: f"{_ms(s.stop_after_start_ms_median)} ms")
    row(
        "stop decision after the end of the third word (median / p90; negative: before it ends)",
        lambda s: f"{_ms(s.stop_after_third_word_ms_median)} / {_ms(s.stop_after_third_word_ms_p90)} ms",
    )
    row("short commands (< 3 words) that stop it", lambda s: f"{_pct(s.commands_stopping)} of {s.commands}")
    row(
        "command stop decision after the speech ends (median / p90)",
        lambda s: f"{_ms(s.command_stop_after_end_ms_median)} / {_ms(s.command_stop_after_end_ms_p90)} ms",
    )
    wrong = [r for r in report.results if (r.kind == "backchannel") == r.stopped]
    lines = [
        "# Interruption benchmark",
        "",
        f"BARGE_IN_MIN_SPEECH_MS={report.min_speech_ms}, BARGE_IN_MIN_LOGPROB={report.min_logprob}.",
        "",
        table.markdown(),
        "",
        "Went the other way:",
        "",
        *(
            [
                f"- {r.set} {r.kind} {r.text!r} at rate {r.rate}, SNR {r.snr_db or 'clean'}: "
                f"{r.how} {r.heard!r} (avg_logprob {r.logprob})"
                for r in wrong
            ]
            or ["- none"]
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write the report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    report = run(argv)
    args = parse_args(argv)
    outputs = [(args.json, functools.partial(write_json_file, asdict(report)))]
    publish(
        REPORT, render_markdown(report), report.command, report.machine, outputs=outputs, markdown_path=args.markdown
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
