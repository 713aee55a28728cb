"""The latency panel's content, built from measured breakdowns: tables, a waterfall chart, facts.

Pure functions of :class:`~voice.latency.TurnLatency` data, so they are tested without a
browser; the page (``web/``) only places their output in Gradio components.  What the page's
player and the server say to each other is :mod:`voice.player_messages`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on a server; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from llm import STRATEGY_SHORT_LABELS, Strategy, format_ms, public_endpoint
from voice.browser_link import RoundTrips
from voice.latency import PANEL_STAGES, TurnLatency
from voice.recognizer import engine_label

if TYPE_CHECKING:
    from voice.session import VoiceSession

TURN_COLUMNS = [
    "Turn",
    "Strategy",
    "RTT ms",
    "Connection",
    "TTS connection",
    "Uplink",
    "Endpoint",
    "Ended by",
    "STT",
    "HTTP status",
    "First token",
    "First sentence",
    "First audio",
    "Playing (browser)",
    "LLM tries",
    "Outcome",
]
_SEGMENT_COLOURS = ["#c9b8a6", "#9aa5b1", "#6c8ebf", "#b85450", "#d79b00", "#82b366", "#9673a6", "#3c8dbc"]


@dataclass(frozen=True)
class SessionFacts:
    """What the panel says about the session itself (never the API key)."""

    endpoint: str
    model: str
    connection_state: str
    strategy: Strategy
    rtt_ms: float
    warmup: str
    connections_opened: int
    connections_reused: int
    tts_engine: str
    browser_rtt: RoundTrips | None = None  # page <-> server, measured by pings (voice.browser_link)
    # The page's clock against the server's and the microphone's way up (voice.uplink), one line.
    page_clock: str = "—"
    # Speech over replies (voice.turns.interruption.InterruptionStats), one line.
    interruptions: str = "—"
    # Preemptive LLM requests (voice.preemptive.PreemptiveStats), one line.
    preemptive: str = "—"


def session_facts(session: VoiceSession, browser_rtt: RoundTrips | None = None, page_clock: str = "—") -> SessionFacts:
    """What the panel says about ``session`` now; ``browser_rtt``: the page's measured round trips;
    ``page_clock``: the page's clock against the server's (its offset and uncertainty)."""
    stats = getattr(session.client, "stats", None)
    warm = session.reply.warmup
    return SessionFacts(
        endpoint=public_endpoint(session.endpoint.base_url),
        model=session.endpoint.model,  # no user:password
        connection_state=session.connection_state,
        strategy=session.settings.connection_strategy,
        rtt_ms=session.settings.emulated_rtt_ms,
        warmup="—" if warm is None else (f"{warm.ms:,.0f} ms" if warm.ok else f"failed: {warm.error}"),
        connections_opened=getattr(stats, "connections_opened", 0),
        connections_reused=getattr(stats, "connections_reused", 0),
        tts_engine=next((lat.tts_engine for lat in reversed(session.latencies) if lat.tts_engine), "—"),
        browser_rtt=browser_rtt,
        page_clock=page_clock,
        interruptions=f"{session.interruption.stats.describe()}, "
        f"{session.speculation_stats.continued} turns continued before the reply was heard",
        preemptive=session.reply.preemptive.stats.describe(),
    )


PLAYBACK_LABEL = "Playing in your browser (confirmed)"


def _ms(value: float | None) -> str:
    return format_ms(value, missing="", unit="", grouped=True)  # the column header says "ms"


def _stt(lat: TurnLatency) -> str:
    """When the transcript was ready, and which engine heard the turn ("212 moonshine")."""
    ready = _ms(lat.transcript_ms)
    return f"{ready} {lat.stt_engine}" if ready and lat.stt_engine else ready


def current_turn_html(lat: TurnLatency | None) -> str:
    """The current turn's stages, each shown the moment it is known, as bars from speech end."""
    if lat is None:
        return "<div class='wv-panel'><p>No turn yet. Click <b>Start speaking</b> and ask something.</p></div>"
    known = [getattr(lat, attr) for attr, _ in PANEL_STAGES if getattr(lat, attr) is not None]
    scale = max([*known, lat.playback_confirmed_ms or 0.0, 1.0])
    rows = [
        _bar_row(f"data-stage='{attr}'", label, getattr(lat, attr), scale)
        for attr, label in PANEL_STAGES
        if attr != "uplink_ms" or lat.source == "voice"  # a typed turn has no microphone audio
    ]
    if lat.source == "voice" and lat.clock == "arrival":
        # The way up is known when the turn is stamped, or never (no capture time): not "…".
        rows[0] = rows[0].replace("<td class='wv-ms'>…</td>", "<td class='wv-ms'>not timed</td>")
    if lat.playback_confirmed_ms is not None:
        # Not a pipeline stage: shown once the page's player has said so (never in the CLI).
        rows.append(
            _bar_row(
                "data-measure='playback_confirmed_ms' class='wv-confirmed'",
                PLAYBACK_LABEL,
                lat.playback_confirmed_ms,
                scale,
            )
        )
    conn = lat.connection or "…"
    if lat.connection == "new" and lat.connect_ms is not None:
        conn += f" (connect {lat.connect_ms:,.0f} ms)"
    extra = [
        f"Turn {lat.turn} ({html.escape(lat.source)})",
        f"strategy: {STRATEGY_SHORT_LABELS[lat.strategy]}",
        f"RTT +{lat.rtt_ms:.0f} ms",
        f"connection: <span data-fact='connection'>{conn}</span>",
    ]
    if lat.tts_connection:
        extra.append(f"TTS connection: <span data-fact='tts-connection'>{html.escape(tts_connection_text(lat))}</span>")
    if lat.turn_end is not None:
        extra.append(f"turn ended by <span data-fact='turn_end'>{html.escape(lat.turn_end.describe())}</span>")
    if lat.stt_compute_ms is not None:
        heard_by = html.escape(engine_label(lat.stt_engine or "whisper"))
        stretches = lat.extras.get("stt_stretch_runs")
        runs = "" if stretches is None else f", {stretches:.0f} stretch runs while you spoke"
        extra.append(
            f"heard by <span data-fact='stt-engine'>{heard_by}</span>, compute {lat.stt_compute_ms:,.0f} ms{runs}"
        )
    if "tts_buffered" in lat.extras:
        extra.append(f"<span data-fact='tts-buffered'>{html.escape(buffered_speech_text(lat))}</span>")
    if "prompt_cached_tokens" in lat.extras:  # the embedded server's own count (voice.reply)
        cached, evaluated = lat.extras["prompt_cached_tokens"], lat.extras.get("prompt_evaluated_tokens", 0.0)
        extra.append(
            f"LLM prompt: <span data-fact='prompt-cache'>{cached:,.0f} tokens from the cache + "
            f"{evaluated:,.0f} evaluated</span>"
        )
    if "player_ms" in lat.extras:
        extra.append(f"browser player {lat.extras['player_ms']:,.0f} ms (chunk arrival → playing)")
    if lat.llm_attempts > 1:
        extra.append(f"<b>LLM retried</b> ({lat.llm_attempts} attempts)")
    if lat.sentences:
        extra.append(f"{lat.sentences} sentence{'s' if lat.sentences != 1 else ''}, {lat.chars} characters spoken")
    if lat.tts_engine:
        extra.append(f"voice: {html.escape(lat.tts_engine)}" + (" (fallback)" if lat.tts_fallback else ""))
    total = ""
    if lat.total_ms is not None:
        heard = (
            ""
            if lat.playback_confirmed_ms is None
            else f" · playing in your browser by <span data-fact='playback'>{lat.playback_confirmed_ms:,.0f} ms</span>"
        )
        total = f"<p class='wv-total'>Speech end → first audio: <b>{lat.total_ms:,.0f} ms</b>{heard}</p>"
        total += _playback_split(lat)
    return (
        "<div class='wv-panel'>"
        f"<p class='wv-meta'>{' · '.join(extra)}</p>"
        f"<p class='wv-meta' data-fact='clock'>{clock_note(lat)}</p>"
        f"<table class='wv-stages'>{''.join(rows)}</table>{total}"
        f"<p class='wv-meta'>outcome: <span data-fact='outcome'>{html.escape(lat.outcome)}</span>"
        + (f" — {html.escape(lat.error)}" if lat.error else "")
        + "</p></div>"
    )


