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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from benchmarks.common import (
    MachineInfo,
    command_line,
    progress,
    run_interruptible,
)
from benchmarks.machine_probe import start_run
from benchmarks.report import Table, publish
from llm import free_loopback_port
from voice.audio import SAMPLE_RATE, write_wav

ROOT = Path(__file__).resolve().parent.parent
REPORT = "uplink"  # docs/measurements/uplink.md
QUESTION = "What is the capital of France?"
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


def question_wav(path: Path) -> Path:
    """The question in the bundled Piper voice, then silence: the fake microphone loops it."""
    from piper import SynthesisConfig

    from voice.tts import bundled_voice_path, load_voice

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(load_voice(bundled_voice_path()).synthesize(QUESTION, config))
    native = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    speech = soxr.resample(native, chunks[0].sample_rate, SAMPLE_RATE).astype(np.float32)
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
