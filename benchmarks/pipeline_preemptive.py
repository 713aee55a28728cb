"""Issue #23's preemptive speech in ``python -m benchmarks.pipeline``: off vs on, and its waste.

``--levers off,on --off-levers preemptive_tts`` runs every session twice, with ``PREEMPTIVE_TTS``
off and on (the order alternating), on the same spoken questions; :func:`render_preemptive` then
compares, per variant: speech end → first audio, the end of the turn (endpoint) and what follows
it (turn confirmed → first audio), overall and on the turns that adopted the pause's request
(or played a sentence synthesized during the pause), with the issue's targets next to them.

``--hesitations N`` also replays N items of the turn-taking set's hesitations
(:mod:`benchmarks.turn_taking_data`: a phrase, a pause, its end; cut from the whole sentence and
said alone, um/uh fillers) through one session with preemptive speech on, and counts the
syntheses it dropped: the waste when the user was not done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence

from benchmarks.common import Say, Summary, format_cell
from benchmarks.pipeline_levers import LEVERS, off_values
from benchmarks.pipeline_records import HesitationReplay, SessionRecord, TurnRecord, VoiceBenchRun
from benchmarks.turn_taking_data import Item, build
from benchmarks.turn_taking_texts import TUNING
from benchmarks.voice_families import family
from voice.audio import SAMPLE_RATE
from voice.headless import run_spoken_turn
from voice.latency import TurnLatency
from voice.preemptive import PreemptiveStats
from voice.runtime import VoiceRuntime
from voice.settings import Settings

# Issue #23's targets on this machine class.
CONFIRMED_TO_AUDIO_TARGET_MS = 100.0
SPEECH_END_TO_AUDIO_TARGET_MS = 800.0
DROPPED_PER_TURN_TARGET = 1 / 3
# The replay's pauses (s): a short and a long one of the turn-taking set's hesitation pauses.
HESITATION_PAUSES_S = (0.6, 1.2)
REPLAY_TURN_TIMEOUT_S = 120.0
PLAYBACK_WAIT_S = 30.0
_STATS = tuple(f.name for f in dataclasses.fields(PreemptiveStats))


# ---- the hesitation replay -----------------------------------------------------------------


def hesitation_items(count: int) -> list[Item]:
    """The first ``count`` hesitations of the turn-taking set's tuning texts, interleaved so a small
    count still has every kind: (phrase, pause, rest) cut from the whole sentence and said alone,
    hesitations and um/uh fillers, at each pause of :data:`HESITATION_PAUSES_S`.  Blocking (Piper)."""
    piper = family("piper-1.0")
    kinds = (("hesitation", TUNING.hesitations), ("filler", TUNING.fillers))
    plans = [
        (kind, phrases[index][0], phrases[index][1], pause, whole)
        for index in range(max(len(phrases) for _, phrases in kinds))
        for pause in HESITATION_PAUSES_S
        for kind, phrases in kinds
        if index < len(phrases)
        for whole in (True, False)
    ]
    items = []
    for kind, first, rest, pause, whole in plans[:count]:
        name = f"{first} [{pause:g}s] {rest}" + ("" if whole else " (alone)")
        items.append(build(piper, kind if whole else f"{kind}_final", name, [first, rest], [pause], whole=whole))
    return items


def _totals(stats: Sequence[PreemptiveStats]) -> PreemptiveStats:
    total = PreemptiveStats()
    for one in stats:
        for name in _STATS:
            setattr(total, name, getattr(total, name) + getattr(one, name))
    return total


async def replay_hesitations(runtime: VoiceRuntime, count: int, say: Say) -> HesitationReplay:
    """Speak ``count`` hesitation items (:func:`hesitation_items`) into one session with preemptive
    generation and speech on, one after the other, each after the previous reply has played."""
    items = await asyncio.to_thread(hesitation_items, count)
    settings = runtime.settings.replace(preemptive_generation=True, preemptive_tts=True)
    session = runtime.new_session("bench-hesitations", settings=settings)
    per_item: list[str] = []
    await session.start()
    try:
        await session.wait_warm()
        stats = session.reply.preemptive.stats
        for item in items:
            first, dropped = len(session.latencies), stats.tts_dropped
            await run_spoken_turn(session, item.audio, SAMPLE_RATE, timeout_s=REPLAY_TURN_TIMEOUT_S)
            deadline = time.perf_counter() + PLAYBACK_WAIT_S
            while session.busy and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            await session.preemptive_speech.settled()
            line = f"{item.name}: {stats.tts_dropped - dropped} synthesis(es) dropped; " + "; ".join(
                _turn_line(lat) for lat in session.latencies[first:]
            )
            per_item.append(line)
            say(f"[hesitations] {line}")
        turns = session.turns_started
    finally:
        await session.stop()
    return HesitationReplay(len(items), turns, dataclasses.replace(session.reply.preemptive.stats), per_item)


def _turn_line(lat: TurnLatency) -> str:
    """One turn of a replayed item: what was heard, how it ended, whether the pause's buffer played."""
    end = lat.turn_end.signal if lat.turn_end is not None else "?"
    after = None if lat.first_audio_ms is None or lat.endpoint_ms is None else lat.first_audio_ms - lat.endpoint_ms
    return (
        f"turn heard {lat.transcript!r} ({lat.outcome}, ended by {end}), "
        + ("first sentence from the pause's buffer" if "tts_buffered" in lat.extras else "no buffer")
        + ("" if after is None else f", turn confirmed → first audio {after:,.0f} ms")
    )