def clock_note(lat: TurnLatency) -> str:
    """Where this turn's zero is, in words: every figure of the panel counts from it."""
    if lat.clock == "typed":
        return "Zero: when your typed turn reached the server."
    if lat.clock == "page":
        in_page = lat.extras.get("uplink_in_page_ms")
        if lat.uplink_path == "websocket":  # voice.uplink.MicPath
            page_part, server_part = "the frame handed to the page's socket", "the network, over one WebSocket"
        else:
            page_part, server_part = "the chunk, its encoding and upload", "network, Gradio's queue"
        split = (
            ""
            if in_page is None or lat.uplink_ms is None
            else f" Its way up: <span data-split='in_page'>{in_page:,.0f} ms</span> in the page ({page_part}) + "
            f"<span data-split='to_server'>{lat.uplink_ms - in_page:,.0f} ms</span> to the server's handler "
            f"({server_part})."
        )
        return (
            "Zero: the end of your speech as your page captured it (the page's clock mapped to the "
            f"server's, ±{lat.clock_uncertainty_ms or 0:,.0f} ms).{split}"
        )
    return (
        "Zero: the end of your speech as its audio reached the server: no capture time from the page "
        "for this turn (this machine's microphone, a WAV file, or a browser that does not say), so the "
        "audio's way up is not counted."
    )


