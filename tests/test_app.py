"""The Gradio layer without a browser: flags, page structure, and the callbacks a tab drives."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import weakref
from typing import Any

import gradio as gr
import numpy as np
import pytest

import app
from tests.loopback_session import FakeRequest
from voice import panel
from voice.event_hub import Listener
from voice.events import SessionEvent
from voice.runtime import RuntimeLoader
from voice.session import VoiceSession
from voice.settings import load_settings
from web.callbacks import PageCallbacks
from web.page import PLAYER_HEAD, build_page


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9000")
    monkeypatch.setenv("TTS_ENGINE", "edge")
    settings = app.app_settings(app.parse_args(["--port", "7000", "--strategy", "cold"]))
    assert settings.port == 7000 and settings.connection_strategy == "cold" and settings.tts_engine == "edge"
    assert settings.host == "127.0.0.1", "the default bind must be loopback"


def test_bad_configuration_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main(["--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: GRADIO_SERVER_PORT=70000 is not valid") and "\n" not in err
    assert "Traceback" not in err


def test_page_has_the_controls_a_demo_needs() -> None:
    settings = load_settings({"tts_engine": "piper"}, environ={}, dotenv_path=None)
    web = PageCallbacks(settings, RuntimeLoader(settings))
    demo = build_page(web)
    config = demo.get_config_file()
    labels = {c["props"].get("value") for c in config["components"] if c["type"] == "button"}
    assert {"Start speaking", "Stop", "Send"} <= labels
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {"mic", "reply-audio", "chat", "current-turn", "turns", "chart", "facts", "strategy", "rtt"} <= ids
    audio = {c["props"]["elem_id"]: c["props"] for c in config["components"] if c["type"] == "audio"}
    assert audio["mic"]["streaming"] and audio["mic"]["sources"] == ["microphone"]
    assert "window.warmvoice.play" in PLAYER_HEAD or "warmvoice" in PLAYER_HEAD


async def _pump_until(pump, predicate, timeout_s: float = 90.0):
    async with asyncio.timeout(timeout_s):
        async for outputs in pump:
            if predicate(outputs):
                return outputs
    raise AssertionError("pump ended before the expected output")


@pytest.mark.slow
async def test_a_typed_turn_flows_through_the_callbacks(voice_runtime, offline_settings) -> None:
    web = PageCallbacks(offline_settings, RuntimeLoader.loaded(offline_settings, voice_runtime))
    tab = FakeRequest("tab-one")
    statuses = [s async for s in web.start("prewarmed", 0, offline_settings.system_prompt, 500, True, tab)]
    assert statuses[-1] == "Pre-warming…"
    pump = web.pump(tab)
    first = await anext(pump)
    assert len(first) == 7 and "No turn yet" in first[3]

    assert await web.type_turn("Say hello in one sentence.", tab) == ""
    status, chat, _audio, current, _rows, _chart, facts = await _pump_until(
        pump, lambda out: isinstance(out[4], list) and out[4] and out[4][-1][-1] == "ok"
    )
    assert chat[0] == {"role": "user", "content": "Say hello in one sentence."}
    assert chat[1]["role"] == "assistant" and chat[1]["content"].strip()
    assert "First audio ready" in current and "Speech end → first audio" in current
    assert "smollm2" in facts and "Traceback" not in status

    assert "ended" in await web.stop(tab)
    rest = [out async for out in pump]
    assert rest and rest[-1][0] == "Session ended."


async def _first_audio(voice_runtime, offline_settings, key: str):
    """A started tab that typed "Hi!", up to the page update that carried the first audio chunk:
    (app, tab, session, pump, that update)."""
    web = PageCallbacks(offline_settings, RuntimeLoader.loaded(offline_settings, voice_runtime))
    tab = FakeRequest(key)
    [s async for s in web.start("prewarmed", 0, "", 500, True, tab)]
    session = await web._session(tab)
    assert session is not None
    pump = web.pump(tab)
    await anext(pump)
    await web.type_turn("Hi!", tab)
    return web, tab, session, pump, await _pump_until(pump, lambda o: _has_audio(o[2]))


def _has_audio(payload: object) -> bool:
    # A payload may carry only a ping for the page (voice.browser_link), no audio.
    return isinstance(payload, str) and bool(json.loads(payload)["chunks"])


@pytest.mark.slow
async def test_audio_chunks_reach_the_reply_player_in_order(voice_runtime, offline_settings) -> None:
    web, tab, session, pump, out = await _first_audio(voice_runtime, offline_settings, "tab-audio")
    payload = json.loads(out[2])
    assert payload["session"] == session.instance_id and payload["flush"] is False
    (chunk,) = payload["chunks"]
    assert chunk["seq"] == 1 and chunk["turn"] == 1 and chunk["rate"] == 24000
    pcm = np.frombuffer(base64.b64decode(chunk["pcm"]), "<i2")
    assert pcm.size > 1000 and np.abs(pcm).max() > 300
    await web.stop(tab)

    # Stop, then Start in the same tab: same tab key, a new stream, so the player starts afresh
    # instead of skipping the new session's chunks 1, 2, ... as already played.
    [s async for s in web.start("prewarmed", 0, "", 500, True, tab)]
    again = await web._session(tab)
    assert again is not None and again.session_id == session.session_id
    assert again.instance_id != session.instance_id
    # The old pump, still winding down, leaves the page to the new session's pump.
    assert all(o[0] != "Session ended." for o in [o async for o in pump])
    await web.aclose()


@pytest.mark.slow
async def test_the_players_report_puts_playback_in_the_panel(voice_runtime, offline_settings) -> None:
    web, tab, session, pump, _ = await _first_audio(voice_runtime, offline_settings, "tab-played")
    column = panel.TURN_COLUMNS.index("Playing (browser)")

    # Reports of another stream (an older session of this tab), of unknown turns, or garbage: nothing.
    for report in (
        '[{"session": "old", "turn": 1}]',
        json.dumps([{"session": session.instance_id, "turn": 9}]),
        "not json",
        '{"turn": 1}',
        "[" * 10_000,
    ):
        await web.playback_started(report, tab)
    assert session.latencies[0].playback_confirmed_ms is None

    await web.playback_started(json.dumps([{"session": session.instance_id, "turn": 1, "player_ms": 12}]), tab)
    out = await _pump_until(pump, lambda o: isinstance(o[3], str) and panel.PLAYBACK_LABEL in o[3])
    lat = session.latencies[0]
    assert lat.playback_confirmed_ms is not None and lat.first_audio_ms is not None
    assert lat.playback_confirmed_ms >= lat.first_audio_ms and lat.extras["player_ms"] == 12.0
    assert out[4][0][column] == f"{lat.playback_confirmed_ms:,.0f}"
    await web.aclose()
    [o async for o in pump]


async def test_typing_before_start_is_a_clear_error(offline_settings) -> None:
    web = PageCallbacks(offline_settings, RuntimeLoader(offline_settings))
    with pytest.raises(gr.Error, match="Start speaking"):
        await web.type_turn("hello", FakeRequest("nobody"))


async def test_start_opens_the_requested_pool_directly(voice_runtime, offline_settings, monkeypatch) -> None:
    """The A/B choice made before clicking applies to the session's first (and only) pool."""
    heard: list[Listener[SessionEvent]] = []
    opened = voice_runtime.new_session

    def new_session(*args: Any, **kwargs: Any) -> VoiceSession:  # the session, heard from before its start
        session = opened(*args, **kwargs)
        heard.append(session.events.listen("test"))
        return session

    monkeypatch.setattr(voice_runtime, "new_session", new_session)
    web = PageCallbacks(offline_settings, RuntimeLoader.loaded(offline_settings, voice_runtime))
    tab = FakeRequest("tab-cold")
    statuses = [s async for s in web.start("cold", 0, "", 700, False, tab)]
    session = await web._session(tab)
    try:
        assert statuses[-1] == "Listening…"
        assert session is not None and session.settings.connection_strategy == "cold" and not session.settings.barge_in
        assert session.client is not None and session.client.stats.warmups == 0
        statuses_sent = []
        while not heard[0].empty():
            statuses_sent.append(getattr(heard[0].get_nowait(), "text", ""))
        assert "Pre-warming…" not in statuses_sent, "a default pre-warmed pool was opened and then replaced"
    finally:
        await web.aclose()


