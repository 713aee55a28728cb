"""The uplink benchmark's records and report: what each page's panel showed, and the Markdown.

Split from :mod:`benchmarks.uplink` (which drives the app, the proxy and Chromium) so each stays
small; publish() heads the report with the command, the machine and its probe.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.common import MachineInfo
from benchmarks.report import Table

QUESTION = "What is the capital of France?"  # what the fake microphone asks, once per loop


@dataclass(frozen=True)
class TurnFigures:
    """One turn's figures as the panel showed them (ms from the end of speech as captured)."""

    turn: int
    uplink_ms: float
    first_audio_ms: float | None
    playing_ms: float | None
    in_page_ms: float | None = None  # of the uplink: capture -> the request that hands the chunk over
    to_server_ms: float | None = None  # of the uplink: that request -> the server's handler


@dataclass
class Visit:
    """One page's turns, and the clock line of its facts."""

    name: str
    url: str
    turns: list[TurnFigures] = field(default_factory=list)
    page_clock: str = ""
    round_trip: str = ""
    mic_path: str = ""  # the facts' "microphone over …"
    fallback: bool = False  # the page's socket was refused: Gradio's streaming microphone carried the audio
    clocks: list[str] = field(default_factory=list)  # each turn's "Zero: …" line

    def uplinks(self) -> list[float]:
        """The uplink of every turn (ms)."""
        return [t.uplink_ms for t in self.turns]

    def to_server(self) -> list[float]:
        """Every turn's uplink after the chunk left the page (ms)."""
        return [t.to_server_ms for t in self.turns if t.to_server_ms is not None]


@dataclass
class Report:
    """Everything the Markdown says."""

    command: str
    machine: MachineInfo
    rtt_ms: float
    visits: list[Visit]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def render_markdown(report: Report) -> str:
    """The report: the figures per page and the comparison (publish() heads it with the command and machine)."""
    turns = Table(
        [
            "Page",
            "Turn",
            "Uplink",
            "in the page",
            "to the server",
            "First audio",
            "Playing (browser)",
            "Playing − uplink (the old figure)",
        ],
        right=range(1, 8),
    )
    for v in report.visits:
        for t in v.turns:
            old = None if t.playing_ms is None else t.playing_ms - t.uplink_ms
            turns.add(
                v.name,
                t.turn,
                *(_fmt(x) for x in (t.uplink_ms, t.in_page_ms, t.to_server_ms, t.first_audio_ms, t.playing_ms, old)),
            )
    clocks = Table(["Page", "Page clock → server clock (facts)", "Browser ↔ server round trip (facts)"])
    for v in report.visits:
        clocks.add(v.name, v.page_clock, v.round_trip)
    lines = [
        "# The microphone audio's way up (uplink), near and far",
        "",
        f"The same app (`python app.py`, embedded LLM, Piper) visited by Chromium directly (near) and "
        f"through `llm.latency_proxy --rtt-ms {report.rtt_ms:g}` (far: every byte waits "
        f"{report.rtt_ms / 2:g} ms each way). A fake microphone asks “{QUESTION}” once per loop. "
        "Figures are the panel's own, in ms from the end of speech as the page captured it; "
        "“uplink” is the stage “Your audio reached the server”: from the capture of the last sample "
        "of the frame (or chunk) that held the end of speech to its arrival in the server's handler.",
        "",
        "Which way the microphone audio took, as each page's facts say (a “fallback” visit had its "
        "microphone socket refused, as behind a proxy that carries no WebSockets):",
        "",
        *[f"- {v.name}: {v.mic_path}" for v in report.visits],
        "",
        "The page's own path (web/mic.js → web/mic_socket.py) streams 20 ms frames of 16 kHz PCM over "
        "one WebSocket on the page's origin; the fallback is Gradio's streaming microphone (an upload, "
        "then a queue request, per 100 ms chunk). “In the page” is the uplink's part from the capture "
        "to the audio's hand-over (the frame to the socket; on the fallback, the chunk's wait, encoding "
        "and upload), one clock, the page's; “to the server” is the rest (the network, the server's "
        "handler; on the fallback also Gradio's queue), across the two clocks.",
        "",
        turns.markdown(),
        "",
        clocks.markdown(),
    ]
    one_way = report.rtt_ms / 2
    lines += ["", "## Far minus near", ""]
    for pair in (report.visits[i : i + 2] for i in range(0, len(report.visits), 2)):
        lines += _far_minus_near(pair, one_way, report.rtt_ms)
    return "\n".join(lines) + "\n"


def _far_minus_near(pair: Sequence[Visit], one_way: float, rtt_ms: float) -> list[str]:
    """The paragraph comparing a near visit with its far one (the same microphone path)."""
    near_visit, far_visit = pair
    path = "the page's WebSocket" if not near_visit.fallback else "Gradio's streaming microphone (the fallback)"
    near, far = _median(near_visit.uplinks()), _median(far_visit.uplinks())
    if near is None or far is None:
        return [f"Over {path}: not measured, a page showed no uplink (see the tables above).", ""]
    diff = far - near
    why = (
        "the distance adds one way: a frame is one message on a connection already open."
        if not near_visit.fallback
        else "each chunk is uploaded (a round trip) and then handed to the queue in a second request (one "
        f"way more), {1.5 * rtt_ms:g} ms at least; anything above is chunks queueing behind each other."
    )
    lines = [
        f"Over {path}, median uplink: near {near:,.1f} ms, far {far:,.1f} ms; far − near **{diff:,.1f} ms**, "
        f"{diff / one_way:.2f}× the proxy's one-way delay ({one_way:g} ms; {100 * (diff - one_way) / one_way:+.0f} %; "
        f"the target is ±20 %): {why}",
        "",
    ]
    near_out, far_out = _median(near_visit.to_server()), _median(far_visit.to_server())
    if near_out is not None and far_out is not None:
        out = far_out - near_out
        lines += [
            f"After the audio left the page: near {near_out:,.1f} ms, far {far_out:,.1f} ms; far − near "
            f"**{out:,.1f} ms**, {out / one_way:.2f}× the proxy's one-way delay ({one_way:g} ms; "
            f"{100 * (out - one_way) / one_way:+.0f} %).",
            "",
        ]
    return lines
