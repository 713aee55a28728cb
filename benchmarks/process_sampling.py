"""What a benchmark run costs the machine, sampled beside it: the peak RSS (and PSS) of this process
and its children (the embedded llama.cpp server), and the share of the CPU other processes took
meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import psutil

from benchmarks.pipeline_records import RSS_INTERVAL_S, MemoryPeak


class RssSampler:
    """Samples RSS every ``interval_s`` in a daemon thread (the event loop may be busy, and
    start-up is blocking).  Use as a context manager; ``phase`` labels what runs now."""

    def __init__(self, interval_s: float = RSS_INTERVAL_S) -> None:
        self.peak = MemoryPeak(interval_s=interval_s)
        self.phase = "start-up"
        self._interval_s = interval_s
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one sample now."""
        try:
            own = self._me.memory_info().rss
            children = self._me.children(recursive=True)
        except psutil.Error:
            return
        child_rss = 0
        alive = 0
        pss = proportional_set_size(self._me.pid)
        for child in children:
            with contextlib.suppress(psutil.Error):  # a child may exit between listing and reading
                child_rss += child.memory_info().rss
                alive += 1
                pss += proportional_set_size(child.pid)
        total = own + child_rss
        p = self.peak
        p.pss_peak_bytes = max(p.pss_peak_bytes, pss)
        p.samples += 1
        p.peak_by_phase[self.phase] = max(p.peak_by_phase.get(self.phase, 0), total)
        if total > p.peak_bytes:
            p.peak_bytes, p.self_bytes_at_peak, p.children_bytes_at_peak, p.children_at_peak = (
                total,
                own,
                child_rss,
                alive,
            )


def proportional_set_size(pid: int) -> int:
    """The process's PSS in bytes from ``/proc/<pid>/smaps_rollup`` (one read, cheap enough to
    sample every 100 ms, unlike the full smaps psutil parses); 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


# ---- other processes' CPU -----------------------------------------------------------------


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds used so far by the whole machine and by this app (process + live children)."""

    at: float  # perf_counter()
    machine_busy_s: float
    app_s: float


def cpu_mark() -> CpuMark:
    """Take a :class:`CpuMark` now."""
    t = psutil.cpu_times()
    # Linux counts guest time inside user time; steal is the hypervisor's, not another process's.
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    me = psutil.Process()
    own = me.cpu_times()
    app = own.user + own.system + own.children_user + own.children_system
    with contextlib.suppress(psutil.Error):
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                app += c.user + c.system
    return CpuMark(time.perf_counter(), busy, app)


def other_cpu_share(start: CpuMark, end: CpuMark) -> float | None:
    """Share of the machine's CPU (0..1) used by other processes between two marks."""
    capacity = (end.at - start.at) * (psutil.cpu_count() or 1)
    if capacity <= 0:
        return None
    other = (end.machine_busy_s - start.machine_busy_s) - (end.app_s - start.app_s)
    return round(min(1.0, max(0.0, other / capacity)), 3)