def _playback_split(lat: TurnLatency) -> str:
    """ "Playing in your browser (confirmed)" = the server's part + the round trip + the player's part.

    The server's part (first audio sent) and the whole (the report's arrival) are on the server's
    clock; the player's part is a duration on the page's clock.  The round trip is what is left:
    no clock offset is needed, so the split is shown only when the player gave its part.
    """
    trip = lat.playback_trip_ms
    if trip is None or lat.first_audio_ms is None:
        return ""
    return (
        "<p class='wv-meta wv-split'>Playing = server "
        f"<span data-split='server'>{lat.first_audio_ms:,.0f} ms</span> (first audio sent) + "
        f"page ↔ server round trip <span data-split='network'>{trip:,.0f} ms</span> "
        "(the audio's way down, the report's way back) + "
        f"browser player <span data-split='player'>{lat.extras['player_ms']:,.0f} ms</span></p>"
    )


def buffered_speech_text(lat: TurnLatency) -> str:
    """The first sentence synthesized during the pause (voice.preemptive_speech): when its
    synthesis ran, measured, against when the turn was confirmed."""
    started, ready = lat.extras.get("tts_buffer_started_ms"), lat.extras.get("tts_buffer_ready_ms")
    text = "first sentence synthesized during the pause"
    if started is not None:
        text += f": {started:,.0f}–" + ("…" if ready is None else f"{ready:,.0f}") + " ms"
    if lat.endpoint_ms is not None:
        done_before = ready is not None and ready <= lat.endpoint_ms
        text += f" ({'done before' if done_before else 'turn confirmed at'} {lat.endpoint_ms:,.0f} ms"
        text += ", the turn's confirmation)" if done_before else ")"
    return text


def tts_connection_text(lat: TurnLatency) -> str:
    """The first sentence's TTS socket and its cost: paid off the path (spare) or on it (new)."""
    if not lat.tts_connection:
        return ""
    if lat.tts_connection == "new":
        waited = "" if lat.tts_wait_ms is None else f" ({lat.tts_wait_ms:,.0f} ms on the path)"
        return f"new{waited}"
    setup = "" if lat.tts_setup_ms is None else f" (set-up {lat.tts_setup_ms:,.0f} ms, before the turn)"
    return f"{lat.tts_connection}{setup}"


def _bar_row(attributes: str, label: str, ms: float | None, scale: float) -> str:
    width = 0 if ms is None else max(1.0, 100.0 * max(ms, 0.0) / scale)
    value = "…" if ms is None else f"{ms:,.0f} ms"
    return (
        f"<tr {attributes}><td>{label}</td><td class='wv-bar'><div style='width:{width:.1f}%'></div></td>"
        f"<td class='wv-ms'>{value}</td></tr>"
    )


def turns_rows(latencies: list[TurnLatency]) -> list[list[str]]:
    """One row per turn (columns: TURN_COLUMNS), so strategies and distances compare side by side."""
    return [
        [
            str(lat.turn),
            STRATEGY_SHORT_LABELS[lat.strategy],
            f"{lat.rtt_ms:.0f}",
            lat.connection,
            tts_connection_text(lat),
            _ms(lat.uplink_ms),
            _ms(lat.endpoint_ms),
            _ended_by(lat),
            _stt(lat),
            _ms(lat.status_ms),
            _ms(lat.first_token_ms),
            _ms(lat.first_sentence_ms),
            _ms(lat.first_audio_ms),
            _ms(lat.playback_confirmed_ms),
            str(lat.llm_attempts or ""),
            lat.outcome,
        ]
        for lat in latencies
    ]


