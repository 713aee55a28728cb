"""What ``python -m benchmarks.interruptions`` records and reports: every utterance screened over
the reply, each phrase set's figures, and the Markdown (the summary per set and every utterance
that went the other way; :func:`benchmarks.report.publish` heads it with the command and machine).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.common import MachineInfo
from benchmarks.report import Table
from benchmarks.turn_taking_summary import percentile


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
