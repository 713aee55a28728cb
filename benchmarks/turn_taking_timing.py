"""What a complete utterance's end of turn is made of, in this run's timing (issue #22).

The text model needs the early transcript, which starts ``transcript_after_ms`` into the pause
and takes Whisper hundreds of ms.  So a turn the text model reads complete ends at the minimum
silence *or* when the transcript arrives, whichever is later; with every signal instant it ends
at the minimum silence.  For each named policy that reads the transcript, on the complete
utterances of a scope, this splits the end of turn into its parts: when the transcript (and the
text model's verdict on it) was ready after the true end of speech, and what ended the turn:

* ``min silence``: the verdict was "complete" and it was there before the minimum silence;
* ``transcript``: the verdict was "complete" and the turn waited for it to arrive;
* ``band`` / ``max wait``: the verdict was unsure (the hold, or Smart Turn in the band) / unfinished.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from benchmarks.turn_taking_data_shape import TimingRow, TurnTakingReport
from benchmarks.turn_taking_header import ms_text
from benchmarks.turn_taking_policies import scorer_of
from benchmarks.turn_taking_replay import Evidence, Outcome, Scorer, transcript_start
from benchmarks.turn_taking_summary import Scope, percentile, scopes
from voice.audio import SAMPLE_RATE
from voice.turns.policy import TurnPolicy

FRAME_SLACK_MS = 33.0  # one VAD frame: a measured end this much past the instant one waited on compute
SCOPES: tuple[Scope, ...] = (("heldout", "heldout"), ("tuning", "tuning"))
SCOPE_WORDS = {"heldout": "held-out", "tuning": "tuning"}


def timing_rows(
    named: dict[str, tuple[str, TurnPolicy]], results: dict[str, list[tuple[Evidence, Outcome]]]
) -> list[TimingRow]:
    """One row per named policy that reads the text model and scope of :data:`SCOPES`: the
    complete utterances' end of turn, split into its parts (see the module docstring)."""
    rows = []
    for name, (_, policy) in named.items():
        if not policy.uses_text_model or name not in results:
            continue
        for scope in SCOPES:
            members = [(ev, out) for ev, out in results[name] if ev.kind == "complete" and scope in scopes(ev, False)]
            if members:
                rows.append(_parts(name, scope, policy, members, scorer_of(name)))
    return rows


def _parts(
    name: str, scope: Scope, policy: TurnPolicy, members: Iterable[tuple[Evidence, Outcome]], scorer: Scorer
) -> TimingRow:
    ready, ended = [], {"min silence": 0, "transcript": 0, "band": 0, "max wait": 0}
    n = 0
    for ev, out in members:
        n += 1
        if not ev.pauses or out.delay_ms is None:
            ended["max wait"] += 1
            continue
        last = ev.pauses[-1]
        offset = (last.speech_end - ev.true_end) * 1000 / SAMPLE_RATE
        ready.append(offset + transcript_start(policy) + last.whisper_ms + last.text_model_ms)
        p = scorer(last.text)
        if p < policy.text_unfinished_below:
            ended["max wait"] += 1
        elif p < policy.text_complete_at:
            ended["band"] += 1
        elif out.delay_if_instant_ms is not None and out.delay_ms > out.delay_if_instant_ms + FRAME_SLACK_MS:
            ended["transcript"] += 1
        else:
            ended["min silence"] += 1
    return {
        "policy": name,
        "families": scope[0],
        "text": scope[1],
        "n": n,
        "transcript_ready_median_ms": statistics.median(ready) if ready else None,
        "transcript_ready_p90_ms": percentile(ready, 90),
        "ended_by": ended,
    }


def timing_section(report: TurnTakingReport) -> list[str]:
    """The report's section: per named policy and scope, when the transcript was ready and what ended the turn."""
    rows = report["timing"]
    if not rows:
        return []
    contenders = report["contenders"]
    lines = [
        "",
        "## What a complete utterance's end of turn is made of (this run's timing)",
        "",
        "The text model reads the early transcript, so a turn it reads complete ends at the minimum silence or when "
        "the transcript arrives, whichever is later.  Transcript ready: the early transcript and the text model's "
        "verdict, ms after the true end of speech (median / p90).  Ended by: *min silence* (read complete, the "
        "verdict there in time), *transcript* (read complete, the turn waited for the verdict), *band* (unsure: "
        "the hold, or Smart Turn in the band), *max wait* (read unfinished).",
        "",
        "| policy | scope | n | transcript ready: median / p90 ms "
        "| ended by: min silence / transcript / band / max wait |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        label = contenders[row["policy"]]["label"]
        ended = row["ended_by"]
        ready = " / ".join(ms_text(v) for v in (row["transcript_ready_median_ms"], row["transcript_ready_p90_ms"]))
        scope = f"{SCOPE_WORDS[row['families']]} families, {SCOPE_WORDS[row['text']]} sentences"
        lines.append(f"| {label} | {scope} | {row['n']} | {ready} | {' / '.join(str(v) for v in ended.values())} |")
    return lines