TTS_SETUP_LABEL = "TTS connection set-up (on the path)"


def _ended_by(lat: TurnLatency) -> str:
    """Short form for the table: "text_model text=0.97 audio=0.12 @410" (signal, the text model's
    and the audio model's probabilities, silence waited)."""
    end = lat.turn_end
    if end is None:
        return ""
    text = "" if end.text_probability is None else f" text={end.text_probability:.2f}"
    audio = "" if end.probability is None else f" audio={end.probability:.2f}"
    return f"{end.signal}{text}{audio} @{end.silence_waited_ms:,.0f}"


def waterfall_chart(latencies: list[TurnLatency], last: int = 12) -> Figure | None:
    """Stacked horizontal bars per turn: how long each stage added after the previous one."""
    turns = [lat for lat in latencies if lat.first_sentence_ms is not None or lat.first_audio_ms is not None]
    turns = turns[-last:]
    if not turns:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(turns) + 2.0), dpi=100)
    labels = []
    seen: set[str] = set()
    for row, lat in enumerate(turns):
        start = 0.0
        for index, (attr, label) in enumerate(PANEL_STAGES):
            ms = getattr(lat, attr)
            if ms is None:
                continue
            width = max(ms - start, 0.0)
            ax.barh(
                row,
                width,
                left=start,
                color=_SEGMENT_COLOURS[index % len(_SEGMENT_COLOURS)],
                label=None if label in seen else label,
            )
            seen.add(label)
            start = max(start, ms)
        if lat.tts_connection == "new" and lat.tts_setup_ms and lat.first_sentence_ms is not None:
            # A TTS socket opened for the first sentence sat on the path between the sentence and
            # its audio: hatch that share of the segment (a spare's set-up happened off the path).
            ax.barh(
                row,
                lat.tts_setup_ms,
                left=lat.first_sentence_ms,
                height=0.4,
                color="none",
                edgecolor="#333333",
                hatch="///",
                label=None if TTS_SETUP_LABEL in seen else TTS_SETUP_LABEL,
            )
            seen.add(TTS_SETUP_LABEL)
        tts = f", TTS {lat.tts_connection}" if lat.tts_connection else ""
        labels.append(f"#{lat.turn} {STRATEGY_SHORT_LABELS[lat.strategy]}, +{lat.rtt_ms:.0f} ms{tts}")
    ax.set_yticks(range(len(turns)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("ms after the end of your speech")
    # Below the axes, so the legend never hides a bar.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), fontsize=7, ncols=4, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)  # the figure lives on in Gradio's component, not in pyplot's registry
    return fig


def facts_markdown(facts: SessionFacts) -> str:
    """Session facts as a small Markdown table."""
    rows = [
        ("LLM endpoint", f"`{facts.endpoint}`"),
        ("Model", f"`{facts.model}`"),
        ("Connection", f"**{facts.connection_state}**"),
        ("Strategy", STRATEGY_SHORT_LABELS[facts.strategy]),
        ("Emulated RTT to the LLM", f"+{facts.rtt_ms:.0f} ms"),
        ("Warm-up", facts.warmup),
        ("Connections opened / reused", f"{facts.connections_opened} / {facts.connections_reused}"),
        ("Voice", facts.tts_engine),
        ("Browser ↔ server round trip", "measuring…" if facts.browser_rtt is None else facts.browser_rtt.describe()),
        ("Page clock → server clock", facts.page_clock),
        ("Speech over replies", facts.interruptions),
        ("LLM requests sent during pauses", facts.preemptive),
    ]
    return "| Session | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


PANEL_CSS = """
#start-speaking { font-size: 1.3em; min-height: 3.2em; }
.wv-panel table.wv-stages { width: 100%; border-collapse: collapse; }
.wv-panel td { padding: 2px 6px; white-space: nowrap; }
.wv-panel td.wv-bar { width: 60%; }
.wv-panel td.wv-bar div { height: 0.9em; background: #3c8dbc; border-radius: 3px; }
.wv-panel td.wv-ms { text-align: right; font-variant-numeric: tabular-nums; }
.wv-panel .wv-meta { font-size: 0.85em; opacity: 0.8; }
.wv-panel .wv-total { font-size: 1.1em; }
.wv-panel tr.wv-confirmed td.wv-bar div { background: #82b366; }
.wv-hidden { display: none !important; }
"""
