"""Turn-taking benchmark: how often each end-of-turn detector cuts in, and how long it waits.

    python -m benchmarks.turn_taking --markdown turns.md --json turns.json --plot docs/turn-taking.png

The labelled set (:mod:`benchmarks.turn_taking_data`) is generated at run time: Piper speech
at three speaking rates, pauses of known length, steady pink noise from sox at 20 and 10 dB
SNR.  Each item is streamed through the app's own Silero endpointer frame by frame.  On every
pause that reaches ``SPECULATE_AFTER_MS`` the app's own evidence is computed once, as the
app does it: Whisper's early transcript and Smart Turn's probability, the two run side by
side in two threads, each timed.  Every detector and wait setting is then replayed over that
evidence with :func:`voice.turn_policy.decide` (the function the app calls), a signal counting
only from the moment it would have existed: ``SPECULATE_AFTER_MS`` + its measured compute time
after the voice stopped.  So one expensive pass serves every setting.

What it reports per detector and wait, per class:

* false cuts: items whose turn was ended inside one of their own pauses (the user had not
  finished); for the long reading, extra turns per 40 s of speech;
* late ends: the turn ended more than ``LATE_MS`` after the true end of speech (or never);
* median and p90 end-of-turn delay after the true end of speech (energy-based, from the
  item's labels, not the VAD's estimate);
* heard cut-ins (``--reply-json``): the false cuts whose reply the user would hear.  The app
  carries a turn on when the user speaks again before any of its reply has played
  (``CONTINUE_UNHEARD_TURNS``), so a cut is only heard when the reply's first audio (the
  decision plus the decision-to-first-audio time measured by the pipeline benchmark, whose
  JSON is given) comes before the voice does; a cut that is not heard is no cut, and the
  replay goes on through the item's later pauses, as the app does.

Approximation, stated in the report: after a (false) cut the app would start a new turn whose
later evidence covers only the rest of the speech; the replay keeps the evidence of the whole
utterance.  Decisions are taken every 32 ms VAD frame (the app also decides when a signal
arrives, and on 100 ms browser chunks).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from benchmarks.common import command_line, load_average, machine_info, progress, publish, write_json_file
from benchmarks.machine_probe import cpu_flags, run_probe
from benchmarks.turn_taking_data import (
    CLASS_LABELS,
    CLASSES,
    HESITATION_CLASSES,
    SAMPLE_RATE,
    TEXT_SETS,
    Item,
    labelled_set,
)
from voice.end_of_turn_text import load_text_end_of_turn
from voice.endpointing import FRAME, Endpointer
from voice.settings import Settings
from voice.smart_turn import smart_turn_model
from voice.transcribe import Transcriber
from voice.turn_detection import SPECULATE_AFTER_MS
from voice.turn_policy import TURN_DETECTOR_LABELS, TurnPolicy, decide, text_sounds_complete

LATE_MS = 1000.0
FRAME_MS = FRAME * 1000 / SAMPLE_RATE
WAITS_MS = (300, 500, 800, 1000, 1200, 1500, 2000)
FALSE_CUT_TARGET = 0.05  # the target for hesitation pauses up to 1 s
# Summary groups besides the classes: hesitation pauses up to 1 s (the target), all of them and
# split by how the unfinished part was voiced (cut from the whole sentence / said alone).
SHORT_PAUSES = ("pauses<=1s", "pauses<=1s, whole", "pauses<=1s, final")
# The curves: each detector with its wait swept, and the combined detector's other lever.
CURVES = {
    "combined": "audio model + text (hold swept)",
    "combined_min": "audio model + text (minimum silence swept)",
    **{d: label for d, label in TURN_DETECTOR_LABELS.items() if d != "combined"},
}
PACKAGES = ("faster-whisper", "onnxruntime", "piper-tts", "pipecat-ai")
T = TypeVar("T")


@dataclass(frozen=True)
class Pause:
    """One pause the endpointer saw (>= SPECULATE_AFTER_MS), and the evidence computed on it."""

    speech_end: int  # end of the last voiced frame (sample)
    length_ms: float  # silence until the voice came back (or the item ended)
    text: str
    text_complete: bool
    probability: float
    whisper_ms: float
    model_ms: float
    # How sure Whisper was of ``text`` (Transcript.avg_logprob; 0.0 in evidence written before it
    # was kept).  Kept for analysis: no detector uses it (README, Turn-taking).
    text_logprob: float = 0.0


@dataclass(frozen=True)
class Evidence:
    """An item's labels and every pause the detectors could end its turn on."""

    name: str
    kind: str
    rate: float
    snr_db: float | None
    true_end: int
    internal_ends: tuple[int, ...]  # where each internal pause's speech part ends
    speech_s: float
    pauses: tuple[Pause, ...]
    # Where the last part's speech starts: a turn ended on a pause before it (or on any pause
    # the voice came back after) is a cut; the last pause after it is the real end, even when
    # the VAD heard the last word end early (a soft "s" in noise).  None in evidence written
    # before this field existed (then: the last pause ending within 100 ms of the true end).
    last_part_start: int | None = None


