"""The first-clause measurement's own arithmetic: the app's split, and the silences it compares
(audio made here: tone bursts with known gaps)."""

from __future__ import annotations

import numpy as np

from benchmarks.first_clause import edge_silence_ms, longest_inner_silence_ms, split
from llm import SplitterConfig

RATE = 16000


def _tone(ms: float) -> np.ndarray:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    return (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _silence(ms: float) -> np.ndarray:
    return np.zeros(int(RATE * ms / 1000), np.float32)


def test_silences_at_the_edges_and_inside() -> None:
    audio = np.concatenate([_silence(120), _tone(300), _silence(200), _tone(300), _silence(80)])
    assert abs(edge_silence_ms(audio, RATE, leading=True) - 120) < 2
    assert abs(edge_silence_ms(audio, RATE, leading=False) - 80) < 2
    assert 180 <= longest_inner_silence_ms(audio, RATE) <= 200  # 20 ms windows: the gap, give or take one
    assert longest_inner_silence_ms(_tone(500), RATE) == 0.0


def test_the_clause_split_is_the_apps() -> None:
    text = "Paris, the capital of France, is known for art and food. It is lovely."
    assert split(text, SplitterConfig())[0] == "Paris, the capital of France, is known for art and food."
    assert split(text, SplitterConfig(first_max_words=6))[0] == "Paris, the capital of France,"
