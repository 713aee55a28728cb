"""What ``python -m benchmarks.pipeline`` measured, and its renderings: Markdown, JSON and a PNG chart.

The records (:mod:`benchmarks.pipeline_records`) hold every turn as the sessions measured it; the
functions here summarise them
(medians with min–max per strategy and distance), check issue #8's memory bar and write them
out.  Nothing here measures or estimates anything: :mod:`benchmarks.pipeline` runs the sessions.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.charts import panels, strategy_style
from benchmarks.common import (
    STRATEGY_LABELS,
    STRATEGY_ORDER,
    Summary,
    format_cell,
    format_improvement,
    write_json_file,
)
from benchmarks.pipeline_levers import render_levers, render_prompt_cache
from benchmarks.pipeline_preemptive import render_preemptive
from benchmarks.pipeline_records import (
    DERIVED,
    SCHEMA,
    SPEECH_END_TOLERANCE_MS,
    MemoryPeak,
    TurnRecord,
    VoiceBenchRun,
    format_ms,
    turn_value,
    turns_of,
)
from benchmarks.pipeline_tts import tts_notes, tts_table
from benchmarks.report import Table
from voice.latency import STAGES
from voice.turns import TURN_DETECTOR_LABELS, SpeculationStats


def stage_summary(run: VoiceBenchRun, rtt: float, strategy: str, attr: str, *, first_only: bool = False) -> Summary:
    """Median and range of one number of the completed turns (see :func:`turn_value`)."""
    return Summary.of(turn_value(t, attr) for t in turns_of(run, rtt, strategy, first_only=first_only))


def reuse_share(run: VoiceBenchRun, rtt: float, strategy: str) -> tuple[int, int]:
    """(requests on a reused connection, requests) over the completed turns."""
    turns = turns_of(run, rtt, strategy)
    return sum(bool(t.latency and t.latency.reused_connection) for t in turns), len(turns)


# Below the stages in the stage table: (attribute, label, unit).  The first two are the session's
# extras for its early transcription and adaptive end of turn; the first sentence's length is
# there because Piper's time to the first audio grows with it.
EXTRA_ROWS: tuple[tuple[str, str, str], ...] = (
    ("reply_done_ms", "Reply fully synthesized", " ms"),
    ("silence_waited_ms", "Silence heard before the turn ended (audio time)", " ms"),
    ("stt_started_ms", "Whisper started (early, during the pause)", " ms"),
    ("stt_compute_ms", "Whisper compute time (a duration)", " ms"),
    ("first_sentence_chars", "First sentence length", " chars"),
)
SUMMARY_FIELDS: tuple[str, ...] = (*(attr for attr, _ in STAGES), *(attr for attr, _, _ in EXTRA_ROWS), *DERIVED)


def summary_dict(run: VoiceBenchRun) -> dict[str, Any]:
    """Per distance and strategy: the summaries behind the tables."""
    out: dict[str, Any] = {}
    for rtt in run.config.rtt_ms:
        per: dict[str, Any] = {}
        for st in strategies_run(run):
            reused, n = reuse_share(run, rtt, st)
            per[st] = {
                "turns": n,
                "reused_connection": reused,
                "first_question_first_audio_ms": asdict(stage_summary(run, rtt, st, "first_audio_ms", first_only=True)),
                **{attr: asdict(stage_summary(run, rtt, st, attr)) for attr in SUMMARY_FIELDS},
            }
        out[f"{rtt:g}"] = per
    return out


def strategies_run(run: VoiceBenchRun) -> list[str]:
    """The strategies of this run in report order (cold, pooled, pre-warmed)."""
    return [s for s in STRATEGY_ORDER if s in run.config.strategies]


# ---- Markdown ---------------------------------------------------------------------------

HEADLINE_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("Speech end → first sentence ready", "first_sentence_ms", False),
    ("Speech end → first audio", "first_audio_ms", False),
    ("First LLM token", "first_token_ms", False),
    ("First question of a session: speech end → first audio", "first_audio_ms", True),
    ("LLM request sent → HTTP status (connection set-up and round trips)", "request_to_status_ms", False),
    ("LLM request sent → first token", "request_to_first_token_ms", False),
)


def _pss(mem: MemoryPeak) -> str:
    if not mem.pss_peak_bytes:
        return ""
    return (
        f" Counted proportionally (PSS: a page two processes share, such as the SmolLM2 file the app's "
        f"text end-of-turn model and the embedded server both map, counts once), the peak is "
        f"**{_mb(mem.pss_peak_bytes)}**."
    )


def _mb(value: int) -> str:
    return f"{value / 1e6:,.0f} MB"


def _share(reused: int, n: int) -> str:
    return "—" if not n else f"{reused}/{n} ({100 * reused / n:.0f} %)"


def headline_table(run: VoiceBenchRun, rtt: float) -> str:
    """The original's shape: Metric | Before (cold) | After (pre-warmed) | Improvement."""
    table = Table(["Metric", STRATEGY_LABELS["cold"], STRATEGY_LABELS["prewarmed"], "Improvement"])
    for label, attr, first_only in HEADLINE_ROWS:
        before = stage_summary(run, rtt, "cold", attr, first_only=first_only)
        after = stage_summary(run, rtt, "prewarmed", attr, first_only=first_only)
        table.add(label, format_cell(before), format_cell(after), format_improvement(before, after))
    reused = (_share(*reuse_share(run, rtt, s)) for s in ("cold", "prewarmed"))
    return table.add("LLM requests on a reused connection", *reused, "—").markdown()


