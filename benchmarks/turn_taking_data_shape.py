"""The turn-taking report's data, as ``run`` builds it and ``--json`` writes it: typed, so the
report's sections read it without casts.

TypedDicts rather than dataclasses: the report is written as JSON as it is (the key order is the
file's), and a replay reads the runs' JSON back in the same shape.
"""

from __future__ import annotations

from typing import Any, TypedDict

from benchmarks.turn_taking_summary import Row


class TimingRow(TypedDict):
    """One named policy on one scope: its complete utterances' end of turn, split into its parts."""

    policy: str
    families: str
    text: str
    n: int
    transcript_ready_median_ms: float | None
    transcript_ready_p90_ms: float | None
    ended_by: dict[str, int]  # what ended the turn -> how many turns it ended


class RunLine(TypedDict):
    """One run a replay's evidence came from."""

    command: str
    date: str
    load: str
    probe_line: str | None
    items: int
    wall_s: float | None
    niceness: int | None


class FamilyLine(TypedDict):
    """One voice family the evidence has, with its split."""

    name: str
    split: str
    describe: str


class Contender(TypedDict):
    """One named policy: its label in the tables, its wait and its settings."""

    label: str
    wait_ms: int
    policy: dict[str, Any]  # dataclasses.asdict of its TurnPolicy


class TurnTakingReport(TypedDict):
    """Everything the benchmark measured and the report renders (and ``--json`` writes)."""

    command: str
    replayed_with: str | None
    machine: dict[str, Any]  # dataclasses.asdict of a MachineInfo (see ``machine_of``)
    cpu_flags: str
    probe_line: str | None
    wall_s: float
    niceness: int | None
    runs: list[RunLine]
    families: list[FamilyLine]
    text_sets: str
    classes: str
    hesitation_pauses: str
    max_wait_ms: int
    transcript_after_ms: int
    items: int
    pauses: int
    whisper_ms_median: float | None
    whisper_ms_p90: float | None
    model_ms_median: float | None
    model_ms_p90: float | None
    text_model_ms_median: float | None
    text_model_ms_p90: float | None
    curve_points: dict[str, list[int]]
    curves: dict[str, str]
    choice_metric: str
    contenders: dict[str, Contender]
    knees: dict[str, dict[str, int | None]]  # curve -> "families/text" scope -> its knee's wait
    timing: list[TimingRow]
    reply: dict[str, Any] | None  # dataclasses.asdict of a ReplyTime
    rows: list[Row]
    evidence: list[dict[str, Any]]  # dataclasses.asdict of each Evidence
