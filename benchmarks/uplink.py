"""The microphone audio's way up, from a page next door and from a far one.

Starts ``python app.py`` (embedded LLM, Piper), a latency proxy in front of it (``--rtt-ms``
added to every round trip, as a far visitor has), and Chromium with a fake microphone that
asks a Piper-spoken question once per loop.  The same app is visited directly ("near") and
through the proxy ("far"), ``--turns`` spoken turns each; the panel's own figures are read:
the uplink stage (capture in the page -> arrival at the server), the clock offset's
uncertainty, which path the microphone audio took (the page's WebSocket or the fallback,
Gradio's streaming microphone), first audio and "playing in your browser", all from the end of
speech as the page captured it.  The far page's uplink minus the near page's is compared with
the proxy's one-way delay (half ``--rtt-ms``), whole and for the part after the audio left the page.

    flock /tmp/warmvoice-bench.lock python -m benchmarks.uplink   # writes docs/measurements/uplink.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    command_line,
    progress,
    run_interruptible,
)
from benchmarks.machine_probe import start_run
from benchmarks.report import publish
from benchmarks.uplink_report import QUESTION, Report, TurnFigures, Visit, render_markdown
from benchmarks.voice_families import family, piper_speech
from llm import free_loopback_port
from voice.audio import SAMPLE_RATE, write_wav

ROOT = Path(__file__).resolve().parent.parent
REPORT = "uplink"  # docs/measurements/uplink.md
LOOP_SILENCE_S = 9.0  # after the question: the reply is heard before the question comes again
SETTLE_MS = 10_000  # page age at the click on "Start speaking"
# Debian's Chromium, headless on this closed network, with a fake microphone (tests/test_browser.py uses these too)
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)


def question_wav(path: Path) -> Path:
    """The question in the bundled Piper voice, then silence: the fake microphone loops it."""
    speech = piper_speech(QUESTION, family("piper-1.0"))
    audio = np.concatenate(
        [np.zeros(SAMPLE_RATE // 2, np.float32), speech, np.zeros(int(LOOP_SILENCE_S * SAMPLE_RATE), np.float32)]
    )
    write_wav(path, audio, SAMPLE_RATE)
    return path


def _wait_for_log(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"exited while waiting for {pattern!r}: {path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {pattern!r}: {path.read_text(errors='replace')[-2000:]}")


@contextlib.contextmanager
def _process(
    args: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in ``log_path``; Ctrl-C on the way out, killed after 20 s."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def running_app(workdir: Path, space_env: Callable[[int], dict[str, str]] | None = None) -> Iterator[str]:
    """``python app.py`` on its embedded offline defaults with Piper; yields its URL once ready.
    ``space_env``: started as a Space starts it instead, from ``workdir`` (no .env) in the
    environment ``space_env(port)`` gives, the port read from it."""
    port = free_loopback_port()
    args, cwd = ["app.py", "--port", str(port)], ROOT
    env = {**os.environ, "TTS_ENGINE": "piper", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    env.update({"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    if space_env is not None:
        args, cwd, env = [str(ROOT / "app.py")], workdir, space_env(port)
    log_path = workdir / "app.log"
    with _process(args, log_path, env, cwd) as proc:
        _wait_for_log(log_path, r"Ready in", proc, 300)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        yield url
    if "Traceback" in log_path.read_text(errors="replace"):
        progress(f"the app logged a traceback: see {log_path}")


@contextlib.contextmanager
def latency_proxy(url: str, rtt_ms: float, workdir: Path) -> Iterator[str]:
    """``python -m llm.latency_proxy`` in front of the app at ``url``; yields the far URL."""
    target = url.rsplit("/", 1)[-1]
    log_path = workdir / "proxy.log"
    with _process(["-m", "llm.latency_proxy", "--target", target, "--rtt-ms", str(rtt_ms)], log_path) as proc:
        match = _wait_for_log(log_path, r"listening on 127\.0\.0\.1:(\d+)", proc, 30)
        yield f"http://127.0.0.1:{match.group(1)}"


def _number(text: str) -> float | None:
    text = text.replace(",", "").strip()
    return float(text.split()[0]) if text and re.match(r"-?[0-9]", text) else None


# The current turn's figures once turn N shows its uplink and its playback (else null).
READ_TURN = """(n) => {
    const panel = document.querySelector('#current-turn');
    if (!panel || !panel.textContent.includes('Turn ' + n + ' (voice)')) return null;
    const ms = (sel) => { const cell = panel.querySelector(sel + ' .wv-ms'); return cell ? cell.textContent : ''; };
    const uplink = ms('tr[data-stage=uplink_ms]'), playing = ms('tr[data-measure=playback_confirmed_ms]');
    if (!/[0-9]/.test(uplink) || !/[0-9]/.test(playing)) return null;
    const clock = panel.querySelector('[data-fact=clock]');
    const split = (name) => {
        const part = panel.querySelector('[data-split=' + name + ']');
        return part ? part.textContent : '';
    };
    return { uplink, playing, first_audio: ms('tr[data-stage=first_audio_ms]'), clock: clock ? clock.textContent : '',
             in_page: split('in_page'), to_server: split('to_server') };
}"""


def visit(browser: Any, name: str, url: str, turns: int, *, fallback: bool = False) -> Visit:
    """Open the page, start, and let the fake microphone ask ``turns`` questions; each turn's
    figures as the panel shows them once its uplink and its playback are known.  ``fallback``:
    the page's microphone socket is closed at once (as behind a proxy that carries no
    WebSockets), so Gradio's streaming microphone carries the audio."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    if fallback:
        page.route_web_socket(re.compile(r"/warmvoice/mic$"), lambda ws: ws.close(code=1011, reason="no sockets here"))
    result = Visit(name, url, fallback=fallback)
    try:
        page.goto(url, timeout=60_000)
        page.locator("#mic button.record-button").wait_for(state="visible", timeout=60_000)
        # Clicked as a person would, once the page has settled: Gradio's recorder loads its WAV
        # encoder after the page renders, and through the proxy that takes longer than the 3 s
        # app.py waits before pressing record (a press before it finds no recorder).
        page.wait_for_function(f"() => performance.now() > {SETTLE_MS}", timeout=60_000)
        page.get_by_role("button", name="Start speaking").click()
        for n in range(1, turns + 1):
            try:
                shown = page.wait_for_function(READ_TURN, arg=n, timeout=(LOOP_SILENCE_S + 60) * 1000).json_value()
            except PlaywrightTimeout:
                progress(
                    f"{name}: turn {n} showed no uplink and playback: {page.locator('#current-turn').inner_text()}"
                )
                break
            result.turns.append(
                TurnFigures(
                    n,
                    _number(shown["uplink"]) or 0.0,
                    _number(shown["first_audio"]),
                    _number(shown["playing"]),
                    _number(shown["in_page"]),
                    _number(shown["to_server"]),
                )
            )
            result.clocks.append(shown["clock"])
        facts = page.locator("#facts").inner_text()
        clock = re.search(r"Page clock → server clock\s+(.+)", facts)
        trip = re.search(r"round trip\s+(.+)", facts)
        result.page_clock = clock.group(1).strip() if clock else ""
        path = re.search(r"microphone over (.+)$", result.page_clock)
        result.mic_path = path.group(1) if path else "not said"
        result.round_trip = trip.group(1).strip() if trip else ""
        page.locator("#stop").click()
        page.wait_for_timeout(1000)
    finally:
        page.close()
    progress(f"{name}: {result.turns} {result.page_clock}")
    return result


