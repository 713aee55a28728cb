"""The latency panel's content: built from measured breakdowns, in stage order."""

from __future__ import annotations

import dataclasses

from voice import panel
from voice.latency import STAGES, TurnEnd, TurnLatency, format_table
from voice.player_messages import PlaybackReport, audio_payload, playback_reports
from voice.preemptive import PreemptiveStats
from voice.tts import TTSConnection


def _turn(n: int = 1, **stages: float) -> TurnLatency:
    return TurnLatency(turn=n, strategy="prewarmed", rtt_ms=150, speech_end_at=100.0, **stages)  # type: ignore[arg-type]


def _tts(lat: TurnLatency, connection: TTSConnection) -> TurnLatency:
    """``lat`` whose first audio went out over ``connection`` (as the recorder writes it)."""
    return dataclasses.replace(
        lat, tts_connection=connection.label, tts_setup_ms=connection.setup_ms, tts_wait_ms=connection.waited_ms
    )


def _extras(lat: TurnLatency, **extras: float) -> TurnLatency:
    return dataclasses.replace(lat, extras={**lat.extras, **extras})


def test_current_turn_shows_known_stages_and_placeholders() -> None:
    lat = _turn(endpoint_ms=510.0, transcript_ms=690.0, reused_connection=True)
    text = panel.current_turn_html(lat)
    assert "510 ms" in text and "690 ms" in text
    assert text.count("…") >= len(STAGES) - 2
    assert "reused" in text
    for _, label in STAGES:
        assert label in text


def test_no_turn_yet_invites_the_user() -> None:
    assert "Start speaking" in panel.current_turn_html(None)


def test_turn_rows_follow_the_columns() -> None:
    rows = panel.turns_rows([_turn(1, first_audio_ms=900.0), _turn(2, first_audio_ms=800.0)])
    assert len(rows) == 2 and all(len(r) == len(panel.TURN_COLUMNS) for r in rows)
    assert rows[0][panel.TURN_COLUMNS.index("First audio")] == "900"


def test_chart_only_when_a_turn_has_numbers() -> None:
    assert panel.waterfall_chart([_turn(1)]) is None
    fig = panel.waterfall_chart([_turn(1, endpoint_ms=500.0, first_sentence_ms=800.0, first_audio_ms=950.0)])
    assert fig is not None and len(fig.axes[0].patches) == 3


def test_chart_hatches_a_new_tts_connection_on_the_path_but_not_a_spare() -> None:
    stages = {"endpoint_ms": 500.0, "first_sentence_ms": 800.0, "first_audio_ms": 1300.0}
    cold = _tts(_turn(1, **stages), TTSConnection("new", 420.0, 420.0))
    warm = _tts(_turn(2, **stages), TTSConnection("spare", 430.0, 0.0))
    fig = panel.waterfall_chart([cold, warm])
    assert fig is not None
    hatched = [p for p in fig.axes[0].patches if p.get_hatch()]
    # One hatched bar: turn 1's new socket, from the first sentence for its set-up time.
    assert len(hatched) == 1
    assert hatched[0].get_x() == 800.0 and hatched[0].get_width() == 420.0
    assert panel.TTS_SETUP_LABEL in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_facts_never_include_a_key_field() -> None:
    facts = panel.SessionFacts("https://api.example/v1", "m", "warm", "prewarmed", 0, "120 ms", 1, 4, "piper")
    text = panel.facts_markdown(facts)
    assert "1 / 4" in text and "warm" in text and "key" not in text.lower()


def test_plain_table_for_the_cli() -> None:
    table = format_table([_turn(1, first_audio_ms=912.4)])
    assert "912" in table and "First audio ready" in table


def test_audio_payload_round_trips_pcm() -> None:
    import base64
    import json

    import numpy as np

    from voice.events import AudioOut
    from voice.tts import AudioChunk

    samples = np.sin(np.linspace(0, 20, 2400)).astype(np.float32) * 0.5
    payload = json.loads(audio_payload("tab", [(7, AudioOut(3, AudioChunk(samples, 24000)))]))
    assert payload["session"] == "tab" and payload["flush"] is False
    chunk = payload["chunks"][0]
    assert chunk["seq"] == 7 and chunk["turn"] == 3 and chunk["rate"] == 24000
    pcm = np.frombuffer(base64.b64decode(chunk["pcm"]), "<i2")
    assert pcm.size == samples.size and np.allclose(pcm / 32767, samples, atol=1e-3)
    assert json.loads(audio_payload("tab", [], flush=True)) == {
        "session": "tab",
        "flush": True,
        "chunks": [],
    }


def test_playback_shows_only_once_the_player_confirmed_it() -> None:
    lat = _turn(1, first_audio_ms=640.0)
    assert panel.PLAYBACK_LABEL not in panel.current_turn_html(lat)
    assert panel.turns_rows([lat])[0][panel.TURN_COLUMNS.index("Playing (browser)")] == ""
    lat = dataclasses.replace(lat, playback_confirmed_ms=702.0)
    text = panel.current_turn_html(lat)
    assert panel.PLAYBACK_LABEL in text and "702 ms" in text and "640 ms" in text
    assert panel.turns_rows([lat])[0][panel.TURN_COLUMNS.index("Playing (browser)")] == "702"


