"""What ``python -m benchmarks.stt_engines`` records: what every variant heard in every clip, and the
run around it (its ``--json`` is this run's ``asdict``, read back by ``--from-json``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.common import MachineInfo
from benchmarks.stt_set import Clip


@dataclass(frozen=True)
class Heard:
    """What one variant heard in one clip."""

    variant: str
    clip: int  # index into the clips
    text: str
    errors: int
    words: int
    compute_ms: float
    logprob: float


@dataclass(frozen=True)
class SttEnginesRun:
    """A whole run: the command, the machine, the clips, what each variant heard, memory per engine."""

    command: str
    machine: MachineInfo
    seconds: float
    clips: list[Clip]
    heard: list[Heard]
    variants: list[str]  # the recognizers in the order they heard each clip
    rss_mb: dict[str, dict[str, float] | None]  # per engine: peak RSS after each step (None: the child failed)
    incremental: dict[str, Any] | None = None  # benchmarks.stt_incremental's replay (--incremental)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SttEnginesRun:
        """A run saved with ``--json`` (files written before this record also carry a ``probe_line``,
        which the machine's probe says again)."""
        return cls(
            command=data["command"],
            machine=MachineInfo.from_json(data["machine"]),
            seconds=data["seconds"],
            clips=[Clip(**c) for c in data["clips"]],
            heard=[Heard(**h) for h in data["heard"]],
            variants=list(data["variants"]),
            rss_mb=dict(data["rss_mb"]),
            incremental=data.get("incremental"),
        )