def stage_table(run: VoiceBenchRun, rtt: float) -> str:
    """The full stage budget at one distance: one column per strategy, median (min–max) ms."""
    strategies = strategies_run(run)
    table = Table(["Stage (ms after the end of speech)", *(STRATEGY_LABELS[s] for s in strategies)])
    for attr, label, unit in [*((attr, label, " ms") for attr, label in STAGES), *EXTRA_ROWS]:
        table.add(label, *(format_cell(stage_summary(run, rtt, s, attr), unit) for s in strategies))
    table.add("LLM requests on a reused connection", *(_share(*reuse_share(run, rtt, s)) for s in strategies))
    table.add(
        "CPU used by other processes meanwhile (share of the machine)",
        *(_other_cpu_cell(run, rtt, s) for s in strategies),
    )
    return table.markdown()


def _other_cpu_cell(run: VoiceBenchRun, rtt: float, strategy: str) -> str:
    shares = [
        s.other_cpu_share
        for s in run.sessions
        if s.rtt_ms == rtt and s.strategy == strategy and s.other_cpu_share is not None
    ]
    return ", ".join(f"{100 * v:.0f} %" for v in shares) or "—"


def disturbed_turns(run: VoiceBenchRun, rtt: float) -> list[TurnRecord]:
    """Turns whose end of speech the session placed more than SPEECH_END_TOLERANCE_MS away from
    the audio's: the feeding or the session fell behind real time, so their times are off by that."""
    return [
        t
        for t in run.turns
        if t.rtt_ms == rtt
        and t.speech_end_error_ms is not None
        and abs(t.speech_end_error_ms) > SPEECH_END_TOLERANCE_MS
    ]


def _md(text: str) -> str:
    return " ".join(text.split()) or "—"  # one line in a table cell (Table escapes the pipes)


def heard_table(run: VoiceBenchRun) -> str:
    """Per question: what Whisper heard (distinct transcripts), key words found, and a reply."""
    table = Table(["#", "Question", "Key words", "Heard", "Key words found", "Reply (first session that answered)"])
    for q in run.questions:
        turns = [t for t in run.turns if t.question == q.index]
        heard = list(dict.fromkeys(t.transcript for t in turns if t.transcript))
        passed = sum(t.key_words_ok for t in turns)
        table.add(
            q.index,
            _md(q.text),
            ", ".join(q.key_words),
            "<br>".join(_md(h) for h in heard) or "—",
            f"{passed}/{len(turns)} {'PASS' if turns and passed == len(turns) else 'FAIL'}",
            _md(next((t.reply for t in turns if t.reply), "")),
        )
    return table.markdown()


