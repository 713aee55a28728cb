"""A Hugging Face Space runs what the repository says: the pinned Gradio, started the Space's way.

The pin test is fast (no models).  The start test launches ``app.py`` as the Space runtime
does and takes a model load (~1 min on 2 cores).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from llm import free_loopback_port

# The browser tests' Chromium: its fixture skips (or fails in CI) when there is none.
from tests.app_process import AppProcess, running_app, stop_process
from tests.test_browser import ARTIFACTS, CHROMIUM_FLAGS, _stage_values, chromium  # noqa: F401
from voice.audio import write_wav

ROOT = Path(__file__).resolve().parent.parent
UPGRADE_HOW = (
    "Gradio's version lives in three places that must agree: README.md's front matter `sdk_version` "
    "(what a Space installs), requirements.txt's `gradio>=X.Y,<X.Y+1` (what pip installs) and the "
    "installed package (what this suite ran). To upgrade: pip install 'gradio==X.Y.Z', run the "
    "whole suite (the browser tests above all), then set `sdk_version: X.Y.Z` and the range "
    "`gradio>=X.Y,<X.(Y+1)` in one commit (CONTRIBUTING.md: 'Upgrading Gradio')."
)


def front_matter() -> dict[str, object]:
    """README.md's YAML header: the Space's configuration."""
    text = (ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Space's YAML front matter between --- lines"
    return yaml.safe_load(match.group(1))


def gradio_requirement() -> Requirement:
    """The ``gradio`` line of requirements.txt."""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and Requirement(line).name.lower() == "gradio":
            return Requirement(line)
    raise AssertionError("requirements.txt has no gradio line")


def test_space_runs_the_gradio_this_suite_runs() -> None:
    header = front_matter()
    assert header.get("sdk") == "gradio" and header.get("app_file") == "app.py"
    pinned = str(header.get("sdk_version", ""))
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), f"sdk_version {pinned!r} is not X.Y.Z. {UPGRADE_HOW}"
    installed = importlib.metadata.version("gradio")
    assert installed == pinned, f"installed Gradio {installed} != README sdk_version {pinned}. {UPGRADE_HOW}"

    spec = gradio_requirement().specifier
    major, minor, patch = Version(pinned).release
    assert spec.contains(pinned), f"requirements.txt's {spec} does not admit sdk_version {pinned}. {UPGRADE_HOW}"
    # Exactly the tested X.Y line: its patch releases, nothing older or newer.
    assert spec.contains(f"{major}.{minor}.{patch + 7}"), f"{spec} should admit {major}.{minor}.x. {UPGRADE_HOW}"
    for other in (f"{major}.{minor + 1}.0", f"{major + 1}.0.0", f"{major}.{minor - 1}.99" if minor else "0.0.1"):
        assert not spec.contains(other), f"requirements.txt's {spec} admits untested Gradio {other}. {UPGRADE_HOW}"


# What the Space runtime gives a Gradio app, besides the variables it documents for every Space
# (SPACE_ID, SPACE_AUTHOR_NAME, SPACE_REPO_NAME, SPACE_TITLE, SPACE_HOST, CPU_CORES, MEMORY):
# SYSTEM=spaces (Gradio's own "am I on a Space" test), a public bind, the port, and settings a
# platform commonly adds (HOST, PORT, GRADIO_SSR_MODE) that must not move, expose or break anything.
SPACE_ENV = {
    "SYSTEM": "spaces",
    "SPACE_ID": "warmvoice-tests/WarmVoice",
    "SPACE_AUTHOR_NAME": "warmvoice-tests",
    "SPACE_REPO_NAME": "WarmVoice",
    "SPACE_TITLE": "WarmVoice",
    "SPACE_HOST": "warmvoice-tests-warmvoice.hf.space",
    "SPACE_CREATOR_USER_ID": "0123456789abcdef01234567",
    "CPU_CORES": "2",
    "MEMORY": "16Gi",
    "GRADIO_SERVER_NAME": "0.0.0.0",
    "HOST": "0.0.0.0",
    "GRADIO_SSR_MODE": "true",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
}
# Never inherited from the developer's shell: the Space starts with no key and no endpoint.
_NOT_ON_A_FRESH_SPACE = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_MODEL", "TTS_ENGINE", "GRADIO_SERVER_PORT")


def _children(pid: int) -> set[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def space_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """``python /repo/app.py`` from an empty working directory (no .env), the Space's environment,
    the port from the environment; stopped with SIGTERM as a Space restart stops it."""
    workdir = tmp_path_factory.mktemp("space-workdir")
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if k not in _NOT_ON_A_FRESH_SPACE}
    env.update(SPACE_ENV)
    env["GRADIO_SERVER_PORT"] = str(port)
    env["PORT"] = str(port)
    children: set[int] = set()
    try:
        with running_app(
            [str(ROOT / "app.py")],
            port=port,
            log_path=workdir / "app.log",
            cwd=workdir,
            env=env,
            stop_signal=signal.SIGTERM,
            stop_timeout_s=30,
        ) as app:
            app.wait_until_ready(page_timeout_s=120, ready_timeout_s=240)
            children = _children(app.proc.pid)
            assert children, "the embedded LLM server should run as the app's child process"
            try:
                yield app
            finally:
                children |= _children(app.proc.pid) if app.proc.poll() is None else set()
    finally:
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [pid for pid in children if _alive(pid)]
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
    if not app.stopped_on_signal:
        pytest.fail(f"app ignored SIGTERM for 30 s: {app.log()[-2000:]}")
    assert not orphans, f"child processes outlived the app: {orphans}"
    assert "Embedded LLM server stopped" in app.log(), "SIGTERM stops the app as Ctrl-C does"
    assert "Traceback" not in app.log(), app.log()[-3000:]


@pytest.mark.slow
def test_app_starts_as_a_space_starts_it(space_app: AppProcess) -> None:
    with urllib.request.urlopen(space_app.url, timeout=10) as response:
        page = response.read().decode()
    assert "WarmVoice" in page and "warmvoice" in page, "the page and its player script are served"
    log = space_app.log()
    assert "Serving on 0.0.0.0: reachable from other machines" in log
    backend = re.search(r"LLM backend: (.+)", log)
    assert backend and "embedded" in backend.group(1).lower(), log[-3000:]

    # The embedded server stays on loopback, on a port of its own, whatever HOST/PORT say.
    started = re.search(r"Embedded LLM server ready in \d+ ms at (http://127\.0\.0\.1:(\d+)/v1)", log)
    assert started, log[-3000:]
    assert int(started.group(2)) != space_app.port
    with urllib.request.urlopen(f"{started.group(1)}/models", timeout=10) as response:
        assert response.status == 200 and b"smollm2" in response.read()
    completion = urllib.request.Request(
        f"{started.group(1)}/chat/completions",
        data=json.dumps(
            {"model": "smollm2-135m-instruct", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(completion, timeout=60) as response:
        assert json.loads(response.read())["choices"][0]["message"]["content"], "the embedded model answers"
    assert not any(word in log for word in ("sk-", "Bearer")), "no key material in the log"


EMULATED_RTT_MS = 150.0
FRAME_MS = 20.0  # web/mic.js's frames
QUESTION = "Say hello in one short sentence."


@dataclass
class Visit:
    """What one page showed after a typed turn: its stages, the playback split and the round trip."""

    stages: dict[str, float]
    split: dict[str, float]
    rtt_best_ms: float
    pings: int


@contextlib.contextmanager
def latency_proxy(target_port: int, rtt_ms: float, log_path: Path) -> Iterator[str]:
    """``python -m llm.latency_proxy`` in front of the app: every byte between the browser and the
    app waits half ``rtt_ms`` each way, a new connection one more round trip (a far-away visitor)."""
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llm.latency_proxy",
                "--target",
                f"127.0.0.1:{target_port}",
                "--rtt-ms",
                str(rtt_ms),
            ],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not (match := re.search(r"listening on 127\.0\.0\.1:(\d+)", log_path.read_text())):
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield f"http://127.0.0.1:{match.group(1)}"
        finally:
            stop_process(proc, signal.SIGINT, 15)


def _number(text: str) -> float:
    return float(text.replace(",", "").split()[0])


def _typed_turn(browser, url: str, name: str) -> Visit:
    """Open the page at ``url``, start, type a turn, wait for its confirmed playback and a few pings."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    try:
        page.goto(url, timeout=60_000)
        page.locator("#mic button.record-button").wait_for(state="visible", timeout=60_000)
        page.get_by_role("button", name="Start speaking").click()
        expect(page.locator("#status")).to_contain_text(
            re.compile("Connection ready in [0-9,]+ ms|Pre-warming|Listening"), timeout=30_000
        )
        page.locator("#typed textarea").fill(QUESTION)
        page.locator("#typed textarea").press("Enter")
        page.wait_for_function("() => document.querySelector('#current-turn [data-split=network]')", timeout=90_000)
        # At least eight pings, the last ones after the turn (the facts refresh every second).
        page.wait_for_function(
            """() => { const m = /best of (\\d+) pings/.exec(document.querySelector('#facts').innerText);
                       return m && Number(m[1]) >= 8; }""",
            timeout=60_000,
        )
        stages = {k: _number(v) for k, v in _stage_values(page).items() if re.match(r"[0-9]", v)}
        split = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('#current-turn [data-split]')]
                  .map(s => [s.dataset.split, s.textContent.trim()]))"""
        )
        facts = page.locator("#facts").inner_text()
        rtt = re.search(r"round trip\s+([0-9,]+) ms best of (\d+) pings", facts)
        assert rtt, facts
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"space-visitor-{name}.png"), full_page=True)
        page.locator("#stop").click()
        expect(page.locator("#status")).to_contain_text("ended", timeout=15_000)
        return Visit(stages, {k: _number(v) for k, v in split.items()}, _number(rtt.group(1)), int(rtt.group(2)))
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.browser
def test_a_far_away_visitor_sees_the_distance_as_network_not_pipeline(
    space_app: AppProcess,
    chromium: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """The same Space-started app, visited from next door and from 150 ms away (the latency proxy
    between Chromium and the app): the panel puts the 150 ms in the round trip, not in a stage."""
    from playwright.sync_api import sync_playwright

    silence = tmp_path / "silence.wav"  # the microphone hears nothing: the turns are typed
    write_wav(silence, np.zeros(16_000, np.float32), 16_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={silence}"]
        )
        try:
            near = _typed_turn(browser, space_app.url, "near")
            with latency_proxy(space_app.port, EMULATED_RTT_MS, tmp_path / "proxy.log") as far_url:
                far = _typed_turn(browser, far_url, "far")
        finally:
            browser.close()
    print(f"\nnear: {near}\nfar:  {far}")
    # The round trip the panel shows grew by the emulated distance, within 20 %.  (The near page's
    # round trip is Gradio's own transport: 18 ms on this machine at load 5.5, 53 ms at load 9.5, and
    # the far page pays it too, so the shown far value itself is 150 ms plus that.)
    assert abs(far.rtt_best_ms - near.rtt_best_ms - EMULATED_RTT_MS) <= 0.2 * EMULATED_RTT_MS, (near, far)
    assert far.rtt_best_ms >= EMULATED_RTT_MS, (near, far)
    # ...the playback's round trip carries at least that distance (the audio's way down, the report's
    # way up; more when the far page also has to open a connection or queue behind microphone uploads)...
    assert far.split["network"] >= 0.8 * EMULATED_RTT_MS, (near, far)
    # ...and the pipeline's stages start when the typed turn reached the server: the server's part is
    # the first-audio stage itself, and the first stage after arrival did not take the distance
    # (had it been measured from the page's click, it would be at least the one-way 75 ms).
    for visit in (near, far):
        assert visit.split["server"] == visit.stages["first_audio_ms"], visit
    assert (
        set(far.stages)
        == set(near.stages)
        == {
            "request_sent_ms",
            "status_ms",
            "first_token_ms",
            "first_sentence_ms",
            "first_audio_ms",
        }
    )
    assert far.stages["request_sent_ms"] < EMULATED_RTT_MS / 2, far
    assert "Traceback" not in space_app.log()


@pytest.mark.slow
@pytest.mark.browser
def test_a_far_away_visitor_s_microphone_audio_takes_one_way_longer_to_arrive_and_the_panel_counts_it(
    space_app: AppProcess,
    chromium: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """Spoken turns from next door and from 150 ms away (the latency proxy between Chromium and
    the app): both panels start at the end of speech as the page captured it, and the far page's
    first stage, "Your audio reached the server", carries the distance: one way, since the page
    streams its microphone in 20 ms frames over one open WebSocket (web/mic.js).

    The uplink runs from the capture of the last sample of the frame that held the end of speech
    to that frame's arrival in the server's handler: the page's hand-over (which may wait up to a
    frame), the way, the handler.  Next door that is small; far away it is the same plus the
    proxy's one-way delay.  Measured across the two clocks, so true to within the offset's stated
    uncertainty.  The median of three turns a page keeps one odd turn from deciding: a busy page
    (this machine's two cores) now and then holds a frame for 30-140 ms before sending it.
    """
    from playwright.sync_api import sync_playwright

    from benchmarks.uplink import question_wav, visit

    turns = 3
    wav = question_wav(tmp_path / "question.wav")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"]
        )
        try:
            near = visit(browser, "near", space_app.url, turns=turns)
            with latency_proxy(space_app.port, EMULATED_RTT_MS, tmp_path / "proxy.log") as far_url:
                far = visit(browser, "far", far_url, turns=turns)
        finally:
            browser.close()
    print(f"\nnear: {near}\nfar:  {far}")
    for v in (near, far):
        assert len(v.turns) == turns, v
        assert all("as your page captured it" in clock for clock in v.clocks), v
        assert v.mic_path.startswith("the page's WebSocket"), v
        for turn in v.turns:
            assert turn.in_page_ms is not None and turn.to_server_ms is not None, v
            assert turn.playing_ms is not None and turn.first_audio_ms is not None
            assert turn.playing_ms > turn.uplink_ms
    one_way = EMULATED_RTT_MS / 2
    near_ms, far_ms = (statistics.median(v.uplinks()) for v in (near, far))
    # Next door the way up is small: less than the far page's distance alone.
    assert near_ms < one_way, (near, far)
    # Far away it is one way more: within 20 % of the proxy's one-way delay (its timers, the
    # clocks' mapping), plus a frame (20 ms) for a hand-over that waited for the next frame.
    tolerance_ms = 0.2 * one_way
    assert one_way - tolerance_ms <= far_ms - near_ms <= one_way + tolerance_ms + FRAME_MS, (near, far)
    # The distance is spent on the way, not in the page: no upload's round trip before the send
    # (Gradio's microphone, the fallback, spends at least the added round trip there).
    assert statistics.median(t.in_page_ms or 0.0 for t in far.turns) < EMULATED_RTT_MS, (near, far)
    assert "Traceback" not in space_app.log()