# ---- the report ----------------------------------------------------------------------------


def compares_preemptive_tts(run: VoiceBenchRun) -> bool:
    """The run compared levers off and on, and "off" turned preemptive speech off."""
    return set(run.config.levers) == set(LEVERS) and "preemptive_tts" in off_values(tuple(run.config.off_levers))


def _sessions(run: VoiceBenchRun, levers: str) -> list[SessionRecord]:
    return [s for s in run.sessions if s.levers == levers]


def _confirmed_to_audio(turn: TurnRecord) -> float | None:
    lat = turn.latency
    if lat is None or lat.first_audio_ms is None or lat.endpoint_ms is None:
        return None
    return round(lat.first_audio_ms - lat.endpoint_ms, 1)


def _extra(turn: TurnRecord, name: str) -> float | None:
    return None if turn.latency is None else turn.latency.extras.get(name)


def _held(turn: TurnRecord) -> bool:
    end = turn.latency.turn_end if turn.latency is not None else None
    return end is not None and end.signal in ("hold", "max_wait")


def _share(part: int, whole: int) -> str:
    return "—" if not whole else f"{part}/{whole} ({part / whole:.0%})"


def _target(value: float | None, target: float, unit: str = " ms") -> str:
    if value is None:
        return "not measured"
    return f"{'met' if value <= target else 'NOT met'} (median {value:,.0f}{unit}, target ≤ {target:,.0f}{unit})"


def comparison_rows(run: VoiceBenchRun) -> list[str]:
    """The off/on table's rows (Markdown), one column per variant."""
    turns = {v: [t for s in _sessions(run, v) for t in s.turns if t.ok] for v in LEVERS}
    stats = {v: _totals([s.preemptive for s in _sessions(run, v) if s.preemptive is not None]) for v in LEVERS}
    rows: list[tuple[str, list[str]]] = []

    def summary(label: str, pick: Callable[[TurnRecord], float | None]) -> None:
        rows.append((label, [format_cell(Summary.of(pick(t) for t in turns[v])) for v in LEVERS]))

    rows.append(("Completed turns", [str(len(turns[v])) for v in LEVERS]))
    summary("Speech end → first audio", lambda t: t.latency.first_audio_ms if t.latency else None)
    summary(
        "Speech end → turn confirmed (endpoint: the end-of-turn work)",
        lambda t: t.latency.endpoint_ms if t.latency else None,
    )
    summary("Turn confirmed → first audio (what follows the decision)", _confirmed_to_audio)
    adopted = {v: [t for t in turns[v] if _extra(t, "preemptive") == 1.0] for v in LEVERS}
    buffered = {v: [t for t in turns[v] if _extra(t, "tts_buffered") == 1.0] for v in LEVERS}
    rows.append(
        (
            "Turns the detector held (ended by hold or max wait, not the shorter silence)",
            [_share(sum(_held(t) for t in turns[v]), len(turns[v])) for v in LEVERS],
        )
    )
    rows.append(
        ("Turns that adopted the pause's LLM request", [_share(len(adopted[v]), len(turns[v])) for v in LEVERS])
    )
    rows.append(
        (
            "Turn confirmed → first audio, those turns",
            [format_cell(Summary.of(_confirmed_to_audio(t) for t in adopted[v])) for v in LEVERS],
        )
    )
    rows.append(
        (
            "Turns that played a first sentence synthesized during the pause",
            [_share(len(buffered[v]), len(turns[v])) for v in LEVERS],
        )
    )
    rows.append(
        (
            "Turn confirmed → first audio, those turns",
            [format_cell(Summary.of(_confirmed_to_audio(t) for t in buffered[v])) for v in LEVERS],
        )
    )
    ready = {
        v: sum(
            1
            for t in buffered[v]
            if t.latency is not None
            and t.latency.endpoint_ms is not None
            and (_extra(t, "tts_buffer_ready_ms") or float("inf")) <= t.latency.endpoint_ms
        )
        for v in LEVERS
    }
    rows.append(
        (
            "… of which synthesized completely before the turn was confirmed",
            [_share(ready[v], len(buffered[v])) for v in LEVERS],
        )
    )
    rows.append(
        (
            "Preemptive syntheses: started / played / dropped (CPU ms of the dropped)",
            [
                f"{st.tts_started} / {st.tts_played} / {st.tts_dropped} ({st.tts_dropped_cpu_ms:,.0f} ms)"
                for st in (stats[v] for v in LEVERS)
            ],
        )
    )
    rows.append(("LLM requests sent during pauses", [stats[v].describe().split(";")[0] for v in LEVERS]))
    header = ["| Measure (ms; median (min–max)) | PREEMPTIVE_TTS off | PREEMPTIVE_TTS on |", "|---|---|---|"]
    return header + [f"| {label} | {' | '.join(cells)} |" for label, cells in rows]