def _describe(run: VoiceBenchRun) -> list[str]:
    c, e, mem = run.config, run.endpoint, run.memory
    others = [s.other_cpu_share for s in run.sessions if s.other_cpu_share is not None]
    others_text = (
        f"; other processes used {100 * min(others):.0f}–{100 * max(others):.0f} % of the CPU during the sessions"
        if others
        else ""
    )
    errors = Summary.of(t.speech_end_error_ms for t in run.turns if t.ok)
    n_turns = len(run.turns)
    phases = ", ".join(f"{k} {_mb(v)}" for k, v in mem.peak_by_phase.items())
    verdict = "PASS" if mem.within_bar else "FAIL"
    spec = SpeculationStats()
    for s in run.sessions:
        if s.speculation is not None:
            for name in ("started", "adopted", "discarded", "early_ends"):
                setattr(spec, name, getattr(spec, name) + getattr(s.speculation, name))
    return [
        f"- Wall time: {run.wall_time_s:.0f} s, of which start-up {run.startup_s:.0f} s{others_text}",
        f"- LLM: {e.base_url}, model `{e.model}` — {e.reason}"
        + (f"; {e.server_threads} llama.cpp thread(s)" if e.server_threads else ""),
        (
            f"- Input: {c.questions} question(s) synthesized at run time with "
            + (
                f"the voice families {', '.join(c.voices)} (benchmarks/voice_families.py)"
                if c.voices
                else "Piper (bundled en_US-joe-medium, noise off)"
            )
            + f", written as 16-bit WAV, fed in {c.chunk_ms} ms chunks paced in real time and followed by "
            f"{c.trailing_silence_ms / 1000:g} s of silence. "
            + (
                f"The session ends the turn with the `{c.turn_detector}` detector "
                f"({TURN_DETECTOR_LABELS[c.turn_detector]}; voice/turns/policy.py), evidence gathered in the pause"
                if c.early_transcript and c.turn_detector not in ("vad", "text")
                else f"The session transcribes early, during the pause (EARLY_TRANSCRIPT on), and ends the turn after "
                f"{c.end_of_turn_silence_ms} ms of silence, or after {c.min_end_of_turn_silence_ms} ms when the early "
                f"transcript reads as a finished sentence"
                if c.early_transcript
                else f"EARLY_TRANSCRIPT off: Whisper starts when the turn ends, after {c.end_of_turn_silence_ms} ms of "
                f"silence"
            )
            + f"; Whisper tiny.en; TTS `{c.tts}`."
        ),
        (
            f"- Sessions: {c.repeat} fresh session(s) per strategy and distance, one at a time, the strategies in "
            f"alternating order from one distance (or repeat) to the next. A session starts as "
            f'"Start speaking" does and the first question follows at once (a pre-warmed session warms up while '
            f"it is spoken); each next question follows the previous reply's playback and a {c.pause_s:g} s pause. "
            f"{n_turns} turns in all, {sum(t.ok for t in run.turns)} completed. Early transcripts: "
            f"{spec.started} started, {spec.adopted} adopted by their turn, {spec.discarded} discarded; "
            f"{spec.early_ends} turn(s) ended on the shorter silence. Before the first session, one typed turn "
            f"({run.primer.text!r}, not measured) filled the LLM server's prompt cache: its first token came "
            f"{format_ms(run.primer.first_token_ms)} ms after submission."
        ),
        _temperature_line(run),
        (
            '- The strategy changes only the connection: "LLM request sent → HTTP status" isolates it. The '
            "end-to-end rows also carry Whisper, the server's generation and Piper, which vary with the CPU other "
            "processes leave (see the last row of each stage budget)."
        ),
        (
            "- Every time is ms after the true end of speech (the session's last voiced frame), measured where the "
            "stage happened: median (min–max) over the completed turns. Check: the session's end of speech minus the "
            f"fed audio's last sample above -40 dBFS = {format_cell(errors)} (VAD frames are 32 ms)."
        ),
        (
            f"- Peak memory (RSS of this process + its children, i.e. the embedded server; sampled every "
            f"{mem.interval_s * 1000:.0f} ms, {mem.samples} samples): **{_mb(mem.peak_bytes)}** "
            f"(process {_mb(mem.self_bytes_at_peak)} + {mem.children_at_peak} child(ren) "
            f"{_mb(mem.children_bytes_at_peak)} at the peak; by phase: {phases}). "
            f"Issue #8's bar ≤ 1.5 GB: **{verdict}**.{_pss(mem)}"
        ),
    ]


def same_reply_questions(run: VoiceBenchRun) -> tuple[int, int]:
    """(questions whose completed turns all got the very same reply, questions with a completed turn)."""
    replies: dict[int, set[str]] = {}
    for t in run.turns:
        if t.ok:
            replies.setdefault(t.question, set()).add(t.reply)
    return sum(len(r) == 1 for r in replies.values()), len(replies)


def _temperature_line(run: VoiceBenchRun) -> str:
    temperature = run.config.llm_temperature
    same, asked = same_reply_questions(run)
    outcome = (
        f"{same} of {asked} question(s) got the very same reply in every session that answered it, and with "
        "it the same first sentence, Piper time for it and playback before the next question"
    )
    if temperature is None:
        return f"- LLM temperature: the server's default (replies are sampled); {outcome}."
    return (
        f"- LLM temperature {temperature:g}, set by the benchmark whatever LLM_TEMPERATURE says, so that every "
        f"strategy hears the same replies: {outcome}."
    )


