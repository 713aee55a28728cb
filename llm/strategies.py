"""The three connection strategies, named once: their keys, and how a person reads them.

``"prewarmed"``  pool + a background warm-up (``GET /models``) + a keep-warm loop that refreshes
                 the idle connection shortly before the server would close it.
``"pooled"``     pool only: the first request connects, later ones reuse.
``"cold"``       the original "before": a brand-new connection per request (DNS, TCP and TLS
                 every time; ``force_close`` connector, DNS cache off).
"""

from __future__ import annotations

from typing import Literal, get_args

Strategy = Literal["prewarmed", "pooled", "cold"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

# The status line and the page's strategy choices.
STRATEGY_LABELS: dict[Strategy, str] = {
    "prewarmed": "pre-warmed pool",
    "pooled": "pool without warm-up",
    "cold": "new connection per request",
}
# Where space is short: the latency table and the chart's turn labels.
STRATEGY_SHORT_LABELS: dict[Strategy, str] = {
    "prewarmed": "pre-warmed",
    "pooled": "pool, no warm-up",
    "cold": "new conn/request",
}


def parse_strategy(name: str) -> Strategy:
    """``name`` as a :data:`Strategy`; raises ValueError naming the choices for anything else."""
    for strategy in STRATEGIES:
        if name == strategy:
            return strategy
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
