"""The turn-taking report's opening lines: where the evidence came from, the set, the families.

``benchmarks.report.publish`` heads the report with the command, the machine and its probe; a
replay of several runs lists each run here, with its own load and probe.
"""

from __future__ import annotations

from benchmarks.turn_taking_data_shape import TurnTakingReport


def ms_text(value: float | str | None) -> str:
    """A ms (or s) figure as the report writes it: thousands separated, none as "—"."""
    return "—" if value is None else f"{float(value):,.0f}"


def header(report: TurnTakingReport) -> list[str]:
    """The title, the runs the evidence came from, the set, the evidence's cost, the reply time and
    the families (``benchmarks.report.publish`` adds the command, the machine and its probe)."""
    families = report["families"]
    reply = report["reply"]
    lines = [
        "# Turn-taking benchmark",
        "",
        *_runs_lines(report),
        f"- CPU flags: {report['cpu_flags']}; wall time {ms_text(report.get('wall_s'))} s.",
        f"- Set: {report['items']} items ({report['pauses']} pauses scored), sentences: {report['text_sets']}; "
        f"classes: {report['classes']}; hesitation pauses {report['hesitation_pauses']} s.",
        f"- Evidence on a pause (side by side): Whisper median {ms_text(report['whisper_ms_median'])} ms "
        f"(p90 {ms_text(report['whisper_ms_p90'])}), Smart Turn median {ms_text(report['model_ms_median'])} ms "
        f"(p90 {ms_text(report['model_ms_p90'])}); then the text model median {report['text_model_ms_median']} ms "
        f"(p90 {report['text_model_ms_p90']}).",
        "- Heard cut-ins: "
        + (
            f"the reply's first audio {ms_text(reply['ms'])} ms after the decision (median of {reply['turns']} "
            f"pre-warmed turns of `{reply['command']}`, {reply['date']}); a cut the user goes on from before "
            "that is carried on by the app (`CONTINUE_UNHEARD_TURNS`): no cut."
            if reply
            else "not computed (no --reply-json)."
        ),
        "- Voice families (split fixed in `benchmarks/voice_families.py` before measuring): "
        + "; ".join(f"{v['name']} ({v['split']}: {v['describe']})" for v in families)
        + ".",
        "",
    ]
    return lines


def _runs_lines(report: TurnTakingReport) -> list[str]:
    """The runs a replay's evidence came from, when there were several."""
    runs = report["runs"]
    if len(runs) < 2:
        return []
    return [f"- Evidence from {len(runs)} runs:"] + [
        f"  - `{r['command']}`: {r['date']}, load {r['load']}, {r['items']} items, {ms_text(r['wall_s'])} s; "
        + (
            "**outside the benchmark lock at CPU priority nice 19** (its compute times are not comparable; its cuts "
            "and its delays with signals instant are: same audio, same models); "
            if r.get("niceness")
            else "under the benchmark lock; "
        )
        + f"probe: {r['probe_line']}"
        for r in runs
    ]
