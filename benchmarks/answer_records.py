"""What ``python -m benchmarks.answer_eval`` records: every answer as judged, and each run's summary.

:func:`record` judges one turn's result by the panel's rules (:mod:`benchmarks.answer_panel`);
:func:`summarise` gives a mode's score, word error rate and latency medians.  Nothing here runs a
session: :mod:`benchmarks.answer_eval` does.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.answer_panel import Exchange, PanelQuestion, judge
from benchmarks.common import MachineInfo
from benchmarks.word_error_rate import word_error_rate
from voice.headless import TurnResult


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
