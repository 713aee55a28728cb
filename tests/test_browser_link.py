"""The page <-> server round trip: pings stamped on the server's clock, answers from an untrusted page."""

from __future__ import annotations

import json

from voice.browser_link import KEEP, PING_EVERY_S, UNANSWERED_S, BrowserLink, Pong, parse_pongs


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_ping_in_flight_at_a_time_and_at_most_every_interval() -> None:
    clock = Clock()
    link = BrowserLink(clock)
    assert link.ping() == 1
    assert link.ping() is None, "one ping in flight"
    clock.now += 0.15
    assert link.pong(Pong(1, 5.0)) == 145.0, "the page's own 5 ms is not part of the trip"
    assert link.ping() is None, "not again before the interval"
    clock.now += PING_EVERY_S
    assert link.ping() == 2


def test_an_unanswered_ping_is_given_up_and_its_late_answer_ignored() -> None:
    clock = Clock()
    link = BrowserLink(clock)
    assert link.ping() == 1
    clock.now += UNANSWERED_S + 0.1
    assert link.ping() == 2
    assert link.pong(Pong(1, None)) is None
    assert link.summary() is None
    clock.now += 0.05
    assert link.pong(Pong(2, None)) == 50.0
    assert link.pong(Pong(2, None)) is None, "an answer counts once"


def test_summary_covers_the_last_trips() -> None:
    clock = Clock()
    link = BrowserLink(clock)
    assert link.summary() is None
    for trip_ms in [*([400] * 5), 150, 160, 170, 150, 155, 165, 150, 160, 152, 158]:
        link.ping()
        clock.now += trip_ms / 1000
        link.pong(Pong(link._in_flight[0], 0.0))
        clock.now += PING_EVERY_S
    trips = link.summary()
    assert trips is not None and trips.count == KEEP
    assert (trips.min_ms, trips.max_ms, trips.last_ms) == (150.0, 170.0, 158.0)
    assert trips.median_ms == 156.5
    assert trips.describe() == "150 ms best of 10 pings (median 156, worst 170, last 158)"


def test_answers_from_the_page_are_not_trusted() -> None:
    good = [{"session": "s1", "ping": 3, "page_ms": 2.5}, {"session": "s0", "ping": 4, "page_ms": 1}]
    assert parse_pongs(json.dumps(good), "s1") == [Pong(3, 2.5)]
    odd_times = [{"session": "s1", "ping": 5, "page_ms": x} for x in (-1, 1e9, "2", True, None)]
    assert parse_pongs(json.dumps(odd_times), "s1") == [Pong(5, None)] * 5
    assert parse_pongs('[{"session": "s1", "ping": 6, "page_ms": NaN}]', "s1") == [Pong(6, None)]
    for text in (
        "",
        "null",
        "{}",
        "[1]",
        '[{"session": "s1", "ping": "3"}]',
        '[{"session": "s1", "ping": true}]',
        '[{"session": "s1", "ping": 0}]',
        '[{"session": "s1", "ping": 2.0}]',
        "[" * 1000,
        '[{"session": "s1", "ping": 3}' + " " * 2000 + "]",
    ):
        assert parse_pongs(text, "s1") == [], text