@pytest.mark.slow
async def test_the_page_round_trip_is_measured_on_the_servers_clock(voice_runtime, offline_settings) -> None:
    """The pump pings the page through the player's payload (never together with audio); the
    player's answer, minus the time it spent in the page, is the round trip the facts show."""
    web = PageCallbacks(offline_settings, RuntimeLoader.loaded(offline_settings, voice_runtime))
    tab = FakeRequest("tab-ping")
    [s async for s in web.start("prewarmed", 0, "", 500, True, tab)]
    session = await web._session(tab)
    assert session is not None
    pump = web.pump(tab)
    first = await anext(pump)
    assert "Browser ↔ server round trip | measuring…" in first[6]
    assert json.loads(first[2]) == {"session": session.instance_id, "flush": False, "chunks": [], "ping": 1}

    # Answers to another stream, to a ping never sent, or garbage: nothing measured.
    for report in (
        json.dumps([{"session": "old", "ping": 1, "page_ms": 1}]),
        json.dumps([{"session": session.instance_id, "ping": 7, "page_ms": 1}]),
        "not json",
        "[" * 5000,
    ):
        await web.pong(report, tab)
    assert web._links[session].link.summary() is None

    await asyncio.sleep(0.2)  # the "network"
    await web.pong(json.dumps([{"session": session.instance_id, "ping": 1, "page_ms": 3}]), tab)
    trips = web._links[session].link.summary()
    assert trips is not None and trips.count == 1 and 190 <= trips.last_ms < 5000
    out = await anext(pump)
    assert f"Browser ↔ server round trip | {trips.last_ms:,.0f} ms (1 ping)" in out[6]
    # A repeated answer is not a second measurement.
    await web.pong(json.dumps([{"session": session.instance_id, "ping": 1, "page_ms": 3}]), tab)
    assert web._links[session].link.summary().count == 1
    await web.aclose()
    [o async for o in pump]
    await web.pong(json.dumps([{"session": session.instance_id, "ping": 2, "page_ms": 3}]), tab)
    assert web._links[session].link.summary().count == 1, "a closed session measures nothing more"
    link = weakref.ref(web._links[session])
    del session
    gc.collect()
    assert link() is None, "the link goes with its session"


