"""The turn-taking benchmark's summaries: replayed outcomes become rates, delays and knees.

Every row is one policy (a curve and its wait) on one *scope* and one class.  A scope is a
group of voice families and a text set: ``("tuning", "tuning")`` is the tuning families on
the tuning sentences (where settings may be chosen), ``("heldout", "heldout")`` the held-out
families on the held-out sentences (the issue's Targets); a family's name in place of the
split is that family alone.  Curves get the split scopes; the named contenders also get every
family, so each metric is reported per family.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.turn_taking_replay import Evidence, Outcome
from benchmarks.turn_taking_texts import CLASSES, HESITATION_CLASSES
from benchmarks.voice_families import family, split_of

LATE_MS = 1000.0
# The target: no complete utterance waits past this unless the text model says unfinished.
LONG_WAIT_MS = 1100.0
FALSE_CUT_TARGET = 0.05  # the target for hesitation pauses up to 1 s
# Summary groups besides the classes: hesitation pauses up to 1 s (the target), all of them and
# split by how the unfinished part was voiced (cut from the whole sentence / said alone).
SHORT_PAUSES = ("pauses<=1s", "pauses<=1s, whole", "pauses<=1s, final")
GROUPS = (*CLASSES, *SHORT_PAUSES)
Scope = tuple[str, str]  # (families: "tuning" / "heldout" / a family's name, text set: "tuning" / "heldout" / "all")
Results = dict[tuple[str, int], list[tuple[Evidence, Outcome]]]
# One summary row: its keys (curve, wait_ms, families, text, class) and its metrics (counts, rates, ms; None: none).
Row = dict[str, float | int | str | None]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), None for no values."""
    return float(np.percentile(values, q)) if values else None


def scopes(ev: Evidence, per_family: bool) -> list[Scope]:
    """The scopes ``ev`` counts in: its split on its text set, on all text; with ``per_family``
    its own family on its text set and on all text."""
    split = split_of(family(ev.family))
    out: list[Scope] = [(split, ev.text_set), (split, "all")]
    if per_family:
        out += [(ev.family, ev.text_set), (ev.family, "all")]
    return out


def summarise(results: Results, per_family: Iterable[str] = ()) -> list[Row]:
    """One row per curve, wait, scope and group (a class, or hesitation pauses up to 1 s); the
    curves in ``per_family`` get a row per family too."""
    wide = set(per_family)
    rows: list[Row] = []
    for (curve, wait), pairs in results.items():
        grouped: dict[tuple[Scope, str], list[tuple[Evidence, Outcome]]] = {}
        for ev, out in pairs:
            for scope in scopes(ev, curve in wide):
                for group in _groups(ev):
                    grouped.setdefault((scope, group), []).append((ev, out))
        for ((families, text), group), members in grouped.items():
            row: Row = {"curve": curve, "wait_ms": wait, "families": families, "text": text}
            rows.append({**row, "class": group, **_metrics(group, members)})
    return rows


def _groups(ev: Evidence) -> list[str]:
    groups = [ev.kind]
    if ev.kind in HESITATION_CLASSES and ev.pauses and max(pause_labels(ev)) <= 1.0:
        groups += ["pauses<=1s", "pauses<=1s, final" if ev.kind.endswith("_final") else "pauses<=1s, whole"]
    return groups


