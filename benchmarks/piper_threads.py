"""``python -m benchmarks.piper_threads``: Piper's first sentence while the LLM keeps generating.

In a turn, the first sentence is synthesized while the llama.cpp server generates the rest of
the reply on the same cores.  This times exactly that, in isolation: the embedded server streams
a long completion (one request after another, all run long) while Piper synthesizes first
sentences of 4, 6, 8 and 12 words with each thread setting (``PIPER_THREADS``: 1 sleeping thread,
2, and 0 = onnxruntime's default, one spin-waiting thread per core), in rotating order, and the
same again with the server idle.  Medians per (setting, words, LLM busy or idle).

Progress goes to stderr, the Markdown report to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence

from benchmarks.common import Table, command_line, load_average, machine_info, progress
from benchmarks.machine_probe import run_probe
from benchmarks.report import publish
from llm import EmbeddedLLMServer
from voice.tts.piper import _SYNTHESIS, bundled_voice_path, load_voice

PROG = "python -m benchmarks.piper_threads"
REPORT = "piper_threads"  # docs/measurements/piper_threads.md
SENTENCES = {
    4: "Spiders have eight legs.",
    6: "The capital of France is Paris.",
    8: "The sky is blue on a clear day.",
    12: "Hamlet was written by William Shakespeare, the famous English playwright.",
}
THREADS = (1, 2, 0)
LONG_PROMPT = "Tell a long story about a lighthouse keeper and the sea, in many sentences."


def _generate_forever(base_url: str, stop: threading.Event) -> None:
    """Keep the server generating (streamed, 400 tokens a request) until ``stop``."""
    body = {"messages": [{"role": "user", "content": LONG_PROMPT}], "max_tokens": 400, "stream": True}
    while not stop.is_set():
        request = urllib.request.Request(
            f"{base_url}/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # loopback only
            for _line in response:
                if stop.is_set():
                    break


def measure(rounds: int, busy: bool, base_url: str) -> dict[tuple[int, int], list[float]]:
    """ms per (threads, words): ``rounds`` syntheses of each, rotating the order."""
    voices = {t: load_voice(bundled_voice_path(), t) for t in THREADS}
    for voice in voices.values():
        list(voice.synthesize("Hello.", _SYNTHESIS))  # warm
    stop = threading.Event()
    load = threading.Thread(target=_generate_forever, args=(base_url, stop), daemon=True) if busy else None
    if load is not None:
        load.start()
        time.sleep(1.0)  # generation under way
    times: dict[tuple[int, int], list[float]] = {}
    try:
        for r in range(rounds):
            order = THREADS[r % len(THREADS) :] + THREADS[: r % len(THREADS)]
            for words, text in SENTENCES.items():
                for t in order:
                    started = time.perf_counter()
                    list(voices[t].synthesize(text, _SYNTHESIS))
                    times.setdefault((t, words), []).append((time.perf_counter() - started) * 1000.0)
    finally:
        stop.set()
        if load is not None:
            load.join(timeout=130)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """Run both conditions and print the table."""
    p = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rounds", type=int, default=6, help="syntheses per cell (default 6)")
    args = p.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        p.error("--rounds must be between 1 and 50")
    probe = run_probe()
    load_start = load_average()
    results = {}
    with EmbeddedLLMServer() as server:
        for busy in (True, False):
            progress(f"Piper with the LLM {'generating' if busy else 'idle'}...")
            results[busy] = measure(args.rounds, busy, server.base_url)
    label = {1: "1 (sleeping)", 2: "2 (sleeping)", 0: "onnxruntime default"}
    table = Table(["LLM", "PIPER_THREADS", *(f"{w} words" for w in SENTENCES)], right=range(2, 2 + len(SENTENCES)))
    for busy in (True, False):
        for t in THREADS:
            cells = (f"{statistics.median(results[busy][(t, w)]):.0f} ms" for w in SENTENCES)
            table.add("generating" if busy else "idle", label[t], *cells)
    lines = [
        "# Piper's first sentence while the LLM generates",
        "",
        f"- {args.rounds} syntheses per cell, the thread settings in rotating order; medians",
        "",
        table.markdown(),
    ]
    command = command_line(PROG, sys.argv[1:] if argv is None else list(argv))
    publish(REPORT, "\n".join(lines) + "\n", command, machine_info(load_start, probe=probe))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
