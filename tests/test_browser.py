"""The real page in a real Chromium: fake microphone from a WAV made at test time.

The app runs as ``python app.py`` on its embedded offline defaults (llama.cpp + SmolLM2,
Whisper tiny.en, Piper).  Chromium plays the WAV as its microphone, in a loop, so the
question is asked once per loop: the first loop is turn 1, the second turn 2.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.space_distance import stage_values  # the panel's stage cells, as the far-page benchmark reads them
from benchmarks.uplink import CHROMIUM_FLAGS  # the flags the uplink benchmark launches Chromium with
from llm import free_loopback_port
from tests.app_process import running_app
from tests.speech import synthesize
from voice.audio import write_wav

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
QUESTION = "What is the capital of France?"
LOOP_SILENCE_S = 14.0


def chromium_path() -> str | None:
    """Debian's Chromium (or CHROMIUM_PATH)."""
    candidate = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    return candidate if Path(candidate).exists() else None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        reason = "Chromium not found (install Debian's chromium or set CHROMIUM_PATH): BROWSER TESTS NOT RUN"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spoken question, then silence: Chromium loops the file, one question per loop."""
    speech = synthesize(QUESTION)
    audio = np.concatenate(
        [
            np.zeros(int(0.5 * speech.sample_rate), np.float32),
            speech.samples,
            np.zeros(int(LOOP_SILENCE_S * speech.sample_rate), np.float32),
        ]
    )
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    write_wav(path, audio, speech.sample_rate)
    return path


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    port = free_loopback_port()
    env = {
        **os.environ,
        "TTS_ENGINE": "piper",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    log_path = ARTIFACTS / "browser-app.log"
    ARTIFACTS.mkdir(exist_ok=True)
    with running_app(["app.py", "--port", str(port)], port=port, log_path=log_path, env=env) as app:
        app.wait_until_ready(page_timeout_s=120, ready_timeout_s=180)
        yield app.url
    assert "Traceback" not in app.log(), "the app logged a traceback"


def test_spoken_question_gets_a_spoken_answer_and_a_full_panel(chromium: str, question_wav: Path, app_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={question_wav}"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            console: list[str] = []  # the page's own log, kept for a failure's post-mortem
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("requestfailed", lambda request: console.append(f"request failed: {request.url}"))
            page.on("pageerror", lambda error: console.append(f"page error: {error}"))
            page.on(
                "request",
                lambda request: (
                    "/gradio_api/" in request.url
                    and console.append(
                        f"{time.time():.3f} {request.method} {request.url} {(request.post_data or '')[:200]}"
                    )
                ),
            )
            page.goto(app_url)
            # A person clicks once the page is up: the microphone's own record button exists then.
            page.locator("#mic button.record-button").wait_for(state="visible", timeout=30_000)
            page.get_by_role("button", name="Start speaking").click()
            expect(page.locator("#status")).to_contain_text(
                re.compile("Connection ready in [0-9,]+ ms|Pre-warming"), timeout=30_000
            )

            # The bundled model answers: the page says what it is, next to the conversation.
            expect(page.locator("#model-caveat")).to_contain_text("small offline model that is wrong on many facts")
            chat = page.locator("#chat")
            # Four words in order prove the microphone's audio reached Whisper intact; the last word
            # is left out because tiny.en hears Chromium's resampled "France" as "fence" now and then.
            expect(chat).to_contain_text(re.compile(r"what is the capital", re.I), timeout=60_000)
            # The assistant's reply: a second message bubble with text.
            expect(page.locator("#chat [data-testid='bot']").first).not_to_be_empty(timeout=60_000)

            # Every stage of the current turn shows a number (ms after the end of speech).
            all_stages_known = """() => {
                const rows = [...document.querySelectorAll('#current-turn tr[data-stage]')];
                return rows.length > 0 && rows.every(r => /[0-9]/.test(r.querySelector('.wv-ms').textContent)); }"""
            page.wait_for_function(all_stages_known, timeout=60_000)
            stages = stage_values(page)
            values = {k: float(v.replace(",", "").split()[0]) for k, v in stages.items()}
            assert list(values) == [
                "uplink_ms",
                "endpoint_ms",
                "transcript_ms",
                "request_sent_ms",
                "status_ms",
                "first_token_ms",
                "first_sentence_ms",
                "first_audio_ms",
            ]
            assert all(v > 0 for k, v in values.items() if k != "uplink_ms"), stages
            # The zero is the end of speech as the page captured it: the chunk's way up is known
            # (on loopback it may round to 0 within the clock offset's uncertainty).
            assert values["uplink_ms"] >= 0, stages
            expect(page.locator("#current-turn [data-fact=clock]")).to_contain_text("as your page captured it")
            # The audio came the page's own way (web/mic.js): 20 ms frames over one WebSocket.
            assert page.evaluate("() => window.warmvoiceMic.state.path") == "websocket"
            expect(page.locator("#facts")).to_contain_text("microphone over the page's WebSocket")
            expect(page.locator("#current-turn [data-fact=clock]")).to_contain_text("over one WebSocket")

            # Reply audio reached the page's audio output: the Web Audio player scheduled it and
            # its clock ran past it (the fake output device plays in real time).
            page.wait_for_function(
                """() => { const s = window.warmvoice && window.warmvoice.state;
                           return s && s.chunks > 0 && s.scheduledSeconds > 0.2 && s.ctx
                                  && s.ctx.state === 'running' && s.ctx.currentTime > 0.2; }""",
                timeout=60_000,
            )

            # The player told the server once that audio was really playing: the panel shows when
            # that word arrived, after the first audio was sent.
            page.wait_for_function(
                "() => document.querySelector('#current-turn tr[data-measure=playback_confirmed_ms]')",
                timeout=30_000,
            )
            played = page.evaluate(
                """() => document.querySelector('#current-turn tr[data-measure=playback_confirmed_ms] .wv-ms')
                      .textContent"""
            )
            assert float(played.replace(",", "").split()[0]) >= values["first_audio_ms"], (played, stages)
            assert page.evaluate("() => window.warmvoice.state.reported") >= 1
            expect(page.locator("#current-turn")).to_contain_text(re.compile(r"browser player [0-9,]+ ms"))
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser-turn-heard.png"), full_page=True)

            # The WAV loops: the same question again is turn 2, on the reused pooled connection.
            page.wait_for_function(
                """() => { const panel = document.querySelector('#current-turn');
                           const conn = panel && panel.querySelector('[data-fact=connection]');
                           return panel && /Turn [2-9]/.test(panel.textContent) && conn
                                  && conn.textContent.startsWith('reused'); }""",
                timeout=90_000,
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser-two-turns.png"), full_page=True)
            page.locator("#stop").click()
            expect(page.locator("#status")).to_contain_text("ended", timeout=15_000)

            # Start again in the same tab: the new session's first reply is played too (its chunks
            # are numbered from 1 again; the player must not take them for ones it already played),
            # so its turn 1 gets its playback confirmed.
            page.get_by_role("button", name="Start speaking").click()
            page.wait_for_function(
                """() => { const panel = document.querySelector('#current-turn');
                           return panel && /Turn 1 /.test(panel.textContent)
                                  && panel.querySelector('tr[data-measure=playback_confirmed_ms]'); }""",
                timeout=60_000,
            )
            page.locator("#stop").click()
            expect(page.locator("#status")).to_contain_text("ended", timeout=15_000)
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
            (ARTIFACTS / "browser-console.log").write_text("\n".join(console) + "\n")
            raise
        finally:
            browser.close()


def test_without_the_microphone_socket_gradio_s_streaming_microphone_carries_the_audio(
    chromium: str, question_wav: Path, app_url: str
) -> None:
    """The fallback: the page's socket closes before it is ready (Playwright answers it and closes
    it, as a proxy without WebSockets would), so the page presses the record button of Gradio's
    streaming microphone; the spoken turn is heard, its zero is still the end of speech as the
    page captured it (web/uplink.js), and the facts say which way the audio came."""
    from playwright.sync_api import sync_playwright

    from benchmarks.uplink import visit

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={question_wav}"]
        )
        try:
            fallback = visit(browser, "fallback", app_url, turns=1, fallback=True)
        finally:
            browser.close()
    assert len(fallback.turns) == 1, fallback
    assert "as your page captured it" in fallback.clocks[0] and "Gradio's queue" in fallback.clocks[0], fallback
    assert fallback.mic_path.startswith("Gradio's streaming microphone (the fallback"), fallback
    turn = fallback.turns[0]
    assert turn.playing_ms is not None and turn.first_audio_ms is not None and turn.uplink_ms >= 0, fallback
