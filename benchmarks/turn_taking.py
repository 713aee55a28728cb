"""Turn-taking benchmark: how often each end-of-turn policy cuts in, and how long it waits, per voice.

    python -m benchmarks.turn_taking --reply-json pipeline.json --json turns.json --plot docs/turn-taking.png

(the report goes to docs/measurements/turn_taking.md through ``benchmarks.report.publish``.)

The labelled set (:mod:`benchmarks.turn_taking_data`) is generated at run time: the tuning and
the held-out sentences (:mod:`benchmarks.turn_taking_texts`) spoken by every chosen voice family
(:mod:`benchmarks.voice_families`: Piper at several settings, espeak-ng voices, sox pitch and
tempo, pink noise), with pauses of known length.  Each item streams through the app's own
Silero endpointer and the evidence on each pause is computed once
(:mod:`benchmarks.turn_taking_replay`); every policy is then replayed over it with the app's
``decide()``.  So one expensive pass serves every setting.

Two kinds of policy are scored.  The *curves*: each detector with its wait swept, summarised on
the tuning families + tuning sentences (where a setting may be chosen) and on the held-out
families + held-out sentences.  The *contenders*: the policies the issue compares (the default
before issue #22, and the policies built for it), summarised on every family too
(:mod:`benchmarks.turn_taking_summary`), with what their complete utterances' end of turn is made
of in this run's timing (:mod:`benchmarks.turn_taking_timing`).  The report and chart:
:mod:`benchmarks.turn_taking_report`.

What is counted per policy and scope, per class: false cuts (a turn ended inside one of the
item's own pauses; for the long reading, extra turns per 40 s of speech), with the signals'
measured compute times and with every signal instant (the most on any machine); heard cut-ins
(``--reply-json``: the false cuts whose reply would play before the user went on; the app
carries a turn on otherwise); the end-of-turn delay after the true end of speech on complete
utterances (median, p90, max, waits past 1.1 s).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.common import (
    MachineInfo,
    MachineProbe,
    command_line,
    load_average,
    machine_info,
    progress,
    write_json_file,
)
from benchmarks.machine_probe import cpu_flags, run_probe
from benchmarks.report import publish
from benchmarks.turn_taking_data import labelled_set
from benchmarks.turn_taking_data_shape import RunLine, TurnTakingReport
from benchmarks.turn_taking_policies import (
    CURVES,
    DEFAULT_BEFORE_22,
    contenders,
    curve_points,
    policies,
    scorer_of,
    tuned_contenders,
)
from benchmarks.turn_taking_replay import Evidence, Outcome, Scorer, evidence_from, gather, replay, text_probability
from benchmarks.turn_taking_report import render_markdown, write_plot
from benchmarks.turn_taking_summary import Results, Scope, knee, percentile, reply_time, summarise
from benchmarks.turn_taking_texts import CLASSES, HESITATION_PAUSES_S, TEXT_SETS
from benchmarks.turn_taking_timing import timing_rows
from benchmarks.voice_families import FAMILIES, VoiceFamily, select, split_of
from voice.transcribe import Transcriber
from voice.turns import TurnPolicy, smart_turn_model

PACKAGES = ("faster-whisper", "onnxruntime", "piper-tts", "pipecat-ai")
REPORT = "turn_taking"  # docs/measurements/turn_taking.md


def describe(voice: VoiceFamily) -> str:
    """A family's parameters in a few words."""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in voice.params)


