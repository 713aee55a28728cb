"""The Markdown report of ``python -m benchmarks.stt_engines`` (see that module for what is measured)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from benchmarks.stt_engines_records import Heard, SttEnginesRun
from benchmarks.stt_incremental import render_incremental
from benchmarks.stt_set import HARD_PREFIXES, Clip, median
from voice.recognizer import engine_label

# Length bins (s of clip) for compute against clip length.
LENGTH_BINS = ((0.0, 1.5), (1.5, 2.5), (2.5, 3.5), (3.5, 4.5), (4.5, 6.0), (6.0, 60.0))
# A Whisper option is adopted if it lowers the WER on the tuning families without costing more than
# this share of extra compute (median), or saves at least OPTION_MIN_SAVING of the compute for at most
# OPTION_MAX_EXTRA_WER points of tuning WER; held-out families are shown, never used to choose.
OPTION_MAX_EXTRA_COMPUTE = 0.10
OPTION_MIN_SAVING = 0.20
OPTION_MAX_EXTRA_WER = 0.5


def _wer(rows: Sequence[Heard]) -> float | None:
    words = sum(r.words for r in rows)
    return None if not words else 100.0 * sum(r.errors for r in rows) / words


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def is_hard(family: str) -> bool:
    """The issue's hard families: espeak voices and 10 dB noise."""
    return family.startswith(HARD_PREFIXES)


def _groups(clips: Sequence[Clip]) -> list[tuple[str, Callable[[Clip], bool]]]:
    families = list(dict.fromkeys(c.family for c in clips))
    groups: list[tuple[str, Callable[[Clip], bool]]] = [
        (f"{name} ({next(c.split for c in clips if c.family == name)})", _family_is(name)) for name in families
    ]
    groups += [
        ("**tuning families**", lambda c: c.split == "tuning"),
        ("**held-out families**", lambda c: c.split == "heldout"),
        ("**hard: espeak voices + 10 dB noise**", lambda c: is_hard(c.family)),
        ("**short questions**", lambda c: c.length == "short"),
        ("**long questions**", lambda c: c.length == "long"),
        ("**all**", lambda c: True),
    ]
    return groups


def _family_is(name: str) -> Callable[[Clip], bool]:
    return lambda clip: bool(clip.family == name)


def _by_variant(report: SttEnginesRun) -> dict[str, list[Heard]]:
    out: dict[str, list[Heard]] = {v: [] for v in report.variants}
    for row in report.heard:
        out[row.variant].append(row)
    return out