def render_preemptive(run: VoiceBenchRun) -> list[str]:
    """The Markdown section on preemptive speech ([] when the run neither compared it nor replayed
    hesitations)."""
    out: list[str] = []
    if compares_preemptive_tts(run):
        on = [t for s in _sessions(run, "on") for t in s.turns if t.ok]
        adopted = [t for t in on if _extra(t, "preemptive") == 1.0]
        out += [
            "## Preemptive speech (issue #23), off vs on",
            "",
            'Each session ran once per variant, in alternating order, on the same spoken questions; "on" ran with '
            f"`PREEMPTIVE_TTS={'true' if run.config.levers_on.get('preemptive_tts') else 'false'}` (the run's "
            f'settings; the app\'s default is `{"true" if Settings.preemptive_tts else "false"}`), "off" differs '
            "only in `PREEMPTIVE_TTS=false`. Turn confirmed = the end-of-turn decision (`endpoint_ms`); first audio = "
            "the first chunk sent to the player, as measured.",
            "",
            *comparison_rows(run),
            "",
            "Targets (PREEMPTIVE_TTS on):",
            "",
            "- Turn confirmed → first audio when the pause's request was adopted: "
            + _target(Summary.of(_confirmed_to_audio(t) for t in adopted).median, CONFIRMED_TO_AUDIO_TARGET_MS)
            + f"; {_share(len(adopted), len(on))} of the turns.",
            "- Speech end → first audio: "
            + _target(
                Summary.of(t.latency.first_audio_ms for t in on if t.latency).median, SPEECH_END_TO_AUDIO_TARGET_MS
            )
            + "; of it, the end of the turn took "
            + format_cell(Summary.of(t.latency.endpoint_ms for t in on if t.latency))
            + ' (issue "End of turn that works on any voice"), what followed the decision '
            + format_cell(Summary.of(_confirmed_to_audio(t) for t in on))
            + ".",
            "",
        ]
    replay = run.hesitations
    if replay is not None:
        st = replay.preemptive
        rate = st.tts_dropped / replay.turns if replay.turns else None
        verdict = (
            "not measured"
            if rate is None
            else f"{'met' if rate <= DROPPED_PER_TURN_TARGET else 'NOT met'} "
            f"({st.tts_dropped} dropped in {replay.turns} turns = {rate:.2f} per turn, target ≤ 1 per 3 turns)"
        )
        out += [
            "## Waste on the turn-taking set's hesitations",
            "",
            f"{replay.items} items of the turn-taking set (tuning texts: a phrase, a pause of "
            f"{' or '.join(f'{p:g} s' for p in HESITATION_PAUSES_S)}, the rest; cut from the whole sentence or said "
            "alone; hesitations and um/uh fillers) spoken one after the other into one session, preemptive "
            "generation and speech on.",
            "",
            f"- Dropped preemptive syntheses: {verdict}; their CPU: {st.tts_dropped_cpu_ms:,.0f} ms "
            f"({st.tts_dropped_ms:,.0f} ms of synthesis wall time).",
            f"- Preemptive syntheses: {st.tts_started} started, {st.tts_played} played.",
            f"- LLM requests: {st.describe().split(';')[0]}.",
            "",
            "Per item:",
            "",
            *(f"- {line}" for line in replay.per_item),
            "",
        ]
    return out