@dataclass(frozen=True)
class Outcome:
    """One detector setting on one item."""

    cuts: int  # turns ended inside the item's own pauses
    delay_ms: float | None  # the final end after the true end of speech; None: never ended
    # When the LLM request can go: the turn is over *and* its transcript exists (Whisper starts
    # on the pause whatever the detector, so a fast detector still waits for it).
    reply_ms: float | None = None
    # The cuts had every signal been ready the moment it was asked for (an infinitely fast
    # machine).  A signal can only end a turn earlier, never later, so this is the most cuts
    # the detector's logic makes on this item on any machine: independent of load.
    cuts_if_instant: int = 0
    # The cuts whose reply would be heard before the user went on (None: no reply time given),
    # with the measured signal times and with instant signals (the most on any machine).
    heard_cuts: int | None = None
    heard_cuts_if_instant: int | None = None


def gather(
    item: Item, whisper: Transcriber, pool: concurrent.futures.Executor, transcript_after_ms: int = 0
) -> Evidence:
    """Stream ``item`` through the endpointer; compute the evidence on every pause, as the app does:
    Whisper on the audio up to ``transcript_after_ms`` into the pause (one VAD frame at least), the
    audio model on the audio up to ``SPECULATE_AFTER_MS`` into it."""
    model = smart_turn_model()
    endpointer = Endpointer(silence_ms=10_000, max_turn_s=600, post_roll_ms=SPECULATE_AFTER_MS)
    pauses: list[Pause] = []
    current: dict[str, object] | None = None
    last_silence = 0.0

    def close_current() -> None:
        if current is not None:
            pauses.append(Pause(length_ms=last_silence, **current))  # type: ignore[arg-type]

    for offset in range(0, len(item.audio), FRAME):
        endpointer.feed(item.audio[offset : offset + FRAME])
        pause = endpointer.pause
        if current is not None and (pause is None or pause[0] != current["speech_end"]):
            close_current()
            current = None
        if pause is None:
            continue
        last_silence = pause[1] * 1000 / SAMPLE_RATE
        if current is None and last_silence >= SPECULATE_AFTER_MS:
            heard = endpointer.utterance_if_ended_now(max(transcript_after_ms, int(FRAME_MS)))
            stt = pool.submit(_timed, whisper.transcribe, heard)
            turn = pool.submit(model.predict, endpointer.utterance_if_ended_now())
            (transcript, whisper_ms), prediction = stt.result(), turn.result()
            current = {
                "speech_end": pause[0],
                "text": transcript.text,
                "text_complete": text_sounds_complete(transcript.text),
                "text_logprob": transcript.avg_logprob,
                "probability": prediction.probability,
                "whisper_ms": whisper_ms,
                "model_ms": prediction.compute_ms,
            }
    close_current()
    return Evidence(
        item.name,
        item.kind,
        item.rate,
        item.snr_db,
        item.true_end,
        item.part_ends[:-1],
        item.speech_s,
        tuple(pauses),
        item.part_ends[-2] + int(item.pauses_s[-1] * SAMPLE_RATE) if len(item.part_ends) > 1 else 0,
    )


def _timed(fn: Callable[[np.ndarray], T], audio: np.ndarray) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn(audio)
    return result, (time.perf_counter() - started) * 1000


def transcript_start(policy: TurnPolicy) -> float:
    """Silence (ms) at which the app starts the early transcript: at the first silent VAD frame at
    the earliest.  (The evidence's transcript is of the audio up to ``SPECULATE_AFTER_MS`` into the
    pause; one started earlier hears a little less of the pause, not fewer words.)"""
    return max(float(policy.transcript_after_ms), FRAME_MS)