# ---- the run ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.turn_taking", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--families",
        default="all",
        help="voice families: names and/or the splits tuning, heldout, all (default all; "
        f"families: {', '.join(f.name for f in FAMILIES)})",
    )
    p.add_argument(
        "--sets",
        default="matched",
        help="sentence sets: matched (default: each family speaks its own split's sentences, the tuning "
        "families the tuning sentences, the held-out families the held-out ones), or tuning, heldout, "
        "tuning,heldout (every family speaks each)",
    )
    p.add_argument("--classes", default=",".join(CLASSES), help=f"which classes (default {','.join(CLASSES)})")
    p.add_argument(
        "--hesitation-pauses",
        default="0.6,0.9",
        help="pauses (s) inside the unfinished-phrase hesitations (default %(default)s: the target's "
        "pauses up to 1 s that a 400 ms minimum silence can cut; the set has "
        f"{','.join(f'{s:g}' for s in HESITATION_PAUSES_S)})",
    )
    p.add_argument(
        "--max-wait-ms", type=int, default=DEFAULT_BEFORE_22.max_wait_ms, help="the longest wait (default %(default)s)"
    )
    p.add_argument(
        "--transcript-after-ms",
        dest="transcript_after",
        type=int,
        default=DEFAULT_BEFORE_22.transcript_after_ms,
        help="when the early transcript starts, ms into the pause (default %(default)s, the app's)",
    )
    p.add_argument("--limit", type=int, help="only the first N items of each family and set (a quick smoke run)")
    p.add_argument(
        "--reply-json",
        type=Path,
        help="a pipeline benchmark's --json (python -m benchmarks.pipeline): its median time from the end-of-turn "
        "decision to the reply's first audio (pre-warmed turns, no emulated distance) decides which cuts are heard",
    )
    p.add_argument(
        "--evidence",
        type=Path,
        nargs="+",
        help="replay the evidence of earlier runs' --json (no audio, no Whisper): several runs' files are "
        "replayed as one set (e.g. one run per family, each taking the benchmark lock briefly)",
    )
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here")
    p.add_argument("--plot", type=Path, help="write the false cuts vs delay chart (PNG) here")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    for name in args.sets.split(","):
        if name not in (*TEXT_SETS, "matched"):
            p.error(f"unknown sentence set {name!r}; choose from {', '.join(TEXT_SETS)}")
    for name in args.classes.split(","):
        if name not in CLASSES:
            p.error(f"unknown class {name!r}; choose from {', '.join(CLASSES)}")
    try:
        args.voices = select(args.families)
    except ValueError as exc:
        p.error(str(exc))
    return args


def run(argv: Sequence[str]) -> TurnTakingReport:
    """Generate the set, gather the evidence, replay every policy; return the report data."""
    args = parse_args(argv)
    started = time.monotonic()
    load_start = load_average()
    earlier: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    pauses_s = tuple(float(s) for s in args.hesitation_pauses.split(","))
    if args.evidence is not None:
        runs = [json.loads(path.read_text(encoding="utf-8")) for path in args.evidence]
        earlier = runs[0]
        evidence = [evidence_from(e) for run_data in runs for e in run_data["evidence"]]
        progress(f"Replaying {len(evidence)} items' evidence from {len(runs)} run(s)")
    else:
        progress("timing the machine probe (CPU flags, Whisper, Piper, 20 tokens)...")
        probe = run_probe()
        evidence = _stream_all(args, pauses_s)
    reply = reply_time(json.loads(args.reply_json.read_text(encoding="utf-8"))) if args.reply_json else None
    named = contenders(args.transcript_after)
    results: Results = {}
    for curve, wait, policy in policies(args.max_wait_ms, args.transcript_after):
        results[(curve, wait)] = _replayed(policy, evidence, reply.ms if reply else None)
    for name, (_, policy) in named.items():
        results[(name, 0)] = _replayed(policy, evidence, reply.ms if reply else None, scorer_of(name))
    rows = summarise(results, per_family=named)
    # The threshold chosen on the tuning scope, then replayed everywhere.  On false cuts, not heard
    # cut-ins: whether a cut is heard depends on the reply time, which a loaded machine stretches
    # (a 700 ms reply hides every cut in a 0.6-0.9 s pause, and any threshold would pass).
    choice_metric = "false_cut_rate_instant"
    tuned = tuned_contenders(rows, args.transcript_after, choice_metric)
    tuned_results = {(n, 0): _replayed(p, evidence, reply.ms if reply else None) for n, (_, p) in tuned.items()}
    rows += summarise(tuned_results, per_family=tuned)
    by_name = {name: results[(name, 0)] for name in named} | {name: tuned_results[(name, 0)] for name in tuned}
    named = {**named, **tuned}
    pauses = [p for ev in evidence for p in ev.pauses]
    used = [f for f in FAMILIES if any(ev.family == f.name for ev in evidence)]
    if args.evidence is not None:  # a replay reports the machine the evidence was measured on
        machine, probe_line, flags = earlier["machine"], earlier.get("probe_line"), earlier["cpu_flags"]
    else:
        machine, probe_line = asdict(machine_info(load_start, PACKAGES, probe)), probe.describe()
        flags = " ".join(cpu_flags())
    scopes: tuple[Scope, ...] = (("tuning", "tuning"), ("heldout", "heldout"))
    return {
        "command": earlier.get("command") or command_line("python -m benchmarks.turn_taking", argv),
        "replayed_with": command_line("python -m benchmarks.turn_taking", argv) if earlier else None,
        "machine": machine,
        "cpu_flags": flags,
        "probe_line": probe_line,
        "wall_s": sum(float(r.get("wall_s") or 0) for r in runs) if runs else time.monotonic() - started,
        # The process's CPU priority: 19 when run below everything else (then its timings are not comparable).
        "niceness": earlier.get("niceness") if runs else os.nice(0),
        # Each run the evidence came from: its command, time, load and probe (a replay of one run: that run).
        "runs": [_run_summary(r) for r in runs],
        "families": [{"name": f.name, "split": split_of(f), "describe": f"{f.kind}: {describe(f)}"} for f in used],
        "text_sets": ", ".join(sorted({ev.text_set for ev in evidence})),
        "classes": ", ".join(sorted({ev.kind for ev in evidence})),
        "hesitation_pauses": ", ".join(f"{s:g}" for s in pauses_s),
        "max_wait_ms": args.max_wait_ms,
        "transcript_after_ms": args.transcript_after,
        "items": len(evidence),
        "pauses": len(pauses),
        "whisper_ms_median": percentile([p.whisper_ms for p in pauses], 50),
        "whisper_ms_p90": percentile([p.whisper_ms for p in pauses], 90),
        "model_ms_median": percentile([p.model_ms for p in pauses], 50),
        "model_ms_p90": percentile([p.model_ms for p in pauses], 90),
        "text_model_ms_median": _round(percentile([p.text_model_ms for p in pauses], 50)),
        "text_model_ms_p90": _round(percentile([p.text_model_ms for p in pauses], 90)),
        "curve_points": curve_points(),
        "curves": CURVES,
        "choice_metric": choice_metric,
        "contenders": {n: {"label": label, "wait_ms": 0, "policy": asdict(p)} for n, (label, p) in named.items()},
        "knees": {
            c: {f"{s[0]}/{s[1]}": knee(rows, c, points, scope=s) for s in scopes}
            for c, points in curve_points().items()
        },
        "timing": timing_rows(named, by_name),
        "reply": None if reply is None else asdict(reply),
        "rows": rows,
        "evidence": [asdict(ev) for ev in evidence],
    }


