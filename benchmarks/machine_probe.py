"""The machine, measured: CPU flags plus a fixed workload, printed with every benchmark report.

Machines of one class differ: on a CPU without AVX-512, CTranslate2's int8 kernels make Whisper
2-3x slower. A fixed workload timed before a benchmark's runs tells a slow machine from a slow
change: Whisper tiny.en on a fixed 3 s clip, Piper on a fixed sentence, and 20 tokens from the
embedded model, each the median of a few runs after one warm-up.

``python -m benchmarks.machine_probe`` prints the probe alone.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.common import (
    MACHINE_PACKAGES,
    WHISPER_CLIP_S,
    MachineInfo,
    MachineProbe,
    Say,
    command_line,
    cpu_flags,
    hide_api_key,
    load_average,
    machine_info,
    progress,
)
from llm import EmbeddedLLMServer, EmbeddedServerError
from voice.audio import to_mono_16k
from voice.transcribe import SAMPLE_RATE, Transcriber, WhisperOptions
from voice.tts import bundled_voice_path, load_voice

# The fixed workload (and common.WHISPER_CLIP_S). Changing any of these makes old probes incomparable: don't.
WHISPER_SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs back home."
PIPER_SENTENCE = "Paris is the capital of France, and it sits on the river Seine."
LLM_TOKENS = 20
LLM_PROMPT = "Count from one to thirty in words, separated by commas."
RUNS = 3


def _median_ms(work: Callable[[], object], runs: int) -> float:
    work()  # warm-up: first-call allocations and caches are not the machine's speed
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def _whisper_clip() -> np.ndarray:
    """The fixed sentence in the bundled Piper voice, at 16 kHz, padded or cut to exactly 3 s."""
    voice = load_voice(bundled_voice_path())
    chunks = list(voice.synthesize(WHISPER_SENTENCE))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    audio = to_mono_16k(audio, chunks[0].sample_rate)
    target = int(WHISPER_CLIP_S * SAMPLE_RATE)
    return np.pad(audio, (0, max(0, target - len(audio))))[:target]


def _completion(base_url: str) -> int:
    """One non-streamed completion of LLM_TOKENS tokens at temperature 0; the tokens generated."""
    body = {
        "messages": [{"role": "user", "content": LLM_PROMPT}],
        "max_tokens": LLM_TOKENS,
        "temperature": 0,
        "stream": False,
    }
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # loopback only
        reply = json.load(response)
    return int(reply.get("usage", {}).get("completion_tokens", 0))


def run_probe(runs: int = RUNS) -> MachineProbe:
    """Time the fixed workload (blocking, ~10 s: it loads the models and starts its own server)."""
    # Whisper's own 30 s window, whatever the app's default: the probe is a fixed workload, comparable
    # with every earlier report's (the fitted window, voice.whisper_window, would read ~3x faster).
    transcriber = Transcriber(options=WhisperOptions(window_margin_s=0.0))
    transcriber.warm()
    clip = _whisper_clip()
    whisper_ms = _median_ms(lambda: transcriber.transcribe(clip), runs)
    voice = load_voice(bundled_voice_path())
    piper_ms = _median_ms(lambda: list(voice.synthesize(PIPER_SENTENCE)), runs)
    llm_ms: float | None = None
    tokens = 0
    # Its own plain-HTTP server, stopped before the benchmark starts its own: the probe must not
    # depend on, or disturb, what the benchmark measures.
    try:
        with EmbeddedLLMServer() as server:
            tokens = _completion(server.base_url)
            llm_ms = _median_ms(lambda: _completion(server.base_url), runs)
    except (EmbeddedServerError, OSError, ValueError) as exc:  # the report then says so
        print(f"machine probe: the embedded model could not be timed: {exc}")
    return MachineProbe(cpu_flags(), whisper_ms, piper_ms, llm_ms, tokens, runs)


@dataclass(frozen=True)
class RunStart:
    """How a benchmark run began: the machine probe, then the run's clock and the load average."""

    probe: MachineProbe
    started: float  # time.perf_counter() once the probe was timed
    load_start: float | None

    def machine(self, packages: Sequence[str] = MACHINE_PACKAGES) -> MachineInfo:
        """The machine now, with the load from the start to now and the probe."""
        return machine_info(self.load_start, packages, self.probe)

    def identity(
        self, prog: str, argv: Sequence[str], packages: Sequence[str] = MACHINE_PACKAGES
    ) -> tuple[str, list[str], MachineInfo]:
        """What every run record starts with: the command and its arguments (any API key hidden),
        and the machine now."""
        return command_line(prog, argv), hide_api_key(argv), self.machine(packages)

    def wall_time_s(self) -> float:
        """Seconds since the clock started (the probe left out)."""
        return time.perf_counter() - self.started


def start_run(say: Say = progress) -> RunStart:
    """Time the probe, saying so, then start the clock: the probe is not part of the run's wall time."""
    say("timing the machine probe (CPU flags, Whisper, Piper, 20 tokens)...")
    probe = run_probe()
    say(f"machine probe: {probe.describe()}")
    return RunStart(probe, time.perf_counter(), load_average())


def main() -> int:
    """Print the probe line."""
    print(run_probe().describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