def test_the_pong_report_is_bounded_and_not_an_api() -> None:
    """The player's answers to pings: bounded in the page, ignored past the bound by the server,
    and not offered in Gradio's API."""
    from voice.browser_link import MAX_PONG_CHARS, parse_pongs

    settings = load_settings({"tts_engine": "piper"}, environ={}, dotenv_path=None)
    config = build_page(PageCallbacks(settings, RuntimeLoader(settings))).get_config_file()
    by_elem = {c["props"].get("elem_id"): c for c in config["components"]}
    assert by_elem["pong-report"]["props"]["max_length"] == MAX_PONG_CHARS
    assert parse_pongs('[{"session": "s", "ping": 1}' + " " * MAX_PONG_CHARS + "]", "s") == []
    pong_id = by_elem["pong"]["id"]
    (pong,) = [d for d in config["dependencies"] if any(t[0] == pong_id for t in d["targets"])]
    assert pong["api_visibility"] == "private"
    assert "takePongs" in pong["js"]


def _caveat(settings) -> dict | None:
    config = build_page(PageCallbacks(settings, RuntimeLoader(settings))).get_config_file()
    return next((c["props"] for c in config["components"] if c["props"].get("elem_id") == "model-caveat"), None)


def test_the_page_says_when_the_tiny_model_answers_and_how_to_get_real_answers(tmp_path) -> None:
    bundled = _caveat(load_settings({"tts_engine": "piper"}, environ={}, dotenv_path=None))
    assert bundled is not None and bundled["visible"] is not False
    line = bundled["value"]
    assert "SmolLM2-135M" in line and "wrong on many facts" in line and "\n" not in line
    assert "OPENAI_API_KEY" in line and "OPENAI_BASE_URL" in line and "Ollama" in line
    # Another endpoint, a key, or another local model: no such line.
    other_model = tmp_path / "other.gguf"
    other_model.write_bytes(b"GGUF")
    for env in (
        {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "LLM_MODEL": "llama3.2"},
        {"OPENAI_API_KEY": "sk-test"},
        {"EMBEDDED_MODEL": str(other_model)},
    ):
        props = _caveat(load_settings({"tts_engine": "piper"}, environ=env, dotenv_path=None))
        assert props is not None and props["visible"] is False, env