def test_playback_reports_take_only_this_streams_turns() -> None:
    reports = playback_reports(
        '[{"session": "s1", "turn": 2, "player_ms": 14}, {"session": "s0", "turn": 3},'
        ' {"session": "s1", "turn": 4, "player_ms": NaN}, {"session": "s1", "turn": 5, "player_ms": 1e9}]',
        "s1",
    )
    assert reports == [
        PlaybackReport(2, 14.0),
        PlaybackReport(4, None),
        PlaybackReport(5, None),
    ]
    bad = [
        "",
        "null",
        "{}",
        "[1, 2]",
        '[{"session": "s1", "turn": "2"}]',
        '[{"session": "s1", "turn": true}]',
        '[{"session": "s1", "turn": -1}]',
        '[{"session": "s1", "turn": 2.5}]',
        "[" * 4000,
        "[" * 2000 + "]" * 2000,
        "[" * 5000,
        '[{"session": "s1", "turn": 2}' + " " * 5000 + "]",
    ]
    for text in bad:
        assert playback_reports(text, "s1") == [], text


def test_the_browsers_own_share_is_shown_with_the_confirmation() -> None:
    lat = _turn(1, first_audio_ms=640.0, playback_confirmed_ms=702.0)
    lat = _extras(lat, player_ms=13.0)
    assert "browser player 13 ms" in panel.current_turn_html(lat)


def test_playing_splits_into_server_round_trip_and_player() -> None:
    lat = _turn(1, first_audio_ms=640.0, playback_confirmed_ms=842.0)
    assert lat.playback_trip_ms is None and "data-split" not in panel.current_turn_html(lat)
    lat = _extras(lat, player_ms=25.0)
    assert lat.playback_trip_ms == 177.0
    text = panel.current_turn_html(lat)
    assert "data-split='server'>640 ms" in text
    assert "data-split='network'>177 ms" in text
    assert "data-split='player'>25 ms" in text


def test_facts_show_the_page_round_trip_once_measured() -> None:
    from voice.browser_link import RoundTrips

    facts = panel.SessionFacts("http://127.0.0.1:1/v1", "m", "warm", "prewarmed", 0, "120 ms", 1, 4, "piper")
    assert "| Browser ↔ server round trip | measuring… |" in panel.facts_markdown(facts)
    facts = dataclasses.replace(facts, browser_rtt=RoundTrips(152.0, 150.0, 148.0, 170.0, 7))
    assert (
        "| Browser ↔ server round trip | 148 ms best of 7 pings (median 152, worst 170, last 150) |"
        in panel.facts_markdown(facts)
    )


def test_a_ping_rides_with_the_audio_payload() -> None:
    import json

    assert json.loads(audio_payload("tab", [], ping=4)) == {
        "session": "tab",
        "flush": False,
        "chunks": [],
        "ping": 4,
    }


def test_tts_connection_is_shown_with_its_cost() -> None:
    warm = _tts(TurnLatency(turn=1, first_sentence_ms=300.0, first_audio_ms=420.0), TTSConnection("spare", 312.4, 0.0))
    cold = _tts(TurnLatency(turn=2, first_sentence_ms=300.0, first_audio_ms=900.0), TTSConnection("new", 455.0, 455.0))
    column = panel.TURN_COLUMNS.index("TTS connection")
    rows = panel.turns_rows([warm, cold])
    assert rows[0][column] == "reused spare (set-up 312 ms, before the turn)"
    assert rows[1][column] == "new (455 ms on the path)"
    assert "data-fact='tts-connection'>reused spare" in panel.current_turn_html(warm)
    piper = TurnLatency(turn=3, first_audio_ms=500.0)  # an engine without a connection
    assert panel.turns_rows([piper])[0][column] == "" and "tts-connection" not in panel.current_turn_html(piper)


def test_the_text_models_probability_is_shown_beside_the_audio_models() -> None:
    end = TurnEnd("text_model+audio", "text_model", 410.0, probability=0.12, text_probability=0.97, text_ms=0.2)
    lat = dataclasses.replace(_turn(), turn_end=end)
    row = panel.turns_rows([lat])[0]
    assert "text_model text=0.97 audio=0.12 @410" in row
    html_text = panel.current_turn_html(lat)
    assert "text model p=0.97, 0.2 ms; audio model p=0.12" in html_text


def test_a_first_sentence_synthesized_during_the_pause_is_shown_against_the_decision() -> None:
    lat = _turn(endpoint_ms=900.0, first_audio_ms=912.0)
    assert "data-fact='tts-buffered'" not in panel.current_turn_html(lat)
    lat = _extras(lat, tts_buffered=1.0, tts_buffer_started_ms=610.0, tts_buffer_ready_ms=870.0)
    assert "synthesized during the pause: 610–870 ms (done before 900 ms" in panel.current_turn_html(lat)
    lat = _extras(lat, tts_buffer_ready_ms=1010.0)  # still synthesizing when the turn was confirmed
    assert "610–1,010 ms (turn confirmed at 900 ms)" in panel.buffered_speech_text(lat)


def test_the_pause_facts_count_the_dropped_syntheses() -> None:
    stats = PreemptiveStats(started=3, adopted=2, wasted=1, tts_started=3, tts_played=2, tts_dropped=1)
    stats.tts_dropped_cpu_ms, stats.tts_dropped_ms = 212.4, 240.0
    facts = panel.SessionFacts("u", "m", "warm", "prewarmed", 0, "—", 1, 0, "piper", preemptive=stats.describe())
    text = panel.facts_markdown(facts)
    assert "| LLM requests sent during pauses | 3 sent during pauses, 2 adopted, 1 wasted" in text
    assert "3 synthesized during pauses, 2 played, 1 dropped (212 ms of CPU, 240 ms of synthesis)" in text
    assert "spoken ahead" not in PreemptiveStats(started=1).describe()  # nothing synthesized: no claim
