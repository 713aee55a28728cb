"""The benchmarks' PNG charts: a row of panels titled with the run's machine and date, the strategies
in their report colours.  matplotlib is imported when a chart is asked for (``--plot``), not before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import STRATEGY_COLOURS, STRATEGY_LABELS, MachineInfo

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@contextlib.contextmanager
def panels(
    path: Path, count: int, title: str, machine: MachineInfo, size: tuple[float, float] = (5.0, 4.2)
) -> Iterator[list[Axes]]:
    """A row of ``count`` panels (at least one), each ``size`` inches, to draw on inside the block;
    on leaving it, the figure is titled "``title`` — CPU, date" and written to ``path`` as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    width, height = size
    fig, axes = plt.subplots(1, max(count, 1), figsize=(width * max(count, 1), height), squeeze=False)
    try:
        yield list(axes[0])
        fig.suptitle(f"{title} — {machine.cpu_model}, {machine.date[:10]}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=110)
    finally:
        plt.close(fig)


def strategy_style(strategy: str) -> dict[str, Any]:
    """The colour and legend label of a connection strategy, as keyword arguments of a plot call."""
    return {"color": STRATEGY_COLOURS[strategy], "label": STRATEGY_LABELS[strategy]}