def _run_summary(data: dict[str, Any]) -> RunLine:
    machine = data["machine"]
    return {
        "command": data["command"],
        "date": machine["date"],
        "load": f"{float(machine['load_start'] or 0):.1f} → {float(machine['load_end'] or 0):.1f}",
        "probe_line": data.get("probe_line"),
        "items": data["items"],
        "wall_s": data.get("wall_s"),
        "niceness": data.get("niceness"),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _replayed(
    policy: TurnPolicy, evidence: list[Evidence], reply_ms: float | None, scorer: Scorer = text_probability
) -> list[tuple[Evidence, Outcome]]:
    return [(ev, replay(policy, ev, reply_ms, scorer)) for ev in evidence]


def plan(voices: Sequence[VoiceFamily], sets: str) -> list[tuple[VoiceFamily, str]]:
    """(voice, sentence set) pairs to build: ``matched`` gives each family its own split's sentences."""
    if sets == "matched":
        return [(voice, split_of(voice)) for voice in voices]
    return [(voice, text_set) for text_set in sets.split(",") for voice in voices]


def _stream_all(args: argparse.Namespace, pauses_s: Sequence[float]) -> list[Evidence]:
    classes = tuple(args.classes.split(","))
    whisper = Transcriber("", "cpu", "int8", "en")
    whisper.warm()
    smart_turn_model()
    evidence: list[Evidence] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="evidence") as pool:
        for item in labelled_set(plan(args.voices, args.sets), classes, pauses_s, args.limit):
            evidence.append(gather(item, whisper, pool, args.transcript_after))
            if len(evidence) % 50 == 0:
                progress(f"{len(evidence)} items streamed ({item.family}, {item.text_set} sentences)")
    progress(f"{len(evidence)} items streamed")
    return evidence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write what was asked for (Markdown to stdout otherwise)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    report = run(argv)
    outputs = [
        (args.json, functools.partial(write_json_file, report)),
        (args.plot, functools.partial(write_plot, report)),
    ]
    # A replay is regenerated by its own command; the runs it replays are listed in the report.
    publish(
        REPORT,
        render_markdown(report),
        str(report.get("replayed_with") or report["command"]),
        machine_of(report["machine"]),
        outputs=outputs,
        markdown_path=args.markdown,
    )
    return 0


def machine_of(data: dict[str, Any]) -> MachineInfo:
    """The :class:`MachineInfo` a run recorded in its JSON (a replay reports the machine its
    evidence was measured on, not the one that replayed it)."""
    probe = data.get("probe")
    return MachineInfo(
        **{
            **data,
            "versions": dict(data.get("versions") or {}),
            "flags": tuple(data.get("flags") or ()),
            "probe": None if probe is None else MachineProbe(**{**probe, "flags": tuple(probe["flags"])}),
        }
    )


if __name__ == "__main__":
    sys.exit(main())
