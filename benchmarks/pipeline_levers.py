"""Issue #14's levers in ``python -m benchmarks.pipeline``: the settings each variant runs with, the
harder inputs, and the report that compares levers off and on.

``--levers off,on`` runs every session twice, once per variant, the order alternating, on the same
spoken questions: "on" is the app as configured, "off" puts back what each lever replaced.  The
comparison shows the stage budget of both and checks that what is heard does not change: the
same transcripts and (at temperature 0) the same reply text per question.

``--inputs short,long`` adds the harder, 10-15-word questions; ``--question-rates 1,1.3`` speaks
every question again at other Piper speaking rates (``length_scale``: above 1 is slower).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.common import STRATEGY_LABELS, Summary, format_cell
from benchmarks.pipeline_records import TurnRecord, VoiceBenchRun, turn_value
from benchmarks.word_error_rate import words
from voice.latency import STAGES
from voice.preemptive import PreemptiveStats
from voice.settings import Settings
from voice.turns import SpeculationStats

LEVERS = ("off", "on")
INPUT_SETS = ("short", "long")
# What each lever replaced ("off"): one clause cut at 8 words instead of 6, Piper on
# onnxruntime's default threads (one per core, spin-waiting) instead of one sleeping thread,
# the LLM request sent when the turn ends instead of on the early transcript, during the pause,
# and Whisper started 150 ms into the pause instead of at its first silent frame.  That last one is
# measured but not on by default (EARLY_TRANSCRIPT_AFTER_MS=0 turns it on; see the README).
LEVERS_OFF: dict[str, object] = {
    "first_sentence_max_words": 8,
    "piper_threads": 0,
    "preemptive_generation": False,
    "early_transcript_after_ms": 150,
    "preemptive_tts": False,  # issue #23: the pause's first sentence synthesized before the turn ends
    "whisper_window_margin_s": 0.0,  # issue #26: Whisper's own 30 s window, not one fitted to the clip
}
# Spans shown besides the stages (name -> label, later stage, earlier stage).
SPANS: tuple[tuple[str, str, str, str], ...] = (
    ("request_to_first_token_ms", "LLM request sent → first token (a duration)", "first_token_ms", "request_sent_ms"),
    (
        "first_token_to_sentence_ms",
        "First token → first sentence (a duration)",
        "first_sentence_ms",
        "first_token_ms",
    ),
    ("sentence_to_audio_ms", "First sentence → first audio (a duration)", "first_audio_ms", "first_sentence_ms"),
    ("endpoint_to_transcript_ms", "Transcript ready after the end of the turn", "transcript_ms", "endpoint_ms"),
)
EXTRA: tuple[tuple[str, str, str], ...] = (
    ("stt_started_ms", "Whisper started (ms after the end of speech)", " ms"),
    ("stt_compute_ms", "Whisper compute time (a duration)", " ms"),
    ("first_sentence_chars", "First sentence length", " chars"),
)


def lever_settings(settings: Settings, levers: str, only: tuple[str, ...] = ()) -> Settings:
    """``settings`` for one variant: "on" unchanged, "off" with :data:`LEVERS_OFF` applied (only
    the levers named in ``only``, when given: one lever against the app as configured)."""
    if levers not in LEVERS:
        raise ValueError(f"levers must be one of {', '.join(LEVERS)}, got {levers!r}")
    return settings if levers == "on" else settings.replace(**off_values(only))


def off_values(only: tuple[str, ...] = ()) -> dict[str, object]:
    """What the "off" variant sets: :data:`LEVERS_OFF`, or the part of it named in ``only``."""
    unknown = set(only) - set(LEVERS_OFF)
    if unknown:
        raise ValueError(f"unknown lever(s) {', '.join(sorted(unknown))}; choose from {', '.join(LEVERS_OFF)}")
    return {k: v for k, v in LEVERS_OFF.items() if not only or k in only}


def input_label(inputs: str, length_scale: float) -> str:
    """How the report names a set of spoken questions: ``short ×1``, ``long ×1.3``."""
    return f"{inputs} ×{length_scale:g}"


@dataclass(frozen=True)
class _Cell:
    off: Summary
    on: Summary


def _value(turn: TurnRecord, attr: str) -> float | None:
    for name, _label, later, earlier in SPANS:
        if attr == name:
            lat = turn.latency
            if lat is None:
                return None
            a, b = getattr(lat, later), getattr(lat, earlier)
            return None if a is None or b is None else round(a - b, 1)
    return turn_value(turn, attr)


def _turns(run: VoiceBenchRun, rtt: float, strategy: str, inputs: str, levers: str) -> list[TurnRecord]:
    return [
        t
        for s in run.sessions
        if s.rtt_ms == rtt and s.strategy == strategy and s.inputs == inputs and s.levers == levers
        for t in s.turns
        if t.ok
    ]


def lever_table(run: VoiceBenchRun, rtt: float, strategy: str, inputs: str) -> str:
    """Stage budget, levers off vs on, for one distance, strategy and input set."""
    off, on = (_turns(run, rtt, strategy, inputs, v) for v in LEVERS)
    lines = [
        f"| Stage (ms after the end of speech), {inputs} | Levers off ({len(off)} turns) | Levers on ({len(on)} turns) "
        "| Change of the median |",
        "|---|---|---|---|",
    ]
    rows = [
        *((a, label, " ms") for a, label in STAGES),
        *((name, label, " ms") for name, label, _, _ in SPANS),
        *EXTRA,
    ]
    for attr, label, unit in rows:
        a, b = (Summary.of(_value(t, attr) for t in turns) for turns in (off, on))
        change = "—" if a.median is None or b.median is None else f"{round(b.median - a.median):+d}{unit}"
        lines.append(f"| {label} | {format_cell(a, unit)} | {format_cell(b, unit)} | {change} |")
    return "\n".join(lines)


def heard_same(run: VoiceBenchRun) -> tuple[list[str], list[str], int]:
    """Questions whose transcripts (their words: "City" and "city" sound the same), and whose
    replies, differ between levers off and on; and how many questions were answered in both."""
    by_question: dict[int, dict[str, set[tuple[str, str]]]] = {}
    for s in run.sessions:
        for t in s.turns:
            if t.ok:
                heard = " ".join(words(t.transcript))
                by_question.setdefault(t.question, {}).setdefault(s.levers, set()).add((heard, t.reply))
    both = {q: v for q, v in by_question.items() if all(lv in v for lv in LEVERS)}
    heard_differs = [f"q{q}" for q, v in both.items() if {tr for tr, _ in v["off"]} != {tr for tr, _ in v["on"]}]
    reply_differs = [f"q{q}" for q, v in both.items() if {r for _, r in v["off"]} != {r for _, r in v["on"]}]
    return heard_differs, reply_differs, len(both)


def render_levers(run: VoiceBenchRun) -> list[str]:
    """The Markdown section comparing levers off and on ([] when the run did not compare them)."""
    if tuple(run.config.levers) != LEVERS and set(run.config.levers) != set(LEVERS):
        return []
    heard, replies, both = heard_same(run)
    pre = PreemptiveStats()
    spec = {v: SpeculationStats() for v in LEVERS}
    for s in run.sessions:
        if s.preemptive is not None:
            for name in ("started", "adopted", "wasted", "wasted_tokens"):
                setattr(pre, name, getattr(pre, name) + getattr(s.preemptive, name))
        if s.speculation is not None and s.levers in spec:
            for name in ("started", "adopted", "discarded"):
                setattr(spec[s.levers], name, getattr(spec[s.levers], name) + getattr(s.speculation, name))
    off = ", ".join(f"{k}={v}" for k, v in off_values(tuple(run.config.off_levers)).items())
    on = ", ".join(f"{k}={v}" for k, v in run.config.levers_on.items()) or "the app's settings"
    out = [
        "## Issue #14's levers, off vs on",
        "",
        f"- Off: {off} (what the levers replaced); on: {on}. Each session ran once per variant, "
        "in alternating order, on the same spoken questions.",
        f"- What is heard: of {both} question(s) answered in both variants, transcripts differ for "
        f"{', '.join(heard) or 'none'} and reply text differs for {', '.join(replies) or 'none'}"
        + (" (temperature 0)." if run.config.llm_temperature == 0 else "."),
        f"- Preemptive LLM requests (all sessions): {pre.describe()}.",
        "- Early transcripts (Whisper runs during pauses): "
        + "; ".join(
            f"levers {v}: {st.started} started, {st.adopted} adopted, {st.discarded} discarded (the user went on)"
            for v, st in spec.items()
        )
        + ".",
        "",
    ]
    labels = list(dict.fromkeys(s.inputs for s in run.sessions))
    for rtt in run.config.rtt_ms:
        for strategy in run.config.strategies:
            for inputs in labels:
                out += [
                    f"### RTT {rtt:g} ms, {STRATEGY_LABELS[strategy]}, questions {inputs}",
                    "",
                    lever_table(run, rtt, strategy, inputs),
                    "",
                ]
    return out


def render_prompt_cache(run: VoiceBenchRun) -> list[str]:
    """Lever 3: per question of a session (the history grows), what llama.cpp took from its prefix
    cache and evaluated for the reply's request, measured from its log, next to the request's time
    to first token ([] when no turn has it: a remote endpoint)."""
    by_turn: dict[int, list[TurnRecord]] = {}
    for s in run.sessions:
        for n, t in enumerate(s.turns):
            if t.ok and t.prompt_cache is not None:
                by_turn.setdefault(n, []).append(t)
    if not by_turn:
        return []
    lines = [
        "## The LLM's prompt cache, per question of a session",
        "",
        "What llama.cpp did with the prompt of each turn's reply request, from the embedded server's own log "
        "(`Llama.generate: N prefix-match hit`): tokens taken from its cache + tokens evaluated (medians), and "
        "the request's time to first token. A session's first question follows the previous session's last "
        "request, so only the system prompt and examples are shared then.",
        "",
        "| Question of the session | Turns | Prefix cache hit | Tokens cached + evaluated | LLM request sent → first "
        "token |",
        "|---|---|---|---|---|",
    ]
    for n, turns in sorted(by_turn.items()):
        reports = [t.prompt_cache for t in turns if t.prompt_cache is not None]
        cached = Summary.of(r.reused_tokens for r in reports).median
        evaluated = Summary.of(r.evaluated_tokens for r in reports).median
        ttft = Summary.of(_value(t, "request_to_first_token_ms") for t in turns)
        lines.append(
            f"| {n + 1} | {len(turns)} | {sum(r.hit for r in reports)}/{len(reports)} | "
            f"{'all' if cached is None else f'{cached:.0f}'} + {evaluated or 0:.0f} | {format_cell(ttft)} |"
        )
    return [*lines, ""]
