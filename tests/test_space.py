"""A Hugging Face Space runs what the repository says: the pinned Gradio, started the Space's way.

The pin test is fast (no models).  The start test launches ``app.py`` as the Space runtime
does and takes a model load (~1 min on 2 cores).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import statistics
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from benchmarks.space_distance import STAGES, near_and_far, space_environment
from benchmarks.uplink import latency_proxy, question_wav, visit
from llm import free_loopback_port

# The browser tests' Chromium: its fixture skips (or fails in CI) when there is none.
from tests.app_process import AppProcess, running_app
from tests.test_browser import ARTIFACTS, CHROMIUM_FLAGS, chromium  # noqa: F401

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
    env = space_environment(port)
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


@pytest.mark.slow
@pytest.mark.browser
def test_a_far_away_visitor_sees_the_distance_as_network_not_pipeline(
    space_app: AppProcess,
    chromium: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """The same Space-started app, visited from next door and from 150 ms away (the latency proxy
    between Chromium and the app): the panel puts the 150 ms in the round trip, not in a stage.
    ``python -m benchmarks.space_distance`` publishes the same visits' figures."""
    near, far = near_and_far(chromium, space_app.url, EMULATED_RTT_MS, tmp_path, screenshots=ARTIFACTS)
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
    for seen in (near, far):
        assert seen.split["server"] == seen.stages["first_audio_ms"], seen
    assert set(far.stages) == set(near.stages) == set(STAGES)
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

    turns = 3
    wav = question_wav(tmp_path / "question.wav")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"]
        )
        try:
            near = visit(browser, "near", space_app.url, turns=turns)
            with latency_proxy(space_app.url, EMULATED_RTT_MS, tmp_path) as far_url:
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
