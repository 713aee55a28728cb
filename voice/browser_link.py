"""The distance between the visitor's page and the server, measured on the server's clock.

On a Space the page is far from the server: reply audio travels down to it and the player's
report travels back up.  To show how far, the server pings the page over that same channel:
the ping rides in the reply-audio payload (:func:`voice.player_messages.audio_payload`), the page's
player answers at once through a hidden button's event (web/player.js), and the server stamps
both ends with its own ``perf_counter``.  The page adds how long the ping sat in the page
(its own clock, a duration: no clock offset involved), which is taken out.  What remains is
the round trip: the network both ways plus Gradio carrying the message in the server and the
page, exactly what a reply chunk and its playback report go through.

The same pings also map the page's clock to the server's, as NTP does: the page says when it
answered (its ``performance.now()``), so each ping gives the offset between the two clocks if
the way down took as long as the way up; whatever the two ways differ by, the error is at most
half the round trip.  The ping with the shortest trip has the least room for that error, so the
offset comes from it (:meth:`BrowserLink.offset`).
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
_MAX_PAGE_CLOCK_MS = 1e11  # performance.now() of a page open for three years


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
class ClockOffset:
    """The page's clock against the server's: ``page_ms = server_s * 1000 + offset_ms``, true to
    within ``uncertainty_ms`` (half the round trip of the ping it comes from)."""

    offset_ms: float
    uncertainty_ms: float
    pings: int  # how many pings it was chosen from

    def to_server(self, page_ms: float) -> float:
        """A time on the page's clock (ms) as a time on the server's (``perf_counter`` seconds)."""
        return (page_ms - self.offset_ms) / 1000.0


@dataclass(frozen=True)
class Pong:
    """The page's answer to ping ``ping``, after ``page_ms`` in the page (None: not given), sent
    at ``answered_ms`` on the page's clock (None: an older player that does not say)."""

    ping: int
    page_ms: float | None
    answered_ms: float | None = None


class BrowserLink:
    """Pings one page and keeps the round trips it measured."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._next_id = 1
        self._in_flight: tuple[int, float] | None = None  # (ping id, sent at)
        self._last_sent = -math.inf
        self._trips: deque[float] = deque(maxlen=KEEP)
        self._offsets: deque[tuple[float, float]] = deque(maxlen=KEEP)  # (round trip, offset) in ms

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
        if answer.answered_ms is not None and answer.page_ms is not None:
            # NTP's four stamps: sent (server), received and answered (page), back (server).
            received_ms = answer.answered_ms - answer.page_ms
            offset = ((received_ms - sent_at * 1000.0) + (answer.answered_ms - now * 1000.0)) / 2.0
            self._offsets.append((trip, offset))
        return trip

    def offset(self) -> ClockOffset | None:
        """The page's clock against the server's, from the recent ping with the shortest round
        trip; None before a page that stamps its answers has answered."""
        if not self._offsets:
            return None
        trip, offset = min(self._offsets)
        return ClockOffset(round(offset, 1), round(trip / 2.0, 1), len(self._offsets))

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
    round trip is then taken whole), and so is an implausible ``answered_ms`` (the page's clock).
    """
    pongs = []
    for item in page_messages(text, stream, MAX_PONG_CHARS):
        ping = positive_int(item.get("ping"))
        if ping is None:
            continue
        page_ms = finite_number(item.get("page_ms"), 0, _MAX_PAGE_MS)
        answered_ms = finite_number(item.get("answered_ms"), 0, _MAX_PAGE_CLOCK_MS)
        pongs.append(Pong(ping, page_ms, answered_ms))
    return pongs
