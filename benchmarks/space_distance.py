"""A far-away page: where the distance between a visitor and a Space shows in the panel.

Starts ``app.py`` as a Hugging Face Space starts it (:func:`space_environment`, from an empty
working directory), a latency proxy in front of it (``--rtt-ms`` added to every round trip, every
byte delayed half of it each way), and Chromium.  A near page (loopback) and a far page (through
the proxy) type the same question, ``--rounds`` times each; the panel's own figures are read: the
page ↔ server round trip (best of its pings), the pipeline's stages (which start when the typed
text reached the server) and the playback's split (server's part, round trip, browser player).
``tests/test_space.py`` runs the same visits and holds them to their behaviour.

    flock /tmp/warmvoice-bench.lock python -m benchmarks.space_distance   # writes docs/measurements/space_distance.md
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import MachineInfo, command_line, progress, run_interruptible
from benchmarks.machine_probe import start_run
from benchmarks.report import Table, publish
from benchmarks.uplink import CHROMIUM_FLAGS, latency_proxy, parse_page_args, running_app
from voice.audio import write_wav

REPORT = "space_distance"  # docs/measurements/space_distance.md
QUESTION = "Say hello in one short sentence."
PINGS = 8  # the round trip is read once the facts show the best of at least this many pings
STAGES = ("request_sent_ms", "status_ms", "first_token_ms", "first_sentence_ms", "first_audio_ms")

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
NOT_ON_A_FRESH_SPACE = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_MODEL", "TTS_ENGINE", "GRADIO_SERVER_PORT")


def space_environment(port: int) -> dict[str, str]:
    """This process's environment as a fresh Space would see it, serving on ``port``."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_ON_A_FRESH_SPACE}
    env.update(SPACE_ENV)
    env["GRADIO_SERVER_PORT"] = str(port)
    env["PORT"] = str(port)
    return env


@dataclass(frozen=True)
class TypedVisit:
    """What one page showed after a typed turn: its stages, the playback split and the round trip (ms)."""

    name: str
    stages: dict[str, float]  # the pipeline's stages, from the typed text's arrival at the server
    split: dict[str, float]  # the playback: "server" (first audio sent), "network" (round trip), "player"
    rtt_best_ms: float  # the facts' page ↔ server round trip, best of ``pings``
    pings: int


