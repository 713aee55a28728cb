"""The distance between the visitor's page and the server, measured on the server's clock.

On a Space the page is far from the server: reply audio travels down to it and the player's
report travels back up.  To show how far, the server pings the page over that same channel:
the ping rides in the reply-audio payload (:func:`voice.panel.audio_payload`), the page's
player answers at once through a hidden button's event (web/player.js), and the server stamps
both ends with its own ``perf_counter``.  The page adds how long the ping sat in the page
(its own clock, a duration: no clock offset involved), which is taken out.  What remains is
the round trip: the network both ways plus Gradio carrying the message in the server and the
page, exactly what a reply chunk and its playback report go through.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

PING_EVERY_S = 2.0  # one ping in flight at a time, at most this often
UNANSWERED_S = 10.0  # a ping with no answer by then is given up (a page gone, a lost message)
KEEP = 10  # the summary covers the last KEEP round trips
MAX_PONG_CHARS = 1024  # a pong names one or two pings; anything longer is not from our player
_MAX_PAGE_MS = 10_000.0


@dataclass(frozen=True)
class RoundTrips:
    """The last few page <-> server round trips, in ms."""

    median_ms: float
    last_ms: float
    min_ms: float
    max_ms: float
    count: int

    def describe(self) -> str:
        """One line for the session facts.  The best trip leads: the network's distance is the
        floor under every trip, and anything above it is waiting (a busy CPU, Gradio's queue)."""
        if self.count == 1:
            return f"{self.last_ms:,.0f} ms (1 ping)"
        return (
            f"{self.min_ms:,.0f} ms best of {self.count} pings "
            f"(median {self.median_ms:,.0f}, worst {self.max_ms:,.0f}, last {self.last_ms:,.0f})"
        )


@dataclass(frozen=True)
class Pong:
    """The page's answer to ping ``ping``, after ``page_ms`` in the page (None: not given)."""

    ping: int
    page_ms: float | None


class BrowserLink:
    """Pings one page and keeps the round trips it measured."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._next_id = 1
        self._in_flight: tuple[int, float] | None = None  # (ping id, sent at)
        self._last_sent = -math.inf
        self._trips: deque[float] = deque(maxlen=KEEP)

    def ping(self) -> int | None:
        """A new ping id to send now, or None when one is in flight or the last went too recently."""
        now = self.clock()
        if self._in_flight is not None and now - self._in_flight[1] > UNANSWERED_S:
            self._in_flight = None
        if self._in_flight is not None or now - self._last_sent < PING_EVERY_S:
            return None
        ping = self._next_id
        self._next_id += 1
        self._in_flight = (ping, now)
        self._last_sent = now
        return ping

    def pong(self, answer: Pong) -> float | None:
        """The page answered: the round trip in ms (minus the page's own time), or None if the
        answer is to no ping in flight (late, repeated or made up)."""
        now = self.clock()
        if self._in_flight is None or self._in_flight[0] != answer.ping:
            return None
        sent_at = self._in_flight[1]
        self._in_flight = None
        trip = (now - sent_at) * 1000.0 - (answer.page_ms or 0.0)
        trip = round(max(trip, 0.0), 1)
        self._trips.append(trip)
        return trip

    def summary(self) -> RoundTrips | None:
        """The recent round trips, or None before the first answer."""
        if not self._trips:
            return None
        trips = list(self._trips)
        return RoundTrips(statistics.median(trips), trips[-1], min(trips), max(trips), len(trips))


def page_messages(text: str, stream: str, max_chars: int) -> list[dict[str, object]]:
    """The entries of a JSON list the page sent that belong to ``stream`` (its session).

    The page is not trusted: anything malformed, oversized (over ``max_chars``) or nested too
    deep gives no entries, and entries of another stream are left out.
    """
    if not text or len(text) > max_chars:
        return []
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested brackets
        return []
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict) and item.get("session") == stream]


def positive_int(value: object) -> int | None:
    """``value`` if it is a whole number above 0 (never a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def finite_number(value: object, low: float, high: float) -> float | None:
    """``value`` as a float if it is a finite number in [low, high] (never a bool; JSON lets NaN
    and Infinity through), else None."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value) if low <= value <= high else None


def parse_pongs(text: str, stream: str) -> list[Pong]:
    """The pongs in the player's JSON (``[{"session": stream, "ping": n, "page_ms": ms}, ...]``).

    Only this stream's well-formed entries count; an implausible ``page_ms`` is dropped (the
    round trip is then taken whole).
    """
    pongs = []
    for item in page_messages(text, stream, MAX_PONG_CHARS):
        ping = positive_int(item.get("ping"))
        if ping is None:
            continue
        pongs.append(Pong(ping, finite_number(item.get("page_ms"), 0, _MAX_PAGE_MS)))
    return pongs
