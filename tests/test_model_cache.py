"""load_once: one load per key even from several threads; a failed load is tried again."""

from __future__ import annotations

import threading
import time

import pytest

from voice.model_cache import load_once


def test_concurrent_callers_share_one_load_per_key() -> None:
    loads: list[str] = []

    @load_once
    def model(name: str) -> object:
        loads.append(name)
        time.sleep(0.05)  # a slow load: the other threads arrive while it runs
        return object()

    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(model("tiny"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert loads == ["tiny"] and len(got) == 4 and all(g is got[0] for g in got)
    assert model("base") is not got[0] and loads == ["tiny", "base"]


def test_a_failed_load_is_not_kept() -> None:
    attempts = 0

    @load_once
    def model() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise FileNotFoundError("not there yet")
        return "loaded"

    with pytest.raises(FileNotFoundError):
        model()
    assert model() == "loaded" and model() == "loaded" and attempts == 2
