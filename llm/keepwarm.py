"""How long an idle pooled connection survives, learned while the client runs.

Servers close idle keep-alive connections after their own limit (uvicorn 5 s, nginx 75 s,
others unknown), and the client's connector drops them after ``keepalive_timeout``.  A
connection is only useful if it is refreshed before the smaller of the two expires.  This
module is pure: the client reports what it sees, and asks when to ping next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIMEOUT = re.compile(r"(?:^|[,;\s])timeout\s*=\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)
MIN_LIMIT_S = 0.2  # below this a keep-warm loop would be a busy loop: do not believe it
MAX_MARGIN_S = 2.0  # re-warm at most this long before the expected expiry ...
MIN_FRACTION = 0.5  # ... but never later than half the limit


def parse_keep_alive(header: str | None) -> float | None:
    """The ``timeout=N`` of a ``Keep-Alive`` response header, in seconds, if there is one."""
    if not header:
        return None
    match = _TIMEOUT.search(header)
    return float(match.group(1)) if match else None


@dataclass
class IdleLimit:
    """What the client knows about the idle limit of its pooled connections.

    ``client_s``: the connector's own keepalive_timeout.  ``server_s``: the server's limit
    once known (from a header, an observed close, or a dead pooled connection), else None.
    ``source`` says where ``server_s`` came from.
    """

    client_s: float
    server_s: float | None = None
    source: str = ""

    @property
    def effective_s(self) -> float:
        """The idle time after which the pooled connection is gone (smaller of both limits)."""
        if self.server_s is None:
            return self.client_s
        return min(self.server_s, self.client_s)

    def ping_delay(self) -> float:
        """How long after the last use to re-warm: shortly before the connection expires."""
        limit = self.effective_s
        return max(limit * MIN_FRACTION, limit - MAX_MARGIN_S)

    def observe_header(self, value: str | None) -> bool:
        """Learn from a ``Keep-Alive: timeout=N`` header.  True if the estimate changed."""
        seconds = parse_keep_alive(value)
        if seconds is None or seconds < MIN_LIMIT_S:
            return False
        if self.source == "header" and self.server_s == seconds:
            return False
        # A header is the server's own word: it replaces an estimate made from observations
        # unless we have seen the server close earlier than it claims.
        if self.server_s is not None and self.source != "header" and self.server_s < seconds:
            return False
        self.server_s = seconds
        self.source = "header"
        return True

    def observe_close(self, idle_s: float, source: str = "observed close") -> bool:
        """An idle connection was closed by the server after ``idle_s`` seconds (or was found
        dead after at most ``idle_s``).  True if the estimate changed."""
        if idle_s < MIN_LIMIT_S or idle_s >= self.client_s * 0.95:
            return False  # too short to trust, or our own connector closed it
        if self.server_s is not None and self.server_s <= idle_s:
            return False
        self.server_s = idle_s
        self.source = source
        return True
