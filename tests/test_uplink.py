"""One clock for the page and the server, and the microphone audio's way up on it.

A manual clock stands for the server's ``perf_counter``; the page's clock is simulated from it
with a known offset and known one-way delays, so the estimate can be checked against the truth.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from voice import panel
from voice.browser_link import PING_EVERY_S, BrowserLink, Pong, parse_pongs
from voice.latency import TurnLatency
from voice.timing import TranscriptReady, TurnOpened, TurnRecorder
from voice.uplink import (
    EVENT_KEY,
    SENT_KEY,
    CaptureBook,
    ChunkCapture,
    MicPath,
    PageTimes,
    PageUplink,
    page_times,
)

PAGE_AHEAD_MS = 7_654_321.0  # the page's clock reads this much more than the server's (ms)


class Clock:
    """The server's clock, moved by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def page_ms(self) -> float:
        """What the page's performance.now() reads at this moment."""
        return self.now * 1000.0 + PAGE_AHEAD_MS


def _exchange(link: BrowserLink, clock: Clock, down_ms: float, up_ms: float, in_page_ms: float = 2.0) -> None:
    """One ping: ``down_ms`` to the page, ``in_page_ms`` there, ``up_ms`` back."""
    clock.now += PING_EVERY_S
    ping = link.ping()
    assert ping is not None
    clock.now += down_ms / 1000
    received = clock.page_ms()
    clock.now += in_page_ms / 1000
    answered = clock.page_ms()
    clock.now += up_ms / 1000
    assert link.pong(Pong(ping, answered - received, answered)) == pytest.approx(down_ms + up_ms, abs=0.1)


def test_the_offset_comes_from_the_shortest_trip_and_is_true_to_half_of_it() -> None:
    clock = Clock()
    link = BrowserLink(clock)
    assert link.offset() is None
    # Slow, lopsided trips (a queue on the way up), then one short, even one.
    for down, up in [(40.0, 160.0), (30.0, 90.0), (20.0, 20.0), (35.0, 120.0)]:
        _exchange(link, clock, down, up)
    offset = link.offset()
    assert offset is not None and offset.pings == 4
    assert offset.uncertainty_ms == 20.0, "half the best trip"
    assert offset.offset_ms == pytest.approx(PAGE_AHEAD_MS, abs=0.1), "an even trip gives the exact offset"
    # Any trip's error is within its own half round trip: the lopsided ones are off by (up-down)/2.
    page_now = clock.page_ms()
    assert offset.to_server(page_now) == pytest.approx(clock.now, abs=1e-4)


def test_a_lopsided_best_trip_errs_by_no_more_than_the_stated_uncertainty() -> None:
    clock = Clock()
    link = BrowserLink(clock)
    _exchange(link, clock, down_ms=5.0, up_ms=45.0)
    offset = link.offset()
    assert offset is not None and offset.uncertainty_ms == 25.0
    error = abs(offset.offset_ms - PAGE_AHEAD_MS)
    assert error == pytest.approx(20.0, abs=0.1) and error <= offset.uncertainty_ms


def test_an_older_page_that_does_not_stamp_its_answers_gives_no_offset() -> None:
    clock = Clock()
    link = BrowserLink(clock)
    ping = link.ping()
    clock.now += 0.05
    assert ping is not None and link.pong(Pong(ping, 1.0)) == 49.0
    assert link.offset() is None
    assert parse_pongs(json.dumps([{"session": "s", "ping": 2, "page_ms": 1, "answered_ms": 12.5}]), "s") == [
        Pong(2, 1.0, 12.5)
    ]
    odd = [{"session": "s", "ping": 3, "page_ms": 1, "answered_ms": x} for x in (-1, 1e12, "5", True, None)]
    assert parse_pongs(json.dumps(odd), "s") == [Pong(3, 1.0, None)] * 5


def _link_with_offset(clock: Clock) -> BrowserLink:
    link = BrowserLink(clock)
    _exchange(link, clock, 10.0, 10.0)
    return link


def test_a_chunk_s_way_up_is_its_arrival_minus_its_capture_on_one_clock() -> None:
    clock = Clock()
    link = BrowserLink(clock)
    uplink = PageUplink(link)
    captured = clock.page_ms()
    clock.now += 0.120
    assert uplink.arrived(PageTimes(captured), clock.now) is None, "no offset yet: the clocks are not mapped"
    assert uplink.describe() == "measuring…"
    _exchange(link, clock, 10.0, 10.0)
    assert "no microphone chunk timed yet" in uplink.describe()
    captured = clock.page_ms()
    clock.now += 0.090  # in the page: the chunk's wait, its upload
    sent = clock.page_ms()
    clock.now += 0.030  # to the server's handler
    capture = uplink.arrived(PageTimes(captured, sent), clock.now)
    assert capture == ChunkCapture(clock.now, pytest.approx(120.0, abs=0.1), 10.0, pytest.approx(90.0, abs=0.1))
    assert uplink.arrived(None, clock.now) is None, "a chunk the page did not time"
    assert "±10 ms (best of 1 pings); last microphone chunk reached the server 120 ms" in uplink.describe()
    assert uplink.describe().endswith(
        "over Gradio's streaming microphone (the fallback: an upload and a queue request per 100 ms chunk)"
    ), "the facts say which way the audio came"
    # A frame over the page's own socket: the same clock, and the facts name that path.
    frame = uplink.arrived(PageTimes(clock.page_ms() - 40.0, clock.page_ms() - 38.0), clock.now, MicPath.WEBSOCKET)
    assert frame is not None and frame.path is MicPath.WEBSOCKET and frame.uplink_ms == pytest.approx(40.0, abs=0.1)
    assert "reached the server 40 ms after its capture (2 timed); microphone over the page's WebSocket" in (
        uplink.describe()
    )