def parse_page_args(p: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed by ``p`` with the options of a benchmark that visits a near and a far page
    added: the distance (checked), the report, Chromium."""
    p.add_argument("--rtt-ms", type=float, default=150.0, help="round trip the proxy adds (default 150)")
    p.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    args = p.parse_args(argv)
    if not 0 < args.rtt_ms <= 1000:
        p.error("--rtt-ms must be 0..1000")
    return args


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.uplink", description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=3, help="spoken turns per page (default 3)")
    p.add_argument(
        "--fallback",
        action="store_true",
        help="also visit both pages with the microphone socket refused (Gradio's streaming microphone)",
    )
    args = parse_page_args(p, argv)
    if not 1 <= args.turns <= 10:
        p.error("--turns must be 1..10")
    return args


def run(argv: Sequence[str]) -> int:
    """Measure and publish; returns the exit code."""
    args = parse_args(argv)
    from playwright.sync_api import sync_playwright

    start = start_run()
    with tempfile.TemporaryDirectory(prefix="warmvoice-uplink-") as tmp:
        workdir = Path(tmp)
        wav = question_wav(workdir / "question.wav")
        progress("starting the app…")
        with (
            running_app(workdir) as near_url,
            latency_proxy(near_url, args.rtt_ms, workdir) as far_url,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(
                executable_path=args.chromium, args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"]
            )
            try:
                visits = [visit(browser, "near", near_url, args.turns), visit(browser, "far", far_url, args.turns)]
                if args.fallback:
                    visits += [
                        visit(browser, "near, fallback", near_url, args.turns, fallback=True),
                        visit(browser, "far, fallback", far_url, args.turns, fallback=True),
                    ]
            finally:
                browser.close()
    report = Report(command_line("python -m benchmarks.uplink", argv), start.machine(), args.rtt_ms, visits)
    publish(REPORT, render_markdown(report), report.command, report.machine, markdown_path=args.markdown)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_interruptible(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