def stage_values(page: Any) -> dict[str, str]:
    """The current turn's stage cells as the panel shows them, by stage name."""
    result: dict[str, str] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#current-turn tr[data-stage]')]
              .map(r => [r.dataset.stage, r.querySelector('.wv-ms').textContent.trim()]))"""
    )
    return result


def _number(text: str) -> float:
    return float(text.replace(",", "").split()[0])


def typed_turn(browser: Any, url: str, name: str, screenshot: Path | None = None) -> TypedVisit:
    """Open the page at ``url``, start, type the question, wait for its confirmed playback and
    for the facts' round trip over at least eight pings; ``screenshot``: save the page there."""
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
        # The last pings after the turn (the facts refresh every second).
        page.wait_for_function(
            """(n) => { const m = /best of (\\d+) pings/.exec(document.querySelector('#facts').innerText);
                        return m && Number(m[1]) >= n; }""",
            arg=PINGS,
            timeout=60_000,
        )
        stages = {k: _number(v) for k, v in stage_values(page).items() if re.match(r"[0-9]", v)}
        split = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('#current-turn [data-split]')]
                  .map(s => [s.dataset.split, s.textContent.trim()]))"""
        )
        facts = page.locator("#facts").inner_text()
        rtt = re.search(r"round trip\s+([0-9,]+) ms best of (\d+) pings", facts)
        if rtt is None:
            raise RuntimeError(f"{name}: the facts show no round trip: {facts}")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        page.locator("#stop").click()
        expect(page.locator("#status")).to_contain_text("ended", timeout=15_000)
        splits = {k: _number(v) for k, v in split.items()}
        return TypedVisit(name, stages, splits, _number(rtt.group(1)), int(rtt.group(2)))
    finally:
        page.close()


def near_and_far(
    chromium: str,
    near_url: str,
    rtt_ms: float,
    workdir: Path,
    *,
    rounds: int = 1,
    screenshots: Path | None = None,
) -> list[TypedVisit]:
    """Chromium (its microphone hears silence: the turns are typed) visits ``near_url`` directly
    and through the latency proxy, ``rounds`` times each, near first in every round."""
    from playwright.sync_api import sync_playwright

    silence = workdir / "silence.wav"
    write_wav(silence, np.zeros(16_000, np.float32), 16_000)
    visits: list[TypedVisit] = []

    def shot(name: str) -> Path | None:
        return None if screenshots is None else screenshots / f"space-visitor-{name}.png"

    with (
        sync_playwright() as p,
        latency_proxy(near_url, rtt_ms, workdir) as far_url,
    ):
        browser = p.chromium.launch(
            executable_path=chromium, args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={silence}"]
        )
        try:
            for n in range(1, rounds + 1):
                suffix = "" if rounds == 1 else f"-{n}"
                for name, url in (("near", near_url), ("far", far_url)):
                    visits.append(typed_turn(browser, url, name, shot(name + suffix)))
                    progress(f"round {n}: {visits[-1]}")
        finally:
            browser.close()
    return visits


def _cell(values: dict[str, float], key: str) -> str:
    return f"{values[key]:,.0f} ms" if key in values else "—"


def _median(visits: Sequence[TypedVisit], value: Any) -> float | None:
    values = [v for v in (value(visit) for visit in visits) if v is not None]
    return statistics.median(values) if values else None


def render_markdown(visits: Sequence[TypedVisit], rtt_ms: float) -> str:
    """The report: each visit's figures, and the far pages' round trip against the near ones'."""
    table = Table(
        [
            "Page",
            "Browser ↔ server round trip (best of the pings)",
            "LLM request sent",
            "First token",
            "First sentence",
            "First audio = server's part",
            "Playback's round trip",
            "Browser player",
        ],
        right=range(1, 8),
    )
    label = {"near": "near (loopback)", "far": f"far (+{rtt_ms:g} ms)"}
    for v in visits:
        table.add(
            label[v.name],
            f"{v.rtt_best_ms:,.0f} ms ({v.pings} pings)",
            *(_cell(v.stages, k) for k in ("request_sent_ms", "first_token_ms", "first_sentence_ms", "first_audio_ms")),
            _cell(v.split, "network"),
            _cell(v.split, "player"),
        )
    near = [v for v in visits if v.name == "near"]
    far = [v for v in visits if v.name == "far"]
    near_rtt, far_rtt = _median(near, lambda v: v.rtt_best_ms), _median(far, lambda v: v.rtt_best_ms)
    lines = [
        "# A far-away page: the distance lands in the round trip, not in a pipeline stage",
        "",
        "On a Space the visitor is far away; the panel shows how far "
        "([panel.md](../panel.md#how-far-is-the-page)). The app is started as a Space starts it "
        "(`SYSTEM=spaces`, no key, no endpoint, from an empty working directory); `python -m "
        f"llm.latency_proxy --rtt-ms {rtt_ms:g}` sits between Chromium and it (every byte waits "
        f"{rtt_ms / 2:g} ms each way). A near page (loopback) and a far page (through the proxy) type "
        f"“{QUESTION}”, near first in each round. Stages are the panel's, in ms from the typed text's "
        "arrival at the server; the playback's split is the server's part (first audio sent), the "
        "page ↔ server round trip it took, and the browser player.",
        "",
        table.markdown(),
        "",
    ]
    if near_rtt is not None and far_rtt is not None:
        added = far_rtt - near_rtt
        lines += [
            f"Round trip, median over the rounds: near {near_rtt:,.0f} ms, far {far_rtt:,.0f} ms; far − near "
            f"**{added:,.0f} ms** against the {rtt_ms:g} ms the proxy adds ({100 * (added - rtt_ms) / rtt_ms:+.0f} %; "
            "the test allows ±20 %). The near page's round trip is Gradio's own transport (the message "
            "through the server, the SSE stream, the page and back) and the wait for a busy CPU; the far "
            "page pays it on top of the distance.",
            "",
        ]
    near_sent = _median(near, lambda v: v.stages.get("request_sent_ms"))
    far_sent = _median(far, lambda v: v.stages.get("request_sent_ms"))
    far_net = _median(far, lambda v: v.split.get("network"))
    near_net = _median(near, lambda v: v.split.get("network"))
    if near_sent is not None and far_sent is not None and far_net is not None and near_net is not None:
        lines += [
            f"The first stage after the text's arrival, the LLM request sent, took {near_sent:,.0f} ms near and "
            f"{far_sent:,.0f} ms far (median): "
            + (
                "the distance is in no pipeline stage"
                if far_sent < rtt_ms / 2
                else "**the far page's first stage took the distance or more**"
            )
            + f" (measured from the page's click it would be at least the one-way {rtt_ms / 2:g} ms). "
            "The far turns come second, with llama.cpp holding the same prompt in its cache, so their later "
            "stages may even be shorter. The "
            f"playback's round trip carries the distance: far {far_net:,.0f} ms, near {near_net:,.0f} ms "
            "(median); it is much noisier than the pings, because the first chunk goes out while the reply "
            "is still being synthesized and the CPU is busiest.",
            "",
        ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.space_distance", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="near and far visits, one typed turn each (default 3)")
    args = parse_page_args(p, argv)
    if not 1 <= args.rounds <= 10:
        p.error("--rounds must be 1..10")
    return args


def run(argv: Sequence[str]) -> int:
    """Measure and publish; returns the exit code."""
    args = parse_args(argv)
    start = start_run()
    with tempfile.TemporaryDirectory(prefix="warmvoice-space-distance-") as tmp:
        workdir = Path(tmp)
        progress("starting the app as a Space starts it…")
        with running_app(workdir, space_environment) as near_url:
            visits = near_and_far(args.chromium, near_url, args.rtt_ms, workdir, rounds=args.rounds)
    machine: MachineInfo = start.machine()
    command = command_line("python -m benchmarks.space_distance", argv)
    publish(REPORT, render_markdown(visits, args.rtt_ms), command, machine, markdown_path=args.markdown)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_interruptible(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