def ended_at(policy: TurnPolicy, pause: Pause, *, instant: bool = False) -> float | None:
    """Silence (ms) at which ``policy`` ends the turn on ``pause``, or None if the voice came back first.

    A signal counts from when the app starts it (the audio model at ``SPECULATE_AFTER_MS``, the
    transcript at the policy's ``transcript_after_ms``) plus its measured compute time, or
    (``instant``) from that start itself.
    """
    whisper_ms, model_ms = (0.0, 0.0) if instant else (pause.whisper_ms, pause.model_ms)
    # Judged now, from the stored transcript, so a replay measures the current word list and model
    # (its ~1 ms runs in the app's Whisper thread, so it is counted in whisper_ms's place).
    words_complete = text_sounds_complete(pause.text)
    text_p = load_text_end_of_turn().probability(pause.text)
    silence = 0.0
    while silence <= pause.length_ms:
        ready = silence >= transcript_start(policy) + whisper_ms
        text, text_probability = (words_complete, text_p) if ready else (None, None)
        probability = pause.probability if silence >= SPECULATE_AFTER_MS + model_ms else None
        if decide(policy, silence, text, probability, text_probability) is not None:
            return silence
        silence += FRAME_MS
    return None


def replay(policy: TurnPolicy, evidence: Evidence, reply_ms: float | None = None) -> Outcome:
    """Which pauses ``policy`` ends the turn on: cuts inside the item, and the final delay
    (with the signals' measured compute times), and the cuts with instant signals; with
    ``reply_ms`` (decision to first audio), also the cuts the user would hear."""
    measured = _walk(policy, evidence, instant=False)
    outcome = replace(measured, cuts_if_instant=_walk(policy, evidence, instant=True).cuts)
    if reply_ms is None:
        return outcome
    return replace(
        outcome,
        heard_cuts=_walk(policy, evidence, instant=False, reply_ms=reply_ms).cuts,
        heard_cuts_if_instant=_walk(policy, evidence, instant=True, reply_ms=reply_ms).cuts,
    )


def _walk(policy: TurnPolicy, evidence: Evidence, *, instant: bool, reply_ms: float | None = None) -> Outcome:
    cuts = 0
    tolerance = int(0.1 * SAMPLE_RATE)  # the VAD's end of a part vs the label's
    last_start = evidence.true_end - tolerance if evidence.last_part_start is None else evidence.last_part_start
    for index, pause in enumerate(evidence.pauses):
        at = ended_at(policy, pause, instant=instant)
        if at is None:
            continue
        # Inside the turn: the voice came back after this pause, or the last part had not begun.
        if index < len(evidence.pauses) - 1 or pause.speech_end < last_start:
            if reply_ms is not None and at + reply_ms >= pause.length_ms:
                continue  # the voice came back before the reply: the app carries the turn on
            cuts += 1
        else:
            offset = (pause.speech_end - evidence.true_end) * 1000 / SAMPLE_RATE
            whisper_ms = 0.0 if instant else pause.whisper_ms
            reply = offset + max(at, transcript_start(policy) + whisper_ms)
            return Outcome(cuts, offset + at, reply)  # the turn is over
    return Outcome(cuts, None)