def wer_table(report: SttEnginesRun, names: Sequence[str]) -> list[str]:
    """WER per family (and per group of families) for each variant in ``names``, on the clips every
    one of them heard."""
    clips, heard = report.clips, _by_variant(report)
    common = set.intersection(*({r.clip for r in heard[n]} for n in names))
    lines = ["| Family (split) | clips | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for label, chosen in _groups(clips):
        picked = {i for i, c in enumerate(clips) if chosen(c) and i in common}
        if not picked:
            continue
        cells = [_pct(_wer([r for r in heard[n] if r.clip in picked])) for n in names]
        lines.append(f"| {label} | {len(picked)} | " + " | ".join(cells) + " |")
    return lines


def compute_table(report: SttEnginesRun, names: Sequence[str]) -> list[str]:
    """Median compute per variant, short and long questions, on the clips every one of them heard."""
    clips, heard = report.clips, _by_variant(report)
    common = set.intersection(*({r.clip for r in heard[n]} for n in names))
    lines = ["| Variant | median compute, short | long | all | p90 all |", "|---|---|---|---|---|"]
    for name in names:
        rows = [r for r in heard[name] if r.clip in common]
        by = {k: [r.compute_ms for r in rows if clips[r.clip].length == k] for k in ("short", "long")}
        every = sorted(r.compute_ms for r in rows)
        p90 = every[min(len(every) - 1, int(0.9 * len(every)))] if every else None
        lines.append(
            f"| {name} | {_ms(median(by['short']))} ms | {_ms(median(by['long']))} ms | "
            f"{_ms(median(every))} ms | {_ms(p90)} ms |"
        )
    return lines


def length_table(report: SttEnginesRun, names: Sequence[str]) -> list[str]:
    """Compute against the clip's length, per engine, with a least-squares line."""
    clips, heard = report.clips, _by_variant(report)
    lines = ["| Clip length | clips | " + " | ".join(f"{n} median" for n in names) + " |"]
    lines.append("|---|---|" + "---|" * len(names))
    for low, high in LENGTH_BINS:
        inside = {i for i, c in enumerate(clips) if low <= c.audio_s < high}
        if not inside:
            continue
        cells = [_ms(median([r.compute_ms for r in heard[n] if r.clip in inside])) + " ms" for n in names]
        lines.append(f"| {low:g}–{high:g} s | {len(inside)} | " + " | ".join(cells) + " |")
    fits = []
    for name in names:
        xs = [clips[r.clip].audio_s for r in heard[name]]
        ys = [r.compute_ms for r in heard[name]]
        if len(set(xs)) > 1:
            n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
            fits.append(f"{name}: {my - slope * mx:,.0f} ms + {slope:,.0f} ms per second of clip ({n} clips)")
    return [*lines, "", "Least-squares line: " + "; ".join(fits) + "."]


def options_verdicts(report: SttEnginesRun) -> list[str]:
    """Each Whisper option against the app's, chosen on the tuning families only."""
    clips, heard = report.clips, _by_variant(report)
    tuning = {i for i, c in enumerate(clips) if c.split == "tuning"}
    base_wer = _wer([r for r in heard["whisper"] if r.clip in tuning])
    base_ms = median([r.compute_ms for r in heard["whisper"] if r.clip in tuning])
    lines = []
    for name in (v for v in report.variants if v.startswith("whisper ")):
        wer = _wer([r for r in heard[name] if r.clip in tuning])
        ms = median([r.compute_ms for r in heard[name] if r.clip in tuning])
        if wer is None or base_wer is None or ms is None or base_ms is None:
            verdict = "keep the app's"
        else:
            better = wer < base_wer and ms <= base_ms * (1 + OPTION_MAX_EXTRA_COMPUTE)
            cheaper = ms <= base_ms * (1 - OPTION_MIN_SAVING) and wer <= base_wer + OPTION_MAX_EXTRA_WER
            verdict = "adopt" if better or cheaper else "keep the app's"
        why = f"tuning WER {_pct(wer)} vs {_pct(base_wer)}, median compute {_ms(ms)} vs {_ms(base_ms)} ms"
        lines.append(f"- **{name}**: {verdict} ({why}).")
    return lines


def confidence_lines(report: SttEnginesRun) -> list[str]:
    """Median avg_logprob of clips heard right and heard wrong, per engine (the interruption screen's
    BARGE_IN_MIN_LOGPROB was set on Whisper's)."""
    heard = _by_variant(report)
    lines = []
    for name in ("whisper", "moonshine"):
        right = [r.logprob for r in heard.get(name, []) if r.errors == 0 and r.text]
        wrong = [r.logprob for r in heard.get(name, []) if r.errors > 0 and r.text]
        lines.append(
            f"- {engine_label(name)}: median avg_logprob {_num(median(right))} on clips heard without an error "
            f"({len(right)}), {_num(median(wrong))} on clips with errors ({len(wrong)})."
        )
    return lines


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def misheard(report: SttEnginesRun, limit: int = 12) -> list[str]:
    """Some of what the engines misheard on the hard families (the first ``limit`` clips with an error)."""
    clips, heard = report.clips, _by_variant(report)
    lines = ["| Family | said | Whisper heard | Moonshine heard |", "|---|---|---|---|"]
    shown = 0
    for index, clip in enumerate(clips):
        if not is_hard(clip.family):
            continue
        w = next(r for r in heard["whisper"] if r.clip == index)
        m = next(r for r in heard["moonshine"] if r.clip == index)
        if w.errors or m.errors:
            lines.append(f"| {clip.family} | {clip.text} | {w.text} | {m.text} |")
            shown += 1
            if shown == limit:
                break
    return lines


def render_markdown(report: SttEnginesRun) -> str:
    """The whole report (publish() heads it with the command, the machine and the probe)."""
    engines = ["whisper", "moonshine"]
    clips = report.clips
    lines = [
        "# Speech recognizers, side by side",
        "",
        f"Wall time: {report.seconds:.0f} s.",
        "",
        f"Set: {len(clips)} clips ({len({c.family for c in clips})} voice families × "
        f"{len({c.text for c in clips})} questions, short and long), "
        f"{sum(c.audio_s for c in clips):.0f} s of audio. Engines: "
        + ", ".join(f"`{e}` = {engine_label(e)}" for e in engines)
        + " (the app's settings for each).",
        "",
        "## Word error rate",
        "",
        *wer_table(report, engines),
        "",
        "## Compute",
        "",
        *compute_table(report, engines),
        "",
        "### Against the clip's length",
        "",
        *length_table(report, engines),
        "",
        "## Memory",
        "",
    ]
    lines.append(
        "Peak RSS (VmHWM) of a child process with both engines installed and imported and one loaded, with Silero "
        "VAD, Smart Turn and the Piper voice as the app loads them (the embedded LLM server is a process of its own, "
        "not counted), after each step:"
    )
    lines.append("")
    for engine, steps in report.rss_mb.items():
        shown = "failed" if not isinstance(steps, dict) else "; ".join(f"{k} {v:,.0f} MB" for k, v in steps.items())
        lines.append(f"- {engine_label(engine)}: {shown}.")
    if not report.rss_mb:
        lines.append("- not measured in this run.")
    lines += ["", "## Confidence", "", *confidence_lines(report), "", "## Misheard on the hard families", ""]
    lines += misheard(report)
    if any(v.startswith("whisper ") for v in report.variants):
        names = [v for v in report.variants if v.startswith("whisper")]
        lines += ["", "## Whisper's own options", "", "Each option changed alone from the app's."]
        lines += ["", *wer_table(report, names), "", *compute_table(report, names)]
        lines += ["", "Chosen on the tuning families only:", "", *options_verdicts(report)]
    if report.incremental:
        lines += ["", *render_incremental(report.incremental)]
    return "\n".join(lines) + "\n"