def render_markdown(run: VoiceBenchRun) -> str:
    """The whole report: set-up, per distance the headline and stage tables, then what was heard."""
    out = ["# WarmVoice end-to-end voice benchmark", "", *_describe(run), *tts_notes(run), ""]
    if run.config.standin is not None:
        out += [
            "## The text-to-speech connection",
            "",
            "Sentence → first TTS audio: from the first sentence of the reply being ready to its first audio, "
            "median (min–max) ms over the completed turns.",
            "",
            tts_table(run),
            "",
        ]
    out += render_preemptive(run)
    out += render_levers(run)
    out += render_prompt_cache(run)
    for rtt in run.config.rtt_ms:
        out += [
            f"## RTT {rtt:g} ms",
            "",
            headline_table(run, rtt),
            "",
            f"### Stage budget at RTT {rtt:g} ms",
            "",
            stage_table(run, rtt),
            "",
        ]
        disturbed = disturbed_turns(run, rtt)
        if disturbed:
            out += [
                "Disturbed turns (the feeding or the session fell behind real time: the session placed the end "
                "of speech away from the audio's, so this turn's times are off by about that much):",
                *(
                    f"- {t.strategy} session {t.session} question {t.question}: end of speech placed "
                    f"{abs(t.speech_end_error_ms or 0):.0f} ms "
                    f"{'after' if (t.speech_end_error_ms or 0) > 0 else 'before'} the audio's"
                    for t in disturbed
                ),
                "",
            ]
        failed = [t for t in run.turns if t.rtt_ms == rtt and not t.ok]
        if failed:
            out += [
                "Failed turns:",
                *(
                    f"- {t.strategy} session {t.session} question {t.question}: {t.outcome}"
                    + (f" ({t.latency.error})" if t.latency is not None and t.latency.error else "")
                    for t in failed
                ),
                "",
            ]
    out += ["## What was heard and said", "", heard_table(run), ""]
    return "\n".join(out).rstrip() + "\n"


# ---- JSON and the chart -----------------------------------------------------------------


def to_json_dict(run: VoiceBenchRun) -> dict[str, Any]:
    """Everything: raw per-turn TurnLatency fields, transcripts, replies, memory, summaries."""
    data = asdict(run)
    data["memory"]["within_bar"] = run.memory.within_bar
    for session, raw in zip(run.sessions, data["sessions"], strict=True):
        for turn, raw_turn in zip(session.turns, raw["turns"], strict=True):
            raw_turn["ok"] = turn.ok
    return {"schema": SCHEMA, **data, "summary": summary_dict(run)}


def write_json(run: VoiceBenchRun, path: Path) -> None:
    """Write :func:`to_json_dict` as indented JSON."""
    write_json_file(to_json_dict(run), path)


PLOT_METRICS = (
    ("first_sentence_ms", "Speech end → first sentence ready"),
    ("first_audio_ms", "Speech end → first audio"),
)


def write_plot(run: VoiceBenchRun, path: Path) -> None:
    """A PNG of grouped bars: per RTT one bar per strategy (median, min–max whiskers), one panel
    for the first sentence and one for the first audio."""
    strategies = strategies_run(run)
    rtts = list(run.config.rtt_ms)
    width = 0.8 / max(len(strategies), 1)
    title = "WarmVoice end-to-end voice benchmark"
    with panels(path, len(PLOT_METRICS), title, run.machine, size=(5.5, 4.4)) as axes:
        for ax, (attr, metric) in zip(axes, PLOT_METRICS, strict=True):
            for i, st in enumerate(strategies):
                xs, meds, lo, hi = [], [], [], []
                for j, rtt in enumerate(rtts):
                    s = stage_summary(run, rtt, st, attr)
                    if s.median is None or s.low is None or s.high is None:
                        continue
                    xs.append(j + (i - (len(strategies) - 1) / 2) * width)
                    meds.append(s.median)
                    lo.append(s.median - s.low)
                    hi.append(s.high - s.median)
                if xs:
                    ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, **strategy_style(st))
            ax.set_xticks(range(len(rtts)), [f"{r:g} ms" for r in rtts])
            ax.set_xlabel("emulated RTT to the LLM")
            ax.set_ylabel("ms after the end of speech (median, min–max)")
            ax.set_title(metric)
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(fontsize=8)