def policies(
    min_silence_ms: int, hold_ms: int, max_wait_ms: int, transcript_after_ms: int
) -> list[tuple[str, int, TurnPolicy]]:
    """(curve, wait, policy) for every curve of :data:`CURVES` and swept wait.

    vad: the fixed silence; text: the word-list rule's silence (its short wait stays the
    earlier default, 300 ms); audio, combined and text_model(+audio): the hold (minimum silence and maximum wait
    fixed); combined_min: the combined detector's minimum silence, the wait when both signals
    say complete (hold fixed, raised to the minimum silence when that is longer).  Every
    detector starts the early transcript ``transcript_after_ms`` into the pause.
    """
    out = []
    after = {"transcript_after_ms": transcript_after_ms}
    for wait in WAITS_MS:
        out.append(("vad", wait, TurnPolicy("vad", min_silence_ms=min(wait, 300), silence_ms=wait, **after)))
        out.append(("text", wait, TurnPolicy("text", min_silence_ms=min(wait, 300), silence_ms=wait, **after)))
        for detector in ("audio", "combined", "text_model", "text_model+audio"):
            hold = max(wait, min_silence_ms)
            policy = TurnPolicy(detector, min_silence_ms=min_silence_ms, hold_ms=hold, max_wait_ms=max_wait_ms, **after)
            out.append((detector, wait, policy))
        if wait <= max_wait_ms:
            hold = max(hold_ms, wait)
            policy = TurnPolicy("combined", min_silence_ms=wait, hold_ms=hold, max_wait_ms=max_wait_ms, **after)
            out.append(("combined_min", wait, policy))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), None for no values."""
    return float(np.percentile(values, q)) if values else None


def summarise(results: dict[tuple[str, int], list[tuple[Evidence, Outcome]]]) -> list[dict[str, object]]:
    """One row per detector, wait and class (plus "hesitation ≤1 s", the issue's target class)."""
    rows: list[dict[str, object]] = []
    for (detector, wait), pairs in results.items():
        groups: dict[str, list[tuple[Evidence, Outcome]]] = {kind: [] for kind in (*CLASSES, *SHORT_PAUSES)}
        for ev, out in pairs:
            groups[ev.kind].append((ev, out))
            if ev.kind in HESITATION_CLASSES and ev.pauses and max(_pause_labels(ev)) <= 1.0:
                groups["pauses<=1s"].append((ev, out))
                groups["pauses<=1s, final" if ev.kind.endswith("_final") else "pauses<=1s, whole"].append((ev, out))
        for kind, members in groups.items():
            if not members:
                continue
            delays = [out.delay_ms for _, out in members if out.delay_ms is not None]
            replies = [out.reply_ms for _, out in members if out.reply_ms is not None]
            late = sum(1 for _, out in members if out.delay_ms is None or out.delay_ms > LATE_MS)
            row: dict[str, object] = {
                "detector": detector,
                "wait_ms": wait,
                "class": kind,
                "n": len(members),
                "false_cut_rate": sum(1 for _, out in members if out.cuts) / len(members),
                "false_cut_rate_instant": sum(1 for _, out in members if out.cuts_if_instant) / len(members),
                "heard_cut_rate": _share(members, "heard_cuts"),
                "heard_cut_rate_instant": _share(members, "heard_cuts_if_instant"),
                "late_rate": late / len(members),
                "median_ms": statistics.median(delays) if delays else None,
                "p90_ms": percentile(delays, 90),
                "reply_median_ms": statistics.median(replies) if replies else None,
            }
            if kind.startswith("reading"):
                speech_s = sum(ev.speech_s for ev, _ in members)
                row["extra_turns_per_40s"] = sum(out.cuts for _, out in members) * 40 / speech_s
                row["extra_turns_per_40s_instant"] = sum(out.cuts_if_instant for _, out in members) * 40 / speech_s
                if members[0][1].heard_cuts_if_instant is not None:
                    heard = sum(out.heard_cuts_if_instant or 0 for _, out in members)
                    row["heard_extra_turns_per_40s_instant"] = heard * 40 / speech_s
            rows.append(row)
    return rows


def _share(members: list[tuple[Evidence, Outcome]], field: str) -> float | None:
    """The share of ``members`` whose outcome ``field`` (a cut count) is non-zero; None if not replayed."""
    counts = [getattr(out, field) for _, out in members]
    return None if None in counts else sum(1 for c in counts if c) / len(members)


def _pause_labels(ev: Evidence) -> list[float]:
    # The hesitation's own pause length is in the item name ("... [0.9s] ...").
    start = ev.name.find("[")
    return [float(ev.name[start + 1 : ev.name.index("s]", start)])] if start >= 0 else [0.0]


def row_of(rows: list[dict[str, object]], detector: str, wait: int, kind: str) -> dict[str, object] | None:
    """The summary row for one detector, wait and class."""
    return next((r for r in rows if r["detector"] == detector and r["wait_ms"] == wait and r["class"] == kind), None)


def knee(rows: list[dict[str, object]], detector: str, metric: str = "false_cut_rate_instant") -> int | None:
    """The shortest wait whose ``metric`` on hesitations up to 1 s (by default the false cuts with
    every signal instant: the most the logic makes on any machine) meets the target."""
    for wait in WAITS_MS:
        row = row_of(rows, detector, wait, "pauses<=1s")
        if row is not None and row[metric] is not None and float(row[metric]) <= FALSE_CUT_TARGET:  # type: ignore[arg-type]
            return wait
    return None


@dataclass(frozen=True)
class ReplyTime:
    """How long after the end-of-turn decision the reply's first audio plays, from a pipeline run."""

    ms: float  # median over the turns below
    turns: int
    command: str
    date: str


def reply_time(pipeline: dict[str, Any]) -> ReplyTime:
    """The median decision-to-first-audio time of a pipeline benchmark's pre-warmed turns at no
    emulated distance (``first_audio_ms - endpoint_ms``, both measured from the end of speech)."""
    gaps = [
        float(turn["latency"]["first_audio_ms"]) - float(turn["latency"]["endpoint_ms"])
        for session in pipeline["sessions"]
        if session["strategy"] == "prewarmed" and not session["rtt_ms"]
        for turn in session["turns"]
        if turn["latency"].get("first_audio_ms") is not None and turn["latency"].get("endpoint_ms") is not None
    ]
    if not gaps:
        raise ValueError("the pipeline JSON has no pre-warmed turn at RTT 0 with a first audio")
    return ReplyTime(statistics.median(gaps), len(gaps), str(pipeline["command"]), str(pipeline["machine"]["date"]))


# ---- the report ---------------------------------------------------------------------------


def _pct(value: object) -> str:
    return "—" if value is None else f"{100 * float(value):.0f} %"  # type: ignore[arg-type]


def _per40(value: object) -> str:
    return "—" if value is None else f"{float(value):.1f}"  # type: ignore[arg-type]


def _ms(value: object) -> str:
    return "—" if value is None else f"{float(value):,.0f}"  # type: ignore[arg-type]


def render_markdown(report: dict[str, object]) -> str:
    """Tables per detector: false cuts, late ends, delays per class and wait."""
    rows: list[dict[str, object]] = report["rows"]  # type: ignore[assignment]
    m: dict[str, object] = report["machine"]  # type: ignore[assignment]
    lines = [
        "# Turn-taking benchmark",
        "",
        f"`{report['command']}`"
        + (f", replayed with `{report['replayed_with']}`" if report.get("replayed_with") else ""),
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} CPUs ({report['cpu_flags']}), Python {m['python']}, "
        f"{m['platform']}; load {m['load_start']} → {m['load_end']}; {m['date']}.",
        f"Machine probe: {report.get('probe_line') or 'not run'}.",
        f"Set: {report.get('text_set', 'tuning')}, {report['items']} items ({report['pauses']} pauses scored), "
        f"speaking rates "
        f"{report['rates']}, clean and {report['snrs']} dB SNR pink noise (sox).  Evidence compute on "
        f"a pause: Whisper median {_ms(report['whisper_ms_median'])} ms (p90 {_ms(report['whisper_ms_p90'])}), "
        f"Smart Turn median {_ms(report['model_ms_median'])} ms (p90 {_ms(report['model_ms_p90'])}), side by side.",
        f"Late end: more than {LATE_MS:.0f} ms after the true end of speech.  audio/combined: the wait is the hold "
        f"(one signal says unfinished), minimum silence {report['min_silence_ms']} ms, "
        f"maximum wait {report['max_wait_ms']} ms; minimum silence swept: the wait is the minimum silence "
        f"(both signals say complete), hold {report.get('hold_ms', '—')} ms.  Every detector starts the early "
        f"transcript {report.get('transcript_after_ms', 150)} ms into the pause.  "
        '"Transcript too": when the LLM request can go, i.e. the turn is over and Whisper\'s early transcript '
        "(started on the pause by every detector) is ready.",
        "",
        "## Headline: false cuts on hesitations (pauses ≤ 1 s) vs delay on complete questions",
        "",
        "False cuts twice: with each signal's compute time as measured in this run, and with every signal "
        "instant (the most the detector's logic cuts on any machine; a late signal can only end a turn later); "
        "the other cut columns are with instant signals too.",
        "",
        "| detector | wait ms | false cuts, pauses ≤ 1 s: this run | signals instant (any machine) "
        "| of which cut from the whole sentence | said alone | two sentences: cut after the first "
        "| reading: extra turns / 40 s (sentences / lines alone) "
        "| complete: median ms | p90 ms | late | transcript too: median ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for detector, wait, by_class in _curve_points(rows):
        short, comp = by_class["pauses<=1s"], by_class["complete"]
        lines.append(
            f"| {CURVES[detector]} | {wait} | {_pct(short['false_cut_rate'])} "
            f"| {_pct(short['false_cut_rate_instant'])} "
            f"| {_pct(by_class['pauses<=1s, whole'].get('false_cut_rate_instant'))} "
            f"| {_pct(by_class['pauses<=1s, final'].get('false_cut_rate_instant'))} "
            f"| {_pct(by_class['two_sentences'].get('false_cut_rate_instant'))} "
            f"| {_per40(by_class['reading'].get('extra_turns_per_40s_instant'))} "
            f"/ {_per40(by_class['reading_final'].get('extra_turns_per_40s_instant'))} "
            f"| {_ms(comp.get('median_ms'))} | {_ms(comp.get('p90_ms'))} | {_pct(comp.get('late_rate'))} "
            f"| {_ms(comp.get('reply_median_ms'))} |"
        )
    lines += _heard_table(report)
    lines += ["", "## Every class: median / p90 end-of-turn delay (ms) and late ends", ""]
    lines += [
        "| detector | wait ms | class | n | false cuts | signals instant | late | median ms | p90 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["class"] in SHORT_PAUSES:
            continue
        lines.append(
            f"| {row['detector']} | {row['wait_ms']} | {CLASS_LABELS[str(row['class'])]} | {row['n']} "
            f"| {_pct(row['false_cut_rate'])} | {_pct(row['false_cut_rate_instant'])} | {_pct(row['late_rate'])} "
            f"| {_ms(row['median_ms'])} | {_ms(row['p90_ms'])} |"
        )
    knees: dict[str, object] = report["knees"]  # type: ignore[assignment]
    lines += [
        "",
        "Knee (shortest wait with ≤ 5 % false cuts on hesitation pauses up to 1 s, signals instant): "
        + ", ".join(f"{d} {'none' if w is None else f'{w} ms'}" for d, w in knees.items())
        + ".",
        "",
        "Replay approximation: after a false cut the app would start a new turn whose later evidence covers only "
        "the rest of the speech; the replay keeps the whole utterance's evidence.",
    ]
    return "\n".join(lines) + "\n"


def _curve_points(rows: list[dict[str, object]]) -> Iterator[tuple[str, int, dict[str, dict[str, object]]]]:
    """Every detector and wait that has hesitations up to 1 s, with its rows by class (a class
    with no items: an empty row), in the order of the tables."""
    kinds = (*CLASSES, *SHORT_PAUSES)
    for detector in CURVES:
        for wait in WAITS_MS:
            if row_of(rows, detector, wait, "pauses<=1s") is None:
                continue
            yield detector, wait, {kind: row_of(rows, detector, wait, kind) or {} for kind in kinds}


def _heard_table(report: dict[str, object]) -> list[str]:
    """The false cuts the user would hear: the reply's first audio before the voice came back."""
    reply: dict[str, object] | None = report.get("reply")  # type: ignore[assignment]
    if reply is None:
        return []
    rows: list[dict[str, object]] = report["rows"]  # type: ignore[assignment]
    heard_knees: dict[str, object] = report["heard_knees"]  # type: ignore[assignment]
    lines = [
        "",
        "## Heard cut-ins: false cuts whose reply plays before the user goes on",
        "",
        f"The app carries a turn on when the user speaks again before any of its reply has played "
        f"(`CONTINUE_UNHEARD_TURNS`), so a false cut is heard only when the reply's first audio comes first: "
        f"{_ms(reply['ms'])} ms after the decision, the median of {reply['turns']} pre-warmed turns of "
        f"`{reply['command']}` ({reply['date']}).  A cut that is not heard is no cut: the replay goes on through "
        "the item's later pauses, as the app does.",
        "",
        "| detector | wait ms | heard cut-ins, pauses ≤ 1 s: this run | signals instant (any machine) "
        "| two sentences | reading: extra turns heard / 40 s (sentences / lines alone) "
        "| complete: median ms | p90 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for detector, wait, by_class in _curve_points(rows):
        short, comp = by_class["pauses<=1s"], by_class["complete"]
        lines.append(
            f"| {CURVES[detector]} | {wait} | {_pct(short['heard_cut_rate'])} "
            f"| {_pct(short['heard_cut_rate_instant'])} "
            f"| {_pct(by_class['two_sentences'].get('heard_cut_rate_instant'))} "
            f"| {_per40(by_class['reading'].get('heard_extra_turns_per_40s_instant'))} "
            f"/ {_per40(by_class['reading_final'].get('heard_extra_turns_per_40s_instant'))} "
            f"| {_ms(comp.get('median_ms'))} | {_ms(comp.get('p90_ms'))} |"
        )
    lines += [
        "",
        "Knee (shortest wait with ≤ 5 % heard cut-ins on hesitation pauses up to 1 s, signals instant): "
        + ", ".join(f"{d} {'none' if w is None else f'{w} ms'}" for d, w in heard_knees.items())
        + ".",
    ]
    return lines


def write_plot(report: dict[str, object], path: Path) -> None:
    """False cuts (hesitations up to 1 s, signals instant: independent of load) against the median delay on
    complete questions (measured: it waits for the transcript, so it depends on the machine), one curve each;
    beside it the cuts the user would hear (with ``--reply-json``), else against when the reply can start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[dict[str, object]] = report["rows"]  # type: ignore[assignment]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110, sharey=True)
    decision = "median end-of-turn decision on complete questions\n(ms after the true end of speech)"
    panels = [("median_ms", "false_cut_rate_instant", decision, "false cuts (turn ended inside a pause)")]
    if report.get("reply") is not None:
        heard = "heard cut-ins (the reply played before the user went on)"
        panels.append(("median_ms", "heard_cut_rate_instant", decision, heard))
    else:
        ready = "median moment the reply can start: turn over, transcript ready\n(ms after the true end)"
        panels.append(("reply_median_ms", "false_cut_rate_instant", ready, "false cuts"))
    for ax, (metric, cut_metric, xlabel, title) in zip(axes, panels, strict=True):
        for detector, label in CURVES.items():
            xs, ys, waits = [], [], []
            for wait in WAITS_MS:
                short, comp = row_of(rows, detector, wait, "pauses<=1s"), row_of(rows, detector, wait, "complete")
                if short is None or comp is None or comp[metric] is None:
                    continue
                xs.append(float(comp[metric]))  # type: ignore[arg-type]
                ys.append(100 * float(short[cut_metric]))  # type: ignore[arg-type]
                waits.append(wait)
            ax.plot(xs, ys, marker="o", label=label)
            for x, y, wait in zip(xs, ys, waits, strict=True):
                ax.annotate(str(wait), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.axhline(100 * FALSE_CUT_TARGET, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("hesitations ≤ 1 s (%),\nsignals instant: the most on any machine")
    axes[0].legend(fontsize=8)
    m: dict[str, object] = report["machine"]  # type: ignore[assignment]
    fig.suptitle(
        f"WarmVoice turn-taking (point labels: wait, ms) — {m['cpu_model']}, {m['cpu_count']} CPUs, "
        f"load {float(m['load_start'] or 0):.1f}→{float(m['load_end'] or 0):.1f}, {str(m['date'])[:10]}",  # type: ignore[arg-type]
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# ---- the run ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.turn_taking", description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="0.85,1.0,1.2", help="Piper length_scales (default 0.85,1.0,1.2)")
    p.add_argument("--snr-db", default="20,10", help="noise levels besides clean (default 20,10)")
    defaults = Settings()
    p.add_argument(
        "--min-silence-ms",
        type=int,
        default=defaults.min_end_of_turn_silence_ms,
        help=f"audio/combined minimum silence (default {defaults.min_end_of_turn_silence_ms}, the app's)",
    )
    p.add_argument(
        "--hold-ms",
        type=int,
        default=defaults.end_of_turn_hold_ms,
        help=f"combined hold while its minimum silence is swept (default {defaults.end_of_turn_hold_ms}, the app's)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=int,
        default=defaults.end_of_turn_max_wait_ms,
        help=f"audio/combined maximum wait (default {defaults.end_of_turn_max_wait_ms}, the app's)",
    )
    p.add_argument(
        "--set",
        dest="text_set",
        choices=tuple(TEXT_SETS),
        default="tuning",
        help="which sentences: tuning (the defaults were chosen on it) or heldout (never used to choose)",
    )
    p.add_argument(
        "--transcript-after-ms",
        dest="transcript_after",
        type=int,
        default=defaults.early_transcript_after_ms,
        help=f"when every detector starts the early transcript, ms into the pause "
        f"(default {defaults.early_transcript_after_ms}, the app's)",
    )
    p.add_argument("--limit", type=int, help="only the first N items (a quick smoke run)")
    p.add_argument("--classes", default=",".join(CLASSES), help=f"which classes (default {','.join(CLASSES)})")
    p.add_argument(
        "--reply-json",
        type=Path,
        help="a pipeline benchmark's --json (python -m benchmarks.pipeline): its median time from the end-of-turn "
        "decision to the reply's first audio (pre-warmed turns, no emulated distance) decides which cuts are heard",
    )
    p.add_argument("--evidence", type=Path, help="replay the evidence of an earlier run's --json (no audio, no models)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here")
    p.add_argument("--plot", type=Path, help="write the false cuts vs delay chart (PNG) here")
    return p.parse_args(argv)


def run(argv: Sequence[str]) -> dict[str, object]:
    """Generate the set, gather the evidence, replay every detector; return the report data."""
    args = parse_args(argv)
    rates = tuple(float(r) for r in args.rates.split(","))
    snrs = tuple(float(s) for s in args.snr_db.split(",") if s.strip())
    load_start = load_average()
    earlier: dict[str, Any] = {}
    if args.evidence is not None:
        earlier = json.loads(args.evidence.read_text(encoding="utf-8"))
        evidence = [_evidence_from(e) for e in earlier["evidence"]]
        progress(f"Replaying {len(evidence)} items' evidence from {args.evidence}")
    else:
        classes = tuple(args.classes.split(","))
        evidence = _stream_all(rates, snrs, args.limit, classes, args.text_set, args.transcript_after)
    reply = reply_time(json.loads(args.reply_json.read_text(encoding="utf-8"))) if args.reply_json else None
    results: dict[tuple[str, int], list[tuple[Evidence, Outcome]]] = {}
    for detector, wait, policy in policies(args.min_silence_ms, args.hold_ms, args.max_wait_ms, args.transcript_after):
        results[(detector, wait)] = [(ev, replay(policy, ev, reply.ms if reply else None)) for ev in evidence]
    rows = summarise(results)
    pauses = [p for ev in evidence for p in ev.pauses]
    # A replay reports the machine the evidence (and its compute times) was measured on.
    if args.evidence is not None:
        machine, probe_line = earlier["machine"], earlier.get("probe_line")
    else:
        probe = run_probe()
        machine, probe_line = asdict(machine_info(load_start, PACKAGES, probe)), probe.describe()
    return {
        "command": earlier["command"]
        if args.evidence is not None
        else command_line("python -m benchmarks.turn_taking", argv),
        "replayed_with": command_line("python -m benchmarks.turn_taking", argv) if args.evidence is not None else None,
        "machine": machine,
        "cpu_flags": earlier["cpu_flags"] if args.evidence is not None else " ".join(cpu_flags()),
        "probe_line": probe_line,
        "text_set": earlier.get("text_set", "tuning") if args.evidence is not None else args.text_set,
        "rates": ", ".join(f"{r:g}" for r in rates),
        "snrs": ", ".join(f"{s:g}" for s in snrs),
        "min_silence_ms": args.min_silence_ms,
        "hold_ms": args.hold_ms,
        "max_wait_ms": args.max_wait_ms,
        "transcript_after_ms": args.transcript_after,
        "items": len(evidence),
        "pauses": len(pauses),
        "whisper_ms_median": percentile([p.whisper_ms for p in pauses], 50),
        "whisper_ms_p90": percentile([p.whisper_ms for p in pauses], 90),
        "model_ms_median": percentile([p.model_ms for p in pauses], 50),
        "model_ms_p90": percentile([p.model_ms for p in pauses], 90),
        "knees": {d: knee(rows, d) for d in CURVES},
        "reply": None if reply is None else asdict(reply),
        "heard_knees": {d: knee(rows, d, "heard_cut_rate_instant") for d in CURVES} if reply else None,
        "rows": rows,
        "evidence": [asdict(ev) for ev in evidence],
    }


def _stream_all(
    rates: Sequence[float],
    snrs: Sequence[float],
    limit: int | None,
    classes: Sequence[str],
    text_set: str,
    transcript_after_ms: int,
) -> list[Evidence]:
    progress(f"Synthesizing the {text_set} set with Piper (noise from sox)…")
    items = [item for item in labelled_set(rates, snrs, TEXT_SETS[text_set]) if item.kind in classes][:limit]
    whisper = Transcriber("", "cpu", "int8", "en")
    whisper.warm()
    smart_turn_model()
    evidence: list[Evidence] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="evidence") as pool:
        for index, item in enumerate(items, 1):
            evidence.append(gather(item, whisper, pool, transcript_after_ms))
            if index % 25 == 0 or index == len(items):
                progress(f"{index}/{len(items)} items streamed")
    return evidence


def _evidence_from(data: dict[str, Any]) -> Evidence:
    pauses = tuple(Pause(**p) for p in data["pauses"])
    return Evidence(**{**data, "pauses": pauses, "internal_ends": tuple(data["internal_ends"])})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write what was asked for (Markdown to stdout otherwise)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    report = run(argv)
    outputs = [
        (args.json, functools.partial(write_json_file, report)),
        (args.plot, functools.partial(write_plot, report)),
    ]
    publish(render_markdown(report), outputs, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