def test_the_capture_time_comes_in_the_chunk_s_event_data_and_is_not_trusted() -> None:
    file = {"path": "/tmp/gradio/x/audio.wav", "meta": {"_type": "gradio.FileData"}}  # Gradio's own
    assert page_times({**file, EVENT_KEY: 1234.5, SENT_KEY: 1300.0}) == PageTimes(1234.5, 1300.0)
    assert page_times({EVENT_KEY: 1234.5}) == PageTimes(1234.5, None)
    assert page_times({EVENT_KEY: 1234.5, SENT_KEY: 1000.0}) == PageTimes(1234.5, None), "sent before captured"
    for bad in (
        None,
        "1234",
        [1234],
        {},
        file,
        {EVENT_KEY: "1"},
        {EVENT_KEY: -3},
        {EVENT_KEY: True},
        {EVENT_KEY: 1e12},
    ):
        assert page_times(bad) is None, bad
    assert page_times({EVENT_KEY: float("nan")}) is None


def _opened(*opened: TurnOpened) -> TurnRecorder:
    recorder = TurnRecorder(lambda _event: None)
    for event in opened:
        recorder.record(event)
    return recorder


def test_a_turn_opened_with_its_chunks_capture_counts_every_figure_from_it() -> None:
    capture = ChunkCapture(100.0, 85.4, 12.0)
    recorder = _opened(TurnOpened(1, "voice", 100.0, endpoint_at=100.4, capture=capture))
    recorder.record(TranscriptReady(1, 100.38, "Hi.", 50.0, "whisper"))
    lat = recorder.get(1)
    assert lat is not None
    assert (lat.clock, lat.uplink_ms, lat.clock_uncertainty_ms) == ("page", 85.4, 12.0)
    assert (lat.endpoint_ms, lat.transcript_ms) == (pytest.approx(485.4), pytest.approx(465.4))
    # A typed turn has no microphone audio; a negative way up (within the offset's error) moves nothing.
    recorder = _opened(
        TurnOpened(2, "text", 1.0, capture=ChunkCapture(1.0, 50.0, 1.0)),
        TurnOpened(3, "voice", 100.0, endpoint_at=100.4, capture=ChunkCapture(100.0, -3.0, 10.0)),
    )
    typed, early = recorder.get(2), recorder.get(3)
    assert typed is not None and typed.clock == "typed" and typed.uplink_ms is None
    assert early is not None and early.endpoint_ms == pytest.approx(400.0) and early.uplink_ms == 0.0


def test_a_turn_starts_at_the_capture_of_the_chunk_its_end_was_stamped_from() -> None:
    book = CaptureBook()
    book.add(ChunkCapture(10.0, 90.0, 5.0, 60.0))
    book.add(ChunkCapture(10.1, 95.0, 5.0))
    capture = book.find(heard_at=10.0)
    assert capture is not None and book.find(heard_at=10.2) is None, "a chunk the page did not time"
    lat = _opened(TurnOpened(1, "voice", 9.5, endpoint_at=9.9, capture=capture)).get(1)
    assert lat is not None and lat.endpoint_ms == pytest.approx(490.0) and lat.uplink_ms == 90.0
    assert lat.extras["uplink_in_page_ms"] == 60.0
    untimed = _opened(TurnOpened(1, "voice", 9.5, endpoint_at=9.9)).get(1)
    assert untimed is not None and untimed.clock == "arrival" and untimed.endpoint_ms == pytest.approx(400.0)


def test_the_panel_says_which_clock_a_turn_counts_from() -> None:
    spoken = TurnLatency(turn=1, speech_end_at=100.0, endpoint_ms=400.0)
    text = panel.current_turn_html(spoken)
    assert "as its audio reached the server" in text and "data-stage='uplink_ms'" in text
    assert "<td class='wv-ms'>not timed</td>" in text, "no capture time will come for this turn"
    spoken = dataclasses.replace(spoken, clock="page", uplink_ms=80.0, clock_uncertainty_ms=9.0, endpoint_ms=480.0)
    text = panel.current_turn_html(spoken)
    assert "as your page captured it" in text and "±9 ms" in text and "data-split" not in text
    spoken = dataclasses.replace(spoken, extras={"uplink_in_page_ms": 55.0})
    text = panel.current_turn_html(spoken)
    assert "<span data-split='in_page'>55 ms</span>" in text and "<span data-split='to_server'>25 ms</span>" in text
    assert "Your audio reached the server" in text and "80 ms" in text
    assert panel.turns_rows([spoken])[0][panel.TURN_COLUMNS.index("Uplink")] == "80"
    typed = TurnLatency(turn=2, source="text", clock="typed", speech_end_at=1.0, first_audio_ms=500.0)
    text = panel.current_turn_html(typed)
    assert "when your typed turn reached the server" in text and "uplink_ms" not in text
    facts = panel.facts_markdown(
        panel.SessionFacts("e", "m", "ready", "prewarmed", 0, "—", 1, 0, "piper", page_clock="±9 ms (best of 3 pings)")
    )
    assert "| Page clock → server clock | ±9 ms (best of 3 pings) |" in facts
