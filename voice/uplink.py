"""The microphone audio's way up: when the page captured each chunk, on the server's clock.

The browser's microphone reaches the server by one of two paths (:class:`MicPath`):

- the page's own (web/mic.js, web/mic_socket.py): 20 ms PCM frames over one WebSocket, each
  arriving about half a round trip after its capture;
- the fallback, Gradio's streaming microphone: 100 ms chunks, each one uploaded and then handed
  to Gradio's queue in a second request, so a chunk arrives after its wait in the page, its
  upload, the request that hands it to the queue, and the queue.

Either way a chunk arrives a while after its last sample was captured.  The turn's true end of
speech is stamped from a chunk's arrival (:mod:`voice.turns.detection`), so without this that
way up is missing from every figure of the panel.

The page sends the capture time of each chunk's last sample, on the page's clock, with the very
chunk (in each socket frame's header; on the fallback, web/uplink.js puts it into the event data
of the request that carries the chunk to the queue): no matching is needed, and a chunk dropped
on the way takes its time with it.  The page's clock is mapped to the server's with the pings'
offset (:meth:`voice.browser_link.BrowserLink.offset`).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass

from voice.browser_link import BrowserLink, finite_number

EVENT_KEY = "warmvoice_captured_ms"  # web/uplink.js's keys in the chunk's event data
SENT_KEY = "warmvoice_sent_ms"
_MAX_PAGE_CLOCK_MS = 1e11  # performance.now() of a page open for three years
_KEEP_CHUNKS = 64  # chunks remembered for a turn that ends on one (~6 s of chunks)


class MicPath(enum.Enum):
    """Which way the page's microphone audio took to the server."""

    WEBSOCKET = "websocket"  # web/mic.js -> web/mic_socket.py: 20 ms frames over one socket
    GRADIO = "gradio"  # the fallback: Gradio's streaming microphone, two requests per 100 ms chunk

    @property
    def label(self) -> str:
        """In words, for the panel's facts."""
        if self is MicPath.WEBSOCKET:
            return "the page's WebSocket (20 ms frames, one way)"
        return "Gradio's streaming microphone (the fallback: an upload and a queue request per 100 ms chunk)"


@dataclass(frozen=True)
class ChunkCapture:
    """A chunk that arrived at ``arrived_at`` (server ``perf_counter``) was captured ``uplink_ms``
    before, true to within ``uncertainty_ms`` (the clock offset's); ``in_page_ms`` of it were spent
    in the page, from the capture to the request that handed the chunk to the queue (None: not said)."""

    arrived_at: float
    uplink_ms: float
    uncertainty_ms: float
    in_page_ms: float | None = None
    path: MicPath = MicPath.GRADIO


@dataclass(frozen=True)
class PageTimes:
    """What the page said of a chunk, on its clock (ms): its last sample's capture and when it left."""

    captured_ms: float
    sent_ms: float | None = None


def page_times(event_data: object) -> PageTimes | None:
    """The times the page put in a chunk's event data, or None (an older page, another front-end,
    or anything implausible: the page is not trusted; a send before the capture is dropped)."""
    if not isinstance(event_data, dict):
        return None
    return page_times_of(event_data.get(EVENT_KEY), event_data.get(SENT_KEY))


def page_times_of(captured_ms: object, sent_ms: object) -> PageTimes | None:
    """A chunk's capture and send times as the page gave them (its clock, ms), or None when the
    capture time is implausible; an implausible send time (before the capture) is dropped."""
    captured = finite_number(captured_ms, 0, _MAX_PAGE_CLOCK_MS)
    if captured is None:
        return None
    sent = finite_number(sent_ms, captured, _MAX_PAGE_CLOCK_MS)
    return PageTimes(captured, sent)


class PageUplink:
    """One page's link: its pings (the clock offset) and its microphone chunks' way up."""

    def __init__(self, link: BrowserLink) -> None:
        self.link = link
        self.last: ChunkCapture | None = None
        self.timed = 0  # chunks whose way up was measured
        self.path: MicPath | None = None  # the way the latest microphone audio came

    def arrived(self, times: PageTimes | None, at: float, path: MicPath = MicPath.GRADIO) -> ChunkCapture | None:
        """A chunk the page timed (None: it did not) arrived at ``at`` over ``path``; its way up,
        or None when the page did not say or the clocks are not mapped yet."""
        self.path = path
        offset = self.link.offset()
        if times is None or offset is None:
            return None
        uplink_ms = (at - offset.to_server(times.captured_ms)) * 1000.0
        in_page = None if times.sent_ms is None else round(times.sent_ms - times.captured_ms, 1)
        self.last = ChunkCapture(at, round(uplink_ms, 1), offset.uncertainty_ms, in_page, path)
        self.timed += 1
        return self.last

    def describe(self) -> str:
        """One line for the session facts: the clock offset's uncertainty and the last way up."""
        offset = self.link.offset()
        if offset is None:
            return "measuring…"
        clock = f"±{offset.uncertainty_ms:,.0f} ms (best of {offset.pings} pings)"
        path = "" if self.path is None else f"; microphone over {self.path.label}"
        if self.last is None:
            return f"{clock}; no microphone chunk timed yet{path}"
        return (
            f"{clock}; last microphone chunk reached the server {self.last.uplink_ms:,.0f} ms "
            f"after its capture ({self.timed:,} timed){path}"
        )


class CaptureBook:
    """A session's side: the recent chunks' way up, by arrival.

    A turn's end of speech is stamped from the arrival of the last chunk fed before the turn
    ended (``heard_at``); the chunk's way up is known from its arrival on, before it is fed.
    """

    def __init__(self) -> None:
        self._known: OrderedDict[float, ChunkCapture] = OrderedDict()

    def add(self, capture: ChunkCapture) -> None:
        """A chunk's way up (before the chunk is fed)."""
        self._known[capture.arrived_at] = capture
        while len(self._known) > _KEEP_CHUNKS:
            self._known.popitem(last=False)

    def find(self, heard_at: float) -> ChunkCapture | None:
        """The way up of the chunk that arrived at ``heard_at`` (a turn's end of speech was stamped
        from it, and the turn starts at its capture: :class:`voice.timing.TurnOpened`), or None
        when the page did not time it."""
        return self._known.get(heard_at)
