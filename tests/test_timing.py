"""A turn's timing flows one way: the recorder builds the record from the stages' events, and the
session's events reach every listener, a slow one bounded.  No model, no server: the events are
what the stages emit."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
from pathlib import Path

import pytest

from llm import RequestTiming
from voice.event_hub import EventHub
from voice.events import LatencyUpdate, SessionEvent, Status, TurnDone
from voice.latency import TurnEnd, TurnLatency
from voice.timing import (
    AudioPlayed,
    BufferedSpeechUsed,
    PlaybackConfirmed,
    PromptCacheRead,
    RequestRetried,
    RequestSent,
    RequestTimed,
    SentenceReady,
    TranscriptReady,
    TurnClosed,
    TurnContinued,
    TurnOpened,
    TurnRecorder,
)
from voice.tts import TTSConnection
from voice.uplink import ChunkCapture

ROOT = Path(__file__).resolve().parent.parent
END = 100.0  # the turn's true end of speech, on the server's perf_counter (s)


def at(ms: float) -> float:
    """The perf_counter stamp ``ms`` after the end of speech."""
    return END + ms / 1000.0


def _request() -> RequestTiming:
    timing = RequestTiming(kind="chat", started_at=at(600.0))
    timing.ttfb_ms, timing.first_token_ms, timing.reused_connection, timing.attempts = 80.0, 150.0, True, 1
    return timing


def test_the_recorder_builds_a_spoken_turns_record_from_its_events() -> None:
    published: list[SessionEvent] = []
    recorder = TurnRecorder(published.append)
    end = TurnEnd("text_model", "text_model", 410.0, text_probability=0.97, text_ms=0.2)
    request = _request()
    events = [
        TurnOpened(1, "voice", END, rtt_ms=50.0, warmup_ms=210.0, endpoint_at=at(450.0), turn_end=end, stretch_runs=2),
        TranscriptReady(1, at(430.0), "What is the capital of France?", 120.0, "whisper", started_at=at(300.0)),
        RequestSent(1, at(600.0)),
        RequestTimed(1, request),
        RequestTimed(1, dataclasses.replace(request, ttfb_ms=999.0)),  # a stage keeps its first stamp
        SentenceReady(1, at(900.0), 31, request),
        SentenceReady(1, at(1500.0), 20, request),
        AudioPlayed(1, at(1100.0), "edge", TTSConnection("spare", 312.4, 0.0)),
        AudioPlayed(1, at(1700.0), "piper", fallback=True),  # the offline engine took over
        PromptCacheRead(1, 207, 19),
        TurnClosed(1, "ok", at(2000.0)),
        PlaybackConfirmed(1, at(1180.0), player_ms=12.0),  # the page's word may come after the end
    ]
    for event in events:
        recorder.record(event)
    lat = recorder.get(1)
    assert lat == TurnLatency(
        turn=1,
        source="voice",
        rtt_ms=50.0,
        speech_end_at=END,
        clock="arrival",
        endpoint_ms=450.0,
        transcript_ms=430.0,
        stt_compute_ms=120.0,
        stt_engine="whisper",
        request_sent_ms=600.0,
        status_ms=680.0,
        first_token_ms=750.0,
        first_sentence_ms=900.0,
        first_audio_ms=1100.0,
        reply_done_ms=2000.0,
        playback_confirmed_ms=1180.0,
        reused_connection=True,
        llm_attempts=1,
        warmup_ms=210.0,
        tts_engine="piper",
        tts_fallback=True,
        tts_connection="reused spare",
        tts_setup_ms=312.4,
        tts_wait_ms=0.0,
        sentences=2,
        chars=51,
        transcript="What is the capital of France?",
        outcome="ok",
        extras={
            "silence_waited_ms": 410.0,
            "text_model_ms": 0.2,
            "stt_stretch_runs": 2,
            "stt_started_ms": 300.0,
            "prompt_cached_tokens": 207.0,
            "prompt_evaluated_tokens": 19.0,
            "player_ms": 12.0,
        },
        turn_end=end,
    )
    # Every change was published as it happened, the end once, as TurnDone; an event that changed
    # nothing (the second status stamp) was not.
    kinds = [type(event).__name__ for event in published]
    assert kinds.count("TurnDone") == 1 and kinds[-2] == "TurnDone" and kinds[-1] == "LatencyUpdate"
    assert len(published) == len(events) - 1
    assert all(isinstance(e, LatencyUpdate | TurnDone) for e in published)


def test_an_outcome_decided_first_stays_and_a_turn_is_closed_once() -> None:
    published: list[SessionEvent] = []
    recorder = TurnRecorder(published.append)
    recorder.record(TurnOpened(1, "voice", END, endpoint_at=at(400.0)))
    assert recorder.record(TurnContinued(1))
    assert recorder.record(TurnClosed(1, "interrupted", at(500.0)))
    assert not recorder.record(TurnClosed(1, "interrupted")), "closed once"
    lat = recorder.get(1)
    assert lat is not None and lat.outcome == "continued" and lat.reply_done_ms == 500.0
    assert [e.latency.outcome for e in published if isinstance(e, TurnDone)] == ["continued"]
    # A turn without speech has no reply; an unknown turn's events change nothing.
    recorder.record(TurnOpened(2, "voice", END))
    recorder.record(TurnClosed(2, "no_speech", at(900.0)))
    assert (recorder.get(2) or TurnLatency(0)).reply_done_ms is None
    assert not recorder.record(RequestSent(7, at(1.0))) and recorder.get(7) is None


def test_a_typed_turn_counts_from_its_arrival_and_a_capture_moves_a_spoken_turns_zero() -> None:
    recorder = TurnRecorder(lambda _event: None)
    recorder.record(TurnOpened(1, "text", END, transcript="Hi", capture=ChunkCapture(END, 90.0, 5.0)))
    recorder.record(TurnOpened(2, "voice", END, endpoint_at=at(400.0), capture=ChunkCapture(END, 90.0, 5.0, 60.0)))
    typed, spoken = recorder.get(1), recorder.get(2)
    assert typed is not None and (typed.clock, typed.uplink_ms, typed.transcript) == ("typed", None, "Hi")
    assert spoken is not None and (spoken.clock, spoken.uplink_ms, spoken.clock_uncertainty_ms) == ("page", 90.0, 5.0)
    assert spoken.endpoint_ms == pytest.approx(490.0) and spoken.extras["uplink_in_page_ms"] == 60.0


def test_playback_is_confirmed_only_after_first_audio_and_buffers_and_retries_land_in_extras() -> None:
    recorder = TurnRecorder(lambda _event: None)
    recorder.record(TurnOpened(1, "text", END))
    assert not recorder.record(PlaybackConfirmed(1, at(50.0))), "no audio went out yet"
    recorder.record(BufferedSpeechUsed(1, at(-200.0), None, None))
    recorder.record(BufferedSpeechUsed(1, at(-200.0), at(-40.0), 35.0))
    recorder.record(RequestRetried(1, attempts=2, retries=1))
    recorder.record(RequestRetried(1, attempts=3, retries=0))  # a stale connection replayed: not a retry
    lat = recorder.get(1)
    assert lat is not None and lat.llm_attempts == 3 and lat.extras["llm_retries"] == 1.0
    assert {k: lat.extras[k] for k in ("tts_buffered", "tts_buffer_started_ms", "tts_buffer_ready_ms")} == {
        "tts_buffered": 1.0,
        "tts_buffer_started_ms": -200.0,
        "tts_buffer_ready_ms": -40.0,
    }


def test_a_record_cannot_be_written_by_anyone() -> None:
    lat = TurnLatency(turn=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lat.first_audio_ms = 1.0  # type: ignore[misc]


def _product_modules() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "voice").rglob("*.py")), *sorted((ROOT / "web").rglob("*.py"))]


@pytest.mark.parametrize("path", _product_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_recorder_makes_turn_records(path: Path) -> None:
    """No stage writes another's fields: outside voice/timing.py no product module builds or
    replaces a TurnLatency, nor assigns into a record or its extras."""
    if path.relative_to(ROOT).as_posix() in ("voice/timing.py", "voice/latency.py"):
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names_latency = "TurnLatency" in path.read_text(encoding="utf-8")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            assert not called.endswith("TurnLatency"), f"{path.name}:{node.lineno} builds a TurnLatency"
            replaces = called in ("replace", "dataclasses.replace")
            assert not (names_latency and replaces), f"{path.name}:{node.lineno} replaces a record"
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        )
        for target in targets:
            text = ast.unparse(target)
            assert not text.startswith(("lat.", "latency.")), f"{path.name}:{node.lineno} writes {text}"
            assert ".extras[" not in text, f"{path.name}:{node.lineno} writes {text}"


# -- the session's events: several listeners, bounded ------------------------------------------


async def test_every_listener_receives_every_event_and_a_late_one_starts_from_the_status() -> None:
    hub: EventHub[SessionEvent] = EventHub(keep_latest=lambda event: isinstance(event, Status))
    page, speaker = hub.listen("page"), hub.listen("speaker")
    ready, later = Status("Connection ready in 80 ms", "warm"), Status("Listening", "warm")
    done = TurnDone(TurnLatency(turn=1, outcome="ok"))
    for event in (ready, done, later):
        hub.publish(event)
    assert [await page.get() for _ in range(3)] == [ready, done, later]
    assert [speaker.get_nowait() for _ in range(3)] == [ready, done, later] and speaker.empty()
    with hub.listen("benchmark") as late:
        assert late.get_nowait() == later and late.empty(), "only the latest status, not the news before it"
        assert len(hub.listeners) == 3
    assert len(hub.listeners) == 2, "a closed listener hears nothing more"
    page.close()
    hub.publish(done)
    assert page.empty() and speaker.get_nowait() == done


async def test_a_slow_listener_loses_its_oldest_events_counts_them_and_blocks_no_one() -> None:
    hub: EventHub[SessionEvent] = EventHub()
    slow, fast = hub.listen("slow", maxsize=3), hub.listen("fast")
    updates = [LatencyUpdate(TurnLatency(turn=n)) for n in range(1, 9)]
    for event in [*updates[:4], Status("warm", "warm"), *updates[4:]]:
        hub.publish(event)  # never waits: the slow listener reads nothing meanwhile
    assert [slow.get_nowait() for _ in range(slow.qsize())] == updates[-3:], "the newest kept, in order"
    assert slow.dropped == 6 and slow.drops == {"LatencyUpdate": 5, "Status": 1}
    assert fast.qsize() == 9 and fast.dropped == 0, "the others do not notice"
    waiting = asyncio.create_task(slow.get())
    await asyncio.sleep(0)
    hub.publish(updates[0])
    assert await asyncio.wait_for(waiting, 1) == updates[0]
