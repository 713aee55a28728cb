"""The malloc-arena cap really limits glibc's arenas, and respects the user's own setting.

Each case runs in a fresh interpreter: glibc fixes its arena limit once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voice.native_memory import MALLOC_ARENAS, limit_malloc_arenas

ROOT = Path(__file__).resolve().parent.parent
THREADS = 8
# Eight threads alive at once, each allocating from the C heap; then glibc lists its arenas.
PROGRAM = f"""
import ctypes, sys, threading
import numpy as np
from voice.native_memory import limit_malloc_arenas
if sys.argv[1] == "cap":
    limit_malloc_arenas()
barrier = threading.Barrier({THREADS})
kept = []
def allocate():
    kept.append(np.ones(10_000))  # 80 kB: below the mmap threshold, so from an arena
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range({THREADS})]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc arenas")


def arenas_used(mode: str, environ: dict[str, str] | None = None) -> int:
    """How many malloc arenas a fresh interpreter used for eight concurrent threads."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | (environ or {})
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_the_cap_limits_the_arenas_threads_allocate_from() -> None:
    assert arenas_used("nocap") > MALLOC_ARENAS  # the test can tell the difference
    assert arenas_used("cap") <= MALLOC_ARENAS


def test_an_explicit_malloc_arena_max_is_left_to_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
    # glibc applies the user's value itself (the cap would have made it 2).
    assert arenas_used("cap", {"MALLOC_ARENA_MAX": "4"}) == 4
