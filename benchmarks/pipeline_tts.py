"""The text-to-speech connection in the pipeline benchmark (``--tts edge-standin``): what the
edge-tts stand-in saw of each turn's first sentence, and the report's section comparing a new
connection per sentence (cold) with the spare-socket transport (warm) per distance.
"""

from __future__ import annotations

from benchmarks.common import Summary, Table, format_cell
from benchmarks.edge_standin import EdgeStandin
from benchmarks.pipeline_records import TtsTurnRecord, TurnRecord, VoiceBenchRun


def tts_turn_record(turn: TurnRecord, standin: EdgeStandin, first_request: int, proxy_opened: int) -> TtsTurnRecord:
    """The TTS hop of ``turn``: the session's own stamps, and what the stand-in saw of the first
    sentence's request (its requests from number ``first_request`` on belong to this turn)."""
    lat = turn.latency
    ready_at = None
    if lat is not None and lat.first_sentence_ms is not None:
        ready_at = lat.speech_end_at + lat.first_sentence_ms / 1000.0
    request = next(iter(standin.requests[first_request:]), None)
    on_path = age = None
    if request is not None and ready_at is not None:
        on_path = request.connected_at >= ready_at
        age = round((request.received_at - request.connected_at) * 1000.0, 1)
    gap = None
    if lat is not None and lat.first_audio_ms is not None and lat.first_sentence_ms is not None:
        gap = round(lat.first_audio_ms - lat.first_sentence_ms, 1)
    return TtsTurnRecord(
        sentence_to_audio_ms=gap,
        connection=lat.tts_connection if lat is not None else "",
        setup_ms=lat.tts_setup_ms if lat is not None else None,
        wait_ms=lat.tts_wait_ms if lat is not None else None,
        opened_on_path=on_path,
        connection_age_ms=age,
        proxy_connections=proxy_opened,
    )


def tts_turns(run: VoiceBenchRun, rtt: float, mode: str, *, first: bool) -> list[TurnRecord]:
    """Completed ``--tts edge-standin`` turns with one TTS connection mode: each session's first
    question (``first``) or the later ones (after the reply's playback and ``--pause-s`` idle)."""
    return [
        t
        for s in run.sessions
        if s.rtt_ms == rtt and s.tts_connection == mode
        for t in s.turns
        if t.ok and t.tts is not None and (t.question == 1) == first
    ]


def _kinds(turns: list[TurnRecord]) -> str:
    counts: dict[str, int] = {}
    for t in turns:
        assert t.tts is not None
        counts[t.tts.connection or "none"] = counts.get(t.tts.connection or "none", 0) + 1
    return ", ".join(f"{k} ×{n}" for k, n in counts.items()) or "—"


def tts_table(run: VoiceBenchRun) -> str:
    """Sentence -> first TTS audio per RTT and connection mode, first question and after idle."""
    c = run.config
    table = Table(
        [
            "RTT",
            "TTS connection",
            "Sentence → first TTS audio, first question",
            f"… after {c.pause_s:g} s idle",
            "First sentence's socket",
            "Opened on its path (server-side)",
            "Connections at the TTS proxy per session",
            "Sockets left after stop",
        ]
    )
    for rtt in c.rtt_ms:
        for mode in c.tts_connections:
            first, later = (tts_turns(run, rtt, mode, first=f) for f in (True, False))
            both = first + later
            cells = [
                format_cell(Summary.of(t.tts.sentence_to_audio_ms for t in turns if t.tts)) for turns in (first, later)
            ]
            on_path = sum(bool(t.tts and t.tts.opened_on_path) for t in both)
            sessions = [s for s in run.sessions if s.rtt_ms == rtt and s.tts_connection == mode]
            proxy = ", ".join(str(s.tts_proxy_connections) for s in sessions if s.tts_proxy_connections is not None)
            left = ", ".join(str(s.tts_sockets_left) for s in sessions if s.tts_sockets_left is not None)
            table.add(f"{rtt:g} ms", mode, *cells, _kinds(both), f"{on_path}/{len(both)}", proxy or "—", left or "—")
    return table.markdown()


def tts_notes(run: VoiceBenchRun) -> list[str]:
    """The set-up line of the stand-in (nothing when the run did not use it)."""
    st = run.config.standin
    if st is None:
        return []
    idle = "never" if st.idle_limit_s is None else f"after {st.idle_limit_s:g} s idle"
    return [
        (
            "- edge-tts: the local stand-in of the speech service (`benchmarks/edge_standin.py`; the real service "
            "cannot be reached from here), served over TLS with a throw-away certificate behind the latency proxy at "
            f"the same RTT as the LLM. It waits {st.synthesis_ms:g} ms before its first audio frame (its own "
            f"synthesis time), answers every sentence with {st.audio_s:g} s of MP3, closes a socket {idle}, and "
            + ("answers further requests on a socket" if st.reuse else "closes a socket after each request")
            + f". Warm sessions replace a spare idle for {st.max_idle_s:g} s (EDGE_TTS_MAX_IDLE). "
            "Cold: `edge_tts.Communicate`, a new connection per sentence; warm: the spare-socket transport. "
            "Preemptive speech is off in these sessions, so every sentence's connection is on the turn's path."
        ),
    ]