def _metrics(group: str, members: list[tuple[Evidence, Outcome]]) -> Row:
    delays = [out.delay_ms for _, out in members if out.delay_ms is not None]
    instant = [out.delay_if_instant_ms for _, out in members if out.delay_if_instant_ms is not None]
    replies = [out.reply_ms for _, out in members if out.reply_ms is not None]
    late = sum(1 for _, out in members if out.delay_ms is None or out.delay_ms > LATE_MS)
    long = [out for _, out in members if out.delay_ms is None or out.delay_ms > LONG_WAIT_MS]
    row: Row = {
        "n": len(members),
        "false_cut_rate": sum(1 for _, out in members if out.cuts) / len(members),
        "false_cut_rate_instant": sum(1 for _, out in members if out.cuts_if_instant) / len(members),
        "heard_cut_rate": _share(members, "heard_cuts"),
        "heard_cut_rate_instant": _share(members, "heard_cuts_if_instant"),
        "late_rate": late / len(members),
        "median_ms": statistics.median(delays) if delays else None,
        "p90_ms": percentile(delays, 90),
        "max_ms": max(delays) if len(delays) == len(members) and delays else None,
        "median_ms_instant": statistics.median(instant) if instant else None,
        "p90_ms_instant": percentile(instant, 90),
        "reply_median_ms": statistics.median(replies) if replies else None,
        # Waits past 1.1 s, and those of them the text model did not call unfinished (the target: none).
        "long_waits": len(long),
        "long_waits_not_unfinished": sum(1 for out in long if not out.end_read_unfinished),
        "long_waits_instant": sum(
            1 for _, out in members if out.delay_if_instant_ms is None or out.delay_if_instant_ms > LONG_WAIT_MS
        ),
    }
    if group.startswith("reading"):
        speech_s = sum(ev.speech_s for ev, _ in members)
        row["extra_turns_per_40s"] = sum(out.cuts for _, out in members) * 40 / speech_s
        row["extra_turns_per_40s_instant"] = sum(out.cuts_if_instant for _, out in members) * 40 / speech_s
        if members[0][1].heard_cuts_if_instant is not None:
            heard = sum(out.heard_cuts_if_instant or 0 for _, out in members)
            row["heard_extra_turns_per_40s_instant"] = heard * 40 / speech_s
    return row


def _share(members: list[tuple[Evidence, Outcome]], field: str) -> float | None:
    """The share of ``members`` whose outcome ``field`` (a cut count) is non-zero; None if not replayed."""
    counts = [getattr(out, field) for _, out in members]
    return None if None in counts else sum(1 for c in counts if c) / len(members)


def pause_labels(ev: Evidence) -> list[float]:
    """The hesitation's own pause length, from the item name ("... [0.9s] ...")."""
    start = ev.name.find("[")
    return [float(ev.name[start + 1 : ev.name.index("s]", start)])] if start >= 0 else [0.0]


def row_of(rows: list[Row], curve: str, wait: int, group: str, scope: Scope = ("tuning", "tuning")) -> Row | None:
    """The summary row for one curve, wait, group and scope."""
    families, text = scope
    return next(
        (
            r
            for r in rows
            if r["curve"] == curve
            and r["wait_ms"] == wait
            and r["class"] == group
            and r["families"] == families
            and r["text"] == text
        ),
        None,
    )


def knee(
    rows: list[Row],
    curve: str,
    waits: Sequence[int],
    metric: str = "false_cut_rate_instant",
    scope: Scope = ("tuning", "tuning"),
) -> int | None:
    """The shortest wait whose ``metric`` on hesitations up to 1 s (by default the false cuts with
    every signal instant: the most the logic makes on any machine) meets the target, on ``scope``."""
    for wait in waits:
        row = row_of(rows, curve, wait, "pauses<=1s", scope)
        value = None if row is None else row[metric]
        if value is not None and float(value) <= FALSE_CUT_TARGET:
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
    emulated distance (``first_audio_ms - endpoint_ms``, both measured from the end of speech), of
    the app as configured (a levers run's "off" sessions are not the app)."""
    gaps = [
        float(turn["latency"]["first_audio_ms"]) - float(turn["latency"]["endpoint_ms"])
        for session in pipeline["sessions"]
        if session["strategy"] == "prewarmed" and not session["rtt_ms"] and session.get("levers", "on") == "on"
        for turn in session["turns"]
        if turn["latency"].get("first_audio_ms") is not None and turn["latency"].get("endpoint_ms") is not None
    ]
    if not gaps:
        raise ValueError("the pipeline JSON has no pre-warmed turn at RTT 0 with a first audio")
    return ReplyTime(statistics.median(gaps), len(gaps), str(pipeline["command"]), str(pipeline["machine"]["date"]))
